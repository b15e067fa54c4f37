"""Translators from a kernel `struct task_struct *` to DTrace's psinfo_t and lwpsinfo_t.

Shared by the stable providers (proc, sched) whose probes hand a task to the script:
`args[0]->pr_pid` reads the task the kernel passed, not the current one. Member offsets
come from the running kernel's BTF (dtrace_nb.runtime.btf), never from headers, and every
read goes through bpf_probe_read_kernel, so a bad pointer reads as 0 instead of failing.

Kernel structures read: task_struct.{pid, tgid, comm, real_parent, cred, prio, exit_code},
cred.{uid, gid, euid, egid} (kuid_t/kgid_t: a u32 `val` at offset 0).
"""

from __future__ import annotations

from functools import lru_cache

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import ArgInfo, MemberInfo
from dtrace_nb.runtime import btf

_TASK_MEMBERS = ("pid", "tgid", "comm", "real_parent", "cred", "prio", "exit_code")
_CRED_MEMBERS = ("uid", "gid", "euid", "egid")


@lru_cache(maxsize=1)
def offsets() -> dict[str, int]:
    out = {}
    for m in _TASK_MEMBERS:
        off = btf.member_offset("task_struct", m)
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
    return out


def read32(task: str, member: str, signed: bool = True) -> str:
    """C: a 32-bit member of the task at C expression `task`."""
    cast = "s32" if signed else "u32"
    return f"(({cast})dt_kread_u64((void *)(({task}) + {offsets()[member]})))"


def read_ptr(task: str, member: str) -> str:
    return f"dt_kread_u64((void *)(({task}) + {offsets()[member]}))"


def cred32(task: str, member: str) -> str:
    return (f"((u32)dt_kread_u64((void *)({read_ptr(task, 'cred')} + "
            f"{offsets()['cred.' + member]})))")


def comm_address(task: str) -> str:
    return f"(({task}) + {offsets()['comm']})"


def psinfo_members() -> tuple[MemberInfo, ...]:
    """psinfo_t (DTrace's process information) of the task whose address is {arg}."""
    t = "{arg}"
    return (
        MemberInfo("pr_pid", "pid_t", read32(t, "tgid")),
        MemberInfo("pr_ppid", "pid_t", read32(read_ptr(t, "real_parent"), "tgid")),
        MemberInfo("pr_uid", "uid_t", cred32(t, "uid")),
        MemberInfo("pr_gid", "gid_t", cred32(t, "gid")),
        MemberInfo("pr_euid", "uid_t", cred32(t, "euid")),
        MemberInfo("pr_egid", "gid_t", cred32(t, "egid")),
        MemberInfo("pr_fname", "string", comm_address(t), string_size=16),
    )


def lwpsinfo_members() -> tuple[MemberInfo, ...]:
    """lwpsinfo_t (DTrace's thread information) of the task whose address is {arg}."""
    t = "{arg}"
    return (
        MemberInfo("pr_lwpid", "id_t", read32(t, "pid")),
        MemberInfo("pr_pri", "int", read32(t, "prio")),
        MemberInfo("pr_name", "string", comm_address(t), string_size=16),
    )


def psinfo_arg(name: str = "") -> ArgInfo:
    return ArgInfo("struct task_struct *", "psinfo_t *", name, members=psinfo_members())


def lwpsinfo_arg(name: str = "") -> ArgInfo:
    return ArgInfo("struct task_struct *", "lwpsinfo_t *", name, members=lwpsinfo_members())


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
