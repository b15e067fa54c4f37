"""The live area of a `%%dtrace --cluster` cell, as a one-host cell has it: the control bar
(stage with the hosts live, elapsed time from all-live, progress toward -T, records, drops,
errors, Stop) and the merged aggregations refreshing while the hosts trace; at the end the
area becomes the fleet's result (each aggregation once, the hosts' tagged lines in a
bounded region, dtrace(1)'s text of the totals folded, failed hosts in red).

Drawing (pandas, matplotlib) runs in a thread of its own, as in display/live.py, so the
client's loop keeps its -T and its stop checks exact.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from dtrace_nb.display.cell import CellContent, CellView
from dtrace_nb.display.controlbar import ControlBar
from dtrace_nb.display.live import (BackgroundTrace, snapshot_content, units_for,
                                    warm_imports)
from dtrace_nb.fleet.client import FleetOutcome
from dtrace_nb.fleet.progress import FleetProgress, HostStatus
from dtrace_nb.fleet.text import aggregations_text, host_messages, host_records_text
from dtrace_nb.text.messages import is_chatter, is_fault_message


class FleetLiveView:
    def __init__(self, display: Callable, source: str = "", max_rows: int = 20,
                 plot_style: str = "default", plots: bool = True, widgets: bool = True,
                 record: bool = False, by_host: bool = False):
        self.display, self.source = display, source
        self.by_host = by_host  # tables of each host's rows (a host column) as well
        self.max_rows, self.plot_style, self.plots = max_rows, plot_style, plots
        self.widgets, self.record = widgets, record
        self.background = False  # --bg: no cell to raise in, the area says what failed
        self.bar: Optional[ControlBar] = None
        self.handle = None
        self.units: Optional[dict] = None
        self.messages: list[str] = []   # the client's: failed hosts, hosts not live
        self.refreshes: list = []       # (unix time, status, frames, funcs), for recordings
        self.statuses_seen: list = []   # each refresh's host lines
        self.updates = 0
        self._render: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._last = CellContent()

    def open(self, duration: Optional[float] = None) -> None:
        warm_imports()
        self.bar = ControlBar(duration, widgets=self.widgets)
        self.bar.update(stage="starting")
        if self.bar.has_widgets:
            self.handle = self.display(self.bar.box, display_id=True)
        else:
            self.handle = self.display(self._view(self._last), display_id=True)

    def should_stop(self) -> bool:
        return self.bar is not None and self.bar.stop_requested.is_set()

    def on_message(self, text: str) -> None:
        self.messages.append(text)

    def _view(self, content: CellContent) -> CellView:
        return CellView(self.bar.state.html(), self.bar.state.text(), content)

    def _show(self, content: CellContent) -> None:
        with self._lock:
            self._last = content
            if self.bar.has_widgets:
                self.bar.show_content(content.html())
            elif self.handle is not None:
                self.handle.update(self._view(content))
            self.updates += 1

    # -- while tracing (the client's loop) ------------------------------------------------

    def on_progress(self, p: FleetProgress) -> None:
        self.bar.update(stage=p.stage, elapsed=p.elapsed, records=p.records, drops=p.drops,
                        errors=p.errors, aggregating=bool(p.merged))
        if self._render is not None and self._render.is_alive():
            return  # still drawing the previous picture: this one is skipped
        if self.units is None and p.merged:
            self.units = units_for(self.source, list(p.merged))
        status = self.bar.state.text()
        self._render = threading.Thread(target=self._draw, args=(p, status),
                                        name="dtrace-nb fleet refresh", daemon=True)
        self._render.start()

    def _draw(self, p: FleetProgress, status: str) -> None:
        content = snapshot_content(p.merged, self.plots, self.plot_style, self.units or {},
                                   self.max_rows, live=True)
        content.lines = [ln + "\n" for ln in p.lines]
        content.line_count = p.line_count
        content.errors, content.first_error = p.errors, p.first_error
        content.losses = list(self.messages)
        content.status_lines = [h.text() for h in p.hosts_status]
        self.statuses_seen.append(content.status_lines)
        if self.by_host:
            _add_host_frames(content, p.per_host)
        if self.record:
            self.refreshes.append((time.time(), status, content.frames, content.funcs))
        self._show(content)

    # -- the end ----------------------------------------------------------------------------

    def finish(self, outcome: Optional[FleetOutcome], failure: str = "") -> None:
        """The area becomes the result (static HTML, the widgets closed). `outcome` None:
        the run failed before any host traced, with `failure` (the cell raises it; in the
        background the area says it)."""
        if self._render is not None:
            self._render.join()
        if outcome is None:
            self.bar.update(stage="failed")
            with self._lock:
                if self.handle is not None:
                    view = self._view(CellContent(failure=failure, live=False)) \
                        if self.background else {"text/plain": ""}
                    self.handle.update(view, raw=isinstance(view, dict))
            self.bar.close()
            return
        ran = [h for h in outcome.hosts if h.data]
        errors = sum(h.data.get("errors", 0) for h in ran)
        if not ran:
            stage = "failed"
        elif outcome.interrupted or outcome.stop_reason in ("stopped", "interrupted"):
            stage = "interrupted" if outcome.interrupted else outcome.stop_reason
        else:
            stage = "done" + (f" ({outcome.stop_reason})" if outcome.stop_reason else "")
        self.bar.update(stage=stage, elapsed=outcome.duration,
                        records=sum(h.data.get("records", 0) for h in ran),
                        drops=sum(sum(h.data.get("drops", {}).values()) for h in ran),
                        errors=errors, aggregating=bool(outcome.merged))
        said = host_messages(outcome)
        content = snapshot_content(outcome.merged, self.plots, self.plot_style,
                                   self.units or units_for(self.source, list(outcome.merged)),
                                   self.max_rows, live=False)
        content.lines = host_records_text(outcome).splitlines(keepends=True)
        content.final_text = aggregations_text(outcome)
        content.errors = errors
        content.first_error = next((m for m in said if is_fault_message(_untagged(m))), "")
        content.losses = [m for m in [*outcome.messages, *said] if not
                          is_chatter(_untagged(m)) and not is_fault_message(_untagged(m))]
        content.status_lines = [_ended_status(h).text() for h in outcome.hosts]
        if self.by_host:
            _add_host_frames(content, outcome.per_host)
        with self._lock:
            self._last = content
            if self.handle is not None:
                self.handle.update(self._view(content))
            self.updates += 1
        self.bar.close()


class FleetBackgroundTrace(BackgroundTrace):
    """`%%dtrace --cluster --bg`: the fleet traced from a thread, its area refreshing while
    other cells run; `.stop()` stops every host and returns the FleetResult."""

    def __init__(self, trace: Callable[[Callable[[], bool]], object], view: FleetLiveView,
                 duration=None, on_done=None):
        self._fleet_trace = trace  # trace(should_stop) -> FleetResult
        self._begin(view, duration, on_done)

    def _trace(self):
        return self._fleet_trace(self._stop.is_set)

    def _stop_reason(self) -> str:
        return self.result.stop_reason if self.result is not None else ""


def host_frames(per_host: dict) -> dict:
    """'@name by host' -> every host's rows of aggregation `name`, a host column first."""
    import pandas as pd

    out: dict = {}
    for host, snaps in per_host.items():
        for name, snap in snaps.items():
            df = snap.to_frame()
            df.insert(0, "host", host)
            out.setdefault(f"@{name} by host", []).append(df)
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


def _add_host_frames(content: CellContent, per_host: dict) -> None:
    frames = host_frames(per_host)
    content.frames.update(frames)
    content.funcs.update({k: content.funcs.get(k[:-len(" by host")], "") for k in frames})


def _ended_status(run) -> HostStatus:
    if not run.ok:
        state = "lost" if "died" in run.failure else "failed"
    else:
        reason = run.data.get("stop_reason")
        state = f"ended ({reason})" if reason else "ended"
    return HostStatus(run.host, state, run.data.get("records", 0),
                      sum(run.data.get("drops", {}).values()), run.data.get("errors", 0))


def _untagged(message: str) -> str:
    """A host's message without the "[host] " host_messages put before it."""
    if message.startswith("[") and "] " in message:
        return message.split("] ", 1)[1]
    return message
