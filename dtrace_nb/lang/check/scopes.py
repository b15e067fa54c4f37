"""Typing of variables: references and assignments of globals, associative arrays,
thread-locals (`self->`) and clause-locals (`this->`).

A variable takes the type of its first assignment in program order (or its declaration),
as in D; assigning creates it. As in DTrace (dt_xcook_ident called to create), `x++`,
`x += 2`, any use of `self->x`, `this->x` or `a[k]` also create a variable never assigned
before: an int64_t (0 until set). Only a plain global read (`trace(x)`) of a name nothing
assigns is an error. Part of the expression checker (exprs.py)."""

from __future__ import annotations

from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import EXECNAME, INT_BUILTINS, PROBE_STRINGS, UNAVAILABLE_BUILTINS
from dtrace_nb.lang.check.struct_members import element_lvalue, member_lvalue
from dtrace_nb.lang.constants import CONSTANTS
from dtrace_nb.lang.check.results import Annotations, Variable
from dtrace_nb.lang.check.state import (CheckState, NoValue, check_keys, const_value, describe,
                                        is_null)
from dtrace_nb.lang import translated
from dtrace_nb.lang.kernel_types import KernelArray, element_type
from dtrace_nb.lang.types import (CHAR, INT64, DType, PtrType, StringType, TranslatedType,
                                  VoidType)

_RESERVED = ("execname", "args")
NULL_TYPE = PtrType(8, False, "void *", None)  # D's NULL: (void *)0
_UNKNOWN_HINT = ("assign it first (x = ...), or use a built-in: pid tid ppid uid gid execname "
                 "timestamp cpu id probefunc arg0..arg9 ...")


class VariableRules:
    """The variable half of ExprChecker."""

    st: CheckState
    ann: Annotations
    lenient: bool

    def expr(self, e: ast.Expr) -> DType:
        raise NotImplementedError  # ExprChecker's

    def args_index(self, e: ast.Index) -> DType:
        raise NotImplementedError  # ExprChecker's

    # -- references ---------------------------------------------------------------------

    def ident(self, e: ast.Ident) -> DType:
        n = e.name
        var = self.st.vars.get(("global", n))
        if var is not None:
            if var.is_assoc:
                raise DCompileError(f"{n} is an associative array; index it: {n}[...]", e.span,
                                    tag="D_IDENT_BADREF", dtrace=f"associative array '{n}' may "
                                                                 "not be referenced as scalar")
            self.ann.vars[e] = var
            return var.type
        if n in INT_BUILTINS:
            return INT_BUILTINS[n]
        if n == "execname":
            return EXECNAME
        if n in PROBE_STRINGS:
            return StringType(self.st.probe_string_size)
        if n in translated.PATH_VARIABLES:
            return StringType(self.st.strsize)
        if n in translated.TRANSLATED_VARIABLES:
            return translated.TRANSLATED_VARIABLES[n]
        if n in translated.CONSTANTS:
            return translated.CONSTANT_TYPES[n]
        if n in translated.INDEXED_VARIABLES:
            raise DCompileError(f"{n} must be indexed: {n}[...]", e.span)
        if n in UNAVAILABLE_BUILTINS:
            raise DCompileError(UNAVAILABLE_BUILTINS[n], e.span)
        if n in CONSTANTS:
            value, t = CONSTANTS[n]
            self.ann.macros[e] = value
            return t
        if n == "args":
            raise DCompileError("args must be indexed: args[N]", e.span, tag="D_IDENT_BADREF")
        if n == "NULL":
            return NULL_TYPE
        if self.lenient:
            return INT64
        raise DCompileError(f"unknown variable '{n}'", e.span, hint=_UNKNOWN_HINT,
                            tag="D_IDENT_UNDEF",
                            dtrace=f"failed to resolve {n}: Unknown variable name")

    def scoped(self, e: ast.ScopedVar) -> DType:
        var = self.st.vars.get((e.scope, e.name))
        if var is None:
            if self.lenient:  # a later clause may assign it first in program order
                return INT64
            var = self._new_var(e.scope, e.name, INT64, e.span)
        elif var.is_assoc:
            raise DCompileError(f"{var.label} is an associative array; index it: "
                                f"{var.label}[...]", e.span)
        self.ann.vars[e] = var
        return var.type

    def index(self, e: ast.Index) -> DType:
        base = e.base
        if isinstance(base, ast.AggRef):
            raise NoValue("an aggregation has no value in an expression", e.span,
                          "aggregation", hint="print it with printa() or read it from the result")
        if isinstance(base, ast.Ident) and base.name == "args" \
                and ("global", "args") not in self.st.vars:
            return self.args_index(e)
        if self._indexes_a_string(base):
            return self._string_char(e)
        if isinstance(self.ann.type_or_none(base), KernelArray):
            if len(e.indexes) != 1 or not self.expr(e.indexes[0]).is_int:
                raise DCompileError("an array is indexed by one integer", e.span)
            t = self.ann.type(base)
            assert isinstance(t, KernelArray)
            return element_type(t, e, const_value(e.indexes[0], self.ann))
        if isinstance(base, ast.Ident) and base.name in translated.INDEXED_VARIABLES \
                and ("global", base.name) not in self.st.vars:
            return translated.index_type(base.name, e, self._key_types(e),
                                         const_value(e.indexes[0], self.ann))
        scope, name = self._array_name(e)
        key_types = self._key_types(e)
        var = self.st.vars.get((scope, name))
        if var is None:
            if self.lenient:
                return INT64
            var = self._new_array(scope, name, INT64, key_types, e.span)
        if not var.is_assoc:
            raise DCompileError(f"{var.label} is a scalar and cannot be indexed", e.span)
        self._match_keys(var, key_types, e)
        self.ann.vars[e] = var
        return var.type

    def _indexes_a_string(self, base: ast.Expr) -> bool:
        """Whether `base[i]` reads a character of a string (execname[0], s[strlen(s) - 1],
        self->name[i], a[k][1], curpsinfo->pr_psargs[0]) rather than naming an associative
        array (a[k], self->a[k]) or indexing a kernel array."""
        if isinstance(base, (ast.Ident, ast.ScopedVar)):
            scope = base.scope if isinstance(base, ast.ScopedVar) else "global"
            var = self.st.vars.get((scope, base.name))
            if var is not None:
                return var.type.is_string and not var.is_assoc
            return isinstance(base, ast.Ident) and (base.name == "execname"
                                                    or base.name in PROBE_STRINGS)
        return self.expr(base).is_string

    def _string_char(self, e: ast.Index) -> DType:
        """`s[i]`: the char at index i of a string (0 past its buffer), as *(s + i)."""
        t = self.expr(e.base)
        if len(e.indexes) != 1 or not self.expr(e.indexes[0]).is_int:
            raise DCompileError("a string takes one integer index", e.span)
        n = const_value(e.indexes[0], self.ann)
        # a struct member is a char array of a known size (pr_name, comm): DTrace checks it
        if isinstance(e.base, ast.Member) and n is not None and not 0 <= n < t.size:
            raise DCompileError(f"index outside array bounds: {n}, max is {t.size}",
                                e.indexes[0].span, tag="D_ARR_BOUNDS")
        return CHAR

    @staticmethod
    def _array_name(e: ast.Index) -> tuple[str, str]:
        """(scope, name) of an associative array reference: `a[k]` or `self->a[k]`."""
        base = e.base
        if isinstance(base, ast.Ident):
            return "global", base.name
        if isinstance(base, ast.ScopedVar) and base.scope == "self":
            return "self", base.name
        if isinstance(base, ast.ScopedVar):
            raise DCompileError("clause-local (this->) variables cannot be associative arrays",
                                e.span, tag="D_ARR_LOCAL")
        raise DCompileError("only associative arrays and args[] can be indexed", e.span)

    def _new_array(self, scope: str, name: str, t: DType, key_types: list[DType],
                   span: ast.Span) -> Variable:
        keys = [StringType(self.st.strsize) if k.is_string else INT64 for k in key_types]
        return self._new_var(scope, name, t, span, keys)

    def _key_types(self, e: ast.Index) -> list[DType]:
        key_types = [self.expr(k) for k in e.indexes]
        for k, t in zip(e.indexes, key_types):
            if not (t.is_int or t.is_string):
                raise DCompileError(f"an array key must be an integer or a string, not {t}",
                                    k.span)
        return key_types

    @staticmethod
    def _match_keys(var: Variable, key_types: list[DType], e: ast.Index) -> None:
        assert var.key_types is not None
        check_keys(f"{var.name}[]", var.span, var.key_types, key_types, e.span,
                   [k.span for k in e.indexes], ",")

    # -- assignment ---------------------------------------------------------------------

    def assign(self, e: ast.Assign) -> DType:
        vt = self.expr(e.value)
        if isinstance(vt, (TranslatedType, VoidType)):
            raise DCompileError(f"a variable cannot hold {vt}", e.value.span,
                                hint="assign a member instead, e.g. x = args[0]->member")
        if e.op != "=" and not vt.is_int:
            t = self.lvalue(e.target, None)
            raise DCompileError(f"operator {e.op} needs an integer value, not {vt}", e.value.span,
                                tag="D_OP_INCOMPAT",
                                dtrace=f'operands have incompatible types: "{t}" {e.op} "{vt}"')
        t = self.lvalue(e.target, vt if e.op == "=" else None, e.op)
        null = is_null(e.value, self.ann)
        if e.op == "=" and t.is_int and vt.is_int and not null \
                and isinstance(t, PtrType) != isinstance(vt, PtrType):  # dt_node_is_argcompat: a pointer takes a pointer or NULL
            raise DCompileError(f'operands have incompatible types: "{t}" {e.op} "{vt}"',
                                e.span, tag="D_OP_INCOMPAT")
        if t.is_string != vt.is_string and not (t.is_string and null):
            raise DCompileError(f"cannot assign {vt} to {describe(e.target)}, which is {t}",
                                e.span, tag="D_OP_INCOMPAT",
                                dtrace=f'operands have incompatible types: "{t}" {e.op} "{vt}"')
        if e.op != "=" and not t.is_int:
            raise DCompileError(f"operator {e.op} needs an integer variable", e.span)
        return t

    def incdec(self, e: ast.Expr, operand: ast.Expr, op: str) -> DType:
        t = self.lvalue(operand, None, op)
        if not t.is_int:
            raise DCompileError(f"operator {op} needs an integer variable", e.span,
                                tag="D_OP_SCALAR",
                                dtrace=f"operator {op} requires operand of scalar type")
        return t

    def lvalue(self, target: ast.Expr, new_type: Optional[DType], op: str = "=") -> DType:
        """The type of an assignable expression, creating the variable on first assignment
        (`new_type` None: it must exist already, as for `x += 1` and `x++`)."""
        if isinstance(target, ast.Ident):
            n = target.name
            if n in INT_BUILTINS or n in PROBE_STRINGS or n in _RESERVED:
                raise DCompileError(f"'{n}' is a built-in variable and cannot be assigned",
                                    target.span, tag="D_OP_WRITE",
                                    dtrace="operator = can only be applied to a writable "
                                           "variable")
            var = self.st.vars.get(("global", n))
            if var is None:
                var = self._new_var("global", n, new_type or INT64, target.span)
            elif var.is_assoc:
                raise DCompileError(f"{n} is an associative array; index it: {n}[...]",
                                    target.span)
        elif isinstance(target, ast.ScopedVar):
            var = self.st.vars.get((target.scope, target.name))
            if var is None:
                var = self._new_var(target.scope, target.name, new_type or INT64, target.span)
            elif var.is_assoc:
                raise DCompileError(f"{var.label} is an associative array; index it: "
                                    f"{var.label}[...]", target.span)
        elif isinstance(target, ast.Index) and not (isinstance(target.base, ast.Ident)
                                                    and target.base.name == "args"):
            scope, n = self._array_name(target)
            key_types = self._key_types(target)
            var = self.st.vars.get((scope, n))
            if var is None:
                var = self._new_array(scope, n, new_type or INT64, key_types, target.span)
            if not var.is_assoc:
                raise DCompileError(f"{var.label} is a scalar and cannot be indexed",
                                    target.span)
            self._match_keys(var, key_types, target)
        elif isinstance(target, ast.Member):
            return member_lvalue(self, target)
        elif isinstance(target, ast.ArrayElem):
            return element_lvalue(self, target)
        else:
            raise DCompileError(f"{describe(target)} cannot be assigned", target.span,
                                hint="assign variables: x, x[key], self->x, this->x",
                                tag="D_OP_LVAL", dtrace=f"operator {op} requires modifiable "
                                                        "lvalue as an operand")
        self.ann.vars[target] = var
        self.ann.types[target] = var.type
        return var.type

    def _new_var(self, scope: str, name: str, t: DType, span: ast.Span,
                 keys: Optional[list[DType]] = None) -> Variable:
        if not (t.is_int or t.is_string):
            raise DCompileError(f"a variable cannot hold {t}", span)
        var = Variable(scope, name, self.st.storage_type(t), span, keys)
        self.st.vars[(scope, name)] = var
        return var
