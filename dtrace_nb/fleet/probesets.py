"""Probe sets that differ between the hosts of a fleet: the same description can match
other probes on another kernel or binary (a syscall one kernel lacks, a function only one
host's target has). The merged aggregations would silently be a union of different
things; the difference is said instead, host by host, naming the probes."""

from __future__ import annotations

import re
from typing import Optional

# a message names this many of a host's missing probes, then counts the rest
SHOWN = 5


def host_probe_names(probes, target_pid: Optional[int]) -> list[str]:
    """A host's enabled probes as provider:module:function:name, its own $target's pid
    written `$target` (pid1234 on one host is pid5678 on another: the same probe)."""
    own = re.compile(rf"^(\D+){target_pid}$") if target_pid is not None else None
    out = []
    for p in probes:
        provider = p.provider
        if own is not None and (m := own.match(provider)):
            provider = m.group(1) + "$target"
        out.append(f"{provider}:{p.module}:{p.function}:{p.name}")
    return out


def probe_differences(by_host: dict[str, list[str]]) -> str:
    """'dtrace-nb: probes differ between hosts: web2 lacks syscall::foo:entry, ...', or ''
    when every host enabled the same probes. A probe is missing on a host when another
    host enabled it."""
    if len(by_host) < 2:
        return ""
    union = set().union(*(set(v) for v in by_host.values()))
    parts = []
    for host in sorted(by_host):
        lacks = sorted(union - set(by_host[host]))
        if not lacks:
            continue
        more = f" and {len(lacks) - SHOWN} more" if len(lacks) > SHOWN else ""
        parts.append(f"{host} lacks {', '.join(lacks[:SHOWN])}{more}")
    if not parts:
        return ""
    return "dtrace-nb: probes differ between hosts: " + "; ".join(parts)
