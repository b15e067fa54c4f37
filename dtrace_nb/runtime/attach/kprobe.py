"""kprobe and kretprobe on a kernel function (fbt where the kernel has no BPF trampolines):
the program gets the function's saved registers (struct pt_regs)."""

from __future__ import annotations

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import KprobeAttach
from dtrace_nb.runtime.attach.base import reason
from dtrace_nb.runtime.attach.dynamic import DynamicProbe, ProbeSite
from dtrace_nb.runtime.kernel import features

NO_KPROBES_HINT = "the kernel was built without CONFIG_KPROBE_EVENTS"


class KprobeProbe(DynamicProbe):
    attaches = KprobeAttach
    attach_spec: KprobeAttach
    kind = "kprobe"

    def site(self) -> ProbeSite:
        return ProbeSite(self.attach_spec.function, ret=self.attach_spec.ret)

    def _attach(self, prog_fd: int) -> None:
        if self.mechanism is None:
            raise DEnvironmentError(f"cannot attach {self.describe()}: not possible on this "
                                    f"kernel: {features.kprobes().detail}", hint=NO_KPROBES_HINT)
        try:
            self.open_event(prog_fd)
        except OSError as err:
            raise DEnvironmentError(
                f"could not attach {self.describe()} ({reason(err)}, through the "
                f"{'kprobe PMU' if self.mechanism == 'pmu' else 'tracefs kprobe_events'})",
                hint="is the function traceable? (not inlined, not notrace: see "
                     "available_filter_functions in tracefs)") from None
