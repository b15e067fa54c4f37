"""The client side of a fleet run: choose workers of a Dask cluster, start the program on
each (fleet/worker.py), stop them together, gather, and merge the aggregations exactly
(aggregate/merge.py). A worker that fails (cannot compile or load, died, did not answer)
is reported by name; the others' results are kept.

`distributed` is imported here only, when a cluster is used (the extra `fleet`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from dtrace_nb.aggregate.merge import MergeError, merge_hosts
from dtrace_nb.aggregate.snapshot import AggSnapshot
from dtrace_nb.errors import DUsageError
from dtrace_nb.fleet.probesets import probe_differences
from dtrace_nb.fleet.progress import FleetProgress, ProgressBoard
from dtrace_nb.fleet.worker import (BEAT, GRACE, config_fields, snapshot_from_plain,
                                    trace_on_worker)
from dtrace_nb.session import SessionConfig

# a worker that is not live this long after the start is traced without (it may join)
LIVE_TIMEOUT = 60.0
POLL = 0.1


@dataclass
class HostRun:
    """What one worker left (fleet/worker.py's dict), or why it left nothing."""

    host: str
    address: str
    data: dict = field(default_factory=dict)
    failure: str = ""  # non-empty: the host failed, in a few words

    @property
    def ok(self) -> bool:
        return not self.failure

    def snapshots(self) -> dict[str, AggSnapshot]:
        return {n: snapshot_from_plain(d) for n, d in self.data.get("snapshots", {}).items()}


@dataclass
class FleetOutcome:
    """A fleet run's end: every chosen host's run, the merged aggregations, messages."""

    hosts: list[HostRun]
    merged: dict[str, AggSnapshot]
    per_host: dict[str, dict[str, AggSnapshot]]
    messages: list[str]
    stop_reason: str = ""
    interrupted: bool = False
    duration: float = 0.0
    live_after: float = 0.0  # seconds from the submission until every host was live

    @property
    def failed(self) -> list[HostRun]:
        return [h for h in self.hosts if not h.ok]


def _import_distributed():
    try:
        import distributed  # only with a cluster: the optional extra `fleet`
    except ImportError:
        raise DUsageError("--cluster needs Dask distributed",
                          hint="pip install 'dtrace-nb[fleet]'") from None
    return distributed


def _host_names(workers: dict) -> dict[str, str]:
    """worker address -> the name a host is reported by (the worker's name, else address)."""
    names = {}
    for addr, info in workers.items():
        name = info.get("name")
        name = addr if name is None or name == "" else str(name)  # LocalCluster's are 0, 1
        names[addr] = name if name not in names.values() else f"{name}@{addr}"
    return names


def choose_workers(workers: dict, hosts: Optional[list[str]] = None,
                   count: Optional[int] = None) -> dict[str, str]:
    """address -> host name of the workers to trace on: those named by `hosts` (a
    worker's name, host or address), else the first `count`, else all of them."""
    names = _host_names(workers)
    if not names:
        raise DUsageError("the cluster has no workers")
    if hosts:
        chosen = {a: n for a, n in names.items()
                  if {n, a, workers[a].get("host", "")} & set(hosts)}
        missing = [h for h in hosts if not any(
            h in (n, a, workers[a].get("host", "")) for a, n in chosen.items())]
        if missing:
            raise DUsageError(f"no worker named {', '.join(missing)} in the cluster",
                              hint="workers: " + ", ".join(sorted(names.values())))
        return chosen
    addrs = sorted(names, key=lambda a: names[a])
    if count is not None:
        if not 0 < count <= len(addrs):
            raise DUsageError(f"--workers {count}: the cluster has {len(addrs)}")
        addrs = addrs[:count]
    return {a: names[a] for a in addrs}


def _names_worker(workers: dict, addr: str, names: dict[str, str], given: str) -> bool:
    return given in (names[addr], addr, workers[addr].get("host", ""))


def target_pids(workers: dict, chosen: dict[str, str], pids: Optional[dict[str, int]],
                pid: Optional[int]) -> dict[str, Optional[int]]:
    """address -> the pid that is $target there: -p HOST=PID,... names each chosen host's
    (a worker's name, host or address, as --hosts); a plain -p PID is one process, so
    only one host may be chosen with it. Refused before anything is sent to a worker."""
    if not pids:
        if pid is not None and len(chosen) != 1:
            raise DUsageError(f"-p {pid}: a pid is one host's process, and {len(chosen)} "
                              "hosts are chosen",
                              hint="give each host its own: -p "
                                   + ",".join(f"{n}=PID" for n in sorted(chosen.values()))
                              + " (or choose one host with --hosts)")
        return {a: pid for a in chosen}
    names = _host_names(workers)
    unknown = [h for h in pids if not any(_names_worker(workers, a, names, h) for a in names)]
    if unknown:
        raise DUsageError(f"-p: no worker named {', '.join(unknown)} in the cluster",
                          hint="workers: " + ", ".join(sorted(names.values())))
    out: dict[str, Optional[int]] = {}
    for a, name in chosen.items():
        given = [h for h in pids if _names_worker(workers, a, names, h)]
        if not given:
            raise DUsageError(f"-p: no pid given for host {name}",
                              hint=f"add {name}=PID to -p, or leave {name} out with --hosts")
        if len({pids[h] for h in given}) > 1:
            raise DUsageError(f"-p: host {name} is given two pids ({', '.join(given)})")
        out[a] = pids[given[0]]
    unchosen = [h for h in pids if not any(_names_worker(workers, a, names, h) for a in chosen)]
    if unchosen:
        raise DUsageError(f"-p names {', '.join(unchosen)}, which --hosts/--workers did "
                          "not choose")
    return out


def ended_reason(host_reasons: list[str]) -> str:
    """Why a fleet ended by itself, from why its hosts did: one host's exit() stopped them
    all; else the reason they share ("target exited"), else none."""
    if "exit" in host_reasons:
        return "exit"
    return host_reasons[0] if len(set(host_reasons)) == 1 else ""


class FleetRun:
    """One program traced on chosen workers of the cluster at `address`."""

    def __init__(self, address: str, cfg: SessionConfig, hosts: Optional[list[str]] = None,
                 count: Optional[int] = None, connect_timeout: float = 10.0,
                 on_message: Optional[Callable[[str], None]] = None,
                 pids: Optional[dict[str, int]] = None,
                 share_objects: bool = True):
        self.address, self.cfg = address, cfg
        self.hosts_wanted, self.count = hosts, count
        # -p HOST=PID,...: each host's $target; without --hosts/--workers, the hosts it names
        self.pids = pids
        # one compile per kernel flavour, shipped to the others (fleet/objects.py)
        self.share_objects = share_objects
        self.connect_timeout = connect_timeout
        self.on_message = on_message
        self.messages: list[str] = []

    def _message(self, text: str) -> None:
        self.messages.append(text)
        if self.on_message is not None:
            self.on_message(text)

    def run(self, duration: Optional[float] = None,
            should_stop: Optional[Callable[[], bool]] = None,
            on_progress: Optional[Callable[[FleetProgress], None]] = None,
            progress_every: float = 1.0) -> FleetOutcome:
        """Trace until -T (`duration`, counted from all hosts live), should_stop(), an
        exit() on any host or Ctrl-C. on_progress(FleetProgress) is called about every
        `progress_every` seconds while it traces (the live view), from this thread."""
        distributed = _import_distributed()
        try:
            client = distributed.Client(self.address, timeout=self.connect_timeout,
                                        set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise DUsageError(f"cannot reach the cluster at {self.address}: {exc}") from None
        try:
            return self._run(distributed, client, duration, should_stop,
                             on_progress, progress_every)
        finally:
            client.close()

    def _choose(self, client) -> tuple[dict[str, str], dict[str, dict]]:
        """The chosen workers (address -> host name) and each one's config fields (its
        own $target under -p HOST=PID)."""
        workers = client.scheduler_info()["workers"]
        wanted = self.hosts_wanted
        if self.pids and not wanted and self.count is None:
            wanted = list(self.pids)
        chosen = choose_workers(workers, wanted, self.count)
        pids = target_pids(workers, chosen, self.pids, self.cfg.target_pid)
        fields = config_fields(self.cfg)
        return chosen, {a: {**fields, "target_pid": pids[a]} for a in chosen}

    def _run(self, distributed, client, duration, should_stop, on_progress,
             progress_every) -> FleetOutcome:
        chosen, fields = self._choose(client)
        run_id = uuid.uuid4().hex[:12]
        stop = distributed.Event(f"dtrace-nb-{run_id}-stop", client=client)
        live = {a: distributed.Event(f"dtrace-nb-{run_id}-live-{a}", client=client)
                for a in chosen}
        beat = distributed.Variable(f"dtrace-nb-{run_id}-beat", client=client)
        beats, next_beat = 0, 0.0
        beat.set(beats)
        board = ProgressBoard(chosen) if on_progress else None
        reports = distributed.Queue(f"dtrace-nb-{run_id}-progress", client=client) \
            if on_progress else None
        next_progress = 0.0
        futures = {a: client.submit(trace_on_worker, fields[a], run_id, duration,
                                    progress_every if on_progress else None,
                                    self.share_objects,
                                    key=f"dtrace-nb-{run_id}-{i}", workers=[a],
                                    allow_other_workers=False, pure=False)
                   for i, a in enumerate(chosen)}
        runs = {a: HostRun(chosen[a], a) for a in chosen}
        started, interrupted, reason = time.monotonic(), False, ""
        live_at: Optional[float] = None
        next_check = 0.0
        deadline: Optional[float] = None
        stopped_at: Optional[float] = None
        try:
            while any(not futures[a].done() and runs[a].ok for a in futures):
                now = time.monotonic()
                if now >= next_beat:  # the workers stop by themselves without it
                    beats, next_beat = beats + 1, now + BEAT
                    beat.set(beats)
                if now >= next_check:  # a scheduler round trip: twice a second
                    next_check = now + 0.5
                    self._check_lost(client, futures, runs)
                if live_at is None:
                    pending = [a for a in futures if runs[a].ok and not futures[a].done()
                               and not live[a].is_set()]
                    if not pending or now - started >= LIVE_TIMEOUT:
                        live_at = now
                        for a in pending:
                            self._message(f"dtrace-nb: host {chosen[a]} is not live after "
                                          f"{LIVE_TIMEOUT:.0f} s; tracing without it")
                        deadline = now + duration if duration else None
                if board is not None and now >= next_progress and stopped_at is None:
                    next_progress = now + progress_every
                    try:
                        board.take(reports.get(batch=True))
                    except (OSError, TimeoutError):
                        pass  # the scheduler is slow or gone: _check_lost says which
                    on_progress(self._progress(board, live, futures, runs, live_at, now))
                if stopped_at is None:
                    if deadline is not None and now >= deadline:
                        reason = "duration"
                    elif should_stop is not None and should_stop():
                        reason = "stopped"
                    elif stop.is_set():
                        reason = "exit"  # a host's exit() (or another client) stopped it
                    if reason:
                        stop.set()
                        stopped_at = now
                elif now - stopped_at > GRACE:
                    for a in futures:
                        if not futures[a].done() and runs[a].ok:
                            runs[a].failure = (f"did not answer within {GRACE:.0f} s "
                                               "of the stop")
                    break
                time.sleep(POLL)
        except KeyboardInterrupt:
            interrupted, reason = True, "interrupted"
            stop.set()
            self._wait_done(futures, runs)
        finally:
            stop.set()  # every host stops, whatever ended the run here
            if reports is not None:
                try:
                    reports.close()
                except (OSError, TimeoutError):
                    pass  # a scheduler that went away took the queue with it
        self._gather(futures, runs)
        for a, f in futures.items():
            if not f.done():
                f.cancel()
        self._forget_objects(distributed, client, runs)
        # every host may have ended between two looks of the loop above (under load)
        reason = reason or ended_reason([r.data.get("stop_reason", "") for r in runs.values()
                                         if r.data])
        outcome = self._outcome(list(runs.values()), reason, interrupted,
                                time.monotonic() - (live_at or started))
        outcome.live_after = (live_at or started) - started
        return outcome

    @staticmethod
    def _progress(board, live, futures, runs, live_at, now) -> FleetProgress:
        n = len(futures)
        states = {}
        for a, f in futures.items():
            if not runs[a].ok:
                states[a] = "lost" if "died" in runs[a].failure else "failed"
            elif f.done():
                states[a] = "ended"
            elif live_at is None:
                states[a] = "live" if live[a].is_set() else "starting"
            else:
                states[a] = "live"
        up = sum(1 for st in states.values() if st == "live")
        if live_at is None:
            return board.progress(f"starting on {n} host{'s' * (n != 1)} ({up} live)", up,
                                  0.0, states)
        return board.progress(f"tracing on {up} of {n} host{'s' * (n != 1)}", up,
                              now - live_at, states)

    @staticmethod
    def _check_lost(client, futures, runs) -> None:
        """A worker gone from the scheduler while its trace ran: died (or was killed)."""
        current = client.scheduler_info()["workers"]
        for a, f in futures.items():
            if runs[a].ok and not f.done() and a not in current:
                runs[a].failure = "worker died (lost from the scheduler) during the trace"

    @staticmethod
    def _forget_objects(distributed, client, runs) -> None:
        """The compiled objects the hosts shipped each other leave the scheduler (each a
        Variable, the Event saying it is there and the Lock its compiler held:
        fleet/objects.py)."""
        for name in {n for r in runs.values() for n in r.data.get("shared_objects", [])}:
            try:
                distributed.Variable(name, client=client).delete()
                distributed.Event(name + "-set", client=client).clear()
                # a Lock made here would start lease refreshing in this client: the
                # scheduler's handler is asked directly
                client.sync(client.scheduler.semaphore_close, name=name + "-lock")
            except Exception:  # noqa: BLE001 - the scheduler may be gone; nothing to free
                pass

    @staticmethod
    def _wait_done(futures, runs, timeout: float = GRACE) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(
                not f.done() and runs[a].ok for a, f in futures.items()):
            time.sleep(POLL)

    @staticmethod
    def _gather(futures, runs) -> None:
        for a, f in futures.items():
            run = runs[a]
            if not run.ok or not f.done():
                continue
            if f.status == "error":
                exc = f.exception()
                run.failure = f"failed: {type(exc).__name__}: {exc}"
                continue
            if f.status == "cancelled":
                run.failure = "its task was cancelled (worker lost?)"
                continue
            run.data = f.result()
            if run.data.get("error"):
                run.failure = run.data["error"]

    def _outcome(self, runs: list[HostRun], reason: str, interrupted: bool,
                 duration: float) -> FleetOutcome:
        per_host = {r.host: r.snapshots() for r in runs if r.data}
        factors: dict[str, int] = {}
        for r in runs:
            factors.update(r.data.get("factors", {}))
        for r in runs:
            if not r.ok:
                first = r.failure.strip().splitlines()[0] if r.failure.strip() else "failed"
                self._message(f"dtrace-nb: host {r.host}: {first}")
        differ = probe_differences({r.host: r.data["probes"] for r in runs
                                    if r.ok and r.data.get("probes") is not None})
        if differ:
            self._message(differ)
        try:
            merged = merge_hosts(per_host, factors)
        except MergeError as err:
            self._message(f"dtrace-nb: hosts disagree, not merged: {err}")
            merged = {}
        return FleetOutcome(runs, merged, per_host, list(self.messages), reason,
                            interrupted, duration)
