"""Typing of expressions, dispatched by node type (as sqlglot's generator dispatches on
expression classes): every expression gets a DType in the annotations, or a located
error says why it has none. Variable references and assignments are in scopes.py.

`lenient` typing (the pass that learns variable types) gives unknown variables int64_t
instead of refusing them: a clause may read `self->ts` before the clause that sets it.
"""

from __future__ import annotations

from typing import Callable, Optional

from dtrace_nb.errors import DCompileError, arg_count_error, proto_arg
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import (ACTIONS, AGG_FUNCS, SUBROUTINES, UNAVAILABLE_ARITY,
                                     UNAVAILABLE_SUBROUTINES)
from dtrace_nb.lang.check.results import Annotations, ArgRef, CheckedClause
from dtrace_nb.lang.check.scopes import VariableRules
from dtrace_nb.lang.check.struct_members import address_of, array_elem, struct_member
from dtrace_nb.lang.check.state import (INT64_MIN, UINT64_MAX, AggregationValue,
                                        CheckState, NoValue, NotConstant, const_value, describe,
                                        incompatible, is_null)
from dtrace_nb.lang.decltypes import declared_size
from dtrace_nb.lang.types import (INT, INT64, DType, IntType, MemberType, PtrType,
                                  StringType, TranslatedType, VoidType, literal_type,
                                  native_type, promote, unary_promote)
from dtrace_nb.lang import kernel_types
from dtrace_nb.lang.kernel_types import KernelPtr, KernelStruct
from dtrace_nb.lang.translated import member_type, struct_of
from dtrace_nb.probes import ArgInfo, MemberInfo

_COMPARE = ("==", "!=", "<", "<=", ">", ">=")
_NO_VALUE_HINT = "print it with printa() or read it from the result"
# dt_cook_op1/op2's tag and words for an operand of the wrong kind
_UNARY_WORDS = {"-": ("D_OP_ARITH", "arithmetic"), "+": ("D_OP_ARITH", "arithmetic"),
                "~": ("D_OP_INT", "integral"), "!": ("D_OP_SCALAR", "scalar")}
_BINARY_WORDS = {**{op: ("D_OP_INT", "integral") for op in ("&", "|", "^", "<<", ">>", "%")},
                 "*": ("D_OP_ARITH", "arithmetic"), "/": ("D_OP_ARITH", "arithmetic")}




class ExprChecker(VariableRules):
    def __init__(self, st: CheckState, ann: Annotations, lenient: bool):
        self.st = st
        self.ann = ann
        self.lenient = lenient
        self.clause: Optional[CheckedClause] = None  # the clause being checked

    def expr(self, e: ast.Expr) -> DType:
        for cls in type(e).__mro__:
            rule = _RULES.get(cls)
            if rule is not None:
                t = rule(self, e)
                self.ann.types[e] = t
                return t
        raise DCompileError(f"{type(e).__name__} expressions are not supported", e.span)

    def value(self, e: ast.Expr) -> DType:
        """The type of an operand, void for an action's call and `aggregation` for an
        aggregation, for the rules that refuse those in their own words."""
        try:
            return self.expr(e)
        except NoValue as err:
            t = VoidType() if err.what == "void" else AggregationValue()
            self.ann.types[e] = t
            return t

    def constant(self, e: ast.Expr, what: str) -> int:
        self.expr(e)
        value = const_value(e, self.ann)
        if value is None:
            raise NotConstant(f"{what} must be an integer constant", e.span)
        return value

    # -- literals and macros -------------------------------------------------------------

    def int_lit(self, e: ast.IntLit) -> DType:
        t = literal_type(e.value, self._decimal(e), e.unsigned, e.long)
        if t is None:
            raise DCompileError(f"integer constant 0x{e.value:x} cannot be represented in any "
                                "built-in integral type", e.span)
        return t

    def _decimal(self, e: ast.IntLit) -> bool:
        """Whether the constant is written in decimal (hex and octal ones may be unsigned
        without a suffix): read from the source text under its span."""
        sp, lines = e.span, self.st.program.source.splitlines()
        if not (sp.line == sp.end_line and 1 <= sp.line <= len(lines)):
            return True
        text = lines[sp.line - 1][sp.col - 1:sp.end_col - 1]
        return not (len(text) > 1 and text[0] == "0" and text[1].isalnum()
                    and text[1] not in "uUlL")

    def char_lit(self, e: ast.CharLit) -> DType:
        return IntType(1, True, "char")

    def str_lit(self, e: ast.StrLit) -> DType:
        return StringType(len(e.value.encode()) + 1)

    def macro(self, e: ast.MacroVar) -> DType:
        text = self.st.macros.value(e.name, e.span)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DCompileError(f"the value of ${'$' * e.quoted}{e.name} is not valid UTF-8 "
                                "text", e.span) from None
        if e.quoted:
            self.ann.macros[e] = text
            return StringType(len(text.encode()) + 1)
        if text == "" and self.st.macros.defaultargs:
            self.ann.macros[e] = 0
            return INT64
        try:
            value = int(text, 0)
        except ValueError:
            self.ann.macros[e] = text
            return StringType(len(text.encode()) + 1)
        if not INT64_MIN <= value <= UINT64_MAX:
            raise DCompileError(f"the value of ${e.name} ({text}) does not fit in 64 bits",
                                e.span)
        self.ann.macros[e] = value
        return INT64

    def agg_ref(self, e: ast.AggRef) -> DType:
        raise NoValue("an aggregation has no value in an expression", e.span, "aggregation",
                      hint=_NO_VALUE_HINT)

    # -- operators -------------------------------------------------------------------------

    def unary(self, e: ast.Unary) -> DType:
        if e.op in ("++pre", "--pre"):
            return self.incdec(e, e.operand, e.op[:2])
        if e.op == "&" and isinstance(e.operand, (ast.Ident, ast.ScopedVar, ast.AggRef)):
            raise DCompileError("the address of a D variable cannot be taken", e.span,
                                tag="D_ADDROF_VAR",
                                dtrace="cannot take address of dynamic variable")
        t = self.value(e.operand)
        if e.op in ("-", "+", "~", "!"):
            if not isinstance(t, IntType):
                tag, words = _UNARY_WORDS[e.op]
                raise DCompileError(f"operator {e.op} needs an integer operand, not {t}", e.span,
                                    tag=tag, dtrace=f"operator {e.op} requires an operand "
                                                    f"of {words} type")
            return INT if e.op == "!" else unary_promote(t)
        if e.op == "*":
            if not isinstance(t, PtrType):
                raise DCompileError(f"operator * needs a pointer, not {t}", e.span,
                                    hint="cast the address first, e.g. *(int *)arg0",
                                    tag="D_DEREF_NONPTR",
                                    dtrace="cannot dereference non-pointer type")
            if t.target is None:
                raise DCompileError("cannot dereference a void pointer", e.span,
                                    hint="cast it to the type to read, e.g. *(int *)p",
                                    tag="D_DEREF_VOID", dtrace="cannot dereference pointer to void")
            return t.target
        if e.op == "&" and isinstance(e.operand, (ast.ArrayElem, ast.Member, ast.Index,
                                                   ast.Unary)):
            # an lvalue D has an address for (an element, a member): not here yet
            raise DCompileError(f"the address of {describe(e.operand)} cannot be taken here "
                                "yet", e.span)
        if e.op == "&":
            raise DCompileError(f"the address of {describe(e.operand)} cannot be taken", e.span,
                                tag="D_ADDROF_LVAL",
                                dtrace="unacceptable operand for unary & operator")
        raise DCompileError(f"operator {e.op} is not supported", e.span)

    def postfix(self, e: ast.Postfix) -> DType:
        return self.incdec(e, e.operand, e.op)

    def binary(self, e: ast.Binary) -> DType:
        if e.op == ",":
            self.expr(e.left)
            return self.expr(e.right)
        a, b = self.value(e.left), self.value(e.right)
        if e.op in _COMPARE:
            if (a.is_string and b.is_string) or (a.is_int and b.is_int):
                return INT
            if (a.is_string and is_null(e.right, self.ann)) or \
                    (b.is_string and is_null(e.left, self.ann)):
                return INT  # `s != NULL`: NULL is below every string (compared as "")
            raise DCompileError(f"operator {e.op} cannot compare {a} with {b}", e.span,
                                tag="D_OP_INCOMPAT", dtrace=incompatible(a, e.op, b))
        if e.op in ("&&", "||", "^^"):
            for side, t in ((e.left, a), (e.right, b)):
                if not t.is_int:
                    raise DCompileError(f"operator {e.op} needs integer operands, not {t}",
                                        side.span, tag="D_OP_SCALAR",
                                        dtrace=f"operator {e.op} requires operands of "
                                               "scalar type")
            return INT
        if e.op in ("+", "-") and isinstance(a, PtrType) and a.target is None:
            # dt_cook_op2: arithmetic on void * has no element size to scale by
            raise DCompileError(f"operator {e.op} cannot be applied to a void pointer",
                                e.span, tag="D_OP_INCOMPAT", dtrace=incompatible(a, e.op, b),
                                hint="cast it first, e.g. (char *)p + n")
        if not (isinstance(a, IntType) and isinstance(b, IntType)):
            tag, words = _BINARY_WORDS.get(e.op, ("D_OP_INCOMPAT", ""))
            raise DCompileError(f"operator {e.op} needs integer operands, not {a} and {b}",
                                e.span,
                                hint="join strings with strjoin()" if e.op == "+" else None,
                                tag=tag, dtrace=f"operator {e.op} requires operands of {words} "
                                                "type" if words else incompatible(a, e.op, b))
        if e.op in ("/", "%") and const_value(e.right, self.ann) == 0:
            # dt_node_op2 refuses a constant zero divisor whatever the dividend
            raise DCompileError("expression contains division by zero", e.right.span,
                                tag="D_DIV_ZERO", dtrace="expression contains division by zero")
        if e.op in ("<<", ">>"):
            return unary_promote(a)
        if e.op in ("+", "-") and isinstance(a, PtrType) and not isinstance(b, PtrType):
            return a  # pointer arithmetic keeps the pointer (scaled by the code generator)
        return promote(a, b)

    def ternary(self, e: ast.Ternary) -> DType:
        if not self.value(e.cond).is_int:
            raise DCompileError("the condition of ?: must be an integer", e.cond.span,
                                tag="D_OP_SCALAR",
                                dtrace="operator ?: expression must be of scalar type")
        a, b = self.value(e.then), self.value(e.other)
        if isinstance(a, VoidType) or isinstance(b, VoidType):
            raise DCompileError("?: cannot choose between actions: an action has no value",
                                e.span, tag="D_OP_ACT",
                                dtrace="action cannot be used in a conditional context")
        if isinstance(a, IntType) and isinstance(b, IntType):
            return promote(a, b)
        if isinstance(a, StringType) and isinstance(b, StringType):
            return StringType(max(a.size, b.size))
        raise DCompileError(f"the two sides of ?: must both be integers or both strings, not "
                            f"{a} and {b}", e.span, tag="D_OP_INCOMPAT",
                            dtrace="operator ?: operands must have compatible types")

    def cast(self, e: ast.Cast) -> DType:
        t = self.st.type_of(e.to)
        if not t.is_int:
            raise DCompileError(f"cannot cast to '{e.to}'", e.to.span or e.span)
        if not self.expr(e.operand).is_int:
            raise DCompileError(f"cannot cast {self.ann.type(e.operand)} to an integer type",
                                e.operand.span, hint="strings convert with strtoll()")
        return t

    def sizeof(self, e: ast.SizeOf) -> DType:
        if e.of_type is not None:
            t = self.st.type_of(e.of_type)
        else:
            assert e.operand is not None
            t = self.expr(e.operand)
        self.ann.sizes[e] = declared_size(t, e.span)
        return IntType(8, False, "size_t")

    def stringof(self, e: ast.StringOf) -> DType:
        t = self.value(e.operand)
        if t.is_string:
            return t
        if not t.is_int:
            raise DCompileError(f"stringof cannot convert {t}", e.span, tag="D_STRINGOF_TYPE",
                                dtrace=f"cannot apply stringof to a value of type {t}")
        return StringType(self.st.strsize)

    # -- probe arguments and translated members -------------------------------------------

    def args_index(self, e: ast.Index) -> DType:
        if len(e.indexes) != 1:
            raise DCompileError("args[] takes one index", e.span)
        try:
            n = self.constant(e.indexes[0], "the args[] index")
        except NotConstant as err:
            raise DCompileError(err.message, err.span, tag="D_PROTO_ARG") from None
        if not 0 <= n < 10:
            raise DCompileError(f"args[{n}] is out of range (0..9)", e.indexes[0].span,
                                tag="D_ARGS_IDX")
        assert self.clause is not None
        probes = self.clause.probes
        infos = [p.args[n] for p in probes if n < len(p.args)]
        if not infos:
            raise DCompileError(f"args[{n}] does not exist: {probes[0].description} has "
                                f"{len(probes[0].args)} argument(s)", e.span, tag="D_ARGS_IDX",
                                hint="list argument types with dtrace-nb -lv -n PROBE")
        types = {self.arg_type(a) for a in infos}
        if len(types) > 1:
            if not all(t.is_int for t in types):
                names = sorted({a.dtrace_type for a in infos})
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more"
                                                 if len(names) > 8 else "")
                raise DCompileError(f"args[{n}] has different types on the probes of this "
                                    f"clause ({shown})", e.span,
                                    hint="split the clause so each has one argument type")
            t = INT64
        else:
            t = types.pop()
        if t.is_string and len({a.user_string for a in infos}) > 1:
            raise DCompileError(f"args[{n}] is a user-space string on some probes of this clause "
                                "and a kernel one on others", e.span,
                                hint="split the clause by probe")
        self.ann.args[e] = ArgRef(n, infos[0].user_string)
        return t

    def arg_type(self, a: ArgInfo) -> DType:
        if a.dtrace_type == "string":
            return StringType(a.string_size or self.st.strsize)
        if a.members:
            members = []
            for m in a.members:
                mt = (StringType(m.string_size or self.st.strsize) if m.dtrace_type == "string"
                      else native_type(m.dtrace_type))
                # the member's C for a symbolic argument identifies the translation: the
                # probes of one clause must read it alike (codegen calls m.read itself)
                ad = m.address
                how = (m.read("{arg}") if ad is None else "address "
                       + ", ".join(f("{arg}") for f in (ad.family, ad.v4, ad.v6)))
                members.append(MemberType(m.name, mt, how))
            return TranslatedType(a.dtrace_type, tuple(members))
        return native_type(a.dtrace_type)

    def member(self, e: ast.Member) -> DType:
        t = self.expr(e.base)
        if struct_of(t) is not None:
            return member_type(t, e).dtype
        if isinstance(t, (KernelPtr, KernelStruct)):
            return kernel_types.member_type(t, e)
        if isinstance(t, TranslatedType):
            if not e.arrow:
                raise DCompileError(f"{t} is a pointer: use -> to reach its members", e.span)
            m = t.member(e.name)
            if m is None:
                raise DCompileError(f"{t} has no member '{e.name}'", e.span,
                                    hint="members: " + ", ".join(x.name for x in t.members))
            read = self._member_read(e)
            if read.refused:  # a member DTrace has that this kernel cannot supply
                raise DCompileError(f"{t}'s {e.name} is not available: {read.refused}", e.span)
            self.ann.members[e] = read
            return m.dtype
        declared = struct_member(self, e, t)
        if declared is not None:
            return declared
        if e.arrow and isinstance(t, PtrType):
            words = (f'operator -> cannot be applied to pointer to type "{t.target or "void"}"'
                     "; must be applied to a struct or union pointer")
        elif e.arrow:
            words = "operator -> must be applied to a pointer"
        else:
            words = (f'operator . cannot be applied to type "{t}"; must be applied to a '
                     "struct or union")
        raise DCompileError(f"'{'->' if e.arrow else '.'}{e.name}' needs a struct; "
                            f"{describe(e.base)} is {t}", e.span,
                            tag="D_OP_PTR" if e.arrow and not isinstance(t, PtrType)
                            else "D_OP_SOU", dtrace=words,
                            hint="kernel struct types are not available; providers give "
                                 "translated args[] (e.g. args[0]->pr_pid)")

    def _member_read(self, e: ast.Member) -> MemberInfo:
        """How `args[N]->name` is read: the provider's member (alike on every probe of the
        clause, as their types are equal)."""
        ref = self.ann.arg(e.base)
        if ref is None:
            raise DCompileError("translated members can only be read from args[N]",
                                e.base.span)
        assert self.clause is not None
        info = next(p.args[ref.n] for p in self.clause.probes if ref.n < len(p.args))
        return next(m for m in info.members if m.name == e.name)

    # -- subroutine calls -------------------------------------------------------------------

    def call(self, e: ast.Call) -> DType:
        where = e.name_span if e.name_span.line else e.span
        if e.name in AGG_FUNCS:
            raise DCompileError(f"{e.name}() may only be assigned to an aggregation",
                                e.span, hint=f"@name[keys] = {e.name}(...)", tag="D_CG_EXPR",
                                dtrace=f"aggregating function {e.name}( ) may not be called "
                                       "from a D expression (D program context required)")
        if e.name in ACTIONS:
            lo, hi = ACTIONS[e.name]
            if not lo <= len(e.args) <= hi:  # dtrace(1) cooks the call before its use
                raise arg_count_error(e.name, len(e.args), lo, hi, e.span)
            raise NoValue(f"{e.name}() is an action and has no value", e.span, "void")
        sub = SUBROUTINES.get(e.name)
        if sub is None and e.name in UNAVAILABLE_SUBROUTINES:
            lo, hi = UNAVAILABLE_ARITY.get(e.name, (len(e.args), len(e.args)))
            if not lo <= len(e.args) <= hi:
                raise arg_count_error(e.name, len(e.args), lo, hi, e.span)
            raise DCompileError(UNAVAILABLE_SUBROUTINES[e.name], where)
        if sub is None:
            raise DCompileError(f"unknown function '{e.name}()'", where, tag="D_FUNC_UNDEF",
                                dtrace=f"undefined function name: {e.name}")
        n, hi = len(e.args), len(sub.args)
        lo = hi - sub.optional
        if not lo <= n <= hi:
            raise arg_count_error(e.name, n, lo, hi, e.span, "or")
        for i, (a, kind) in enumerate(zip(e.args, sub.args)):
            t = self.value(a)
            if isinstance(t, (VoidType, AggregationValue)):
                raise DCompileError(f"{e.name}() argument {i + 1} has no value ({t})", a.span,
                                    tag="D_PROTO_ARG",
                                    dtrace=proto_arg(e.name, i + 1, sub.proto(i), str(t)))
            if kind == "int" and not t.is_int:
                raise DCompileError(f"{e.name}() argument {i + 1} must be an integer, not {t}",
                                    a.span, tag="D_PROTO_ARG",
                                    dtrace=proto_arg(e.name, i + 1, sub.proto(i), str(t)))
            # NULL (a constant 0) is a char * too: DTrace faults when the clause runs
            if kind in ("string", "string or NULL") and not t.is_string \
                    and const_value(a, self.ann) == 0:
                continue
            if kind in ("string", "string or NULL") and not t.is_string:
                raise DCompileError(f"{e.name}() argument {i + 1} must be a string, not {t}",
                                    a.span, tag="D_PROTO_ARG",
                                    dtrace=proto_arg(e.name, i + 1, sub.proto(i), str(t)),
                                    hint="read a string from an address with "
                                         "copyinstr() (user) or stringof() (kernel)")
        for i in sub.constant_args:
            if i < n:
                self.constant(e.args[i], f"{e.name}() argument {i + 1}")
        if e.name == "copyin":
            size = self.constant(e.args[1], "copyin() size")
            if not 0 < size <= 4096:
                raise DCompileError("copyin() size must be between 1 and 4096", e.args[1].span)
            return PtrType(8, False, "void *", None)
        if sub.result == "string":
            return self._string_result(e)
        return sub.int_type or INT64

    def _string_result(self, e: ast.Call) -> DType:
        if e.name == "lltostr":
            return StringType(24)
        size = SUBROUTINES[e.name].size
        if size is not None:
            return StringType(min(size, self.st.strsize))
        if e.name == "stringof":
            t = self.ann.type(e.args[0])
            return t if t.is_string else StringType(self.st.strsize)
        return StringType(self.st.strsize)


# node class -> the ExprChecker method that types it
_RULES: dict[type, Callable[..., DType]] = {
    ast.IntLit: ExprChecker.int_lit, ast.CharLit: ExprChecker.char_lit,
    ast.StrLit: ExprChecker.str_lit, ast.MacroVar: ExprChecker.macro,
    ast.Ident: ExprChecker.ident, ast.ScopedVar: ExprChecker.scoped,
    ast.Index: ExprChecker.index, ast.AggRef: ExprChecker.agg_ref,
    ast.Unary: ExprChecker.unary, ast.Postfix: ExprChecker.postfix,
    ast.Binary: ExprChecker.binary, ast.Ternary: ExprChecker.ternary,
    ast.Assign: ExprChecker.assign, ast.Cast: ExprChecker.cast,
    ast.SizeOf: ExprChecker.sizeof, ast.StringOf: ExprChecker.stringof,
    ast.Member: ExprChecker.member, ast.Call: ExprChecker.call,
    ast.ArrayElem: array_elem, ast.AddressOf: address_of,
}
