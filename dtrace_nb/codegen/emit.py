"""Emission of one BPF function per provider Binding.

A function runs the binding's prologue, works out which probe fired (the binding's
Selector, through a small map the runtime fills), then runs every clause enabled on that
probe in program order: predicate, then actions. Clause code is emitted once per binding,
with that binding's C expressions for argN, so one clause can span probes of different
providers. Nothing here knows what a provider's C means.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.codegen.cwriter import CWriter
from dtrace_nb.codegen.layout import AggLayout, Resources, record_slot
from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.check import PROBE_STRINGS, CheckedClause, CheckedProgram
from dtrace_nb.lang.types import IntType, StringType, promote
from dtrace_nb.probes import Binding, Probe

MAX_CLAUSES_PER_BINDING = 64
ARRAY_SELECTOR_LIMIT = 4096

_INT_BUILTIN_C = {
    "pid": "((s32)(bpf_get_current_pid_tgid() >> 32))",
    "tid": "((s32)bpf_get_current_pid_tgid())",
    "uid": "((u32)bpf_get_current_uid_gid())",
    "gid": "((u32)(bpf_get_current_uid_gid() >> 32))",
    "timestamp": "bpf_ktime_get_ns()",
    "cpu": "((s32)bpf_get_smp_processor_id())",
    "ppid": "dt_ppid()",
}
_PROBE_FIELD = {"probeprov": "prov", "probemod": "mod", "probefunc": "func", "probename": "name"}


@dataclass
class FunctionSpec:
    """One generated BPF function and what the runtime must do for it."""

    name: str
    binding: Binding
    clauses: list[int]
    selector_map: Optional[str] = None
    # selector value -> (program-local probe index, clause bit mask)
    selector_entries: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class StrVal:
    """A string expression: a compile-time literal, or a buffer `ptr` of `size` bytes."""

    size: int
    lit: Optional[bytes] = None
    ptr: str = ""
    comm: bool = False  # the current task's comm, fetched straight into its destination


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
                                f"one attachment ({binding.attach.describe()})")
        self.spec = FunctionSpec(fname, binding, [c.index for c in self.clauses])

    # -- function ----------------------------------------------------------------------

    def emit(self) -> FunctionSpec:
        w, b = self.w, self.b
        w.comment(f"{b.attach.describe()}: " + ", ".join(p.description for p in b.probes[:4])
                  + (f" (+{len(b.probes) - 4} more)" if len(b.probes) > 4 else ""))
        with w.block(f"int {self.fname}({b.ctx_decl})"):
            w.lines(b.prologue)
            self.emit_selection()
            if self.checked.uses_exit and not b.runs_after_exit:
                w.line("if (dt_exiting())")
                w.line("\treturn 0;")
            used = self.used_names()
            if self.single is None and used & (set(PROBE_STRINGS) | {"id"}):
                w.line("struct dt_probedesc *dt_pd = dtnb_probes.lookup(&dt_pidx);")
                w.line("if (!dt_pd)")
                w.line("\treturn 0;")
            for i in range(10):
                if f"arg{i}" in used:
                    expr = b.arg_exprs[i] if i < len(b.arg_exprs) else "0"
                    w.line(f"s64 dt_arg{i} = (s64)({expr});")
            for bit, c in enumerate(self.clauses):
                self.emit_clause(c, bit)
            w.line("return 0;")
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
        """`do { ... } while (0)`: every way out of a clause (not enabled on this probe,
        predicate false, no room for its record) is a `break`."""
        w = self.w
        ids = {p.id for p in self.b.probes}
        covers_all = ids <= {p.id for p in c.probes}
        heads = ", ".join(p.text for p in c.clause.probes)
        w.comment(f"clause {c.index + 1} ({heads}) at line {c.clause.span.line}")
        with w.block("do", tail="} while (0);"):
            if not covers_all:
                w.line(f"if (!(dt_mask & {1 << bit}ULL))")
                w.line("\tbreak;")
            if c.clause.predicate is not None:
                w.line(f"if (!({self.int_expr(c.clause.predicate)}))")
                w.line("\tbreak;")
            self.emit_body(c)

    def emit_body(self, c: CheckedClause) -> None:
        w = self.w
        rec = self.res.records.get(c.index)
        if rec is None:
            for stmt in c.clause.body:
                self.stmt(stmt, None)
            return
        w.line(f"struct {rec.struct_name} *dt_rec = dtnb_rb.ringbuf_reserve(sizeof(struct "
               f"{rec.struct_name}));")
        w.line("if (!dt_rec) {")
        w.line("\tdt_drop(DT_DROP_REC);")
        w.line("\tbreak;")
        w.line("}")
        w.line(f"dt_rec->epid = {rec.epid};")
        w.line("dt_rec->cpu = bpf_get_smp_processor_id();")
        w.line("dt_rec->pidx = dt_pidx;")
        w.line("dt_rec->pad = 0;")
        for stmt in c.clause.body:
            self.stmt(stmt, rec)
        w.line("dtnb_rb.ringbuf_submit(dt_rec, 0);")

    def stmt(self, stmt: ast.Stmt, rec) -> None:
        if isinstance(stmt, ast.Block):
            for s in stmt.body:
                self.stmt(s, rec)
            return
        assert isinstance(stmt, ast.ExprStmt)
        e = stmt.expr
        if isinstance(e, ast.Assign):
            target = e.target
            name = target.base.name if isinstance(target, ast.Index) else target.name
            keys = target.indexes if isinstance(target, ast.Index) else []
            self.aggregate(self.res.aggs[name], keys, e.value)
        elif isinstance(e, ast.Call):
            self.action(e, rec)

    def action(self, call: ast.Call, rec) -> None:
        w = self.w
        if call.name in ("printf", "trace", "exit"):
            args = call.args[1:] if call.name == "printf" else call.args
            for a in args:
                f = rec.fields[record_slot(self.res, a)]
                if f.is_string:
                    self.store_string(self.str_val(a), f"dt_rec->{f.name}", f.size)
                else:
                    w.line(f"dt_rec->{f.name} = ({'s64' if f.signed else 'u64'})"
                           f"({self.int_expr(a)});")
            if call.name == "exit":
                w.line("dt_set_exiting();")

    def aggregate(self, agg: AggLayout, keys: list[ast.Expr], call: ast.Call) -> None:
        w = self.w
        with w.block(""):
            if agg.keyless:
                w.line("u32 dt_k = 0;")
                key = "&dt_k"
            else:
                w.line(f"struct {agg.key_struct} dt_k;")
                w.line("__builtin_memset(&dt_k, 0, sizeof(dt_k));")
                for f, k in zip(agg.key_fields, keys):
                    if f.is_string:
                        self.store_string(self.str_val(k), f"dt_k.{f.name}", f.size)
                    else:
                        w.line(f"dt_k.{f.name} = ({'s64' if f.signed else 'u64'})"
                               f"({self.int_expr(k)});")
                key = "&dt_k"
            arg = f"(s64)({self.int_expr(call.args[0])})" if call.args else ""
            if arg:
                w.line(f"s64 dt_x = {arg};")
            w.line(f"struct {agg.value_struct} *dt_v = {agg.map_name}.lookup({key});")
            if not agg.keyless:
                with w.block("if (!dt_v)"):
                    if agg.value_size > 128:
                        w.line("u32 dt_z = 0;")
                        w.line("void *dt_zero = dtnb_zero.lookup(&dt_z);")
                        w.line("if (dt_zero)")
                        w.line(f"\t{agg.map_name}.insert({key}, dt_zero);")
                    else:
                        w.line(f"struct {agg.value_struct} dt_init = {{}};")
                        w.line(f"{agg.map_name}.insert({key}, &dt_init);")
                    w.line(f"dt_v = {agg.map_name}.lookup({key});")
            w.line("if (!dt_v) {")
            w.line("\tdt_drop(DT_DROP_AGG);")
            w.line("} else {")
            w.lines("\t" + s for s in _AGG_UPDATE[agg.info.func])
            w.line("}")

    # -- expressions -------------------------------------------------------------------

    def int_expr(self, e: ast.Expr) -> str:
        t = e.ty
        if isinstance(e, ast.IntLit):
            return f"{e.value}ULL" if e.value > 0x7FFFFFFFFFFFFFFF or (
                isinstance(t, IntType) and not t.signed) else f"{e.value}LL"
        if isinstance(e, ast.CharLit):
            return str(e.value)
        if isinstance(e, ast.MacroVar):
            return f"{int(e.resolved)}LL"  # type: ignore[attr-defined]
        if isinstance(e, ast.Ident):
            return self.builtin(e)
        if isinstance(e, ast.Cast):
            return f"(({t.c_type()})({self.int_expr(e.operand)}))"
        if isinstance(e, ast.Unary):
            inner = self.int_expr(e.operand)
            if e.op == "!":
                return f"(!({inner}))"
            if e.op == "+":
                return f"(({t.c_type()})({inner}))"
            return f"({e.op}({t.c_type()})({inner}))"
        if isinstance(e, ast.Ternary):
            return (f"(({self.int_expr(e.cond)}) ? ({t.c_type()})({self.int_expr(e.then)}) : "
                    f"({t.c_type()})({self.int_expr(e.other)}))")
        if isinstance(e, ast.Binary):
            return self.binary(e)
        raise DCompileError(f"cannot generate code for {type(e).__name__}", e.span)

    def builtin(self, e: ast.Ident) -> str:
        n = e.name
        if n.startswith("arg") and n[3:].isdigit():
            return f"dt_arg{n[3:]}"
        if n == "errno":
            return f"((s32)({self.b.builtins['errno']}))" if "errno" in self.b.builtins else "0"
        if n == "id":
            return str(self.single.id) if self.single else "dt_pd->id"
        if n in _INT_BUILTIN_C:
            return _INT_BUILTIN_C[n]
        raise DCompileError(f"cannot generate code for variable '{n}'", e.span)

    def binary(self, e: ast.Binary) -> str:
        op = e.op
        lt, rt = e.left.ty, e.right.ty
        if op in ("==", "!=", "<", "<=", ">", ">=") and isinstance(lt, StringType):
            return self.str_compare(e)
        a, b = self.int_expr(e.left), self.int_expr(e.right)
        if op == "&&":
            return f"(!!({a}) && !!({b}))"
        if op == "||":
            return f"(!!({a}) || !!({b}))"
        if op == "^^":
            return f"(!!({a}) != !!({b}))"
        if op in ("==", "!=", "<", "<=", ">", ">="):
            p = promote(lt, rt).c_type()
            return f"(({p})({a}) {op} ({p})({b}))"
        t = e.ty
        ct = t.c_type()
        if op in ("/", "%") and t.signed:
            fn = "dt_sdiv" if op == "/" else "dt_smod"
            return f"(({ct}){fn}((s64)({a}), (s64)({b})))"
        if op in ("<<", ">>"):
            return f"(({ct})(({ct})({a}) {op} (({b}) & {t.bits - 1})))"
        return f"(({ct})(({ct})({a}) {op} ({ct})({b})))"

    def str_val(self, e: ast.Expr) -> StrVal:
        t = e.ty
        if isinstance(e, ast.StrLit):
            return StrVal(t.size, lit=e.value.encode())
        if isinstance(e, ast.MacroVar):
            return StrVal(t.size, lit=str(e.resolved).encode())  # type: ignore[attr-defined]
        if isinstance(e, ast.Ident) and e.name == "execname":
            return StrVal(16, comm=True)
        if isinstance(e, ast.Ident) and e.name in _PROBE_FIELD:
            if self.single is not None:
                p = self.single
                value = {"probeprov": p.provider, "probemod": p.module,
                         "probefunc": p.function, "probename": p.name}[e.name]
                return StrVal(t.size, lit=value.encode())
            return StrVal(t.size, ptr=f"dt_pd->{_PROBE_FIELD[e.name]}")
        raise DCompileError(f"cannot generate code for a string {type(e).__name__}", e.span)

    def materialize(self, v: StrVal) -> str:
        """A pointer to the string's bytes in BPF-readable memory."""
        if v.ptr:
            return v.ptr
        tmp = self.w.temp("s")
        self.w.line(f"char {tmp}[{(v.size + 7) // 8 * 8}];")
        self.w.line(f"__builtin_memset({tmp}, 0, sizeof({tmp}));")
        self.store_string(v, tmp, (v.size + 7) // 8 * 8)
        return tmp

    def store_string(self, v: StrVal, dst: str, size: int) -> None:
        w = self.w
        if v.comm:
            w.line(f"bpf_get_current_comm(&{dst}, {min(size, 16)});")
        elif v.lit is not None:
            data = v.lit[: size - 1] + b"\0"
            data += b"\0" * (-len(data) % 8)
            for off in range(0, len(data), 8):
                word = int.from_bytes(data[off:off + 8], "little")
                w.line(f"*(u64 *)&{dst}[{off}] = {word:#x}ULL;")
        else:
            n = min(size, v.size)
            if n <= 64:
                w.line(f"__builtin_memcpy(&{dst}, {v.ptr}, {n});")
            else:
                w.line(f"bpf_probe_read_kernel_str(&{dst}, {n}, {v.ptr});")
            if v.size > size:
                w.line(f"{dst}[{size - 1}] = 0;")

    def str_compare(self, e: ast.Binary) -> str:
        a, b = self.str_val(e.left), self.str_val(e.right)
        if e.op in ("==", "!=") and (a.lit is not None or b.lit is not None):
            lit, other = (a, b) if a.lit is not None else (b, a)
            if other.lit is not None:
                same = lit.lit == other.lit
                return "1" if same == (e.op == "==") else "0"
            ptr = self.materialize(other)
            text = lit.lit + b"\0"
            if len(text) > other.size:
                return "0" if e.op == "==" else "1"
            eq = " && ".join(f"{ptr}[{i}] == {c}" for i, c in enumerate(text))
            return f"({eq})" if e.op == "==" else f"(!({eq}))"
        pa, pb = self.materialize(a), self.materialize(b)
        return f"(dt_strcmp({pa}, {pb}, {min(a.size, b.size)}) {e.op} 0)"


_AGG_UPDATE = {
    "count": ["dt_v->v += 1;"],
    "sum": ["dt_v->v += dt_x;"],
    "min": ["if (dt_v->n == 0 || dt_x < dt_v->v)", "\tdt_v->v = dt_x;", "dt_v->n += 1;"],
    "max": ["if (dt_v->n == 0 || dt_x > dt_v->v)", "\tdt_v->v = dt_x;", "dt_v->n += 1;"],
    "avg": ["dt_v->n += 1;", "dt_v->v += dt_x;"],
    "quantize": ["dt_v->b[dt_quantize_bucket(dt_x) & 127] += 1;"],
}

# The record header, REC_HEADER (16) bytes: which clause, CPU, and program-local probe.
HEADER_FIELDS = ("u32 epid;", "u32 cpu;", "u32 pidx;", "u32 pad;")
