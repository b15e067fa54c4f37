"""The live view of a running session in a notebook, in the foreground or in the background.

One display area, refreshed through a display handle (`display(..., display_id=True)` and
`handle.update()`), so it works live in JupyterLab, Notebook 7 and VS Code, and a notebook
executed headless keeps the last state. Each refresh shows a status line, the top rows of
every aggregation, and a matplotlib histogram (PNG) of each quantize-type aggregation; it
also samples every aggregation into the session's timeline. In the foreground, printf
output streams below as plain text; a background session shows its latest lines inside
the area instead (a thread's prints would land in whatever cell runs at the time).
"""

from __future__ import annotations

import base64
import html
import threading
import time
from typing import Any, Callable, Optional

from dtrace_nb.display.plots import histogram_png
from dtrace_nb.session import RunOutcome, Session

OUTPUT_LINES = 20  # printf lines a background view keeps


class LiveSnapshot:
    """A mimebundle: status line, the top rows of each aggregation, histograms as a PNG,
    printf lines (background only). text/plain is a complete fallback."""

    def __init__(self, status: str, frames: dict, funcs: dict, max_rows: int,
                 png: Optional[bytes] = None, lines: Optional[list[str]] = None):
        self.status = status
        self.frames = frames
        self.funcs = funcs
        self.max_rows = max_rows
        self.png = png
        self.lines = lines or []

    def _repr_mimebundle_(self, include=None, exclude=None):
        text = [f"dtrace-nb: {self.status}"]
        parts = [f"<div><b>dtrace-nb</b> &middot; {html.escape(self.status)}</div>"]
        for name, df in self.frames.items():
            if self.funcs.get(name) in ("quantize", "lquantize", "llquantize"):
                keys = [c for c in df.columns if c not in ("value", "count")]
                shown = (df.groupby(keys, sort=False)["count"].sum().reset_index()
                         .sort_values("count").tail(self.max_rows) if keys
                         else df.tail(self.max_rows))
                total = len(df.groupby(keys)) if keys else len(df)
            else:
                shown = df.tail(self.max_rows)  # DTrace order: largest values last
                total = len(df)
            rest = total - len(shown)
            more = f" ({rest} more rows)" if rest > 0 else ""
            text.append(f"{name}{more}\n{shown.to_string(index=False)}")
            parts.append(f"<h4>{html.escape(name)}{html.escape(more)}</h4>"
                         + shown.to_html(index=False))
        if self.png is not None:
            parts.append("<div><img src='data:image/png;base64,"
                         + base64.b64encode(self.png).decode() + "'></div>")
        if self.lines:
            text.append("".join(self.lines).rstrip("\n"))
            parts.append("<pre>" + html.escape("".join(self.lines)) + "</pre>")
        bundle = {"text/plain": "\n".join(text), "text/html": "\n".join(parts)}
        if self.png is not None:
            bundle["image/png"] = self.png
        return bundle


class LiveView:
    def __init__(self, display: Callable, max_rows: int = 20, plot_style: str = "default",
                 plots: bool = True, record: bool = False):
        self.display = display
        # keep each refresh's frames for Result.save() (bounded by replay.thin on save)
        self.record = record
        self.refreshes: list = []
        self.max_rows = max_rows
        self.plot_style = plot_style
        self.plots = plots
        self.handle = None
        self.updates = 0
        self.lines: Optional[list[str]] = None  # set for a background view
        self._lock = threading.Lock()

    def _status(self, session, started: float, done: str = "") -> str:
        drops = sum(session._drops.values()) if session._drops else 0
        state = done or "tracing"
        return (f"{state}: {time.monotonic() - started:.1f} s, {session.records} records, "
                f"{drops} drops, {session.probes_enabled} probes enabled")

    def show(self, view: LiveSnapshot) -> None:
        with self._lock:
            if self.handle is None:
                self.handle = self.display(view, display_id=True)
            else:
                self.handle.update(view)
            self.updates += 1

    def render(self, session, snap: dict, status: str) -> LiveSnapshot:
        frames = {"@" + name: s.to_frame() for name, s in snap.items()}
        funcs = {"@" + name: s.func for name, s in snap.items()}
        png = None
        if self.plots:
            png = histogram_png({n: (funcs[n], df) for n, df in frames.items()}, self.plot_style)
        lines = list(self.lines[-OUTPUT_LINES:]) if self.lines is not None else None
        return LiveSnapshot(status, frames, funcs, self.max_rows, png, lines)

    def tick(self, session, started: float) -> None:
        snap = session.snapshot()  # session._drops: refreshed by its status check
        session.timeline.add(snap)
        view = self.render(session, snap, self._status(session, started))
        if self.record:
            self.refreshes.append((time.time(), view.status, view.frames, view.funcs))
            if len(self.refreshes) > 4 * 120:
                del self.refreshes[::2]  # keep the memory of a long trace bounded
        self.show(view)
        if self.lines is None:
            self._flush_target(session)

    def _flush_target(self, session) -> None:
        target = session.target
        if target is None:
            return
        while target.output:
            text = target.output.pop(0)
            if self.lines is not None:
                self.lines.append(text)
            else:
                print(text, end="")

    def finish(self, session: Session, outcome: RunOutcome, started: float) -> None:
        self._flush_target(session)
        done = f"done ({session.stop_reason})" if session.stop_reason else "done"
        if outcome.error is not None:
            done = "failed"
            if self.lines is not None:  # a background session has no cell to raise in
                self.lines.append(outcome.error.render(session.cfg.source) + "\n")
        snap = session._final or {}
        self.show(self.render(session, snap, self._status(session, started, done)))

    def run(self, session: Session, duration=None, tick: float = 1.0,
            should_stop=None) -> RunOutcome:
        """Run the session with this view refreshing; the caller builds the Result (with
        this view's plot_style and refreshes)."""
        started = time.monotonic()
        self.show(LiveSnapshot("starting", {}, {}, self.max_rows))
        outcome = session.run(duration=duration, tick=tick, should_stop=should_stop,
                              on_tick=lambda s: self.tick(s, started))
        self.finish(session, outcome, started)
        return outcome


class BackgroundTrace:
    """A session tracing in a thread (`%%dtrace --bg`): the live area keeps refreshing while
    other cells run. `.stop()` detaches and returns the Result; `.result` is None until the
    session ended; `.widget()` is a Stop button (an extra: the area itself is plain
    display data, readable without widgets)."""

    def __init__(self, session: Session, view: LiveView,
                 make_result: Callable[[Session, RunOutcome], Any], duration=None,
                 tick: float = 1.0,
                 on_done: Optional[Callable[["BackgroundTrace"], None]] = None):
        self.session = session
        self.make_result = make_result  # Result.from_session (result/ is above display/)
        self.view = view
        view.lines = []
        self.result = None
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._on_done = on_done
        self._thread = threading.Thread(target=self._run, args=(duration, tick),
                                        name="dtrace-nb background", daemon=True)

    def start(self) -> "BackgroundTrace":
        # Open the live area here, in the cell that starts the session. From the thread it
        # could come after the cell finished: Jupyter shows it under whichever cell runs
        # at the time, or nowhere. The thread's refreshes only update it (by display id).
        self.view.show(LiveSnapshot("starting", {}, {}, self.view.max_rows))
        self._thread.start()
        return self

    def _run(self, duration, tick) -> None:
        try:
            outcome = self.view.run(self.session, duration=duration, tick=tick,
                                    should_stop=self._stop.is_set)
            self.result = self.make_result(self.session, outcome)
        except BaseException as exc:  # noqa: BLE001 - kept for the user, never lost in a thread
            self.error = exc
        finally:
            if self._on_done is not None:
                self._on_done(self)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 30.0):
        """Stop tracing (probes detached, maps freed) and return the Result."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return self.result

    def wait(self, timeout: Optional[float] = None):
        self._thread.join(timeout)
        return self.result

    def widget(self):
        import ipywidgets as widgets

        button = widgets.Button(description="Stop", button_style="danger",
                                tooltip="stop tracing: detach the probes, keep the results")
        label = widgets.Label(value="tracing in the background")

        def clicked(_):
            button.disabled = True
            label.value = "stopping..."
            # never block the kernel's message loop on the detach
            threading.Thread(target=lambda: (self.stop(),
                                             setattr(label, "value", "stopped")),
                             daemon=True).start()

        button.on_click(clicked)
        return widgets.HBox([button, label])

    def __repr__(self) -> str:
        state = "running" if self.running else "finished"
        return f"<dtrace-nb background session: {state}; .stop() returns the Result>"
