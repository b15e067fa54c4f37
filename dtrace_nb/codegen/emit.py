"""Emission of one BPF function per provider Binding.

A function runs the binding's prologue, works out which probe fired (the binding's
Selector, through a small map the runtime fills), then runs every clause enabled on that
probe in program order: predicate, then statements. Clause code is emitted once per
binding, with that binding's C expressions for argN, so one clause can span probes of
different providers. Nothing here knows what a provider's C means.

Every way out of a clause is a `goto`: to its end (not enabled on this probe, predicate
false, no room for its record) or to its fault handler, which discards the clause's record
and reports the fault as DTrace does (an error record the consumer turns into the ERROR
probe and the "error on enabled probe" message). Expressions that need statements (map
lookups, string subroutines, checked reads) are GNU statement expressions, so `&&`, `||`
and `?:` keep their short-circuit order and a fault can only come from code that runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.codegen.cwriter import CWriter
from dtrace_nb.codegen.expressions import ExprEmitter
from dtrace_nb.codegen.layout import AggLayout, Resources, VarLayout, pid_slot, record_slot
from dtrace_nb.errors import DCompileError
from dtrace_nb.faults import FLT_BADADDR
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import PROBE_STRINGS
from dtrace_nb.lang.check import CheckedClause, CheckedProgram, clause_calls, const_value
from dtrace_nb.lang.types import StackType
from dtrace_nb.probes import Binding, Probe

MAX_CLAUSES_PER_BINDING = 64
ARRAY_SELECTOR_LIMIT = 4096
SCRATCH_LIMIT = 32 << 10  # per-CPU array values are limited to 32 KiB



@dataclass
class FunctionSpec:
    """One generated BPF function and what the runtime must do for it."""

    name: str
    binding: Binding
    clauses: list[int]
    selector_map: Optional[str] = None
    # selector value -> (program-local probe index, clause bit mask)
    selector_entries: dict[int, tuple[int, int]] = field(default_factory=dict)
    scratch_size: int = 0
    uses: set = field(default_factory=set)  # 'globals', 'this', 'scratch', 'fault', 'spec',
    # 'task'
    uses_errors: bool = False


class BindingEmitter:
    def __init__(self, w: CWriter, checked: CheckedProgram, res: Resources, binding: Binding,
                 fname: str, probe_index: dict[int, int]):
        self.w = w
        self.checked = checked
        self.res = res
        self.b = binding
        self.fname = fname
        self.probe_index = probe_index
        self.single: Optional[Probe] = binding.probes[0] if len(binding.probes) == 1 else None
        ids = {p.id for p in binding.probes}
        self.clauses = [c for c in checked.clauses if ids & {p.id for p in c.probes}]
        if len(self.clauses) > MAX_CLAUSES_PER_BINDING:
            raise DCompileError(f"more than {MAX_CLAUSES_PER_BINDING} clauses enable probes of "
                                f"one attachment ({binding.attach.describe()})",
                                self.clauses[MAX_CLAUSES_PER_BINDING].clause.span,
                                hint="merge clauses on the same probe (if/else and "
                                     "predicates inside one clause)")
        self.spec = FunctionSpec(fname, binding, [c.index for c in self.clauses])
        self.x = ExprEmitter(self)
        # scratch bytes 0..strbuf-1 stay zero: the empty string for absent variables
        self.scratch_top = res.strbuf
        self.uses: set[str] = set()
        self.clause: Optional[CheckedClause] = None
        self.action_no = 0
        self.in_predicate = False
        self.faulted: set[int] = set()
        self.uses_errors = False

    # -- resources the body asks for -------------------------------------------------------

    def alloc(self, size: int) -> str:
        """A fresh scratch buffer of `size` bytes (8-aligned), as a `char *` C expression."""
        off = self.scratch_top
        self.scratch_top += (size + 7) // 8 * 8
        if self.scratch_top > SCRATCH_LIMIT:
            raise DCompileError(f"the clauses on {self.b.attach.describe()} need more than "
                                f"{SCRATCH_LIMIT} bytes of string and key space",
                                self.clause.clause.span if self.clause else None,
                                hint="lower strsize (-x strsize=128) or split the clauses")
        self.uses.add("scratch")
        return f"(dt_s + {off})"

    def fault(self, kind: int, addr: str) -> str:
        """C statement reporting a fault at the current action and leaving the clause."""
        self.uses.add("fault")
        self.faulted.add(self.clause.index)
        act = 0 if self.in_predicate else self.action_no
        return (f"{{ dt_flt = {kind}; dt_flt_addr = (u64)({addr}); dt_flt_act = {act}; "
                f"goto dt_fault_{self.clause.index}; }}")

    # -- function ----------------------------------------------------------------------

    def emit(self) -> FunctionSpec:
        w, b = self.w, self.b
        body = CWriter()
        outer_w, self.w = self.w, body
        body._depth = 1
        for bit, c in enumerate(self.clauses):
            self.emit_clause(c, bit)
        self.w = outer_w
        w.comment(f"{b.attach.describe()}: " + ", ".join(p.description for p in b.probes[:4])
                  + (f" (+{len(b.probes) - 4} more)" if len(b.probes) > 4 else ""))
        with w.block(f"int {self.fname}({b.ctx_decl})"):
            w.lines(b.prologue)
            self.emit_selection()
            if self.checked.uses_exit and not b.runs_after_exit:
                w.line("if (dt_exiting())")
                w.line("\treturn 0;")
            w.line("u32 dt_zero = 0;")
            used = self.used_names()
            if self.single is None and used & (set(PROBE_STRINGS) | {"id"}):
                w.line("struct dt_probedesc *dt_pd = dtnb_probes.lookup(&dt_pidx);")
                w.line("if (!dt_pd)")
                w.line("\treturn 0;")
            if "globals" in self.uses:
                w.line("struct dt_globals *dt_g = dtnb_globals.lookup(&dt_zero);")
                w.line("if (!dt_g)")
                w.line("\treturn 0;")
            if "this" in self.uses:
                w.line("struct dt_this *dt_t = dtnb_this.lookup(&dt_zero);")
                w.line("if (!dt_t)")
                w.line("\treturn 0;")
                w.line("__builtin_memset(dt_t, 0, sizeof(*dt_t));")
            if "scratch" in self.uses:
                w.line("char *dt_s = (char *)dtnb_scratch.lookup(&dt_zero);")
                w.line("if (!dt_s)")
                w.line("\treturn 0;")
            if "fault" in self.uses:
                w.line("u32 dt_flt = 0, dt_flt_act = 0;")
                w.line("u64 dt_flt_addr = 0;")
            for i in range(10):
                if f"arg{i}" in used or i in self.x.args_used:
                    expr = b.arg_exprs[i] if i < len(b.arg_exprs) else "0"
                    w.line(f"s64 dt_arg{i} = (s64)({expr});")
            w.lines(body._lines)
            w.line("return 0;")
        self.spec.scratch_size = self.scratch_top if "scratch" in self.uses else 0
        self.spec.uses = set(self.uses)
        self.spec.uses_errors = self.uses_errors
        return self.spec

    def used_names(self) -> set[str]:
        names = set()
        for c in self.clauses:
            for n in ast.walk(c.clause):
                if isinstance(n, ast.Ident):
                    names.add(n.name)
        return names

    def emit_selection(self) -> None:
        """Declare dt_pidx (and dt_mask when a clause covers only some of the probes)."""
        w, b = self.w, self.b
        if b.selector is None:
            if self.single is None:
                raise DCompileError("internal: a binding serving several probes has no selector")
            w.line(f"const u32 dt_pidx = {self.probe_index[self.single.id]};")
            return
        if self.single is not None:
            value = b.selector.values[self.single.id]
            w.line(f"if ((u64)({b.selector.expr}) != {value}ULL)")
            w.line("\treturn 0;")
            w.line(f"const u32 dt_pidx = {self.probe_index[self.single.id]};")
            return
        name = f"dtnb_sel_{self.fname}"
        self.spec.selector_map = name
        for p in b.probes:
            mask = 0
            for bit, c in enumerate(self.clauses):
                if p.id in {q.id for q in c.probes}:
                    mask |= 1 << bit
            self.spec.selector_entries[b.selector.values[p.id]] = (self.probe_index[p.id], mask)
        w.line(f"u32 dt_key = (u32)({b.selector.expr});")
        w.line(f"struct dt_sel *dt_sel = {name}.lookup(&dt_key);")
        w.line("if (!dt_sel || !dt_sel->mask)")
        w.line("\treturn 0;")
        w.line("u32 dt_pidx = dt_sel->pidx;")
        w.line("u64 dt_mask = dt_sel->mask;")

    # -- clauses -----------------------------------------------------------------------

    def emit_clause(self, c: CheckedClause, bit: int) -> None:
        w = self.w
        self.clause = c
        self.action_no = 0
        n = c.index
        ids = {p.id for p in self.b.probes}
        covers_all = ids <= {p.id for p in c.probes}
        heads = ", ".join(p.text for p in c.clause.probes)
        w.comment(f"clause {n + 1} ({heads}) at line {c.clause.span.line}")
        rec = self.res.records.get(n)
        self.rec = rec
        self.rec_var = f"dt_r{n}"
        with w.block(""):
            if rec is not None:
                w.line(f"struct {rec.struct_name} *{self.rec_var} = 0;")
            if not covers_all:
                w.line(f"if (!(dt_mask & {1 << bit}ULL))")
                w.line(f"\tgoto dt_end_{n};")
            if c.clause.predicate is not None:
                self.in_predicate = True
                cond = self.x.int_expr(c.clause.predicate)
                self.in_predicate = False
                w.line(f"if (!({cond}))")
                w.line(f"\tgoto dt_end_{n};")
            if rec is not None:
                self.reserve(rec)
            self.block(c.clause.body)
            if rec is not None:
                self.submit(rec)
            if n in self.faulted:
                w.line(f"goto dt_end_{n};")
                w.line(f"dt_fault_{n}:")
                if rec is not None:
                    w.line(f"if ({self.rec_var})")
                    w.line(f"\tdtnb_rb.ringbuf_discard({self.rec_var}, 0);")
                w.line(f"dt_error({rec.epid if rec else n + 1}, dt_pidx, dt_flt, dt_flt_addr, "
                       "dt_flt_act);")
                self.uses_errors = True
            w.line(f"dt_end_{n}: ;")

    def reserve(self, rec) -> None:
        w, r = self.w, self.rec_var
        w.line(f"{r} = dtnb_rb.ringbuf_reserve(sizeof(struct {rec.struct_name}));")
        w.line(f"if (!{r}) {{")
        w.line("\tdt_drop(DT_DROP_REC);")
        w.line(f"\tgoto dt_end_{self.clause.index};")
        w.line("}")
        w.line(f"{r}->epid = {rec.epid};")
        w.line(f"{r}->cpu = bpf_get_smp_processor_id();")
        w.line(f"{r}->pidx = dt_pidx;")
        w.line(f"{r}->spec = 0;")
        w.line(f"{r}->mask = 0;")

    def submit(self, rec) -> None:
        r = self.rec_var
        if self.clause.speculative:
            # data for speculation 0 (none available) is dropped, as in DTrace
            self.w.line(f"if ({r}->spec == 0) {{")
            self.w.line(f"\tdtnb_rb.ringbuf_discard({r}, 0);")
            self.w.line(f"\t{r} = 0;")
            self.w.line(f"\tgoto dt_end_{self.clause.index};")
            self.w.line("}")
        self.w.line(f"dtnb_rb.ringbuf_submit({r}, 0);")
        self.w.line(f"{r} = 0;")

    # -- statements --------------------------------------------------------------------

    def block(self, body: list) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, stmt: ast.Stmt) -> None:
        w = self.w
        if isinstance(stmt, ast.Block):
            self.block(stmt.body)
            return
        if isinstance(stmt, ast.If):
            self.action_no += 1
            with w.block(f"if ({self.x.int_expr(stmt.cond)})"):
                self.block(stmt.then)
            if stmt.other:
                with w.block("else"):
                    self.block(stmt.other)
            return
        assert isinstance(stmt, ast.ExprStmt)
        self.action_no += 1
        e = stmt.expr
        if isinstance(e, ast.Assign) and _is_agg(e.target):
            target = e.target
            name = target.base.name if isinstance(target, ast.Index) else target.name
            keys = target.indexes if isinstance(target, ast.Index) else []
            self.aggregate(self.res.aggs[name], keys, e.value)
        elif isinstance(e, ast.Call) and id(e) in self.res.action_of:
            self.record_action(e)
        elif isinstance(e, ast.Call) and e.name in ("speculate", "raise", "stop", "copyout",
                                                   "copyoutstr"):
            self.kernel_action(e)
        else:
            w.line(f"(void)({self.x.expr_stmt(e)});")

    # -- actions -------------------------------------------------------------------------

    def record_action(self, call: ast.Call) -> None:
        w, r = self.w, self.rec_var
        action = self.res.action_of[id(call)]
        w.line(f"{r}->mask |= {1 << action.bit}ULL;")
        name = call.name
        if name in ("printf", "system", "trace", "exit", "trunc", "normalize", "commit",
                    "discard"):
            args = call.args[1:] if name in ("printf", "system") else call.args
            if name in ("trunc", "normalize"):
                args = call.args[1:]
            for a in args:
                if isinstance(a, ast.Call) and a.name in ("stack", "ustack"):
                    self.store_stack(a)
                    continue
                self.store_field(a)
            if name == "exit":
                w.line("dt_set_exiting();")
            if name in ("commit", "discard"):
                self.uses.add("spec")
                v = f"{r}->{self.rec.fields[record_slot(self.res, call.args[0])].name}"
                w.line(f"dt_spec_release((u32){v});")
        elif name == "tracemem":
            f = self.rec.fields[record_slot(self.res, call.args[1])]
            addr = self.x.int_expr(call.args[0])
            w.line(f"if (bpf_probe_read_kernel(&{r}->{f.name}, {f.size}, (void *)({addr})) < 0)")
            w.line("\t" + self.fault(FLT_BADADDR, addr))
            if len(call.args) == 3:
                self.store_field(call.args[2])
        elif name in ("stack", "ustack"):
            self.store_stack(call)

    def store_field(self, a: ast.Expr) -> None:
        f = self.rec.fields[record_slot(self.res, a)]
        dst = f"{self.rec_var}->{f.name}"
        if f.is_string:
            self.w.line(self.x.store_string(self.x.str_val(a), dst, f.size))
        else:
            self.w.line(f"{dst} = ({'s64' if f.signed else 'u64'})({self.x.int_expr(a)});")

    def store_stack(self, call: ast.Call) -> None:
        f = self.rec.fields[record_slot(self.res, call)]
        pf = self.rec.fields[pid_slot(self.res, call)]
        flags = "BPF_F_USER_STACK" if call.name == "ustack" else "0"
        r = self.rec_var
        self.w.line(f"{r}->{f.name} = (u64)(s64)dtnb_stacks.get_stackid(ctx, {flags});")
        self.w.line(f"{r}->{pf.name} = bpf_get_current_pid_tgid() >> 32;")

    def kernel_action(self, call: ast.Call) -> None:
        w = self.w
        if call.name == "speculate":
            self.uses.add("spec")
            w.line(f"{self.rec_var}->spec = (u32)({self.x.int_expr(call.args[0])});")
        elif call.name == "raise":
            w.line(f"bpf_send_signal((u32)({self.x.int_expr(call.args[0])}));")
        elif call.name == "stop":
            w.line("bpf_send_signal(19); /* SIGSTOP */")
        elif call.name == "copyout":
            buf = self.x.int_expr(call.args[0])
            addr = self.x.int_expr(call.args[1])
            size = const_value(call.args[2])
            if size is None or not 0 < size <= 4096:
                raise DCompileError("copyout() size must be a constant between 1 and 4096",
                                    call.args[2].span)
            w.line(f"bpf_probe_write_user((void *)({addr}), (void *)({buf}), {size});")
        elif call.name == "copyoutstr":
            v = self.x.materialize(self.x.str_val(call.args[0]))
            addr = self.x.int_expr(call.args[1])
            w.line(f"bpf_probe_write_user((void *)({addr}), {v}, "
                   f"{min(self.res.strsize, 256)});")

    def aggregate(self, agg: AggLayout, keys: list[ast.Expr], call: ast.Call) -> None:
        w = self.w
        with w.block(""):
            if agg.keyless:
                key = "&dt_zero"
            else:
                size = sum(f.size for f in agg.key_fields)
                if size > 64:
                    w.line(f"struct {agg.key_struct} *dt_k = (void *){self.alloc(size)};")
                    w.line("__builtin_memset(dt_k, 0, sizeof(*dt_k));")
                    kref, key = "dt_k->", "dt_k"
                else:
                    w.line(f"struct {agg.key_struct} dt_kv;")
                    w.line("__builtin_memset(&dt_kv, 0, sizeof(dt_kv));")
                    kref, key = "dt_kv.", "&dt_kv"
                for f, k in zip(agg.key_fields, keys):
                    if f.is_string:
                        w.line(self.x.store_string(self.x.str_val(k), f"{kref}{f.name}", f.size))
                    elif isinstance(f.dtype, StackType):
                        w.line(f"{kref}{f.name} = {stack_key(f.dtype)};")
                    else:
                        w.line(f"{kref}{f.name} = ({'s64' if f.signed else 'u64'})"
                               f"({self.x.int_expr(k)});")
            if call.args:
                w.line(f"s64 dt_x = (s64)({self.x.int_expr(call.args[0])});")
            w.line(f"struct {agg.value_struct} *dt_v = {agg.map_name}.lookup({key});")
            if not agg.keyless:
                with w.block("if (!dt_v)"):
                    if agg.value_size > 128:
                        w.line("void *dt_zv = dtnb_zero.lookup(&dt_zero);")
                        w.line("if (dt_zv)")
                        w.line(f"\t{agg.map_name}.insert({key}, dt_zv);")
                    else:
                        w.line(f"struct {agg.value_struct} dt_init = {{}};")
                        w.line(f"{agg.map_name}.insert({key}, &dt_init);")
                    w.line(f"dt_v = {agg.map_name}.lookup({key});")
            w.line("if (!dt_v) {")
            w.line("\tdt_drop(DT_DROP_AGG);")
            w.line("} else {")
            w.lines("\t" + s for s in agg_update(agg))
            w.line("}")


def agg_update(agg: AggLayout) -> list[str]:
    f = agg.info.func
    if f == "count":
        return ["dt_v->v += 1;"]
    if f == "sum":
        return ["dt_v->v += dt_x;"]
    if f == "min":
        return ["if (dt_v->n == 0 || dt_x < dt_v->v)", "\tdt_v->v = dt_x;", "dt_v->n += 1;"]
    if f == "max":
        return ["if (dt_v->n == 0 || dt_x > dt_v->v)", "\tdt_v->v = dt_x;", "dt_v->n += 1;"]
    if f == "avg":
        return ["dt_v->n += 1;", "dt_v->v += dt_x;"]
    if f == "stddev":
        return ["dt_v->n += 1;", "dt_v->v += dt_x;", "dt_add_square(dt_v->sq, dt_x);"]
    if f == "quantize":
        return ["dt_v->b[dt_quantize_bucket(dt_x) & 127] += 1;"]
    mask = agg.value_fields[0][2] - 1
    if f == "lquantize":
        base, limit, step = agg.info.params
        levels = (limit - base) // step
        return [f"dt_v->b[dt_lquantize_bucket(dt_x, {base}LL, {levels}, {step}LL) & {mask}] += 1;"]
    if f == "llquantize":
        factor, low, high, nsteps = agg.info.params
        return [f"dt_v->b[dt_llquantize_bucket(dt_x, {factor}, {low}, {high}, {nsteps}) & {mask}]"
                " += 1;"]
    raise ValueError(f)


def stack_key(t: StackType) -> str:
    """C for a stack()/ustack() aggregation key: the stack id in the low 32 bits (all ones
    when the stack could not be taken), and for ustack the process id above it, which the
    consumer needs to find the process's symbols."""
    flags = "BPF_F_USER_STACK" if t.kind == "ustack" else "0"
    sid = (f"({{ int dt_sid = dtnb_stacks.get_stackid(ctx, {flags}); "
           "dt_sid < 0 ? 0xffffffffULL : (u64)dt_sid; })")
    if t.kind == "ustack":
        return f"((bpf_get_current_pid_tgid() >> 32) << 32 | {sid})"
    return sid


def _is_agg(t: ast.Expr) -> bool:
    return isinstance(t, ast.AggRef) or (isinstance(t, ast.Index) and isinstance(t.base, ast.AggRef))


__all__ = ["BindingEmitter", "FunctionSpec", "ARRAY_SELECTOR_LIMIT", "agg_update",
           "VarLayout", "clause_calls"]
