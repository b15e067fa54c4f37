"""A Ctrl-C that Python swallows still stops the trace.

Python drops an exception raised inside a weakref callback or a __del__ ("Exception ignored
in ..."), and the garbage collector runs those at any bytecode: a KeyboardInterrupt landing
there never reaches the session's loop. The Jupyter-kernel soak saw it once (an interrupt
inside matplotlib's WeakKeyDictionary callback: the cell traced on until its timeout).
"""

from __future__ import annotations

import signal
import time
import weakref

import pytest

from dtrace_nb.session import Session, SessionConfig
from dtrace_nb.result.result import run_session

pytestmark = pytest.mark.kernel


# the dropped KeyboardInterrupt must not reach the unraisable hook either (it would print
# "Exception ignored in ... Traceback" into the cell)
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_swallowed_keyboardinterrupt_still_stops_the_session():
    swallowed = []
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def on_tick(_session):
        if swallowed:
            return

        class Garbage:
            pass

        def callback(_ref):
            swallowed.append(time.monotonic())
            signal.raise_signal(signal.SIGINT)  # KeyboardInterrupt raised in here is lost
            for _ in range(1000):  # a few bytecodes for the handler to run at
                pass

        g = Garbage()
        ref = weakref.ref(g, callback)
        del g
        assert ref() is None

    started = time.monotonic()
    try:
        session = Session(SessionConfig("profile:::tick-10ms { @t = count(); }", quiet=True))
        result = run_session(session, on_tick=on_tick, tick=0.2,
                             should_stop=lambda: time.monotonic() - started > 20)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert swallowed, "the callback never ran"
    assert result.interrupted and result.stop_reason == "interrupted", result.stop_reason
    assert time.monotonic() - swallowed[0] < 2  # stopped at the next poll, not at 20 s
    assert int(result["t"]["count"][0]) > 0  # and kept what it counted
