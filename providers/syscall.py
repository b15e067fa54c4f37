"""The syscall provider: `syscall::NAME:entry` and `syscall::NAME:return`.

Mechanism: one raw tracepoint on `sys_enter` (and one on `sys_exit`) serves every
syscall probe of a program, selecting the abstract probe by syscall number. Attaching
the per-syscall `syscalls:sys_enter_*` tracepoints instead costs ~72 ms each to detach
(an RCU grace period), ~26 s for all of them; a raw tracepoint detaches at once and is
also the cheapest per event.

Arguments on entry are the syscall's registers (x86-64 ABI: rdi rsi rdx r10 r8 r9) read
from the saved user pt_regs; names and types come from the tracepoint format files. On
return, arg0 and arg1 are the value the caller sees (-1 on failure) and `errno` the error
number, as in DTrace.
"""

from __future__ import annotations

import platform
import re
from typing import Iterable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DProbeError
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, Probe, ProbePattern, ProbeSite,
                              RawTracepointAttach, Selector, glob_match, is_glob)
from dtrace_nb_providers._tracefs import event_format, events

UNISTD_HEADERS = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
                  "/usr/include/asm/unistd_64.h")
ARG_REGS = ("di", "si", "dx", "r10", "r8", "r9")
MAX_ERRNO = 4095


def _syscall_numbers() -> dict[str, int]:
    for path in UNISTD_HEADERS:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        return {m.group(1): int(m.group(2))
                for m in re.finditer(r"#define\s+__NR_(\w+)\s+(\d+)", text)}
    return {}


class SyscallProvider:
    name = "syscall"
    order = 10

    def __init__(self) -> None:
        self._numbers: dict[str, int] | None = None
        self._args: dict[str, tuple[ArgInfo, ...]] = {}

    # -- listing -----------------------------------------------------------------------

    def numbers(self) -> dict[str, int]:
        if self._numbers is None:
            nums = _syscall_numbers()
            # tracefs knows the syscalls this kernel has; keep those the header numbers.
            traced = {e[len("sys_enter_"):] for e in events("syscalls")
                      if e.startswith("sys_enter_")}
            if traced:
                nums = {n: v for n, v in nums.items() if n in traced}
            self._numbers = dict(sorted(nums.items(), key=lambda kv: kv[0]))
        return self._numbers

    def entry_args(self, name: str) -> tuple[ArgInfo, ...]:
        if name not in self._args:
            fields = [f for f in event_format("syscalls", f"sys_enter_{name}")
                      if f.name != "__syscall_nr"]
            if fields:
                self._args[name] = tuple(ArgInfo(f.ctype, f.ctype, f.name) for f in fields)
            else:
                self._args[name] = tuple(ArgInfo("long", "int64_t", f"arg{i}")
                                         for i in range(len(ARG_REGS)))
        return self._args[name]

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if pattern.module not in ("", "*") and not glob_match(pattern.module, ""):
            return []
        nums = self.numbers()
        if is_glob(pattern.function):
            names = [n for n in nums if glob_match(pattern.function, n)]
        else:
            names = [pattern.function] if pattern.function in nums else []
        out = []
        for fn in names:
            for probe_name in ("entry", "return"):
                if not glob_match(pattern.name, probe_name):
                    continue
                if probe_name == "entry":
                    args = self.entry_args(fn)
                else:
                    args = (ArgInfo("long", "int64_t", "rval"), ArgInfo("long", "int64_t", "rval"))
                out.append(ProbeSite("", fn, probe_name, args, data=nums[fn]))
        return out

    # -- binding -----------------------------------------------------------------------

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        if platform.machine() != "x86_64":
            raise DProbeError(f"the syscall provider supports x86_64 only, not {platform.machine()}")
        entries = tuple(p for p in probes if p.name == "entry")
        returns = tuple(p for p in probes if p.name == "return")
        out = []
        if entries:
            out.append(Binding(
                attach=RawTracepointAttach("sys_enter"),
                ctx_decl=api.RAW_TRACEPOINT_CTX,
                probes=entries,
                prologue=(api.saved_user_regs(),),
                selector=Selector(api.raw_tracepoint_arg(1), {p.id: p.data for p in entries}),
                arg_exprs=tuple(api.saved_register(r) for r in ARG_REGS),
                arg_notes=tuple(f"register {r} of the saved user pt_regs (ctx->args[0])"
                                for r in ARG_REGS),
                includes=api.PT_REGS_INCLUDES,
                kernel_stack_skip=api.RAW_TRACEPOINT_STACK_SKIP,
            ))
        if returns:
            ret = api.local("ret")
            failed = f"({ret} < 0 && {ret} >= -{MAX_ERRNO})"
            value = f"(u64)({failed} ? -1 : {ret})"
            out.append(Binding(
                attach=RawTracepointAttach("sys_exit"),
                ctx_decl=api.RAW_TRACEPOINT_CTX,
                probes=returns,
                prologue=(api.saved_user_regs(),
                          api.declare("s64", "ret", f"(s64){api.raw_tracepoint_arg(1)}")),
                selector=Selector(api.saved_register("orig_ax"),
                                  {p.id: p.data for p in returns}),
                arg_exprs=(value, value),
                arg_notes=("the return value (ctx->args[1]); -1 when the call failed",) * 2,
                builtins={"errno": f"({failed} ? -{ret} : 0)"},
                includes=api.PT_REGS_INCLUDES,
                kernel_stack_skip=api.RAW_TRACEPOINT_STACK_SKIP,
            ))
        return out
