"""DTrace's built-in translated structures and the built-ins that give them: `curpsinfo`
(psinfo_t *), `curlwpsinfo` (lwpsinfo_t *), `curcpu` (cpuinfo_t *), `fds[fd]` (fileinfo_t),
`uregs[R_*]`, `caller`/`ucaller`, with the constants scripts use alongside them (R_*,
PR_MODEL_*, SSLEEP...).

This module only says what the language sees: each type's members and their D types, and
for a member Linux cannot supply the one-line reason a script gets. How each member is
computed from the kernel's structures (task_struct, files_struct, dentry...) is the code
generator's (codegen/translated.py), after dtrace-utils' translators (procfs.d, io.d,
sched.d).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.types import (CHAR, INT, DType, IntType, MemberType, PtrType, StringType,
                                  TranslatedType, native_type)


@dataclass(frozen=True)
class BuiltinStruct(TranslatedType):
    """A translated struct the language predefines. `pointer`: reached with `->`
    (curpsinfo), else it is a struct value reached with `.` (fds[0])."""

    pointer: bool = True


@dataclass(frozen=True)
class BuiltinPtr(PtrType):
    """A pointer to a built-in translated struct that is also a value (curcpu: an address,
    as in dtrace-utils), whose members `->` reads."""

    struct: Optional[BuiltinStruct] = None


def struct_of(t: DType) -> Optional[BuiltinStruct]:
    """The built-in struct `t` is, or points to (None for other types)."""
    if isinstance(t, BuiltinStruct):
        return t
    return t.struct if isinstance(t, BuiltinPtr) else None


def _struct(name: str, pointer: bool, members: tuple[tuple[str, str], ...]) -> BuiltinStruct:
    out = []
    for member, dtype in members:
        t: DType = StringType(int(dtype[7:-1])) if dtype.startswith("string[") \
            else TIMESTRUC if dtype == "timestruc_t" else native_type(dtype)
        # c_expr names the member for the code generator: "psinfo_t.pr_pid"
        out.append(MemberType(member, t, f"{name}.{member}"))
    return BuiltinStruct(name, tuple(out), pointer)


# a time as seconds and nanoseconds (psinfo_t.pr_start, lwpsinfo_t.pr_start)
TIMESTRUC = BuiltinStruct("timestruc_t", (
    MemberType("tv_sec", native_type("int64_t"), "timestruc_t.tv_sec"),
    MemberType("tv_nsec", native_type("long"), "timestruc_t.tv_nsec")), False)

_PSINFO_MEMBERS = (
    ("pr_nlwp", "int"), ("pr_pid", "pid_t"), ("pr_ppid", "pid_t"), ("pr_pgid", "pid_t"),
    ("pr_sid", "pid_t"), ("pr_uid", "uid_t"), ("pr_euid", "uid_t"), ("pr_gid", "gid_t"),
    ("pr_egid", "gid_t"), ("pr_addr", "uintptr_t"), ("pr_ttydev", "uintptr_t"),
    ("pr_fname", "string[16]"), ("pr_psargs", "string[80]"), ("pr_wstat", "int"),
    ("pr_argc", "int"), ("pr_argv", "uintptr_t"), ("pr_envp", "uintptr_t"),
    ("pr_dmodel", "char"), ("pr_start", "timestruc_t"), ("pr_taskid", "id_t"),
    ("pr_projid", "id_t"), ("pr_nzomb", "int"), ("pr_poolid", "id_t"), ("pr_zoneid", "id_t"),
    ("pr_contract", "id_t"),
)
_LWPSINFO_MEMBERS = (
    ("pr_flag", "int"), ("pr_lwpid", "id_t"), ("pr_addr", "uintptr_t"),
    ("pr_wchan", "uintptr_t"), ("pr_stype", "char"), ("pr_state", "char"),
    ("pr_sname", "char"), ("pr_pri", "int"), ("pr_name", "string[16]"),
    ("pr_onpro", "processorid_t"), ("pr_start", "timestruc_t"),
)
_CPUINFO_MEMBERS = (
    ("cpu_id", "processorid_t"), ("cpu_pset", "id_t"), ("cpu_chip", "id_t"),
    ("cpu_lgrp", "id_t"),
)
_FILEINFO_MEMBERS = (
    ("fi_name", "string[256]"), ("fi_dirname", "string[256]"),
    ("fi_pathname", "string[256]"), ("fi_offset", "loff_t"), ("fi_fs", "string[32]"),
    ("fi_mount", "string[256]"), ("fi_oflags", "int"),
)

PSINFO = _struct("psinfo_t", True, _PSINFO_MEMBERS)
LWPSINFO = _struct("lwpsinfo_t", True, _LWPSINFO_MEMBERS)
CPUINFO = _struct("cpuinfo_t", True, _CPUINFO_MEMBERS)
FILEINFO = _struct("fileinfo_t", False, _FILEINFO_MEMBERS)

# built-in variables of a translated type, and scalar ones computed from the stack
TRANSLATED_VARIABLES: dict[str, DType] = {
    "curpsinfo": PSINFO, "curlwpsinfo": LWPSINFO,
    "curcpu": BuiltinPtr(8, False, "cpuinfo_t *", None, CPUINFO),
    "caller": PtrType(8, False, "uintptr_t", None),
    "ucaller": PtrType(8, False, "uint64_t", None),
    # sched.d's inlines of curcpu's members
    "pset": IntType(4, True, "psetid_t"), "chip": IntType(4, True, "chipid_t"),
    "lgrp": IntType(4, True, "lgrp_id_t"),
}
INDEXED_VARIABLES = ("fds", "uregs")
# strings of strsize bytes: the current process's working and root directories (procfs.d)
PATH_VARIABLES = ("cwd", "root")

# members Linux has no equivalent for: psinfo_t and lwpsinfo_t are Solaris' /proc structures
_WHY_NOT = {
    "pr_flag": "process flags are Solaris' /proc flags (deprecated in DTrace too)",
    "pr_size": "the process image size has no single task_struct field; read /proc/PID/status",
    "pr_rssize": "the resident set size is kept in per-CPU counters a probe cannot add up",
    "pr_pctcpu": "Linux keeps no decayed CPU percentage per task",
    "pr_pctmem": "Linux keeps no memory percentage per task",
    "pr_time": "per-process CPU time is summed over threads by the kernel only on demand",
    "pr_ctime": "children's CPU time is summed by the kernel only on demand",
    "pr_nice": "DTrace's lwpsinfo_t translator leaves it out (the nice value is "
               "curlwpsinfo->pr_pri - 120 for a normal thread)",
    "pr_lwp": "use curlwpsinfo for the current thread",
    "pr_syscall": "the current system call number is not kept in task_struct",
    "pr_oldpri": "Solaris' old priority has no Linux equivalent (use pr_pri)",
    "pr_cpu": "Solaris' CPU usage estimate has no Linux equivalent",
    "pr_clname": "Linux scheduling classes have no name in task_struct",
    "pr_bindpro": "processor binding is an affinity mask on Linux, not one CPU",
    "pr_bindpset": "Linux has no processor sets",
    "pr_lgrp": "use curcpu->cpu_lgrp (the NUMA node of the CPU)",
    "pr_pad": "padding",
}


def member_type(of: DType, e: ast.Member) -> MemberType:
    """The member `e` names in built-in struct `of` (or the one it points to), or a
    located error saying why not."""
    t = struct_of(of)
    assert t is not None
    if t.pointer and not e.arrow:
        raise DCompileError(f"{t} * is a pointer: use -> to reach its members", e.span)
    if not t.pointer and e.arrow:
        raise DCompileError(f"{t} is a struct, not a pointer: use . to reach its members",
                            e.span)
    m = t.member(e.name)
    if m is not None:
        return m
    if e.name in _WHY_NOT:
        # DTrace's message for a member its translator does not define; why, for Linux
        raise DCompileError(f"translator does not define conversion for member: {e.name}",
                            e.span, tag="D_XLATE_NOCONV",
                            hint=f"{t}.{e.name} on Linux: {_WHY_NOT[e.name]}")
    raise DCompileError(f"{t} has no member '{e.name}'", e.span,
                        hint="members: " + ", ".join(x.name for x in t.members))


def index_type(name: str, e: ast.Index, index_types: list[DType],
               n: Optional[int]) -> DType:
    """The type of `fds[fd]` or `uregs[R_x]`, given the types of the indexes and the value
    of the first one if it is a constant."""
    if len(e.indexes) != 1:
        raise DCompileError(f"{name}[] takes one index", e.span)
    idx = e.indexes[0]
    if not index_types[0].is_int:
        raise DCompileError(f"the {name}[] index must be an integer", idx.span)
    if name == "fds":
        return FILEINFO
    if n is None:  # DTrace's message, with the prototype and the argument's type
        raise DCompileError("uregs[ ] argument #1 is incompatible with prototype:\n"
                            f"\tprototype: integer constant\n\t argument: {index_types[0]}",
                            idx.span, tag="D_PROTO_ARG",
                            hint="index uregs[] with a constant: R_PC, R_SP, R_RAX...")
    if not 0 <= n < UREGS_COUNT:
        raise DCompileError(f"uregs[]: index out of bounds ({n})", idx.span, tag="D_UNKNOWN",
                            hint=f"x86_64 has {UREGS_COUNT} registers: R_R15 (0) .. "
                                 "R_TRAPNO (25)")
    return native_type("uint64_t")


def constant(e: ast.Expr, is_variable: bool) -> Optional[int]:
    """The value of a predefined constant named by `e` (not when a script variable of that
    name exists)."""
    if isinstance(e, ast.Ident) and not is_variable:
        return CONSTANTS.get(e.name)
    return None


# x86_64 register indices of uregs[] (DTrace's regs.d for amd64): words of struct pt_regs,
# then four members of task_struct.thread and the trap number
_REGS = ("R_R15", "R_R14", "R_R13", "R_R12", "R_RBP", "R_RBX", "R_R11", "R_R10", "R_R9",
         "R_R8", "R_RAX", "R_RCX", "R_RDX", "R_RSI", "R_RDI", "R_ERR", "R_RIP", "R_CS",
         "R_RFL", "R_RSP", "R_SS", "R_DS", "R_ES", "R_FS", "R_GS", "R_TRAPNO")
PT_REGS_WORDS = 21  # R_R15 .. R_SS are words of struct pt_regs
UREGS_COUNT = len(_REGS)
_REG_ALIASES = {"R_EBX": "R_RBX", "R_ECX": "R_RCX", "R_EDX": "R_RDX", "R_ESI": "R_RSI",
                "R_EDI": "R_RDI", "R_EBP": "R_RBP", "R_EAX": "R_RAX", "R_EIP": "R_RIP",
                "R_EFL": "R_RFL", "R_ESP": "R_RSP", "R_PC": "R_RIP", "R_FP": "R_RBP",
                "R_SP": "R_RSP", "R_PS": "R_RFL", "R_R0": "R_RAX", "R_R1": "R_RBX"}
_REG_INDEX = {r: i for i, r in enumerate(_REGS)}

CONSTANTS: dict[str, int] = {
    **_REG_INDEX, **{a: _REG_INDEX[r] for a, r in _REG_ALIASES.items()},
    "PR_MODEL_ILP32": 1, "PR_MODEL_LP64": 2,
    "SSLEEP": 1, "SRUN": 2, "SZOMB": 3, "SSTOP": 4, "SIDL": 5, "SONPROC": 6, "SWAIT": 7,
    "PR_STOPPED": 0x1, "PR_ISTOP": 0x2, "PR_DSTOP": 0x4, "PR_IDLE": 0x10000000,
}
CONSTANT_TYPES: dict[str, IntType] = {n: CHAR if n.startswith(("PR_MODEL", "S")) else INT
                                      for n in CONSTANTS}
