"""D expressions as BPF C.

Integers become C expressions of the checked type (this module); strings become `StrVal`s
(string_exprs.py); variables are read and written by variables.py. Each node class is
emitted by the method a dispatch table names (as sqlglot's generator dispatches on
expression classes). Anything needing statements is a GNU statement expression
`({ ...; value; })`, one statement a line, so `&&`, `||` and `?:` keep their
short-circuit order and a fault can only come from code that runs.
"""

from __future__ import annotations

from dtrace_nb.codegen import kernel_members, translated
from dtrace_nb.codegen.cwriter import if_stmt, stmt_expr
from dtrace_nb.codegen.function import FunctionState
from dtrace_nb.codegen.string_exprs import StringExprs, StrVal, dispatch
from dtrace_nb.codegen.struct_exprs import is_declared_member, read_member
from dtrace_nb.codegen.variables import VariableExprs
from dtrace_nb.errors import DCompileError
from dtrace_nb.faults import FLT_BADADDR, FLT_DIVZERO
from dtrace_nb.lang import ast
from dtrace_nb.lang.check import const_value
from dtrace_nb.lang.kernel_types import KernelArray, KernelPtr, KernelStruct
from dtrace_nb.lang.translated import TRANSLATED_VARIABLES, struct_of
from dtrace_nb.lang.types import DType, IntType, PtrType, StringType, promote

_INT_BUILTIN_C = {
    "pid": "((s32)(bpf_get_current_pid_tgid() >> 32))",
    "tid": "((s32)bpf_get_current_pid_tgid())",
    "uid": "((u32)bpf_get_current_uid_gid())",
    "gid": "((u32)(bpf_get_current_uid_gid() >> 32))",
    "timestamp": "dt_ts",
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
# read once per probe firing (FunctionSpec.uses 'ts'), as dtrace-utils caches timestamp in
# the firing's machine state: every clause of one firing sees the same time (walltimestamp
# is read afresh each time, as there)
_FIRING_TIME_BUILTINS = frozenset(("timestamp",))
# $target and $pid change with every run: the session writes them into dtnb_state
_SESSION_MACROS = {"target": "DT_STATE_TARGET", "pid": "DT_STATE_PID"}
_COMPARE = ("==", "!=", "<", "<=", ">", ">=")
_LOGICAL = ("&&", "||", "^^")
# integer subroutines that are one C expression of their (integer) argument
# lock subroutine -> (bytes read at the lock's address, the C of the result from them).
# Linux's struct mutex starts with its owner (the task, with 3 flag bits below it); an
# rwlock_t (qrwlock) with its 32-bit count: readers from bit 9, a writer in the low
# byte (0xff), a waiting writer at 0x100. Every Linux mutex is adaptive (it spins, then
# sleeps), none a spin mutex.
_LOCK_READS = {
    "mutex_owned": (8, "(({w} & ~7ULL) == bpf_get_current_task())"),
    "mutex_owner": (8, "({w} & ~7ULL)"),
    "mutex_type_adaptive": (8, "((void){w}, 1)"),
    "mutex_type_spin": (8, "((void){w}, 0)"),
    "rw_read_held": (4, "(({w} & ~0x1ffU) != 0)"),
    "rw_write_held": (4, "(({w} & 0xffU) == 0xff)"),
    "rw_iswriter": (4, "(({w} & 0x1ffU) != 0)"),
}
_BYTE_SWAPS = {"ntohs": (16, "u16"), "htons": (16, "u16"), "ntohl": (32, "u32"),
               "htonl": (32, "u32"), "ntohll": (64, "u64"), "htonll": (64, "u64")}


class ExprEmitter(VariableExprs, StringExprs):
    def __init__(self, fs: FunctionState):
        self.fs = fs

    def ty(self, e: ast.Expr) -> DType:
        return self.fs.ann.type(e)

    # -- integers ----------------------------------------------------------------------

    def int_expr(self, e: ast.Expr) -> str:
        """C for `e`'s value in its D type (what a store, record or key holds)."""
        return dispatch(self, _INT_RULES, e)

    def wide(self, e: ast.Expr) -> str:
        """C for `e`'s value as DTrace's 64-bit register holds it. D evaluates operators in
        64 bits whatever their operands' C type (`i * 3` of an int is not cut to 32 bits);
        only a store, a record, a key or a cast narrows a value to its type."""
        t = self.ty(e)
        if isinstance(e, ast.Binary) and e.op not in _COMPARE + _LOGICAL + (",",) \
                and isinstance(t, IntType):
            return self.arith(e.op, self.wide(e.left), self.wide(e.right), self.ty(e.left),
                              self.ty(e.right), t)
        if isinstance(e, ast.Unary) and e.op in ("-", "~", "+"):
            w = _wide_c(t)
            return f"(({w})({e.op if e.op != '+' else ''}({w})({self.wide(e.operand)})))"
        if isinstance(e, ast.Ternary) and isinstance(t, IntType):
            w = _wide_c(t)
            return (f"(({self.wide(e.cond)}) ? ({w})({self.wide(e.then)}) : "
                    f"({w})({self.wide(e.other)}))")
        return self.int_expr(e)

    def _narrowed(self, e: ast.Expr) -> str:
        return f"(({self.ty(e).c_type()})({self.wide(e)}))"

    def expr_stmt(self, e: ast.Expr) -> str:
        """An expression evaluated for its effect."""
        if isinstance(e, ast.Assign):
            return self.assign(e)
        if self.ty(e).is_string:
            return stmt_expr(self.str_val(e).pre, "0")
        return self.int_expr(e)

    def _int_lit(self, e: ast.IntLit) -> str:
        t = self.ty(e)
        unsigned = e.value > 0x7FFFFFFFFFFFFFFF or (isinstance(t, IntType) and not t.signed)
        return f"{e.value}ULL" if unsigned else f"{e.value}LL"

    def _char_lit(self, e: ast.CharLit) -> str:
        return str(e.value)

    def _macro(self, e: ast.MacroVar) -> str:
        if e.name in _SESSION_MACROS:  # differ from run to run: read, not compiled in
            return f"((s64)dt_state({_SESSION_MACROS[e.name]}))"
        return f"{int(self.fs.ann.macro(e))}LL"

    def _sizeof(self, e: ast.SizeOf) -> str:
        return f"{self.fs.ann.size(e)}ULL"

    def _ident(self, e: ast.Ident) -> str:
        var = self.fs.ann.var(e)
        return self.read_var(var, e) if var is not None else self.builtin(e)

    def _scoped(self, e: ast.ScopedVar) -> str:
        return self.read_var(self.fs.ann.vars[e], e)

    def _index(self, e: ast.Index) -> str:
        base_type = self.fs.ann.type_or_none(e.base)
        if base_type is not None and base_type.is_string:
            return self.string_char(e)
        ref = self.fs.ann.arg(e)
        if ref is None:
            var = self.fs.ann.var(e)
            if var is not None:
                return self.read_var(var, e)
            if isinstance(base_type, KernelArray):
                return kernel_members.element_int(self, e)
            return translated.uregs(self, e)
        self.fs.args_used.add(ref.n)
        return f"(({self.ty(e).c_type()})dt_arg{ref.n})"

    def string_char(self, e: ast.Index) -> str:
        """`s[i]`: the character at `i` of string `s`, 0 outside 0..strlen(s)."""
        pre: list[str] = []
        p = self.operand(e.base, pre)
        i, c = self.fs.tmp("i"), self.fs.tmp("ch")
        mask = self.fs.res.strbuf - 1
        return stmt_expr(pre + [f"s64 {i} = (s64)({self.wide(e.indexes[0])});",
                                f"char {c} = 0;",
                                if_stmt(f"{i} >= 0 && {i} < (s64)dt_strlen({p})",
                                        [f"{c} = ({p})[{i} & {mask}];"])], c)

    def _member(self, e: ast.Member) -> str:
        if is_declared_member(self, e):  # of a declared struct (or an ArrayElem)
            return read_member(self, e)
        if struct_of(self.ty(e.base)) is not None:
            return translated.member_int(self, e)
        if isinstance(self.ty(e.base), (KernelPtr, KernelStruct)):
            return kernel_members.member_int(self, e)
        return f"(({self.ty(e).c_type()})({self.member_expr(e)}))"

    def _cast(self, e: ast.Cast) -> str:
        return f"(({self.ty(e).c_type()})({self.wide(e.operand)}))"

    def _postfix(self, e: ast.Postfix) -> str:
        return self.incdec(e.operand, e.op, post=True)

    def _ternary(self, e: ast.Ternary) -> str:
        return self._narrowed(e)

    def builtin(self, e: ast.Ident) -> str:
        n = e.name
        fs = self.fs
        constant = fs.ann.macro(e)  # a predefined constant (SIGUSR1, DTRACEFLT_BADADDR...)
        if isinstance(constant, int):
            return f"(({self.ty(e).c_type()}){constant}LL)"
        if n.startswith("arg") and n[3:].isdigit():
            fs.args_used.add(int(n[3:]))
            return f"dt_arg{n[3:]}"
        if n in fs.binding.builtins and n != "execname":
            return f"(({self.ty(e).c_type()})({fs.binding.builtins[n]}))"
        thread = fs.binding.thread
        if thread is not None:
            if thread.integer(n) is not None:
                return f"(({self.ty(e).c_type()})({thread.integer(n)}))"
            if n in ("stackdepth", "ustackdepth"):
                fs.refuse_foreign_stack(n, e.span)
        if n == "errno":
            return "0"
        if n == "NULL":
            return "((u64)0)"
        if n in TRANSLATED_VARIABLES:
            return translated.scalar(self, n)
        value = const_value(e, fs.ann)
        if value is not None:
            return f"{value}LL"
        if n == "id":
            return str(fs.single.id) if fs.single else "dt_pd->id"
        if n == "epid":
            assert fs.clause is not None
            return str(fs.rec.epid if fs.rec else fs.clause.index + 1)
        if n == "stackdepth" and fs.binding.kernel_stack_skip:
            return f"dt_stackdepth(ctx, {fs.binding.kernel_stack_skip & 0xff})"
        if n in _INT_BUILTIN_C:
            if n in _TASK_BUILTINS:
                fs.uses.add("task")
            if n in _FIRING_TIME_BUILTINS:
                fs.uses.add("ts")
            return _INT_BUILTIN_C[n]
        raise DCompileError(f"cannot generate code for variable '{n}'", e.span)

    # -- operators ---------------------------------------------------------------------

    def _unary(self, e: ast.Unary) -> str:
        t = self.ty(e)
        if e.op in ("++pre", "--pre"):
            return self.incdec(e.operand, e.op[:2], post=False)
        if e.op == "*":
            p = self.int_expr(e.operand)
            v, a = self.fs.tmp("d"), self.fs.tmp("a")
            size = t.size if isinstance(t, IntType) else 8
            return stmt_expr([f"u64 {a} = (u64)({p});", f"{t.c_type()} {v} = 0;",
                              if_stmt(f"bpf_probe_read_kernel(&{v}, {size}, (void *){a}) < 0",
                                      [self.fs.fault(FLT_BADADDR, a)])], v)
        if e.op == "!":
            return f"(!({self.wide(e.operand)}))"
        return self._narrowed(e)

    def _binary(self, e: ast.Binary) -> str:
        op = e.op
        lt, rt = self.ty(e.left), self.ty(e.right)
        if op == ",":
            return f"((void)({self.expr_stmt(e.left)}), {self.int_expr(e.right)})"
        if op in _COMPARE and (isinstance(lt, StringType) or isinstance(rt, StringType)):
            return self.str_compare(e)
        if op in _COMPARE or op in _LOGICAL:
            return self.arith(op, self.wide(e.left), self.wide(e.right), lt, rt, self.ty(e))
        return self._narrowed(e)

    def arith(self, op: str, a: str, b: str, lt: DType, rt: DType, t: DType) -> str:
        """C for integer operator `op` of C operands `a` (type lt) and `b` (rt), of D type t,
        computed in 64 bits (signed or not as t is): see wide()."""
        if op == "&&":
            return f"(!!({a}) && !!({b}))"
        if op == "||":
            return f"(!!({a}) || !!({b}))"
        if op == "^^":
            return f"(!!({a}) != !!({b}))"
        if op in _COMPARE:
            p = _wide_c(promote(lt, rt))
            return f"(({p})({a}) {op} ({p})({b}))"
        ct = _wide_c(t)
        if op in ("+", "-") and isinstance(t, PtrType) and isinstance(lt, PtrType) \
                and lt.target is not None and not isinstance(rt, PtrType):
            return f"(({ct})(({ct})({a}) {op} ({ct})({b}) * {lt.target.size}))"
        assert isinstance(t, IntType)
        if op in ("/", "%"):
            return self.divide(op, a, b, t)
        if op in ("<<", ">>"):
            return f"(({ct})(({ct})({a}) {op} (({b}) & 63)))"
        return f"(({ct})(({ct})({a}) {op} ({ct})({b})))"

    def divide(self, op: str, a: str, b: str, t: IntType) -> str:
        ct = _wide_c(t)
        x, y = self.fs.tmp("n"), self.fs.tmp("q")
        if t.signed:
            fn = "dt_sdiv" if op == "/" else "dt_smod"
            value = f"(({ct}){fn}((s64){x}, (s64){y}))"
        else:
            value = f"(({ct})(({ct}){x} {op} ({ct}){y}))"
        return stmt_expr([f"{ct} {x} = ({ct})({a});", f"{ct} {y} = ({ct})({b});",
                          if_stmt(f"{y} == 0", [self.fs.fault(FLT_DIVZERO, "0")])], value)

    # -- integer subroutines -----------------------------------------------------------

    def _int_call(self, e: ast.Call) -> str:
        n, a = e.name, e.args
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
        if n in _LOCK_READS:
            return self.lock_word(e)
        if n in ("getmajor", "getminor"):
            # Linux's dev_t inside the kernel: major above the 20 bits of the minor
            v = f"(u32)({self.int_expr(a[0])})"
            return f"({v} >> 20)" if n == "getmajor" else f"({v} & 0xfffff)"
        if n in _BYTE_SWAPS:
            bits, ct = _BYTE_SWAPS[n]
            return f"(({ct})__builtin_bswap{bits}(({ct})({self.int_expr(a[0])})))"
        if n == "speculation":
            self.fs.uses.add("spec")
            return "dt_speculation()"
        if n == "progenyof":
            self.fs.uses.add("task")
            return f"dt_progenyof((s32)({self.int_expr(a[0])}))"
        if n == "copyin":
            return self.copyin(e)
        raise DCompileError(f"cannot generate code for {n}()", e.span)

    def lock_word(self, e: ast.Call) -> str:
        """The mutex and rwlock subroutines: the lock word at the address (a bad address
        faults), tested as dtrace-utils does on Linux."""
        width, test = _LOCK_READS[e.name]
        addr, word = self.fs.tmp("a"), self.fs.tmp("w")
        return stmt_expr([f"u64 {addr} = (u64)({self.int_expr(e.args[0])});",
                          f"u{width * 8} {word} = 0;",
                          if_stmt(f"bpf_probe_read_kernel(&{word}, {width}, (void *){addr}) < 0",
                                  [self.fs.fault(FLT_BADADDR, addr)])],
                         test.format(w=word))

    def copyin(self, e: ast.Call) -> str:
        size = const_value(e.args[1], self.fs.ann)
        assert size is not None  # the checker made it a constant
        buf = self.fs.alloc(size)
        addr, r = self.fs.tmp("a"), self.fs.tmp("c")
        return stmt_expr([f"u64 {addr} = (u64)({self.int_expr(e.args[0])});",
                          if_stmt(f"bpf_probe_read_user({buf}, {size}, (void *){addr}) < 0",
                                  [self.fs.fault(FLT_BADADDR, addr)]),
                          f"u64 {r} = (u64){buf};"], r)


def _wide_c(t: DType) -> str:
    """The 64-bit C type DTrace computes `t`'s operators in."""
    return "s64" if isinstance(t, IntType) and t.signed else "u64"


# node class -> the name of the ExprEmitter method giving its integer value
_INT_RULES: dict[type, str] = {
    ast.IntLit: "_int_lit", ast.CharLit: "_char_lit", ast.MacroVar: "_macro",
    ast.SizeOf: "_sizeof", ast.Ident: "_ident", ast.ScopedVar: "_scoped",
    ast.Index: "_index", ast.Member: "_member", ast.Cast: "_cast", ast.Unary: "_unary",
    ast.Postfix: "_postfix", ast.Ternary: "_ternary", ast.Binary: "_binary",
    ast.Assign: "assign", ast.Call: "_int_call", ast.ArrayElem: "_member",
    ast.AddressOf: "_member",
}

__all__ = ["ExprEmitter", "StrVal"]
