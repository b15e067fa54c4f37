"""Kernel structures reached through pointers the language predefines: `curthread` is a
`struct task_struct *`, and `curthread->comm`, `curthread->real_parent->tgid`,
`curthread->thread.fsbase` read the running kernel's structures as DTrace on Linux reads
them through CTF.

The language does not read the kernel's type information itself: the runtime registers a
resolver (`use_resolver`, from BTF) that says where a member is and what it holds. Without
one (no BTF), member access is refused with a located error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.types import DType, IntType, PtrType, StringType, TranslatedType


@dataclass(frozen=True)
class KernelMember:
    """Where a member of a kernel struct is and what it holds: `kind` is "int" (`size`
    bytes, `signed`; a bit-field when `bits`), "ptr" (to struct `target` when it names
    one, else to `type_text`), "struct" (embedded struct or union `target`), "chars" (a
    char array of `size` bytes: a string), "array" (`size` elements, each `element`) or
    "other" (what cannot be read)."""

    offset: int
    kind: str
    size: int = 8
    signed: bool = False
    target: str = ""
    bit_offset: int = 0
    bits: int = 0
    type_text: str = ""
    element: Optional["KernelMember"] = None  # "array": `size` elements of this (offset 0)


@dataclass(frozen=True)
class KernelPtr(PtrType):
    """A pointer to kernel struct `struct`: `->member` reads it."""

    struct: str = ""


@dataclass(frozen=True)
class KernelStruct(TranslatedType):
    """A kernel struct embedded in another (`curthread->thread`): `.member` reads it."""

    struct: str = ""


@dataclass(frozen=True)
class KernelArray(TranslatedType):
    """An array member of a kernel struct (`pid->numbers`): `[i]` reads an element."""

    element: Optional[KernelMember] = None
    count: int = 0


Resolver = Callable[[str, str], Optional[KernelMember]]
_resolver: list[Resolver] = []


def use_resolver(resolver: Resolver) -> None:
    """The runtime's source of kernel struct layouts (BTF): set once, before checking."""
    _resolver[:] = [resolver]
    lookup.cache_clear()


@lru_cache(maxsize=None)
def lookup(struct: str, member: str) -> Optional[KernelMember]:
    return _resolver[0](struct, member) if _resolver else None


def task_pointer(name: str = "struct task_struct *") -> KernelPtr:
    return KernelPtr(8, False, name, None, "task_struct")


def member_type(t: DType, e: ast.Member) -> DType:
    """The D type of member `e` of kernel struct type `t` (a KernelPtr with ->, a
    KernelStruct with .), or a located error."""
    struct = t.struct if isinstance(t, (KernelPtr, KernelStruct)) else ""
    if isinstance(t, KernelPtr) and not e.arrow:
        raise DCompileError(f"{t} is a pointer: use -> to reach its members", e.span)
    if isinstance(t, KernelStruct) and e.arrow:
        raise DCompileError(f"{t} is a struct, not a pointer: use . to reach its members",
                            e.span)
    if isinstance(t, KernelArray):
        raise DCompileError(f"{t} is an array: index it before reaching a member", e.span)
    if not _resolver:
        raise DCompileError(f"the members of struct {struct} are unknown: this kernel has no "
                            "BTF (/sys/kernel/btf/vmlinux)", e.span)
    m = lookup(struct, e.name)
    if m is None:
        raise DCompileError(f"struct {struct} has no member named '{e.name}'", e.span)
    if m.kind == "array" and m.element is not None:
        return KernelArray(m.type_text, (), m.element, m.size)
    return _value_type(m, struct, e)


def element_type(t: KernelArray, e: ast.Index, index: Optional[int]) -> DType:
    """The type of `array[i]` (`index`: its value when constant, checked against the
    array's length unless it is a flexible array member)."""
    assert t.element is not None
    if index is not None and t.count > 1 and not 0 <= index < t.count:
        raise DCompileError(f"index outside array bounds: {index}, max is {t.count}",
                            e.indexes[0].span, tag="D_ARR_BOUNDS")
    return _value_type(t.element, t.name, e)


def _value_type(m: KernelMember, struct: str, e: ast.Expr) -> DType:
    if m.kind == "int":
        return IntType(m.size, m.signed, m.type_text or f"{'' if m.signed else 'u'}int")
    if m.kind == "ptr":
        if m.target:
            return KernelPtr(8, False, f"struct {m.target} *", None, m.target)
        return PtrType(8, False, m.type_text or "void *", None)
    if m.kind == "struct":
        return KernelStruct(f"struct {m.target}", (), m.target)
    if m.kind == "chars":
        return StringType(m.size)
    raise DCompileError(f"struct {struct}: {m.type_text} cannot be read yet: only "
                        "integers, pointers, char arrays, embedded structs and arrays of "
                        "those", e.span)
