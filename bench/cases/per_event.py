"""Case 1: per-event cost. benchload makes N getppid(2) calls pinned to one CPU and times
its own loop; each tracer runs it as its -c target, so start-up and shutdown stay out.
Conditions alternate within a round; each cell is the median over rounds of ns per call,
'added' is that minus the untraced median on the same CPU; 'best round' is the fastest
round minus the fastest untraced round (robust when other work shares the machine)."""

from __future__ import annotations

from bench.common import (bcc_cmd, benchload, bpftrace_cmd, dtrace_cmd, field, have_bpftrace,
                          median, run, spread)

D_ONE = "syscall::getppid:entry { @[execname] = count(); }"
D_ALL = "syscall:::entry { @[execname] = count(); }"
# bpftrace's cheapest equivalents: the per-syscall tracepoint, and the one raw_syscalls
# tracepoint for all syscalls (its sys_enter_* wildcard would be 360 tracepoints)
BT_ONE = "tracepoint:syscalls:sys_enter_getppid { @[comm] = count(); }"
BT_ALL = "tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }"


def conditions(target: str) -> list[tuple[str, list[str] | None]]:
    out: list[tuple[str, list[str] | None]] = [
        ("untraced", None),
        ("floor: empty bcc program (raw tp sys_enter)", bcc_cmd("empty", target)),
        ("getppid: dtrace-nb", dtrace_cmd(D_ONE, target)),
        ("getppid: bcc (hand-written)", bcc_cmd("count_getppid", target)),
        ("all: dtrace-nb", dtrace_cmd(D_ALL, target)),
        ("all: bcc (hand-written)", bcc_cmd("count_all", target)),
    ]
    if have_bpftrace():
        out[3:3] = [("getppid: bpftrace", bpftrace_cmd(BT_ONE, target))]
        out.append(("all: bpftrace", bpftrace_cmd(BT_ALL, target)))
    return out


def run_case(rounds: int, quick: bool) -> dict:
    calls = 200_000 if quick else 2_000_000
    samples: dict[tuple[int, str], list[float]] = {}
    for r in range(rounds):
        for cpu in (0, 1):
            target = benchload("loop", calls, cpu)
            conds = conditions(target)
            if r % 2:  # alternate the order so drift does not favour one tracer
                conds = conds[::-1]
            for label, cmd in conds:
                out, _err, _wall = run(cmd if cmd else target.split())
                samples.setdefault((cpu, label), []).append(field(out, "ns_per_call"))
    rows = []
    for cpu in (0, 1):
        base = median(samples[(cpu, "untraced")])
        for label, _cmd in conditions(""):
            xs = samples[(cpu, label)]
            rows.append({"cpu": cpu, "condition": label, "ns_per_call": median(xs),
                         "added_ns": median(xs) - base, "spread": spread(xs), "samples": xs,
                         # best of the rounds: what is left when nothing else ran
                         "best_added_ns": min(xs) - min(samples[(cpu, "untraced")])})
    for row in rows:
        kind, _, tool = row["condition"].partition(": ")
        if tool == "dtrace-nb":
            bcc = next(x for x in rows if x["cpu"] == row["cpu"]
                       and x["condition"] == f"{kind}: bcc (hand-written)")
            row["vs_bcc"] = row["added_ns"] / bcc["added_ns"] if bcc["added_ns"] > 0 else None
            bt = [x for x in rows if x["cpu"] == row["cpu"]
                  and x["condition"] == f"{kind}: bpftrace"]
            if bt:
                row["vs_bpftrace"] = (row["added_ns"] / bt[0]["added_ns"]
                                      if bt[0]["added_ns"] > 0 else None)
    return {"calls": calls, "rounds": rounds, "rows": rows}


def table(res: dict) -> list[str]:
    lines = [f"### 1. Per-event cost ({res['calls']:,} getppid calls, median of "
             f"{res['rounds']} rounds)", "",
             "| CPU | condition | ns/call | added ns/call | vs bcc | vs bpftrace | spread "
             "| best round: added ns |", "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        vs = f"{r['vs_bcc']:.2f}x" if r.get("vs_bcc") else ""
        vb = f"{r['vs_bpftrace']:.2f}x" if r.get("vs_bpftrace") else ""
        lines.append(f"| {r['cpu']} | {r['condition']} | {r['ns_per_call']:.0f} | "
                     f"{r['added_ns']:+.0f} | {vs} | {vb} | {100 * r['spread']:.0f}% | "
                     f"{r['best_added_ns']:+.0f} |")
    return lines
