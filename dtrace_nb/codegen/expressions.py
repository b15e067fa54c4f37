"""D expressions as BPF C.

Integers become C expressions of the checked type; strings become `StrVal`s (a literal, a
pointer to a buffer in BPF-readable memory, or the current task's comm) that are copied,
compared or passed to the string subroutines of strings.h. Anything needing statements is
a GNU statement expression `({ ...; value; })`.

Variables: globals are fields of one array-map value (`dt_g`), clause-locals of a per-CPU
one (`dt_t`), thread-locals and associative arrays have a hash map each; reading an absent
one gives 0 or "", and assigning 0 or "" deletes it, as in DTrace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from dtrace_nb.codegen.layout import VarLayout
from dtrace_nb.errors import DCompileError
from dtrace_nb.faults import FLT_BADADDR, FLT_DIVZERO, FLT_ILLOP
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import PROBE_STRINGS
from dtrace_nb.lang.check import const_value
from dtrace_nb.lang.types import IntType, PtrType, StringType, TranslatedType, promote

if TYPE_CHECKING:
    from dtrace_nb.codegen.emit import BindingEmitter

_INT_BUILTIN_C = {
    "pid": "((s32)(bpf_get_current_pid_tgid() >> 32))",
    "tid": "((s32)bpf_get_current_pid_tgid())",
    "uid": "((u32)bpf_get_current_uid_gid())",
    "gid": "((u32)(bpf_get_current_uid_gid() >> 32))",
    "timestamp": "bpf_ktime_get_ns()",
    "walltimestamp": "(bpf_ktime_get_ns() + dt_walltime_offset())",
    "vtimestamp": "dt_vtimestamp()",
    "cpu": "((s32)bpf_get_smp_processor_id())",
    "ppid": "dt_ppid()",
    "curthread": "bpf_get_current_task()",
    "stackdepth": "dt_stackdepth(ctx, 0)",
    "ustackdepth": "dt_stackdepth(ctx, BPF_F_USER_STACK)",
}
# built-ins the prelude computes from task_struct offsets (the runtime passes them as -D
# flags, read from BTF: only for programs that use them, FunctionSpec.uses 'task')
_TASK_BUILTINS = frozenset(("ppid", "vtimestamp"))
# $target and $pid change with every run: the session writes them into dtnb_state
_SESSION_MACROS = {"target": "DT_STATE_TARGET", "pid": "DT_STATE_PID"}
_PROBE_FIELD = {"probeprov": "prov", "probemod": "mod", "probefunc": "func", "probename": "name"}


@dataclass
class StrVal:
    """A string expression: a compile-time literal, or a buffer `ptr` of `size` bytes."""

    size: int
    lit: Optional[bytes] = None
    ptr: str = ""
    comm: bool = False  # the current task's comm, fetched straight into its destination
    pre: str = ""  # statements to run before `ptr` is valid


def sx(stmts: str, value: str) -> str:
    """A GNU statement expression."""
    return f"({{ {stmts} {value}; }})"


class ExprEmitter:
    def __init__(self, fn: "BindingEmitter"):
        self.fn = fn
        self.args_used: set[int] = set()
        self._tmp = 0

    @property
    def res(self):
        return self.fn.res

    def tmp(self, prefix: str = "t") -> str:
        self._tmp += 1
        return f"dt_{prefix}{self._tmp}"

    # -- integers ----------------------------------------------------------------------

    def int_expr(self, e: ast.Expr) -> str:
        t = e.ty
        if isinstance(e, ast.IntLit):
            return f"{e.value}ULL" if e.value > 0x7FFFFFFFFFFFFFFF or (
                isinstance(t, IntType) and not t.signed) else f"{e.value}LL"
        if isinstance(e, ast.CharLit):
            return str(e.value)
        if isinstance(e, ast.MacroVar):
            if e.name in _SESSION_MACROS:  # differ from run to run: read, not compiled in
                return f"((s64)dt_state({_SESSION_MACROS[e.name]}))"
            return f"{int(e.resolved)}LL"  # type: ignore[attr-defined]
        if isinstance(e, ast.SizeOf):
            return f"{e.size}ULL"  # type: ignore[attr-defined]
        if isinstance(e, ast.Ident):
            if hasattr(e, "var"):
                return self.read_var(e.var, e)  # type: ignore[attr-defined]
            return self.builtin(e)
        if isinstance(e, ast.ScopedVar):
            return self.read_var(e.var, e)  # type: ignore[attr-defined]
        if isinstance(e, ast.Index):
            if hasattr(e, "arg"):
                return self.arg(e)
            return self.read_var(e.var, e)  # type: ignore[attr-defined]
        if isinstance(e, ast.Member):
            m = e.member  # type: ignore[attr-defined]
            raw = self.int_expr_raw_arg(e.base)
            return f"(({t.c_type()})({m.c_expr.replace('{arg}', raw)}))"
        if isinstance(e, ast.Cast):
            return f"(({t.c_type()})({self.int_expr(e.operand)}))"
        if isinstance(e, ast.Unary):
            return self.unary(e)
        if isinstance(e, ast.Postfix):
            return self.incdec(e.operand, e.op, post=True)
        if isinstance(e, ast.Ternary):
            return (f"(({self.int_expr(e.cond)}) ? ({t.c_type()})({self.int_expr(e.then)}) : "
                    f"({t.c_type()})({self.int_expr(e.other)}))")
        if isinstance(e, ast.Binary):
            return self.binary(e)
        if isinstance(e, ast.Assign):
            return self.assign(e)
        if isinstance(e, ast.Call):
            return self.int_call(e)
        raise DCompileError(f"cannot generate code for {type(e).__name__}", e.span)

    def expr_stmt(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Assign):
            return self.assign(e)
        if isinstance(e, ast.Call) and e.ty is not None and e.ty.is_string:
            v = self.str_val(e)
            return sx(v.pre, "0")
        return self.int_expr(e)

    def arg(self, e: ast.Index) -> str:
        n = e.arg  # type: ignore[attr-defined]
        self.args_used.add(n)
        return f"(({e.ty.c_type()})dt_arg{n})"

    def int_expr_raw_arg(self, base: ast.Expr) -> str:
        if isinstance(base, ast.Index) and hasattr(base, "arg"):
            self.args_used.add(base.arg)  # type: ignore[attr-defined]
            return f"((u64)dt_arg{base.arg})"  # type: ignore[attr-defined]
        raise DCompileError("translated members can only be read from args[N]", base.span)

    def builtin(self, e: ast.Ident) -> str:
        n = e.name
        b = self.fn.b
        if n.startswith("arg") and n[3:].isdigit():
            self.args_used.add(int(n[3:]))
            return f"dt_arg{n[3:]}"
        if n in b.builtins and n != "execname":
            return f"(({e.ty.c_type()})({b.builtins[n]}))"
        if n == "errno":
            return "0"
        if n == "id":
            return str(self.fn.single.id) if self.fn.single else "dt_pd->id"
        if n == "epid":
            rec = self.fn.rec
            return str(rec.epid if rec else self.fn.clause.index + 1)
        if n in _INT_BUILTIN_C:
            if n in _TASK_BUILTINS:
                self.fn.uses.add("task")
            return _INT_BUILTIN_C[n]
        raise DCompileError(f"cannot generate code for variable '{n}'", e.span)

    def unary(self, e: ast.Unary) -> str:
        t = e.ty
        if e.op in ("++pre", "--pre"):
            return self.incdec(e.operand, e.op[:2], post=False)
        if e.op == "*":
            p = self.int_expr(e.operand)
            v, a = self.tmp("d"), self.tmp("a")
            size = t.size if isinstance(t, IntType) else 8
            return sx(f"u64 {a} = (u64)({p}); {t.c_type()} {v} = 0; "
                      f"if (bpf_probe_read_kernel(&{v}, {size}, (void *){a}) < 0) "
                      f"{self.fn.fault(FLT_BADADDR, a)}", f"{v}")
        inner = self.int_expr(e.operand)
        if e.op == "!":
            return f"(!({inner}))"
        if e.op == "+":
            return f"(({t.c_type()})({inner}))"
        return f"(({t.c_type()})({e.op}({t.c_type()})({inner})))"

    def binary(self, e: ast.Binary) -> str:
        op = e.op
        lt, rt = e.left.ty, e.right.ty
        if op == ",":
            return f"((void)({self.expr_stmt(e.left)}), {self.int_expr(e.right)})"
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
        if op in ("+", "-") and isinstance(t, PtrType) and isinstance(lt, PtrType) \
                and lt.target is not None and not isinstance(rt, PtrType):
            return f"(({ct})(({ct})({a}) {op} ({ct})({b}) * {lt.target.size}))"
        if op in ("/", "%"):
            return self.divide(e, a, b, t)
        if op in ("<<", ">>"):
            return f"(({ct})(({ct})({a}) {op} (({b}) & {t.bits - 1})))"
        return f"(({ct})(({ct})({a}) {op} ({ct})({b})))"

    def divide(self, e: ast.Binary, a: str, b: str, t: IntType) -> str:
        ct = t.c_type()
        x, y = self.tmp("n"), self.tmp("q")
        if t.signed:
            fn = "dt_sdiv" if e.op == "/" else "dt_smod"
            value = f"(({ct}){fn}((s64){x}, (s64){y}))"
        else:
            value = f"(({ct})(({ct}){x} {e.op} ({ct}){y}))"
        return sx(f"{ct} {x} = ({ct})({a}); {ct} {y} = ({ct})({b}); "
                  f"if ({y} == 0) {self.fn.fault(FLT_DIVZERO, '0')}", value)

    def int_call(self, e: ast.Call) -> str:
        n = e.name
        a = e.args
        if n == "strlen":
            return f"((u64)dt_strlen({self.operand(a[0])}))"
        if n in ("index", "rindex"):
            start = self.int_expr(a[2]) if len(a) == 3 else ("0" if n == "index" else "-1")
            fn = "dt_index" if n == "index" else "dt_rindex"
            return f"((s32){fn}({self.operand(a[0])}, {self.operand(a[1])}, (s64)({start})))"
        if n == "strtoll":
            base = self.int_expr(a[1]) if len(a) == 2 else "10"
            return f"dt_strtoll({self.operand(a[0])}, (s64)({base}))"
        if n == "rand":
            return "((s32)bpf_get_prandom_u32())"
        if n in ("ntohs", "htons"):
            return f"((u16)__builtin_bswap16((u16)({self.int_expr(a[0])})))"
        if n in ("ntohl", "htonl"):
            return f"((u32)__builtin_bswap32((u32)({self.int_expr(a[0])})))"
        if n in ("ntohll", "htonll"):
            return f"((u64)__builtin_bswap64((u64)({self.int_expr(a[0])})))"
        if n == "speculation":
            self.fn.uses.add("spec")
            return "dt_speculation()"
        if n == "progenyof":
            self.fn.uses.add("task")
            return f"dt_progenyof((s32)({self.int_expr(a[0])}))"
        if n == "copyin":
            size = const_value(a[1])
            buf = self.fn.alloc(size)
            addr, r = self.tmp("a"), self.tmp("c")
            return sx(f"u64 {addr} = (u64)({self.int_expr(a[0])}); "
                      f"if (bpf_probe_read_user({buf}, {size}, (void *){addr}) < 0) "
                      f"{self.fn.fault(FLT_BADADDR, addr)} u64 {r} = (u64){buf};", r)
        raise DCompileError(f"cannot generate code for {n}()", e.span)

    # -- variables -----------------------------------------------------------------------

    def layout(self, var) -> VarLayout:
        return self.res.vars[(var.scope, var.name)]

    def var_place(self, vl: VarLayout) -> str:
        if vl.storage == "global":
            self.fn.uses.add("globals")
            return f"dt_g->{vl.field.name}"
        self.fn.uses.add("this")
        return f"dt_t->{vl.field.name}"

    def dyn_key(self, vl: VarLayout, e: ast.Expr) -> tuple[str, str]:
        """(statements, key pointer) for a thread-local or associative variable."""
        if vl.storage == "self":
            k = self.tmp("k")
            return f"u64 {k} = bpf_get_current_pid_tgid();", f"&{k}"
        size = sum(f.size for f in vl.key_fields)
        k = self.tmp("k")
        stmts = [f"struct {vl.key_struct} *{k} = (void *){self.fn.alloc(size)};",
                 f"__builtin_memset({k}, 0, sizeof(*{k}));"]
        for f, x in zip(vl.key_fields, e.indexes):  # type: ignore[attr-defined]
            if f.is_string:
                stmts.append(self.store_string(self.str_val(x), f"{k}->{f.name}", f.size))
            else:
                stmts.append(f"{k}->{f.name} = ({'s64' if f.signed else 'u64'})"
                             f"({self.int_expr(x)});")
        return " ".join(stmts), k

    def read_var(self, var, e: ast.Expr) -> str:
        vl = self.layout(var)
        ct = var.type.c_type()
        if vl.storage in ("global", "this"):
            return f"(({ct}){self.var_place(vl)})"
        stmts, key = self.dyn_key(vl, e)
        p = self.tmp("p")
        return sx(f"{stmts} struct {vl.value_struct} *{p} = {vl.map_name}.lookup({key});",
                  f"(({ct})({p} ? {p}->v : 0))")

    def assign(self, e: ast.Assign) -> str:
        target = e.target
        var = target.var  # type: ignore[attr-defined]
        vl = self.layout(var)
        if var.type.is_string:
            return self.assign_string(vl, target, self.str_val(e.value))
        ct = var.type.c_type()
        if e.op == "=":
            value = self.int_expr(e.value)
        else:
            op = e.op[:-1]
            fake = ast.Binary(op, target, e.value, span=e.span)
            fake.ty = promote(var.type, e.value.ty) if op not in ("<<", ">>") else var.type
            value = self.binary(fake)
        return self.store_int(vl, target, ct, value)

    def store_int(self, vl: VarLayout, target: ast.Expr, ct: str, value: str) -> str:
        v = self.tmp("v")
        if vl.storage in ("global", "this"):
            return sx(f"{ct} {v} = ({ct})({value}); {self.var_place(vl)} = {v};", v)
        stmts, key = self.dyn_key(vl, target)
        nv = self.tmp("nv")
        return sx(f"{ct} {v} = ({ct})({value}); {stmts} "
                  f"if ({v}) {{ struct {vl.value_struct} {nv} = {{}}; {nv}.v = {v}; "
                  f"if ({vl.map_name}.update({key}, &{nv})) dt_drop(DT_DROP_DYN); }} "
                  f"else {{ {vl.map_name}.delete({key}); }}", v)

    def incdec(self, target: ast.Expr, op: str, post: bool) -> str:
        var = target.var  # type: ignore[attr-defined]
        vl = self.layout(var)
        ct = var.type.c_type()
        old = self.tmp("o")
        sign = "+" if op == "++" else "-"
        stored = self.store_int(vl, target, ct, f"{old} {sign} 1")
        return sx(f"{ct} {old} = {self.read_var(var, target)}; (void){stored};",
                  old if post else f"(({ct})({old} {sign} 1))")

    def assign_string(self, vl: VarLayout, target: ast.Expr, v: StrVal) -> str:
        size = vl.field.size
        if vl.storage in ("global", "this"):
            place = self.var_place(vl)
            return sx(self.store_string(v, place, size), f"(u64){place}")
        stmts, key = self.dyn_key(vl, target)
        buf = self.fn.alloc(size)
        val = self.tmp("sv")
        store = self.store_string(v, f"{val}->v", size)
        return sx(f"struct {vl.value_struct} *{val} = (void *){buf}; "
                  f"{store} {stmts} "
                  f"if ({val}->v[0]) {{ if ({vl.map_name}.update({key}, {val})) "
                  f"dt_drop(DT_DROP_DYN); }} else {{ {vl.map_name}.delete({key}); }}",
                  f"(u64){val}->v")

    # -- strings -----------------------------------------------------------------------

    def str_val(self, e: ast.Expr) -> StrVal:
        t = e.ty
        if isinstance(e, ast.StrLit):
            return StrVal(t.size, lit=e.value.encode())
        if isinstance(e, ast.MacroVar):
            return StrVal(t.size, lit=str(e.resolved).encode())  # type: ignore[attr-defined]
        if isinstance(e, ast.Ident) and hasattr(e, "var"):
            vl = self.layout(e.var)  # type: ignore[attr-defined]
            return StrVal(vl.field.size, ptr=self.var_place(vl))
        if isinstance(e, ast.ScopedVar) or (isinstance(e, ast.Index) and hasattr(e, "var")):
            return self.dyn_string(e)
        if isinstance(e, ast.Ident) and e.name == "execname":
            if "execname" in self.fn.b.builtins:
                return self.kernel_string(self.fn.b.builtins["execname"], 16)
            return StrVal(16, comm=True)
        if isinstance(e, ast.Ident) and e.name in _PROBE_FIELD:
            if self.fn.single is not None:
                p = self.fn.single
                value = {"probeprov": p.provider, "probemod": p.module,
                         "probefunc": p.function, "probename": p.name}[e.name]
                return StrVal(t.size, lit=value.encode())
            return StrVal(t.size, ptr=f"dt_pd->{_PROBE_FIELD[e.name]}")
        if isinstance(e, ast.Index) and hasattr(e, "arg"):
            n = e.arg  # type: ignore[attr-defined]
            self.args_used.add(n)
            return self.kernel_string(f"dt_arg{n}", t.size,
                                      user=getattr(e, "arg_user", False))
        if isinstance(e, ast.Member):
            m = e.member  # type: ignore[attr-defined]
            raw = self.int_expr_raw_arg(e.base)
            return self.kernel_string(m.c_expr.replace("{arg}", raw), t.size)
        if isinstance(e, ast.StringOf):
            if e.operand.ty.is_string:
                return self.str_val(e.operand)
            return self.kernel_string(self.int_expr(e.operand), t.size, checked=True)
        if isinstance(e, ast.Ternary):
            a, b = self.str_val(e.then), self.str_val(e.other)
            pa, pb = self.materialize(a), self.materialize(b)
            return StrVal(max(a.size, b.size), ptr=f"(({self.int_expr(e.cond)}) ? {pa} : {pb})")
        if isinstance(e, ast.Assign):
            var = e.target.var  # type: ignore[attr-defined]
            vl = self.layout(var)
            if vl.storage in ("global", "this"):
                pre = f"(void){self.assign(e)};"
                return StrVal(vl.field.size, ptr=self.var_place(vl), pre=pre)
            p = self.tmp("sp")
            return StrVal(vl.field.size, ptr=p,
                          pre=f"char *{p} = (char *)({self.assign(e)});")
        if isinstance(e, ast.Call):
            return self.str_call(e)
        raise DCompileError(f"cannot generate code for a string {type(e).__name__}", e.span)

    def dyn_string(self, e: ast.Expr) -> StrVal:
        var = e.var  # type: ignore[attr-defined]
        vl = self.layout(var)
        if vl.storage in ("global", "this"):
            return StrVal(vl.field.size, ptr=self.var_place(vl))
        stmts, key = self.dyn_key(vl, e)
        self.fn.uses.add("scratch")
        p, q = self.tmp("p"), self.tmp("sp")
        return StrVal(vl.field.size, ptr=q,
                      pre=f"{stmts} struct {vl.value_struct} *{p} = {vl.map_name}.lookup({key}); "
                          f"char *{q} = {p} ? {p}->v : dt_s;")

    def kernel_string(self, addr: str, size: int, checked: bool = False,
                      user: bool = False) -> StrVal:
        """Copy a NUL-terminated string from a kernel (or user) address into scratch."""
        buf = self.fn.alloc(2 * self.res.strbuf)
        self.fn.uses.add("scratch")
        a = self.tmp("a")
        n = min(size, self.res.strsize)
        fn = "bpf_probe_read_user_str" if user else "bpf_probe_read_kernel_str"
        pre = f"u64 {a} = (u64)({addr});"
        if checked:
            pre += f" if ({fn}({buf}, {n}, (void *){a}) < 0) {self.fn.fault(FLT_BADADDR, a)}"
        else:
            pre += f" if ({fn}({buf}, {n}, (void *){a}) < 0) {buf}[0] = 0;"
        return StrVal(n, ptr=buf, pre=pre)

    def str_call(self, e: ast.Call) -> StrVal:
        n, a = e.name, e.args
        size = e.ty.size
        if n == "copyinstr":
            v = self.kernel_string(self.int_expr(a[0]), size, checked=True, user=True)
            if len(a) == 2:
                cut = self.tmp("l")
                v.pre += (f" s64 {cut} = (s64)({self.int_expr(a[1])}); "
                          f"if ({cut} >= 0 && {cut} < {size}) {v.ptr}[{cut} & "
                          f"{self.res.strbuf - 1}] = 0;")
            return v
        if n == "stringof":
            if a[0].ty.is_string:
                return self.str_val(a[0])
            return self.kernel_string(self.int_expr(a[0]), size, checked=True)
        buf = self.fn.alloc(2 * self.res.strbuf)
        pre = []
        if n == "strjoin":
            pre.append(f"dt_strjoin({buf}, {self.operand(a[0], pre)}, {self.operand(a[1], pre)});")
        elif n == "substr":
            has_len = len(a) == 3
            ln = self.int_expr(a[2]) if has_len else "0"
            pre.append(f"dt_substr({buf}, {self.operand(a[0], pre)}, (s64)({self.int_expr(a[1])}), "
                       f"(s64)({ln}), {int(has_len)});")
        elif n in ("strchr", "strrchr"):
            s = self.operand(a[0], pre)
            pre.append(f"dt_strfrom({buf}, {s}, dt_strchr({s}, (char)({self.int_expr(a[1])}), "
                       f"{int(n == 'strrchr')}));")
        elif n == "strstr":
            s = self.operand(a[0], pre)
            pre.append(f"dt_strfrom({buf}, {s}, dt_index({s}, {self.operand(a[1], pre)}, 0));")
        elif n == "basename":
            pre.append(f"dt_basename({buf}, {self.operand(a[0], pre)});")
        elif n == "dirname":
            pre.append(f"dt_dirname({buf}, {self.operand(a[0], pre)});")
        elif n in ("toupper", "tolower"):
            pre.append(f"dt_strcase({buf}, {self.operand(a[0], pre)}, {int(n == 'toupper')});")
        elif n == "lltostr":
            base = self.int_expr(a[1]) if len(a) == 2 else "10"
            b = self.tmp("b")
            pre.append(f"u64 {b} = (u64)({base}); if ({b} < 2 || {b} > 36) "
                       f"{self.fn.fault(FLT_ILLOP, b)}")
            pre.append(f"dt_lltostr({buf}, (s64)({self.int_expr(a[0])}), {b});")
        elif n == "inet_ntoa":
            addr = self.tmp("a")
            pre.append(f"u64 {addr} = (u64)({self.int_expr(a[0])});")
            pre.append(f"if (dt_inet_ntoa({buf}, (void *){addr}) < 0) "
                       f"{self.fn.fault(FLT_BADADDR, addr)}")
        else:
            raise DCompileError(f"cannot generate code for {n}()", e.span)
        return StrVal(size, ptr=buf, pre=" ".join(pre))

    def operand(self, e: ast.Expr, pre: Optional[list] = None) -> str:
        """A string argument for a strings.h helper: a pointer to a buffer of at least
        strbuf bytes (so the helpers' bounded loops stay inside it)."""
        v = self.str_val(e)
        if v.lit is None and not v.comm and v.size >= self.res.strbuf and v.ptr:
            ptr = v.ptr
            if v.pre:
                if pre is None:
                    return sx(v.pre, ptr)
                pre.append(v.pre)
            return ptr
        buf = self.fn.alloc(2 * self.res.strbuf)
        stmts = (v.pre + " " if v.pre else "") + self.store_string(
            StrVal(v.size, v.lit, v.ptr, v.comm), buf, self.res.strbuf)
        if pre is None:
            return sx(stmts, buf)
        pre.append(stmts)
        return buf

    def materialize(self, v: StrVal) -> str:
        """A pointer to the string's bytes in BPF-readable memory (an expression)."""
        if v.ptr and not v.comm and v.lit is None:
            return sx(v.pre, v.ptr) if v.pre else v.ptr
        size = (v.size + 7) // 8 * 8
        buf = self.fn.alloc(size)
        return sx(self.store_string(v, buf, size), buf)

    def store_string(self, v: StrVal, dst: str, size: int) -> str:
        """Statements copying a string into the `size`-byte buffer `dst` (NUL-terminated)."""
        if v.comm:
            return f"bpf_get_current_comm((void *)({dst}), {min(size, 16)});"
        if v.lit is not None:
            data = v.lit[: size - 1] + b"\0"
            data += b"\0" * (-len(data) % 8)
            return " ".join(f"*(u64 *)&(({dst})[{off}]) = {int.from_bytes(data[off:off + 8], 'little'):#x}ULL;"
                            for off in range(0, len(data), 8))
        n = min(size, v.size)
        pre = v.pre + " " if v.pre else ""
        if n <= 64:
            out = f"__builtin_memcpy((void *)({dst}), {v.ptr}, {n});"
        else:
            out = f"bpf_probe_read_kernel_str((void *)({dst}), {n}, {v.ptr});"
        if v.size > size:
            out += f" ({dst})[{size - 1}] = 0;"
        return pre + out

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
            p = self.tmp("c")
            eq = " && ".join(f"{p}[{i}] == {c}" for i, c in enumerate(text))
            test = f"({eq})" if e.op == "==" else f"(!({eq}))"
            return sx(f"const char *{p} = {ptr};", test)
        pa, pb = self.materialize(a), self.materialize(b)
        return f"(dt_strcmp({pa}, {pb}, {min(a.size, b.size)}) {e.op} 0)"


def is_string(e: ast.Expr) -> bool:
    return isinstance(e.ty, StringType)


__all__ = ["ExprEmitter", "StrVal", "TranslatedType", "PROBE_STRINGS"]
