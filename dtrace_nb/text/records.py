"""Trace records as dtrace(1) prints them, as they arrive.

Unless quiet, a `CPU ID FUNCTION:NAME` heading once, then per record the `%3d %6d %32s `
probe prefix, the actions' output, and a newline (dtrace's chew()/chewrec()). This module
formats what a record holds (trace(), tracemem(), printf() arguments); the consumer
decides which actions ran and carries out the ones that act on the session.
"""

from __future__ import annotations

from typing import Optional

from dtrace_nb.lang.types import IntType, StringType

# trace() widths by data size and signedness, from dtrace-utils' dt_print_trace
_TRACE_INT = {8: " %19d", 4: " %10d", 2: " %5d", 1: " %3d"}
_TRACE_UINT = {8: " %20d", 4: " %10d", 2: " %5d", 1: " %3d"}
HEADING = "%3s %6s %32s\n" % ("CPU", "ID", "FUNCTION:NAME")
# under _DTRACE_TESTING dtrace(1) leaves out the columns that vary from run to run
TESTING_HEADING = "%32s\n" % "FUNCTION:NAME"


def heading(testing: bool = False) -> str:
    return TESTING_HEADING if testing else HEADING


def probe_prefix(cpu: int, probe, testing: bool = False) -> str:
    """The start of a record's line: CPU, probe ID and FUNCTION:NAME (only the last
    under _DTRACE_TESTING, as dtrace(1)'s chew())."""
    name = f"{probe.function}:{probe.name}"
    if testing:
        return "%32s " % name
    return "%3d %6d %32s " % (cpu, probe.id, name)


def trace_text(dtype, value, quiet: bool) -> str:
    """trace(): strings left-aligned in 33 columns, integers right-aligned by size; bare
    when quiet."""
    if isinstance(dtype, StringType):
        return str(value) if quiet else "  %-33s" % value
    value = dtype.wrap(value) if isinstance(dtype, IntType) else value
    return trace_int_format(dtype, quiet) % value


def trace_int_format(dtype, quiet: bool) -> str:
    """The % format trace() prints an integer of `dtype` with (after wrapping it to the
    type's range): bare when quiet, else right-aligned by size."""
    if quiet:
        return "%d"
    size = dtype.size if isinstance(dtype, IntType) else 8
    widths = _TRACE_UINT if isinstance(dtype, IntType) and not dtype.signed else _TRACE_INT
    return widths.get(size, " %19d")


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


def exit_status(value: int) -> int:
    """exit()'s argument as dtrace(1) exits with it: a C int."""
    return IntType(4, True, "int").wrap(value)


def is_stack(dtype) -> bool:
    """A recorded stack()/ustack() id (printed as its symbolised frames)."""
    return getattr(dtype, "name", "") in ("stack", "ustack")


def is_pid(dtype) -> bool:
    """The pid recorded beside a ustack() (it names the process, it is not printed)."""
    return getattr(dtype, "name", "") == "pid"


def arg_type(dtype) -> tuple[int, bool]:
    """(size, signed) of a printf argument as the program typed it."""
    if isinstance(dtype, IntType):
        return (dtype.size, dtype.signed)
    return (8, True)
