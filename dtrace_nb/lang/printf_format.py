"""The format strings of D's printf() and printa(), parsed as libdtrace's dt_printf.c
parses them (dt_printf_create's flag parser): checked at compile time by the checker, and
applied to the recorded values in user space by the formatter (text/printf.py).

Rules kept from dt_printf.c:

- flags may come in any order and may follow the width (`%8-d`); a `0` seen before any
  digit sets zero padding and cancels `-`; a later `-` cancels zero padding;
- `?` sets the width to 16 (a 64-bit pointer's hex digits);
- `%%` cannot carry flags; `%n$` positional conversions are rejected;
- `@` marks a conversion that takes an aggregation's value (printa() only);
- `'` (thousands grouping) is accepted.

Where this parser deliberately differs from dt_printf.c: the length modifiers `hh z j t`
are accepted and ignored (dt_printf.c knows only h, l, ll, L and w), and `%e %E %f %g %G`
take an integer argument (see text/printf.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Union

from dtrace_nb.errors import DCompileError

# which kind of argument each conversion takes
_KIND = {**{c: "int" for c in "diouxXcp"}, **{c: "float" for c in "eEfgG"},
         "s": "string", "S": "string", "a": "int", "A": "int", "Y": "time", "k": "stack",
         "%": "none"}

# length modifiers each conversion accepts (dt_printf.c's dictionary: hd, ld, lld, Le,
# lc, ls, wc, ws...; hh, z, j and t are dtrace-nb's leniency for integer conversions)
_INT_LENGTHS = ("", "h", "l", "ll")  # dt_printf.c's dictionary: no hh, z, j or t
_LENGTHS = {**{c: _INT_LENGTHS for c in "diouxX"}, **{c: ("", "L") for c in "eEfgG"},
            "c": ("", "l", "w"), "s": ("", "l", "w"), "S": ("",), "p": ("",), "a": ("",),
            "A": ("",), "Y": ("",), "k": ("",), "%": ("",)}

_HINT = "conversions: %d %i %u %o %x %X %c %s %S %p %a %A %e %E %f %g %G %k %Y %%"


@dataclass(frozen=True)
class Conversion:
    text: str
    flags: str  # any of - + space # 0 ' @ (in the order DTrace rebuilds them)
    width: Optional[str]  # digits, "*", or None
    precision: Optional[str]  # digits, "*", or None
    conv: str
    length: str = ""

    @property
    def kind(self) -> str:
        return "agg" if "@" in self.flags else _KIND[self.conv]

    @property
    def star_count(self) -> int:
        return (self.width == "*") + (self.precision == "*")

    @property
    def is_agg(self) -> bool:
        return "@" in self.flags


Piece = Union[str, Conversion]


def _bad(fmt: str, start: int, end: int, why: str, number: int = 0,
         dtrace: str = "") -> DCompileError:
    """A malformed conversion; `dtrace` is dt_printf_create's words after 'format
    conversion #N ' (its tag is D_SYNTAX)."""
    return DCompileError(f"printf( ) format '{fmt[start:end]}': {why}", hint=_HINT,
                         tag="D_SYNTAX", dtrace=f"format conversion #{number} {dtrace}")


def _parse_one(fmt: str, i: int, number: int) -> tuple[Union[str, Conversion], int]:
    """Parse the conversion starting at fmt[i] == '%' (dt_printf_create's fmt_switch);
    return it and the index after it."""
    p = i + 1
    flags: set[str] = set()
    width: Optional[str] = None
    prec: Optional[str] = None
    dot = digits = 0
    length = ""
    n = len(fmt)
    while True:
        if p >= n:
            raise _bad(fmt, i, p, f"invalid conversion 'end of format' (conversion #{number} "
                                  "name expected before end of format string)", number,
                       "name expected before end of format string")
        c = fmt[p]
        if "0" <= c <= "9":  # ASCII only: str.isdigit() is true of "²"
            if not dot and not digits and c == "0":
                flags.add("0")
                flags.discard("-")
                p += 1
                continue
            q = p
            while q < n and "0" <= fmt[q] <= "9":
                q += 1
            if dot:
                prec = str(int(fmt[p:q]))
            else:
                width = str(int(fmt[p:q]))
            digits += 1
            p = q
            continue
        p += 1
        if c == "#":
            flags.add("#")
        elif c == "*":
            if (prec if dot else width) == "*":
                raise _bad(fmt, i, p, f"conversion #{number} has more than one '*' for the "
                                      f"output {'precision' if dot else 'width'}", number,
                           "has more than one '*' specified for the output "
                           + ("precision" if dot else "width"))
            if dot:
                prec = "*"
            else:
                width = "*"
        elif c == "+":
            flags.add("+")
        elif c == "-":
            flags.add("-")
            flags.discard("0")
        elif c == ".":
            if dot:
                raise _bad(fmt, i, p, f"conversion #{number} has more than one '.'", number,
                           "has more than one '.' specified")
            dot, digits = 1, 0
            if prec is None:
                prec = "0"
        elif c == "?":
            width = "16"
        elif c == "@":
            flags.add("@")
        elif c == "'":
            flags.add("'")
        elif c == " ":
            flags.add(" ")
        elif c == "$":
            raise _bad(fmt, i, p, f"conversion #{number} uses unsupported positional "
                                  "format (%n$)", number, "uses unsupported positional format "
                                                          "(%n$)")
        elif c == "%":
            if p - 1 == i + 1:
                return "%", p
            raise _bad(fmt, i, p, f"invalid conversion '%' (conversion #{number} cannot be "
                                  "combined with other format flags: %%)", number,
                       "cannot be combined with other format flags: %%")
        elif c in "hlLw":
            length += c
        else:
            if c not in _KIND or c == "%" or length not in _LENGTHS[c]:
                raise _bad(fmt, i, p, f"invalid conversion '{c}' (conversion #{number} is "
                                      f"undefined: %{length}{c})", number,
                           f"is undefined: %{length}{c}")
            order = "#0-+' @"
            return Conversion(fmt[i:p], "".join(f for f in order if f in flags), width,
                              prec, c, length), p


@lru_cache(maxsize=512)
def parse_format(fmt: str) -> tuple[Piece, ...]:
    """Split a format into literal text and conversions; DCompileError if malformed."""
    out: list[Piece] = []
    pos = 0
    number = 0
    while True:
        i = fmt.find("%", pos)
        if i < 0:
            if pos < len(fmt):
                out.append(fmt[pos:])
            return tuple(out)
        if i > pos:
            out.append(fmt[pos:i])
        number += 1
        piece, pos = _parse_one(fmt, i, number)
        out.append(piece)
