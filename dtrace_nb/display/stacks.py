"""stack() and ustack() as DTrace prints them: a blank line, then one frame per line,
indented, as `module`symbol+0xoffset` (kernel frames: `vmlinux`), innermost first.

The kernel records only a stack id (a BPF stack-trace map entry) and the pid; symbols are
resolved here, in user space, with bcc's symbolizers (kallsyms for the kernel, the
process's ELF files for user stacks), so symbolising costs nothing in probe context.
"""

from __future__ import annotations

import os

INDENT = 14  # dt_print_stack's default indent in trace output


def frames(bpf, stackid: int) -> list[int]:
    if stackid >= 2**63:  # a negative id: the stack could not be recorded
        return []
    try:
        return list(bpf[b"dtnb_stacks"].walk(stackid))
    except (KeyError, OSError):
        return []


def kernel_frame(bcc, addr: int) -> str:
    name = bcc.BPF.ksym(addr, show_module=False, show_offset=True).decode(errors="replace")
    if name.startswith("[unknown]"):
        return f"0x{addr:x}"
    return f"vmlinux`{name}"


def user_frame(bcc, addr: int, pid: int) -> str:
    sym = bcc.BPF.sym(addr, pid, show_module=True, show_offset=True).decode(errors="replace")
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


def format_stack(bcc, bpf, kind: str, stackid: int, pid: int, args: list) -> str:
    limit = args[0] if args and args[0] else None
    addrs = frames(bpf, stackid)
    if limit:
        addrs = addrs[:limit]
    if kind == "stack":
        names = [kernel_frame(bcc, a) for a in addrs]
    else:
        names = [user_frame(bcc, a, pid) for a in addrs]
    return "\n" + "".join("%*s%s\n" % (INDENT, "", n) for n in names)
