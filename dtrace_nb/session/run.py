"""A whole run of a session: trace until exit(), the target exits, the duration passes,
the caller says stop, or Ctrl-C; then stop, always. Ctrl-C stops tracing and keeps
everything aggregated, as in DTrace, also when Python swallowed its KeyboardInterrupt."""

from __future__ import annotations

import time
from typing import Callable, Optional, Protocol

from dtrace_nb.errors import DError
from dtrace_nb.runtime.signals import SignalNotice
from dtrace_nb.session.config import RunOutcome


class Runnable(Protocol):
    """What run() drives (core.Session)."""

    started_at: float
    stop_reason: str

    def start(self) -> None: ...

    def poll(self, timeout_ms: int = 100) -> bool: ...

    def stop(self, reason: str = "") -> None: ...


def run(session: Runnable, duration: Optional[float] = None,
        on_tick: Optional[Callable] = None, tick: float = 1.0,
        should_stop: Optional[Callable[[], bool]] = None) -> RunOutcome:
    outcome = RunOutcome()
    signalled = SignalNotice()
    try:
        signalled.install()
        session.start()
        # -T counts from probes-live (Result.duration's clock), checked at every poll
        # and never later than it: a slow on_tick cannot stretch the trace
        deadline = session.started_at + duration if duration else None
        next_tick = time.monotonic() + tick
        while session.poll(_poll_ms(deadline)):
            if signalled.seen:
                # a Ctrl-C whose KeyboardInterrupt Python swallowed (raised inside a
                # weakref callback or __del__: "Exception ignored in ...") still stops us
                raise KeyboardInterrupt
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                session.stop_reason = "duration"
                break
            if should_stop is not None and should_stop():
                session.stop_reason = "stopped"
                break
            if on_tick is not None and now >= next_tick:
                next_tick = now + tick
                on_tick(session)
    except KeyboardInterrupt:
        outcome.interrupted = True
        session.stop_reason = "interrupted"
    except DError as err:
        outcome.error = err
    finally:
        try:
            session.stop()
        except KeyboardInterrupt:
            outcome.interrupted = True
            session.stop()
        finally:
            signalled.uninstall()
    return outcome


def _poll_ms(deadline: Optional[float]) -> int:
    """Wait up to 100 ms for records, less when the deadline is nearer."""
    if deadline is None:
        return 100
    return max(0, min(100, int((deadline - time.monotonic()) * 1000) + 1))
