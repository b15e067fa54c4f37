"""Attaching loaded programs, one class per mechanism (bpftrace's AttachedProbe), chosen
from the Binding's Attach value by the registry below rather than by a chain of tests.

    tracepoints.py  TracepointProbe, RawTracepointProbe
    perf_event.py   PerfEventProbe (profile, tick)
    uprobe.py       UprobeProbe (pid, usdt; USDT semaphores)
    uprobe_multi.py UprobeMultiProbe (pid: many functions, one link)
    kprobe.py       KprobeProbe (fbt without trampolines)
    fentry.py       FentryProbe (fbt with trampolines)
    trigger.py      TriggerProbe (BEGIN, END, ERROR: run by the consumer)
    dynamic.py      what kprobes and uprobes share (PMU or tracefs)

The runtime keeps its own attachments instead of leaning on bcc's bookkeeping: bcc keys
perf events by (type, config), so two profile probes of different rates would leak the
first one's fds, and its atexit hook would keep every BPF object of a long notebook alive.
"""

from __future__ import annotations

from dtrace_nb.errors import DRuntimeError
from dtrace_nb.probes import Attach
from dtrace_nb.runtime.attach.base import AttachedProbe, LoadAttributes
from dtrace_nb.runtime.attach.fentry import FentryProbe
from dtrace_nb.runtime.attach.kprobe import KprobeProbe
from dtrace_nb.runtime.attach.perf_event import PerfEventProbe
from dtrace_nb.runtime.attach.tracepoints import RawTracepointProbe, TracepointProbe
from dtrace_nb.runtime.attach.trigger import TriggerProbe
from dtrace_nb.runtime.attach.uprobe import UprobeProbe
from dtrace_nb.runtime.attach.uprobe_multi import UprobeMultiProbe

MECHANISMS: tuple[type[AttachedProbe], ...] = (
    TracepointProbe, RawTracepointProbe, PerfEventProbe, UprobeProbe, UprobeMultiProbe,
    KprobeProbe, FentryProbe, TriggerProbe)
_BY_KIND: dict[type[Attach], type[AttachedProbe]] = {m.attaches: m for m in MECHANISMS}


def mechanism_for(attach: Attach) -> type[AttachedProbe]:
    """The class that attaches `attach` (a subclass of an Attach kind: its kind's class)."""
    for kind in type(attach).__mro__:
        found = _BY_KIND.get(kind)
        if found is not None:
            return found
    raise DRuntimeError(f"no way to attach mechanism '{attach.mechanism}'")


def load_attributes(attach: Attach) -> LoadAttributes:
    """How to load the program that `attach` will attach."""
    return mechanism_for(attach).load_attributes(attach)


def probe_for(attach: Attach) -> AttachedProbe:
    """A not yet attached probe of the right mechanism."""
    return mechanism_for(attach)(attach)


__all__ = ["AttachedProbe", "FentryProbe", "KprobeProbe", "LoadAttributes", "MECHANISMS",
           "PerfEventProbe", "RawTracepointProbe", "TracepointProbe", "TriggerProbe",
           "UprobeMultiProbe", "UprobeProbe", "load_attributes", "mechanism_for", "probe_for"]
