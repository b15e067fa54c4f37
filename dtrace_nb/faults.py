"""DTrace's run-time fault kinds (DTRACEFLT_*), defined once.

The generated C reports a fault with one of these numbers in an error record (codegen);
the consumer turns the record into dtrace(1)'s message with the words below (the words
of libdtrace's dtrace_faultstr) and fires the ERROR probe with the number as arg4.
"""

from __future__ import annotations

FLT_UNKNOWN = 0
FLT_BADADDR = 1
FLT_BADALIGN = 2
FLT_ILLOP = 3
FLT_DIVZERO = 4
FLT_NOSCRATCH = 5
FLT_KPRIV = 6
FLT_UPRIV = 7
FLT_TUPOFLOW = 8
FLT_BADSTACK = 9
FLT_BADSIZE = 10
FLT_BADINDEX = 11

FAULT_WORDS = {
    FLT_UNKNOWN: "unknown fault",
    FLT_BADADDR: "invalid address",
    FLT_BADALIGN: "invalid alignment",
    FLT_ILLOP: "illegal operation",
    FLT_DIVZERO: "divide-by-zero",
    FLT_NOSCRATCH: "out of scratch space",
    FLT_KPRIV: "invalid kernel access",
    FLT_UPRIV: "invalid user access",
    FLT_TUPOFLOW: "tuple stack overflow",
    FLT_BADSTACK: "bad stack",
    FLT_BADSIZE: "invalid size",
    FLT_BADINDEX: "index out of bounds",
}

# faults whose message shows the faulting address in hex (dt_handle_err)
ADDRESS_FAULTS = frozenset((FLT_BADADDR, FLT_BADALIGN, FLT_BADSTACK, FLT_BADSIZE))


def fault_words(fault: int) -> str:
    """dtrace_faultstr: what dtrace(1) calls a fault kind."""
    return FAULT_WORDS.get(fault, FAULT_WORDS[FLT_UNKNOWN])


def fault_details(fault: int, addr: int) -> str:
    """The part of the message after the fault's words: ' (0x1c)' for an address, the
    index for an index out of bounds, nothing for the others."""
    if fault in ADDRESS_FAULTS:
        return f" (0x{addr:x})"
    if fault == FLT_BADINDEX:
        addr &= (1 << 64) - 1
        return f" ({addr - (1 << 64) if addr >> 63 else addr})"
    return ""
