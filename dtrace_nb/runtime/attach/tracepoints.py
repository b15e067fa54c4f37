"""Kernel tracepoints, attached through a perf event or as raw tracepoints."""

from __future__ import annotations

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import RawTracepointAttach, TracepointAttach
from dtrace_nb.runtime.attach.base import AttachedProbe, reason
from dtrace_nb.runtime.kernel import bpf, perf, tracefs

_TRACEFS_HINT = "is tracefs mounted? (mount -t tracefs nodev /sys/kernel/tracing)"


class TracepointProbe(AttachedProbe):
    """A perf event opened on the tracepoint's id in tracefs: the program gets the
    tracepoint's record (the fields its format file lists)."""

    attaches = TracepointAttach
    attach_spec: TracepointAttach
    prog_type = bpf.BPF_PROG_TYPE_TRACEPOINT

    def _attach(self, prog_fd: int) -> None:
        a = self.attach_spec
        root = tracefs.tracefs_root()
        if root is None:
            raise DEnvironmentError(f"could not attach to tracepoint {a.category}:{a.event}: "
                                    "tracefs is not mounted", hint=_TRACEFS_HINT)
        try:
            attr = perf.event_attr(perf.PERF_TYPE_TRACEPOINT,
                                   tracefs.event_id(root, a.category, a.event), sample_period=1)
            attr.wakeup_events = 1
            pid, cpu = perf.probe_target_cpu(-1)
            self.perf_fds.append(perf.open_with_program(attr, pid, cpu, prog_fd))
        except OSError as err:
            raise DEnvironmentError(
                f"could not attach to tracepoint {a.category}:{a.event} ({reason(err)})",
                hint=_TRACEFS_HINT) from None


class RawTracepointProbe(AttachedProbe):
    """A BPF link (BPF_RAW_TRACEPOINT_OPEN): the program gets the tracepoint's own
    arguments, before any record is built; no tracefs involved."""

    attaches = RawTracepointAttach
    attach_spec: RawTracepointAttach
    prog_type = bpf.BPF_PROG_TYPE_RAW_TRACEPOINT

    def _attach(self, prog_fd: int) -> None:
        a = self.attach_spec
        try:
            self.link_fds.append(bpf.raw_tracepoint_open(prog_fd, a.name))
        except OSError as err:
            raise DEnvironmentError(f"could not attach to raw tracepoint {a.name} "
                                    f"({reason(err)})",
                                    hint="the kernel lacks raw tracepoints (Linux 4.17+)") from None
