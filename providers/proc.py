"""The proc provider (stable): process and thread life cycle and signals, as in DTrace.

| probe | fires | kernel hook | arguments |
|---|---|---|---|
| exec | a process calls execve/execveat | tracepoints syscalls:sys_enter_execve, sys_enter_execveat | args[0] string: the path (user memory) |
| exec-success | an exec succeeded, in the new image | tracepoint sched:sched_process_exec | none |
| exec-failure | an exec failed | tracepoints syscalls:sys_exit_execve(at), ret < 0 | args[0] int: errno |
| create | a process is created (fork), in the parent | raw tracepoint sched_process_fork, child tgid == tid | args[0] psinfo_t *: the child |
| start | a new process first runs, in the child | raw tracepoint sys_exit of clone/fork/vfork/clone3 returning 0, tgid == tid | none |
| lwp-create | a thread is created, in the creator | raw tracepoint sched_process_fork, child tgid != tid | args[0] lwpsinfo_t *, args[1] psinfo_t *: the new thread |
| lwp-start | a new thread first runs | as start, tgid != tid | none |
| exit | a process exits (its last thread) | tracepoint sched:sched_process_exit with group_dead | args[0] int: CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3 |
| lwp-exit | a thread other than the last exits | same, without group_dead | none |
| signal-send | a signal is generated for a thread/process | raw tracepoint signal_generate | args[0] lwpsinfo_t *, args[1] psinfo_t *: the receiver; args[2] int: the signal |
| signal-handle | a signal is delivered to a handler | raw tracepoint signal_deliver | args[0] int: the signal; args[1] siginfo_t * (address); args[2] the handler's address |

Kernel structures read: task_struct (pid, tgid, comm, real_parent, cred, prio, exit_code)
and cred (uid, gid, euid, egid), by offsets from BTF (see _task.py); k_sigaction.sa.sa_handler
(offset from BTF). signal-handle fires for signals with a handler; default actions (kill,
stop) do not reach signal_deliver.
"""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.probes import ArgInfo
from dtrace_nb.runtime import btf
from dtrace_nb_providers import _task
from dtrace_nb_providers._stable import StableProbe, StableProvider, raw_hook, tracepoint_hook
from dtrace_nb_providers._tracepoint import field_expr

# x86-64 syscall numbers of the calls that create tasks (the child returns 0 from them)
CLONE_CALLS = (56, 57, 58, 435)  # clone, fork, vfork, clone3
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
INT = ArgInfo("int", "int")


def _exec_hooks():
    return [tracepoint_hook("syscalls", ev, arg_exprs=(field_expr("syscalls", ev, "filename"),),
                            notes=(f"the filename argument of {ev} (user memory)",))
            for ev in ("sys_enter_execve", "sys_enter_execveat")]


def _exec_failure_hooks():
    out = []
    for ev in ("sys_exit_execve", "sys_exit_execveat"):
        ret = field_expr("syscalls", ev, "ret")
        out.append(tracepoint_hook("syscalls", ev, prologue=(api.skip_if(f"(s64){ret} >= 0"),),
                                   arg_exprs=(f"(u64)(-(s64){ret})",),
                                   notes=("minus the return value of exec (the errno)",)))
    return out


def _fork_hooks(thread: bool):
    _task.check_raw_tracepoint("sched_process_fork",
                               ("struct task_struct *", "struct task_struct *"))
    child = api.raw_tracepoint_arg(1)
    test = "==" if thread else "!="
    task = _task.running()
    filt = api.skip_if(f"{task.read32(child, 'tgid')} {test} {task.read32(child, 'pid')}")
    if thread:
        return [raw_hook("sched_process_fork", prologue=(filt,), arg_exprs=(child, child),
                         notes=("the new thread (sched_process_fork's child task)",) * 2)]
    return [raw_hook("sched_process_fork", prologue=(filt,), arg_exprs=(child,),
                     notes=("the new process (sched_process_fork's child task)",))]


def _start_hooks(thread: bool):
    nr = api.local("nr")
    calls = " && ".join(f"{nr} != {n}" for n in CLONE_CALLS)
    test = "==" if thread else "!="
    return [raw_hook("sys_exit", prologue=(
        api.saved_user_regs(), api.declare("u64", "nr", api.saved_register("orig_ax")),
        api.skip_if(f"({calls}) || {api.raw_tracepoint_arg(1)} != 0"),
        api.skip_if(f"{api.CURRENT_TGID} {test} {api.CURRENT_TID}")),
        includes=api.PT_REGS_INCLUDES)]


def _exit_hooks(process: bool):
    group_dead = field_expr("sched", "sched_process_exit", "group_dead")
    filt = api.skip_if(f"{'!' if process else ''}{group_dead}")
    if not process:
        return [tracepoint_hook("sched", "sched_process_exit", prologue=(filt,))]
    code, c = _task.running().read32(api.CURRENT_TASK, "exit_code"), api.local("code")
    reason = api.let("s32", "code", code, f"(u64)(({c} & 0x7f) == 0 ? {CLD_EXITED} : "
                                          f"({c} & 0x80) ? {CLD_DUMPED} : {CLD_KILLED})")
    return [tracepoint_hook("sched", "sched_process_exit", prologue=(filt,),
                            arg_exprs=(reason,),
                            notes=("from task_struct.exit_code of the exiting task",))]


def _signal_send_hooks():
    _task.check_raw_tracepoint("signal_generate",
                               ("int", "struct kernel_siginfo *", "struct task_struct *"))
    task = api.raw_tracepoint_arg(2)
    return [raw_hook("signal_generate", arg_exprs=(task, task,
                                                   api.widen(api.raw_tracepoint_arg(0), "s32")),
                     notes=("the receiving task (signal_generate's task)",) * 2
                     + ("the signal number",))]


def _signal_handle_hooks():
    _task.check_raw_tracepoint("signal_deliver",
                               ("int", "struct kernel_siginfo *", "struct k_sigaction *"))
    sa = btf.member_offset("k_sigaction", "sa") or 0
    handler = (btf.member_offset("sigaction", "sa_handler") or 0) + sa
    return [raw_hook("signal_deliver", arg_exprs=(
        api.widen(api.raw_tracepoint_arg(0), "s32"), api.raw_tracepoint_arg(1),
        api.struct_member(api.raw_tracepoint_arg(2), handler)),
        notes=("the signal number", "the kernel_siginfo address",
               "k_sigaction.sa.sa_handler"))]


class ProcProvider(StableProvider):
    name = "proc"
    order = 40
    probes = (
        StableProbe("exec", lambda: (ArgInfo("char *", "string", "path", user_string=True),),
                    _exec_hooks),
        StableProbe("exec-success", lambda: (), lambda: [tracepoint_hook("sched",
                                                                           "sched_process_exec")]),
        StableProbe("exec-failure", lambda: (INT,), _exec_failure_hooks),
        StableProbe("create", lambda: (_task.psinfo_arg(),), lambda: _fork_hooks(False)),
        StableProbe("start", lambda: (), lambda: _start_hooks(False)),
        StableProbe("lwp-create", lambda: (_task.lwpsinfo_arg(), _task.psinfo_arg()),
                    lambda: _fork_hooks(True)),
        StableProbe("lwp-start", lambda: (), lambda: _start_hooks(True)),
        StableProbe("exit", lambda: (INT,), lambda: _exit_hooks(True)),
        StableProbe("lwp-exit", lambda: (), lambda: _exit_hooks(False)),
        StableProbe("signal-send", lambda: (_task.lwpsinfo_arg(), _task.psinfo_arg(), INT),
                    _signal_send_hooks),
        StableProbe("signal-handle", lambda: (INT, ArgInfo("siginfo_t *", "uintptr_t"),
                                              ArgInfo("void (*)(int)", "uintptr_t")),
                    _signal_handle_hooks),
    )
