"""The sysinfo provider: system activity counters, as DTrace's sysinfo probes (arg0 the
increment), each firing in the thread doing the counted work.

| probe | kernel hook | arg0 |
|---|---|---|
| syscall | raw tracepoint sys_enter | 1 per system call |
| sysread, syswrite | sys_enter of read pread64 readv preadv preadv2 / write pwrite64 writev pwritev pwritev2 | 1 per call |
| readch, writech | sys_exit of the same calls, when they moved bytes | the bytes read / written |
| sysexec | raw tracepoint sched_process_exec | 1 |
| sysfork | raw tracepoint sched_process_fork, when the child is a new process (not a thread) | 1 |
| pswitch | raw tracepoint sched_switch (in the thread leaving the CPU) | 1 |

x86-64 system call numbers. DTrace's buffer-cache, UFS and cpu_ticks counters have no
Linux hook and are not listed. Kernel structures read: task_struct.{pid, tgid} of
sched_process_fork's child (_task.py).
"""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.probes import ArgInfo
from dtrace_nb_providers import _task
from dtrace_nb_providers._stable import StableProbe, StableProvider, raw_hook

READS = (0, 17, 19, 295, 327)  # read pread64 readv preadv preadv2
WRITES = (1, 18, 20, 296, 328)  # write pwrite64 writev pwritev pwritev2
ARGS = (ArgInfo("uint64_t", "uint64_t", "increment"),)
ORIG_AX = api.saved_register("orig_ax")


def _one_of(expr: str, nums: tuple[int, ...]) -> str:
    return " || ".join(f"({expr}) == {n}" for n in nums)


def _calls(nums: tuple[int, ...] = ()):
    cond = (api.skip_unless(_one_of(api.raw_tracepoint_arg(1), nums)),) if nums else ()
    return lambda: [raw_hook("sys_enter", arg_exprs=("1",), notes=("1 per call",),
                             prologue=cond, includes=api.PT_REGS_INCLUDES)]


def _bytes(nums: tuple[int, ...]):
    ret = f"((s64){api.raw_tracepoint_arg(1)})"
    return lambda: [raw_hook("sys_exit", arg_exprs=(ret,), notes=("the bytes moved",),
                             prologue=(api.saved_user_regs(),
                                       api.skip_unless(f"({_one_of(ORIG_AX, nums)}) && {ret} > 0")),
                             includes=api.PT_REGS_INCLUDES)]


def _fork():
    t = _task.running()
    child = api.raw_tracepoint_arg(1)
    new_process = f"{t.read32(child, 'pid')} == {t.read32(child, 'tgid')}"
    _task.check_raw_tracepoint("sched_process_fork",
                               ("struct task_struct *", "struct task_struct *"))
    return [raw_hook("sched_process_fork", arg_exprs=("1",), notes=("1",),
                     prologue=(api.skip_unless(new_process),))]


class SysinfoProvider(StableProvider):
    name = "sysinfo"
    order = 48
    probes = (
        StableProbe("syscall", lambda: ARGS, _calls()),
        StableProbe("sysread", lambda: ARGS, _calls(READS)),
        StableProbe("syswrite", lambda: ARGS, _calls(WRITES)),
        StableProbe("readch", lambda: ARGS, _bytes(READS)),
        StableProbe("writech", lambda: ARGS, _bytes(WRITES)),
        StableProbe("sysexec", lambda: ARGS,
                    lambda: [raw_hook("sched_process_exec", arg_exprs=("1",), notes=("1",))]),
        StableProbe("sysfork", lambda: ARGS, _fork),
        StableProbe("pswitch", lambda: ARGS,
                    lambda: [raw_hook("sched_switch", arg_exprs=("1",), notes=("1",))]),
    )
