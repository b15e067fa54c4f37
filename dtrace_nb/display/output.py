"""The consumer's text stream, as dtrace(1) prints it.

Records are printed as they arrive: unless quiet, a `CPU ID FUNCTION:NAME` heading once,
then per record the `%3d %6d %32s ` probe prefix, the actions' output, and a newline
(dtrace's chew()/chewrec()). Actions that act on the session (printa, clear, trunc,
normalize, setopt, system) go through `hooks` (the session). At the end: every aggregation
in DTrace's default format, then drop reports.
"""

from __future__ import annotations

from typing import Callable, Optional

from dtrace_nb.faults import fault_details, fault_words
from dtrace_nb.lang.types import IntType, StringType

# trace() widths by data size, from libdtrace's dt_consume_cpu
_TRACE_INT = {8: " %16d", 4: " %8d", 2: " %5d", 1: " %3d"}


def error_message(rec, desc: str) -> str:
    """dt_handle_err's wording (no DIF offsets here: there is no DIF)."""
    where = "predicate" if rec.action == 0 else f"action #{rec.action}"
    return (f"dtrace: error on enabled probe ID {rec.epid} (ID {rec.probe.id}: {desc}): "
            f"{fault_words(rec.fault)}{fault_details(rec.fault, rec.addr)} in {where}")


class OutputFormatter:
    def __init__(self, checked, program, emit: Callable[[str], None], hooks=None):
        self.checked = checked
        self.program = program
        self.emit = emit
        self.hooks = hooks
        self.quiet = bool(checked.options["quiet"])
        self.heading = False
        self.exit_status: Optional[int] = None
        self.layouts = {r.epid: r for r in program.resources.records.values()}

    def record(self, rec) -> None:
        layout = self.layouts[rec.epid]
        out = []
        if not self.quiet:
            if not self.heading:
                out.append("%3s %6s %32s\n" % ("CPU", "ID", "FUNCTION:NAME"))
                self.heading = True
            name = f"{rec.probe.function}:{rec.probe.name}"
            out.append("%3d %6d %32s " % (rec.cpu, rec.probe.id, name))
        for action in layout.actions:
            if not (rec.mask >> action.bit) & 1 and action.kind != "default":
                continue
            fields = [layout.fields[i] for i in action.fields]
            values = [rec.values[i] for i in action.fields]
            text = self.action(action, fields, values, rec)
            if text:
                out.append(text)
        if not self.quiet:
            out.append("\n")
        if out:
            self.emit("".join(out))

    def action(self, action, fields, values, rec) -> str:
        from dtrace_nb.display.printf import format_printf

        kind = action.kind
        if kind == "printf":
            return format_printf(action.fmt, self.printf_values(fields, values),
                                 [_arg_type(f.dtype) for f in fields
                                  if getattr(f.dtype, "name", "") != "pid"])
        if kind == "trace":
            return self.trace_text(fields[0].dtype, values[0])
        if kind == "tracemem":
            return self.tracemem_text(values[0], values[1] if len(values) > 1 else None)
        if kind in ("stack", "ustack"):
            return self.hooks.stack_text(kind, values[0], values[1], action.args) \
                if self.hooks else ""
        if kind == "exit":
            self.exit_status = IntType(4, True, "int").wrap(values[0])
            return ""
        if self.hooks is None:
            return ""
        if kind == "printa":
            return self.hooks.printa_text(action.fmt, action.aggs)
        if kind == "clear":
            self.hooks.agg_clear(action.aggs[0])
        elif kind == "trunc":
            self.hooks.agg_trunc(action.aggs[0], values[0] if values else None)
        elif kind == "normalize":
            self.hooks.agg_normalize(action.aggs[0], values[0])
        elif kind == "denormalize":
            self.hooks.agg_normalize(action.aggs[0], 1)
        elif kind == "setopt":
            self.hooks.setopt(*action.args)
        elif kind == "system":
            self.hooks.system(format_printf(action.fmt, self.printf_values(fields, values),
                                            [_arg_type(f.dtype) for f in fields]))
        return ""

    def printf_values(self, fields, values) -> list:
        """printf arguments: a stack()'s (id, pid) pair becomes its symbolised text."""
        out = []
        i = 0
        while i < len(fields):
            f = fields[i]
            if getattr(f.dtype, "name", "") in ("stack", "ustack") and self.hooks is not None:
                out.append(self.hooks.stack_text(f.dtype.name, values[i], values[i + 1], []))
                i += 2
                continue
            out.append(values[i])
            i += 1
        return out

    def trace_text(self, dtype, value) -> str:
        if isinstance(dtype, StringType):
            return str(value) if self.quiet else "  %-33s" % value
        size = dtype.size if isinstance(dtype, IntType) else 8
        value = dtype.wrap(value) if isinstance(dtype, IntType) else value
        return ("%d" if self.quiet else _TRACE_INT.get(size, " %16d")) % value

    @staticmethod
    def tracemem_text(data: bytes, count: Optional[int]) -> str:
        """dt_print_bytes' hex dump: offset header, 16 bytes a row, printable column."""
        if count is not None:
            data = data[:max(0, min(count, len(data)))]
        out = ["\n", "%*s  0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f  0123456789abcdef\n"
               % (5, "")]
        for off in range(0, len(data), 16):
            chunk = data[off:off + 16]
            hexes = "".join(f" {b:02x}" for b in chunk) + "   " * (16 - len(chunk))
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            out.append("%5x:%s  %s\n" % (off, hexes, text))
        return "".join(out)

    def end(self, snapshot: dict, drops: dict) -> None:
        """dtrace(1) at the end: a newline, then every aggregation (in program order)."""
        from dtrace_nb.display.text import format_all

        self.emit(format_all([(s.func, s.keys, s.values, s.key_kinds, s.params)
                              for name in self.program.resources.aggs
                              if (s := snapshot.get(name)) is not None and len(s)]))


# How dtrace(1) words each kind of loss (libdtrace's dt_handle_cpudrop and
# dt_handle_status): buffer and aggregation drops per CPU, the others as one total.
_PER_CPU_DROPS = {"ring buffer": "", "aggregation": "aggregation "}
# kind -> (what, said after the plural): speculation() finding every buffer in use is
# DTrace's DTRACEDROP_SPECUNAVAIL
_TOTAL_DROPS = {"dynamic variable": ("dynamic variable drop", ""),
                "speculation": ("failed speculation", " (no speculative buffer available)")}


def is_loss_message(text: str) -> bool:
    """Whether a consumer message reports lost data (one of drop_messages' lines)."""
    return text.startswith("dtrace: ") and ("drop" in text or "failed speculation" in text)


def drop_messages(drops: dict) -> list[str]:
    """DTrace's words for (kind, cpu) -> count: 'dtrace: 12 aggregation drops on CPU 0',
    'dtrace: 3 drops on CPU 1' (the principal buffer: our ring buffer), 'dtrace: 5 dynamic
    variable drops', 'dtrace: 2 failed speculations (no speculative buffer available)'."""
    out = []
    for (kind, cpu), n in sorted(drops.items()):
        if n and kind in _PER_CPU_DROPS:
            out.append(f"dtrace: {n} {_PER_CPU_DROPS[kind]}drop{'s' * (n > 1)} on CPU {cpu}")
    totals: dict[str, int] = {}
    for (kind, _cpu), n in drops.items():
        if kind not in _PER_CPU_DROPS:
            totals[kind] = totals.get(kind, 0) + n
    for kind, n in sorted(totals.items()):
        if n:
            what, after = _TOTAL_DROPS.get(kind, (f"{kind} drop", ""))
            out.append(f"dtrace: {n} {what}{'s' * (n > 1)}{after}")
    return out


def _arg_type(dtype) -> tuple[int, bool]:
    if isinstance(dtype, IntType):
        return (dtype.size, dtype.signed)
    return (8, True)
