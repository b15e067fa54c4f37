"""Nothing of ours outlives a session: programs, perf events and fds are released on a
normal end, on an exception in a display callback, and when startup fails half way."""

from __future__ import annotations

import pytest

from dtrace_nb.errors import DError
from dtrace_nb.session import Session, SessionConfig
from dtrace_nb.result.result import run_session
from tests.leakcheck import bpf_state, settled_diff

pytestmark = pytest.mark.kernel

PROGRAM = ("syscall:::entry { @[probefunc] = count(); } profile-97 { @p = count(); } "
           "BEGIN { printf(\"x\"); }")


def test_loaded_while_tracing_and_gone_after():
    before = bpf_state()
    s = Session(SessionConfig(PROGRAM, quiet=True))
    s.start()
    during = bpf_state()
    assert len(during.programs - before.programs) == 3  # entry, profile, BEGIN
    s.poll(50)
    s.stop()
    assert settled_diff(before) == []


def test_exception_in_callback_still_cleans_up():
    before = bpf_state()

    def broken_display(session):
        raise RuntimeError("display failed")

    with pytest.raises(RuntimeError):
        run_session(Session(SessionConfig(PROGRAM, quiet=True)), duration=5, tick=0.1,
                    on_tick=broken_display)
    assert settled_diff(before) == []


def test_failed_start_leaves_nothing():
    before = bpf_state()
    with pytest.raises(DError):
        Session(SessionConfig("syscall::read:entry { @ = count(); }",
                              target_command="/nonexistent/program")).start()
    with pytest.raises(DError):
        Session(SessionConfig("syscall::read:entry /pid == $target/ { @ = count(); } "
                              "syscall::nosuch:entry { }", target_command="sleep 5")).start()
    assert settled_diff(before) == []


def test_a_command_started_with_c_dies_with_a_tracer_killed_by_sigkill():
    """No stop() runs after SIGKILL: the kernel frees the programs with the fds, and the
    -c process gets its parent-death signal instead of running on unwatched."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    before = bpf_state()
    tracer = subprocess.Popen(
        [str(Path(sys.executable).with_name("dtrace-nb")), "-q", "-c", "sleep 60", "-n",
         "syscall::clock_nanosleep:entry /pid == $target/ { trace(1); }"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = None
    deadline = time.monotonic() + 60
    while target is None:
        assert time.monotonic() < deadline and tracer.poll() is None
        for task in os.listdir(f"/proc/{tracer.pid}/task"):
            for child in open(f"/proc/{tracer.pid}/task/{task}/children").read().split():
                if open(f"/proc/{child}/cmdline").read().split("\0")[0] == "sleep":
                    target = int(child)  # released: the stub exec'd the command
        time.sleep(0.05)
    tracer.send_signal(signal.SIGKILL)
    tracer.wait()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{target}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{target}")
    assert settled_diff(before) == []
