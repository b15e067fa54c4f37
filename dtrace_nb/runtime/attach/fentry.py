"""fentry and fexit: a BPF trampoline on a kernel function. The program names its function
when it is loaded (BTF id, expected attach type); attaching makes a BPF link."""

from __future__ import annotations

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import Attach, FentryAttach
from dtrace_nb.runtime import btf
from dtrace_nb.runtime.attach.base import AttachedProbe, LoadAttributes, reason
from dtrace_nb.runtime.kernel import bpf


class FentryProbe(AttachedProbe):
    attaches = FentryAttach
    attach_spec: FentryAttach
    prog_type = bpf.BPF_PROG_TYPE_TRACING

    @classmethod
    def load_attributes(cls, attach: Attach) -> LoadAttributes:
        assert isinstance(attach, FentryAttach)
        btf_id = btf.function_btf_id(attach.function)
        if btf_id is None:
            raise DEnvironmentError(f"the kernel's BTF has no function {attach.function}",
                                    hint="fentry needs the function in /sys/kernel/btf/vmlinux")
        return LoadAttributes(cls.prog_type,
                              bpf.BPF_TRACE_FEXIT if attach.ret else bpf.BPF_TRACE_FENTRY, btf_id)

    def _attach(self, prog_fd: int) -> None:
        try:
            self.link_fds.append(bpf.raw_tracepoint_open(prog_fd, None))
        except OSError as err:
            raise DEnvironmentError(
                f"could not attach {self.describe()} ({reason(err)})",
                hint="the kernel needs BPF trampolines "
                     "(CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)") from None
