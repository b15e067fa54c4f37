"""Perf events that sample (the profile provider's profile-N and tick-N): one event per
CPU, each running the program at every period or at the frequency asked for."""

from __future__ import annotations

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import PerfEventAttach
from dtrace_nb.runtime.attach.base import AttachedProbe, reason
from dtrace_nb.runtime.kernel import bpf, perf
from dtrace_nb.runtime.kernel.cpus import online_cpus


class PerfEventProbe(AttachedProbe):
    """One perf event per CPU (or on the one CPU asked for), all running the program."""

    attaches = PerfEventAttach
    attach_spec: PerfEventAttach
    prog_type = bpf.BPF_PROG_TYPE_PERF_EVENT

    def _attach(self, prog_fd: int) -> None:
        a = self.attach_spec
        cpus = [a.cpu] if a.cpu >= 0 else online_cpus()
        for cpu in cpus:
            attr = perf.event_attr(a.ev_type, a.ev_config, sample_period=a.sample_period,
                                   sample_freq=a.sample_freq)
            try:
                self.perf_fds.append(perf.open_with_program(attr, -1, cpu, prog_fd))
            except OSError as err:
                raise DEnvironmentError(
                    f"could not open a perf event on CPU {cpu} ({reason(err)})",
                    hint="check kernel.perf_event_paranoid and privileges") from None
