"""Emission of one BPF function per provider Binding.

A function runs the binding's prologue, works out which probe fired (the binding's
Selector, through a small map the runtime fills), then runs every clause enabled on that
probe in program order: predicate, then statements. Nothing here knows what a provider's
C means.

Every way out of a clause is a `goto`: to its end (not enabled on this probe, predicate
false, no room for its record) or to its fault handler, which discards the clause's record
and reports the fault as DTrace does (an error record the consumer turns into the ERROR
probe and the "error on enabled probe" message). Each clause is a labelled stretch of the
function's body; the only local it declares at that level is its record pointer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.codegen.actions import KERNEL_ACTIONS, ActionEmitter
from dtrace_nb.codegen.cwriter import CWriter, if_stmt
from dtrace_nb.codegen.expressions import ExprEmitter
from dtrace_nb.codegen.function import FunctionState
from dtrace_nb.codegen.layout import RecordLayout, Resources
from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import PROBE_STRINGS
from dtrace_nb.lang.check import CheckedClause, CheckedProgram
from dtrace_nb.probes import Binding

# Each clause is emitted again in the function of every binding whose probes enable it,
# with that binding's own C for argN (dtrace-utils instead compiles a clause once and has
# each probe's trampoline copy its arguments into shared machine state, then call the
# clauses: dt_cg_tramp_call_clauses). Inlining keeps a function self-contained: no
# BPF-to-BPF calls, an argument is read by whatever C its provider wrote (a register, a
# record field) where it is used, and where a binding serves one probe its strings and id
# are constants the verifier sees. The price is size: a clause on N bindings is compiled
# and verified N times, and a function grows with its clauses. Which clauses run on the
# probe that fired is a u64 bit mask (struct dt_sel, filled by the runtime), one bit a
# clause: hence at most 64 clauses on one binding.
MAX_CLAUSES_PER_BINDING = 64
ARRAY_SELECTOR_LIMIT = 4096


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
    uses: set = field(default_factory=set)  # see FunctionState.uses
    uses_errors: bool = False
    reads_probe_table: bool = False  # looks up its probe's description in dtnb_probes


class BindingEmitter:
    def __init__(self, w: CWriter, checked: CheckedProgram, res: Resources, binding: Binding,
                 fname: str, probe_index: dict[int, int], activity_gate: bool = False):
        self.w = w
        # the program has a BEGIN or several attachments: clauses wait until BEGIN is through
        self.activity_gate = activity_gate
        self.checked = checked
        self.b = binding
        self.fname = fname
        self.probe_index = probe_index
        ids = {p.id for p in binding.probes}
        self.clauses = [c for c in checked.clauses if ids & {p.id for p in c.probes}]
        if len(self.clauses) > MAX_CLAUSES_PER_BINDING:
            raise DCompileError(f"more than {MAX_CLAUSES_PER_BINDING} clauses enable probes of "
                                f"one attachment ({binding.attach.describe()})",
                                self.clauses[MAX_CLAUSES_PER_BINDING].clause.span,
                                hint="merge clauses on the same probe (if/else and "
                                     "predicates inside one clause)")
        self.spec = FunctionSpec(fname, binding, [c.index for c in self.clauses])
        single = binding.probes[0] if len(binding.probes) == 1 else None
        self.fs = FunctionState(checked, res, binding, single)
        self.x = ExprEmitter(self.fs)
        self.body = CWriter()  # the clauses, written before the preamble that they decide
        self.actions = ActionEmitter(self.body, self.fs, self.x)
        self.uses_errors = False

    # -- function ----------------------------------------------------------------------

    def emit(self) -> FunctionSpec:
        w, b, fs = self.w, self.b, self.fs
        for bit, c in enumerate(self.clauses):
            self.emit_clause(c, bit)
        w.comment(f"{b.attach.describe()}: " + ", ".join(p.description for p in b.probes[:4])
                  + (f" (+{len(b.probes) - 4} more)" if len(b.probes) > 4 else ""))
        with w.block(f"int {self.fname}({b.ctx_decl})"):
            w.lines(b.prologue)
            self.emit_selection()
            if b.runs_after_exit:
                pass  # END, ERROR: run by the consumer whatever the activity
            elif b.runs_before_begin:
                if self.checked.uses_exit:  # a second BEGIN after an exit() in the first
                    w.line(if_stmt("dt_activity() == DT_EXITING", ["return 0;"]))
            elif self.activity_gate or self.checked.uses_exit:
                w.line(if_stmt("dt_activity() != DT_ACTIVE", ["return 0;"]))
            w.line("u32 dt_zero = 0;")
            if "ts" in fs.uses:
                w.line("u64 dt_ts = bpf_ktime_get_ns();")
            used = self.used_names()
            if fs.single is None and used & (set(PROBE_STRINGS) | {"id"}):
                self.spec.reads_probe_table = True
                self.lookup("struct dt_probedesc *dt_pd", "dtnb_probes.lookup(&dt_pidx)")
            if "globals" in fs.uses:
                self.lookup("struct dt_globals *dt_g", "dtnb_globals.lookup(&dt_zero)")
            if "this" in fs.uses:
                self.lookup("struct dt_this *dt_t", "dtnb_this.lookup(&dt_zero)")
                w.line("__builtin_memset(dt_t, 0, sizeof(*dt_t));")
            if "scratch" in fs.uses:
                self.lookup("char *dt_s", "(char *)dtnb_scratch.lookup(&dt_zero)")
            if "fault" in fs.uses:
                w.line("u32 dt_flt = 0, dt_flt_act = 0;")
                w.line("u64 dt_flt_addr = 0;")
            for i in range(10):
                if f"arg{i}" in used or i in fs.args_used:
                    expr = b.arg_exprs[i] if i < len(b.arg_exprs) else "0"
                    w.line(f"s64 dt_arg{i} = (s64)({expr});")
            w.insert(self.body)
            w.line("return 0;")
        self.spec.scratch_size = fs.scratch_top if "scratch" in fs.uses else 0
        self.spec.uses = set(fs.uses)
        self.spec.uses_errors = self.uses_errors
        return self.spec

    def lookup(self, decl: str, value: str) -> None:
        """A map value the function cannot run without (absent only if the map is broken)."""
        name = decl.split("*")[-1].strip()
        self.w.line(f"{decl} = {value};")
        self.w.line(if_stmt(f"!{name}", ["return 0;"]))

    def used_names(self) -> set[str]:
        names = set()
        for c in self.clauses:
            for n in ast.walk(c.clause):
                if isinstance(n, ast.Ident):
                    names.add(n.name)
        return names

    def emit_selection(self) -> None:
        """Declare dt_pidx (and dt_mask when a clause covers only some of the probes)."""
        w, b, single = self.w, self.b, self.fs.single
        if b.selector is None:
            if single is None:
                raise DCompileError("internal: a binding serving several probes has no selector")
            w.line(f"const u32 dt_pidx = {self.probe_index[single.id]};")
            return
        if single is not None:
            value = b.selector.values[single.id]
            w.line(if_stmt(f"(u64)({b.selector.expr}) != {value}ULL", ["return 0;"]))
            w.line(f"const u32 dt_pidx = {self.probe_index[single.id]};")
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
        w.line(if_stmt("!dt_sel || !dt_sel->mask", ["return 0;"]))
        w.line("u32 dt_pidx = dt_sel->pidx;")
        w.line("u64 dt_mask = dt_sel->mask;")

    # -- clauses -----------------------------------------------------------------------

    def emit_clause(self, c: CheckedClause, bit: int) -> None:
        w, fs = self.body, self.fs
        fs.clause, fs.action_no = c, 0
        n = c.index
        ids = {p.id for p in self.b.probes}
        covers_all = ids <= {p.id for p in c.probes}
        heads = ", ".join(p.text for p in c.clause.probes)
        rec = fs.rec = fs.res.records.get(n)
        w.line()
        w.comment(f"clause {n + 1} ({heads}) at line {c.clause.span.line}")
        if rec is not None:
            w.line(f"struct {rec.struct_name} *{fs.rec_var} = 0;")
        if not covers_all:
            w.line(if_stmt(f"!(dt_mask & {1 << bit}ULL)", [f"goto dt_end_{n};"]))
        if c.clause.predicate is not None:
            fs.in_predicate = True
            cond = self.x.wide(c.clause.predicate)
            fs.in_predicate = False
            w.line(if_stmt(f"!({cond})", [f"goto dt_end_{n};"]))
        if rec is not None:
            self.reserve(rec)
        self.block(c.clause.body)
        if rec is not None:
            self.submit()
        if n in fs.faulted:
            w.line(f"goto dt_end_{n};")
            w.line(f"dt_fault_{n}:")
            if rec is not None:
                w.line(if_stmt(fs.rec_var, [f"dtnb_rb.ringbuf_discard({fs.rec_var}, 0);"]))
            w.line(f"dt_error({rec.epid if rec else n + 1}, dt_pidx, dt_flt, dt_flt_addr, "
                   "dt_flt_act);")
            self.uses_errors = True
        w.line(f"dt_end_{n}: ;")

    def reserve(self, rec: RecordLayout) -> None:
        w, r = self.body, self.fs.rec_var
        w.line(f"{r} = dtnb_rb.ringbuf_reserve(sizeof(struct {rec.struct_name}));")
        w.line(if_stmt(f"!{r}", ["dt_drop(DT_DROP_REC);", f"goto dt_end_{rec.clause};"]))
        w.line(f"{r}->epid = {rec.epid};")
        w.line(f"{r}->cpu = bpf_get_smp_processor_id();")
        w.line(f"{r}->pidx = dt_pidx;")
        w.line(f"{r}->spec = 0;")
        w.line(f"{r}->mask = 0;")

    def submit(self) -> None:
        fs = self.fs
        assert fs.clause is not None
        r = fs.rec_var
        if fs.clause.speculative:
            # data for speculation 0 (none available) is dropped, as in DTrace
            self.body.line(if_stmt(f"{r}->spec == 0", [
                f"dtnb_rb.ringbuf_discard({r}, 0);", f"{r} = 0;",
                f"goto dt_end_{fs.clause.index};"]))
        self.body.line(f"dtnb_rb.ringbuf_submit({r}, 0);")
        self.body.line(f"{r} = 0;")

    # -- statements --------------------------------------------------------------------

    def block(self, body: list) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, stmt: ast.Stmt) -> None:
        w, fs = self.body, self.fs
        if isinstance(stmt, ast.Block):
            self.block(stmt.body)
            return
        if isinstance(stmt, ast.If):
            fs.action_no += 1
            with w.block(f"if ({self.x.wide(stmt.cond)})"):
                self.block(stmt.then)
            if stmt.other:
                with w.block("else"):
                    self.block(stmt.other)
            return
        assert isinstance(stmt, ast.ExprStmt)
        fs.action_no += 1
        e = stmt.expr
        if isinstance(e, ast.Assign) and _is_agg(e.target):
            target = e.target
            name = target.base.name if isinstance(target, ast.Index) else target.name
            keys = target.indexes if isinstance(target, ast.Index) else []
            assert isinstance(e.value, ast.Call)
            self.actions.aggregate(fs.res.aggs[name], keys, e.value)
        elif isinstance(e, ast.Call) and id(e) in fs.res.action_of:
            self.actions.record_action(e)
        elif isinstance(e, ast.Call) and e.name in KERNEL_ACTIONS:
            self.actions.kernel_action(e)
        else:
            w.line(f"(void)({self.x.expr_stmt(e)});")


def _is_agg(t: ast.Expr) -> bool:
    return isinstance(t, ast.AggRef) or (isinstance(t, ast.Index)
                                         and isinstance(t.base, ast.AggRef))


__all__ = ["BindingEmitter", "FunctionSpec", "ARRAY_SELECTOR_LIMIT", "MAX_CLAUSES_PER_BINDING"]
