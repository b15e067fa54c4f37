"""--budget: the kernel's own count of each attachment's runs and the time spent in them
(BPF run-time statistics), on workloads whose calls are known exactly."""

from __future__ import annotations

import time

import pytest

from dtrace_nb.runtime.budget import RunTimeStats, budget_lines
from dtrace_nb.session import Session, SessionConfig

pytestmark = pytest.mark.kernel


def test_each_attachment_runs_as_often_as_its_probe_fired(workloads):
    n = 5000
    src = ("pid$target::dtnb_work:entry { @calls = count(); }\n"
           "profile:::tick-10ms { @ticks = count(); }\n"
           "BEGIN { x = 1; }")
    s = Session(SessionConfig(src, target_command=f"{workloads['userprobes']} {n}",
                              quiet=True))
    stats = RunTimeStats()
    try:
        s.start()
        t0 = time.monotonic()
        s.target.proc.wait(timeout=30)
        time.sleep(0.5)  # some ticks
        rows = stats.costs(s.program.functions, s._loaded.prog_fds, time.monotonic() - t0)
    finally:
        s.stop()
        stats.close()
    by_probe = {r.probes: r for r in rows}
    # BEGIN is run by dtrace-nb itself, not attached: no row
    assert set(by_probe) == {f"pid{s.target.pid}:userprobes:dtnb_work:entry", "profile:::tick-10ms"}
    work = by_probe[f"pid{s.target.pid}:userprobes:dtnb_work:entry"]
    assert work.runs == n and work.ns > 0 and work.attachment.startswith("uprobe")
    ticks = by_probe["profile:::tick-10ms"]
    assert 40 <= ticks.runs <= 200  # a tick every 10 ms, on one CPU
    lines = budget_lines(rows)
    assert lines[0].startswith("dtrace-nb: budget over ") and f"{n + ticks.runs:,} runs" in lines[0]
    assert any("dtnb_work:entry" in ln and "ns/run" in ln for ln in lines[1:])
