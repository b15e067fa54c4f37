"""Case 2: time until probes are live, and time to shut down.

Command line: each tool runs `benchload stamp` as its -c child, which a tracer starts only
once its probes are attached; 'live' is the child's CLOCK_MONOTONIC stamp minus the moment
the tool was launched, 'shutdown' is from that stamp until the tool has exited (noticing
the child's exit, detaching, printing, freeing).
dtrace-nb runs twice: with the object cache off (every start runs clang), and with a
cache of its own that one earlier run filled (what re-running a script does).
In a notebook the imports are done once and the magic calls Session.start() / .stop():
that is measured in child processes, the same program started three times (the first with
an empty cache compiles, the next ones load the cached object), and once more in a new
process, from the disk cache.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

from bench.common import (PY, bcc_cmd, benchload, bpftrace_cmd, child_json, dtrace_cmd,
                          field, have_bpftrace, median, spread)

SCRIPTS = {
    "1 probe": ("syscall::getppid:entry { @[execname] = count(); }",
                "tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); }", "count_getppid"),
    "syscall:::entry": ("syscall:::entry { @[execname] = count(); }",
                        "tracepoint:syscalls:sys_enter_* { @[comm] = count(); }", "count_all"),
}


def _cli(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    import subprocess

    from bench.common import ROOT

    t0 = time.monotonic_ns()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    t1 = time.monotonic_ns()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-1500:]}")
    stamp = field(p.stdout, "start_ns")
    return (stamp - t0) / 1e9, (t1 - stamp) / 1e9


def run_case(rounds: int, quick: bool) -> dict:
    target = benchload("stamp")
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    bt_rounds = 1 if quick else min(rounds, 3)  # bpftrace's wildcard takes ~26 s to exit
    cache = tempfile.mkdtemp(prefix="dtnb-bench-cache-")
    cold = {**os.environ, "DTRACE_NB_OBJECT_CACHE": "off", "DTRACE_NB_PROGRAM_CACHE": "off"}
    cached = {**os.environ, "XDG_CACHE_HOME": cache}
    for d, _bt, _bcc in SCRIPTS.values():
        _cli(dtrace_cmd(d, target), cached)  # fills the cache, as an earlier run would
    for r in range(rounds):
        for script, (d, bt, bcc) in SCRIPTS.items():
            tools = [("dtrace-nb command, no cache", dtrace_cmd(d, target), cold),
                     ("dtrace-nb command, cached object", dtrace_cmd(d, target), cached),
                     ("bcc (hand-written)", bcc_cmd(bcc, target), None)]
            if have_bpftrace() and (r < bt_rounds or script == "1 probe"):
                tools.append(("bpftrace", bpftrace_cmd(bt, target), None))
            for tool, cmd, env in (tools if r % 2 == 0 else tools[::-1]):
                samples.setdefault((script, tool), []).append(_cli(cmd, env))
        for script, (d, _bt, _bcc) in SCRIPTS.items():
            fresh = tempfile.mkdtemp(prefix="dtnb-bench-cache-")
            for new_process in (False, True):  # the second finds the first's disk cache
                res = child_json([PY, "-m", "bench.cases.startup", "child", d, fresh])
                for i, (st, sp) in enumerate(zip(res["start"], res["stop"])):
                    tool = ("dtrace-nb Session, new process (disk cache)" if new_process
                            else "dtrace-nb Session, first start (empty cache)" if i == 0
                            else "dtrace-nb Session, repeated (memory cache)")
                    samples.setdefault((script, tool), []).append((st, sp))
                    if new_process:
                        break
    rows = []
    for (script, tool), xs in samples.items():
        live, down = [x[0] for x in xs], [x[1] for x in xs]
        rows.append({"script": script, "tool": tool, "live_s": median(live),
                     "shutdown_s": median(down), "spread_live": spread(live), "n": len(xs)})
    return {"rounds": rounds, "rows": rows}


def child(source: str, cache: str) -> dict:
    """In-process Session start/stop, three times (a notebook re-running a cell)."""
    os.environ["XDG_CACHE_HOME"] = cache
    from dtrace_nb.session import Session, SessionConfig

    start, stop = [], []
    for _ in range(3):
        s = Session(SessionConfig(source, quiet=True), on_output=lambda _t: None)
        t0 = time.perf_counter()
        s.start()
        t1 = time.perf_counter()
        s.poll(10)
        t2 = time.perf_counter()
        s.stop()
        t3 = time.perf_counter()
        start.append(t1 - t0)
        stop.append(t3 - t2)
    return {"start": start, "stop": stop}


def table(res: dict) -> list[str]:
    lines = ["### 2. Time to probes live and to shut down (median seconds)", "",
             "| script | tool | probes live | shutdown | rounds |", "|---|---|---|---|---|"]
    for r in sorted(res["rows"], key=lambda r: (r["script"], r["tool"])):
        lines.append(f"| {r['script']} | {r['tool']} | {r['live_s']:.3f} | "
                     f"{r['shutdown_s']:.3f} | {r['n']} |")
    return lines


if __name__ == "__main__" and sys.argv[1] == "child":
    print(json.dumps(child(sys.argv[2], sys.argv[3])))
