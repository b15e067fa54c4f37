"""Translators from a kernel `struct task_struct *` to DTrace's psinfo_t and lwpsinfo_t.

Shared by the stable providers (proc, sched) whose probes hand a task to the script:
`args[0]->pr_pid` reads the task the kernel passed, not the current one. Member offsets
come from the running kernel's BTF (dtrace_nb.runtime.btf), never from headers, and every
read is the provider API's safe struct read, so a bad pointer reads as 0 instead of failing.

Kernel structures read: task_struct.{pid, tgid, comm, real_parent, cred, prio, exit_code,
__state, thread_info.cpu, signal}, cred.{uid, gid, euid, egid} (kuid_t/kgid_t: a u32 `val`
at offset 0), signal_struct.{nr_threads, pids}, pid.numbers[0].nr (the process group and
session ids, as dtrace-utils' procfs.d reads them).
"""

from __future__ import annotations

from functools import lru_cache

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import ArgInfo, MemberInfo, ThreadContext
from dtrace_nb.runtime import btf

_TASK_MEMBERS = ("pid", "tgid", "comm", "real_parent", "cred", "prio", "exit_code",
                 "__state", "thread_info.cpu", "signal")
_CRED_MEMBERS = ("uid", "gid", "euid", "egid")
# other structs' members: offsets key -> (struct, member path)
_OTHER_MEMBERS = {"signal.nr_threads": ("signal_struct", "nr_threads"),
                  "signal.pids": ("signal_struct", "pids"),
                  "pid.numbers": ("pid", "numbers")}
PIDTYPE_PGID, PIDTYPE_SID = 2, 3  # enum pid_type since Linux 4.19


@lru_cache(maxsize=1)
def offsets() -> dict[str, int]:
    out = {}
    for m in _TASK_MEMBERS:
        off = btf.path_offset("task_struct", m)
        if off is None:
            raise DEnvironmentError(
                f"this kernel's BTF does not describe task_struct.{m}",
                hint="the proc and sched providers read tasks through BTF "
                     "(/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y)")
        out[m] = off
    for m in _CRED_MEMBERS:
        off = btf.member_offset("cred", m)
        if off is None:
            raise DEnvironmentError(f"this kernel's BTF does not describe cred.{m}")
        out["cred." + m] = off
    for key, (struct_name, path) in _OTHER_MEMBERS.items():
        off = btf.path_offset(struct_name, path)
        if off is None:
            raise DEnvironmentError(f"this kernel's BTF does not describe {struct_name}.{path}")
        out[key] = off
    return out


class TaskTranslators:
    """psinfo_t / lwpsinfo_t members and task reads for one set of member offsets (the
    running kernel's, from `offsets()`; a fixed set in the tests' fake catalog)."""

    def __init__(self, offs: dict[str, int]):
        self.offs = offs

    def read32(self, task: str, member: str, signed: bool = True) -> str:
        """C: a 32-bit member of the task at C expression `task`."""
        return api.struct_member(task, self.offs[member], "s32" if signed else "u32")

    def read_ptr(self, task: str, member: str) -> str:
        return api.struct_member(task, self.offs[member])

    def cred32(self, task: str, member: str) -> str:
        return api.struct_member(self.read_ptr(task, "cred"), self.offs["cred." + member],
                                 "u32")

    def comm_address(self, task: str) -> str:
        return api.member_address(task, self.offs["comm"])

    def pid_of_type(self, task: str, pidtype: int) -> str:
        """The process group (PIDTYPE_PGID) or session (PIDTYPE_SID) id of the task."""
        signal = self.read_ptr(task, "signal")
        pid = api.struct_member(signal, self.offs["signal.pids"] + 8 * pidtype)
        return api.struct_member(pid, self.offs["pid.numbers"], "s32")  # numbers[0].nr

    def state_of(self, task: str, sname: bool) -> str:
        """lwpsinfo_t pr_state (SSLEEP, SRUN...) or pr_sname ('S', 'R'...) of the task's
        __state, as procfs.d maps Linux's task states."""
        st = api.local("st")
        rules = ((0x3, "'S'", 1), (0xC, "'T'", 4), (0xB0, "'Z'", 3), (0x300, "'W'", 7))
        value = "'R'" if sname else "2"
        for mask, letter, number in reversed(rules):
            value = f"(({st} & {mask:#x}) ? {letter if sname else number} : {value})"
        return api.let("u32", "st", self.read32(task, "__state", signed=False), value)

    def psinfo_members(self) -> tuple[MemberInfo, ...]:
        """psinfo_t (DTrace's process information) of the task at the argument."""
        return (
            api.member("pr_pid", "pid_t", lambda t: self.read32(t, "tgid")),
            api.member("pr_ppid", "pid_t",
                       lambda t: self.read32(self.read_ptr(t, "real_parent"), "tgid")),
            api.member("pr_uid", "uid_t", lambda t: self.cred32(t, "uid")),
            api.member("pr_gid", "gid_t", lambda t: self.cred32(t, "gid")),
            api.member("pr_euid", "uid_t", lambda t: self.cred32(t, "euid")),
            api.member("pr_egid", "gid_t", lambda t: self.cred32(t, "egid")),
            api.member("pr_fname", "string", self.comm_address, string_size=16),
            api.member("pr_nlwp", "int",
                       lambda t: api.struct_member(self.read_ptr(t, "signal"),
                                                   self.offs["signal.nr_threads"], "s32")),
            api.member("pr_pgid", "pid_t", lambda t: self.pid_of_type(t, PIDTYPE_PGID)),
            api.member("pr_sid", "pid_t", lambda t: self.pid_of_type(t, PIDTYPE_SID)),
            api.member("pr_addr", "uintptr_t", lambda t: t),
            api.member("pr_wstat", "int", lambda t: self.read32(t, "exit_code")),
            api.member("pr_dmodel", "char", lambda t: "2"),  # PR_MODEL_LP64
        )

    def lwpsinfo_members(self) -> tuple[MemberInfo, ...]:
        """lwpsinfo_t (DTrace's thread information) of the task at the argument."""
        return (
            api.member("pr_lwpid", "id_t", lambda t: self.read32(t, "pid")),
            api.member("pr_pri", "int", lambda t: self.read32(t, "prio")),
            api.member("pr_name", "string", self.comm_address, string_size=16),
            api.member("pr_addr", "uintptr_t", lambda t: t),
            api.member("pr_onpro", "processorid_t",
                       lambda t: self.read32(t, "thread_info.cpu")),
            api.member("pr_state", "char", lambda t: self.state_of(t, False)),
            api.member("pr_sname", "char", lambda t: self.state_of(t, True)),
            api.member("pr_flag", "int",  # __TASK_STOPPED: PR_STOPPED
                       lambda t: f"(({self.read32(t, '__state', False)} & 0x4) ? 1 : 0)"),
        )

    def psinfo_arg(self, name: str = "") -> ArgInfo:
        return api.translated_arg("struct task_struct *", "psinfo_t *", self.psinfo_members(),
                                  name)

    def lwpsinfo_arg(self, name: str = "") -> ArgInfo:
        return api.translated_arg("struct task_struct *", "lwpsinfo_t *",
                                  self.lwpsinfo_members(), name)

    def subject_thread(self, task: str, stacks: str = "") -> ThreadContext:
        """The thread context of the task at `task` rather than the current thread's
        (sched's on-cpu fires in the incoming thread): every thread built-in and self->."""
        return api.thread_context(
            pid=self.read32(task, "tgid"), tid=self.read32(task, "pid"),
            ppid=self.read32(self.read_ptr(task, "real_parent"), "tgid"),
            uid=self.cred32(task, "uid"), gid=self.cred32(task, "gid"),
            execname=self.comm_address(task), curthread=task, stacks=stacks)


def task_translators(offs: dict[str, int]) -> TaskTranslators:
    return TaskTranslators(offs)


def running() -> TaskTranslators:
    """The translators of the running kernel (offsets from its BTF)."""
    return TaskTranslators(offsets())


def psinfo_arg(name: str = "") -> ArgInfo:
    return running().psinfo_arg(name)


def lwpsinfo_arg(name: str = "") -> ArgInfo:
    return running().lwpsinfo_arg(name)


def check_raw_tracepoint(name: str, expected: tuple[str, ...]) -> None:
    """Refuse clearly when a raw tracepoint's prototype is not the one a translator reads."""
    found = btf.raw_tracepoint_params(name)
    if found is None:
        return  # no BTF for it: trust the prototype documented by the provider
    if tuple(found[:len(expected)]) != expected:
        raise DEnvironmentError(
            f"raw tracepoint {name} has arguments ({', '.join(found)}) on this kernel, "
            f"not ({', '.join(expected)}) as this provider expects",
            hint="the provider needs updating for this kernel version")
