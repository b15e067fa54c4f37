"""DTrace's activity states, on the real kernel: every probe is enabled before BEGIN runs,
and no other probe's clauses run until BEGIN is through; after exit() only END (and ERROR)
run.

The ground truth is tests/workloads/onsignal.c: it sleeps in 1 ms steps until SIGUSR1, then
calls dtnb_signalled() once and exits. A clause on nanosleep's return raises the signal, so
the call is seen only if the uprobe on dtnb_signalled was attached before the first return
was let through -- with the probes attached one after another and live at once, the
process would be gone before the uprobe exists.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

CLI = [sys.executable, "-m", "dtrace_nb.cli"]
REPO = os.path.dirname(os.path.dirname(__file__))


def dtrace(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, cwd=REPO)


def test_probes_are_live_together_and_wait_for_begin(workloads):
    target = subprocess.Popen([str(workloads["onsignal"])], stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout.readline() == "onsignal: ready\n"
        done = dtrace("-w", "-q", "-p", str(target.pid), "-n", """
            syscall::clock_nanosleep:return, syscall::nanosleep:return
            /pid == $target && !raised/ { raised = 1; raise(SIGUSR1); }
            pid$target:a.out:dtnb_signalled:entry { @calls[began] = count(); }
            proc:::exit /pid == $target/ { exit(0); }
            BEGIN { began = 7; }
            END { printa("calls after BEGIN=%d: %@d\\n", @calls); }""")
        assert target.wait(timeout=20) == 0
    finally:
        target.kill()
        target.wait()
    assert done.returncode == 0, done.stderr
    # exactly one call, seen by a clause that ran after BEGIN had set `began`
    assert done.stdout.strip().splitlines() == ["calls after BEGIN=7: 1"]


def test_nothing_runs_after_exit_but_end():
    # tick-1ms fires about 1,000 times a second on each CPU; the first firing calls exit():
    # no later firing's clause may run (DTrace's draining state)
    done = dtrace("-q", "-n", """
        tick-1ms { @ticks = count(); exit(0); }
        END { printa("ticks %@d\\n", @ticks); }""")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "ticks 1"
