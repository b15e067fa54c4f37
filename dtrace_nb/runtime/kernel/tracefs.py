"""tracefs as an attach interface: a tracepoint's perf event id, and the dynamic probe
events (kprobe_events, uprobe_events) that older kernels, or kernels without the kprobe or
uprobe PMU, need before a perf event can be opened on a kprobe or uprobe.

A probe event made here is named `dtnb_<pid>_<n>` in group `dtnb`, so that whoever finds
one left behind knows whose it was; it is removed again by `remove_probe_event`.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Optional

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
GROUP = "dtnb"

_serial = itertools.count()


def tracefs_root() -> Optional[str]:
    """The first mounted tracefs (one with events/), or None."""
    for d in TRACEFS_DIRS:
        if os.path.isdir(os.path.join(d, "events")):
            return d
    return None


def probe_events_file(kind: str) -> Optional[str]:
    """tracefs' kprobe_events or uprobe_events (kind 'kprobe' / 'uprobe'), if it exists."""
    for d in TRACEFS_DIRS:
        path = os.path.join(d, f"{kind}_events")
        if os.path.exists(path):
            return path
    return None


def event_id(root: str, category: str, event: str) -> int:
    """The perf event id of tracepoint category:event (OSError if it does not exist)."""
    with open(os.path.join(root, "events", category, event, "id")) as f:
        return int(f.read().strip())


@dataclass(frozen=True)
class ProbeEvent:
    """A kprobe or uprobe event made in tracefs: `kind` 'kprobe'/'uprobe', `name` its
    event name in GROUP, `events_file` the file it was written to."""

    kind: str
    name: str
    events_file: str

    @property
    def root(self) -> str:
        return os.path.dirname(self.events_file)

    def id(self) -> int:
        return event_id(self.root, GROUP, self.name)


def probe_event_line(kind: str, name: str, ret: bool, target: str, offset: int = 0,
                     ref_ctr_offset: int = 0) -> str:
    """The kprobe_events / uprobe_events line that defines an event (Documentation/trace/
    kprobetrace.rst, uprobetracer.rst): `p:GROUP/NAME SYMBOL[+OFFS]` for a kprobe,
    `p:GROUP/NAME PATH:0xOFFSET[(0xREF_CTR_OFFSET)]` for a uprobe; `r` for a return probe."""
    head = f"{'r' if ret else 'p'}:{GROUP}/{name}"
    if kind == "kprobe":
        return f"{head} {target}" + (f"+{offset}" if offset and not ret else "")
    return f"{head} {target}:{offset:#x}" + (f"({ref_ctr_offset:#x})" if ref_ctr_offset else "")


def create_probe_event(kind: str, ret: bool, target: str, offset: int = 0,
                       ref_ctr_offset: int = 0) -> ProbeEvent:
    """Define a kprobe or uprobe in tracefs; OSError (with the kernel's errno) if refused."""
    events_file = probe_events_file(kind)
    if events_file is None:
        raise OSError(2, f"tracefs has no {kind}_events")
    name = f"dtnb_{os.getpid()}_{next(_serial)}"
    _append(events_file, probe_event_line(kind, name, ret, target, offset, ref_ctr_offset))
    return ProbeEvent(kind, name, events_file)


def remove_probe_event(event: ProbeEvent) -> None:
    """Delete the probe event (once no perf event is open on it); gone already is fine."""
    try:
        _append(event.events_file, f"-:{GROUP}/{event.name}")
    except OSError:
        pass


def _append(path: str, line: str) -> None:
    # one write(2) with O_APPEND (truncating would delete every probe; Python's "a" mode
    # seeks, which these files refuse)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
