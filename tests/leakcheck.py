"""What BPF, perf and tracefs state exists, so tests can prove nothing of ours is left behind.

    before = bpf_state()
    ... load, trace, stop ...
    assert settled_diff(before) == []          # or diff_state(before, bpf_state())

A snapshot (`State`) holds:
- every loaded BPF program and map (`bpftool -j prog show` / `map show`) with the processes
  holding an fd to it. bpftool reports holders ("pids") only when built with that feature
  (Debian 12's is not), so holders are also found directly: each bpf-prog / bpf-map /
  bpf_link fd under /proc/*/fd names its object in /proc/*/fdinfo (prog_id:, map_id:);
- this process's perf-event and bpf fds, counted by kind;
- the lines of tracefs' uprobe_events and kprobe_events, and the entries of tracefs'
  events/ named bcc_* or dtnb*.

Other processes on the machine load BPF too (systemd, other people's test runs at the same
time), so a new program or map counts as a leak of ours unless a live process that is not
ours holds it. Ours means this process, its descendants, and any process whose environment
carries OWNER_ENV=<this pid> (`claim_children()` sets it, so children that were orphaned
and reparented still count). A new object held by nobody (attached or pinned after its
loader let go) is reported too: no one else can be shown to own it. Likewise a new tracefs
probe is ours unless its name carries the pid of a live foreign process (bcc names them
..._bcc_<pid>).

`State.programs` / `State.maps` are the (id, name) pairs this process tree holds;
`unheld_programs` / `unheld_maps` those nobody holds; `prog_objects` / `map_objects` have
every object on the machine with its holders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import NamedTuple

OWNER_ENV = "DTRACE_NB_LEAKCHECK_OWNER"

_FD_KINDS = {  # readlink(/proc/PID/fd/N) -> kind
    "anon_inode:bpf-prog": "prog",
    "anon_inode:bpf-map": "map",
    "anon_inode:bpf_link": "link",
    "anon_inode:[perf_event]": "perf_event",
}
_TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_EVENT_PREFIXES = ("bcc_", "dtnb")
_PROBE_PID = re.compile(r"(?:bcc|dtnb)_(\d+)")


class FdCounts(NamedTuple):
    """This process's fds by kind (a tuple: prog, map, perf_event, link)."""

    prog: int = 0
    map: int = 0
    perf_event: int = 0
    link: int = 0


@dataclass(frozen=True)
class BpfObject:
    id: int
    name: str
    kind: str                # "program" or "map"
    type: str                # kprobe, tracepoint, hash, ringbuf, ...
    holders: frozenset       # pids holding an fd to it (directly or through a link)
    ours: bool               # held by this process tree
    foreign: bool            # held only by live processes that are not ours

    def describe(self) -> str:
        if self.holders:
            who = ", ".join(f"{pid} ({_comm(pid)})" for pid in sorted(self.holders))
            held = f"held by pid {who}"
        else:
            held = "held by no process (attached or pinned)"
        return f"{self.kind} {self.id} {self.name or '<unnamed>'} [{self.type}] {held}"


@dataclass(frozen=True, eq=False)
class State:
    pid: int
    prog_objects: dict = field(repr=False)  # id -> BpfObject, every program on the machine
    map_objects: dict = field(repr=False)   # id -> BpfObject, every map on the machine
    fds: FdCounts
    uprobe_events: frozenset
    kprobe_events: frozenset
    trace_events: frozenset                 # tracefs events/ entries named bcc_* / dtnb*

    @property
    def programs(self) -> frozenset:
        """(id, name) of the programs this process tree holds."""
        return _pairs(self.prog_objects, lambda o: o.ours)

    @property
    def maps(self) -> frozenset:
        """(id, name) of the maps this process tree holds."""
        return _pairs(self.map_objects, lambda o: o.ours)

    @property
    def unheld_programs(self) -> frozenset:
        """(id, name) of the programs no live process holds (attached, pinned, or being
        freed): diff_state counts a new one as ours, since no one else can be shown to own
        it."""
        return _pairs(self.prog_objects, lambda o: not o.ours and not o.foreign)

    @property
    def unheld_maps(self) -> frozenset:
        return _pairs(self.map_objects, lambda o: not o.ours and not o.foreign)

    @property
    def all_program_ids(self) -> frozenset:
        return frozenset(self.prog_objects)

    @property
    def all_map_ids(self) -> frozenset:
        return frozenset(self.map_objects)

    def describe(self) -> str:
        return (f"programs={sorted(self.programs)} maps={sorted(self.maps)} "
                f"unheld={sorted(self.unheld_programs | self.unheld_maps)} fds={self.fds} "
                f"uprobes={sorted(self.uprobe_events)} kprobes={sorted(self.kprobe_events)} "
                f"events={sorted(self.trace_events)}")


def _pairs(objects: dict, keep) -> frozenset:
    return frozenset((o.id, o.name) for o in objects.values() if keep(o))


# --- processes -------------------------------------------------------------------------

def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _read(path: str, mode: str = "r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def _comm(pid: int) -> str:
    return (_read(f"/proc/{pid}/comm") or "?").strip()


def _ppid(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def _our_pids(me: int, pids: list[int]) -> set[int]:
    """`me`, its descendants, and the processes that inherited OWNER_ENV=me."""
    children: dict[int, list[int]] = {}
    for pid in pids:
        parent = _ppid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    ours, todo = set(), [me]
    while todo:
        pid = todo.pop()
        if pid not in ours:
            ours.add(pid)
            todo.extend(children.get(pid, ()))
    marker = f"{OWNER_ENV}={me}".encode()
    for pid in pids:
        if pid not in ours:
            env = _read(f"/proc/{pid}/environ", "rb")
            if env and marker in env.split(b"\0"):
                ours.add(pid)
    return ours


def claim_children() -> None:
    """Mark every process started from now on as ours (through its environment), so a
    child that outlives its parent and holds a BPF object is still recognised as ours."""
    os.environ.setdefault(OWNER_ENV, str(os.getpid()))


# --- fds -------------------------------------------------------------------------------

def _bpf_fds(pid: int):
    """(kind, fd) for each bpf/perf fd of `pid`."""
    base = f"/proc/{pid}/fd"
    try:
        names = os.listdir(base)
    except OSError:
        return
    for fd in names:
        try:
            kind = _FD_KINDS.get(os.readlink(f"{base}/{fd}"))
        except OSError:
            continue
        if kind:
            yield kind, fd


def _holders(pids: list[int]) -> tuple[dict, dict]:
    """program id -> pids and map id -> pids, from the fdinfo of every bpf fd."""
    progs: dict[int, set[int]] = {}
    maps: dict[int, set[int]] = {}
    for pid in pids:
        for kind, fd in _bpf_fds(pid):
            if kind == "perf_event":
                continue
            info = _read(f"/proc/{pid}/fdinfo/{fd}") or ""
            for line in info.splitlines():
                key, _, value = line.partition(":")
                if key == "prog_id":
                    progs.setdefault(int(value), set()).add(pid)
                elif key == "map_id":
                    maps.setdefault(int(value), set()).add(pid)
    return progs, maps


def _fd_counts(pid: int) -> FdCounts:
    counts = dict.fromkeys(FdCounts._fields, 0)
    for kind, _ in _bpf_fds(pid):
        counts[kind] += 1
    return FdCounts(**counts)


# --- bpftool ---------------------------------------------------------------------------

def _bpftool(*args: str) -> list:
    try:
        out = subprocess.run(["bpftool", "-j", *args], check=False, capture_output=True,
                             text=True)
    except FileNotFoundError:
        raise RuntimeError("bpftool not found (scripts/setup-system.sh installs it)") from None
    if out.returncode != 0:
        raise RuntimeError(f"bpftool {' '.join(args)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout or "[]")


def _objects(kind: str, entries: list, held: dict, ours: set[int]) -> dict:
    objs = {}
    for e in entries:
        holders = set(held.get(e["id"], ()))
        holders.update(p["pid"] for p in e.get("pids", ()))  # bpftool built with pid iter
        live = {p for p in holders if _alive(p)}
        objs[e["id"]] = BpfObject(
            id=e["id"], name=e.get("name", ""), kind=kind, type=str(e.get("type", "")),
            holders=frozenset(holders), ours=bool(live & ours),
            foreign=bool(live) and not (live & ours))
    return objs


# --- tracefs ---------------------------------------------------------------------------

def _tracefs() -> str | None:
    for d in _TRACEFS_DIRS:
        if os.path.exists(f"{d}/events"):
            return d
    return None


def _lines(path: str) -> frozenset:
    text = _read(path) or ""
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def _tracefs_state() -> tuple[frozenset, frozenset, frozenset]:
    d = _tracefs()
    if d is None:
        return frozenset(), frozenset(), frozenset()
    try:
        events = frozenset(e for e in os.listdir(f"{d}/events") if e.startswith(_EVENT_PREFIXES))
    except OSError:
        events = frozenset()
    return _lines(f"{d}/uprobe_events"), _lines(f"{d}/kprobe_events"), events


# --- snapshot and diff -----------------------------------------------------------------

def bpf_state() -> State:
    me = os.getpid()
    progs_json = _bpftool("prog", "show")
    maps_json = _bpftool("map", "show")
    pids = _pids()  # after bpftool exited: its own fds on every object are gone
    ours = _our_pids(me, pids)
    prog_held, map_held = _holders(pids)
    uprobes, kprobes, events = _tracefs_state()
    return State(pid=me,
                 prog_objects=_objects("program", progs_json, prog_held, ours),
                 map_objects=_objects("map", maps_json, map_held, ours),
                 fds=_fd_counts(me), uprobe_events=uprobes, kprobe_events=kprobes,
                 trace_events=events)


def _foreign_probe(line: str, ours: set[int]) -> bool:
    m = _PROBE_PID.search(line)
    if not m:
        return False
    pid = int(m.group(1))
    return pid not in ours and _alive(pid)


def diff_state(before: State, after: State) -> list[str]:
    """What of ours exists in `after` that did not in `before`, one sentence per thing."""
    problems = []
    for label, b, a in (("BPF programs", before.prog_objects, after.prog_objects),
                        ("BPF maps", before.map_objects, after.map_objects)):
        new = [o for i, o in sorted(a.items()) if i not in b and not o.foreign]
        if new:
            problems.append(f"{label} still loaded: " + "; ".join(o.describe() for o in new))

    for name, n_before, n_after in zip(FdCounts._fields, before.fds, after.fds):
        if n_after > n_before:
            problems.append(f"{n_after - n_before} more {name} file descriptor(s) open in pid "
                            f"{after.pid} than at the start ({n_before} -> {n_after})")

    ours = _our_pids(after.pid, _pids()) if (
        after.uprobe_events - before.uprobe_events
        or after.kprobe_events - before.kprobe_events
        or after.trace_events - before.trace_events) else set()
    for label, b, a in (("uprobe events", before.uprobe_events, after.uprobe_events),
                        ("kprobe events", before.kprobe_events, after.kprobe_events),
                        ("tracefs events", before.trace_events, after.trace_events)):
        new = sorted(x for x in a - b if not _foreign_probe(x, ours))
        if new:
            problems.append(f"{label} left: {new}")
    return problems


def settled_diff(before: State, timeout: float = 3.0) -> list[str]:
    """diff_state after giving the kernel up to `timeout` s to free what was released:
    a closed program fd is freed asynchronously (RCU), so it can stay listed briefly."""
    deadline = time.monotonic() + timeout
    while True:
        problems = diff_state(before, bpf_state())
        if not problems or time.monotonic() >= deadline:
            return problems
        time.sleep(0.05)
