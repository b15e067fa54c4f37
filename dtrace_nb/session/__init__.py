"""One tracing run, start -> poll -> stop, shared by the magic, the command and the fleet.

core.py is the Session, the orchestrator; each of its parts has a module of its own:
config.py (what a run is asked to do, and how it ended), pipeline.py (the program in the
kernel wired to the ring buffer, the aggregations and the consumer: BEGIN/END/ERROR, drains,
snapshots, lost data), run.py (the whole run: the deadline, ticks, Ctrl-C). The target
process is runtime/target.py's, dtrace(1)'s notices text/messages.py's.
"""

from dtrace_nb.session.config import RunOutcome, SessionConfig
from dtrace_nb.session.core import Session

__all__ = ["RunOutcome", "Session", "SessionConfig"]
