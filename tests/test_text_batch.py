"""Records formatted a batch at a time (text/batch.py) print exactly what the per-record
path prints: the same programs run through both (Consumer.batch_text) on the same
ground-truth workload, pinned to one CPU so the CPU column agrees, and the text compared
byte for byte: printf with every conversion, flag, width and precision the formatter's
tests cover, trace() of every integer size and of strings, records with and without a
trailing newline, actions under `if`, several clauses interleaving with one the batch
path does not take, with -q and without."""

from __future__ import annotations

import re

import pytest

from dtrace_nb.consumer import Consumer
from dtrace_nb.result.result import run_session
from dtrace_nb.session import Session, SessionConfig

pytestmark = pytest.mark.kernel

PRINTF = r"""
BEGIN { i = 0; }
syscall::getppid:entry /pid == $target/ {
    i++;
    printf("[%d|%i|%+d|% d|%+ d|%6d|%-6d|%06d|%.4d|%08.3d|%.0d|%'d]", -i, i, i, i, i,
           -i, -i, -i, i, i, i, i * 1000);
    printf("[%d|%d|%u|%+u|%u|%x|%X|%#x|%#X|%#010x|%-#8x|%o|%#o|%#.3o|%x]\n",
           (int)(i << 28), (char)(i + 100), (unsigned)-i, (unsigned)i, (uint64_t)-i,
           i * 255, i * 255, i * 255, i % 2 * 255, i, i, i, i % 3 * 8, i, (int)-i);
    printf("[%c|%3c|%-3c|%03c][%s|%5s|%-5s|%.2s|%5.1s|%05s|%.0s]", 65 + i % 26, 66,
           67, 68, execname, probefunc, probefunc, probefunc, execname, probefunc,
           execname);
    printf("[%?x|%5-d|%0-5d|%-05d|%p|%12p|%-12p|%#p]", i, i, i, i, i * 4096, i, i, i);
    printf("[%f|%.2f|%8.1f|%-8.1f|%08.2f|%+f|%e|%E|%g|%G|%#g]", i, i, i, i, i, i,
           i * 12345, i, i * 1234567, i, i);
    printf("[%*d|%-*d|%.*d|%*.*s]", i % 7 - 3, i, 4, i, i % 5 - 1, i, 6, i % 4, probefunc);
    printf("[%S|%Y|%hd|%ld|%lld|%lu|100%%|%a]\n", "a\tb\"c",
           (int64_t)1700000000 * 1000000000 + i * 1000000000, (short)i, i, i, i,
           (uint64_t)0x1000 + i);
}
"""

TRACE = r"""
BEGIN { i = 0; }
syscall::getppid:entry /pid == $target/ {
    i++;
    trace((char)i); trace((unsigned char)i); trace((short)-i); trace((unsigned short)-i);
    trace((int)-i); trace((unsigned)-i); trace(-i); trace((uint64_t)-i); trace(execname);
}
syscall::getppid:entry /pid == $target/ {
    if (i % 3 == 0) { printf("three %d\n", i); } else { trace(i); }
    printf("tail");
}
syscall::getppid:entry /pid == $target && i % 7 == 0/ { @c = count(); clear(@c); printf("seven %d", i); }
syscall::getppid:entry /pid == $target && i % 11 == 0/ { }
"""


def ring_drops(result) -> int:
    return sum(n for (kind, _cpu), n in result.drops.items() if kind == "ring buffer")


def both_paths(monkeypatch, workloads, source: str, n: int, quiet: bool):
    """Run `source` batched and record by record; the batched Result and the epids of
    the clauses that were batched."""
    got = []
    for batched in (True, False):
        monkeypatch.setattr(Consumer, "batch_text", batched)
        s = Session(SessionConfig(source, quiet=quiet, options={"bufsize": "16m"},
                                  target_command=f"taskset -c 1 {workloads['sysload']} "
                                                 f"getppid {n}"))
        r = run_session(s, duration=120)
        assert r.error is None, r.error.render(source)
        assert r.stop_reason == "target exited"
        assert ring_drops(r) == 0
        got.append((r, {e for e, f in s.consumer._batchers.items() if f is not None}))
    (batched, used), (single, none) = got
    assert none == set()
    assert batched.records == single.records
    # (the target's pid differs from run to run)
    assert [re.sub(r"pid \d+", "pid N", m) for m in batched.messages] == \
        [re.sub(r"pid \d+", "pid N", m) for m in single.messages]
    assert batched.output == single.output
    return batched, used


@pytest.mark.parametrize("quiet", [True, False])
def test_printf_conversions_print_the_same_batched(monkeypatch, workloads, quiet):
    n = 2_000
    r, used = both_paths(monkeypatch, workloads, PRINTF, n, quiet)
    assert used == {2}  # the getppid clause (epid 2), not BEGIN's, which records nothing
    lines = r.output.rstrip("\n").split("\n")
    body = [ln for ln in lines if "[-" in ln]
    assert len(body) == n
    # the first call's line, worked out by hand from C's rules
    assert body[0].endswith("[-1|1|+1| 1|+1|    -1|-1    |-00001|0001|     001|1|1000]"
                            "[268435456|101|4294967295|1|18446744073709551615|ff|FF|0xff"
                            "|0XFF|0x00000001|0x1     |1|010|001|ffffffff]")


@pytest.mark.parametrize("quiet", [True, False])
def test_trace_and_interleaved_clauses_print_the_same_batched(monkeypatch, workloads,
                                                               quiet):
    n = 20_000
    r, used = both_paths(monkeypatch, workloads, TRACE, n, quiet)
    assert used == {2, 3, 5}  # not the clause with clear(): its records went one by one
    if quiet:
        assert r.output.count("three ") == n // 3
        assert r.output.count("seven ") == n // 7
        assert r.output.count("tail") == n
    else:
        lines = r.output.split("\n")
        assert lines[0].split() == ["CPU", "ID", "FUNCTION:NAME"]
        # a probe line per record (the workload runs on CPU 1); "three" records end
        # their line early, their "tail" starts the next
        assert sum(1 for ln in lines if ln.startswith("  1 ")) == 2 * n + n // 7 + n // 11
