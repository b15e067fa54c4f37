"""What BPF state exists, so the suite can prove nothing of ours is left behind.

Our programs are all named dtnb_*; maps are counted by the fds this process holds and by
the programs that would use them. Perf events and tracefs entries are counted too.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class State:
    programs: frozenset  # (id, name) of loaded BPF programs named dtnb_*
    fds: tuple           # counts of this process's bpf-prog, bpf-map, perf_event fds
    uprobe_events: frozenset

    def describe(self) -> str:
        return (f"programs={sorted(self.programs)} fds(prog,map,perf,link)={self.fds} "
                f"uprobes={sorted(self.uprobe_events)}")


def _bpftool(*args: str):
    out = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"bpftool {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout or "[]")


def _fd_counts() -> tuple:
    counts = {"bpf-prog": 0, "bpf-map": 0, "[perf_event]": 0, "bpf_link": 0}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        for kind in counts:
            if kind in target:
                counts[kind] += 1
    return tuple(counts.values())


def _uprobes() -> frozenset:
    for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            with open(f"{d}/uprobe_events") as f:
                return frozenset(line.strip() for line in f if line.strip())
        except OSError:
            continue
    return frozenset()


def bpf_state() -> State:
    progs = frozenset((p["id"], p.get("name", "")) for p in _bpftool("prog", "show")
                      if p.get("name", "").startswith("dtnb_"))
    return State(progs, _fd_counts(), _uprobes())


def diff_state(before: State, after: State) -> list[str]:
    problems = []
    if after.programs - before.programs:
        problems.append(f"BPF programs still loaded: {sorted(after.programs - before.programs)}")
    names = ("bpf-prog", "bpf-map", "perf_event", "bpf_link")
    for name, b, a in zip(names, before.fds, after.fds):
        if a > b:
            problems.append(f"{a - b} more {name} file descriptor(s) open than at the start")
    if after.uprobe_events - before.uprobe_events:
        problems.append(f"uprobe events left: {sorted(after.uprobe_events - before.uprobe_events)}")
    return problems


def settled_diff(before: State, timeout: float = 3.0) -> list[str]:
    """diff_state after giving the kernel up to `timeout` s to free what was released:
    a closed program fd is freed asynchronously (RCU), so it can stay listed briefly."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        problems = diff_state(before, bpf_state())
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(0.05)
