"""D's printf(): format parsing (checked at compile time) and formatting in user space.

The kernel records only the argument values; the format is applied here, with C's
semantics for the argument's size and signedness (so `%x` of an int -1 is ffffffff and of
an int64_t -1 is ffffffffffffffff), as libdtrace's dt_printf.c does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence, Union

from dtrace_nb.errors import DCompileError

_CONV = re.compile(
    r"%(?P<flags>[-+ #0']*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
    r"(?P<length>hh|h|ll|l|L|z|j|t)?(?P<conv>[diouxXcsSpeEfgGaAY%@])")

# which kind of argument each conversion takes
_KIND = {**{c: "int" for c in "diouxXcp"}, **{c: "float" for c in "eEfgG"},
         "s": "string", "S": "string", "a": "int", "A": "int", "Y": "time", "@": "agg",
         "%": "none"}


@dataclass(frozen=True)
class Conversion:
    text: str
    flags: str
    width: Optional[str]
    precision: Optional[str]
    conv: str

    @property
    def kind(self) -> str:
        return _KIND[self.conv]

    @property
    def star_count(self) -> int:
        return (self.width == "*") + (self.precision == "*")


Piece = Union[str, Conversion]


@lru_cache(maxsize=512)
def parse_format(fmt: str) -> tuple[Piece, ...]:
    """Split a format into literal text and conversions; DCompileError if malformed."""
    out: list[Piece] = []
    pos = 0
    while True:
        i = fmt.find("%", pos)
        if i < 0:
            if pos < len(fmt):
                out.append(fmt[pos:])
            return tuple(out)
        if i > pos:
            out.append(fmt[pos:i])
        m = _CONV.match(fmt, i)
        if not m:
            bad = re.match(r"%[-+ #0'*\d.hlLzjt]*(.?)", fmt[i:])
            what = bad.group(1) if bad and bad.group(1) else "end of format"
            raise DCompileError(f"printf( ) format '{fmt[i:i + len(bad.group(0))]}': "
                                f"invalid conversion '{what}'",
                                hint="conversions: %d %i %u %o %x %X %c %s %p %e %f %g %Y %%")
        conv = Conversion(m.group(0), m.group("flags"), m.group("width"), m.group("prec"),
                          m.group("conv"))
        out.append("%" if conv.conv == "%" else conv)
        pos = m.end()


def _as(value: int, size: int, signed: bool) -> int:
    bits = size * 8
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def _pyfmt(c: Conversion, width: Optional[int], prec: Optional[int], conv: str) -> str:
    flags = c.flags.replace("'", "")
    w = "" if width is None else str(width)
    p = "" if prec is None else f".{prec}"
    return f"%{flags}{w}{p}{conv}"


def format_printf(fmt: Union[str, Sequence[Piece]], args: Sequence,
                  arg_types: Optional[Sequence[tuple[int, bool]]] = None) -> str:
    """Format `args` (ints and strs) as D's printf would; arg_types gives (size, signed)
    of each argument as the program typed it (default: 8-byte signed)."""
    pieces = parse_format(fmt) if isinstance(fmt, str) else fmt
    types = list(arg_types or [])
    out: list[str] = []
    ai = 0

    def take():
        nonlocal ai
        v = args[ai]
        t = types[ai] if ai < len(types) else (8, True)
        ai += 1
        return v, t

    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        width = prec = None
        if piece.width == "*":
            width = int(take()[0])
        elif piece.width:
            width = int(piece.width)
        if piece.precision == "*":
            prec = int(take()[0])
        elif piece.precision:
            prec = int(piece.precision)
        if width is not None and width < 0:  # C: a negative * width means '-' flag
            piece = Conversion(piece.text, piece.flags + "-", None, piece.precision, piece.conv)
            width = -width
        value, (size, signed) = take()
        conv = piece.conv
        if conv in "di":
            out.append(_pyfmt(piece, width, prec, "d") % _as(int(value), size, True))
        elif conv in "ouxX":
            out.append(_pyfmt(piece, width, prec, conv.replace("u", "d"))
                       % _as(int(value), size, False))
        elif conv == "c":
            out.append(_pyfmt(piece, width, None, "s") % chr(int(value) & 0xFF))
        elif conv == "p":
            out.append(_pyfmt(piece, width, None, "s") % f"0x{_as(int(value), 8, False):x}")
        elif conv in "eEfgG":
            out.append(_pyfmt(piece, width, prec, conv) % float(value))
        elif conv in "sS":
            out.append(_pyfmt(piece, width, prec, "s") % str(value))
        elif conv in "aA":
            out.append(_pyfmt(piece, width, None, "s") % f"0x{_as(int(value), 8, False):x}")
        elif conv == "Y":
            out.append(_pyfmt(piece, width, None, "s") % format_walltime(int(value)))
        else:
            out.append(str(value))
    return "".join(out)


def format_walltime(ns: int) -> str:
    """%Y: nanoseconds since the epoch as DTrace prints them, e.g. 2026 Nov 24 23:52:01."""
    import time

    t = time.localtime(ns // 1_000_000_000)
    return time.strftime("%Y %b %e %H:%M:%S", t)
