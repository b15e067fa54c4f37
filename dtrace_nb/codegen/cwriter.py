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
        # D source shown in comments must not be able to close the comment.
        safe = text.replace("*/", "* /").replace("\n", " ")
        self.line(f"/* {safe} */")

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
