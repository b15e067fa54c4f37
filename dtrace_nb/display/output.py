"""The consumer's text stream, as dtrace(1) prints it.

Records are printed as they arrive: unless quiet, a `CPU ID FUNCTION:NAME` heading once,
then per record the `%3d %6d %32s ` probe prefix, the actions' output, and a newline
(dtrace's chew()/chewrec()). At the end: every aggregation in DTrace's default format,
then drop reports.
"""

from __future__ import annotations

from typing import Callable, Optional

from dtrace_nb.lang.types import IntType, StringType

# trace() widths by data size, from libdtrace's dt_consume_cpu
_TRACE_INT = {8: " %16d", 4: " %8d", 2: " %5d", 1: " %3d"}


class OutputFormatter:
    def __init__(self, checked, program, emit: Callable[[str], None]):
        self.checked = checked
        self.program = program
        self.emit = emit
        self.quiet = bool(checked.options["quiet"])
        self.heading = False
        self.exit_status: Optional[int] = None
        self.layouts = {r.epid: r for r in program.resources.records.values()}

    def record(self, rec) -> None:
        from dtrace_nb.display.printf import format_printf

        layout = self.layouts[rec.epid]
        out = []
        if not self.quiet:
            if not self.heading:
                out.append("%3s %6s %32s\n" % ("CPU", "ID", "FUNCTION:NAME"))
                self.heading = True
            name = f"{rec.probe.function}:{rec.probe.name}"
            out.append("%3d %6d %32s " % (rec.cpu, rec.probe.id, name))
        for action in layout.actions:
            fields = [layout.fields[i] for i in action.fields]
            values = [rec.values[i] for i in action.fields]
            if action.kind == "printf":
                out.append(format_printf(action.fmt, values,
                                         [_arg_type(f.dtype) for f in fields]))
            elif action.kind == "trace":
                out.append(self.trace_text(fields[0].dtype, values[0]))
            elif action.kind == "exit":
                self.exit_status = IntType(4, True, "int").wrap(values[0])
        if not self.quiet:
            out.append("\n")
        if out:
            self.emit("".join(out))

    def trace_text(self, dtype, value) -> str:
        if isinstance(dtype, StringType):
            return str(value) if self.quiet else "  %-33s" % value
        size = dtype.size if isinstance(dtype, IntType) else 8
        value = dtype.wrap(value) if isinstance(dtype, IntType) else value
        return ("%d" if self.quiet else _TRACE_INT.get(size, " %16d")) % value

    def end(self, snapshot: dict, drops: dict) -> None:
        """dtrace(1) at the end: a newline, then every aggregation (in program order)."""
        from dtrace_nb.display.text import format_all

        self.emit(format_all([(s.func, s.keys, s.values, s.key_kinds)
                              for name in self.program.resources.aggs
                              if (s := snapshot.get(name)) is not None]))


def drop_messages(drops: dict) -> list[str]:
    """DTrace's wording: 'dtrace: 12 aggregation drops on CPU 0'."""
    return [f"dtrace: {n} {kind} drop{'s' * (n != 1)} on CPU {cpu}"
            for (kind, cpu), n in sorted(drops.items())]


def _arg_type(dtype) -> tuple[int, bool]:
    if isinstance(dtype, IntType):
        return (dtype.size, dtype.signed)
    return (8, True)
