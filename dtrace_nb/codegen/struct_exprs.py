"""Members of declared structs and unions as BPF C: the member's address is worked out
from its base (a struct variable's bytes in the globals or clause-locals map value, read
directly; memory behind a pointer, read with bpf_probe_read_kernel and a fault on a bad
address); bit-fields are shifted and masked out of their storage unit."""

from __future__ import annotations

from dtrace_nb.codegen.cwriter import if_stmt, stmt_expr
from dtrace_nb.faults import FLT_BADADDR, FLT_BADINDEX
from dtrace_nb.lang import ast
from dtrace_nb.lang.decltypes import ArrayType, Field, bit_field_size, size_of
from dtrace_nb.lang.types import IntType, promote


def is_declared_member(em, e: ast.Expr) -> bool:
    """An element, member or address of a declared struct or array (this module's)."""
    return isinstance(e, (ast.ArrayElem, ast.AddressOf)) or (isinstance(e, ast.Member)
                                             and isinstance(em.fs.ann.members.get(e), Field))


def _element_address(em, e: ast.ArrayElem) -> str:
    """The address of a[i], after checking 0 <= i < the array's length (DTrace's
    "index out of bounds" fault otherwise)."""
    t = em.ty(e.array)
    assert isinstance(t, ArrayType)
    base, _ = _address(em, e.array)
    ix = em.fs.tmp("ix")
    check = stmt_expr([f"u64 {ix} = (u64)({em.int_expr(e.index)});",
                       if_stmt(f"{ix} >= {t.count}", [em.fs.fault(FLT_BADINDEX, ix)])], ix)
    return f"({base} + {check} * {size_of(t.elem)})"


def _address(em, e: ast.Expr) -> tuple[str, bool]:
    """(C address of the struct value `e` denotes, whether it is a map value's memory that
    can be read and written directly)."""
    if isinstance(e, (ast.Ident, ast.ScopedVar)):
        return f"((u8 *){em.var_place(em.layout(em.fs.ann.vars[e]))})", True
    if isinstance(e, ast.Member) and not e.arrow:
        base, direct = _address(em, e.base)
        return f"({base} + {em.fs.ann.members[e].offset})", direct
    if isinstance(e, ast.Member):  # p->m
        return f"((u8 *)(u64)({em.int_expr(e.base)}) + {em.fs.ann.members[e].offset})", False
    assert isinstance(e, ast.Unary) and e.op == "*"
    return f"((u8 *)(u64)({em.int_expr(e.operand)}))", False


def _member_address(em, e) -> tuple[str, bool]:
    if isinstance(e, ast.ArrayElem):
        return _element_address(em, e), True
    f: Field = em.fs.ann.members[e]
    if e.arrow:
        return f"((u8 *)(u64)({em.int_expr(e.base)}) + {f.offset})", False
    base, direct = _address(em, e.base)
    return f"({base} + {f.offset})", direct


def read_member(em, e) -> str:
    if isinstance(e, ast.AddressOf):
        return f"((u64){_address(em, e.operand)[0]})"
    f: Field = _field(em, e)
    t = f.dtype
    addr, direct = _member_address(em, e)
    if isinstance(t, ArrayType):  # the address of its first element
        return f"((u64)({addr}))"
    assert isinstance(t, IntType)
    nbytes = bit_field_size(f.bits) if f.bits else t.size  # a bit-field's own bytes only
    unit = f"u{nbytes * 8}"
    if direct:
        raw = f"(*({unit} *){addr})"
    else:
        v, a = em.fs.tmp("d"), em.fs.tmp("a")
        raw = stmt_expr([f"u8 *{a} = {addr};", f"{unit} {v} = 0;",
                         if_stmt(f"bpf_probe_read_kernel(&{v}, {nbytes}, {a}) < 0",
                                 [em.fs.fault(FLT_BADADDR, f"(u64){a}")])], v)
    if not f.bits:
        return f"(({t.c_type()}){raw})"
    mask = (1 << f.bits) - 1
    bits = f"((u64)({raw} >> {f.bit_offset}) & {mask:#x}ULL)"
    if t.signed:  # sign-extend from the field's top bit
        shift = 64 - f.bits
        return f"(({t.c_type()})(((s64)({bits} << {shift})) >> {shift}))"
    return f"(({t.c_type()}){bits})"


def assign_member(em, e: ast.Assign) -> str:
    target = e.target
    f: Field = _field(em, target)
    t = f.dtype
    addr, _ = _member_address(em, target)
    if e.op == "=":
        value = em.int_expr(e.value)
    else:
        op, vt = e.op[:-1], em.ty(e.value)
        rt = promote(t, vt) if op not in ("<<", ">>") else t
        value = em.arith(op, read_member(em, target), em.int_expr(e.value), t, vt, rt)
    return _store(em, t, addr, value, f.bits)


def incdec_member(em, target: ast.Member, op: str, post: bool) -> str:
    f = _field(em, target)
    t = f.dtype
    ct = t.c_type()
    old = em.fs.tmp("o")
    sign = "+" if op == "++" else "-"
    addr, _ = _member_address(em, target)
    stored = _store(em, t, addr, f"{old} {sign} 1", f.bits)
    return stmt_expr([f"{ct} {old} = {read_member(em, target)};", f"(void){stored};"],
                     old if post else f"(({ct})({old} {sign} 1))")


def _field(em, e) -> Field:
    """The Field a member denotes; an array element is a field of the element type."""
    if isinstance(e, ast.ArrayElem):
        return Field("", em.ty(e), 0)
    return em.fs.ann.members[e]


def _store(em, t: IntType, addr: str, value: str, bits: int = 0) -> str:
    ct, v = t.c_type(), em.fs.tmp("v")
    if not bits:
        return stmt_expr([f"{ct} {v} = ({ct})({value});", f"*({ct} *){addr} = {v};"], v)
    # a bit-field: its own bytes take the value's low bits; the value of the assignment
    # is what the field now holds (truncated, and sign-extended when the type is signed)
    unit = f"u{bit_field_size(bits) * 8}"
    mask, shift = (1 << bits) - 1, 64 - bits
    held = (f"(({ct})(((s64)(((u64){v} & {mask:#x}ULL) << {shift})) >> {shift}))" if t.signed
            else f"(({ct})((u64){v} & {mask:#x}ULL))")
    return stmt_expr([f"{ct} {v} = ({ct})({value});",
                      f"*({unit} *){addr} = ({unit})((u64){v} & {mask:#x}ULL);"], held)


def assign_struct(em, e: ast.Assign) -> str:
    """`a = b` of two struct variables: b's bytes copied over a's, eight at a time (both
    are map-value fields rounded up to 8 bytes)."""
    dst, _ = _address(em, e.target)
    src, _ = _address(em, e.value)
    size = em.layout(em.fs.ann.vars[e.target]).field.size
    d, s = em.fs.tmp("sd"), em.fs.tmp("ss")
    copy = [f"{d}[{i}] = {s}[{i}];" for i in range(size // 8)]
    return stmt_expr([f"u64 *{d} = (u64 *){dst};", f"u64 *{s} = (u64 *){src};", *copy], "0")
