"""Ctrl-C while kernel objects are created or freed, and Ctrl-C that Python swallows.

Both are about SIGINT (and the SIGTERM the command turns into one) reaching the main
thread at a bad moment: in the middle of creating or freeing something nobody else would
free (`deferred_interrupts`), or inside a weakref callback or `__del__`, where Python drops
the KeyboardInterrupt (`SignalNotice`).
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C (and the SIGTERM the command turns into one) waits until the block is done.

    A KeyboardInterrupt raised in the middle of creating or freeing a kernel object (bcc
    creating maps, a program fd not yet recorded, a perf event not yet in our list, a
    cleanup half done) would leak it: nobody holds the Python object that could free it.
    Signals only reach the main thread, so elsewhere there is nothing to defer."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, object]] = []
    saved = {}
    for sig in _DEFERRED_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler) and not getattr(handler, "_dtnb_deferring", False):
            def record(signum, frame):
                pending.append((signum, frame))
            record._dtnb_deferring = True  # type: ignore[attr-defined]
            saved[sig] = handler
            signal.signal(sig, record)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for signum, frame in pending[:1]:  # one Ctrl-C is enough to stop
            saved[signum](signum, frame)


class SignalNotice:
    """Remembers that SIGINT arrived while a session runs, and then does what the handler
    it wraps does (raise KeyboardInterrupt). Python drops an exception raised in a weakref
    callback or a __del__ (the garbage collector runs them at any bytecode), so a Ctrl-C
    landing there would be lost and the trace would go on; the run loop checks `seen`."""

    def __init__(self):
        self.seen = False
        self._previous = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals only reach the main thread
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):
            return

        def notice(signum, frame):
            self.seen = True
            previous(signum, frame)

        hook = sys.unraisablehook

        def unraisable(info):
            # the dropped KeyboardInterrupt is handled (the loop stops): no "Exception
            # ignored ... Traceback" for the user; anything else as before
            if not (self.seen and issubclass(info.exc_type, KeyboardInterrupt)):
                hook(info)

        self._previous, self._handler = previous, notice
        self._hook, self._unraisable = hook, unraisable
        signal.signal(signal.SIGINT, notice)
        sys.unraisablehook = unraisable

    def uninstall(self) -> None:
        if self._previous is None:
            return
        if signal.getsignal(signal.SIGINT) is self._handler:
            signal.signal(signal.SIGINT, self._previous)
        if sys.unraisablehook is self._unraisable:
            sys.unraisablehook = self._hook
        self._previous = None
