"""What every attach mechanism shares (bpftrace's AttachedProbe): a probe attached to one
loaded program owns the kernel objects that attach it (perf events, BPF links, tracefs
probe events) and frees them all in `detach()`, also after an attach that failed half-way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar, Optional

from dtrace_nb.probes import Attach
from dtrace_nb.runtime.kernel import perf, tracefs
from dtrace_nb.runtime.kernel.libc import close


# the kernel's ENOTSUPP (not ENOTSUP): what uprobes answer for an instruction they
# cannot single-step out of line, such as libc's pthread_spin_lock here
ENOTSUPP = 524


def cannot_instrument(err: OSError) -> bool:
    """The kernel cannot place this probe (as opposed to a wrong request): dtrace-utils
    says "Failed to enable" for such a probe and goes on with the others."""
    return err.errno == ENOTSUPP


def reason(err: OSError) -> str:
    """The kernel's reason for a refusal, in strerror's words."""
    return os.strerror(err.errno) if err.errno else str(err)


@dataclass(frozen=True)
class LoadAttributes:
    """How to load a program this mechanism will attach: its program type and, for
    trampolines, which kernel function it is for (expected attach type, BTF id)."""

    prog_type: int
    expected_attach_type: int = 0
    attach_btf_id: int = 0


class AttachedProbe:
    """One Binding's attachment. Subclasses name the Attach kind they serve (`attaches`),
    the program type (`prog_type`) and implement `_attach(prog_fd)`, recording each kernel
    object in the lists here as soon as it exists."""

    attaches: ClassVar[type[Attach]] = Attach
    prog_type: ClassVar[int] = -1

    def __init__(self, attach: Attach):
        self.attach_spec = attach
        self.perf_fds: list[int] = []
        self.link_fds: list[int] = []
        self.probe_events: list[tracefs.ProbeEvent] = []
        # the sites the kernel cannot instrument, left out (cannot_instrument): the
        # cookie of each refused offset of a multi-attachment, or None for the whole one
        self.refused: list[Optional[int]] = []

    @classmethod
    def load_attributes(cls, attach: Attach) -> LoadAttributes:
        return LoadAttributes(cls.prog_type)

    @property
    def count(self) -> int:
        """Kernel objects attaching the program (perf events, links)."""
        return len(self.perf_fds) + len(self.link_fds)

    def attach(self, prog_fd: int) -> None:
        """Attach the program; DEnvironmentError saying why not (what was made before
        the failure stays recorded, for detach())."""
        self._attach(prog_fd)

    def _attach(self, prog_fd: int) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        """Free every kernel object of the attachment (idempotent)."""
        while self.perf_fds:
            perf.close_event(self.perf_fds.pop())
        while self.link_fds:
            close(self.link_fds.pop())
        # a tracefs probe event can go once no perf event is open on it
        while self.probe_events:
            tracefs.remove_probe_event(self.probe_events.pop())

    def describe(self) -> str:
        return self.attach_spec.describe()
