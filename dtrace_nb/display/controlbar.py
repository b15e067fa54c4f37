"""The control bar of a tracing cell: stage, elapsed time, progress toward -T, records,
drops, errors and a Stop button, as ipywidgets; where ipywidgets is missing the same line
is plain text in the live area (as tqdm.notebook degrades), and Ctrl-C / the kernel's
interrupt is the way to stop.

The elapsed time counts from probes-live, the clock of Result.duration. A click on Stop
only sets an event the trace loop checks: JupyterLab sends widget messages to a kernel
subshell, so they are handled while the cell's loop holds the main thread.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass
from typing import Optional

COLORS = {"failed": "#c62828", "done": "#2e7d32", "stopped": "#6d4c41"}


@dataclass
class BarState:
    stage: str = "starting"
    elapsed: float = 0.0
    duration: Optional[float] = None  # -T
    records: int = 0
    drops: int = 0
    errors: int = 0
    aggregating: bool = False  # an aggregation-only trace has no records to count

    @property
    def failed(self) -> bool:
        return self.stage.startswith("failed")

    def counters(self) -> str:
        parts = [f"{self.elapsed:.1f} s"]
        if self.duration:
            parts[0] += f" of {self.duration:g} s"
        if self.records or not self.aggregating:
            parts.append(f"{self.records:,} records")
        parts.append(f"{self.drops:,} drops")
        parts.append(f"{self.errors:,} errors")
        return " · ".join(parts)

    def text(self) -> str:
        return f"dtrace-nb: {self.stage} · {self.counters()}"

    def color(self) -> str:
        if self.failed or self.errors or self.drops:
            return COLORS["failed"]
        return next((c for k, c in COLORS.items() if self.stage.startswith(k)), "#1565c0")

    def html(self) -> str:
        """The bar as static HTML: what a saved notebook keeps."""
        return (f"<div style='border-left:4px solid {self.color()};padding:2px 8px;"
                f"font-family:monospace'><b style='color:{self.color()}'>"
                f"{html.escape(self.stage)}</b> &middot; {html.escape(self.counters())}"
                "</div>")


class ControlBar:
    """The bar's widgets (None where ipywidgets is missing) and the stop event."""

    def __init__(self, duration: Optional[float] = None, widgets: bool = True):
        self.state = BarState(duration=duration)
        self.stages = [self.state.stage]  # every stage shown, in order
        self.stop_requested = threading.Event()
        self.box = None
        self.content = None
        if widgets:
            try:
                self._build(duration)
            except ImportError:
                self.box = None

    def _build(self, duration) -> None:
        import ipywidgets as w

        self.stage = w.HTML()
        self.progress = w.FloatProgress(min=0.0, max=float(duration or 1.0),
                                        layout=w.Layout(width="160px",
                                                        display="" if duration else "none"))
        self.counters = w.HTML()
        self.button = w.Button(description="Stop", button_style="danger", icon="stop",
                               tooltip="stop tracing: detach the probes, keep the results",
                               layout=w.Layout(width="80px"))
        self.button.on_click(lambda _: self.request_stop())
        _clicks_where_the_frontend_sends_them(self.button)
        self.content = w.HTML()
        bar = w.HBox([self.stage, self.progress, self.counters, self.button],
                     layout=w.Layout(align_items="center", grid_gap="10px"))
        self.box = w.VBox([bar, self.content])
        self._draw()

    @property
    def has_widgets(self) -> bool:
        return self.box is not None

    def request_stop(self) -> None:
        self.stop_requested.set()
        if self.box is not None:
            self.button.disabled = True
            self.button.description = "Stopping"

    def update(self, **fields) -> None:
        for k, v in fields.items():
            setattr(self.state, k, v)
        if self.state.stage != self.stages[-1]:
            self.stages.append(self.state.stage)
        self._draw()

    def _draw(self) -> None:
        if self.box is None:
            return
        s = self.state
        self.stage.value = (f"<b style='color:{s.color()};font-family:monospace'>"
                            f"{html.escape(s.stage)}</b>")
        self.counters.value = (f"<span style='font-family:monospace'>"
                               f"{html.escape(s.counters())}</span>")
        if s.duration:
            self.progress.value = min(s.elapsed, s.duration)
            self.progress.bar_style = "danger" if s.color() == COLORS["failed"] else ""

    def show_content(self, html_text: str) -> None:
        if self.content is not None and self.content.value != html_text:
            self.content.value = html_text

    def close(self) -> None:
        """Free the widgets' comms (the cell's output is static HTML from now on)."""
        if self.box is not None:
            # a client that keeps widget state (nbclient, "save widget state") would store
            # the last refresh's HTML and PNG a second time: empty it first
            self.content.value = ""
            bar = self.box.children[0]
            for widget in (*bar.children, bar, self.content, self.box):
                widget.close()
            self.box = None


def _clicks_where_the_frontend_sends_them(widget) -> None:
    """ipykernel 7 routes a comm's incoming messages to the subshell that last sent on it
    (`_reply_subshell_id`): the main shell for a widget made in the cell, which is busy
    running the cell, so a click would wait until the trace ended. Forgetting it lets a
    click go to the subshell JupyterLab sends widget messages to (its default,
    commsOverSubshells=perCommTarget), where it is handled at once."""
    comm = getattr(widget, "comm", None)
    if comm is not None and hasattr(comm, "_reply_subshell_id"):
        try:
            with comm._reply_subshell_lock:
                del comm._reply_subshell_id
        except AttributeError:
            pass
