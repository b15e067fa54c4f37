"""USDT provider globs: `python*:::function-entry` matches PROVIDERpid of every running
process with the probes, as DTrace's per-process providers do, and the -c target."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.test_language import run_d
from tests.test_providers import PYTHON, agg_rows, ok

pytestmark = pytest.mark.kernel

WORK = """
import sys, time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
time.sleep(float(sys.argv[1]))
for _ in range(3):
    fib(10)
time.sleep(float(sys.argv[2]))
"""
FIB_CALLS = 3 * 177  # fib(10) makes 177 calls
# CPython 3.11 checks its function-entry semaphore for Python-to-Python calls only on the
# eval loop's tracing path, which enabling `line` turns on: without it, fib's calls do not
# fire (found here; the book scripts that count calls alone see only C-entered frames)
LINE = "python*:::line { }\n"


def test_provider_glob_matches_the_c_target(tmp_path):
    script = tmp_path / "work.py"
    script.write_text(WORK)
    prog = LINE + 'python*:::function-entry /copyinstr(arg1) == "fib"/ { @[pid == $target] = count(); }'
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{PYTHON} -S {script} 0 0")))
    assert agg_rows(out) == {"1": FIB_CALLS}


def test_provider_glob_matches_running_processes(tmp_path):
    script = tmp_path / "work.py"
    script.write_text(WORK)
    # two processes already running when the tracer starts: both providers match
    procs = [subprocess.Popen([PYTHON, "-S", str(script), "6", "1"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        prog = (LINE + 'python*:::function-entry /copyinstr(arg1) == "fib"/ '
                '{ @[probeprov == strjoin("python", lltostr(pid))] = count(); @p[pid] = count(); }\n'
                'tick-8s { exit(0); }')
        out = ok(run_d(tmp_path, prog, timeout=90))
    finally:
        for p in procs:
            p.wait(timeout=30)
    rows = agg_rows(out)
    assert rows["1"] == 2 * FIB_CALLS, out
    for p in procs:
        assert rows[str(p.pid)] == FIB_CALLS, out
