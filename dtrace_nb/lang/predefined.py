"""The integer names D scripts may use without declaring them: DTrace's signal.d and
errno.d inlines (SIGKILL, EPERM, ...), here with the values of the system dtrace-nb runs
on (Python's signal and errno modules have them from the C library), and NULL."""

from __future__ import annotations

import errno
import signal
from functools import lru_cache


@lru_cache(maxsize=1)
def predefined_constants() -> dict[str, int]:
    names: dict[str, int] = {"NULL": 0}
    names.update({s.name: int(s) for s in signal.Signals if not s.name.startswith("CTRL")})
    for real in ("SIGRTMIN", "SIGRTMAX"):
        if hasattr(signal, real):
            names[real] = int(getattr(signal, real))
    names.update({name: number for number, name in errno.errorcode.items()})
    return names
