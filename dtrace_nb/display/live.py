"""The live view of a running session in a notebook.

One display area, refreshed through a display handle (`display(..., display_id=True)` and
`handle.update()`), so it works live in JupyterLab, Notebook 7 and VS Code, and a notebook
executed headless keeps the final state. printf output streams below it as plain text.
"""

from __future__ import annotations

import html
import time
from typing import Callable


class _Snapshot:
    """A mimebundle: a status line and the top rows of each aggregation."""

    def __init__(self, status: str, frames: dict, max_rows: int):
        self.status = status
        self.frames = frames
        self.max_rows = max_rows

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = [self.status]
        parts = [f"<div><b>dtrace-nb</b> &middot; {html.escape(self.status)}</div>"]
        for name, df in self.frames.items():
            shown = df.tail(self.max_rows)  # DTrace order: largest values last
            rest = len(df) - len(shown)
            more = f" ({rest} more rows)" if rest > 0 else ""
            text.append(f"{name}{more}\n{shown.to_string(index=False)}")
            parts.append(f"<h4>{html.escape(name)}{html.escape(more)}</h4>"
                         + shown.to_html(index=False))
        return {"text/plain": "\n".join(text), "text/html": "\n".join(parts)}


class LiveView:
    def __init__(self, display: Callable, max_rows: int = 20):
        self.display = display
        self.max_rows = max_rows
        self.handle = None

    def _status(self, session, started: float, done: str = "") -> str:
        drops = sum(session._drops.values()) if session._drops else 0
        state = done or "tracing"
        return (f"{state}: {time.monotonic() - started:.1f} s, {session.records} records, "
                f"{drops} drops, {session.probes_enabled} probes enabled")

    def tick(self, session, started: float) -> None:
        snap = session.snapshot()
        session.drops()
        frames = {"@" + name: s.to_frame() for name, s in snap.items()}
        view = _Snapshot(self._status(session, started), frames, self.max_rows)
        if self.handle is None:
            self.handle = self.display(view, display_id=True)
        else:
            self.handle.update(view)
        self._flush_target(session)

    def _flush_target(self, session) -> None:
        target = session.target
        if target is None:
            return
        while target.output:
            print(target.output.pop(0), end="")

    def run(self, session, duration=None, tick: float = 1.0):
        started = time.monotonic()
        self.handle = self.display(_Snapshot("starting", {}, self.max_rows), display_id=True)
        result = session.run(duration=duration, tick=tick,
                             on_tick=lambda s: self.tick(s, started))
        self._flush_target(session)
        done = f"done ({result.stop_reason})" if result.stop_reason else "done"
        if result.error is not None:
            done = "failed"
        if self.handle is not None:
            self.handle.update(_Snapshot(self._status(session, started, done), {}, 0))
        return result
