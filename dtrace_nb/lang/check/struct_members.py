"""Members of declared structs and unions: `v.m` of a struct variable (global or
clause-local), `p->m` and `(*p).m` of a pointer to a declared struct, nested `v.a.b`.
The member's Field (offset, bits) goes into the annotations for the code generator."""

from __future__ import annotations

from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.decltypes import ArrayType, Field, StructType
from dtrace_nb.lang.check.state import const_value
from dtrace_nb.lang.types import DType, PtrType


def struct_member(checker, e: ast.Member, t: DType) -> Optional[DType]:
    """The type of member `e` of a value of type `t`, or None when `t` is not a declared
    struct (or pointer to one): then the caller's rules apply."""
    if e.arrow:
        if not (isinstance(t, PtrType) and isinstance(t.target, StructType)):
            return None
        struct = t.target
    else:
        if not isinstance(t, StructType):
            if isinstance(t, PtrType) and isinstance(t.target, StructType):
                raise DCompileError(f"{t} is a pointer: use -> to reach its members", e.span,
                                    tag="D_OP_SOU",
                                    dtrace=f'operator . cannot be applied to type "{t}"; must '
                                           'be applied to a struct or union')
            return None
        struct = t
        _addressable(e.base)
    if not struct.complete:
        op = "->" if e.arrow else "."
        raise DCompileError(f"operator {op} cannot be applied to a forward declaration: no "
                            f"{struct} definition is available", e.span, tag="D_OP_INCOMPLETE")
    f = struct.field(e.name)
    if f is None:
        raise DCompileError(f"{e.name} is not a member of {struct}", e.span, tag="D_TYPE_MEMBER",
                            hint="members: " + ", ".join(x.name for x in struct.fields or ()))
    checker.ann.members[e] = f
    if isinstance(f.dtype, ArrayType):  # as in C, an array is the address of its first element
        return PtrType(8, False, f"{f.dtype.elem} *", f.dtype.elem)
    return f.dtype


def _addressable(base: ast.Expr) -> None:
    if isinstance(base, (ast.Ident, ast.ScopedVar, ast.Member)):
        return
    if isinstance(base, ast.Unary) and base.op == "*":
        return
    raise DCompileError("'.' needs a struct variable or member here", base.span)


def element_lvalue(checker, target: ast.ArrayElem) -> DType:
    return checker.expr(target)


def member_lvalue(checker, target: ast.Member) -> DType:
    """The type of an assignable member: one of a struct variable (kernel memory behind
    a pointer cannot be written), and not a bit-field."""
    t = checker.expr(target)
    f = checker.ann.members.get(target)
    if not isinstance(f, Field):
        raise DCompileError(f"{target.name} cannot be assigned: only members of struct "
                            "variables can", target.span)
    root = target
    while isinstance(root, ast.Member) and not root.arrow:
        root = root.base
    if not isinstance(root, (ast.Ident, ast.ScopedVar)):
        raise DCompileError("memory behind a pointer cannot be written; assign members of "
                            "struct variables", target.span)
    if isinstance(f.dtype, ArrayType):
        raise DCompileError(f"array member '{f.name}' cannot be assigned", target.span)
    if not t.is_int:
        raise DCompileError(f"member '{f.name}' of type {t} cannot be assigned", target.span)
    return t


def array_elem(checker, e: ast.ArrayElem) -> DType:
    """`a[i]` of a fixed-size array variable: its element type; a constant index must be
    within the bounds (a computed one is checked when it runs)."""
    t = checker.expr(e.array)
    assert isinstance(t, ArrayType)
    it = checker.expr(e.index)
    if not it.is_int:
        raise DCompileError(f"an array index must be an integer, not {it}", e.index.span)
    value = const_value(e.index, checker.ann)
    if value is not None and not 0 <= value < t.count:
        raise DCompileError(f"index {value} is out of bounds: the array has {t.count} "
                            "elements", e.index.span, tag="D_ARR_BOUNDS",
                            dtrace=f"index outside array bounds: {value}, max is {t.count}")
    return t.elem


def address_of(checker, e: ast.AddressOf) -> DType:
    checker.expr(e.operand)
    return PtrType(8, False, "void *", None)
