"""The live view of a running session in a notebook, in the foreground or in the background.

One output area per cell. With ipywidgets it holds the control bar (controlbar.py) and an
HTML widget the refreshes rewrite; at the end the area is replaced (by display id) with
static HTML: the bar's last line and the result (cell.py), which is what a saved notebook
keeps. Without ipywidgets each refresh updates the area's mimebundle instead.

The trace loop (Session.run) never waits for a drawing: at each refresh it reads the maps
(a snapshot) and hands them to a render thread, which builds the frames, the histogram
PNG and the HTML; a refresh that comes while the previous one is still drawing is skipped.
So -T and Stop are as exact as the loop's poll, whatever matplotlib costs.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Optional

from dtrace_nb.display.cell import CellContent, CellView
from dtrace_nb.display.controlbar import BarState, ControlBar
from dtrace_nb.runtime.budget import budget_lines
from dtrace_nb.session import RunOutcome, Session
from dtrace_nb.text.messages import is_fault_message, is_problem_message

BAR_TICK = 0.2  # seconds between control bar updates (the refresh is DTraceMagics')


def warm_imports() -> threading.Thread:
    """Import pandas and matplotlib in a thread while the program compiles: the first
    refresh then does not wait for them (about 1 s in a fresh kernel)."""
    def load() -> None:
        import pandas  # noqa: F401

        from dtrace_nb.display.plots import _matplotlib
        _matplotlib()
    t = threading.Thread(target=load, name="dtrace-nb imports", daemon=True)
    t.start()
    return t


def snapshot_content(snap: dict, plots: bool, plot_style: str, units: dict, max_rows: int,
                     live: bool) -> CellContent:
    """The tables and the histograms' PNG of aggregation snapshots (name -> AggSnapshot)."""
    from dtrace_nb.display.plots import histogram_png, panels_caption

    frames = {"@" + name: s.to_frame() for name, s in snap.items()}
    funcs = {"@" + name: s.func for name, s in snap.items()}
    hists = {n: (funcs[n], df) for n, df in frames.items()}
    png = histogram_png(hists, plot_style, units) if plots else None
    return CellContent(frames=frames, funcs=funcs, png=png,
                       caption=panels_caption(hists) if png else "",
                       max_rows=max_rows, live=live)


def first_error(messages: list[str]) -> str:
    return next((m for m in messages if is_fault_message(m)), "")


class LiveView:
    def __init__(self, display: Callable, max_rows: int = 20, plot_style: str = "default",
                 plots: bool = True, record: bool = False, widgets: bool = True,
                 units: Optional[dict] = None):
        self.display = display
        # keep each refresh's frames for Result.save() (bounded by replay.thin on save)
        self.record = record
        self.refreshes: list = []
        self.max_rows = max_rows
        self.plot_style = plot_style
        self.plots = plots
        self.units = units or {}
        self.widgets = widgets
        self.handle = None
        self.bar: Optional[ControlBar] = None
        self.updates = 0
        self.skipped = 0
        self.lines: list[str] = []  # printf (and -c target) output while tracing
        self.end_text: list[str] = []  # what the session printed once it stopped
        self._session: Optional[Session] = None
        self.background = False
        self._lock = threading.Lock()
        self._render: Optional[threading.Thread] = None
        self.render_error: Optional[BaseException] = None
        self.draw_seconds = 0.0  # how long a refresh takes to draw (the slowest lately)
        self.deadline: Optional[float] = None  # -T's, on the monotonic clock
        self._last = CellContent()

    # -- the area ------------------------------------------------------------------------

    def open(self, duration=None) -> None:
        """Display the area (in the cell that runs, from the main thread)."""
        self.bar = ControlBar(duration, widgets=self.widgets)
        if self.bar.has_widgets:
            self.handle = self.display(self.bar.box, display_id=True)
        else:
            self.handle = self.display(self._view(self._last), display_id=True)

    def _view(self, content: CellContent) -> CellView:
        state = self.bar.state if self.bar else BarState()
        return CellView(state.html(), state.text(), content)

    def show(self, content: CellContent) -> None:
        with self._lock:
            self._last = content
            if self.bar is not None and self.bar.has_widgets:
                self.bar.show_content(content.html())
            elif self.handle is not None:
                self.handle.update(self._view(content))
            self.updates += 1

    def stage(self, text: str, session: Optional[Session] = None) -> None:
        if self.bar is None:
            return
        self.bar.update(stage=text)
        if self.bar.has_widgets:
            return
        if self.handle is not None:
            with self._lock:
                self.handle.update(self._view(self._last))

    def _counters(self, session: Session) -> dict:
        elapsed = time.monotonic() - session.started_at if session.started_at else 0.0
        return dict(elapsed=elapsed, records=session.records,
                    drops=sum(session._drops.values()) if session._drops else 0,
                    errors=session.errors)

    def on_output(self, text: str) -> None:
        """Session.on_output: printf output of the traced time (some of it read only after
        the probes were detached), then END's and the exit's text."""
        s = self._session
        (self.end_text if s is not None and s.ending else self.lines).append(text)

    def _take_target_output(self, session: Session) -> None:
        target = session.target
        while target is not None and target.output:
            self.lines.append(target.output.pop(0))

    # -- refreshes -----------------------------------------------------------------------

    def content(self, session: Session, snap: dict, live: bool) -> CellContent:
        """Frames, tables and the PNG of a snapshot (pandas, matplotlib: off the loop)."""
        content = snapshot_content(snap, self.plots, self.plot_style, self.units,
                                   self.max_rows, live)
        content.lines = list(self.lines)
        content.errors = session.errors
        content.first_error = first_error(session.messages)
        content.losses = [m for m in session.messages if is_problem_message(m)]
        if session.cfg.budget:  # what tracing costs, as the kernel counts it
            content.status_lines = budget_lines(session.costs_now() if live
                                                else session.budget)
        return content

    def _draw(self, session: Session, snap: dict, status: str) -> None:
        started = time.monotonic()
        try:
            content = self.content(session, snap, live=True)
            if self.record:
                self.refreshes.append((time.time(), status, content.frames, content.funcs))
                if len(self.refreshes) > 4 * 120:
                    del self.refreshes[::2]  # keep the memory of a long trace bounded
            self.show(content)
        except Exception as exc:  # noqa: BLE001 - raised in the loop's thread (refresh())
            self.render_error = exc
        finally:
            self.draw_seconds = max(0.9 * self.draw_seconds, time.monotonic() - started)

    def refresh(self, session: Session) -> None:
        """Read the maps here (the loop's thread); draw in the render thread, or skip when
        it is still busy with the previous refresh."""
        if self.render_error is not None:
            # drawing failed: end the trace with that error, as the cell's own (the
            # session stops and frees everything on the way out)
            error, self.render_error = self.render_error, None
            raise error
        if self._render is not None and self._render.is_alive():
            self.skipped += 1
            return
        if self.deadline is not None and \
                time.monotonic() + 2 * self.draw_seconds > self.deadline:
            # a drawing holds the GIL in matplotlib's C code for much of its time: one
            # that would still run at -T's deadline could delay the loop's stop
            self.skipped += 1
            return
        snap = session.snapshot()  # session._drops: refreshed by its status check
        session.timeline.add(snap)
        status = self.bar.state.text() if self.bar else "tracing"
        self._render = threading.Thread(target=self._draw, args=(session, snap, status),
                                        name="dtrace-nb refresh", daemon=True)
        self._render.start()

    # -- the whole run -------------------------------------------------------------------

    def finish(self, session: Session, outcome: RunOutcome) -> None:
        """The area becomes the result: static HTML, the widgets closed."""
        if self._render is not None:
            self._render.join()
        if outcome.error is not None:
            stage = "failed"
        elif session.stop_reason in ("stopped", "interrupted"):
            stage = session.stop_reason
        else:
            stage = "done" + (f" ({session.stop_reason})" if session.stop_reason else "")
        counters = self._counters(session)
        if session.started_at and session.ended_at:
            counters["elapsed"] = session.ended_at - session.started_at
        self.bar.update(stage=stage, **counters)
        self._take_target_output(session)
        content = self.content(session, session._final or {}, live=False)
        content.final_text = "".join(self.end_text)
        view = self._view(content)
        if outcome.error is not None:
            if self.background:  # no cell to raise in: the area says it
                content.failure = outcome.error.render(session.cfg.source)
            elif not session.started_at:
                # a compile error: the cell shows the error alone, no status line above
                view = {"text/plain": ""}
        with self._lock:
            self._last = content
            if self.handle is not None:
                self.handle.update(view, raw=isinstance(view, dict))
            self.updates += 1
        self.bar.close()

    def run(self, session: Session, duration=None, tick: float = 1.0,
            should_stop=None) -> RunOutcome:
        """Run the session with this view refreshing; the caller builds the Result (with
        this view's plot_style and refreshes)."""
        warm_imports()
        if self.bar is None:
            self.open(duration)
        bar = self.bar
        self._session = session
        next_refresh = [0.0]

        def on_stage(text: str) -> None:
            if text.startswith("attaching") and session.checked is not None:
                self.units = units_for(session.cfg.source, session.checked.aggregations)
                bar.update(aggregating=bool(session.checked.aggregations))
            self.stage(text, session)
            if text == "tracing":
                if duration:
                    self.deadline = session.started_at + duration
                next_refresh[0] = time.monotonic() + tick
                self.refresh(session)  # the first refresh as soon as the probes are live

        def on_tick(s: Session) -> None:
            self._take_target_output(s)
            bar.update(**self._counters(s))
            if time.monotonic() >= next_refresh[0]:
                next_refresh[0] = time.monotonic() + tick
                self.refresh(s)

        def stop_now() -> bool:
            return bar.stop_requested.is_set() or bool(should_stop and should_stop())

        session.on_stage = on_stage
        try:
            outcome = session.run(duration=duration, tick=min(tick, BAR_TICK),
                                  should_stop=stop_now, on_tick=on_tick)
        except BaseException:
            if self._render is not None:
                self._render.join()
            bar.update(stage="failed")
            if self.handle is not None:
                self.handle.update(self._view(self._last))
            bar.close()
            raise
        self.finish(session, outcome)
        return outcome


def units_for(source: str, names) -> dict:
    """'@name' -> the unit of what each histogram aggregates ('ns', 'bytes' or ''), read
    off the expression in the program text."""
    from dtrace_nb.display.plots import unit_of

    out = {}
    for name in names:
        at = "@" + re.escape(name) + (r"\b" if name else r"(?![A-Za-z_])")
        m = re.search(at + r"[^=;{}]*=\s*l{0,2}quantize\s*\(([^;]*)\)\s*;", source)
        if m:
            out["@" + name] = unit_of("@" + name, m.group(1))
    return out




class BackgroundTrace:
    """A session tracing in a thread (`%%dtrace --bg`): the live area keeps refreshing while
    other cells run. `.stop()` detaches and returns the Result; `.result` is None until the
    session ended. The area's Stop button (or `.stop()`) stops it."""

    def __init__(self, session: Session, view: LiveView,
                 make_result: Callable[[Session, RunOutcome], Any], duration=None,
                 tick: float = 1.0,
                 on_done: Optional[Callable[["BackgroundTrace"], None]] = None):
        self.session = session
        self.make_result = make_result  # Result.from_session (result/ is above display/)
        self._tick = tick
        self._begin(view, duration, on_done)

    def _begin(self, view, duration, on_done) -> None:
        self.view = view
        view.background = True
        self.result = None
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._on_done = on_done
        self._duration = duration
        self._thread = threading.Thread(target=self._run, name="dtrace-nb background",
                                        daemon=True)

    def start(self) -> "BackgroundTrace":
        # Open the live area here, in the cell that starts the session. From the thread it
        # could come after the cell finished: Jupyter shows it under whichever cell runs
        # at the time, or nowhere. The thread's refreshes only update it (by display id).
        self.view.open(self._duration)
        self._thread.start()
        return self

    def _trace(self):
        """Trace until stopped (self._stop) and return the Result (in the thread)."""
        outcome = self.view.run(self.session, duration=self._duration, tick=self._tick,
                                should_stop=self._stop.is_set)
        return self.make_result(self.session, outcome)

    def _stop_reason(self) -> str:
        return self.session.stop_reason

    def _run(self) -> None:
        try:
            self.result = self._trace()
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

    def _repr_html_(self) -> str:
        return f"<code>{self.__repr__()}</code>"

    def __repr__(self) -> str:
        if self.running:
            return "<dtrace-nb background session: running; .stop() returns the Result>"
        reason = self._stop_reason() or "finished"
        return f"<dtrace-nb background session: {reason}; .result holds the Result>"
