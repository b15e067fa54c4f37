"""The fbt provider: kernel function entry and return, `fbt:vmlinux:FUNCTION:entry|return`.

Listing: every function the kernel's BTF describes (/sys/kernel/btf/vmlinux), with typed
arguments from its prototype (args[N] typed as BTF says; pointers read as integers
remembering their type). Module is always `vmlinux` (module BTF is not read).

Mechanism, chosen from what the running kernel offers:
- kprobe / kretprobe (CONFIG_KPROBE_EVENTS: the kprobe PMU or tracefs kprobe_events):
  entry arguments from the x86-64 argument registers (rdi rsi rdx rcx r8 r9), return
  value (rax) as arg1 of return, arg0 the return offset (0: unknown to a kretprobe);
- fentry/fexit (BPF trampolines) is not used by dtrace-nb yet: bcc 0.26's loader path for
  BPF_PROG_TYPE_TRACING programs does not fit its binding model;
- otherwise binding fails with a message naming what the kernel lacks.
"""

from __future__ import annotations

import os
import platform
from typing import Iterable

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, KprobeAttach, LazyArgs, Probe,
                              ProbePattern, ProbeSite, glob_match, is_glob)
from dtrace_nb.runtime import btf

ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")
KPROBE_PMU = "/sys/bus/event_source/devices/kprobe"
KPROBE_EVENTS = ("/sys/kernel/tracing/kprobe_events", "/sys/kernel/debug/tracing/kprobe_events")
_RETURN_ARGS = (ArgInfo("uint64_t", "uint64_t", "offset"), ArgInfo("uint64_t", "int64_t", "rval"))


def kprobes_available() -> bool:
    return os.path.isdir(KPROBE_PMU) or any(os.path.exists(p) for p in KPROBE_EVENTS)


def entry_args(function: str) -> tuple[ArgInfo, ...]:
    params = btf.function_params(function) or ()
    return tuple(ArgInfo(t, t, n) for t, n in params[:len(ARG_REGS)])


class FbtProvider:
    name = "fbt"
    order = 70
    stability = "Unstable"

    def __init__(self, mechanism: str = "") -> None:
        # mechanism: "" detects; "kprobe" forces it (tests of the generated code on
        # kernels without kprobes)
        self.mechanism = mechanism

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if not glob_match(pattern.module, "vmlinux"):
            return []
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
        if kprobes_available():
            return "kprobe"
        raise DEnvironmentError(
            "the fbt provider cannot attach on this kernel: it has no kprobes (no kprobe PMU "
            f"at {KPROBE_PMU} and no kprobe_events in tracefs), and dtrace-nb does not attach "
            "fentry/fexit programs",
            hint="use a kernel built with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y; "
                 "tracepoints (sdt), syscall, profile, pid and usdt probes work without them")

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        if platform.machine() != "x86_64":
            raise DEnvironmentError(f"the fbt provider supports x86_64 only, "
                                    f"not {platform.machine()}")
        self.choose_mechanism()
        out = []
        for p in probes:
            ret = p.name == "return"
            if ret:
                exprs: tuple[str, ...] = ("0", "ctx->ax")
                notes: tuple[str, ...] = ("0: a kretprobe does not know the return offset",
                                          "the return value (rax)")
            else:
                exprs = tuple(f"ctx->{r}" for r in ARG_REGS)
                notes = tuple(f"argument register {r} (kprobe pt_regs)" for r in ARG_REGS)
            out.append(Binding(attach=KprobeAttach(p.function, ret=ret),
                               ctx_decl="struct pt_regs *ctx", probes=(p,), arg_exprs=exprs,
                               arg_notes=notes, includes=("uapi/linux/ptrace.h",)))
        return out
