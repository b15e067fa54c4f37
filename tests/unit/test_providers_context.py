"""A probe whose program runs in another thread than the one it describes (sched:::on-cpu,
served from sched_switch in the outgoing thread): every thread built-in and self-> read
the binding's ThreadContext, and stacks are refused with the provider's reason."""

from __future__ import annotations

import pytest

from dtrace_nb.errors import DCompileError
from tests.fakeprobes import TASK, compile_c

NEXT = "ctx->args[2]"


def body(source: str) -> str:
    return compile_c(source)[1].c_source


def test_thread_builtins_read_the_incoming_task():
    c = body("sched:::on-cpu { @[pid, tid, ppid, uid, gid, curthread] = count(); }")
    thread = TASK.subject_thread(NEXT)
    for expr in (thread.pid, thread.tid, thread.ppid, thread.uid, thread.gid):
        assert expr in c
    assert "bpf_get_current_pid_tgid" not in c
    assert "bpf_get_current_uid_gid" not in c


def test_self_variables_are_keyed_on_the_incoming_thread():
    c = body("sched:::off-cpu { self->ts = timestamp; }\n"
             "sched:::on-cpu /self->ts/ { @ = count(); self->ts = 0; }")
    on_cpu = c[c.index("clause 2"):]
    assert TASK.subject_thread(NEXT).thread_key() in on_cpu
    assert "bpf_get_current_pid_tgid()" not in on_cpu
    off_cpu = c[c.index("clause 1"):c.index("clause 2")]
    assert "bpf_get_current_pid_tgid()" in off_cpu  # off-cpu runs in its own thread


def test_execname_is_the_incoming_comm():
    c = body('sched:::on-cpu /execname == "x"/ { @ = count(); }')
    assert TASK.subject_thread(NEXT).execname in c
    assert "bpf_get_current_comm" not in c


@pytest.mark.parametrize("use", ["stack()", "ustack()", "@[stack()] = count()",
                                 "trace(stackdepth)", "@[ustack(5)] = count()"])
def test_stacks_are_refused_with_the_reason(use):
    with pytest.raises(DCompileError) as e:
        compile_c(f"sched:::on-cpu {{ {use}; }}")
    assert "sched_switch runs in the outgoing thread" in str(e.value)
    assert e.value.span is not None and e.value.span.line == 1


def test_off_cpu_stacks_still_compile():
    assert "get_stackid" in body("sched:::off-cpu { @[stack()] = count(); }")


def test_raw_tracepoint_stacks_skip_the_mechanism_frames():
    c = body("sched:::off-cpu { @[stack()] = count(); trace(stackdepth); }")
    assert "get_stackid(ctx, 2)" in c and "dt_stackdepth(ctx, 2)" in c


def test_leading_glue_frames_are_dropped_by_name():
    from dtrace_nb.runtime.symbols import without_glue
    frames = ["vmlinux`__traceiter_sched_switch+0x41", "vmlinux`__schedule+0x628",
              "vmlinux`__bpf_trace_x+0x1"]
    assert without_glue(frames) == frames[1:]
    assert without_glue(["vmlinux`do_sys+0x1"]) == ["vmlinux`do_sys+0x1"]
