"""Lost data is counted and reported in DTrace's words, with counts that match ground
truth (tests/workloads/sysload makes exactly the system calls it is asked for).

- a full aggregation map (-x aggkeys=4, eight distinct keys): `dtrace: N aggregation drops
  on CPU C`, N the updates of the four keys that found no room;
- a full associative array (-x dynvarsize=1: room for one element): `dtrace: N dynamic
  variable drops`, one total as dtrace(1) reports them;
- a ring buffer too small for a burst (-x bufsize=4k): `dtrace: N drops on CPU C` (the
  principal buffer's wording), N + the records printed = the events;
- speculation() with every buffer in use: `dtrace: N failed speculations (no speculative
  buffer available)`.

The target is pinned to CPU 0 with taskset where the CPU matters, so the line is exact.
Like dtrace(1), the consumer reports what was lost at each status check (-x statusrate,
1 s), so a long run prints several lines of a kind; their sum is what is checked.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dtrace_nb.text.messages import drop_messages
from dtrace_nb.session import Session, SessionConfig
from dtrace_nb.result.result import run_session

REPO = Path(__file__).resolve().parents[1]


def loss_totals(lines) -> dict[str, int]:
    """'dtrace: 12 aggregation drops on CPU 0' lines -> {'aggregation drop on CPU 0': 12}
    summed over the status checks that reported them."""
    out: dict[str, int] = {}
    for line in lines:
        m = re.fullmatch(r"dtrace: (\d+) (.*)", line)
        assert m, line
        what = re.sub(r"(drop|speculation)s\b", r"\1", m.group(2))
        out[what] = out.get(what, 0) + int(m.group(1))
    return out


def dtrace(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-q", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr
    return done


@pytest.mark.kernel
def test_aggregation_drops_match_ground_truth(workloads):
    # read sizes 1 << (i % 8): keys 1, 2, 4, 8 fill the map, 16..128 (100 calls each) drop
    done = dtrace("-x", "aggkeys=4", "-n",
                  "syscall::read:entry /pid == $target && arg2 <= 128/ { @[arg2] = count(); }",
                  "-c", f"taskset -c 0 {workloads['sysload']} read 800")
    assert done.returncode == 0, done.stderr
    assert loss_totals(done.stderr.splitlines()) == {"aggregation drop on CPU 0": 400}
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert rows == [["1", "100"], ["2", "100"], ["4", "100"], ["8", "100"]]


@pytest.mark.kernel
def test_aggregation_drops_on_the_result(workloads):
    session = Session(SessionConfig(
        "syscall::read:entry /pid == $target && arg2 <= 128/ { @[arg2] = count(); }",
        target_command=f"taskset -c 0 {workloads['sysload']} read 160",
        options={"aggkeys": "4"}, quiet=True))
    r = run_session(session)
    assert r.drops == {("aggregation", 0): 80}
    assert loss_totals(m for m in r.messages if "drop" in m) == {"aggregation drop on CPU 0": 80}


@pytest.mark.kernel
def test_dynamic_variable_drops_match_ground_truth(workloads):
    # a[0..999] with room for one element: the 999 after the first are dropped
    done = dtrace("-x", "dynvarsize=1", "-n",
                  "syscall::getppid:entry /pid == $target/ { a[x] = 1; x = x + 1; } "
                  'END { printf("%d\\n", x); }',
                  "-c", f"{workloads['sysload']} getppid 1000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1000"]
    assert loss_totals(done.stderr.splitlines()) == {"dynamic variable drop": 999}


@pytest.mark.kernel
def test_ring_buffer_drops_and_records_add_up_to_the_events(workloads):
    n = 100_000
    done = dtrace("-x", "bufsize=4k", "-n",
                  'syscall::getppid:entry /pid == $target/ { printf("x\\n"); }',
                  "-c", f"taskset -c 0 {workloads['sysload']} getppid {n}")
    assert done.returncode == 0, done.stderr
    printed = done.stdout.split("\n").count("x")
    totals = loss_totals(done.stderr.splitlines())
    assert list(totals) == ["drop on CPU 0"], done.stderr
    assert totals["drop on CPU 0"] + printed == n
    assert printed > 0 and totals["drop on CPU 0"] > 0


@pytest.mark.kernel
def test_failed_speculations(workloads):
    # four buffers, never committed or discarded: every later speculation() fails
    done = dtrace("-x", "nspec=4", "-n",
                  "syscall::getppid:entry /pid == $target/ { self->s = speculation(); }",
                  "-c", f"{workloads['sysload']} getppid 1000")
    assert done.returncode == 0, done.stderr
    assert loss_totals(done.stderr.splitlines()) == {
        "failed speculation (no speculative buffer available)": 996}


def test_drop_wording_is_dtraces():
    assert drop_messages({("aggregation", 1): 1, ("aggregation", 0): 12,
                          ("ring buffer", 1): 3, ("dynamic variable", 0): 2,
                          ("dynamic variable", 1): 3, ("speculation", 1): 1}) == [
        "dtrace: 12 aggregation drops on CPU 0", "dtrace: 1 aggregation drop on CPU 1",
        "dtrace: 3 drops on CPU 1", "dtrace: 5 dynamic variable drops",
        "dtrace: 1 failed speculation (no speculative buffer available)"]
    assert drop_messages({}) == []


@pytest.mark.kernel
def test_drops_are_reported_while_tracing_not_only_at_the_end():
    """tick-10ms adds a new key each time to a map of four: after the first four ticks
    every tick is an aggregation drop. With statusrate=300ms the losses come in several
    reports during the run, each one the drops since the one before; they add up to the
    final count, and that to the ticks (END prints how many there were)."""
    seen: list[tuple[float, str]] = []
    session = Session(SessionConfig(
        'BEGIN { n = 0; } profile:::tick-10ms { @[n] = count(); n++; } '
        'END { printf("%d", n); }',
        options={"aggkeys": "4", "statusrate": "300ms"}, quiet=True),
        on_message=lambda m: seen.append((time.monotonic(), m)))
    r = run_session(session, duration=2.0)
    assert r.error is None, r.error
    reports = [(t, m) for t, m in seen if "drop" in m]
    during = [t for t, _ in reports if t < session.ended_at - 0.2]
    assert len(during) >= 3, reports  # reported every ~0.3 s while running
    total = sum(r.drops.values())
    assert sum(n for n in loss_totals(m for _, m in reports).values()) == total
    assert len(r.aggregations["@"]) == 4
    assert total + 4 == int(r.output.split()[0])  # END printed the number of ticks first
    assert r.messages == [m for _, m in seen]
