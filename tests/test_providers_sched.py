"""sched:::on-cpu describes the incoming thread (it is served from sched_switch, which runs
in the outgoing one): a thread that sleeps a known number of times is seen leaving and
coming back exactly that many times by the book's off-cpu latency idiom, which pairs
self-> variables with tid and execname predicates."""

from __future__ import annotations

import os

import pytest

from tests.test_language import run_d
from tests.test_providers import build_c, agg_rows, ok

pytestmark = pytest.mark.kernel

SLEEPER_C = r"""
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static void *sleeper(void *arg)
{
	struct timespec ts = {0, 5 * 1000 * 1000};
	pthread_setname_np(pthread_self(), "dtnbsleeper");
	usleep(200 * 1000); /* let the tracer see the new name before the counted sleeps */
	for (int i = 0; i < 20; i++)
		syscall(SYS_nanosleep, &ts, NULL);
	return arg;
}

int main(void)
{
	pthread_t t;
	pthread_create(&t, NULL, sleeper, NULL);
	pthread_join(t, NULL);
	return 0;
}
"""

# the 20 counted sleeps are nanosleeps of the named thread; the usleep before them is one
# too, so the clause keys on the syscall, as a script measuring a call's off-cpu time does
OFF_CPU_LATENCY = r"""
syscall::nanosleep:entry /execname == "dtnbsleeper"/ { self->in = 1; }
syscall::nanosleep:return /self->in/ { self->in = 0; }
sched:::off-cpu /self->in/ { self->ts = timestamp; self->tid = tid; }
sched:::on-cpu /self->ts && execname == "dtnbsleeper" && tid == self->tid && pid == $target/
{
	@n["back on cpu"] = count();
	@ms["ms off cpu"] = sum((timestamp - self->ts) / 1000000);
	self->ts = 0;
}
"""


@pytest.fixture(scope="module")
def sleeper(tmp_path_factory):
    return build_c(tmp_path_factory, "sleeper", SLEEPER_C, "-pthread")


def test_on_cpu_is_the_incoming_thread(tmp_path, sleeper):
    rows = agg_rows(ok(run_d(tmp_path, OFF_CPU_LATENCY, extra=("-c", str(sleeper)))))
    # nanosleep(5 ms) leaves the CPU once and comes back once (a preemption inside the
    # syscall would be a second pair: it runs too briefly for that to happen here)
    assert rows["back on cpu"] == 20
    assert 20 * 5 <= rows["ms off cpu"] < 20 * 5 * 4


def test_on_cpu_builtins_agree_with_off_cpu_args(tmp_path, sleeper):
    # every thread built-in at on-cpu is the named thread's: its process, its user, a parent
    prog = r"""
sched:::on-cpu /execname == "dtnbsleeper"/ { @[execname, pid == $target, uid, ppid > 0] = count(); }
"""
    rows = agg_rows(ok(run_d(tmp_path, prog, extra=("-c", str(sleeper)))))
    key = f"dtnbsleeper 1 {os.getuid()} 1"
    assert rows.get(key, 0) >= 21, rows  # 20 nanosleeps and the usleep
    assert len(rows) == 1, rows


GLUE = ("bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_")


def stacks(text: str) -> list[list[str]]:
    """The printed stacks: runs of indented vmlinux` frames."""
    out, cur = [], []
    for line in text.splitlines():
        if line.strip().startswith("vmlinux`"):
            cur.append(line.strip()[len("vmlinux`"):])
        elif cur:
            out.append(cur)
            cur = []
    return out + ([cur] if cur else [])


def test_sched_and_syscall_stacks_start_at_the_probe_site(tmp_path, sleeper):
    prog = r"""
sched:::off-cpu /execname == "dtnbsleeper"/ { @[stack()] = count(); }
syscall::nanosleep:entry /execname == "dtnbsleeper"/ { @[stack()] = count(); }
"""
    found = stacks(ok(run_d(tmp_path, prog, extra=("-c", str(sleeper)))))
    assert found
    tops = {s[0].split("+")[0] for s in found}
    for s in found:
        assert not s[0].startswith(GLUE), s
        assert not any(f.startswith(("bpf_prog_", "bpf_trace_run")) for f in s), s
    assert "__schedule" in tops, tops  # off-cpu: the scheduler, where sched_switch fires
    assert any(t.startswith("syscall_trace_enter") for t in tops), tops
