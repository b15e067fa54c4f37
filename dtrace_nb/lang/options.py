"""DTrace options: `-x name=value`, `#pragma D option name=value`, and the magic's flags.

Values are kept as parsed numbers (sizes in bytes, rates in nanoseconds) or booleans.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Optional, Union

from dtrace_nb.errors import DCompileError, DOptionError
from dtrace_nb.lang.ast import Pragma, Span

Value = Union[bool, int, str]

_SIZE = re.compile(r"^(\d+)([kmgt]?)b?$", re.I)
_TIME = re.compile(r"^(\d+)(ns|nsec|us|usec|ms|msec|s|sec|m|min|h|hour|d|day|hz)?$", re.I)
_SIZE_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_TIME_NS = {"ns": 1, "nsec": 1, "us": 10**3, "usec": 10**3, "ms": 10**6, "msec": 10**6,
            "s": 10**9, "sec": 10**9, "m": 60 * 10**9, "min": 60 * 10**9,
            "h": 3600 * 10**9, "hour": 3600 * 10**9, "d": 86400 * 10**9, "day": 86400 * 10**9}


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a size (e.g. 4m, 512k, 1024)")
    return int(m.group(1)) * _SIZE_MULT[m.group(2).lower()]


def parse_rate_ns(text: str) -> int:
    """A rate or interval as an interval in ns: '1s', '500ms', '10hz'; bare numbers are hz."""
    m = _TIME.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a time or rate (e.g. 1s, 250ms, 10hz)")
    n, unit = int(m.group(1)), (m.group(2) or "hz").lower()
    if unit == "hz":
        if n == 0:
            raise ValueError("a rate of 0hz never fires")
        return 10**9 // n
    return n * _TIME_NS[unit]


# name -> (kind, default). Kinds: bool, size, rate, int, str.
KNOWN: dict[str, tuple[str, Value]] = {
    "quiet": ("bool", False),
    "flowindent": ("bool", False),
    "destructive": ("bool", False),
    "strsize": ("size", 256),
    "bufsize": ("size", 4 << 20),
    "aggsize": ("size", 4 << 20),
    "aggrate": ("rate", 10**9),
    "switchrate": ("rate", 10**9),
    "statusrate": ("rate", 10**9),
    "cleanrate": ("rate", 10**9 // 101),
    "dynvarsize": ("size", 1 << 20),
    "nspec": ("int", 1),
    "specsize": ("size", 32 << 10),
    "aggsortkey": ("bool", False),
    "aggsortrev": ("bool", False),
    "aggsortpos": ("int", 0),
    "aggsortkeypos": ("int", 0),
    "aggpercpu": ("bool", False),
    "stackframes": ("int", 127),
    "ustackframes": ("int", 127),
    "bufpolicy": ("str", "switch"),
    "bufresize": ("str", "auto"),
    "zdefs": ("bool", False),
    "defaultargs": ("bool", False),
    "rawbytes": ("bool", False),
    # dtrace(1)'s: D_XXX tags in compile errors, DTRACEDROP_XXX tags in drop messages
    "errtags": ("bool", False),
    "droptags": ("bool", False),
    # -H: the C preprocessor (-C) lists the files it includes (read where -C is run)
    # dtrace-nb's own: how many distinct keys an aggregation map may hold.
    "aggkeys": ("int", 10240),
}


# What setopt() may change while tracing (dtrace-utils' dynamic run-time options); the
# others are refused then ("Operation illegal when tracing is active").
RUNTIME_OPTIONS = frozenset(("aggrate", "aggsortkey", "aggsortkeypos", "aggsortpos",
                             "aggsortrev", "flowindent", "quiet", "rawbytes", "switchrate"))


# Where a value outside these bounds would reach the generated C as a map size or an
# array length that bcc or the verifier refuses (with no word of which option caused it).
BOUNDS: dict[str, tuple[int, int]] = {
    "aggkeys": (1, 1 << 24),
    "nspec": (1, 1 << 10),
    "stackframes": (1, 1 << 10),
    "ustackframes": (1, 1 << 10),
    "aggsortpos": (0, 1 << 10),
    "aggsortkeypos": (0, 1 << 10),
    "strsize": (2, 1 << 30),  # dtrace-utils' minimum: room for one byte and its NUL
}


# options libdtrace takes only before compiling (dt_options.c: EDT_BADOPTCTX in a pragma)
_COMMAND_LINE_ONLY = ("cppargs", "cpphdrs", "cpppath", "define", "incdir", "undef", "ldpath",
                      "ctfpath", "modpath", "procfspath", "stdc")


def _refused(name: str, value: Optional[str], span: Optional[Span], why: str, message: str,
             hint: str = ""):
    """An option refused, in dtrace(1)'s words: `failed to set -x NAME: WHY` on the command
    line, `[D_PRAGMA_OPTSET] failed to set option 'NAME' to 'VALUE': WHY` in a pragma."""
    if span is None:
        return DOptionError(message, hint=hint, dtrace=f"failed to set -x {name}: {why}")
    shown = f"'{name}'" if value is None else f"'{name}' to '{value}'"
    return DCompileError(message, span, hint=hint, tag="D_PRAGMA_OPTSET",
                         dtrace=f"failed to set option {shown}: {why}")


@dataclass
class Options:
    values: dict[str, Value] = field(default_factory=dict)

    def get(self, name: str) -> Value:
        if name in self.values:
            return self.values[name]
        return KNOWN[name][1]

    def __getitem__(self, name: str) -> Value:
        return self.get(name)

    def set(self, name: str, value: Optional[str], span: Optional[Span] = None,
            source: str = "-x") -> None:
        name = name.strip()
        if span is not None and name in _COMMAND_LINE_ONLY:
            raise _refused(name, value, span, "Option cannot be used from within a D program",
                           f"option '{name}' can only be given on the command line")
        if name not in KNOWN:
            raise _refused(name, value, span, "Invalid option name",
                           f"unknown option '{name}'",
                           hint="known options: " + ", ".join(sorted(KNOWN)))
        kind = KNOWN[name][0]
        try:
            if kind == "bool":
                if value not in (None, "", "1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(f"'{value}' is not a boolean")
                self.values[name] = value in (None, "", "1", "true", "yes", "on")
            elif value is None or value == "":
                raise ValueError("a value is required")
            elif kind == "size":
                self.values[name] = parse_size(value)
            elif kind == "rate":
                self.values[name] = parse_rate_ns(value)
            elif kind == "int":
                self.values[name] = int(value, 0)
            else:
                self.values[name] = value
            lo, hi = BOUNDS.get(name, (None, None))
            if lo is not None and not lo <= self.values[name] <= hi:
                raise ValueError(f"{value} is out of range ({lo} to {hi})")
        except ValueError as ex:
            raise _refused(name, value, span, "Invalid value for specified option",
                           f"option {name}: {ex}") from None

    def set_pair(self, text: str, span: Optional[Span] = None) -> None:
        name, _, value = text.partition("=")
        self.set(name, value if "=" in text else None, span)

    def apply_pragma(self, pragma: Pragma) -> None:
        words = pragma.words
        refusal = _pragma_refusal(words)
        if refusal is not None:
            tag, text = refusal
            raise DCompileError(f"#pragma D {' '.join(words)}: {text}", pragma.span, tag=tag,
                                dtrace=text)
        if words and words[0] == "ident":
            return  # dt_pragma_ident: accepted, ignored
        if not words or words[0] != "option" or len(words) != 2:
            raise DCompileError("unsupported #pragma D form: " + " ".join(words), pragma.span,
                                hint="use #pragma D option name=value")
        self.set_pair(words[1], pragma.span)


def _pragma_refusal(words: list[str]) -> Optional[tuple[str, str]]:
    """dt_pragma.c's tag and words for a #pragma D line it refuses as written."""
    if not words:
        return None
    name, args = words[0], words[1:]
    if name == "error":  # the identifiers and strings after it, each followed by a space
        try:
            parts = shlex.split(" ".join(args))
        except ValueError:
            parts = args
        return "D_PRAGERR", "#error: " + "".join(p + " " for p in parts)
    if name == "option" and len(args) != 1:
        return "D_PRAGMA_MALFORM", ("superfluous arguments specified for #pragma option"
                                    if args else "malformed #pragma option <option>=<val>")
    if name == "attributes" and len(args) != 2:
        return "D_PRAGMA_MALFORM", "malformed #pragma attributes <attributes> <ident>"
    if name == "depends_on" and len(args) != 2:
        return "D_PRAGMA_MALFORM", "malformed #pragma depends_on <class> <name>"
    if name == "depends_on" and args[0] == "library":
        # a library may depend on another; a program given with -s or -n may not
        return "D_PRAGMA_DEPEND", "main program may not explicitly depend on a library"
    return None
