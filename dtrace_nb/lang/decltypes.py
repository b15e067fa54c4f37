"""Types a D program declares: structs, unions, enums, arrays and typedefs, laid out by
C's rules as DTrace lays out a D declaration (each member at its type's alignment, the
whole rounded to the largest alignment; a union's members all at offset 0).

The integer and pointer types are types.py's; this module only builds on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.lang.types import DType, IntType, PtrType, StringType, VoidType


@dataclass(frozen=True)
class ArrayType(DType):
    """`elem name[count]`: count elements laid out one after another."""

    elem: DType
    count: int

    def c_type(self) -> str:
        return f"{self.elem.c_type()}[{self.count}]"

    def __str__(self) -> str:
        return f"{self.elem} [{self.count}]"


@dataclass(frozen=True)
class EnumType(IntType):
    """An enum: an int whose named values are D constants."""

    values: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Field:
    name: str
    dtype: DType
    offset: int  # bytes from the start of the struct
    bits: int = 0  # a bit-field's width (0: not a bit-field)
    bit_offset: int = 0  # a bit-field's first bit, counted from `offset`


@dataclass(eq=False)
class StructType(DType):
    """A struct or union (kind) by its tag; `fields` is None until it is defined (a tag
    declared alone, or used before its definition, is incomplete)."""

    kind: str
    name: str
    fields: Optional[tuple[Field, ...]] = None
    size: int = 0
    align: int = 1

    def c_type(self) -> str:
        return f"u8[{self.size}]"

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def complete(self) -> bool:
        return self.fields is not None

    def field(self, name: str) -> Optional[Field]:
        return next((f for f in self.fields or () if f.name == name), None)


def size_of(t: DType) -> Optional[int]:
    """sizeof(t), or None when the type has no size (void, an incomplete struct)."""
    if isinstance(t, StructType):
        return t.size if t.complete else None
    if isinstance(t, ArrayType):
        elem = size_of(t.elem)
        return None if elem is None else elem * t.count
    if isinstance(t, StringType):
        return t.size
    if isinstance(t, IntType):
        return t.size
    return None


def align_of(t: DType) -> int:
    if isinstance(t, StructType):
        return t.align
    if isinstance(t, ArrayType):
        return align_of(t.elem)
    if isinstance(t, IntType):
        return t.size
    return 1


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


@dataclass
class MemberSpec:
    """A member as the checker resolved it, before layout."""

    name: str
    dtype: DType
    bits: Optional[int] = None  # None: not a bit-field


def lay_out(struct: StructType, members: list[MemberSpec]) -> None:
    """Give `struct` its fields, size and alignment. A bit-field takes the next bits of
    the storage unit of its type when they fit, else starts the next unit (gcc's rule)."""
    fields: list[Field] = []
    end_bits = 0  # bits used so far
    align = 1
    for m in members:
        a = align_of(m.dtype)
        size = size_of(m.dtype) or 0
        if struct.kind == "union":
            fields.append(Field(m.name, m.dtype, 0, m.bits or 0, 0))
            end_bits = max(end_bits, (m.bits if m.bits is not None else size * 8))
        elif m.bits is not None:
            unit = size * 8
            start = end_bits
            if m.bits == 0:  # an unnamed zero-width bit-field: start the next unit
                end_bits = _round_up(end_bits, unit)
                continue
            if start // unit != (start + m.bits - 1) // unit:
                start = _round_up(start, unit)
            unit_offset = start // unit * size
            fields.append(Field(m.name, m.dtype, unit_offset, m.bits, start - unit_offset * 8))
            end_bits = start + m.bits
        else:
            offset = _round_up((end_bits + 7) // 8, a)
            fields.append(Field(m.name, m.dtype, offset))
            end_bits = (offset + size) * 8
        align = max(align, a)
    struct.fields = tuple(f for f in fields if f.name)
    struct.size = _round_up((end_bits + 7) // 8, align)
    struct.align = align


@dataclass
class TypeTable:
    """The program's declared types: tags (struct, union, enum) and typedef names."""

    tags: dict[tuple[str, str], DType] = field(default_factory=dict)
    typedefs: dict[str, DType] = field(default_factory=dict)

    def tag(self, kind: str, name: str) -> DType:
        """The type of `kind name` (an incomplete struct or union when not yet defined)."""
        key = (kind, name)
        if key not in self.tags and kind in ("struct", "union"):
            self.tags[key] = StructType(kind, name)
        return self.tags.get(key)


def pointer_to(target: Optional[DType], name: str) -> PtrType:
    """A pointer remembering `target` (None or void: a void pointer)."""
    return PtrType(8, False, f"{name} *", None if isinstance(target, VoidType) else target)
