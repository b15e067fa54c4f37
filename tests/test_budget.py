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


def test_the_command_and_a_cell_report_the_budget(tmp_path, workloads):
    from IPython.utils.capture import capture_output

    from tests.conftest import ipython_shell
    from tests.test_language import run_d

    n = 5000
    prog = "pid$target::dtnb_work:entry { @calls = count(); }"
    done = run_d(tmp_path, prog, "--budget", extra=("-c", f"{workloads['userprobes']} {n}"))
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("dtrace-nb:")]
    # the one attachment ran once a call: the total is its count
    assert lines[0].startswith("dtrace-nb: budget over ") and f" {n:,} runs, " in lines[0]
    assert ":userprobes:dtnb_work:entry" in lines[1] and "ns/run" in lines[1]
    assert "uprobe" in lines[1]

    ip = ipython_shell()
    ip.run_line_magic("load_ext", "dtrace_nb")
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f'--budget -q -o b -c "{workloads["userprobes"]} {n}"', prog)
    r = ip.user_ns["b"]
    assert r.budget["runs"].tolist() == [n] and r.budget["ns_per_run"].iloc[0] > 0
    assert r["calls"]["count"].tolist() == [n]
    html = cap.outputs[-1].data["text/html"]
    assert "dtrace-nb: budget over" in html and "ns/run" in html


def test_without_budget_the_statistics_stay_off(workloads):
    s = Session(SessionConfig("profile:::tick-10ms { @ = count(); }", quiet=True))
    s.start()
    try:
        s.poll(50)
        assert s.costs_now() == []  # no statistics were enabled
    finally:
        s.stop()
    assert s.budget == []
