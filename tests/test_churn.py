"""Cleanup under churn: many sessions in one process, mixing successes, syntax errors,
verifier rejections, exceptions from the on_output callback, Ctrl-C (SIGINT from another
thread) at random moments, and sessions stopped early; afterwards no BPF program, map,
perf event, bpf fd, tracefs probe or target process of ours remains.

The short version (in `make test`) runs about 50 sessions and checks after each one, so a
leak names the kind of session that caused it; the `long` one runs 1,000.
"""

from __future__ import annotations

import gc
import os
import random
import signal
import threading
import time
from collections import Counter

import pytest

from dtrace_nb.errors import DError, DLoadError
from dtrace_nb.probes import Binding, ProbeCatalog, ProbeSite, RawTracepointAttach, \
    glob_match, load_providers
from dtrace_nb.session import Session, SessionConfig
from dtrace_nb.result.result import run_session
from tests.leakcheck import bpf_state, settled_diff

pytestmark = pytest.mark.kernel


class RejectedProvider:
    """`reject:::bad`: compiles, and the verifier refuses it (it reads memory at a scalar)."""

    name = "reject"
    order = 95

    def provides(self, provider_field):
        return glob_match(provider_field, self.name)

    def sites(self, pattern, ctx):
        return [ProbeSite("", "", "bad")] if glob_match(pattern.name, "bad") else []

    def bind(self, probes, ctx):
        return [Binding(attach=RawTracepointAttach("sys_enter"),
                        ctx_decl="struct bpf_raw_tracepoint_args *ctx", probes=tuple(probes),
                        prologue=("u64 dt_bad = *(volatile u64 *)(bpf_ktime_get_ns() | 1);",
                                  "if (dt_bad == 42) return 1;"))]


@pytest.fixture(scope="module")
def catalog():
    return ProbeCatalog(load_providers() + [RejectedProvider()])


class Boom(Exception):
    pass


def _raise_on_output(text):
    raise Boom(text)


TRACE = ("syscall::getppid:entry { @[execname] = count(); } profile:::tick-20ms "
         "{ printf(\"t\"); @t = count(); } syscall::read:entry /pid == $pid/ { self->r = 1; }")
KINDS = {
    # kind: (program, config, how the session is driven)
    "exit": ('dtrace:::BEGIN { printf("x"); exit(0); }', {}, "run"),
    "trace": (TRACE, {}, "duration"),
    "syntax": ("dtrace:::BEGIN { x = ; }", {}, "run"),
    "probe": ("syscall::nosuch:entry { }", {}, "run"),
    "verifier": ("reject:::bad { trace(1); }", {}, "run"),
    "callback": (TRACE, {}, "raise"),
    "interrupt": (TRACE, {}, "interrupt"),
    "interrupt-target": (TRACE, {"target_command": "sleep 5"}, "interrupt"),
    "stopped": (TRACE, {}, "stop-early"),
    "stopped-target": (TRACE + " syscall::nanosleep:entry /pid == $target/ { trace(1); }",
                       {"target_command": "sleep 5"}, "stop-early"),
    "manual": (TRACE, {}, "manual"),
}


def _interrupt_after(delay: float, main: int, sent: threading.Event) -> threading.Thread:
    def fire():
        time.sleep(delay)
        signal.pthread_kill(main, signal.SIGINT)
        sent.set()
    t = threading.Thread(target=fire, daemon=True)
    t.start()
    return t


def one_session(kind: str, rnd: random.Random, catalog) -> str:
    """Drive one session of `kind`; the outcome in a word."""
    program, cfg, how = KINDS[kind]
    session = Session(SessionConfig(program, quiet=True, **cfg), catalog=catalog,
                      on_output=_raise_on_output if how == "raise" else None)
    if how in ("run", "duration"):
        result = run_session(session, duration=0.2 if how == "duration" else 5)
        if kind in ("syntax", "probe", "verifier"):
            assert isinstance(result.error, DError), kind
            if kind == "verifier":
                assert isinstance(result.error, DLoadError) and "verifier" in str(result.error)
            return "error"
        assert result.error is None, result.error
        return "ok"
    if how == "raise":
        with pytest.raises(Boom):
            run_session(session, duration=2)
        return "raised"
    if how == "interrupt":
        sent = threading.Event()
        thread = _interrupt_after(rnd.uniform(0, 0.6), threading.main_thread().ident, sent)
        outcome = "interrupted"
        try:
            try:
                result = run_session(session, duration=2)
                outcome = "interrupted" if result.interrupted else "finished"
            finally:
                thread.join()  # the signal lands in this session, never in the next
                sent.wait()
                time.sleep(0.01)  # let a signal sent at the very end be handled here
        except KeyboardInterrupt:
            # Ctrl-C before run() took charge or after it returned: nothing may be left
            outcome = "escaped"
        if session.running or session._loaded is not None:
            session.stop()  # a Ctrl-C outside run() leaves stopping to the caller
        return outcome
    if how == "stop-early":
        countdown = iter(range(rnd.randint(0, 3), -10**9, -1))
        result = run_session(session, duration=5, should_stop=lambda: next(countdown) <= 0)
        return "stopped" if result.error is None else "error"
    # manual: start, poll a little, stop without run()
    session.start()
    for _ in range(rnd.randint(0, 3)):
        session.poll(20)
    session.stop()
    return "stopped"


def _children() -> list[int]:
    me = str(os.getpid())
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me and fields[0] != "Z":
                out.append(int(pid))
    return out


def churn(n: int, seed: int, catalog, check_every: int) -> Counter:
    rnd = random.Random(seed)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    outcomes: Counter = Counter()
    children = set(_children())
    try:
        before = bpf_state()
        for i in range(n):
            kind = rnd.choice(sorted(KINDS))
            try:
                outcome = one_session(kind, rnd, catalog)
            except KeyboardInterrupt:
                outcome = "escaped"
            outcomes[(kind, outcome)] += 1
            if (i + 1) % check_every == 0:
                gc.collect()
                problems = settled_diff(before)
                assert problems == [], f"after session {i} ({kind}, {outcome}): {problems}"
        gc.collect()
        assert settled_diff(before) == []
        deadline = time.monotonic() + 5
        while set(_children()) - children and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(_children()) - children == set(), "target processes left running"
    finally:
        signal.signal(signal.SIGINT, previous)
    return outcomes


def test_churn_short(catalog):
    outcomes = churn(50, seed=8, catalog=catalog, check_every=1)
    assert {k for k, _ in outcomes} >= {"exit", "syntax", "verifier", "callback",
                                        "interrupt", "stopped"}, outcomes


@pytest.mark.long
def test_churn_long(catalog):
    outcomes = churn(1000, seed=1000, catalog=catalog, check_every=50)
    print(dict(outcomes))
