"""Many uprobes (pid provider) through one uprobe_multi link (Linux 6.6): one program for
all, loaded for BPF_TRACE_UPROBE_MULTI, told apart by the cookie of each offset. Besides
one program and one fd instead of one each per probe, detaching is one link's close: a
uprobe's own perf event waits for an RCU tasks-trace grace period when it closes
(~0.1 s measured here, serialised in the kernel), so 1,500 of them took minutes."""

from __future__ import annotations

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import Attach, UprobeMultiAttach
from dtrace_nb.runtime.attach.base import AttachedProbe, LoadAttributes, reason
from dtrace_nb.runtime.kernel import bpf


class UprobeMultiProbe(AttachedProbe):
    attaches = UprobeMultiAttach
    attach_spec: UprobeMultiAttach
    prog_type = bpf.BPF_PROG_TYPE_KPROBE

    @classmethod
    def load_attributes(cls, attach: Attach) -> LoadAttributes:
        return LoadAttributes(cls.prog_type, bpf.BPF_TRACE_UPROBE_MULTI)

    def _attach(self, prog_fd: int) -> None:
        a = self.attach_spec
        try:
            self.link_fds.append(bpf.uprobe_multi_link(prog_fd, a.path, list(a.offsets),
                                                       list(a.cookies), a.pid, a.ret))
        except OSError as err:
            raise DEnvironmentError(
                f"could not attach {a.describe()} ({reason(err)})",
                hint="does the process still exist, and are the offsets instruction "
                     "boundaries?") from None
