"""What a tracing cell shows, live and at the end, as one mimebundle: the control bar's line,
run-time errors and drops, each aggregation once (a table, largest first), the histograms
as one PNG stored once (inside the HTML), printf output in a bounded scrolling region with
its line count, and DTrace's own text folded away."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.display.tables import table_html, table_text

OUTPUT_LINES_LIVE = 40     # printf lines in the live area
OUTPUT_LINES_KEPT = 1000   # printf lines a finished cell keeps (r.output has them all)


@dataclass
class CellContent:
    frames: dict = field(default_factory=dict)    # '@name' -> DataFrame (DTrace's order)
    funcs: dict = field(default_factory=dict)     # '@name' -> aggregating function
    png: Optional[bytes] = None
    caption: str = ""                             # "6 of 25 keys shown"
    lines: list = field(default_factory=list)     # printf output, as emitted
    line_count: int = 0                           # lines in all, where `lines` is a tail
    final_text: str = ""                          # DTrace's text of the end (printa...)
    errors: int = 0
    first_error: str = ""
    losses: list = field(default_factory=list)    # drop and not-enabled messages
    failure: str = ""                             # a rendered DError
    status_lines: list = field(default_factory=list)  # e.g. each host of a fleet, a line
    max_rows: int = 20
    live: bool = True

    def _output(self) -> tuple[str, int, str]:
        """(text shown, line count, note on what was left out)."""
        text = "".join(self.lines)
        all_lines = text.splitlines()
        keep = OUTPUT_LINES_LIVE if self.live else OUTPUT_LINES_KEPT
        total = max(len(all_lines), self.line_count)
        if total <= keep:
            return text, total, ""
        if self.live:
            return "\n".join(all_lines[-keep:]), total, f"the last {keep:,}"
        half = keep // 2
        shown = all_lines[:half] + [f"... {len(all_lines) - keep:,} lines ..."] + \
            all_lines[-half:]
        return "\n".join(shown), len(all_lines), f"the first and last {half:,}; r.output " \
                                                  "has them all"

    def _problems(self) -> list[str]:
        out = []
        if self.errors:
            where = "" if self.live else "; every message in r.messages (-o NAME)"
            out.append(f"{self.errors:,} error{'s' * (self.errors != 1)}; the first: "
                       f"{self.first_error}{where}")
        out.extend(self.losses)
        return out

    def html(self) -> str:
        parts = []
        if self.failure:
            parts.append(f"<pre style='color:#c62828;margin:4px 0'>"
                         f"{html.escape(self.failure)}</pre>")
        for p in self._problems():
            parts.append(f"<div style='color:#c62828;font-family:monospace'>"
                         f"{html.escape(p)}</div>")
        for line in self.status_lines:
            # white-space:pre: the budget's columns are aligned with spaces
            parts.append(f"<div style='color:#666;font-family:monospace;white-space:pre'>"
                         f"{html.escape(line)}</div>")
        for name, df in self.frames.items():
            parts.append(table_html(name, self.funcs.get(name, ""), df, self.max_rows))
        if self.png is not None:
            parts.append("<div><img style='max-width:100%' src='data:image/png;base64,"
                         + base64.b64encode(self.png).decode() + "'></div>")
        if self.caption:
            parts.append(f"<div style='color:#666'>{html.escape(self.caption)}</div>")
        if self.lines:
            text, count, note = self._output()
            label = f"{count:,} line{'s' * (count != 1)} of output" + \
                (f" ({note})" if note else "")
            parts.append(f"<div style='color:#666;margin-top:4px'>{html.escape(label)}</div>"
                         "<pre style='max-height:20em;overflow:auto;margin:0;"
                         f"border:1px solid #ddd;padding:4px'>{html.escape(text)}</pre>")
        if self.final_text.strip():
            n = len(self.final_text.splitlines())
            parts.append(f"<details><summary>DTrace's text ({n:,} lines)</summary>"
                         f"<pre>{html.escape(self.final_text)}</pre></details>")
        if not self.live and not parts:
            parts.append("<div style='color:#666'>no output</div>")
        return "\n".join(parts)

    def text(self) -> str:
        parts = []
        if self.failure:
            parts.append(self.failure)
        parts.extend(self._problems())
        parts.extend(self.status_lines)
        for name, df in self.frames.items():
            parts.append(table_text(name, self.funcs.get(name, ""), df, self.max_rows))
        if self.lines:
            text, count, note = self._output()
            parts.append(f"{count:,} lines of output" + (f" ({note})" if note else "")
                         + "\n" + text.rstrip("\n"))
        if self.final_text.strip() and not self.frames:
            parts.append(self.final_text.rstrip("\n"))
        elif self.final_text.strip():
            # the tables above say it; DTrace's text is in the HTML once, folded
            parts.append("(DTrace's text: print(r.output), or -o NAME then NAME.output)")
        return "\n".join(parts)


class CellView:
    """The mimebundle of a finished cell (or of the live area without widgets): the bar's
    line on top. No image/png entry: the PNG is stored once, inside the HTML."""

    def __init__(self, bar_html: str, bar_text: str, content: CellContent):
        self.bar_html, self.bar_text, self.content = bar_html, bar_text, content

    def _repr_mimebundle_(self, include=None, exclude=None):
        body = self.content.text()
        return {"text/plain": self.bar_text + ("\n" + body if body else ""),
                "text/html": self.bar_html + self.content.html()}
