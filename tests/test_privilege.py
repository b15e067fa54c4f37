"""Without privileges the command says, in one line and without a traceback, what tracing
needs (root, or CAP_BPF + CAP_PERFMON), and exits non-zero; nothing is started first.

Run as user `nobody` through setpriv (all capabilities dropped), from this checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.kernel  # needs root, to become nobody


def as_nobody(*args: str) -> subprocess.CompletedProcess:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv(1) to run the command as nobody")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DTRACE_NB")}
    env["HOME"] = "/nonexistent"
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           sys.executable, "-m", "dtrace_nb.cli", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def assert_explains_privileges(done: subprocess.CompletedProcess) -> None:
    assert done.returncode != 0
    assert done.stdout == ""
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith("dtrace: cannot trace: ")
    assert "root" in first and "CAP_BPF+CAP_PERFMON" in first
    # the rest is at most the hint, on its own line
    rest = done.stderr.splitlines()[1:]
    assert len(rest) <= 1 and all(line.startswith("  hint: ") for line in rest), done.stderr


@pytest.mark.parametrize("args", [
    ["-n", "BEGIN { exit(0); }"],
    ["-q", "-n", "syscall::read:entry { @[execname] = count(); }"],
    ["-n", "BEGIN"],
])
def test_without_privileges_one_line_says_what_is_needed(args):
    assert_explains_privileges(as_nobody(*args))


def test_the_target_is_not_started_without_privileges(tmp_path):
    marker = tmp_path / "ran"
    os.chmod(tmp_path, 0o777)
    done = as_nobody("-n", "BEGIN { exit(0); }", "-c", f"touch {marker}")
    assert_explains_privileges(done)
    assert not marker.exists()


def test_doctor_without_privileges_fails_and_says_why():
    done = as_nobody("--doctor")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "CAP_BPF+CAP_PERFMON" in done.stdout
