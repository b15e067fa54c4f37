"""A small C source writer: lines, indentation and blocks, nothing else."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class CWriter:
    def __init__(self, indent: str = "\t"):
        self._lines: list[str] = []
        self._depth = 0
        self._indent = indent
        self._tmp = 0

    def line(self, text: str = "") -> None:
        self._lines.append(self._indent * self._depth + text if text else "")

    def lines(self, texts) -> None:
        for t in texts:
            self.line(t)

    def comment(self, text: str) -> None:
        """A one-line C comment showing `text` (D source, probe descriptions, paths): it
        can neither close the comment (`*/`), break the line, splice the next one (a final
        backslash) nor end the C text early (NUL, which bcc would take for the end)."""
        self.line(f"/* {comment_text(text)} */")

    @contextmanager
    def block(self, head: str, tail: str = "}") -> Iterator[None]:
        self.line(head + " {")
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self.line(tail)

    def temp(self, prefix: str = "t") -> str:
        self._tmp += 1
        return f"dt_{prefix}{self._tmp}"

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


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
