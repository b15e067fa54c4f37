"""BEGIN, END and ERROR: programs the consumer runs itself, at its own points of the
session, with BPF_PROG_TEST_RUN (loaded as raw tracepoint programs, never attached)."""

from __future__ import annotations

import ctypes

from dtrace_nb.errors import DRuntimeError
from dtrace_nb.probes import TriggerAttach
from dtrace_nb.runtime.attach.base import AttachedProbe, reason
from dtrace_nb.runtime.kernel import bpf


class TriggerProbe(AttachedProbe):
    attaches = TriggerAttach
    attach_spec: TriggerAttach
    prog_type = bpf.BPF_PROG_TYPE_RAW_TRACEPOINT

    def _attach(self, prog_fd: int) -> None:
        self.prog_fd = prog_fd  # nothing in the kernel: fire() runs it

    @property
    def event(self) -> str:
        return self.attach_spec.event

    def fire(self, args: tuple[int, ...] = ()) -> None:
        """Run the program once, now, in this thread, with `args` as its raw tracepoint
        arguments."""
        vals = (ctypes.c_uint64 * max(1, len(args)))(*[a & (2**64 - 1) for a in args])
        try:
            bpf.prog_test_run(self.prog_fd, bytes(vals))
        except OSError as err:
            raise DRuntimeError(f"could not run the program ({reason(err)})",
                                hint="BPF_PROG_TEST_RUN of raw tracepoint programs needs "
                                     "Linux 5.10+") from None
