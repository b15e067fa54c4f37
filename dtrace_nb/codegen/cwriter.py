"""A small C source writer and the few C shapes the emitters build, one statement a line.

`CWriter` holds lines at an indentation depth; text given to it may span several lines
(a statement expression), and every line of it is indented where it lands, so nested
shapes keep their relative indentation. The builders below return such text.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator


class CWriter:
    def __init__(self, indent: str = "\t"):
        self._lines: list[str] = []
        self._depth = 0
        self._indent = indent

    def line(self, text: str = "") -> None:
        """One line, or each line of a multi-line text, at the current depth."""
        for part in text.split("\n"):
            self._lines.append(self._indent * self._depth + part if part else "")

    def lines(self, texts: Iterable[str]) -> None:
        for t in texts:
            self.line(t)

    def comment(self, text: str) -> None:
        """A one-line C comment showing `text` (D source, probe descriptions, paths): it
        can neither close the comment (`*/`), break the line, splice the next one (a final
        backslash) nor end the C text early (NUL, which bcc would take for the end)."""
        self.line(f"/* {comment_text(text)} */")

    @contextmanager
    def block(self, head: str = "", tail: str = "}") -> Iterator[None]:
        """`head {` ... `tail`; a bare `{` without a head (a scope for locals)."""
        self.line(f"{head} {{" if head else "{")
        with self.indented():
            yield
        self.line(tail)

    @contextmanager
    def indented(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def insert(self, other: "CWriter") -> None:
        """Every line of `other`, at this writer's current depth."""
        for text in other._lines:
            self._lines.append(self._indent * self._depth + text if text else "")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def indent(text: str, by: str = "\t") -> str:
    return "\n".join(by + ln if ln else ln for ln in text.split("\n"))


def stmt_expr(stmts: Iterable[str], value: str) -> str:
    """A GNU statement expression `({ ...; value; })`, one statement a line."""
    body = [s for s in stmts if s] + [f"{value};"]
    return "({\n" + indent("\n".join(body)) + "\n})"


def if_stmt(cond: str, then: Iterable[str], other: Iterable[str] = ()) -> str:
    """`if (cond)` with one statement on the next line, or a braced block of several (and
    an `else` when `other` has statements)."""
    then, other = [s for s in then if s], [s for s in other if s]
    if len(then) == 1 and not other and "\n" not in then[0]:
        return f"if ({cond})\n" + indent(then[0])
    text = f"if ({cond}) {{\n" + indent("\n".join(then)) + "\n}"
    if other:
        text += " else {\n" + indent("\n".join(other)) + "\n}"
    return text


def comment_text(text: str) -> str:
    """`text` made safe inside /* ... */ on one line: control characters (NUL, line breaks,
    form feeds...) and non-ASCII become \\xNN / \\uNNNN escapes, and every '*/' becomes
    '* /'. Only what a reader sees changes; the comment is never code."""
    out = []
    for ch in text:
        o = ord(ch)
        if 32 <= o < 127:
            out.append(ch)
        elif ch == "\t":
            out.append(" ")
        elif o < 256:
            out.append(f"\\x{o:02x}")
        else:
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    return "".join(out).replace("*/", "* /")
