"""perf_event_open(2) and the ioctls that tie a BPF program to a perf event: every perf
event dtrace-nb opens (tracepoints, profile timers, kprobes and uprobes through their PMUs,
tracefs probe events) is opened here.

A BPF program is attached to a perf event with PERF_EVENT_IOC_SET_BPF and runs once the
event is enabled; closing the event (after disabling it) detaches the program.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Optional

from dtrace_nb.runtime.kernel.files import read_text
from dtrace_nb.runtime.kernel.libc import SYS_PERF_EVENT_OPEN, close, error, ioctl, syscall

# enum perf_type_id
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_COUNT_SW_CPU_CLOCK = 0

# bits of perf_event_attr's flag word
FLAG_DISABLED = 1 << 0
FLAG_INHERIT = 1 << 1
FLAG_EXCLUDE_KERNEL = 1 << 5
FLAG_EXCLUDE_HV = 1 << 6
FLAG_FREQ = 1 << 10

PERF_FLAG_FD_CLOEXEC = 1 << 3

# _IO('$', 0), _IO('$', 1), _IOW('$', 8, __u32)
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408

PMU_DEVICES = "/sys/bus/event_source/devices"


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to config2 (PERF_ATTR_SIZE_VER1, 72 bytes): enough for
    every event dtrace-nb opens. For the kprobe and uprobe PMUs config1 is the address of
    the function name (kprobe_func) or the file's path (uprobe_path), config2 the offset
    (kprobe_addr / probe_offset); the kernel names those fields in a union with these."""

    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("config", ctypes.c_uint64),
                ("sample_period", ctypes.c_uint64),   # or sample_freq, with FLAG_FREQ
                ("sample_type", ctypes.c_uint64), ("read_format", ctypes.c_uint64),
                ("flags", ctypes.c_uint64),
                ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
                ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64)]


def event_attr(type_: int, config: int = 0, *, sample_period: int = 0, sample_freq: int = 0,
               flags: int = 0, config1: int = 0, config2: int = 0) -> PerfEventAttr:
    """A perf_event_attr; a frequency (sample_freq) sets FLAG_FREQ."""
    if sample_freq:
        flags |= FLAG_FREQ
    return PerfEventAttr(type=type_, size=ctypes.sizeof(PerfEventAttr), config=config,
                         sample_period=sample_freq or sample_period, flags=flags,
                         config1=config1, config2=config2)


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1,
                    flags: int = PERF_FLAG_FD_CLOEXEC) -> int:
    """The new event's fd; OSError if the kernel refuses."""
    fd = syscall(SYS_PERF_EVENT_OPEN, ctypes.byref(attr), ctypes.c_int(pid), ctypes.c_int(cpu),
                 ctypes.c_int(group_fd), ctypes.c_ulong(flags))
    if fd < 0:
        raise error(fd, "perf_event_open")
    return fd


def set_bpf(event_fd: int, prog_fd: int) -> None:
    """Run the program at each occurrence of the event, and enable the event; OSError if
    the kernel refuses (the event's fd is the caller's to close)."""
    for request, arg, what in ((PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF"),
                               (PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")):
        err = ioctl(event_fd, request, arg)
        if err < 0:
            raise error(err, what)


def open_with_program(attr: PerfEventAttr, pid: int, cpu: int, prog_fd: int) -> int:
    """Open an event, attach the program and enable it: the event's fd (closed again if
    any step fails)."""
    fd = perf_event_open(attr, pid, cpu)
    try:
        set_bpf(fd, prog_fd)
    except OSError:
        close(fd)
        raise
    return fd


def close_event(fd: int) -> None:
    """Disable an event and close it: its program no longer runs."""
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0)
    close(fd)


# -- dynamic PMUs (kprobe, uprobe) ---------------------------------------------------------

@dataclass(frozen=True)
class ProbePmu:
    """A PMU that creates kprobes or uprobes in perf_event_open itself (Linux 4.17+):
    its perf type, the config bit that makes a return probe, and (uprobe) where the USDT
    semaphore offset goes in config."""

    name: str
    type: int
    retprobe_bit: int
    ref_ctr_shift: Optional[int] = None


def _format_bit(text: Optional[str]) -> Optional[int]:
    """The first bit of a PMU format field ("config:0", "config:32-63") in config."""
    if not text or not text.startswith("config:"):
        return None
    first = text[len("config:"):].split("-")[0]
    return int(first) if first.isdigit() else None


def probe_pmu(name: str, root: str = PMU_DEVICES) -> Optional[ProbePmu]:
    """The kprobe or uprobe PMU as sysfs describes it, or None if the kernel has none."""
    where = os.path.join(root, name)
    type_text = read_text(os.path.join(where, "type"))
    retprobe = _format_bit(read_text(os.path.join(where, "format", "retprobe")))
    if type_text is None or not type_text.isdigit() or retprobe is None:
        return None
    return ProbePmu(name, int(type_text), retprobe,
                    _format_bit(read_text(os.path.join(where, "format", "ref_ctr_offset"))))


def probe_attr(pmu: ProbePmu, target: ctypes.Array, offset: int, ret: bool,
               ref_ctr_offset: int = 0) -> PerfEventAttr:
    """The attr of a kprobe (target: the function's name) or uprobe (target: the file's
    path) at `offset`, a return probe with `ret`. `target` is a NUL-terminated buffer the
    caller keeps alive until perf_event_open has returned (config1 holds its address)."""
    config = 1 << pmu.retprobe_bit if ret else 0
    if ref_ctr_offset:
        if pmu.ref_ctr_shift is None:
            raise OSError(95, f"the {pmu.name} PMU takes no USDT semaphore offset")
        config |= ref_ctr_offset << pmu.ref_ctr_shift
    # a period of 1: the program runs at every hit
    attr = event_attr(pmu.type, config, sample_period=1, config1=ctypes.addressof(target),
                      config2=offset)
    attr.wakeup_events = 1
    return attr


def probe_target_cpu(pid: int) -> tuple[int, int]:
    """(pid, cpu) to open a tracing event for one process or for all: perf_event_open
    refuses pid -1 with cpu -1, and tracing events fire on every CPU whatever the cpu."""
    return (pid, -1) if pid >= 0 else (-1, 0)
