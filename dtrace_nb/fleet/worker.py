"""The part of a fleet run that executes on each Dask worker: one Session of dtrace-nb's
own, traced until the fleet says stop, and what it leaves in plain picklable data.

Only this function is sent to a worker (with the program text and options as data):
nothing else runs there. It signals "live" once its probes are attached and stops when
the run's stop event is set (the client's -T, Ctrl-C, an exit() on any host), when its
own deadline passes, or when it can no longer reach the scheduler, so a host whose
client went away detaches by itself within a bounded time. While it traces it can put
its progress (counters, its aggregations so far, its newest lines) on the run's queue
for the client's live view.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from typing import Optional

from dtrace_nb.aggregate.snapshot import AggSnapshot
from dtrace_nb.errors import DError
from dtrace_nb.fleet.objects import DaskObjects
from dtrace_nb.fleet.probesets import host_probe_names
from dtrace_nb.lang.options import Options
from dtrace_nb.lang.parser import parse
from dtrace_nb.runtime.compiler import sharing
from dtrace_nb.session import Session, SessionConfig
from dtrace_nb.text.messages import is_fault_message

# how often a worker asks the scheduler whether the fleet stopped
STOP_POLL = 0.25
# a worker never outlives its run's duration by more than this (a lost client included)
GRACE = 30.0
# with no -T, a worker that cannot reach the scheduler stops after this long
UNREACHABLE = 10.0
# the client bumps its heartbeat this often; a worker that sees it unchanged for
# LOST_CLIENT seconds stops (its client died or was cut off)
BEAT = 1.0
LOST_CLIENT = 10.0
# destructive actions (system(), raise(), stop()...) run on a worker only if the worker
# was started with this set to 1: a client's -w alone is not enough
ALLOW_DESTRUCTIVE_ENV = "DTRACE_NB_FLEET_DESTRUCTIVE"
# printed lines a progress report carries at most (the live view shows the newest only)
PROGRESS_LINES = 40


def destructive_refusal(cfg: SessionConfig) -> Optional[str]:
    """Why this worker refuses the program (it enables destructive actions, by -w or a
    pragma, and the worker was not started allowing them), or None. Read from the options
    and the program's pragmas alone: probes are not matched here (a pid$target probe
    matches only once the target exists), and destructive actions compile only where the
    option is set."""
    if os.environ.get(ALLOW_DESTRUCTIVE_ENV) == "1":
        return None
    opts = Options()
    for name, value in cfg.options.items():
        opts.set(name, value)
    for pragma in parse(cfg.source).pragmas:
        opts.apply_pragma(pragma)
    if opts["destructive"]:
        return (f"destructive actions refused: this worker was not started with "
                f"{ALLOW_DESTRUCTIVE_ENV}=1")
    return None


class _StopWatch:
    """should_stop() for Session.run: the fleet's stop event (read every STOP_POLL), the
    client's heartbeat (a counter it bumps every BEAT; unchanged for LOST_CLIENT s means
    the client is gone), and the worker's own deadline. Counters, not clocks: the hosts'
    clocks need not agree. The scheduler is asked from a thread of its own, so that a
    scheduler that went away (whose calls hang until Dask's connect timeout) is noticed
    after UNREACHABLE s, not after that timeout."""

    def __init__(self, stop_event, beat, deadline: Optional[float]):
        self.event, self.beat, self.deadline = stop_event, beat, deadline
        self._next = self._next_beat = 0.0
        self._unreachable_since: Optional[float] = None
        self._last_beat, self._beat_seen = None, time.monotonic()
        self._asker = ThreadPoolExecutor(1, thread_name_prefix="dtrace-nb-fleet")
        self._pending = None
        self.reason = ""

    def _ask(self, want_beat: bool):
        stopped = self.event.is_set()
        return stopped, (self.beat.get(timeout=STOP_POLL) if want_beat else self._last_beat)

    def _answer(self, now: float):
        """(stopped, beat) from the scheduler, or None while it does not answer."""
        if self._pending is None:
            want_beat = now >= self._next_beat
            if want_beat:
                self._next_beat = now + BEAT
            self._pending = self._asker.submit(self._ask, want_beat)
        try:
            answer = self._pending.result(timeout=STOP_POLL)
        except FutureTimeout:
            return None  # still waiting: asked again once it answers
        except Exception:  # noqa: BLE001 - the scheduler is gone or refused
            self._pending = None
            return None
        self._pending = None
        return answer

    def say_live(self, live_event) -> None:
        """Set the fleet's live event from the asking thread: a scheduler that just went
        away would hold the trace in that call until Dask's connect timeout (30 s) before
        the first question; queued there, it only delays the answers UNREACHABLE counts."""
        self._pending = self._asker.submit(lambda: (live_event.set(), self._ask(False))[1])

    def __call__(self) -> bool:
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self.reason = "deadline"
            return True
        if now < self._next:
            return False
        self._next = now + STOP_POLL
        answer = self._answer(now)
        if answer is None:
            self._unreachable_since = self._unreachable_since or now
            if now - self._unreachable_since >= UNREACHABLE:
                self.reason = "scheduler unreachable"
                return True
            return False
        self._unreachable_since = None
        stopped, beat = answer
        if beat != self._last_beat:
            self._last_beat, self._beat_seen = beat, now
        elif now - self._beat_seen >= LOST_CLIENT:
            self.reason = "client lost"
            return True
        return stopped

    def close(self) -> None:
        self._asker.shutdown(wait=False)


def plain_snapshot(s: AggSnapshot) -> dict:
    """An AggSnapshot as lists (the reader's numpy columns do not need to travel)."""
    return {"name": s.name, "func": s.func, "key_names": list(s.key_names),
            "key_kinds": list(s.key_kinds), "keys": [tuple(k) for k in s.keys],
            "values": list(s.values), "params": tuple(s.params)}


def snapshot_from_plain(d: dict) -> AggSnapshot:
    return AggSnapshot(d["name"], d["func"], d["key_names"], d["key_kinds"],
                       [tuple(k) for k in d["keys"]], d["values"], tuple(d["params"]))


class _Progress:
    """The host's progress, put on the run's queue every `every` seconds from a thread of
    its own (a scheduler that went away must not hold the trace); a report still being
    sent when the next is due is skipped: the view only wants the newest."""

    def __init__(self, queue, host: str, address: str):
        self.queue, self.host, self.address = queue, host, address
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="dtrace-nb-progress")
        self._sending = None
        self._chunks_read = 0  # of session.output: each report reads only what is new
        self._line_count = 0
        self._partial = ""     # a line not ended yet
        self.seq = 0

    def __call__(self, session: Session) -> None:
        if self._sending is not None and not self._sending.done():
            return
        chunks = session.output[self._chunks_read:]
        self._chunks_read += len(chunks)
        text = self._partial + "".join(chunks)
        new = text.split("\n")
        self._partial = new.pop()
        self._line_count += len(new)
        self.seq += 1
        report = {"host": self.host, "address": self.address, "seq": self.seq,
                  "records": session.records, "errors": session.errors,
                  "drops": sum(session.drops().values()),
                  "first_error": next((m for m in session.messages
                                       if is_fault_message(m)), ""),
                  "lines": new[-PROGRESS_LINES:], "line_count": self._line_count,
                  "factors": session.normalize_factors(),
                  "snapshots": {n: plain_snapshot(s)
                                for n, s in session.snapshot().items()}}
        self._sending = self._sender.submit(self.queue.put, report)

    def close(self) -> None:
        self._sender.shutdown(wait=False)


def trace_on_worker(config: dict, run_id: str, duration: Optional[float],
                    progress_every: Optional[float] = None, share_objects: bool = True) -> dict:
    """Trace `config` (SessionConfig's fields) on this worker until the fleet stops; with
    `progress_every`, report progress on the run's queue that often.
    Returns host, snapshots (name -> plain snapshot), normalize factors, output chunks,
    messages, records, drops, errors, exit status, stop reason, the probes enabled, the
    records kept as columns (record_frames: [(clause, text, DataFrame)]), the compiled
    objects shared with the run's other hosts, and error (text or None). `share_objects`:
    compile once per kernel flavour among the run's hosts (fleet/objects.py)."""
    from distributed import Event, Queue, Variable, get_client, get_worker  # on a worker

    worker = get_worker()
    host = str(worker.name) if worker.name is not None else socket.gethostname()
    # the worker's client, found from this (the task's) thread: the stop watch asks from a
    # thread of its own, where Dask finds no worker and would look for a default client
    # (none in a Nanny's worker process: every question hung until UNREACHABLE)
    client = get_client()
    live, stop = Event(f"dtrace-nb-{run_id}-live-{worker.address}", client=client), \
        Event(f"dtrace-nb-{run_id}-stop", client=client)
    beat = Variable(f"dtrace-nb-{run_id}-beat", client=client)
    cfg = SessionConfig(**{**config, "fleet_member": True})
    session = Session(cfg)
    deadline = time.monotonic() + duration + GRACE if duration else None
    watch = _StopWatch(stop, beat, deadline)
    progress = _Progress(Queue(f"dtrace-nb-{run_id}-progress", client=client), host,
                         worker.address) if progress_every else None
    objects = DaskObjects(run_id, client) if share_objects else None
    error: Optional[str] = None
    said_live = []

    def should_stop() -> bool:
        if not said_live:
            watch.say_live(live)  # probes attached: run() asks this only after start()
            said_live.append(True)
        return watch()

    try:
        refusal = destructive_refusal(cfg)
        if refusal is not None:
            raise DError(refusal)
        with sharing(objects):
            outcome = session.run(duration=duration + GRACE if duration else None,
                                  should_stop=should_stop, on_tick=progress,
                                  tick=progress_every or 3600)
        if outcome.error is not None:
            error = outcome.error.render(cfg.source)
        elif watch.reason:
            session.messages.append(f"dtrace-nb: stopped on its own: {watch.reason}")
        elif session.exit_status is not None:
            stop.set()  # exit() on one host stops the whole fleet, as it stops one dtrace
    except DError as err:
        error = err.render(cfg.source)
    except Exception as exc:  # noqa: BLE001 - reported by host name, the others go on
        error = f"internal error: {type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    finally:
        watch.close()
        if progress is not None:
            progress.close()
        if not said_live:
            live.set()  # ended before it was live: the client must not wait for it
    snap = session._final or {}
    target_pid = session.target.pid if session.target else None
    return {
        "host": host,
        "address": worker.address,
        "snapshots": {n: plain_snapshot(s) for n, s in snap.items()},
        "factors": session.normalize_factors(),
        "output": list(session.output),
        "messages": list(session.messages),
        "records": session.records,
        "errors": session.errors,
        "drops": session.drops(),
        "exit_status": session.exit_status,
        "stop_reason": session.stop_reason,
        "target_pid": target_pid,
        # None: no program was made here (it did not compile): no probe set to compare
        "probes": host_probe_names(session.program.probes, target_pid)
        if session.program is not None else None,
        "frames": [(i, text, df) for (i, text), df in session.records_frames().items()],
        "shared_objects": list(objects.published) if objects else [],
        "objects_received": objects.received if objects else 0,
        "compiled_from_cache": session.compiled_from_cache,
        "duration": (session.ended_at - session.started_at) if session.started_at else 0.0,
        "probes_enabled": session.probes_enabled,
        "error": error,
    }


def config_fields(cfg: SessionConfig) -> dict:
    """A SessionConfig as the plain fields trace_on_worker takes."""
    return asdict(cfg)
