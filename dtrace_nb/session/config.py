"""What a session is asked to do (SessionConfig) and how its run ended (RunOutcome)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.errors import DError


@dataclass
class SessionConfig:
    source: str
    target_command: Optional[str] = None
    target_pid: Optional[int] = None
    macro_args: list[str] = field(default_factory=list)
    options: dict[str, Optional[str]] = field(default_factory=dict)  # -x name=value
    quiet: bool = False
    capture_target_output: bool = False
    # Keep the records of clauses that only record data (trace, printf, tracemem, the
    # default action) as columns for Result.records_frame() instead of formatting them to
    # text; every other record (exit, printa, speculations, ERROR...) is handled as usual.
    # Clauses of BEGIN/END/ERROR and speculative records stay text.
    record_frames: bool = False
    # One host of a fleet (dtrace_nb/fleet): aggregations are read without normalize()'s
    # factor (Session.normalize_factors() has them) and not printed at the end: the fleet
    # merges every host's, divides once and prints them.
    fleet_member: bool = False
    # the programs as given on the command line (frontend.Command): one 'matched N probes'
    # notice each, as dtrace(1); without them (a cell), one per clause
    commands: list = field(default_factory=list)
    # dtrace(1)'s _DTRACE_TESTING: records without the CPU and ID columns
    testing: bool = False
    # --budget: the kernel's run-time statistics of every attachment while tracing
    # (runtime/budget.py), reported at the end
    budget: bool = False


@dataclass
class RunOutcome:
    """How run() ended, besides what the session holds (Result.from_session takes both)."""

    interrupted: bool = False
    error: Optional[DError] = None
