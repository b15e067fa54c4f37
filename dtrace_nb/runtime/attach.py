"""Attaching loaded BPF functions by mechanism, and detaching every one of them.

The runtime keeps its own list of attachment fds instead of leaning on bcc's bookkeeping:
bcc keys perf events by (type, config), so two profile probes of different rates would
leak the first one's fds; and bcc's atexit hook would otherwise keep every BPF object of a
long notebook kernel alive.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

from dtrace_nb.errors import DEnvironmentError, DRuntimeError
from dtrace_nb.probes import (Attach, FentryAttach, KprobeAttach, PerfEventAttach,
                              RawTracepointAttach, TracepointAttach, TriggerAttach, UprobeAttach)

BPF_PROG_TEST_RUN = 10
SYS_BPF = 321  # x86-64


BPF_TRACE_FENTRY = 24
BPF_TRACE_FEXIT = 25


def prog_type(bcc, attach: Attach) -> int:
    B = bcc.BPF
    if isinstance(attach, (RawTracepointAttach, TriggerAttach)):
        return B.RAW_TRACEPOINT
    if isinstance(attach, PerfEventAttach):
        return B.PERF_EVENT
    if isinstance(attach, TracepointAttach):
        return B.TRACEPOINT
    if isinstance(attach, (UprobeAttach, KprobeAttach)):
        return B.KPROBE
    if isinstance(attach, FentryAttach):
        return B.TRACING
    raise DRuntimeError(f"no loader for mechanism '{attach.mechanism}'")


def load_attributes(bcc, attach: Attach) -> tuple[int, int, int]:
    """(program type, expected attach type, BTF id of the attach target) to load a function
    that `attach` will attach: only trampolines name their target at load time."""
    if isinstance(attach, FentryAttach):
        from dtrace_nb.runtime.btf import function_btf_id

        btf_id = function_btf_id(attach.function)
        if btf_id is None:
            raise DEnvironmentError(f"the kernel's BTF has no function {attach.function}",
                                    hint="fentry needs the function in /sys/kernel/btf/vmlinux")
        return (prog_type(bcc, attach),
                BPF_TRACE_FEXIT if attach.ret else BPF_TRACE_FENTRY, btf_id)
    return prog_type(bcc, attach), 0, 0


class _TestRunAttr(ctypes.Structure):
    _fields_ = [("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
                ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def run_trigger(prog_fd: int, args: tuple[int, ...] = ()) -> None:
    """Run a raw-tracepoint-typed program once, now, in this thread (BPF_PROG_TEST_RUN)."""
    vals = (ctypes.c_uint64 * max(1, len(args)))(*[a & (2**64 - 1) for a in args])
    attr = _TestRunAttr(prog_fd=prog_fd, ctx_size_in=8 * max(1, len(args)),
                        ctx_in=ctypes.addressof(vals))
    if _libc.syscall(SYS_BPF, BPF_PROG_TEST_RUN, ctypes.byref(attr), ctypes.sizeof(attr)) < 0:
        err = ctypes.get_errno()
        raise DRuntimeError(f"could not run the program ({os.strerror(err)})",
                            hint="BPF_PROG_TEST_RUN of raw tracepoint programs needs Linux 5.10+")


_UPROBE_FN = None


def _uprobe_fn(bcc):
    global _UPROBE_FN
    if _UPROBE_FN is None:
        lib = ctypes.CDLL(bcc.libbcc.lib._name, use_errno=True)
        f = lib.bpf_attach_uprobe
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p,
                      ctypes.c_uint64, ctypes.c_int, ctypes.c_uint32]
        _UPROBE_FN = f
    return _UPROBE_FN


def _tracefs_uprobe_events() -> str:
    for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            with open(os.path.join(root, "uprobe_events")) as f:
                return f.read()
        except OSError:
            continue
    return ""


@dataclass
class Attachments:
    """Every attachment of one session, detached together (also after partial failure)."""

    bcc: object
    perf_fds: list[int] = field(default_factory=list)
    link_fds: list[int] = field(default_factory=list)
    uprobes: list[tuple] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.perf_fds) + len(self.link_fds) + len(self.uprobes)

    def attach(self, bpf, attach: Attach, fn) -> None:
        lib = self.bcc.libbcc.lib
        if isinstance(attach, RawTracepointAttach):
            fd = lib.bpf_attach_raw_tracepoint(fn.fd, attach.name.encode())
            if fd < 0:
                raise DEnvironmentError(f"could not attach to raw tracepoint {attach.name}",
                                        hint="the kernel lacks raw tracepoints (Linux 4.17+)")
            self.link_fds.append(fd)
        elif isinstance(attach, TracepointAttach):
            fd = lib.bpf_attach_tracepoint(fn.fd, attach.category.encode(), attach.event.encode())
            if fd < 0:
                raise DEnvironmentError(
                    f"could not attach to tracepoint {attach.category}:{attach.event}",
                    hint="is tracefs mounted? (mount -t tracefs nodev /sys/kernel/tracing)")
            self.perf_fds.append(fd)
        elif isinstance(attach, PerfEventAttach):
            cpus = [attach.cpu] if attach.cpu >= 0 else self.bcc.utils.get_online_cpus()
            for cpu in cpus:
                fd = lib.bpf_attach_perf_event(
                    ctypes.c_int(fn.fd), ctypes.c_uint(attach.ev_type),
                    ctypes.c_uint(attach.ev_config), ctypes.c_ulonglong(attach.sample_period),
                    ctypes.c_ulonglong(attach.sample_freq), ctypes.c_int(-1), ctypes.c_int(cpu),
                    ctypes.c_int(-1))
                if fd < 0:
                    raise DEnvironmentError(f"could not open a perf event on CPU {cpu}",
                                            hint="check kernel.perf_event_paranoid and privileges")
                self.perf_fds.append(fd)
        elif isinstance(attach, UprobeAttach):
            self._attach_uprobe(attach, fn)
        elif isinstance(attach, FentryAttach):
            fd = lib.bpf_attach_kfunc(fn.fd)
            if fd < 0:
                raise DEnvironmentError(
                    f"could not attach {attach.describe()}",
                    hint="the kernel needs BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)")
            self.link_fds.append(fd)
        elif isinstance(attach, KprobeAttach):
            raise DEnvironmentError("this kernel cannot attach kprobes",
                                    hint="the kernel was built without CONFIG_KPROBE_EVENTS")
        elif isinstance(attach, TriggerAttach):
            pass  # fired by the session, never attached
        else:
            raise DRuntimeError(f"no way to attach mechanism '{attach.mechanism}'")

    def _attach_uprobe(self, attach: UprobeAttach, fn) -> None:
        # libbcc's bpf_attach_uprobe takes a file offset and a USDT semaphore offset
        # (ref_ctr_offset); bcc's Python wrapper declares neither, so call it directly.
        attach_fn = _uprobe_fn(self.bcc)
        ev = f"dtnb_{os.getpid()}_{'r' if attach.ret else 'p'}_{len(self.uprobes)}".encode()
        fd = attach_fn(fn.fd, 1 if attach.ret else 0, ev, attach.path.encode(),
                       attach.offset, attach.pid, attach.ref_ctr_offset)
        if fd < 0:
            err = ctypes.get_errno()
            where = f"{attach.path}:{attach.symbol or hex(attach.offset)}"
            raise DEnvironmentError(
                f"could not attach a {'uretprobe' if attach.ret else 'uprobe'} at {where}"
                + (f" ({os.strerror(err)})" if err else ""),
                hint="does the process still exist, and is the offset an instruction "
                     "boundary? (uprobes need CONFIG_UPROBE_EVENTS)")
        self.perf_fds.append(fd)
        self.uprobes.append(ev)

    def detach_all(self, bpf) -> None:
        lib = self.bcc.libbcc.lib
        for fd in self.perf_fds:
            lib.bpf_close_perf_event_fd(ctypes.c_int(fd))
        self.perf_fds.clear()
        for fd in self.link_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.link_fds.clear()
        # With the uprobe PMU no tracefs event exists; where libbcc had to create one
        # (older kernels), remove it.
        if self.uprobes:
            existing = _tracefs_uprobe_events()
            for ev in self.uprobes:
                if ev.decode() in existing:
                    lib.bpf_detach_uprobe(ev)
        self.uprobes.clear()
