"""A fleet run while it traces, for the live view: the newest progress report of every host
(fleet/worker.py puts them on the run's queue), merged into one picture: the counters
summed, the aggregations merged as at the end, the newest printed lines tagged with their
host."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from dtrace_nb.aggregate.merge import MergeError, merge_hosts
from dtrace_nb.aggregate.snapshot import AggSnapshot
from dtrace_nb.fleet.worker import PROGRESS_LINES, snapshot_from_plain


@dataclass
class FleetProgress:
    stage: str                 # "starting on 3 hosts", "tracing on 3 hosts"
    hosts: int                 # chosen
    live: int                  # live so far
    elapsed: float             # since every host was live: FleetResult.duration's clock
    records: int = 0
    drops: int = 0
    errors: int = 0
    first_error: str = ""
    merged: dict[str, AggSnapshot] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # the newest printed lines, "[host] ..."
    line_count: int = 0                             # every host's lines so far
    per_host: dict[str, dict[str, AggSnapshot]] = field(default_factory=dict)
    hosts_status: list[HostStatus] = field(default_factory=list)


@dataclass
class HostStatus:
    host: str
    state: str          # starting, live, ended, failed, lost
    records: int = 0
    drops: int = 0
    errors: int = 0

    def text(self) -> str:
        # an aggregation-only trace records nothing: no "0 records" (as the control bar)
        records = f" · {self.records:,} records" if self.records else ""
        return f"{self.host}: {self.state}{records} · {self.drops:,} drops · " \
               f"{self.errors:,} errors"


class ProgressBoard:
    """The newest report of each host (by address) and the newest lines of all of them."""

    def __init__(self, names: dict[str, str]):
        self.names = names  # address -> host name
        self.latest: dict[str, dict] = {}
        self.lines: deque[str] = deque(maxlen=PROGRESS_LINES)

    def take(self, reports: list[dict]) -> bool:
        """Keep the newest of each host; True if anything was new."""
        new = False
        for r in reports:
            addr = r.get("address")
            if addr not in self.names or r["seq"] <= self.latest.get(addr, {}).get("seq", 0):
                continue
            self.latest[addr] = r
            self.lines.extend(f"[{self.names[addr]}] {ln}" for ln in r["lines"])
            new = True
        return new

    def progress(self, stage: str, live: int, elapsed: float,
                 states: dict[str, str] | None = None) -> FleetProgress:
        reports = list(self.latest.values())
        factors: dict[str, int] = {}
        for r in reports:
            factors.update(r.get("factors", {}))
        per_host = {self.names[r["address"]]: {n: snapshot_from_plain(d)
                                               for n, d in r["snapshots"].items()}
                    for r in reports}
        try:
            merged = merge_hosts(per_host, factors)
        except MergeError:
            merged = {}  # said once at the end, where the hosts' final data is
        return FleetProgress(
            stage=stage, hosts=len(self.names), live=live, elapsed=elapsed,
            records=sum(r["records"] for r in reports),
            drops=sum(r["drops"] for r in reports),
            errors=sum(r["errors"] for r in reports),
            first_error=next((r["first_error"] for r in reports if r["first_error"]), ""),
            merged=merged, lines=list(self.lines),
            line_count=sum(r["line_count"] for r in reports), per_host=per_host,
            hosts_status=[HostStatus(name, (states or {}).get(addr, "starting"),
                                     **{k: self.latest.get(addr, {}).get(k, 0)
                                        for k in ("records", "drops", "errors")})
                          for addr, name in self.names.items()])
