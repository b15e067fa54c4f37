"""One exception family for everything a user can get wrong or lack.

A DError carries where (a source span, when there is one), what, and how to fix it. The
magic and the command print `str(err)` (or `err.render(source)` for a caret-pointed
excerpt) and never a Python traceback.

A compile error also carries DTrace's words for it: its D_XXX tag (libdtrace's
dt_errtags.h) and the message text dtrace(1) prints, so that the command can print the line
tools and scripts parse (`dtrace: failed to compile script x.d: [D_IDENT_UNDEF] line 3:
failed to resolve x: Unknown variable name`, see dtrace_line()) before the caret view.
"""

from __future__ import annotations

from typing import Optional

from dtrace_nb.lang.ast import Span


class DError(Exception):
    """Base of all errors shown to users."""

    kind = "error"
    tag = ""  # the D_XXX tag of dtrace-utils' dt_errtags.h, when the error has one

    def __init__(self, message: str, span: Optional[Span] = None, hint: str = "",
                 detail: str = "", tag: str = "", dtrace: str = "", at_end: bool = False,
                 line: int = 0):
        super().__init__(message)
        self.message = message
        if tag:
            self.tag = tag
        # dtrace(1)'s text for this error (after the tag and line), when it words it
        # otherwise than our message
        self.dtrace = dtrace
        # found at the end of the input: dtrace(1) names the line after the last newline
        self.at_end = at_end
        # the line dtrace(1) names when it is not the span's (it finds some faults of a
        # declaration at its end, where the caret shows the part at fault)
        self.line = line
        self.span = span if span is not None and span.line > 0 else None
        self.hint = hint
        # Raw tool output (verifier or clang log) available on request; not shown by default.
        self.detail = detail

    def __str__(self) -> str:
        where = f"{self.span.line}:{self.span.col}: " if self.span else ""
        text = f"dtrace: {self.kind}: {where}{self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def render(self, source: str = "") -> str:
        """The message plus the offending source line with a caret under the column."""
        text = str(self)
        if not self.span or not source:
            return text
        lines = source.splitlines()
        if not 1 <= self.span.line <= len(lines):
            return text
        line = lines[self.span.line - 1]
        width = 1
        if self.span.end_line == self.span.line and self.span.end_col > self.span.col:
            width = self.span.end_col - self.span.col
        prefix = f"{self.span.line:4d} | "
        caret = " " * (len(prefix) + self.span.col - 1) + "^" * max(1, width)
        return f"{text}\n{prefix}{line}\n{caret}"


    def dtrace_text(self, source: str = "") -> str:
        """The message as dtrace(1) words it (without tag and line)."""
        return self.dtrace or self.message

    def dtrace_line(self, command: str, errtags: bool = False, source: str = "",
                    line_numbers: bool = True) -> str:
        """dtrace(1)'s one-line form: `dtrace: COMMAND: [TAG] line N: TEXT`, where COMMAND
        says what failed ('failed to compile script x.d', 'invalid probe specifier X').
        The tag only under -x errtags; the line only for scripts read from a file (as
        libdtrace's dt_set_errmsg: a -n string has no line)."""
        text = "[%s] " % self.tag if errtags and self.tag else ""
        if line_numbers and (self.at_end or self._near_end(source)) and source:
            text += f"line {source.count(chr(10)) + 1}: "
        elif line_numbers and (self.line or self.span is not None):
            text += f"line {self.line or self.span.line}: "
        return f"dtrace: {command}: {text}{self.dtrace_text(source)}"


    def _near_end(self, source: str) -> bool:
        return False


class DSyntaxError(DError):
    kind = "syntax error"
    tag = "D_SYNTAX"

    def _near_end(self, source: str) -> bool:
        return not self.dtrace and bool(source) and \
            (self.span is None or not _span_text(self.span, source))

    def dtrace_text(self, source: str = "") -> str:
        """yacc's words: `syntax error near "TOKEN"` (the text the error points at), or
        `near end of input`."""
        if self.dtrace:
            return self.dtrace
        near = _span_text(self.span, source) if self.span else ""
        return f'syntax error near "{near}"' if near else "syntax error near end of input"


def _span_text(span: Span, source: str) -> str:
    lines = source.splitlines()
    if not 1 <= span.line <= len(lines):
        return ""
    line = lines[span.line - 1]
    if span.end_line == span.line and span.end_col > span.col:
        return line[span.col - 1:span.end_col - 1]
    rest = line[span.col - 1:].split()
    return rest[0] if rest else ""


class DCompileError(DError):
    """A well-formed program that breaks a rule of D (types, names, arguments)."""

    kind = "compile error"


class DPreprocessorError(DCompileError):
    """cpp (-C) refused the program; its own messages were printed as it gave them."""


class DProbeError(DError):
    """A probe description that matches nothing, or a provider that cannot serve it."""

    kind = "probe error"


class DUsageError(DError):
    """Bad options or command-line use."""

    kind = "usage error"


class DOptionError(DUsageError):
    """A -x option dtrace(1) refuses (`dtrace: failed to set -x bufsize: Invalid value for
    specified option`): its dfatal(), exit status 1, where bad command-line syntax is 2."""


class DLoadError(DError):
    """clang or the BPF verifier rejected the generated program."""

    kind = "load error"


class DEnvironmentError(DError):
    """Something the host lacks: privileges, bcc, headers, tracefs, a kernel mechanism."""

    kind = "cannot trace"


class DRuntimeError(DError):
    kind = "runtime error"


# -- dtrace(1)'s words for the errors many raise sites share --------------------------

def proto_len(name: str, given: int, lo: int, hi: int, key: bool = False) -> str:
    """libdtrace's D_PROTO_LEN text: `substr( ) prototype mismatch: 1 arg passed, at
    least 2 expected` (`x[ ] ... 3 keys passed` for an array's keys)."""
    what = "key" if key else "arg"
    if lo == hi:
        bound = f"{lo}"
    elif given < lo:
        bound = f"at least {lo}"
    else:
        bound = f"at most {hi}"
    return (f"{name}{'[ ]' if key else '( )'} prototype mismatch: {given} {what}"
            f"{' ' if given == 1 else 's '}passed, {bound} expected")


def arg_count_error(name: str, given: int, lo: int, hi: int, span,
                    between: str = "to") -> DCompileError:
    """`name() takes lo to hi arguments, N given` (`lo or hi` where `between` says so),
    with libdtrace's D_PROTO_LEN text: actions, aggregating functions and subroutines."""
    want = f"{lo}" if lo == hi else f"{lo} {between} {hi}"
    return DCompileError(f"{name}() takes {want} argument{'s' * (hi != 1)}, {given} given",
                         span, tag="D_PROTO_LEN", dtrace=proto_len(name, given, lo, hi))


def proto_arg(name: str, index: int, want: str, got: str, key: bool = False) -> str:
    """libdtrace's D_PROTO_ARG text (argument numbers count from 1)."""
    label = "key" if key else "argument"
    return (f"{name}{'[ ]' if key else '( )'} {label} #{index} is incompatible with "
            f"prototype:\n\tprototype: {want}\n\t{label:>9}: {got}")
