"""Case 7: fleet tracing through Dask (dtrace_nb/fleet). Two numbers:

- time from the start of a fleet run to every host live (probes attached on each worker),
  on a LocalCluster of 4 worker processes on this machine (the first round compiles once,
  unless cached, and ships the object; later rounds find the object cache);
- merging: 4 hosts' snapshots of 100k keys each (count(), keys overlapping as real hosts'
  do) into the fleet total, then its DataFrame (aggregate/merge.py), in this process;
- compile once per kernel flavour: start to all hosts live on 3 workers whose object
  caches are off (every run is a first run, as on hosts that never saw the program), each
  worker compiling its own object (share_objects=False) against one worker compiling and
  shipping it to the two others (fleet/objects.py), rounds alternated.

Measured 2026-12-03 on this machine (2 CPUs shared with other sessions, load average 2.2),
3 workers, cold caches, median of 7 rounds, from the submission to all live: each worker
compiling its own 0.656 s, compiled once and shipped 0.409 s (`python -m bench --cases 8
--rounds 7`; the same run: 4 workers' first run 0.988 s, later runs 0.204 s).
"""

from __future__ import annotations

import time

import numpy as np

from bench.common import median

WORKERS = 4
PROGRAM = "syscall::getppid:entry { @n[execname] = count(); }"


def _snapshots(hosts: int, keys: int, seed: int = 1) -> dict:
    from dtrace_nb.aggregate.snapshot import AggSnapshot

    rng = np.random.default_rng(seed)
    out = {}
    for h in range(hosts):
        ks = rng.choice(keys * 3 // 2, keys, replace=False)
        vals = rng.integers(1, 1000, keys)
        out[f"host{h}"] = {"n": AggSnapshot("n", "count", ["arg0"], ["int8"],
                                            [(int(k),) for k in ks], [int(v) for v in vals])}
    return out


def merge_times(rounds: int, keys: int) -> dict:
    from dtrace_nb.aggregate.merge import merge_hosts

    per_host = _snapshots(WORKERS, keys)
    merge, frame = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        merged = merge_hosts(per_host)["n"]
        t1 = time.perf_counter()
        merged.to_frame()
        frame.append(time.perf_counter() - t1)
        merge.append(t1 - t0)
    return {"merge_s": median(merge), "frame_s": median(frame), "rows": len(merged)}


def live_times(rounds: int) -> dict:
    from distributed import LocalCluster

    from dtrace_nb.fleet.report import run_fleet
    from dtrace_nb.session import SessionConfig

    with LocalCluster(n_workers=WORKERS, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster:
        lives, totals = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            r = run_fleet(cluster.scheduler_address, SessionConfig(PROGRAM, quiet=True),
                          duration=0.5)
            totals.append(time.perf_counter() - t0)
            lives.append(r.live_after)
            assert not r.failed_hosts, r.messages
    return {"first_live_s": lives[0], "live_s": median(lives[1:] or lives),
            "run_s": median(totals)}


SHARE_WORKERS = 3


def share_times(rounds: int) -> dict:
    """Start to all live with every worker compiling vs one compile shipped, cold caches."""
    from distributed import LocalCluster

    from dtrace_nb.fleet.report import run_fleet
    from dtrace_nb.session import SessionConfig

    own, shared = [], []
    with LocalCluster(n_workers=SHARE_WORKERS, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1",
                      env={"DTRACE_NB_OBJECT_CACHE": "off"}) as cluster:
        for i in range(rounds):
            for share, out in ((False, own), (True, shared)) if i % 2 == 0 else \
                    ((True, shared), (False, own)):
                r = run_fleet(cluster.scheduler_address, SessionConfig(PROGRAM, quiet=True),
                              duration=0.5, share_objects=share)
                assert not r.failed_hosts, r.messages
                out.append(r.live_after)
    return {"own_compile_live_s": median(own), "shared_compile_live_s": median(shared)}


def run_case(rounds: int, quick: bool) -> dict:
    keys = 10_000 if quick else 100_000
    return {"rounds": rounds, "workers": WORKERS, "keys": keys,
            **merge_times(rounds, keys), **live_times(rounds), **share_times(rounds)}


def table(res: dict) -> list[str]:
    return [f"### 7. Fleet through Dask, {res['workers']} local workers (median seconds, "
            f"{res['rounds']} rounds)", "",
            "| measure | seconds |", "|---|---|",
            f"| start to all hosts live, first run (compiled once if not cached) | "
            f"{res['first_live_s']:.3f} |",
            f"| start to all hosts live, later runs | {res['live_s']:.3f} |",
            f"| whole run with -T 0.5 (start, trace, stop, gather, merge) | {res['run_s']:.3f} |",
            f"| merge {res['workers']} hosts x {res['keys']} keys ({res['rows']} rows) | "
            f"{res['merge_s']:.3f} |",
            f"| its DataFrame | {res['frame_s']:.3f} |",
            f"| {SHARE_WORKERS} workers, cold caches: start to all live, each compiles | "
            f"{res['own_compile_live_s']:.3f} |",
            f"| {SHARE_WORKERS} workers, cold caches: start to all live, compiled once and "
            f"shipped | {res['shared_compile_live_s']:.3f} |"]
