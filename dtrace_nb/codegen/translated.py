"""C for DTrace's built-in translated structures (lang/translated.py says what they are):
how each member of psinfo_t, lwpsinfo_t, cpuinfo_t and fileinfo_t is computed from the
current task's kernel structures, after dtrace-utils' translators (procfs.d, io.d,
sched.d); uregs[] and caller. Reads go through the provider API's safe struct reads; the
longer computations (paths, arguments, thread states) are translated.h's.

Every offset is a DT_OFF_* macro whose value the runtime takes from the running kernel's
BTF (`KERNEL_OFFSETS`), so no kernel header is trusted for a layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.codegen.cwriter import stmt_expr
from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.check import const_value
from dtrace_nb.lang.translated import PT_REGS_WORDS, struct_of

# the expression emitter (codegen/expressions.py), which calls this module: not imported,
# as that would be an import circle
Emitter = Any


@dataclass
class StringMember:
    """A string member's value, for the emitter's StrVal: `size` bytes at `ptr` once `pre`
    ran, or the current task's comm."""

    size: int
    ptr: str = ""
    pre: list[str] = field(default_factory=list)
    comm: bool = False

# macro -> (kernel struct, member path through embedded structs)
KERNEL_OFFSETS: dict[str, tuple[str, str]] = {
    "DT_OFF_TASK_PID": ("task_struct", "pid"),
    "DT_OFF_TASK_TGID": ("task_struct", "tgid"),
    "DT_OFF_TASK_COMM": ("task_struct", "comm"),
    "DT_OFF_TASK_REAL_PARENT": ("task_struct", "real_parent"),
    "DT_OFF_TASK_CRED": ("task_struct", "cred"),
    "DT_OFF_TASK_PRIO": ("task_struct", "prio"),
    "DT_OFF_TASK_EXIT_CODE": ("task_struct", "exit_code"),
    "DT_OFF_TASK_STATE": ("task_struct", "__state"),
    "DT_OFF_TASK_CPU": ("task_struct", "thread_info.cpu"),
    "DT_OFF_TASK_SIGNAL": ("task_struct", "signal"),
    "DT_OFF_TASK_FILES": ("task_struct", "files"),
    "DT_OFF_TASK_MM": ("task_struct", "mm"),
    "DT_OFF_TASK_THREAD": ("task_struct", "thread"),
    "DT_OFF_TASK_GROUP_LEADER": ("task_struct", "group_leader"),
    "DT_OFF_TASK_START_TIME": ("task_struct", "start_time"),
    "DT_OFF_TASK_FS": ("task_struct", "fs"),
    "DT_OFF_FS_PWD_MNT": ("fs_struct", "pwd.mnt"),
    "DT_OFF_FS_PWD_DENTRY": ("fs_struct", "pwd.dentry"),
    "DT_OFF_FS_ROOT_MNT": ("fs_struct", "root.mnt"),
    "DT_OFF_FS_ROOT_DENTRY": ("fs_struct", "root.dentry"),
    "DT_OFF_CRED_UID": ("cred", "uid"),
    "DT_OFF_CRED_GID": ("cred", "gid"),
    "DT_OFF_CRED_EUID": ("cred", "euid"),
    "DT_OFF_CRED_EGID": ("cred", "egid"),
    "DT_OFF_SIGNAL_NR_THREADS": ("signal_struct", "nr_threads"),
    "DT_OFF_SIGNAL_PIDS": ("signal_struct", "pids"),
    "DT_OFF_SIGNAL_TTY": ("signal_struct", "tty"),
    "DT_OFF_PID_NUMBERS": ("pid", "numbers"),
    "DT_OFF_UPID_NR": ("upid", "nr"),
    "DT_OFF_MM_ARG_START": ("mm_struct", "arg_start"),
    "DT_OFF_MM_ARG_END": ("mm_struct", "arg_end"),
    "DT_OFF_MM_START_STACK": ("mm_struct", "start_stack"),
    "DT_OFF_FILES_FDT": ("files_struct", "fdt"),
    "DT_OFF_FDTABLE_MAX_FDS": ("fdtable", "max_fds"),
    "DT_OFF_FDTABLE_FD": ("fdtable", "fd"),
    "DT_OFF_FILE_F_PATH_MNT": ("file", "f_path.mnt"),
    "DT_OFF_FILE_F_PATH_DENTRY": ("file", "f_path.dentry"),
    "DT_OFF_FILE_F_POS": ("file", "f_pos"),
    "DT_OFF_FILE_F_FLAGS": ("file", "f_flags"),
    "DT_OFF_DENTRY_D_PARENT": ("dentry", "d_parent"),
    "DT_OFF_DENTRY_D_NAME_NAME": ("dentry", "d_name.name"),
    "DT_OFF_DENTRY_D_INODE": ("dentry", "d_inode"),
    "DT_OFF_INODE_I_INO": ("inode", "i_ino"),
    "DT_OFF_VFSMOUNT_MNT_ROOT": ("vfsmount", "mnt_root"),
    "DT_OFF_VFSMOUNT_MNT_SB": ("vfsmount", "mnt_sb"),
    "DT_OFF_MOUNT_MNT": ("mount", "mnt"),
    "DT_OFF_MOUNT_MNT_PARENT": ("mount", "mnt_parent"),
    "DT_OFF_MOUNT_MNT_MOUNTPOINT": ("mount", "mnt_mountpoint"),
    "DT_OFF_SUPER_BLOCK_S_TYPE": ("super_block", "s_type"),
    "DT_OFF_FILE_SYSTEM_TYPE_NAME": ("file_system_type", "name"),
    "DT_OFF_THREAD_DS": ("thread_struct", "ds"),
    "DT_OFF_THREAD_ES": ("thread_struct", "es"),
    "DT_OFF_THREAD_FSBASE": ("thread_struct", "fsbase"),
    "DT_OFF_THREAD_GSBASE": ("thread_struct", "gsbase"),
    "DT_OFF_THREAD_TRAP_NR": ("thread_struct", "trap_nr"),
}
PIDTYPE_PGID, PIDTYPE_SID = 2, 3  # enum pid_type since Linux 4.19
UPID_SIZE = 16  # struct upid { int nr; struct pid_namespace *ns; }
PR_MODEL_LP64 = 2
_TASK = api.CURRENT_TASK


def _read(ptr: str, macro: str, ctype: str = "") -> str:
    """The member at offset macro `macro` of the kernel struct at `ptr`, read safely."""
    assert macro in KERNEL_OFFSETS
    return api.kernel_read(api.member_address(ptr, macro), ctype)  # type: ignore[arg-type]


def _signal() -> str:
    return _read(_TASK, "DT_OFF_TASK_SIGNAL")


def _cred(member: str) -> str:
    return _read(_read(_TASK, "DT_OFF_TASK_CRED"), f"DT_OFF_CRED_{member}", "u32")


def _pid_of_type(pidtype: int) -> str:
    """The number (in the initial namespace) of the task's process group or session."""
    pid = api.kernel_read(f"{_signal()} + DT_OFF_SIGNAL_PIDS + {8 * pidtype}")
    return _read(f"{pid} + DT_OFF_PID_NUMBERS", "DT_OFF_UPID_NR", "s32")


def _start_stack() -> str:
    return _read(_read(_TASK, "DT_OFF_TASK_MM"), "DT_OFF_MM_START_STACK")


def _tty() -> str:
    tty = api.kernel_read(f"{_signal()} + DT_OFF_SIGNAL_TTY")
    return api.let("u64", "tty", tty, f"({api.local('tty')} ? {api.local('tty')} : (u64)-1)")


def _thread_state(sname: int) -> str:
    return f"((s8)dt_lwp_state((u32){_read(_TASK, 'DT_OFF_TASK_STATE')}, {sname}))"


# "struct.member" -> C of an integer member of the current task's / CPU's structure
_INT_MEMBERS: dict[str, Callable[[], str]] = {
    "psinfo_t.pr_nlwp": lambda: _read(_signal(), "DT_OFF_SIGNAL_NR_THREADS", "s32"),
    "psinfo_t.pr_pid": lambda: _read(_TASK, "DT_OFF_TASK_TGID", "s32"),
    "psinfo_t.pr_ppid": lambda: _read(_read(_TASK, "DT_OFF_TASK_REAL_PARENT"),
                                      "DT_OFF_TASK_TGID", "s32"),
    "psinfo_t.pr_pgid": lambda: _pid_of_type(PIDTYPE_PGID),
    "psinfo_t.pr_sid": lambda: _pid_of_type(PIDTYPE_SID),
    "psinfo_t.pr_uid": lambda: _cred("UID"),
    "psinfo_t.pr_euid": lambda: _cred("EUID"),
    "psinfo_t.pr_gid": lambda: _cred("GID"),
    "psinfo_t.pr_egid": lambda: _cred("EGID"),
    "psinfo_t.pr_addr": lambda: _TASK,
    "psinfo_t.pr_ttydev": _tty,
    "psinfo_t.pr_wstat": lambda: _read(_TASK, "DT_OFF_TASK_EXIT_CODE", "s32"),
    "psinfo_t.pr_dmodel": lambda: str(PR_MODEL_LP64),
    # exec leaves argc at the initial stack pointer, then argv[], NULL, envp[]
    "psinfo_t.pr_argc": lambda: api.user_read(_start_stack(), "s64"),
    "psinfo_t.pr_argv": lambda: f"({_start_stack()} + 8)",
    "psinfo_t.pr_envp": lambda: f"({_start_stack()} + 8 * ({api.user_read(_start_stack(), 's64')}"
                                " + 2))",
    # Solaris' tasks, projects, pools, zones and contracts: 0 on Linux, as in dtrace-utils
    **{f"psinfo_t.{m}": (lambda: "0") for m in ("pr_taskid", "pr_projid", "pr_nzomb",
                                                  "pr_poolid", "pr_zoneid", "pr_contract")},
    "lwpsinfo_t.pr_flag": lambda: f"(({_read(_TASK, 'DT_OFF_TASK_STATE', 'u32')} & 0x4) "
                                  "? 1 : 0)",  # __TASK_STOPPED: PR_STOPPED
    "lwpsinfo_t.pr_lwpid": lambda: _read(_TASK, "DT_OFF_TASK_PID", "s32"),
    "lwpsinfo_t.pr_addr": lambda: _TASK,
    "lwpsinfo_t.pr_wchan": lambda: "0",
    "lwpsinfo_t.pr_stype": lambda: "0",
    "lwpsinfo_t.pr_state": lambda: _thread_state(0),
    "lwpsinfo_t.pr_sname": lambda: _thread_state(1),
    "lwpsinfo_t.pr_pri": lambda: _read(_TASK, "DT_OFF_TASK_PRIO", "s32"),
    "lwpsinfo_t.pr_onpro": lambda: _read(_TASK, "DT_OFF_TASK_CPU", "s32"),
    "cpuinfo_t.cpu_id": lambda: "((s32)bpf_get_smp_processor_id())",
    "cpuinfo_t.cpu_pset": lambda: "0",  # Linux has no processor sets (0, as dtrace-utils)
    "cpuinfo_t.cpu_chip": lambda: "dt_cpu_chip()",
    "cpuinfo_t.cpu_lgrp": lambda: "((s32)bpf_get_numa_node_id())",
}
# fileinfo_t integer members: the struct file member and its C type
_FILE_INTS = {"fi_offset": ("DT_OFF_FILE_F_POS", "s64"),
              "fi_oflags": ("DT_OFF_FILE_F_FLAGS", "u32")}
# fileinfo_t members that are strings: dt_file_string()'s `which`
_FILE_STRINGS = {"fi_pathname": 0, "fi_mount": 1, "fi_name": 2, "fi_fs": 3}
# uregs[] past struct pt_regs: members of task_struct.thread (x86_64), and their C types
_THREAD_REGS = (("DT_OFF_THREAD_DS", "u16"), ("DT_OFF_THREAD_ES", "u16"),
                ("DT_OFF_THREAD_FSBASE", "u64"), ("DT_OFF_THREAD_GSBASE", "u64"),
                ("DT_OFF_THREAD_TRAP_NR", "u64"))


def _needs(em: Emitter) -> None:
    em.fs.uses.update(("task", "translated"))


def _file(em: Emitter, e: ast.Member) -> str:
    """C of the struct file * of `fds[fd]`."""
    assert isinstance(e.base, ast.Index)
    return f"dt_fd_file((s64)({em.int_expr(e.base.indexes[0])}))"


def member_int(em: Emitter, e: ast.Member) -> str:
    """C of an integer member of a built-in translated struct."""
    _needs(em)
    t = struct_of(em.ty(e.base))
    assert t is not None
    if t.name == "fileinfo_t":
        f = em.fs.tmp("file")
        macro, ctype = _FILE_INTS[e.name]
        return stmt_expr([f"u64 {f} = {_file(em, e)};"],
                         f"(({em.ty(e).c_type()})({f} ? {_read(f, macro, ctype)} : 0))")
    if t.name == "timestruc_t":
        return _start_time(em, e)
    rule = _INT_MEMBERS.get(f"{t.name}.{e.name}")
    if rule is None:
        raise DCompileError(f"cannot generate code for {t}.{e.name}", e.span)
    return f"(({em.ty(e).c_type()})({rule()}))"


def _start_time(em: Emitter, e: ast.Member) -> str:
    """pr_start.tv_sec / .tv_nsec: the wall-clock time the process (its group leader's
    start) or the thread started, from task_struct.start_time (CLOCK_MONOTONIC ns)."""
    assert isinstance(e.base, ast.Member)
    outer = struct_of(em.ty(e.base.base))
    assert outer is not None
    task = _read(_TASK, "DT_OFF_TASK_GROUP_LEADER") if outer.name == "psinfo_t" else _TASK
    wall = f"({_read(task, 'DT_OFF_TASK_START_TIME')} + dt_walltime_offset())"
    part = f"({wall} / 1000000000ULL)" if e.name == "tv_sec" else f"({wall} % 1000000000ULL)"
    return f"(({em.ty(e).c_type()}){part})"


def member_string(em: Emitter, e: ast.Member) -> StringMember:
    """The value of a string member of a built-in translated struct."""
    _needs(em)
    t = struct_of(em.ty(e.base))
    assert t is not None
    size = min(em.ty(e).size, em.fs.res.strsize)
    key = f"{t.name}.{e.name}"
    if key in ("psinfo_t.pr_fname", "lwpsinfo_t.pr_name"):
        return StringMember(16, comm=True)
    buf = em.fs.alloc(2 * em.fs.res.strbuf)
    if key == "psinfo_t.pr_psargs":
        return StringMember(size, ptr=buf, pre=[f"dt_psargs({buf});"])
    if t.name == "fileinfo_t":
        if e.name in _FILE_STRINGS:
            return StringMember(size, ptr=buf, pre=[
                f"dt_file_string({buf}, {_file(em, e)}, {_FILE_STRINGS[e.name]});"])
        if e.name == "fi_dirname":
            path = em.fs.alloc(2 * em.fs.res.strbuf)
            f = em.fs.tmp("file")
            return StringMember(size, ptr=buf, pre=[
                f"u64 {f} = {_file(em, e)};",
                f"dt_file_string({path}, {f}, 0);",
                f"if ({f}) dt_dirname({buf}, {path}); else dt_put_none({buf});"])
    raise DCompileError(f"cannot generate code for {t}.{e.name}", e.span)


def path_variable(em: Emitter, name: str) -> StringMember:
    """`cwd` or `root`: d_path() of the current process's fs->pwd or fs->root."""
    _needs(em)
    buf = em.fs.alloc(2 * em.fs.res.strbuf)
    fs = _read(_TASK, "DT_OFF_TASK_FS")
    which = "PWD" if name == "cwd" else "ROOT"
    return StringMember(em.fs.res.strsize, ptr=buf, pre=[
        f"dt_d_path({buf}, {_read(fs, f'DT_OFF_FS_{which}_MNT')}, "
        f"{_read(fs, f'DT_OFF_FS_{which}_DENTRY')});"])


def uregs(em: Emitter, e: ast.Index) -> str:
    """C of `uregs[R_x]`: the current thread's saved user register."""
    _needs(em)
    n = const_value(e.indexes[0], em.fs.ann)
    assert n is not None  # the checker made it a constant in range
    if n < PT_REGS_WORDS:
        return f"dt_uregs({n})"
    macro, ctype = _THREAD_REGS[n - PT_REGS_WORDS]
    return f"((u64)({ctype}){_read(f'{_TASK} + DT_OFF_TASK_THREAD', macro)})"


# sched.d's inlines: curcpu members under a name of their own
_CPU_INLINES = {"pset": "cpuinfo_t.cpu_pset", "chip": "cpuinfo_t.cpu_chip",
                "lgrp": "cpuinfo_t.cpu_lgrp"}


def scalar(em: Emitter, name: str) -> str:
    """C of `caller`, `ucaller`, `pset`, `chip`, `lgrp` or `curcpu`."""
    _needs(em)  # translated.h, which reads task offsets elsewhere
    if name == "curcpu":
        # an address that is the current CPU's for the whole session, as dtrace-utils'
        # (the CPU's cpuinfo in a per-CPU map): here, a slot of the per-CPU scratch map
        em.fs.alloc(0)  # the function looks up the scratch map, whose base is dt_s
        return "dt_cpu_address(dt_s)"
    if name in _CPU_INLINES:
        return f"((s32)({_INT_MEMBERS[_CPU_INLINES[name]]()}))"
    return f"dt_caller(ctx, {'BPF_F_USER_STACK' if name == 'ucaller' else '0'})"
