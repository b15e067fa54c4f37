"""Many uprobes (pid provider) through one uprobe_multi link (Linux 6.6): one program for
all, loaded for BPF_TRACE_UPROBE_MULTI, told apart by the cookie of each offset. Besides
one program and one fd instead of one each per probe, detaching is one link's close: a
uprobe's own perf event waits for an RCU tasks-trace grace period when it closes
(~0.1 s measured here, serialised in the kernel), so 1,500 of them took minutes.

The kernel refuses the whole link when it refuses one offset (an instruction uprobes
cannot step, such as libc's pthread_spin_lock here: ENOTSUPP); the refusal then names the
functions, found by halving the set."""

from __future__ import annotations

import os

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import Attach, UprobeMultiAttach
from dtrace_nb.runtime.attach.base import AttachedProbe, LoadAttributes, reason
from dtrace_nb.runtime.kernel import bpf

NAMED_AT_MOST = 5  # refused functions a message names


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

    def _refused(self, prog_fd: int, idx: list[int]) -> list[int]:
        """The offsets (indexes) the kernel refuses, by halving `idx` (a refused set)."""
        if len(idx) == 1:
            return idx
        out = []
        for part in (idx[:len(idx) // 2], idx[len(idx) // 2:]):
            try:
                os.close(self._link(prog_fd, part))
            except OSError:
                out += self._refused(prog_fd, part)
        return out

    def _attach(self, prog_fd: int) -> None:
        a = self.attach_spec
        every = list(range(len(a.offsets)))
        try:
            self.link_fds.append(self._link(prog_fd, every))
            return
        except OSError as err:
            first = err
        bad = self._refused(prog_fd, every) if len(every) > 1 else every
        names = [a.symbols[i] if i < len(a.symbols) else hex(a.offsets[i]) for i in bad]
        shown = ", ".join(names[:NAMED_AT_MOST]) + (
            f" and {len(names) - NAMED_AT_MOST} more" if len(names) > NAMED_AT_MOST else "")
        raise DEnvironmentError(
            f"could not attach {a.describe()} ({reason(first)}): the kernel refuses "
            f"{'a uprobe' if len(names) == 1 else 'uprobes'} at {shown or 'some offset'}",
            hint="leave those functions out of the description (uprobes cannot step every "
                 "instruction), and check that the process still exists") from None
