"""The fbt provider: kernel function entry and return, `fbt:vmlinux:FUNCTION:entry|return`.

Listing: every function the kernel's BTF describes (/sys/kernel/btf/vmlinux), with typed
arguments from its prototype (args[N] typed as BTF says; pointers read as integers
remembering their type). Module is always `vmlinux` (module BTF is not read).

Mechanism, chosen from what the running kernel offers (runtime/kernel/features.py), in
this order:
- fentry / fexit (BPF trampolines), where the kernel accepts a tracing program (checked
  once by loading a two-instruction fentry program on vfs_read): arguments are the
  function's own (ctx[0..n-1], typed from BTF), the return value ctx[n] on return;
- kprobe / kretprobe (CONFIG_KPROBE_EVENTS: the kprobe PMU or tracefs kprobe_events):
  entry arguments from the x86-64 argument registers (rdi rsi rdx rcx r8 r9), the return
  value (rax) as arg1 of return;
- otherwise binding fails with a message naming what the kernel lacks.
On return probes arg0 is the return offset in DTrace; neither mechanism knows it: 0.
Attaching is the runtime's (runtime/attach/: fentry.py, kprobe.py). This VM refuses fentry
programs (BPF_PROG_LOAD: EPERM) and has no kprobes: fbt explains that; the tests compile
and load the code of both mechanisms here, and count a kprobe's calls where kprobes exist.
"""

from __future__ import annotations

import platform
from typing import Iterable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, FentryAttach, KprobeAttach,
                              LazyArgs, Probe,
                              ProbePattern, ProbeSite, glob_match, is_glob)
from dtrace_nb.runtime import btf
from dtrace_nb.runtime.kernel import features
from dtrace_nb_providers._regs import ARG_REGS, pt_regs_args

_RETURN_ARGS = (ArgInfo("uint64_t", "uint64_t", "offset"), ArgInfo("uint64_t", "int64_t", "rval"))


class FbtProvider:
    name = "fbt"
    order = 70
    stability = "Unstable"

    def __init__(self, mechanism: str = "") -> None:
        # mechanism: "" detects; "fentry" or "kprobe" forces one (tests of the generated
        # code on kernels that have neither)
        self.mechanism = mechanism

    # where functions and prototypes come from: the kernel's BTF (the tests' fake catalog
    # gives fixed ones)
    functions = staticmethod(btf.kernel_functions)
    params = staticmethod(btf.function_params)

    def entry_args(self, function: str) -> tuple[ArgInfo, ...]:
        params = self.params(function) or ()
        return tuple(ArgInfo(t, t, n) for t, n in params[:len(ARG_REGS)])

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if not glob_match(pattern.module, "vmlinux") or not (
                glob_match(pattern.name, "entry") or glob_match(pattern.name, "return")):
            return []  # e.g. a bare `BEGIN`: no need to walk 56k functions
        funcs = self.functions()
        if is_glob(pattern.function):
            names = [f for f in funcs if glob_match(pattern.function, f)]
        else:
            names = [pattern.function] if pattern.function in funcs else []
        out = []
        for fn in sorted(names):
            for probe_name in ("entry", "return"):
                if glob_match(pattern.name, probe_name):
                    args = (LazyArgs(lambda fn=fn: self.entry_args(fn)) if probe_name == "entry"
                            else _RETURN_ARGS)
                    out.append(ProbeSite("vmlinux", fn, probe_name, args, data=fn))
        return out

    def choose_mechanism(self) -> str:
        """fentry where the kernel loads trampolines, else kprobes (the feature layer says
        which the kernel offers)."""
        if self.mechanism:
            return self.mechanism
        fentry, kprobes = features.fentry(), features.kprobes()
        if fentry.available:
            return "fentry"
        if kprobes.available:
            return "kprobe"
        raise DEnvironmentError(
            f"the fbt provider cannot attach on this kernel: it has no kprobes "
            f"({kprobes.detail}), and it refuses fentry programs ({fentry.detail})",
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
        return Binding(attach=KprobeAttach(p.function, ret=ret), ctx_decl=api.PT_REGS_CTX,
                       probes=(p,), arg_exprs=exprs, arg_notes=notes,
                       includes=api.PT_REGS_INCLUDES)

    def _fentry(self, p: Probe) -> Binding:
        ret = p.name == "return"
        nparams = len(self.params(p.function) or ())
        if ret:
            exprs: tuple[str, ...] = ("0", api.trampoline_arg(nparams))
            notes: tuple[str, ...] = ("0: fexit does not know the return offset",
                                      f"the return value (ctx[{nparams}], after the "
                                      f"{nparams} arguments)")
        else:
            n = min(nparams, len(ARG_REGS))
            exprs = tuple(api.trampoline_arg(i) for i in range(n))
            notes = tuple(f"argument {i} of {p.function} (ctx[{i}], BTF-typed)" for i in range(n))
        return Binding(attach=FentryAttach(p.function, ret=ret),
                       ctx_decl=api.TRAMPOLINE_CTX, probes=(p,), arg_exprs=exprs,
                       arg_notes=notes)
