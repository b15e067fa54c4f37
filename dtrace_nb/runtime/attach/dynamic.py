"""kprobes and uprobes, made on demand in the kernel: through the kprobe or uprobe PMU
(perf_event_open creates the probe, and closing the event removes it) where the kernel has
one, else as a tracefs probe event with a perf event opened on its id. The feature layer
(runtime/kernel/features.py) says which the kernel offers; a test may force one."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import ClassVar, Optional

from dtrace_nb.probes import Attach
from dtrace_nb.runtime.attach.base import AttachedProbe
from dtrace_nb.runtime.kernel import bpf, features, perf, tracefs

MECHANISMS = ("pmu", "tracefs")


@dataclass(frozen=True)
class ProbeSite:
    """Where a dynamic probe goes: a kernel function or an ELF file (`target`), the
    offset in it, entry or return, one process or all (pid -1), a USDT semaphore."""

    target: str
    offset: int = 0
    ret: bool = False
    pid: int = -1
    ref_ctr_offset: int = 0


class DynamicProbe(AttachedProbe):
    """A kprobe or uprobe (`kind`). Raises OSError from the kernel; subclasses word it."""

    kind: ClassVar[str] = ""
    prog_type = bpf.BPF_PROG_TYPE_KPROBE

    def __init__(self, attach: Attach, mechanism: Optional[str] = None):
        super().__init__(attach)
        if mechanism is not None and mechanism not in MECHANISMS:
            raise ValueError(f"no {self.kind} mechanism {mechanism!r}")
        self.mechanism = mechanism or features.probe_mechanism(self.kind)

    def site(self) -> ProbeSite:
        raise NotImplementedError

    def open_event(self, prog_fd: int) -> None:
        """Create the probe and attach the program to it (mechanism not None)."""
        site = self.site()
        pid, cpu = perf.probe_target_cpu(site.pid)
        if self.mechanism == "pmu":
            pmu = perf.probe_pmu(self.kind)
            if pmu is None:
                raise OSError(2, f"no {self.kind} PMU")
            # `_name` holds the string config1 points at: alive until the event is open
            attr, _name = self.pmu_attr(pmu, site)
            self.perf_fds.append(perf.open_with_program(attr, pid, cpu, prog_fd))
            return
        event = tracefs.create_probe_event(self.kind, site.ret, site.target, site.offset,
                                           site.ref_ctr_offset)
        self.probe_events.append(event)
        attr = perf.event_attr(perf.PERF_TYPE_TRACEPOINT, event.id(), sample_period=1)
        attr.wakeup_events = 1
        self.perf_fds.append(perf.open_with_program(attr, pid, cpu, prog_fd))

    @staticmethod
    def pmu_attr(pmu: perf.ProbePmu, site: ProbeSite) -> tuple[perf.PerfEventAttr, ctypes.Array]:
        """The perf_event_attr that creates the probe through the PMU, and the buffer
        holding the name its config1 points at (keep it until the event is open)."""
        target = ctypes.create_string_buffer(site.target.encode())
        return perf.probe_attr(pmu, target, site.offset, site.ret, site.ref_ctr_offset), target
