"""Types a D program declares: structs, unions, enums, arrays and typedefs, laid out by
C's rules as DTrace lays out a D declaration (each member at its type's alignment, the
whole rounded to the largest alignment; a union's members all at offset 0).

The integer and pointer types are types.py's; this module only builds on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.types import (DType, IntType, PtrType, StringType, VoidType,
                                  builtin_typedef, type_from_words)


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


def bit_field_size(bits: int) -> int:
    """The bytes a bit-field of `bits` occupies: CTF makes it an integer of that width,
    sized to the next power of two bytes (libctf's ctf_add_integer)."""
    size = 1
    while size * 8 < bits:
        size *= 2
    return size


def lay_out(struct: StructType, members: list[MemberSpec]) -> None:
    """Give `struct` its fields, size and alignment as DTrace's declarations get them from
    libctf (ctf_add_member): each member starts at the first byte after the previous
    member's last bit, rounded up to its own alignment; a bit-field is an integer of its
    width (so it starts on a byte and is bit_field_size() bytes); the size is the end of
    the last member, not padded to the alignment; a union's members all start at 0."""
    fields: list[Field] = []
    end_bits, size, align = 0, 0, 1
    for m in members:
        if m.bits is not None:
            msize = bit_field_size(m.bits) if m.bits else 0
            mbits = m.bits
        else:
            msize = size_of(m.dtype) or 0
            mbits = msize * 8
        malign = msize if m.bits is not None else align_of(m.dtype)
        if struct.kind == "union":
            offset = 0
        else:
            offset = _round_up(_round_up(end_bits, 8) // 8, max(malign, 1))
            end_bits = offset * 8 + mbits
        if m.name:
            fields.append(Field(m.name, m.dtype, offset, m.bits or 0, 0))
        size = max(size, offset + msize)
        align = max(align, malign)
    struct.fields = tuple(fields)
    struct.size = size
    struct.align = align


@dataclass
class TypeTable:
    """The program's declared types: tags (struct, union, enum) and typedef names."""

    tags: dict[tuple[str, str], DType] = field(default_factory=dict)
    typedefs: dict[str, DType] = field(default_factory=dict)
    constants: dict[str, tuple[int, DType]] = field(default_factory=dict)  # enumerators
    # definitions already made, by the identity of their node (kept alive with it)
    defined: dict[int, tuple[ast.Node, DType]] = field(default_factory=dict)

    def constants_by_name(self) -> dict[str, int]:
        return {name: value for name, (value, _) in self.constants.items()}

    def tag(self, kind: str, name: str) -> DType:
        """The type of `kind name` (an incomplete struct or union when not yet defined)."""
        key = (kind, name)
        if key not in self.tags and kind in ("struct", "union"):
            self.tags[key] = StructType(kind, name)
        return self.tags.get(key)


def pointer_to(target: Optional[DType], name: str) -> PtrType:
    """A pointer remembering `target` (None or void: a void pointer)."""
    return PtrType(8, False, f"{name} *", None if isinstance(target, VoidType) else target)


# ------------------------------------------------------------------ from the AST to types


def fold(e: ast.Expr, names: dict[str, int], what: str) -> int:
    """The value of an integer constant expression (enumerators, array sizes, bit-field
    widths); `names` are the constants declared so far."""
    if isinstance(e, (ast.IntLit, ast.CharLit)):
        return e.value
    if isinstance(e, ast.Ident) and e.name in names:
        return names[e.name]
    if isinstance(e, ast.Unary) and e.op in _UNARY:
        return _UNARY[e.op](fold(e.operand, names, what))
    if isinstance(e, ast.Binary) and e.op in _BINARY:
        a, b = fold(e.left, names, what), fold(e.right, names, what)
        if e.op in ("/", "%") and b == 0:
            raise DCompileError("division by zero in a constant expression", e.span)
        return _BINARY[e.op](a, b)
    if isinstance(e, ast.Ternary):
        return fold(e.then if fold(e.cond, names, what) else e.other, names, what)
    raise DCompileError(f"{what} must be an integer constant expression", e.span)


def _div(a: int, b: int) -> int:  # C's division truncates toward zero
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


_UNARY = {"-": lambda a: -a, "+": lambda a: a, "~": lambda a: ~a, "!": lambda a: int(not a)}
_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "/": _div, "%": lambda a, b: a - _div(a, b) * b,
           "<<": lambda a, b: a << b, ">>": lambda a, b: a >> b, "&": lambda a, b: a & b,
           "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
           "==": lambda a, b: int(a == b), "!=": lambda a, b: int(a != b),
           "<": lambda a, b: int(a < b), "<=": lambda a, b: int(a <= b),
           ">": lambda a, b: int(a > b), ">=": lambda a, b: int(a >= b),
           "&&": lambda a, b: int(bool(a and b)), "||": lambda a, b: int(bool(a or b)),
           "^^": lambda a, b: int(bool(a) != bool(b))}


def resolve(table: "TypeTable", tn: ast.TypeName, strsize: int) -> DType:
    """The type `tn` names, defining the struct, union or enum it carries (once)."""
    if tn.definition is not None:
        base: Optional[DType] = _define(table, tn.definition, strsize)
    elif tn.words[0] in ("struct", "union", "enum") and len(tn.words) == 2:
        base = table.tag(tn.words[0], tn.words[1])
        if base is None:
            raise DCompileError(f"unknown type '{' '.join(tn.words)}'", tn.span)
    elif tn.typedef:
        base = table.typedefs.get(tn.words[0]) or builtin_typedef(tn.words[0])
        if base is None:
            raise DCompileError(f"unknown type '{tn.words[0]}'", tn.span)
    else:
        base = type_from_words(tn.words, tn.pointer, strsize)
        if base is None:
            tag, text = _combination(tn.words)
            raise DCompileError(f"unknown type '{tn}'", tn.span, tag=tag, dtrace=text)
        return _arrays(table, base, tn, strsize)
    name = str(base)
    for _ in range(tn.pointer):
        base = pointer_to(base, name)
        name = f"{name} *"
    return _arrays(table, base, tn, strsize)


_ATTRIBUTES = ("signed", "unsigned", "short", "long")


def _combination(words: list[str]) -> tuple[str, str]:
    """dt_decl.c's tag and words for type words that do not combine (`char int`, `short
    void`, `char long`, `short long`); ("", "") when the words are valid C."""
    attrs = [w for w in words if w in _ATTRIBUTES]
    bases = [w for w in words if w not in _ATTRIBUTES]
    if len(bases) > 1:
        return "D_DECL_COMBO", "invalid type combination"
    base = bases[0] if bases else "int"
    sized = {"short", "long"} & set(attrs)
    if base == "char" and sized:
        return "D_DECL_CHARATTR", ("invalid type declaration: short and long may not be used "
                                   "with char type")
    if base == "void" and attrs:
        return "D_DECL_VOIDATTR", ("invalid type declaration: attributes may not be used with "
                                   "void type")
    if base in ("float", "double") and {"signed", "unsigned"} & set(attrs):
        return "D_DECL_SIGNINT", ("invalid type declaration: signed and unsigned may only be "
                                  "used with integer type")
    if base == "int" and "short" in attrs and "long" in attrs:
        named = " ".join(a for a in _ATTRIBUTES if a in attrs) + " " + " ".join(bases)
        return "D_UNKNOWN", f"failed to resolve type {named}: Unknown type name"
    return "", ""


def _arrays(table: "TypeTable", base: DType, tn: ast.TypeName, strsize: int) -> DType:
    for dim in reversed(tn.dims):
        if dim is None:
            raise DCompileError("an array needs a size here", tn.span)
        count = fold(dim, table.constants_by_name(), "an array's size")
        if count <= 0:
            raise DCompileError(f"an array's size must be positive, not {count}", dim.span,
                                tag="D_DECL_ARRSUB",
                                dtrace="positive integral constant expression or tuple "
                                       "signature expected as array declaration subscript")
        if count > 0xFFFFFFFF:  # dt_decl.c: above UINT_MAX
            raise DCompileError(f"an array of {count} elements is too big", dim.span,
                                tag="D_DECL_ARRBIG", dtrace="array dimension too big")
        base = ArrayType(base, count)
    return base


def _define(table: "TypeTable", d: ast.Node, strsize: int) -> DType:
    """The type definition `d` defines (defined once, however often it is resolved)."""
    if id(d) not in table.defined:
        table.defined[id(d)] = (d, _define_once(table, d, strsize))
    return table.defined[id(d)][1]


def _define_once(table: "TypeTable", d: ast.Node, strsize: int) -> DType:
    if isinstance(d, ast.EnumDef):
        return _define_enum(table, d)
    assert isinstance(d, ast.StructDef)
    struct = table.tag(d.kind, d.name)
    if not isinstance(struct, StructType) or struct.kind != d.kind:
        raise DCompileError(f"'{d.name}' is already a {struct} tag", d.span)
    if struct.complete:
        raise DCompileError(f"{struct} is already defined", d.span, tag="D_DECL_TYPERED",
                            dtrace=f"type redeclared: {struct}")
    members, seen = [], set()
    for m in d.members:
        t = resolve(table, m.type, strsize)
        if m.name and m.name in seen:
            raise DCompileError(f"{struct} has two members named '{m.name}'", m.span,
                                tag="D_UNKNOWN", dtrace=f"failed to define member '{m.name}': "
                                                        "Duplicate member or variable name")
        seen.add(m.name)
        if size_of(t) is None:
            # (a forward declaration is named `struct x` by dtrace(1), union or not; the
            # type being defined by its own kind)
            named = f"struct {t.name}" if isinstance(t, StructType) and t is not struct \
                else str(t)
            raise DCompileError(f"incomplete struct/union/enum {t}: {m.name}", m.span,
                                tag="D_DECL_INCOMPLETE",
                                dtrace=f"incomplete struct/union/enum {named}: {m.name}")
        bits = None
        if m.bits is not None:
            if not isinstance(t, IntType) or isinstance(t, PtrType):
                raise DCompileError(f"invalid type for bit-field: {m.name}", m.span,
                                    tag="D_DECL_BFTYPE")
            bits = fold(m.bits, table.constants_by_name(), "a bit-field's width")
            if bits < 0 or (bits == 0 and m.name):
                raise DCompileError("positive integral constant expression expected as "
                                    "bit-field size", m.bits.span, tag="D_DECL_BFCONST")
            if bits > t.size * 8:
                raise DCompileError(f"bit-field too big for type: {m.name}", m.bits.span,
                                    tag="D_DECL_BFSIZE")
        members.append(MemberSpec(m.name, t, bits))
    lay_out(struct, members)
    return struct


def _define_enum(table: "TypeTable", d: ast.EnumDef) -> DType:
    if ("enum", d.name) in table.tags:
        raise DCompileError(f"enum {d.name} is already defined", d.span)
    names = table.constants_by_name()
    values, next_value = [], 0
    for i, en in enumerate(d.enumerators):
        # dtrace(1) names the line of the token after the enumerator: `}` after the last
        after = d.span.end_line if i == len(d.enumerators) - 1 else en.span.end_line
        if any(en.name == n for n, _ in values):
            raise DCompileError(f"enum {d.name} names {en.name} twice", en.span,
                                tag="D_UNKNOWN", dtrace=f"failed to define enumerator "
                                                        f"'{en.name}': Duplicate member or "
                                                        "variable name")
        if en.name in names:
            raise DCompileError(f"identifier redeclared: {en.name}", en.span,
                                tag="D_DECL_IDRED")
        try:
            value = next_value if en.value is None else fold(en.value, names, "an enumerator")
        except DCompileError as err:
            if err.tag:
                raise
            raise DCompileError(err.message, err.span, err.hint, tag="D_DECL_ENCONST",
                                dtrace=f"enumerator '{en.name}' must be assigned to an "
                                       "integral constant expression", line=after) from None
        if not -(1 << 31) <= value < (1 << 31):
            raise DCompileError(f"enumerator '{en.name}' ({value}) does not fit in an int",
                                en.span, tag="D_DECL_ENOFLOW",
                                dtrace=f"enumerator '{en.name}' value overflows INT_MAX "
                                       "(2147483647)", line=after)
        names[en.name] = value
        values.append((en.name, value))
        next_value = value + 1
    t = EnumType(4, True, f"enum {d.name}", tuple(values))
    table.tags[("enum", d.name)] = t
    for name, value in values:
        table.constants[name] = (value, t)
    return t


def declared_size(t: DType, span: ast.Span) -> int:
    """sizeof(t) for the sizeof operator: a declared type's size, 8 for a translated or
    other opaque pointer; an incomplete struct has none."""
    if isinstance(t, StructType) and not t.complete:
        raise DCompileError(f"sizeof cannot be applied to incomplete {t}", span,
                            tag="D_SIZEOF_TYPE",
                            dtrace="cannot apply sizeof to an operand of unknown size")
    if isinstance(t, (StructType, ArrayType, IntType, StringType)):
        return size_of(t) or 0
    return 8
