"""One exception family for everything a user can get wrong or lack.

A DError carries where (a source span, when there is one), what, and how to fix it. The
magic and the command print `str(err)` (or `err.render(source)` for a caret-pointed
excerpt) and never a Python traceback.
"""

from __future__ import annotations

from typing import Optional

from dtrace_nb.lang.ast import Span


class DError(Exception):
    """Base of all errors shown to users."""

    kind = "error"

    def __init__(self, message: str, span: Optional[Span] = None, hint: str = "",
                 detail: str = ""):
        super().__init__(message)
        self.message = message
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


class DSyntaxError(DError):
    kind = "syntax error"


class DCompileError(DError):
    """A well-formed program that breaks a rule of D (types, names, arguments)."""

    kind = "compile error"


class DProbeError(DError):
    """A probe description that matches nothing, or a provider that cannot serve it."""

    kind = "probe error"


class DUsageError(DError):
    """Bad options or command-line use."""

    kind = "usage error"


class DLoadError(DError):
    """clang or the BPF verifier rejected the generated program."""

    kind = "load error"


class DEnvironmentError(DError):
    """Something the host lacks: privileges, bcc, headers, tracefs, a kernel mechanism."""

    kind = "cannot trace"


class DRuntimeError(DError):
    kind = "runtime error"
