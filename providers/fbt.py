"""The fbt provider: kernel function entry and return, `fbt:vmlinux:FUNCTION:entry|return`.

Listing: every function the kernel's BTF describes (/sys/kernel/btf/vmlinux), with typed
arguments from its prototype (args[N] typed as BTF says; pointers read as integers
remembering their type). Module is always `vmlinux` (module BTF is not read).

Mechanism, chosen from what the running kernel offers, in this order:
- fentry / fexit (BPF trampolines), where the kernel accepts a tracing program (checked
  once by loading a two-instruction fentry program on vfs_read): arguments are the
  function's own (ctx[0..n-1], typed from BTF), the return value ctx[n] on return;
- kprobe / kretprobe (CONFIG_KPROBE_EVENTS: the kprobe PMU or tracefs kprobe_events):
  entry arguments from the x86-64 argument registers (rdi rsi rdx rcx r8 r9), the return
  value (rax) as arg1 of return;
- otherwise binding fails with a message naming what the kernel lacks.
On return probes arg0 is the return offset in DTrace; neither mechanism knows it: 0.
This VM refuses fentry programs (BPF_PROG_LOAD: EPERM) and has no kprobes: fbt explains
that; the generated code of both mechanisms is compiled in the tests.
"""

from __future__ import annotations

import ctypes
import os
import platform
from functools import lru_cache
from typing import Iterable

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, FentryAttach, KprobeAttach,
                              LazyArgs, Probe,
                              ProbePattern, ProbeSite, glob_match, is_glob)
from dtrace_nb.runtime import btf
from dtrace_nb_providers._regs import ARG_REGS, pt_regs_args

SYS_BPF, BPF_PROG_LOAD = 321, 5  # x86-64
BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY = 26, 24
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
KPROBE_EVENTS = ("/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events")
_RETURN_ARGS = (ArgInfo("uint64_t", "uint64_t", "offset"), ArgInfo("uint64_t", "int64_t", "rval"))


def kprobes_available() -> bool:
    return os.path.isdir(KPROBE_PMU) or any(os.path.exists(p) for p in KPROBE_EVENTS)


@lru_cache(maxsize=1)
def fentry_problem() -> str:
    """'' when the kernel loads fentry programs, else why not (from BPF_PROG_LOAD)."""
    tid = btf.function_btf_id("vfs_read")
    if tid is None:
        return "no BTF for vmlinux functions"
    err = load_tracing_probe(tid)
    return "" if err == 0 else f"BPF_PROG_LOAD of an fentry program: {os.strerror(err)}"


class _ProgLoadAttr(ctypes.Structure):
    # the head of union bpf_attr for BPF_PROG_LOAD, up to attach_btf_id
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("_rest", ctypes.c_uint8 * 64)]


def load_tracing_probe(btf_id: int) -> int:
    """Load `r0 = 0; exit` as an fentry program on BTF function `btf_id`: 0 if the kernel
    accepts it (the fd is closed at once), else the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    insns = (ctypes.c_uint64 * 2)(0xB7, 0x95)  # mov r0, 0; exit
    lic = ctypes.create_string_buffer(b"GPL")
    attr = _ProgLoadAttr(prog_type=BPF_PROG_TYPE_TRACING, insn_cnt=2,
                         insns=ctypes.addressof(insns), license=ctypes.addressof(lic),
                         expected_attach_type=BPF_TRACE_FENTRY, attach_btf_id=btf_id)
    fd = libc.syscall(SYS_BPF, BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        return ctypes.get_errno() or 1
    os.close(fd)
    return 0


def entry_args(function: str) -> tuple[ArgInfo, ...]:
    params = btf.function_params(function) or ()
    return tuple(ArgInfo(t, t, n) for t, n in params[:len(ARG_REGS)])


class FbtProvider:
    name = "fbt"
    order = 70
    stability = "Unstable"

    def __init__(self, mechanism: str = "") -> None:
        # mechanism: "" detects; "fentry" or "kprobe" forces one (tests of the generated
        # code on kernels that have neither)
        self.mechanism = mechanism

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if not glob_match(pattern.module, "vmlinux") or not (
                glob_match(pattern.name, "entry") or glob_match(pattern.name, "return")):
            return []  # e.g. a bare `BEGIN`: no need to walk 56k functions
        funcs = btf.kernel_functions()
        if is_glob(pattern.function):
            names = [f for f in funcs if glob_match(pattern.function, f)]
        else:
            names = [pattern.function] if pattern.function in funcs else []
        out = []
        for fn in sorted(names):
            for probe_name in ("entry", "return"):
                if glob_match(pattern.name, probe_name):
                    args = (LazyArgs(lambda fn=fn: entry_args(fn)) if probe_name == "entry"
                            else _RETURN_ARGS)
                    out.append(ProbeSite("vmlinux", fn, probe_name, args, data=fn))
        return out

    def choose_mechanism(self) -> str:
        if self.mechanism:
            return self.mechanism
        problem = fentry_problem()
        if not problem:
            return "fentry"
        if kprobes_available():
            return "kprobe"
        raise DEnvironmentError(
            "the fbt provider cannot attach on this kernel: it has no kprobes (no kprobe PMU "
            f"at {KPROBE_PMU} and no kprobe_events in tracefs), and it refuses fentry "
            f"programs ({problem})",
            hint="use a kernel with BPF trampolines for fentry (x86-64 with BTF and "
                 "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) or with CONFIG_KPROBE_EVENTS=y; "
                 "tracepoints (sdt), syscall, profile, pid and usdt probes work without them")

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        if platform.machine() != "x86_64":
            raise DEnvironmentError(f"the fbt provider supports x86_64 only, "
                                    f"not {platform.machine()}")
        mechanism = self.choose_mechanism()
        return [self._fentry(p) if mechanism == "fentry" else self._kprobe(p) for p in probes]

    @staticmethod
    def _kprobe(p: Probe) -> Binding:
        ret = p.name == "return"
        exprs, notes = pt_regs_args(ret, "kretprobe" if ret else "kprobe")
        return Binding(attach=KprobeAttach(p.function, ret=ret), ctx_decl="struct pt_regs *ctx",
                       probes=(p,), arg_exprs=exprs, arg_notes=notes,
                       includes=("uapi/linux/ptrace.h",))

    @staticmethod
    def _fentry(p: Probe) -> Binding:
        ret = p.name == "return"
        nparams = len(btf.function_params(p.function) or ())
        if ret:
            exprs: tuple[str, ...] = ("0", f"ctx[{nparams}]")
            notes: tuple[str, ...] = ("0: fexit does not know the return offset",
                                      f"the return value (ctx[{nparams}], after the "
                                      f"{nparams} arguments)")
        else:
            n = min(nparams, len(ARG_REGS))
            exprs = tuple(f"ctx[{i}]" for i in range(n))
            notes = tuple(f"argument {i} of {p.function} (ctx[{i}], BTF-typed)" for i in range(n))
        return Binding(attach=FentryAttach(p.function, ret=ret),
                       ctx_decl="unsigned long long *ctx", probes=(p,), arg_exprs=exprs,
                       arg_notes=notes)
