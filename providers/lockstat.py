"""The lockstat provider: kernel lock contention, from lock:contention_begin/_end.

Linux traces a lock only when a task has to wait for it (the slow paths), so the probes
served are the ones about waiting, each firing at contention_end in the waiting thread:

| probe | waits that end in it (contention_begin flags) | arg0 | arg1 |
|---|---|---|---|
| adaptive-spin | a mutex acquired by optimistic spinning (LCB_F_MUTEX + LCB_F_SPIN) | the mutex | ns spun |
| adaptive-block | a mutex slept for (LCB_F_MUTEX) | the mutex | ns blocked |
| spin-spin | a spinlock spun on (LCB_F_SPIN, not mutex, read or write) | the lock | ns spun |
| rw-spin | an rwlock_t spun on (LCB_F_SPIN + LCB_F_READ/WRITE) | the lock | ns spun; arg2: 1 writer, 0 reader |
| rw-block | an rw_semaphore slept for (LCB_F_READ/WRITE) | the lock | ns blocked; arg2: 1 writer, 0 reader |

The time is from the wait's contention_begin to its contention_end, matched by thread and
lock address in an LRU map of pending waits. adaptive-acquire, adaptive-release,
adaptive-acquire-error, spin-acquire, spin-release, rw-acquire and rw-release are refused:
the kernel has no tracepoint on uncontended acquisitions or on releases.
"""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DProbeError
from dtrace_nb.probes import ArgInfo
from dtrace_nb_providers._stable import StableProbe, StableProvider, tracepoint_hook
from dtrace_nb_providers._tracepoint import field_expr

LCB_F_SPIN, LCB_F_READ, LCB_F_WRITE, LCB_F_MUTEX = 1 << 0, 1 << 1, 1 << 2, 1 << 5
RW = LCB_F_READ | LCB_F_WRITE
WAITS = api.local("lock_waits")
WAIT_DECL = f"""struct {WAITS}_key {{ u64 tid; u64 lock; }};
struct {WAITS}_val {{ u64 ts; u32 flags; }};
BPF_TABLE("lru_hash", struct {WAITS}_key, struct {WAITS}_val, {WAITS}, 16384);"""
KEY, WAIT = api.local("wk"), api.local("wait")
NOT_TRACED = ("Linux traces locks only when a task must wait for them "
              "(lock:contention_begin/end); uncontended acquisitions and releases are not traced")

# probe -> the condition on the pending wait's flags `f`
KINDS = {
    "adaptive-spin": f"(f & {LCB_F_MUTEX}) && (f & {LCB_F_SPIN})",
    "adaptive-block": f"(f & {LCB_F_MUTEX}) && !(f & {LCB_F_SPIN})",
    "spin-spin": f"!(f & {LCB_F_MUTEX}) && (f & {LCB_F_SPIN}) && !(f & {RW})",
    "rw-spin": f"!(f & {LCB_F_MUTEX}) && (f & {LCB_F_SPIN}) && (f & {RW})",
    "rw-block": f"!(f & {LCB_F_MUTEX}) && !(f & {LCB_F_SPIN}) && (f & {RW})",
}
REFUSED = ("adaptive-acquire", "adaptive-acquire-error", "adaptive-release", "spin-acquire",
           "spin-release", "rw-acquire", "rw-release")


def _key(event: str) -> list[str]:
    return [f"struct {WAITS}_key {KEY} = {{}};",
            f"{KEY}.tid = bpf_get_current_pid_tgid();",
            f"{KEY}.lock = {field_expr('lock', event, 'lock_addr')};"]


def _begin():
    """Record the wait; no probe fires here."""
    flags = field_expr("lock", "contention_begin", "flags")
    store = "\n".join(_key("contention_begin") + [
        f"struct {WAITS}_val {api.local('wv')} = {{ bpf_ktime_get_ns(), (u32){flags} }};",
        f"{WAITS}.update(&{KEY}, &{api.local('wv')});", "return 0;"])
    return tracepoint_hook("lock", "contention_begin", prologue=("{\n" + store + "\n}",),
                           declarations=(WAIT_DECL,))


def _end(kind: str):
    lock = field_expr("lock", "contention_end", "lock_addr")
    fetch = _key("contention_end") + [
        f"struct {WAITS}_val *{WAIT} = {WAITS}.lookup(&{KEY});",
        api.skip_unless(WAIT),
        api.declare("u64", "waited", f"bpf_ktime_get_ns() - {WAIT}->ts"),
        api.declare("u32", "lflags", f"{WAIT}->flags")]
    flags = api.local("lflags")
    # each enabled probe has its own program on contention_end: only the one whose kind
    # the wait is removes it (an LRU map forgets the waits no enabled probe is about)
    return tracepoint_hook(
        "lock", "contention_end",
        prologue=(*fetch, api.skip_unless(KINDS[kind].replace("f", flags)),
                  f"{WAITS}.delete(&{KEY});"),
        arg_exprs=(lock, api.local("waited"), f"(({flags} & {LCB_F_WRITE}) ? 1 : 0)"),
        notes=("the lock's address (contention_end lock_addr)",
               "ns from contention_begin to contention_end", "1 if waiting to write"),
        declarations=(WAIT_DECL,))


def _args(kind: str):
    def args():
        out = [ArgInfo("void *", "uintptr_t", "lock"), ArgInfo("uint64_t", "uint64_t", "time")]
        if kind.startswith("rw-"):
            out.append(ArgInfo("int", "int", "writer"))
        return tuple(out)
    return args


def _refused(name: str):
    def hooks():
        raise DProbeError(f"lockstat:::{name} cannot be served on Linux: {NOT_TRACED}",
                          hint="the contention probes are served: adaptive-spin, "
                               "adaptive-block, spin-spin, rw-spin, rw-block")
    return hooks


class LockstatProvider(StableProvider):
    name = "lockstat"
    order = 46
    probes = tuple(
        [StableProbe(k, _args(k), lambda k=k: [_begin(), _end(k)]) for k in KINDS]
        + [StableProbe(n, lambda: (), _refused(n)) for n in REFUSED])
