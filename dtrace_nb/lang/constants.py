"""Integer constants every D program may name, as a Linux DTrace predefines them (its
libdtrace/*.d inlines): signal and errno names with this system's numbers, the
DTRACEFLT_* fault kinds an ERROR clause compares arg4 with, process states, NULL.

A name here is a constant, not a variable: its value is known when checking, so it can be
a constant argument (`lquantize(x, 0, SIGRTMIN)`) as well as a value (`raise(SIGUSR1)`).
"""

from __future__ import annotations

import errno
import signal

from dtrace_nb import faults
from dtrace_nb.lang.types import INT, IntType, PtrType

CHAR = IntType(1, True, "char")
VOID_PTR = PtrType(8, False, "void *", None)


def _signals() -> dict[str, int]:
    # the Linux numbers (with their aliases SIGIOT, SIGCLD, SIGPOLL); DTrace leaves out
    # SIGRTMIN/SIGRTMAX, which are not constants in C either
    return {n: int(getattr(signal, n)) for n in dir(signal)
            if n.startswith("SIG") and not n.startswith("SIG_")
            and n not in ("SIGRTMIN", "SIGRTMAX")}


def _errnos() -> dict[str, int]:
    return {n: int(getattr(errno, n)) for n in dir(errno) if n.startswith("E")
            and isinstance(getattr(errno, n), int)}


def _faults() -> dict[str, int]:
    return {"DTRACEFLT_" + n[4:]: v for n, v in vars(faults).items()
            if n.startswith("FLT_") and isinstance(v, int)}


# process states of psinfo's pr_sname / lwpsinfo's pr_state (chars in DTrace)
_PROCESS_STATES = {"SSLEEP": 1, "SRUN": 2, "SZOMB": 3, "SSTOP": 4, "SIDL": 5, "SONPROC": 6,
                   "SWAIT": 7}
# si_code values of a SIGCHLD (proc:::signal-* probes' siginfo)
_CHILD_CODES = {"CLD_EXITED": 1, "CLD_KILLED": 2, "CLD_DUMPED": 3, "CLD_TRAPPED": 4,
                "CLD_STOPPED": 5, "CLD_CONTINUED": 6}
_DATA_MODELS = {"PR_MODEL_ILP32": 1, "PR_MODEL_LP64": 2}
# address families of inet_ntop() and hardware types of link_ntop() (Linux's numbers)
AF_INET, AF_INET6 = 2, 10
ARPHRD_ETHER, ARPHRD_INFINIBAND = 1, 32
_NETWORK = {"AF_INET": AF_INET, "AF_INET6": AF_INET6, "ARPHRD_ETHER": ARPHRD_ETHER,
            "ARPHRD_INFINIBAND": ARPHRD_INFINIBAND}

CONSTANTS: dict[str, tuple[int, IntType]] = {
    **{n: (v, INT) for n, v in _signals().items()},
    **{n: (v, INT) for n, v in _errnos().items()},
    **{n: (v, INT) for n, v in _faults().items()},
    **{n: (v, CHAR) for n, v in _PROCESS_STATES.items()},
    **{n: (v, INT) for n, v in _CHILD_CODES.items()},
    **{n: (v, CHAR) for n, v in _DATA_MODELS.items()},
    **{n: (v, INT) for n, v in _NETWORK.items()},
    "NULL": (0, VOID_PTR),
}
