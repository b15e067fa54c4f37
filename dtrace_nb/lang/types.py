"""D types as the checker assigns them to expressions.

Integers carry their C size and signedness (D's arithmetic is C's); strings carry the
capacity of the buffer that holds them, so `execname` keys cost 16 bytes, not strsize.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


class DType:
    def c_type(self) -> str:
        raise NotImplementedError

    @property
    def is_int(self) -> bool:
        return isinstance(self, IntType)

    @property
    def is_string(self) -> bool:
        return isinstance(self, StringType)


@dataclass(frozen=True)
class IntType(DType):
    size: int
    signed: bool
    name: str

    def c_type(self) -> str:
        return f"{'s' if self.signed else 'u'}{self.size * 8}"

    def __str__(self) -> str:
        return self.name

    @property
    def bits(self) -> int:
        return self.size * 8

    def wrap(self, value: int) -> int:
        """`value` reduced to this type's range, as C would store it."""
        value &= (1 << self.bits) - 1
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value


@dataclass(frozen=True)
class StackType(IntType):
    """stack() / ustack() used as an aggregation key: the kernel keeps a stack id (with the
    pid, for ustack) as a 64-bit integer, the consumer turns it into frames."""

    kind: str = "stack"
    limit: int = 0  # frames to print (0: all)


@dataclass(frozen=True)
class StringType(DType):
    size: int  # bytes of the buffer, NUL included

    def c_type(self) -> str:
        return f"char[{self.size}]"

    def __str__(self) -> str:
        return "string"


@dataclass(frozen=True)
class PtrType(IntType):
    """A pointer: a 64-bit unsigned integer that remembers what it points to, so `*p` and
    `p->m` know the size to read. `target` None is `void *`."""

    target: Optional[DType] = None


@dataclass(frozen=True)
class MemberType:
    """One member of a translated struct: its type and how to compute it (C, with `{arg}`
    standing for the raw argument), or for strings the kernel address to copy from."""

    name: str
    dtype: DType
    c_expr: str


@dataclass(frozen=True)
class TranslatedType(DType):
    """A translated struct pointer (DTrace's psinfo_t *, bufinfo_t *...): only `->member`
    can be applied to it."""

    name: str
    members: tuple[MemberType, ...]

    def c_type(self) -> str:
        return "u64"

    def member(self, name: str) -> Optional[MemberType]:
        return next((m for m in self.members if m.name == name), None)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class VoidType(DType):
    def c_type(self) -> str:
        return "void"

    def __str__(self) -> str:
        return "void"


CHAR = IntType(1, True, "char")
UCHAR = IntType(1, False, "uchar_t")
SHORT = IntType(2, True, "short")
USHORT = IntType(2, False, "ushort_t")
INT = IntType(4, True, "int")
UINT = IntType(4, False, "uint_t")
LONG = IntType(8, True, "long")
ULONG = IntType(8, False, "ulong_t")
INT64 = IntType(8, True, "int64_t")
UINT64 = IntType(8, False, "uint64_t")
VOID = VoidType()

_NAMED: dict[str, IntType] = {
    "char": CHAR, "signed char": CHAR, "unsigned char": UCHAR, "uchar_t": UCHAR,
    "short": SHORT, "short int": SHORT, "signed short": SHORT, "unsigned short": USHORT,
    "ushort_t": USHORT, "int": INT, "signed": INT, "signed int": INT, "unsigned": UINT,
    "unsigned int": UINT, "uint_t": UINT, "long": LONG, "long int": LONG, "signed long": LONG,
    "unsigned long": ULONG, "ulong_t": ULONG, "long long": LONG, "long long int": LONG,
    "unsigned long long": ULONG, "unsigned long long int": ULONG, "unsigned long int": ULONG,
    "int8_t": IntType(1, True, "int8_t"), "uint8_t": IntType(1, False, "uint8_t"),
    "int16_t": IntType(2, True, "int16_t"), "uint16_t": IntType(2, False, "uint16_t"),
    "int32_t": IntType(4, True, "int32_t"), "uint32_t": IntType(4, False, "uint32_t"),
    "int64_t": INT64, "uint64_t": UINT64,
    "intptr_t": IntType(8, True, "intptr_t"), "uintptr_t": IntType(8, False, "uintptr_t"),
    "size_t": IntType(8, False, "size_t"), "ssize_t": IntType(8, True, "ssize_t"),
    "off_t": IntType(8, True, "off_t"), "pid_t": IntType(4, True, "pid_t"),
    "uid_t": IntType(4, False, "uid_t"), "gid_t": IntType(4, False, "gid_t"),
    "id_t": IntType(4, True, "id_t"), "processorid_t": IntType(4, True, "processorid_t"),
    "umode_t": IntType(2, False, "umode_t"), "mode_t": IntType(4, False, "mode_t"),
    "dev_t": IntType(4, False, "dev_t"), "loff_t": IntType(8, True, "loff_t"),
    "key_t": IntType(4, True, "key_t"), "clockid_t": IntType(4, True, "clockid_t"),
    "bool": IntType(1, False, "bool"), "_Bool": IntType(1, False, "_Bool"),
    "u8": IntType(1, False, "u8"), "u16": IntType(2, False, "u16"),
    "u32": IntType(4, False, "u32"), "u64": UINT64, "s8": IntType(1, True, "s8"),
    "s16": IntType(2, True, "s16"), "s32": IntType(4, True, "s32"), "s64": INT64,
    "__u8": IntType(1, False, "__u8"), "__u16": IntType(2, False, "__u16"),
    "__u32": IntType(4, False, "__u32"), "__u64": UINT64, "__s32": IntType(4, True, "__s32"),
    "__s64": INT64,
}


def type_from_words(words: tuple[str, ...] | list[str], pointer: int = 0,
                    strsize: int = 256) -> Optional[DType]:
    """The DType for a written type (None when unknown). Pointers are 64-bit integers that
    remember their target type."""
    text = " ".join(words)
    base = text.replace("const ", "").replace("volatile ", "").strip()
    if pointer:
        target: Optional[DType] = None if base == "void" else _NAMED.get(base)
        if pointer > 1:
            target = PtrType(8, False, f"{base} {'*' * (pointer - 1)}", target)
        return PtrType(8, False, f"{text} {'*' * pointer}", target)
    if text == "string":
        return StringType(strsize)
    if base == "void":
        return VOID
    return _NAMED.get(base)


def native_type(text: str) -> DType:
    """A probe argument's D type from the type name a provider gives (format files, BTF):
    known integer types keep their size, pointers remember a known target, anything else
    is a 64-bit integer."""
    text = " ".join(text.replace("const ", "").replace("volatile ", "").split())
    if text.endswith("*"):
        base = text.rstrip("* ").strip()
        return PtrType(8, False, text, _NAMED.get(base))
    if "[" in text:
        return IntType(8, False, text)
    return _NAMED.get(text, INT64)


def promote(a: IntType, b: IntType) -> IntType:
    """C's usual arithmetic conversions on two integer types."""
    a, b = _int_promote(a), _int_promote(b)
    if a.size != b.size:
        return a if a.size > b.size else b
    if a.signed != b.signed:
        return a if not a.signed else b
    return a


def _int_promote(t: IntType) -> IntType:
    return INT if t.size < 4 else t


def unary_promote(t: IntType) -> IntType:
    return _int_promote(t)


# Typedef names D knows without a declaration that are not keywords of the grammar: the
# parser's lexer reads them as type names (a program's own typedefs join them). The
# translated structures' names are known to the lexer; a name whose type is None here is
# "unknown type" to the checker until its translator gives it one.
_BUILTIN_TYPEDEFS: dict[str, Optional[DType]] = {
    "caddr_t": PtrType(8, False, "caddr_t", CHAR), "hrtime_t": INT64,
    "time_t": IntType(8, True, "time_t"), "ino_t": IntType(8, False, "ino_t"),
    "ptrdiff_t": IntType(8, True, "ptrdiff_t"), "zoneid_t": IntType(4, True, "zoneid_t"),
    "projid_t": IntType(4, True, "projid_t"), "taskid_t": IntType(4, True, "taskid_t"),
    "boolean_t": IntType(4, False, "boolean_t"),
    **{name: None for name in ("psinfo_t", "lwpsinfo_t", "cpuinfo_t", "fileinfo_t",
                               "bufinfo_t", "devinfo_t", "conninfo_t", "ipinfo_t",
                               "ifinfo_t", "tcpinfo_t", "tcpsinfo_t", "tcplsinfo_t",
                               "udpinfo_t", "udpsinfo_t", "pktinfo_t", "csinfo_t",
                               "ipv4info_t", "ipv6info_t", "kthread_t", "proc_t")},
}


def builtin_typedef_names() -> frozenset[str]:
    return frozenset(_BUILTIN_TYPEDEFS)


def builtin_typedef(name: str) -> Optional[DType]:
    return _BUILTIN_TYPEDEFS.get(name)


# DTrace's integer constant types in the order dt_node_int tries them (dt_ints): the first
# that holds the value, from where the suffix starts; decimal constants skip the unsigned
# types unless suffixed `u`
_LITERAL_TYPES = (INT, UINT, LONG, ULONG, IntType(8, True, "long long"),
                  IntType(8, False, "unsigned long long"))


def literal_type(value: int, decimal: bool, unsigned: bool, long: bool) -> Optional[IntType]:
    """The type of integer constant `value` (None: no built-in type holds it)."""
    step = 2 if decimal or unsigned else 1
    for t in _LITERAL_TYPES[int(unsigned) + 2 * int(long)::step]:
        if value <= (1 << (t.bits - t.signed)) - 1:
            return t
    return None
