"""D string expressions as BPF C: `StrVal`s, copied, compared and passed to the string
subroutines of strings.h. Part of the expression emitter (expressions.py), which adds the
integer half; the string value of each node class is found in a dispatch table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from dtrace_nb.codegen import kernel_members, translated
from dtrace_nb.codegen.cwriter import if_stmt, stmt_expr
from dtrace_nb.codegen.function import FunctionState
from dtrace_nb.codegen.layout import VarLayout
from dtrace_nb.errors import DCompileError
from dtrace_nb.faults import FLT_BADADDR, FLT_ILLOP
from dtrace_nb.lang import ast
from dtrace_nb.lang.kernel_types import KernelPtr, KernelStruct
from dtrace_nb.lang.translated import PATH_VARIABLES, struct_of
from dtrace_nb.lang.check import const_value
from dtrace_nb.lang.constants import AF_INET, AF_INET6, ARPHRD_ETHER, ARPHRD_INFINIBAND
from dtrace_nb.lang.types import DType
from dtrace_nb.probes import AddressText

_PROBE_FIELD = {"probeprov": "prov", "probemod": "mod", "probefunc": "func", "probename": "name"}


def dispatch(emitter, table: dict[type, str], e: ast.Expr, what: str = ""):
    """Emit `e` with the emitter's method that `table` names for its node class."""
    rule = table.get(type(e))
    if rule is None:
        raise DCompileError(f"cannot generate code for {what}{type(e).__name__}", e.span)
    return getattr(emitter, rule)(e)


@dataclass
class StrVal:
    """A string expression: a compile-time literal, or a buffer `ptr` of `size` bytes."""

    size: int
    lit: Optional[bytes] = None
    ptr: str = ""
    comm: bool = False  # the current task's comm, fetched straight into its destination
    pre: list[str] = field(default_factory=list)  # statements to run before `ptr` is valid


class StringExprs:
    """The string half of ExprEmitter."""

    fs: FunctionState

    # the integer and variable halves (expressions.py, variables.py), declared for type
    # checkers only: at run time the instance is an ExprEmitter, which has them
    if TYPE_CHECKING:
        def int_expr(self, e: ast.Expr) -> str: ...

        def ty(self, e: ast.Expr) -> DType: ...

        def layout(self, var) -> VarLayout: ...

        def var_place(self, vl: VarLayout) -> str: ...

        def dyn_string(self, e: ast.Expr) -> StrVal: ...

        def assign_string_value(self, e: ast.Assign) -> StrVal: ...

    # -- values ---------------------------------------------------------------------------

    def str_val(self, e: ast.Expr) -> StrVal:
        if not self.ty(e).is_string:  # NULL where a string goes (the checker allows 0 only)
            return self._null_string(e)
        return dispatch(self, _STRING_RULES, e, "a string ")

    def _null_string(self, e: ast.Expr) -> StrVal:
        """A string argument given as NULL: reading it is a bad-address fault at 0, as in
        DTrace (the empty string stands for it in the code that follows, never reached)."""
        strbuf = self.fs.res.strbuf
        return StrVal(strbuf, ptr=self.fs.alloc(2 * strbuf),
                      pre=[self.fs.fault(FLT_BADADDR, "0")])

    def _str_lit(self, e: ast.StrLit) -> StrVal:
        return StrVal(self.ty(e).size, lit=e.value.encode())

    def _str_macro(self, e: ast.MacroVar) -> StrVal:
        return StrVal(self.ty(e).size, lit=str(self.fs.ann.macro(e)).encode())

    def _str_ident(self, e: ast.Ident) -> StrVal:
        var = self.fs.ann.var(e)
        if var is not None:
            vl = self.layout(var)
            return StrVal(vl.field.size, ptr=self.var_place(vl))
        b = self.fs.binding
        if e.name in PATH_VARIABLES:
            m = translated.path_variable(self, e.name)
            return StrVal(m.size, ptr=m.ptr, pre=m.pre)
        if e.name == "execname":
            if "execname" in b.builtins:
                return self.kernel_string(b.builtins["execname"], 16)
            if b.thread is not None:
                return self.kernel_string(b.thread.execname, 16)
            return StrVal(16, comm=True)
        if e.name in _PROBE_FIELD:
            size = self.ty(e).size
            p = self.fs.single
            if p is not None:
                value = {"probeprov": p.provider, "probemod": p.module,
                         "probefunc": p.function, "probename": p.name}[e.name]
                return StrVal(size, lit=value.encode())
            return StrVal(size, ptr=f"dt_pd->{_PROBE_FIELD[e.name]}")
        raise DCompileError(f"cannot generate code for a string {e.name}", e.span)

    def _str_index(self, e: ast.Index) -> StrVal:
        ref = self.fs.ann.arg(e)
        if ref is None:
            return self.dyn_string(e)
        self.fs.args_used.add(ref.n)
        return self.kernel_string(f"dt_arg{ref.n}", self.ty(e).size, user=ref.user_string)

    def _str_member(self, e: ast.Member) -> StrVal:
        if struct_of(self.ty(e.base)) is not None:
            m = translated.member_string(self, e)
            return StrVal(m.size, ptr=m.ptr, comm=m.comm, pre=m.pre)
        if isinstance(self.ty(e.base), (KernelPtr, KernelStruct)):
            return self.kernel_string(kernel_members.member_address(self, e), self.ty(e).size,
                                      checked=True)
        address = self.fs.ann.member(e).address
        if address is not None:
            return self._address_member(e, address)
        return self.kernel_string(self.member_expr(e), self.ty(e).size)

    def _address_member(self, e: ast.Member, address: AddressText) -> StrVal:
        """A provider's address member (api.address_member): addresses.h formats it."""
        ref = self.fs.ann.arg(e.base)
        assert ref is not None  # member_expr's rule: translated members are of args[N]
        self.fs.args_used.add(ref.n)
        arg = f"((u64)dt_arg{ref.n})"
        strbuf = self.fs.res.strbuf
        self.fs.uses.add("addresses")
        buf = self.fs.alloc(max(2 * strbuf, strbuf + 64))  # dt_inet_ntoa6's working space
        return StrVal(min(self.ty(e).size, self.fs.res.strsize), ptr=buf, pre=[
            f"dt_inet_text({buf}, (u32)({address.family(arg)}), (u32)({address.v4(arg)}), "
            f"(const void *)(u64)({address.v6(arg)}));"])

    def member_expr(self, e: ast.Member) -> str:
        """C of a translated member `args[N]->m` (for strings: the address to copy from)."""
        ref = self.fs.ann.arg(e.base)
        if ref is None:
            raise DCompileError("translated members can only be read from args[N]",
                                e.base.span)
        self.fs.args_used.add(ref.n)
        return self.fs.ann.member(e).read(f"((u64)dt_arg{ref.n})")

    def _str_stringof(self, e: ast.StringOf) -> StrVal:
        if self.ty(e.operand).is_string:
            return self.str_val(e.operand)
        return self.kernel_string(self.int_expr(e.operand), self.ty(e).size, checked=True)

    def _str_ternary(self, e: ast.Ternary) -> StrVal:
        a, b = self.str_val(e.then), self.str_val(e.other)
        pa, pb = self.materialize(a), self.materialize(b)
        return StrVal(max(a.size, b.size), ptr=f"(({self.int_expr(e.cond)}) ? {pa} : {pb})")

    def kernel_string(self, addr: str, size: int, checked: bool = False,
                      user: bool = False) -> StrVal:
        """Copy a NUL-terminated string from a kernel (or user) address into scratch."""
        fs = self.fs
        buf = fs.alloc(2 * fs.res.strbuf)
        a = fs.tmp("a")
        n = min(size, fs.res.strsize)
        fn = "bpf_probe_read_user_str" if user else "bpf_probe_read_kernel_str"
        on_fault = fs.fault(FLT_BADADDR, a) if checked else f"{buf}[0] = 0;"
        return StrVal(n, ptr=buf, pre=[f"u64 {a} = (u64)({addr});",
                                       if_stmt(f"{fn}({buf}, {n}, (void *){a}) < 0",
                                               [on_fault])])

    # -- subroutines ----------------------------------------------------------------------

    def _str_call(self, e: ast.Call) -> StrVal:
        rule = _SUBROUTINES.get(e.name)
        if rule is None:
            raise DCompileError(f"cannot generate code for {e.name}()", e.span)
        return getattr(self, rule)(e, self.ty(e).size)

    def _copyinstr(self, e: ast.Call, size: int) -> StrVal:
        v = self.kernel_string(self.int_expr(e.args[0]), size, checked=True, user=True)
        if len(e.args) == 2:
            cut = self.fs.tmp("l")
            v.pre += [f"s64 {cut} = (s64)({self.int_expr(e.args[1])});",
                      if_stmt(f"{cut} >= 0 && {cut} < {size}",
                              [f"{v.ptr}[{cut} & {self.fs.res.strbuf - 1}] = 0;"])]
        return v

    def _stringof_call(self, e: ast.Call, size: int) -> StrVal:
        if self.ty(e.args[0]).is_string:
            return self.str_val(e.args[0])
        return self.kernel_string(self.int_expr(e.args[0]), size, checked=True)

    def _helper_call(self, e: ast.Call, size: int) -> StrVal:
        """A strings.h helper writing its result into a fresh buffer."""
        buf = self.fs.alloc(2 * self.fs.res.strbuf)
        pre: list[str] = []
        n, a = e.name, e.args

        def s(i: int) -> str:
            return self.operand(a[i], pre)

        if n == "strjoin":
            pre.append(f"dt_strjoin({buf}, {s(0)}, {s(1)});")
        elif n == "substr":
            has_len = len(a) == 3
            ln = self.int_expr(a[2]) if has_len else "0"
            pre.append(f"dt_substr({buf}, {s(0)}, (s64)({self.int_expr(a[1])}), (s64)({ln}), "
                       f"{int(has_len)});")
        elif n in ("strchr", "strrchr"):
            src = s(0)
            pre.append(f"dt_strfrom({buf}, {src}, dt_strchr({src}, "
                       f"(char)({self.int_expr(a[1])}), {int(n == 'strrchr')}));")
        elif n == "strstr":
            src = s(0)
            pre.append(f"dt_strfrom({buf}, {src}, dt_index({src}, {s(1)}, 0));")
        elif n in ("basename", "dirname", "cleanpath"):
            pre.append(f"dt_{n}({buf}, {s(0)});")
        elif n in ("toupper", "tolower"):
            pre.append(f"dt_strcase({buf}, {s(0)}, {int(n == 'toupper')});")
        return StrVal(size, ptr=buf, pre=pre)

    def _strtok(self, e: ast.Call, size: int) -> StrVal:
        strbuf = self.fs.res.strbuf
        state = self.fs.shared_buffer("strtok", strbuf + 8)
        buf = self.fs.alloc(2 * strbuf)
        pre: list[str] = []
        again = const_value(e.args[0], self.fs.ann) == 0  # strtok(NULL, delim)
        src = "0" if again else self.operand(e.args[0], pre)
        delim = self.operand(e.args[1], pre)
        pre.append(f"dt_strtok({buf}, {state}, {src}, {int(not again)}, {delim});")
        return StrVal(size, ptr=buf, pre=pre)

    def _lltostr(self, e: ast.Call, size: int) -> StrVal:
        buf = self.fs.alloc(2 * self.fs.res.strbuf)
        base = self.int_expr(e.args[1]) if len(e.args) == 2 else "10"
        b = self.fs.tmp("b")
        return StrVal(size, ptr=buf, pre=[
            f"u64 {b} = (u64)({base});",
            if_stmt(f"{b} < 2 || {b} > 36", [self.fs.fault(FLT_ILLOP, b)]),
            f"dt_lltostr({buf}, (s64)({self.int_expr(e.args[0])}), {b});"])

    def _inet_ntoa(self, e: ast.Call, size: int) -> StrVal:
        return self._address_text(e, size, e.args[0], lambda buf, a: f"dt_inet_ntoa({buf}, {a})")

    def _inet_ntoa6(self, e: ast.Call, size: int) -> StrVal:
        prefixed = const_value(e.args[1], self.fs.ann) if len(e.args) == 2 else 0
        return self._address_text(e, size, e.args[0],
                                  lambda buf, a: f"dt_inet_ntoa6({buf}, {a}, {int(bool(prefixed))})")

    def _inet_ntop(self, e: ast.Call, size: int) -> StrVal:
        """inet_ntop(af, addr): af is known only when the clause runs; another family is
        an illegal operation, as in DTrace."""
        af = self.fs.tmp("f")

        def text(buf: str, a: str) -> str:
            return (f"({af} == {AF_INET} ? dt_inet_ntoa({buf}, {a}) : "
                    f"dt_inet_ntoa6({buf}, {a}, 1))")
        v = self._address_text(e, size, e.args[1], text)
        v.pre[:0] = [f"s64 {af} = (s64)({self.int_expr(e.args[0])});",
                     if_stmt(f"{af} != {AF_INET} && {af} != {AF_INET6}",
                             [self.fs.fault(FLT_ILLOP, af)])]
        return v

    def _link_ntop(self, e: ast.Call, size: int) -> StrVal:
        """link_ntop(type, addr): an Ethernet (6 bytes) or InfiniBand (20) address."""
        ty = self.fs.tmp("t")

        def text(buf: str, a: str) -> str:
            return f"dt_link_ntop({buf}, {a}, {ty} == {ARPHRD_ETHER} ? 6 : 20)"
        v = self._address_text(e, size, e.args[1], text)
        v.pre[:0] = [f"s64 {ty} = (s64)({self.int_expr(e.args[0])});",
                     if_stmt(f"{ty} != {ARPHRD_ETHER} && {ty} != {ARPHRD_INFINIBAND}",
                             [self.fs.fault(FLT_ILLOP, ty)])]
        return v

    def _address_text(self, e: ast.Call, size: int, addr_arg: ast.Expr,
                      text: Callable[[str, str], str]) -> StrVal:
        """A strings.h formatter reading the bytes at a kernel address (a bad address
        faults); `text(buf, addr)` is its call, negative when the read failed. The buffer
        has 64 bytes of working space past its first strbuf bytes (strings.h's dst)."""
        strbuf = self.fs.res.strbuf
        self.fs.uses.add("addresses")  # addresses.h
        buf = self.fs.alloc(max(2 * strbuf, strbuf + 64))
        addr = self.fs.tmp("a")
        return StrVal(size, ptr=buf, pre=[
            f"u64 {addr} = (u64)({self.int_expr(addr_arg)});",
            if_stmt(f"{text(buf, f'(void *){addr}')} < 0", [self.fs.fault(FLT_BADADDR, addr)])])

    # -- moving strings ---------------------------------------------------------------------

    def operand(self, e: ast.Expr, pre: Optional[list[str]] = None) -> str:
        """A string argument for a strings.h helper: a pointer to a buffer of at least
        strbuf bytes (so the helpers' bounded loops stay inside it). Its statements go to
        `pre` when given, else into a statement expression."""
        strbuf = self.fs.res.strbuf
        v = self.str_val(e)
        if v.lit is None and not v.comm and v.size >= strbuf and v.ptr:
            if v.pre and pre is None:
                return stmt_expr(v.pre, v.ptr)
            if pre is not None:
                pre.extend(v.pre)
            return v.ptr
        buf = self.fs.alloc(2 * strbuf)
        stmts = v.pre + self.store_string(StrVal(v.size, v.lit, v.ptr, v.comm), buf, strbuf)
        if pre is None:
            return stmt_expr(stmts, buf)
        pre.extend(stmts)
        return buf

    def materialize(self, v: StrVal) -> str:
        """A pointer to the string's bytes in BPF-readable memory (an expression)."""
        if v.ptr and not v.comm and v.lit is None:
            return stmt_expr(v.pre, v.ptr) if v.pre else v.ptr
        size = (v.size + 7) // 8 * 8
        buf = self.fs.alloc(size)
        return stmt_expr(self.store_string(v, buf, size), buf)

    def store_string(self, v: StrVal, dst: str, size: int) -> list[str]:
        """Statements copying a string into the `size`-byte buffer `dst` (NUL-terminated)."""
        if v.comm:
            return [f"bpf_get_current_comm((void *)({dst}), {min(size, 16)});"]
        if v.lit is not None:
            data = v.lit[: size - 1] + b"\0"
            data += b"\0" * (-len(data) % 8)
            return [f"*(u64 *)&(({dst})[{off}]) = "
                    f"{int.from_bytes(data[off:off + 8], 'little'):#x}ULL;"
                    for off in range(0, len(data), 8)]
        n = min(size, v.size)
        # up to the NUL only, never a fixed-size copy: a buffer's bytes after its NUL are
        # stale (scratch reused from an earlier firing), and a key zeroed beforehand must
        # stay zero there, or two keys of one D string hash apart (DTrace compares strings)
        out = [f"bpf_probe_read_kernel_str((void *)({dst}), {n}, {v.ptr});"]
        if v.size > size:
            out.append(f"({dst})[{size - 1}] = 0;")
        return v.pre + out

    def str_or_null(self, e: ast.Expr) -> StrVal:
        """A string operand, or NULL (the checker allowed only NULL as a non-string here):
        the empty string, which this model gives absent and NULL strings alike."""
        return self.str_val(e) if self.ty(e).is_string else StrVal(1, lit=b"")

    def str_compare(self, e: ast.Binary) -> str:
        a, b = self.str_or_null(e.left), self.str_or_null(e.right)
        if e.op in ("==", "!=") and (a.lit is not None or b.lit is not None):
            lit, other = (a, b) if a.lit is not None else (b, a)
            assert lit.lit is not None
            if other.lit is not None:
                same = lit.lit == other.lit
                return "1" if same == (e.op == "==") else "0"
            ptr = self.materialize(other)
            text = lit.lit + b"\0"
            if len(text) > other.size:
                return "0" if e.op == "==" else "1"
            p = self.fs.tmp("c")
            eq = " && ".join(f"{p}[{i}] == {c}" for i, c in enumerate(text))
            test = f"({eq})" if e.op == "==" else f"(!({eq}))"
            return stmt_expr([f"const char *{p} = {ptr};"], test)
        pa, pb = self.materialize(a), self.materialize(b)
        return f"(dt_strcmp({pa}, {pb}, {min(a.size, b.size)}) {e.op} 0)"


# node class -> the name of the method giving its string value (names, not functions, so
# the halves ExprEmitter mixes in are found on the instance)
_STRING_RULES: dict[type, str] = {
    ast.StrLit: "_str_lit", ast.MacroVar: "_str_macro", ast.Ident: "_str_ident",
    ast.ScopedVar: "dyn_string", ast.Index: "_str_index", ast.Member: "_str_member",
    ast.StringOf: "_str_stringof", ast.Ternary: "_str_ternary",
    ast.Assign: "assign_string_value", ast.Call: "_str_call",
}

# string subroutine -> the method emitting it (given the result's size)
_SUBROUTINES: dict[str, str] = {
    "copyinstr": "_copyinstr", "stringof": "_stringof_call", "lltostr": "_lltostr",
    "inet_ntoa": "_inet_ntoa", "inet_ntoa6": "_inet_ntoa6", "inet_ntop": "_inet_ntop",
    "link_ntop": "_link_ntop", "strtok": "_strtok",
    **{n: "_helper_call" for n in ("strjoin", "substr", "strchr", "strrchr", "strstr",
                                   "basename", "dirname", "cleanpath", "toupper", "tolower")},
}
