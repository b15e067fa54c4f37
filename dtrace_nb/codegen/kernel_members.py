"""C reading kernel struct members through the pointers the language predefines
(`curthread->comm`, `curthread->real_parent->tgid`, `curthread->thread.fsbase`): offsets
and kinds come from the checker's resolver (lang/kernel_types.py, BTF), each read checked:
an unreadable address is DTrace's "invalid address" fault, as a `*p` read is."""

from __future__ import annotations

from typing import Any

from dtrace_nb.codegen.cwriter import if_stmt, stmt_expr
from dtrace_nb.errors import DCompileError
from dtrace_nb.faults import FLT_BADADDR
from dtrace_nb.lang import ast
from dtrace_nb.lang.kernel_types import (KernelArray, KernelMember, KernelPtr, KernelStruct,
                                         lookup)

# the expression emitter (codegen/expressions.py), which calls this module
Emitter = Any


def _member(em: Emitter, e: ast.Member) -> KernelMember:
    t = em.ty(e.base)
    assert isinstance(t, (KernelPtr, KernelStruct))
    m = lookup(t.struct, e.name)
    if m is None:  # the checker resolved it
        raise DCompileError(f"struct {t.struct} has no member named '{e.name}'", e.span)
    return m


def _base_address(em: Emitter, e: ast.Expr) -> str:
    """C of the address of the struct a kernel pointer or embedded struct `e` is."""
    if isinstance(em.ty(e), KernelPtr):
        return f"((u64)({em.int_expr(e)}))"
    if isinstance(e, ast.Index):
        return element_address(em, e)
    assert isinstance(e, ast.Member)
    return member_address(em, e)


def element_address(em: Emitter, e: ast.Index) -> str:
    """C of the kernel address of element `e` of a kernel array member."""
    t = em.ty(e.base)
    assert isinstance(t, KernelArray) and t.element is not None and isinstance(e.base, ast.Member)
    return (f"({member_address(em, e.base)} + "
            f"(u64)({em.int_expr(e.indexes[0])}) * {t.element.size})")


def member_address(em: Emitter, e: ast.Member) -> str:
    """C of the kernel address of member `e` (for a char array: of its first byte)."""
    return f"({_base_address(em, e.base)} + {_member(em, e).offset})"


def member_int(em: Emitter, e: ast.Member) -> str:
    """C of an integer or pointer member, read from kernel memory."""
    return _read_int(em, e, _member(em, e), member_address(em, e))


def element_int(em: Emitter, e: ast.Index) -> str:
    """C of an integer or pointer element of a kernel array member."""
    t = em.ty(e.base)
    assert isinstance(t, KernelArray) and t.element is not None
    return _read_int(em, e, t.element, element_address(em, e))


def _read_int(em: Emitter, e: ast.Expr, m: KernelMember, address: str) -> str:
    ct = em.ty(e).c_type()
    addr, v = em.fs.tmp("a"), em.fs.tmp("k")
    nbytes = (m.bit_offset + m.bits + 7) // 8 if m.bits else m.size
    stmts = [f"u64 {addr} = {address};", f"u64 {v} = 0;",
             if_stmt(f"bpf_probe_read_kernel(&{v}, {nbytes}, (void *){addr}) < 0",
                     [em.fs.fault(FLT_BADADDR, addr)])]
    if m.bits:
        stmts.append(f"{v} = ({v} >> {m.bit_offset}) & {(1 << m.bits) - 1}ULL;")
        if m.signed:  # sign-extend the field's top bit
            stmts.append(f"{v} = (u64)(((s64)({v} << {64 - m.bits})) >> {64 - m.bits});")
        return stmt_expr(stmts, f"(({ct}){v})")
    return stmt_expr(stmts, f"(({ct})(({'s' if m.signed else 'u'}{8 * min(m.size, 8)}){v}))")
