"""`make bench` / `python -m bench`: build the workload, run every case for dtrace-nb,
bpftrace and the hand-written bcc baselines in alternation, print a Markdown table of
medians and ratios and write everything (every sample too) to a JSON file.

A benchmark, not a test: nothing here asserts anything about time.

    python -m bench [--rounds N] [--quick] [--cases 1,2,3,4,6,7,8,9] [--json out/bench.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time

from bench.common import ROOT, build, have_bpftrace
from bench.cases import cell, fleet, per_event, records, snapshot, stacks, startup
from bench.cases import compile as compile_case

CASES = {"1": per_event, "2": startup, "3": snapshot, "4": records, "6": compile_case,
         "7": cell, "8": fleet, "9": stacks}


def machine() -> dict:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    bt = ""
    if have_bpftrace():
        bt = subprocess.run(["bpftrace", "--version"], capture_output=True, text=True).stdout.strip()
    bcc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-bpfcc"],
                         capture_output=True, text=True).stdout.strip()
    return {"date": datetime.datetime.now().isoformat(timespec="seconds"),
            "kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
            "bpftrace": bt, "bcc": bcc, "loadavg_before": os.getloadavg()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds per case (default 5)")
    ap.add_argument("--quick", action="store_true", help="smaller workloads, for a smoke run")
    ap.add_argument("--cases", default="1,2,3,4,6,7,8,9", help="which cases (default all: "
                    "1,2,3,4,6,7,8,9; memory, case 5, is measured within 3 and 4; 7 is a "
                    "notebook cell through a kernel client; 8 a fleet of local Dask workers; "
                    "9 stacks and flame graphs)")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench.json"), help="results file")
    ns = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: must run as root (it loads BPF programs)")
        return 1
    build()
    info = machine()
    results: dict = {"machine": info, "rounds": ns.rounds, "quick": ns.quick, "cases": {}}
    lines = [f"Measured {info['date']} on {info['cpus']} CPUs ({info['cpu']}), kernel "
             f"{info['kernel']}, {info['bpftrace'] or 'no bpftrace'}, bcc {info['bcc']}; "
             f"{ns.rounds} rounds.", ""]
    for key in ns.cases.split(","):
        mod = CASES[key.strip()]
        t0 = time.monotonic()
        print(f"bench: case {key} ({mod.__name__.rsplit('.', 1)[-1]}) ...", flush=True)
        res = mod.run_case(ns.rounds, ns.quick)
        res["wall_s"] = time.monotonic() - t0
        results["cases"][key] = res
        table = mod.table(res)
        print("\n".join(table) + "\n", flush=True)
        lines += table + [""]
    info["loadavg_after"] = os.getloadavg()
    os.makedirs(os.path.dirname(os.path.abspath(ns.json)), exist_ok=True)
    with open(ns.json, "w") as f:
        json.dump(results, f, indent=1)
    md = os.path.splitext(ns.json)[0] + ".md"
    with open(md, "w") as f:
        f.write("\n".join(lines))
    print(f"bench: load average before {info['loadavg_before']}, after {info['loadavg_after']}")
    print(f"bench: results in {ns.json} and {md}")
    return 0
