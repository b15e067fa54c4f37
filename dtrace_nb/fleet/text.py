"""A fleet run's text, without pandas (the command prints it): each host's records tagged
with the host (in that host's order), the merged aggregations printed as dtrace(1) prints
one host's, the hosts' messages."""

from __future__ import annotations

from dtrace_nb.fleet.client import FleetOutcome
from dtrace_nb.text.aggregations import format_all


def host_records_text(outcome: FleetOutcome) -> str:
    """Every host's printed records, each line prefixed with its host, host by host."""
    parts = []
    for run in outcome.hosts:
        text = "".join(run.data.get("output", []))
        parts.extend(f"[{run.host}] {line}\n" for line in text.splitlines() if line)
    return "".join(parts)


def aggregations_text(outcome: FleetOutcome) -> str:
    """The fleet totals, as dtrace(1) prints a host's aggregations at the end."""
    return format_all([(s.func, s.keys, s.values, s.key_kinds, s.params)
                       for s in outcome.merged.values() if len(s)])


def host_aggregations_text(outcome: FleetOutcome) -> str:
    """Each host's own aggregations (--by-host), after a line naming the host, in the
    order the hosts were chosen."""
    parts = []
    for host, snaps in outcome.per_host.items():
        text = format_all([(s.func, s.keys, s.values, s.key_kinds, s.params)
                           for s in snaps.values() if len(s)])
        parts.append(f"\n[{host}]\n{text}")
    return "".join(parts)


def host_messages(outcome: FleetOutcome) -> list[str]:
    """The hosts' own messages: one said by every host that ran once, the others tagged."""
    ran = [r for r in outcome.hosts if r.data]
    everywhere = set.intersection(*(set(r.data.get("messages", [])) for r in ran)) \
        if ran else set()
    out = [m for m in (ran[0].data.get("messages", []) if ran else []) if m in everywhere]
    for r in ran:
        out.extend(f"[{r.host}] {m}" for m in r.data.get("messages", []) if m not in everywhere)
    return out
