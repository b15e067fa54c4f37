"""stack() and ustack() as DTrace prints them: a blank line, then one frame per line,
indented, innermost first. The frames come already named (`module`symbol+0xoffset`) from
runtime/symbols.py; this module only lays them out (consumer and aggregations call it).
"""

from __future__ import annotations

from dtrace_nb.runtime.symbols import StackSymbols

INDENT = 14  # dt_print_stack's default indent in trace output


def format_frames(names: list[str]) -> str:
    return "\n" + "".join("%*s%s\n" % (INDENT, "", n) for n in names)


def format_stack(symbols: StackSymbols, kind: str, stackid: int, pid: int, args: list) -> str:
    """The text of a recorded stack; args: the action's arguments (a frame limit)."""
    limit = args[0] if args and args[0] else None
    return format_frames(symbols.frames(kind, stackid, pid, limit))
