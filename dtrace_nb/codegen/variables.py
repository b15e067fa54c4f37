"""D variables as BPF C: reads, assignments and ++/-- of globals, clause-locals,
thread-locals and associative arrays. Part of the expression emitter (expressions.py).

Globals are fields of one array-map value (`dt_g`), clause-locals of a per-CPU one
(`dt_t`); thread-locals and associative arrays have a hash map each. Reading an absent one
gives 0 or "", and assigning 0 or "" deletes it, as in DTrace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dtrace_nb.codegen.cwriter import if_stmt, stmt_expr
from dtrace_nb.codegen.function import FunctionState
from dtrace_nb.codegen.layout import VarLayout
from dtrace_nb.codegen.string_exprs import StrVal
from dtrace_nb.codegen.struct_exprs import (assign_member, assign_struct, incdec_member,
                                            is_declared_member)
from dtrace_nb.lang import ast
from dtrace_nb.lang.check import Variable
from dtrace_nb.lang.decltypes import StructType
from dtrace_nb.lang.types import DType, promote


class VariableExprs:
    """The variable half of ExprEmitter."""

    fs: FunctionState

    # the integer and string halves (expressions.py, string_exprs.py), declared for type
    # checkers only: at run time the instance is an ExprEmitter, which has them
    if TYPE_CHECKING:
        def int_expr(self, e: ast.Expr) -> str: ...

        def wide(self, e: ast.Expr) -> str: ...

        def ty(self, e: ast.Expr) -> DType: ...

        def arith(self, op: str, a: str, b: str, lt: DType, rt: DType, t: DType) -> str: ...

        def str_val(self, e: ast.Expr) -> StrVal: ...

        def str_or_null(self, e: ast.Expr) -> StrVal: ...

        def store_string(self, v: StrVal, dst: str, size: int) -> list[str]: ...

    # -- places -------------------------------------------------------------------------

    def layout(self, var: Variable) -> VarLayout:
        return self.fs.res.vars[(var.scope, var.name)]

    def var_place(self, vl: VarLayout) -> str:
        if vl.storage == "global":
            self.fs.uses.add("globals")
            return f"dt_g->{vl.field.name}"
        self.fs.uses.add("this")
        return f"dt_t->{vl.field.name}"

    def dyn_key(self, vl: VarLayout, e: ast.Expr) -> tuple[list[str], str]:
        """(statements, key pointer) for a thread-local or associative variable."""
        k = self.fs.tmp("k")
        thread = self.fs.binding.thread  # the probe's thread, when not the current one
        thread_key = thread.thread_key() if thread is not None else "bpf_get_current_pid_tgid()"
        if vl.storage == "self" and not vl.var.is_assoc:
            return [f"u64 {k} = {thread_key};"], f"&{k}"
        size = sum(f.size for f in vl.key_fields)
        # zeroed whole: string keys compare as D strings (nothing after the NUL differs)
        stmts = [f"struct {vl.key_struct} *{k} = (void *){self.fs.alloc(size)};",
                 f"__builtin_memset({k}, 0, sizeof(*{k}));"]
        fields = vl.key_fields
        if vl.storage == "self":  # a thread-local array: keyed by the thread first
            stmts.append(f"{k}->{fields[0].name} = {thread_key};")
            fields = fields[1:]
        assert isinstance(e, ast.Index)
        for f, x in zip(fields, e.indexes):
            if f.is_string:
                stmts += self.store_string(self.str_val(x), f"{k}->{f.name}", f.size)
            else:
                stmts.append(f"{k}->{f.name} = ({'s64' if f.signed else 'u64'})"
                             f"({self.int_expr(x)});")
        return stmts, k

    # -- reads --------------------------------------------------------------------------

    def read_var(self, var: Variable, e: ast.Expr) -> str:
        vl = self.layout(var)
        ct = var.type.c_type()
        if vl.storage in ("global", "this"):
            return f"(({ct}){self.var_place(vl)})"
        stmts, key = self.dyn_key(vl, e)
        p = self.fs.tmp("p")
        return stmt_expr(stmts + [f"struct {vl.value_struct} *{p} = {vl.map_name}.lookup({key});"],
                         f"(({ct})({p} ? {p}->v : 0))")

    def dyn_string(self, e: ast.Expr) -> StrVal:
        var = self.fs.ann.vars[e]
        vl = self.layout(var)
        if vl.storage in ("global", "this"):
            return StrVal(vl.field.size, ptr=self.var_place(vl))
        stmts, key = self.dyn_key(vl, e)
        self.fs.uses.add("scratch")
        p, q = self.fs.tmp("p"), self.fs.tmp("sp")
        return StrVal(vl.field.size, ptr=q, pre=stmts + [
            f"struct {vl.value_struct} *{p} = {vl.map_name}.lookup({key});",
            f"char *{q} = {p} ? {p}->v : dt_s;"])

    # -- writes -------------------------------------------------------------------------

    def assign(self, e: ast.Assign) -> str:
        target = e.target
        if is_declared_member(self, target):
            return assign_member(self, e)
        var = self.fs.ann.vars[target]
        vl = self.layout(var)
        if isinstance(var.type, StructType):
            return assign_struct(self, e)
        if var.type.is_string:  # a string, or NULL (see str_or_null)
            return self.assign_string(vl, target, self.str_or_null(e.value))
        ct = var.type.c_type()
        if e.op == "=":
            value = self.wide(e.value)
        else:
            op = e.op[:-1]
            vt = self.ty(e.value)
            t = promote(var.type, vt) if op not in ("<<", ">>") else var.type
            value = self.arith(op, self.int_expr(target), self.wide(e.value), var.type,
                               vt, t)
        return self.store_int(vl, target, ct, value)

    def assign_string_value(self, e: ast.Assign) -> StrVal:
        """A string assignment used as a value: the variable's bytes once it is done."""
        vl = self.layout(self.fs.ann.vars[e.target])
        if vl.storage in ("global", "this"):
            return StrVal(vl.field.size, ptr=self.var_place(vl), pre=[f"(void){self.assign(e)};"])
        p = self.fs.tmp("sp")
        return StrVal(vl.field.size, ptr=p, pre=[f"char *{p} = (char *)({self.assign(e)});"])

    def store_int(self, vl: VarLayout, target: ast.Expr, ct: str, value: str) -> str:
        v = self.fs.tmp("v")
        if vl.storage in ("global", "this"):
            return stmt_expr([f"{ct} {v} = ({ct})({value});", f"{self.var_place(vl)} = {v};"], v)
        stmts, key = self.dyn_key(vl, target)
        nv = self.fs.tmp("nv")
        return stmt_expr([f"{ct} {v} = ({ct})({value});", *stmts, if_stmt(
            v, [f"struct {vl.value_struct} {nv} = {{}};", f"{nv}.v = {v};",
                if_stmt(f"{vl.map_name}.update({key}, &{nv})", ["dt_drop(DT_DROP_DYN);"])],
            [f"{vl.map_name}.delete({key});"])], v)

    def incdec(self, target: ast.Expr, op: str, post: bool) -> str:
        if is_declared_member(self, target):
            return incdec_member(self, target, op, post)
        var = self.fs.ann.vars[target]
        vl = self.layout(var)
        ct = var.type.c_type()
        old = self.fs.tmp("o")
        sign = "+" if op == "++" else "-"
        stored = self.store_int(vl, target, ct, f"{old} {sign} 1")
        return stmt_expr([f"{ct} {old} = {self.read_var(var, target)};", f"(void){stored};"],
                         old if post else f"(({ct})({old} {sign} 1))")

    def assign_string(self, vl: VarLayout, target: ast.Expr, v: StrVal) -> str:
        size = vl.field.size
        if vl.storage in ("global", "this"):
            place = self.var_place(vl)
            return stmt_expr(self.store_string(v, place, size), f"(u64){place}")
        stmts, key = self.dyn_key(vl, target)
        buf = self.fs.alloc(size)
        val = self.fs.tmp("sv")
        store = self.store_string(v, f"{val}->v", size)
        return stmt_expr([f"struct {vl.value_struct} *{val} = (void *){buf};", *store, *stmts,
                          if_stmt(f"{val}->v[0]",
                                  [if_stmt(f"{vl.map_name}.update({key}, {val})",
                                           ["dt_drop(DT_DROP_DYN);"])],
                                  [f"{vl.map_name}.delete({key});"])],
                         f"(u64){val}->v")
