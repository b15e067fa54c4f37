"""Arguments of a function probe read from its saved registers (struct pt_regs, x86-64
System V calling convention): what kprobes (fbt) and uprobes (pid) hand their programs."""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api

ARG_REGS = ("di", "si", "dx", "cx", "r8", "r9")


def pt_regs_args(ret: bool, probe_kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(C expressions, explain notes) of arg0..: the six argument registers at entry; at
    return arg0 = 0 (the return offset, which `probe_kind` cannot know) and arg1 = rax."""
    if ret:
        return ("0", api.register("ax")), (f"0: a {probe_kind} does not know the return offset",
                                  "the return value (rax)")
    return (tuple(api.register(r) for r in ARG_REGS),
            tuple(f"argument register {r} ({probe_kind} pt_regs)" for r in ARG_REGS))
