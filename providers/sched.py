"""The sched provider (stable): CPU scheduling, as in DTrace.

| probe | fires | kernel hook | context / arguments |
|---|---|---|---|
| on-cpu | a thread starts running | raw tracepoint sched_switch | the *incoming* thread's context (Binding.thread: pid, tid, ppid, uid, gid, execname, curthread and self-> describe it, as DTrace fires on-cpu in that thread); stack()/ustack() refused; no args |
| off-cpu | a thread stops running | raw tracepoint sched_switch | the outgoing thread's context; args[0] lwpsinfo_t *, args[1] psinfo_t *: the incoming thread |
| sleep | the current thread goes to sleep | sched_switch with prev_state != TASK_RUNNING | the sleeping thread's context; no args |
| preempt | the current thread is preempted | sched_switch with prev_state == TASK_RUNNING | no args |
| dequeue | a thread leaves the run queue to sleep (Linux dequeues on sleep) | as sleep | args[0] lwpsinfo_t *, args[1] psinfo_t *: that thread |
| enqueue | a thread is put on a run queue | raw tracepoints sched_wakeup, sched_wakeup_new | the waker's context; args[0] lwpsinfo_t *, args[1] psinfo_t *: the woken thread |
| wakeup | a sleeping thread is woken | raw tracepoint sched_wakeup | the waker's context; args[0] lwpsinfo_t *, args[1] psinfo_t *: the woken thread |

Linux's scheduler has no hook where DTrace's enqueue/dequeue fire exactly (a run queue
insertion for preemption is not traced); the mapping above is documented, not exact.
Kernel structures read: task_struct (see _task.py), through the raw tracepoints' task
pointers (sched_switch: preempt, prev, next, prev_state).
"""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api
from dtrace_nb_providers import _task
from dtrace_nb_providers._stable import StableProbe, StableProvider, raw_hook

_SWITCH = ("bool", "struct task_struct *", "struct task_struct *", "unsigned int")
PREV, NEXT = api.raw_tracepoint_arg(1), api.raw_tracepoint_arg(2)
PREV_STATE = f"((u32){api.raw_tracepoint_arg(3)})"
TASK_RUNNING = 0


def _switch(**kw):
    _task.check_raw_tracepoint("sched_switch", _SWITCH)
    return raw_hook("sched_switch", **kw)


def _task_args(task: str, what: str) -> dict:
    return {"arg_exprs": (task, task), "notes": (f"the {what} task",) * 2}


# sched_switch runs in the outgoing thread: the incoming one's stacks are not the current
# ones, and BPF can take another task's stack only from BTF-typed programs
_ON_CPU_STACKS = ("on-cpu is served from sched_switch, which runs in the outgoing thread; "
                  "take stacks at off-cpu")


def _on_cpu():
    return [_switch(thread=_task.running().subject_thread(NEXT, stacks=_ON_CPU_STACKS))]


def _wakeups(events):
    out = []
    for ev in events:
        _task.check_raw_tracepoint(ev, ("struct task_struct *",))
        out.append(raw_hook(ev, **_task_args(api.raw_tracepoint_arg(0), f"woken ({ev})")))
    return out


_ARGS2 = lambda: (_task.lwpsinfo_arg(), _task.psinfo_arg())  # noqa: E731


class SchedProvider(StableProvider):
    name = "sched"
    order = 41
    probes = (
        StableProbe("on-cpu", lambda: (), _on_cpu),
        StableProbe("off-cpu", _ARGS2, lambda: [_switch(**_task_args(NEXT, "incoming"))]),
        StableProbe("sleep", lambda: (), lambda: [_switch(
            prologue=(api.skip_if(f"{PREV_STATE} == {TASK_RUNNING}"),))]),
        StableProbe("preempt", lambda: (), lambda: [_switch(
            prologue=(api.skip_if(f"{PREV_STATE} != {TASK_RUNNING}"),))]),
        StableProbe("dequeue", _ARGS2, lambda: [_switch(
            prologue=(api.skip_if(f"{PREV_STATE} == {TASK_RUNNING}"),),
            **_task_args(PREV, "sleeping"))]),
        StableProbe("enqueue", _ARGS2, lambda: _wakeups(("sched_wakeup", "sched_wakeup_new"))),
        StableProbe("wakeup", _ARGS2, lambda: _wakeups(("sched_wakeup",))),
    )
