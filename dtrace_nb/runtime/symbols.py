"""Stack symbolisation: the addresses a program recorded (a stack-trace map entry and a
pid, or one address for printf's %a) as DTrace names them, `module`symbol+0xoffset`
(kernel frames: `vmlinux`).

Symbols are resolved here, in user space, with bcc's symbolizers (kallsyms for the kernel,
the process's ELF files for user stacks; bcc keeps one cache per process), so symbolising
costs nothing in probe context. The text layout of a stack is text/stacks.py's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.runtime.environment import import_bcc

if TYPE_CHECKING:  # printf's %a needs this module without numpy and the maps
    from dtrace_nb.runtime.maps import StackTraceMap


def kernel_frame(addr: int) -> str:
    """A kernel address as `vmlinux`symbol+0xoff`, or 0x-hex if kallsyms has no symbol."""
    name = import_bcc().BPF.ksym(addr, show_module=False, show_offset=True) \
        .decode(errors="replace")
    if name.startswith("[unknown]"):
        return f"0x{addr:x}"
    return f"vmlinux`{name}"


def user_frame(addr: int, pid: int) -> str:
    """A user address of process `pid` as `module`symbol+0xoff` (module: the file's base
    name), `module`0x-hex without a symbol, 0x-hex without a module."""
    sym = import_bcc().BPF.sym(addr, pid, show_module=True, show_offset=True) \
        .decode(errors="replace")
    # bcc: "func+0x12 [module path]" -> DTrace: "module`func+0x12"
    if sym.endswith("]") and " [" in sym:
        name, _, module = sym[:-1].rpartition(" [")
        module = os.path.basename(module)
        if name.startswith("[unknown]"):
            return f"{module}`0x{addr:x}"
        return f"{module}`{name}"
    if sym.startswith("[unknown]"):
        return f"0x{addr:x}"
    return sym


def kernel_symbol(addr: int) -> Optional[str]:
    """printf's %a: a kernel address as module`symbol+0xoff (no +0x0, as DTrace), or None
    when bcc or the symbol is not there (the caller prints hex)."""
    try:
        name = kernel_frame(addr)
    except (DEnvironmentError, OSError, ValueError):
        return None
    if name.startswith("0x"):
        return None
    return name[:-4] if name.endswith("+0x0") else name


# The tracing machinery between a probe site and our program (the program itself, the raw
# tracepoint trampolines and iterators): DTrace's stacks start at the probe site. The
# bindings skip what they can in the kernel (Binding.kernel_stack_skip); the unwinder does
# not always report the same frames there, so any left at the top are dropped by name.
_GLUE_PREFIXES = ("bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_")


def _is_glue(frame: str) -> bool:
    return frame.startswith("vmlinux`") and frame[8:].startswith(_GLUE_PREFIXES)


def without_glue(frames: list[str]) -> list[str]:
    """Kernel frames from the probe site out: leading tracing-machinery frames dropped."""
    i = 0
    while i < len(frames) and _is_glue(frames[i]):
        i += 1
    return frames[i:]


def warm_user_symbols(pid: int) -> None:
    """Read the process's mappings now, so that its ustack() frames can be named after it
    has exited (bcc keeps what it read)."""
    import_bcc().BPF.sym(0, pid)


class StackSymbols:
    """The stacks a program recorded, symbolised: `frames()` reads an entry of its stack
    map and names each frame (none when the program records no stacks)."""

    def __init__(self, stacks: Optional["StackTraceMap"]):
        self.stacks = stacks

    def frames(self, kind: str, stackid: int, pid: int, limit: Optional[int] = None) -> list[str]:
        """The frame names of stack `stackid` (kind 'stack': kernel, 'ustack': process
        `pid`), innermost first, at most `limit` of them."""
        addrs = self.stacks.frames(stackid) if self.stacks is not None else []
        if kind == "stack":
            names = without_glue([kernel_frame(a) for a in addrs])
            return names[:limit] if limit else names
        if limit:
            addrs = addrs[:limit]
        return [user_frame(a, pid) for a in addrs]
