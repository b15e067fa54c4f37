"""Run one test's dtrace command the way runtest.sh runs it, with its trigger and timeout.

Flags as runtest.sh gives them: its cpp flags (`-Iinclude ... -DARCH_$arch`), `-xerrtags` for
err.D_* tests and `-xdroptags` for drp.* tests, then `-s TEST`, then @@runtest-opts. A test
whose trigger runs synchronously gets `-c TRIGGER`; a trigger with @@trigger-timing
before/after/N runs beside dtrace and its pid replaces `$_pid` in the options. An interpreter
file (`#!dtrace -qs`) is run as the kernel would run it, through a copy whose first line names
the command. The timeout is coreutils' `timeout --signal=TERM --kill-after=5`, status 124.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench.conformance.suite import ARCH, Test
from bench.conformance.triggers import Triggers

CPP_FLAGS = ["-Iinclude", "-Iuts/common", "-Ibuild", "-Ilibdtrace", f"-DARCH_{ARCH}"]
TIMED_OUT = 124
KILL_AFTER = 5


@dataclasses.dataclass
class Outcome:
    argv: list[str]
    stdout: str
    stderr: str
    status: int
    seconds: float


class NotRunnable(Exception):
    """The test cannot be run here (its trigger cannot be built): the reason."""


def _expand(value: str, test: Test) -> str:
    # runtest.sh evaluates @@runtest-opts and @@trigger in its shell, with $_pid kept as is.
    env = dict(os.environ, tst=str(test.base), _pid="$_pid")
    done = subprocess.run(["bash", "-c", 'eval printf "%s" "\\"$1\\""', "_", value],
                          env=env, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else value


def _trigger(test: Test, triggers: Triggers) -> str | None:
    """The trigger command line, or None for 'none'."""
    t_file = Path(f"{test.base}.t")
    if t_file.exists() and os.access(t_file, os.X_OK):
        return str(t_file)
    named = test.option("trigger")
    if named is None or named.strip() in ("", "none"):
        return None
    named = _expand(named, test).strip()
    program = named.split()[0]
    why = triggers.why_not(program)
    if why:
        raise NotRunnable(why)
    return f"test/triggers/{named}"


def command(test: Test, dt: str, triggers: Triggers,
            cpp_flags: list[str] = CPP_FLAGS) -> tuple[list[str], str | None, str]:
    """(argv, background trigger or None, trigger timing)."""
    raw = list(cpp_flags)
    if test.kind == "err" and test.expected_tag:
        raw.append("-xerrtags")
    elif test.kind == "drp":
        raw.append("-xdroptags")
    opts = test.option("runtest-opts")
    extra = shlex.split(_expand(opts, test)) if opts else []
    trigger = _trigger(test, triggers)
    timing = (test.option("trigger-timing") or "synchro").strip()
    shebang = test.shebang()
    if shebang is not None:
        argv = [dt, *shebang, str(test.path), *raw, *extra]
    else:
        argv = [dt, *raw, "-s", str(test.path), *extra]
    if trigger and timing == "synchro":
        return argv + ["-c", trigger], None, timing
    return argv, trigger, timing


def run(test: Test, dt: str, triggers: Triggers, timeout: int,
        cpp_flags: list[str] = CPP_FLAGS) -> Outcome:
    argv, background, timing = command(test, dt, triggers, cpp_flags)
    env = dict(os.environ, _DTRACE_TESTING="t", LANGUAGE="C", tst=str(test.base))
    trigger_proc = None
    if background:
        delay = {"before": 0, "after": 1}.get(timing)
        delay = float(timing) if delay is None and timing.replace(".", "").isdigit() else delay
        shell = f"sleep {delay}; exec {background}" if delay else f"exec {background}"
        trigger_proc = subprocess.Popen(["bash", "-c", shell], cwd=test.root,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        argv = [a.replace("$_pid", str(trigger_proc.pid)) for a in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        done = subprocess.run(["timeout", "--signal=TERM", f"--kill-after={KILL_AFTER}",
                               str(timeout), *argv], cwd=test.root, env=env,
                              stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if trigger_proc is not None:
        try:
            os.killpg(trigger_proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        trigger_proc.wait()
    status = TIMED_OUT if done.returncode == 128 + signal.SIGKILL else done.returncode
    return Outcome(argv, stdout, stderr, status, seconds)
