"""What the running kernel offers, found out in one place (bpftrace's bpffeature): the
doctor (runtime/environment.py) reports it, the fbt provider chooses its mechanism from it,
and the kprobe and uprobe attach classes choose between a PMU and tracefs with it.

Each answer is a Feature: available or not, and a detail that says how (the PMU, the
tracefs file, the kernel version) or why not, in words fit for the user. Answers that cost
a system call are cached: the kernel does not change under a running process.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from dtrace_nb.runtime import btf
from dtrace_nb.runtime.kernel import bpf, perf, tracefs
from dtrace_nb.runtime.kernel.libc import close

# the kernel function the fentry check loads a program on: always present, always in BTF
FENTRY_PROBE_FUNCTION = "vfs_read"


@dataclass(frozen=True)
class Feature:
    available: bool
    detail: str


def kernel_release() -> str:
    return platform.release()


def kernel_version(release: Optional[str] = None) -> tuple[int, int]:
    """(major, minor) of a release string such as '6.18.44-fc-v595'; (0, 0) if unreadable."""
    parts = (release or kernel_release()).split("-")[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return 0, 0


def since(minimum: tuple[int, int]) -> bool:
    """The running kernel is at least `minimum` (an unparsable version passes)."""
    ver = kernel_version()
    return ver >= minimum or ver == (0, 0)


# -- dynamic probes ------------------------------------------------------------------------

def _dynamic_probes(kind: str) -> tuple[Optional[perf.ProbePmu], Optional[str]]:
    return perf.probe_pmu(kind), tracefs.probe_events_file(kind)


def probe_mechanism(kind: str) -> Optional[str]:
    """How to make a kprobe or uprobe here (kind 'kprobe' / 'uprobe'): 'pmu' (created by
    perf_event_open, nothing to clean up), 'tracefs' (an event in <kind>_events first), or
    None when the kernel has neither."""
    pmu, events = _dynamic_probes(kind)
    return "pmu" if pmu is not None else "tracefs" if events is not None else None


def dynamic_probes(kind: str) -> Feature:
    """kprobes or uprobes: by which interface, or what is missing."""
    pmu, events = _dynamic_probes(kind)
    how = ", ".join(x for x in (f"{kind} PMU" if pmu else "", events or "") if x)
    if how:
        return Feature(True, how)
    return Feature(False, f"no {kind} PMU at {perf.PMU_DEVICES}/{kind} and no "
                          f"{kind}_events in tracefs")


def kprobes() -> Feature:
    return dynamic_probes("kprobe")


def uprobes() -> Feature:
    return dynamic_probes("uprobe")


# -- program and map types -----------------------------------------------------------------

@lru_cache(maxsize=1)
def fentry() -> Feature:
    """Whether the kernel loads a tracing program (BPF trampolines: fentry/fexit), tried
    by loading `r0 = 0; exit` as fentry on FENTRY_PROBE_FUNCTION."""
    tid = btf.function_btf_id(FENTRY_PROBE_FUNCTION)
    if tid is None:
        return Feature(False, "no BTF for vmlinux functions")
    fd, _ = bpf.prog_load(bpf.BPF_PROG_TYPE_TRACING, "dtnb_fentry", bpf.RETURN_ZERO,
                          expected_attach_type=bpf.BPF_TRACE_FENTRY, attach_btf_id=tid)
    if fd < 0:
        return Feature(False, f"BPF_PROG_LOAD of an fentry program: {os.strerror(-fd)}")
    close(fd)
    return Feature(True, f"BPF trampolines (an fentry program on {FENTRY_PROBE_FUNCTION} loads)")


@lru_cache(maxsize=1)
def uprobe_multi() -> Feature:
    """Whether the kernel attaches one program to many uprobes through one link
    (BPF_TRACE_UPROBE_MULTI), tried by loading `r0 = 0; exit` for it."""
    fd, _ = bpf.prog_load(bpf.BPF_PROG_TYPE_KPROBE, "dtnb_umulti", bpf.RETURN_ZERO,
                          expected_attach_type=bpf.BPF_TRACE_UPROBE_MULTI)
    if fd < 0:
        return Feature(False, f"BPF_PROG_LOAD of a uprobe_multi program: {os.strerror(-fd)}")
    close(fd)
    return Feature(True, "uprobe_multi links (a uprobe_multi program loads)")


def ring_buffer() -> Feature:
    """BPF_MAP_TYPE_RINGBUF: made and freed where privileges allow, else by version."""
    try:
        fd = bpf.map_create(bpf.BPF_MAP_TYPE_RINGBUF, "dtnb_ringprobe", 0, 0, 4096)
    except OSError as err:
        if err.errno in (1, 13):  # EPERM, EACCES: not allowed to ask; the version tells
            ok = since((5, 8))
            return Feature(ok, f"kernel {'>=' if ok else '<'} 5.8 (not tried: {err.strerror})")
        return Feature(False, f"the kernel refuses a BPF ring buffer ({err.strerror})")
    close(fd)
    return Feature(True, "BPF_MAP_TYPE_RINGBUF")


def raw_tracepoints() -> Feature:
    ok = since((4, 17))
    return Feature(ok, "BPF_PROG_TYPE_RAW_TRACEPOINT" if ok else "kernel older than 4.17")


def btf_vmlinux() -> Feature:
    ok = os.path.exists(btf.VMLINUX)
    return Feature(ok, f"{btf.VMLINUX} present" if ok else "no kernel BTF")


# -- perf events ---------------------------------------------------------------------------

def perf_events() -> Feature:
    """Open and close a disabled software cpu-clock event on this thread (user space only,
    so it is allowed at any perf_event_paranoid level)."""
    if not os.path.exists("/proc/sys/kernel/perf_event_paranoid"):
        return Feature(False, "kernel built without perf events")
    attr = perf.event_attr(perf.PERF_TYPE_SOFTWARE, perf.PERF_COUNT_SW_CPU_CLOCK,
                           flags=perf.FLAG_DISABLED | perf.FLAG_EXCLUDE_KERNEL
                           | perf.FLAG_EXCLUDE_HV)
    try:
        fd = perf.perf_event_open(attr, 0, -1)
    except OSError as err:
        return Feature(False, f"perf_event_open failed: {os.strerror(err.errno)}")
    close(fd)
    return Feature(True, "perf_event_open works")
