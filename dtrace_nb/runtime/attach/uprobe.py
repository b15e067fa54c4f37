"""uprobe and uretprobe at a file offset of an ELF object (pid and usdt): the program gets
the thread's saved registers; a USDT probe's semaphore is counted up by the kernel while
the probe is attached (ref_ctr_offset)."""

from __future__ import annotations

import errno

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import UprobeAttach
from dtrace_nb.runtime.attach.base import cannot_instrument, reason
from dtrace_nb.runtime.attach.dynamic import DynamicProbe, ProbeSite
from dtrace_nb.runtime.kernel import features


class UprobeProbe(DynamicProbe):
    attaches = UprobeAttach
    attach_spec: UprobeAttach
    kind = "uprobe"

    def site(self) -> ProbeSite:
        a = self.attach_spec
        return ProbeSite(a.path, a.offset, a.ret, a.pid, a.ref_ctr_offset)

    def _attach(self, prog_fd: int) -> None:
        a = self.attach_spec
        what = "uretprobe" if a.ret else "uprobe"
        where = f"{a.path}:{a.symbol or hex(a.offset)}"
        if self.mechanism is None:
            raise DEnvironmentError(f"could not attach a {what} at {where}: not possible on "
                                    f"this kernel: {features.uprobes().detail}",
                                    hint="the pid and usdt providers need CONFIG_UPROBE_EVENTS")
        try:
            self.open_event(prog_fd)
        except OSError as err:
            if a.may_vanish and err.errno == errno.ESRCH:
                return  # a process matched by a provider glob exited meanwhile
            if cannot_instrument(err):
                self.refused.append(None)  # said by the session, as dtrace-utils does
                return
            raise DEnvironmentError(
                f"could not attach a {what} at {where} ({reason(err)})",
                hint="does the process still exist, and is the offset an instruction "
                     "boundary? (uprobes need CONFIG_UPROBE_EVENTS)") from None
