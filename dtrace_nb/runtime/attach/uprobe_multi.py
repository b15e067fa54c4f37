"""Many uprobes (pid provider) through one uprobe_multi link (Linux 6.6): one program for
all, loaded for BPF_TRACE_UPROBE_MULTI, told apart by the cookie of each offset. Besides
one program and one fd instead of one each per probe, detaching is one link's close: a
uprobe's own perf event waits for an RCU tasks-trace grace period when it closes
(~0.1 s measured here, serialised in the kernel), so 1,500 of them took minutes.

The kernel refuses the whole link when it refuses one offset (an instruction uprobes
cannot step, such as libc's pthread_spin_lock here: ENOTSUPP). Those offsets are found by
halving the set, each half that the kernel takes kept as a link of its own, and left out,
as dtrace-utils leaves out a probe it fails to enable: the rest trace, each offset on
exactly one link. Any other refusal (the process is gone...) fails the attachment."""

from __future__ import annotations

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import Attach, UprobeMultiAttach
from dtrace_nb.runtime.attach.base import (AttachedProbe, LoadAttributes,
                                           cannot_instrument, reason)
from dtrace_nb.runtime.kernel import bpf


class UprobeMultiProbe(AttachedProbe):
    attaches = UprobeMultiAttach
    attach_spec: UprobeMultiAttach
    prog_type = bpf.BPF_PROG_TYPE_KPROBE

    @classmethod
    def load_attributes(cls, attach: Attach) -> LoadAttributes:
        return LoadAttributes(cls.prog_type, bpf.BPF_TRACE_UPROBE_MULTI)

    def _link(self, prog_fd: int, idx: list[int]) -> int:
        a = self.attach_spec
        return bpf.uprobe_multi_link(prog_fd, a.path, [a.offsets[i] for i in idx],
                                     [a.cookies[i] for i in idx], a.pid, a.ret)

    def _link_all(self, prog_fd: int, idx: list[int]) -> None:
        """Link the offsets `idx`, leaving out (self.refused) those the kernel cannot
        instrument: a refused set is halved until each part links or is one offset."""
        try:
            self.link_fds.append(self._link(prog_fd, idx))
            return
        except OSError as err:
            if not cannot_instrument(err):
                raise
            if len(idx) == 1:
                self.refused.append(self.attach_spec.cookies[idx[0]])
                return
        half = len(idx) // 2
        self._link_all(prog_fd, idx[:half])
        self._link_all(prog_fd, idx[half:])

    def _attach(self, prog_fd: int) -> None:
        a = self.attach_spec
        try:
            self._link_all(prog_fd, list(range(len(a.offsets))))
        except OSError as err:
            raise DEnvironmentError(
                f"could not attach {a.describe()} ({reason(err)})",
                hint="check that the process still exists") from None
