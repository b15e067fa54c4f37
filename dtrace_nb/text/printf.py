"""D's printf(): formatting in user space (the format itself is parsed by
dtrace_nb.lang.printf_format, at compile time).

The kernel records only the argument values; the format is applied here, as libdtrace's
dt_printf.c applies it: dt_printf_create's flag parser, then for each conversion a C
printf(3C) format rebuilt from the flags (dt_printf_format) and printed with the
argument's own size and signedness (so `%x` of an int -1 is ffffffff and of an
int64_t -1 is ffffffffffffffff). The C formatting rules are implemented here directly
(not with Python's % operator, which differs from C for `%#x` of 0, `%#o`, and `0`-padded
strings and infinities).

DTrace rules kept from dt_printf.c:

- flags may come in any order and may follow the width (`%8-d`); a `0` seen before any
  digit sets zero padding and cancels `-`; a later `-` cancels zero padding;
- `?` sets the width to 16 (a 64-bit pointer's hex digits);
- a precision of 0 (`%.0d`, `%.f`, or a `*` precision that is 0 or negative) is dropped:
  dt_printf_format only emits ".N" for N > 0;
- `*` width and precision take the next argument, truncated to a C int; a negative `*`
  width means left-justified;
- `%%` cannot carry flags; `%n$` positional conversions are rejected;
- `@` marks a conversion that takes an aggregation's value (printa() only);
- `'` (thousands grouping) is accepted; dtrace(1) formats in the C locale, where it
  groups nothing.

Where this module deliberately differs from dt_printf.c (kept for compatibility with the
rest of dtrace-nb, see tests/unit/test_text_format.py):

- `%e %E %f %g %G` accept an integer argument (printed as the integer converted to
  double); DTrace rejects an integer for them at compile time (pfcheck_fp);
- the length modifiers `hh z j t` are accepted and ignored (dt_printf.c knows only
  h, l, ll, L and w).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Sequence, Union

from dtrace_nb.lang.printf_format import Piece, parse_format


# ----------------------------------------------------------------------------- C rules

def _as(value: int, size: int, signed: bool) -> int:
    bits = size * 8
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def _pad(body: str, width: Optional[int], left: bool) -> str:
    if not width or len(body) >= width:
        return body
    return body.ljust(width) if left else body.rjust(width)


def c_int(value: int, conv: str, flags: str, width: Optional[int] = None,
          prec: Optional[int] = None) -> str:
    """One integer conversion (d i u o x X) with C's rules for flags, width and
    precision; `value` is already the argument's value (negative only for d/i)."""
    mag = abs(value)
    digits = format(mag, {"o": "o", "x": "x", "X": "X"}.get(conv, "d"))
    if prec is not None:
        digits = "" if prec == 0 and mag == 0 else digits.rjust(prec, "0")
    prefix = ""
    if conv in "di":
        prefix = "-" if value < 0 else "+" if "+" in flags else " " if " " in flags else ""
    if "#" in flags:
        if conv == "o" and not digits.startswith("0"):
            digits = "0" + digits
        elif conv in "xX" and mag:
            prefix = "0" + conv
    if width and len(prefix) + len(digits) < width and "-" not in flags \
            and "0" in flags and prec is None:
        digits = digits.rjust(width - len(prefix), "0")
    return _pad(prefix + digits, width, "-" in flags)


def c_float(value: float, conv: str, flags: str, width: Optional[int] = None,
            prec: Optional[int] = None) -> str:
    """%e %E %f %g %G as C prints a double (Python's float formatting is C's, except that
    C never zero-pads inf and nan)."""
    if not math.isfinite(value):
        flags = flags.replace("0", "")
    spec = "%" + "".join(f for f in flags if f in "-+ #0") + ("" if width is None else str(width))
    spec += ("" if prec is None else f".{prec}") + conv
    return spec % value


def c_str(text: str, flags: str, width: Optional[int] = None,
          prec: Optional[int] = None) -> str:
    """%s: the precision is the most characters printed; `0` pads with spaces (glibc)."""
    if prec is not None:
        text = text[:prec]
    return _pad(text, width, "-" in flags)


_ESCAPES = {"\0": "0", "\a": "a", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t",
            "\v": "v", '"': '"', "\\": "\\"}


def escape_string(text: str) -> str:
    """%S (dt_string.c strchr2esc): C escapes for \\0 \\a \\b \\f \\n \\r \\t \\v \\" and \\\\,
    three octal digits for any other byte outside '!'..'~' but space."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append("\\" + _ESCAPES[ch])
        elif ch == " " or "!" <= ch <= "~":
            out.append(ch)
        else:
            for b in ch.encode("utf-8", "surrogateescape"):
                out.append("\\%03o" % b)
    return "".join(out)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_walltime(ns: int) -> str:
    """%Y (pfprint_time): nanoseconds since the epoch as ctime(3C)'s fields rearranged
    as "2026 Nov 24 23:52:01" (year, English month, space-padded day, local time)."""
    sec = abs(ns) // 1_000_000_000 * (1 if ns >= 0 else -1)  # C division truncates
    t = time.localtime(sec)
    return "%d %s %2d %02d:%02d:%02d" % (t.tm_year, _MONTHS[t.tm_mon - 1], t.tm_mday,
                                         t.tm_hour, t.tm_min, t.tm_sec)


# an address -> its symbol text (`vmlinux`do_sys_open+0x10), or None when it has none
SymbolLookup = Callable[[int], Optional[str]]


def symbol_text(addr: int, lookup: Optional[SymbolLookup]) -> str:
    """dtrace_addr2str: the symbol text for an address, else 0x-prefixed hex."""
    name = lookup(addr) if lookup is not None else None
    return name if name else f"0x{addr:x}"


# ----------------------------------------------------------------------------- printf

def format_printf(fmt: Union[str, Sequence[Piece]], args: Sequence,
                  arg_types: Optional[Sequence[tuple[int, bool]]] = None, *,
                  ksym: Optional[SymbolLookup] = None,
                  usym: Optional[SymbolLookup] = None) -> str:
    """Format `args` (ints and strs) as D's printf would; arg_types gives (size, signed)
    of each argument as the program typed it (default: 8-byte signed). `ksym` and `usym`
    map a kernel / user address to its symbol text for %a / %A (None: print hex)."""
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
        width: Optional[int] = None
        prec: Optional[int] = None
        if piece.width == "*":
            width = _as(int(take()[0]), 4, True)  # dt_printf_getint: a C int
        elif piece.width:
            width = int(piece.width)
        if piece.precision == "*":
            prec = _as(int(take()[0]), 4, True)
        elif piece.precision:
            prec = int(piece.precision)
        flags, width, prec = resolve(piece.flags, width, prec)
        value, (size, signed) = take()
        out.append(format_conversion(piece.conv, flags, width, prec, value, size, signed,
                                     ksym=ksym, usym=usym))
    return "".join(out)


def resolve(flags: str, width: Optional[int], prec: Optional[int]
            ) -> tuple[str, Optional[int], Optional[int]]:
    """A conversion's flags, width and precision as dt_printf_format rebuilds them: a
    negative width left-justifies, a zero width is none, and only a precision > 0 is
    kept (it emits ".N" for N > 0 only)."""
    if width is not None and width < 0:
        flags += "-"
        width = -width
    if not width:
        width = None
    if prec is not None and prec <= 0:
        prec = None
    return flags, width, prec


def static_conversion(piece: Piece) -> Optional[tuple[str, Optional[int], Optional[int]]]:
    """(flags, width, precision) of a conversion that takes no `*` argument, resolved as
    format_printf resolves them; None for one that does."""
    if piece.width == "*" or piece.precision == "*":
        return None
    return resolve(piece.flags, int(piece.width) if piece.width else None,
                   int(piece.precision) if piece.precision else None)


def format_conversion(conv: str, flags: str, width: Optional[int], prec: Optional[int],
                      value, size: int = 8, signed: bool = True, *,
                      ksym: Optional[SymbolLookup] = None,
                      usym: Optional[SymbolLookup] = None) -> str:
    """One conversion of one argument, width and precision already resolved."""
    if conv in "di":
        # pfcheck_dint: %d of an unsigned argument is printed as %u
        if not signed:
            return c_int(_as(int(value), size, False), "u", flags, width, prec)
        return c_int(_as(int(value), size, True), conv, flags, width, prec)
    if conv in "ouxX":
        return c_int(_as(int(value), size, False), conv, flags, width, prec)
    if conv == "c":
        return c_str(chr(int(value) & 0xFF), flags, width)
    if conv == "p":
        # dt_printf.c turns %p into %llx of the 64-bit address: no 0x prefix (unless '#')
        return c_int(_as(int(value), 8, False), "x", flags, width, prec)
    if conv in "eEfgG":
        x = value if isinstance(value, float) else float(_as(int(value), size, signed))
        return c_float(x, conv, flags, width, prec)
    if conv == "s":
        return c_str(str(value), flags, width, prec)
    if conv == "S":
        return c_str(escape_string(str(value)), flags, width, prec)
    if conv == "a":
        return c_str(symbol_text(_as(int(value), 8, False), ksym), flags, width, prec)
    if conv == "A":
        return c_str(symbol_text(_as(int(value), 8, False), usym), flags, width, prec)
    if conv == "Y":
        return c_str(format_walltime(_as(int(value), 8, True)), flags, width, prec)
    if conv == "k":  # a stack, already symbolised into its frames' text
        return c_str(str(value), flags, width, prec)
    return str(value)
