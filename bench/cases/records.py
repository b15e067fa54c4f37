"""Case 4 (and the memory half of case 5): records to Python at the workload's full rate.

benchload makes N getppid(i) calls pinned to CPU 1 as fast as it can; each call emits one
record carrying arg0. Delivered records/s = records that reached Python / seconds from the
target's release until the ring buffer was drained; drops are what the kernel side
counted (failed ring buffer reservations). delivered + drops must equal N.

dtrace-nb: Session (in a child process) with `trace(arg0)`, the ring buffer read through
its own mmap a batch at a time and decoded with numpy; two rows: "text" (every record
formatted to DTrace's text, as the command and a notebook cell print it: the records of a
batch formatted together by the clause's batch formatter, text/batch.py) and "columnar"
(SessionConfig(record_frames=True): records kept as columns for Result.records_frame(),
the DataFrame built at the end and included in the time). bcc (hand-written): a ring buffer and a ctypes callback per
record. bpftrace: printf per record, its stdout counted, its "Lost N events" added up.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

from bench.common import (PY, ROOT, bcc_cmd, benchload, child_json, have_bpftrace, map_memlock,
                          median, peak_rss)

D_REC = "syscall::getppid:entry /pid == $target/ { trace(arg0); }"
BT_REC = 'tracepoint:raw_syscalls:sys_enter /pid == cpid && args->id == 110/ { printf("%d\\n", args->args[0]); }'


def child_dtrace(n: int, columnar: bool = False) -> dict:
    import pandas  # noqa: F401 - as in a notebook

    from dtrace_nb.session import Session, SessionConfig

    s = Session(SessionConfig(D_REC, target_command=benchload("keys", n, 1), quiet=True,
                              record_frames=columnar),
                on_output=lambda _t: None)
    s.start()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    while s.poll(100):
        pass
    memlock = map_memlock()
    s.stop()
    if columnar:
        frames = s.records_frames()
        assert sum(len(df) for df in frames.values()) == s.record_count
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    drops = sum(n for (kind, _cpu), n in s.drops().items() if kind == "ring buffer")
    return {"records": s.record_count, "drops": drops, "seconds": elapsed, "cpu_seconds": cpu,
            "maps_bytes": memlock, "peak_rss": peak_rss()}


def _bpftrace(n: int) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run(["bpftrace", "-e", BT_REC, "-c", benchload("keys", n, 1)],
                       capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - t0
    lines = sum(1 for ln in p.stdout.splitlines() if ln.isdigit())
    lost = sum(int(x) for x in re.findall(r"Lost (\d+) events", p.stdout + p.stderr))
    return {"records": lines, "drops": lost, "seconds": elapsed}


def _bcc(n: int) -> dict:
    p = subprocess.run(bcc_cmd("records", benchload("keys", n, 1)), capture_output=True,
                       text=True, cwd=ROOT, check=True)
    return json.loads(p.stderr.strip().splitlines()[-1])


def run_case(rounds: int, quick: bool) -> dict:
    n = 200_000 if quick else 2_000_000
    samples: dict[str, list[dict]] = {}
    for _ in range(rounds):
        samples.setdefault("dtrace-nb (text)", []).append(
            child_json([PY, "-m", "bench.cases.records", str(n)]))
        samples.setdefault("dtrace-nb (columnar)", []).append(
            child_json([PY, "-m", "bench.cases.records", str(n), "columnar"]))
        samples.setdefault("bcc (hand-written)", []).append(_bcc(n))
        if have_bpftrace():
            samples.setdefault("bpftrace", []).append(_bpftrace(n))
    rows = []
    for tool, xs in samples.items():
        rate = [x["records"] / x["seconds"] for x in xs]
        rows.append({"tool": tool, "events": n, "records_per_s": median(rate),
                     "delivered": median([x["records"] for x in xs]),
                     "drops": median([x["drops"] for x in xs]),
                     "accounted": all(x["records"] + x["drops"] == n for x in xs),
                     # the consumer's own CPU time per delivered record (dtrace-nb only):
                     # what it could sustain on a CPU of its own, whatever the workload did
                     "cpu_us_per_record": median([x["cpu_seconds"] / x["records"] * 1e6
                                                  if "cpu_seconds" in x else None
                                                  for x in xs]),
                     "maps_bytes": median([x.get("maps_bytes") for x in xs]),
                     "peak_rss": median([x.get("peak_rss") for x in xs])})
    return {"rounds": rounds, "events": n, "rows": rows}


def table(res: dict) -> list[str]:
    lines = [f"### 4. Records to Python ({res['events']:,} events as fast as the workload "
             f"makes them, median of {res['rounds']} rounds), and memory (case 5)", "",
             "| tool | delivered records/s | consumer CPU per record | delivered | drops counted "
             "| delivered + drops = events | kernel maps | peak RSS |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        mem = (f"{r['maps_bytes'] / 2**20:.1f} MiB | {r['peak_rss'] / 2**20:.0f} MiB"
               if r["maps_bytes"] == r["maps_bytes"] else " | ")
        cpu = r.get("cpu_us_per_record", float("nan"))
        cpu = f"{cpu:.2f} µs" if cpu == cpu else ""
        lines.append(f"| {r['tool']} | {r['records_per_s'] / 1e3:,.0f}k | {cpu} | "
                     f"{r['delivered']:,.0f} | "
                     f"{r['drops']:,.0f} | {'yes' if r['accounted'] else 'no'} | {mem} |")
    return lines


if __name__ == "__main__":
    print(json.dumps(child_dtrace(int(sys.argv[1]), sys.argv[2:] == ["columnar"])))
