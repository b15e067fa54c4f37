"""A fixed probe catalog for the tests that load nothing into the kernel.

The host's catalog depends on its kernel (tracefs events, BTF functions and offsets,
unistd numbers); unit tests and the golden C files must not. This catalog is the same
everywhere: the two providers that read nothing from the host (dtrace, profile) as they
are, and small fakes of the others, built from fixed tables through the same provider
code paths (the syscall provider's binding, a tracepoint record from a fixed format
file, translators with fixed task_struct offsets, kprobes on pt_regs).

`compile_c()` runs the compiler up to generated C against it: parse, check, bind, generate.
"""

from __future__ import annotations

from typing import Iterable, Optional

from dtrace_nb.codegen import BpfProgram, generate
from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.lang.check import CheckedProgram, MacroEnv, check
from dtrace_nb.runtime.compile import bind_probes
from dtrace_nb.lang.options import Options
from dtrace_nb.lang.parser import parse
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, Probe,
                              ProbeCatalog, ProbePattern, ProbeSite, glob_match)
from dtrace_nb_providers._stable import StableProbe, StableProvider, raw_hook, tracepoint_hook
from dtrace_nb_providers._task import task_translators
from dtrace_nb_providers._tracefs import FormatField
from dtrace_nb_providers._tracepoint import TracepointArgs, tracepoint_args
from dtrace_nb_providers.dtrace import DTraceProvider
from dtrace_nb_providers.fbt import FbtProvider
from dtrace_nb_providers.profile import ProfileProvider
from dtrace_nb_providers.sdt import SdtProvider
from dtrace_nb_providers.syscall import SyscallProvider

# -- syscall: a few numbers and prototypes -----------------------------------------------

SYSCALLS = {
    "read": (0, (("unsigned int", "fd"), ("char *", "buf"), ("size_t", "count"))),
    "write": (1, (("unsigned int", "fd"), ("const char *", "buf"), ("size_t", "count"))),
    "close": (3, (("unsigned int", "fd"),)),
    "newstat": (4, (("const char *", "filename"), ("struct stat *", "statbuf"))),
    "newfstatat": (262, (("int", "dfd"), ("const char *", "filename"),
                         ("struct stat *", "statbuf"), ("int", "flag"))),
    "getppid": (110, ()),
    "openat": (257, (("int", "dfd"), ("const char *", "filename"), ("int", "flags"),
                     ("umode_t", "mode"))),
}


class FakeSyscallProvider(SyscallProvider):
    def numbers(self) -> dict[str, int]:
        return {name: nr for name, (nr, _) in sorted(SYSCALLS.items())}

    def entry_args(self, name: str) -> tuple[ArgInfo, ...]:
        return tuple(ArgInfo(t, t, n) for t, n in SYSCALLS[name][1])


# -- sdt: two tracepoints with fixed format files ------------------------------------------

FORMATS = {
    ("sched", "sched_switch"): (
        FormatField("char", "prev_comm", 8, 16, True, 16),
        FormatField("pid_t", "prev_pid", 24, 4, True),
        FormatField("int", "prev_prio", 28, 4, True),
        FormatField("long", "prev_state", 32, 8, True),
        FormatField("char", "next_comm", 40, 16, True, 16),
        FormatField("pid_t", "next_pid", 56, 4, True),
        FormatField("int", "next_prio", 60, 4, True)),
    ("sched", "sched_process_exec"): (
        FormatField("__data_loc char[]", "filename", 8, 4, True),
        FormatField("pid_t", "pid", 12, 4, True),
        FormatField("pid_t", "old_pid", 16, 4, True)),
}


def fake_record(category: str, event: str) -> TracepointArgs:
    return tracepoint_args(category, event, FORMATS[(category, event)])


class FakeSdtProvider(SdtProvider):
    """The sdt provider over FORMATS instead of tracefs."""

    @staticmethod
    def groups() -> list[str]:
        return sorted({cat for cat, _ in FORMATS})

    @staticmethod
    def events(category: str) -> list[str]:
        return sorted(ev for cat, ev in FORMATS if cat == category)

    record = staticmethod(fake_record)


# -- proc and sched: translators with fixed task_struct offsets ----------------------------

TASK_OFFSETS = {"pid": 2384, "tgid": 2388, "comm": 3016, "real_parent": 2400, "cred": 2992,
                "prio": 124, "exit_code": 2340, "cred.uid": 8, "cred.gid": 12,
                "cred.euid": 24, "cred.egid": 28, "__state": 24, "thread_info.cpu": 24,
                "signal": 2520, "signal.nr_threads": 8, "signal.pids": 360, "pid.numbers": 144}
TASK = task_translators(TASK_OFFSETS)


class FakeProcProvider(StableProvider):
    name = "proc"
    order = 40
    probes = (
        StableProbe("exec-success", lambda: (),
                    lambda: [tracepoint_hook("sched", "sched_process_exec",
                                             record=fake_record)]),
        StableProbe("create", lambda: (TASK.psinfo_arg(),),
                    lambda: [raw_hook("sched_process_fork",
                                      arg_exprs=(api.raw_tracepoint_arg(1),),
                                      notes=("the new process",))]),
    )


class FakeSchedProvider(StableProvider):
    name = "sched"
    order = 41
    probes = (
        StableProbe("on-cpu", lambda: (),
                    lambda: [raw_hook("sched_switch", thread=TASK.subject_thread(
                        api.raw_tracepoint_arg(2), stacks="sched_switch runs in the outgoing thread"))]),
        StableProbe("off-cpu", lambda: (TASK.lwpsinfo_arg(), TASK.psinfo_arg()),
                    lambda: [raw_hook("sched_switch",
                                      arg_exprs=(api.raw_tracepoint_arg(2),) * 2,
                                      notes=("the incoming task",) * 2)]),
    )


# -- fbt: kprobes on a few kernel functions of different prototypes -----------------------

KERNEL_FUNCTIONS = {
    "vfs_read": (("struct file *", "file"), ("char *", "buf"), ("size_t", "count"),
                 ("loff_t *", "pos")),
    "vfs_write": (("struct file *", "file"), ("const char *", "buf"), ("size_t", "count"),
                  ("loff_t *", "pos")),
    "do_sys_openat2": (("int", "dfd"), ("const char *", "filename"),
                       ("struct open_how *", "how")),
    "kfree": (("const void *", "objp"),),
    "schedule_timeout": (("long", "timeout"),),
    "tcp_sendmsg": (("struct sock *", "sk"), ("struct msghdr *", "msg"), ("size_t", "size")),
    "ksys_lseek": (("unsigned int", "fd"), ("off_t", "offset"), ("unsigned int", "whence")),
    "do_nanosleep": (("struct hrtimer_sleeper *", "t"), ("enum hrtimer_mode", "mode")),
    "wake_up_process": (("struct task_struct *", "p"),),
    "kmem_cache_alloc": (("struct kmem_cache *", "s"), ("gfp_t", "flags")),
    "__x64_sys_getppid": (("const struct pt_regs *", "regs"),),
    "copy_process": (("struct pid *", "pid"), ("int", "trace"), ("int", "node"),
                     ("struct kernel_clone_args *", "args")),
    "security_file_open": (("struct file *", "file"),),
    "ip_rcv": (("struct sk_buff *", "skb"), ("struct net_device *", "dev")),
}

class FakeFbtProvider(FbtProvider):
    """The fbt provider over KERNEL_FUNCTIONS instead of BTF, on kprobes."""

    def __init__(self) -> None:
        super().__init__("kprobe")

    @staticmethod
    def functions() -> list[str]:
        return sorted(KERNEL_FUNCTIONS)

    @staticmethod
    def params(function: str):
        return KERNEL_FUNCTIONS.get(function)


# -- a provider that lists probes but cannot bind them (a kernel lacking a mechanism) -----

class RefusingProvider:
    name = "nobind"
    order = 80

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        return [ProbeSite("", "thing", n) for n in ("entry", "return")
                if pattern.matches(Probe(0, self.name, "", "thing", n))]

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        raise DEnvironmentError("the nobind provider cannot attach on this kernel",
                                hint="it never can: it is the tests' refusing provider")


def fake_providers() -> list:
    return [DTraceProvider(), FakeSyscallProvider(), ProfileProvider(), FakeSdtProvider(),
            FakeProcProvider(), FakeSchedProvider(), FakeFbtProvider(), RefusingProvider()]


def fake_catalog() -> ProbeCatalog:
    return ProbeCatalog(fake_providers())


def compile_c(source: str, options: Optional[dict] = None, macro_args: tuple = (),
              catalog: Optional[ProbeCatalog] = None,
              target_pid: Optional[int] = None) -> tuple[CheckedProgram, BpfProgram]:
    """Parse, check, bind and generate C against the fixed catalog (nothing of the host)."""
    opts = Options()
    for name, value in (options or {}).items():
        opts.set(name, value)
    catalog = catalog or fake_catalog()
    ctx = BindContext(target_pid=target_pid if target_pid is not None else -1)
    macros = MacroEnv(target=target_pid, pid=4242, args=list(macro_args))
    checked = check(parse(source), catalog, macros, opts, ctx)
    return checked, generate(checked, bind_probes(catalog, checked, ctx))


def compile_refusal(source: str):
    """The DError compiling `source` against the fake catalog raises (it must raise)."""
    import pytest

    from dtrace_nb.errors import DError
    from dtrace_nb.runtime.compile import compile_program
    from dtrace_nb.session import SessionConfig

    with pytest.raises(DError) as info:
        compile_program(SessionConfig(source), fake_catalog())
    return info.value
