"""A fleet run's Result: frames of the fleet totals, `by_host(name)` for each host's rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from dtrace_nb.fleet.client import FleetOutcome, FleetRun
from dtrace_nb.fleet.text import aggregations_text, host_messages, host_records_text
from dtrace_nb.result import recording
from dtrace_nb.result.result import Aggregations, Result
from dtrace_nb.session import SessionConfig


@dataclass(repr=False)  # Result's repr: the text, not every field
class FleetResult(Result):
    """A Result whose aggregations are the fleet totals; `by_host(name)` has each host's
    rows with a `host` column first; `hosts` says how each host ended."""

    per_host: dict = field(default_factory=dict)  # host -> Aggregations
    hosts: dict = field(default_factory=dict)     # host -> {'ok', 'failure', 'records'...}
    live_after: float = 0.0  # seconds from the start until every host was live

    @classmethod
    def from_outcome(cls, outcome: FleetOutcome, source: str) -> "FleetResult":
        aggs, funcs = Aggregations(), {}
        for name, s in outcome.merged.items():
            aggs["@" + name] = s.to_frame()
            funcs["@" + name] = s.func
        per_host = {h: Aggregations({"@" + n: s.to_frame() for n, s in snaps.items()})
                    for h, snaps in outcome.per_host.items()}
        hosts = {r.host: {"ok": r.ok, "failure": r.failure, "address": r.address,
                          "records": r.data.get("records", 0),
                          "drops": r.data.get("drops", {}),
                          "stop_reason": r.data.get("stop_reason", ""),
                          "target_pid": r.data.get("target_pid")}
                 for r in outcome.hosts}
        statuses = [r.data.get("exit_status") for r in outcome.hosts if r.data]
        return cls(
            aggregations=aggs,
            output=host_records_text(outcome) + aggregations_text(outcome),
            drops={},
            messages=host_messages(outcome) + list(outcome.messages),
            exit_status=next((s for s in statuses if s is not None), None),
            stop_reason=outcome.stop_reason,
            interrupted=outcome.interrupted,
            duration=outcome.duration,
            probes_enabled=max((r.data.get("probes_enabled", 0) for r in outcome.hosts
                                if r.data), default=0),
            records=sum(r.data.get("records", 0) for r in outcome.hosts if r.data),
            source=source,
            funcs=funcs,
            per_host=per_host,
            hosts=hosts,
            live_after=outcome.live_after,
            record_frames=merged_frames(outcome),
        )

    def save(self, path: str) -> str:
        """Record the fleet run (the totals, each host's rows, how each host ended)."""
        fleet = {"per_host": {h: {n: recording.frame_to_json(df) for n, df in aggs.items()}
                              for h, aggs in self.per_host.items()},
                 "hosts": {h: {**s, "drops": [[k[0], k[1], v] for k, v in
                                              s.get("drops", {}).items()]}
                           for h, s in self.hosts.items()},
                 "live_after": self.live_after}
        return recording.save(self, path, extra={"fleet": fleet})

    @classmethod
    def load(cls, path: str) -> "FleetResult":
        fields = recording.load(path)
        fleet = fields.pop("extra").get("fleet", {})
        fields["aggregations"] = Aggregations(fields["aggregations"])
        per_host = {h: Aggregations({n: recording.frame_from_json(f) for n, f in aggs.items()})
                    for h, aggs in fleet.get("per_host", {}).items()}
        hosts = {h: {**s, "drops": {(k, int(c)): int(v) for k, c, v in s.get("drops", [])}}
                 for h, s in fleet.get("hosts", {}).items()}
        return cls(**fields, per_host=per_host, hosts=hosts,
                   live_after=fleet.get("live_after", 0.0))

    @property
    def failed_hosts(self) -> list[str]:
        return [h for h, s in self.hosts.items() if not s["ok"]]

    def by_host(self, name: str = "") -> pd.DataFrame:
        """Aggregation `name`'s rows of every host, a `host` column first."""
        key = name if name.startswith("@") or not name else "@" + name
        key = key or next(iter(self.aggregations), "")
        frames = []
        for host, aggs in self.per_host.items():
            if key in aggs:
                df = aggs[key].copy()
                df.insert(0, "host", host)
                frames.append(df)
        if not frames:
            raise KeyError(f"no host has {key or 'an aggregation'}")
        return pd.concat(frames, ignore_index=True)


def merged_frames(outcome: FleetOutcome) -> dict:
    """(clause index, probe text) -> one DataFrame of every host's records kept as columns
    (record_frames): a `host` column first, host by host, each host's rows in the order
    its ring buffer delivered them (its time order; the hosts' clocks need not agree),
    hosts in name order."""
    parts: dict = {}
    for run in sorted(outcome.hosts, key=lambda r: r.host):
        for index, text, df in run.data.get("frames", []):
            df = df.copy()
            df.insert(0, "host", run.host)
            parts.setdefault((index, text), []).append(df)
    return {key: pd.concat(frames, ignore_index=True) for key, frames in sorted(parts.items())}


def run_fleet(address: str, cfg: SessionConfig, hosts: Optional[list[str]] = None,
              workers: Optional[int] = None, duration: Optional[float] = None,
              **run_options) -> FleetResult:
    """The Session API's run_session for a cluster: `cfg` traced on the chosen workers of
    the Dask cluster at `address` (all of them, `hosts` by name, or the first `workers`).
    `pids={'web1': 1234, ...}` is each host's $target (-p per host); FleetRun's other
    options pass through."""
    run = FleetRun(address, cfg, hosts=hosts, count=workers, **run_options)
    return FleetResult.from_outcome(run.run(duration=duration), cfg.source)
