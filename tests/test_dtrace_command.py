"""dtrace(1)'s conventions, end to end through `dtrace-nb` on the real kernel: the
'matched N probes' notices (one per -s script or -n description, none when quiet), the
CPU/ID columns left out under _DTRACE_TESTING, aggregations printed by printa() not
printed again at exit, exit statuses, setopt() refusals and signals.

Each case is a program with the stdout, stderr and status dtrace(1) gives for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.kernel  # every program runs through dtrace-nb on the real kernel

CLI = [sys.executable, "-m", "dtrace_nb.cli"]
REPO = os.path.dirname(os.path.dirname(__file__))


def dtrace(*args: str, testing: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("_DTRACE_TESTING", None)
    if testing:
        env["_DTRACE_TESTING"] = "t"
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env=env)


TWO_BEGINS = "BEGIN { trace(1); }\nBEGIN { trace(2); exit(0); }\n"
HEAD = "%32s\n" % "FUNCTION:NAME"


def rec(value: int) -> str:
    """A trace() of an int literal under _DTRACE_TESTING: FUNCTION:NAME, then the value."""
    return "%32s " % ":BEGIN" + " %10d" % value + "\n"


NOTICE_CASES = [
    # (id, arguments ({s} is the script's path), expected stdout, expected stderr)
    ("one notice per script, not per clause", ["-s", "{s}"],
     HEAD + rec(1) + rec(2) + "\n", "dtrace: script '{s}' matched 2 probes\n"),
    ("one notice per -n, named up to its first brace",
     ["-n", "BEGIN { trace(1); }", "-n", "BEGIN { trace(2); exit(0); }"],
     HEAD + rec(1) + rec(2) + "\n",
     "dtrace: description 'BEGIN ' matched 1 probe\n"
     "dtrace: description 'BEGIN ' matched 1 probe\n"),
    ("a bare description keeps its name", ["-n", "BEGIN", "-n", "BEGIN { exit(0); }"],
     HEAD + "%32s \n" % ":BEGIN" + "%32s \n" % ":BEGIN" + "\n",
     "dtrace: description 'BEGIN' matched 1 probe\n"
     "dtrace: description 'BEGIN ' matched 1 probe\n"),
    ("-q: no notice", ["-q", "-n", 'BEGIN { printf("x\\n"); exit(0); }'], "x\n\n", ""),
    ("quiet pragma: no notice",
     ["-n", '#pragma D option quiet\nBEGIN { printf("x\\n"); exit(0); }'], "x\n\n", ""),
    ("-Z: a description matching nothing is left out",
     ["-Z", "-n", "BEGIN, nosuch:probe:at:all { exit(0); }"], HEAD + "%32s \n" % ":BEGIN" + "\n",
     "dtrace: description 'BEGIN, nosuch:probe:at:all ' matched 1 probe\n"),
]


@pytest.mark.parametrize("args, stdout, stderr", [c[1:] for c in NOTICE_CASES],
                         ids=[c[0] for c in NOTICE_CASES])
def test_notices_and_testing_columns(tmp_path, args, stdout, stderr):
    script = tmp_path / "two.d"
    script.write_text(TWO_BEGINS)
    done = dtrace(*[a.replace("{s}", str(script)) for a in args])
    assert (done.returncode, done.stdout, done.stderr) == \
        (0, stdout, stderr.replace("{s}", str(script)))


def test_cpu_and_id_columns_without_testing():
    done = dtrace("-n", "BEGIN { exit(0); }", testing=False)
    lines = done.stdout.splitlines()
    assert lines[0] == "%3s %6s %32s" % ("CPU", "ID", "FUNCTION:NAME")
    cpu, probe_id, name = lines[1].split()
    assert cpu.isdigit() and probe_id == "1" and name == ":BEGIN"


STATUS_CASES = [
    # (id, program, exit status, stdout)
    ("exit(3)", "BEGIN { exit(3); }", 3, "\n"),
    ("the last exit() is the status", "BEGIN { exit(1); } END { exit(0); }", 0, "\n"),
    ("exit in END after exit(0)", "BEGIN { exit(0); } END { exit(4); }", 4, "\n"),
    ("printa() then exit: printed once",
     'BEGIN { @a = count(); @b = sum(5); printa(@a); exit(0); }', 0,
     "\n%17d\n" % 1 + "\n%17d\n" % 5),
    # trunc() and printa() act when the consumer reads the record, after the clause ran:
    # printa() finds @a empty, so it is printed at the end (its one count is END's)
    ("printa() of an empty aggregation: still printed at the end",
     'BEGIN { @a = count(); trunc(@a); printa(@a); exit(0); }\nEND { @a = count(); }', 0,
     "\n" + "\n%17d\n" % 1),
    ("a run-time fault does not change the status",
     'BEGIN { x = 0; y = 1 / x; } BEGIN { exit(0); }', 0, "\n"),
]


@pytest.mark.parametrize("program, status, stdout", [c[1:] for c in STATUS_CASES],
                         ids=[c[0] for c in STATUS_CASES])
def test_exit_status_and_printa_once(program, status, stdout):
    done = dtrace("-q", "-n", program)
    assert (done.returncode, done.stdout) == (status, stdout), done.stderr


def test_run_time_fault_in_dtrace_words():
    done = dtrace("-q", "-n", "BEGIN { trace(1); }\nBEGIN { x = 0; y = 1 / x; exit(0); }\n"
                              "BEGIN { exit(0); }")
    assert done.returncode == 0
    assert done.stderr == ("dtrace: error in dt_clause_1 for probe ID 1 (dtrace:::BEGIN): "
                           "divide-by-zero\n")


def test_setopt_refusals_are_reported_when_they_run():
    done = dtrace("-n", '#pragma D option quiet\nBEGIN { setopt("nosuch"); '
                        'setopt("quiet", "um, no"); setopt("bufsize", "1m"); '
                        'setopt("aggsortrev"); exit(0); }')
    where = "dtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): "
    assert done.returncode == 0
    assert done.stderr == (
        where + 'couldn\'t set option "nosuch" to "1": Invalid option name\n\n'
        + where + 'couldn\'t set option "quiet" to "um, no": Invalid value for specified '
                  'option\n\n'
        + where + 'couldn\'t set option "bufsize" to "1m": Operation illegal when tracing is '
                  'active\n\n')


def test_sigterm_before_tracing_is_a_failure_and_after_prints_the_end():
    # a program whose compile takes a while: TERM at once arrives before any probe is live
    proc = subprocess.Popen([*CLI, "-q", "-n", "tick-1s { @n = count(); }"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and out == ""
    # once BEGIN has printed, TERM stops tracing: END runs and the aggregation is printed
    proc = subprocess.Popen([*CLI, "-q", "-n", 'BEGIN { printf("live\\n"); @n = sum(7); }\n'
                                               'END { printf("end\\n"); }'], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "live\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "end\n\n%17d\n" % 7
