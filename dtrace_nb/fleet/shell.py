"""The fleet's part of both shells, in one place: the options (--cluster, --hosts,
--workers, and -p's per-host form) that frontend.build_parser adds, and running a program on
a cluster for the command (text) and for the magic (a FleetResult)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Callable

from dtrace_nb.errors import DError

if TYPE_CHECKING:
    from dtrace_nb.fleet.client import FleetOutcome
    from dtrace_nb.session import SessionConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="ADDR",
                   help="trace on the workers of the Dask cluster at ADDR "
                        "(tcp://scheduler:8786) and merge the aggregations")
    p.add_argument("--hosts", metavar="H1,H2", type=lambda s: [h for h in s.split(",") if h],
                   help="with --cluster: only these workers (names, hosts or addresses)")
    p.add_argument("--workers", dest="nworkers", type=int, metavar="N",
                   help="with --cluster: the first N workers")
    p.add_argument("--by-host", action="store_true",
                   help="with --cluster: each host's aggregations too (after the fleet "
                        "totals; in a notebook, tables with a host column)")


def pid_argument(text: str):
    """-p's value: PID, or HOST=PID,HOST=PID (a pid per host of a cluster) as a dict."""
    if "=" not in text:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a pid: {text!r}") from None
    out: dict[str, int] = {}
    for item in (i.strip() for i in text.split(",")):
        host, eq, pid = item.partition("=")
        if not (eq and host.strip() and pid.strip().isdigit()):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not HOST=PID (-p web1=1234,web2=5678)")
        if host.strip() in out:
            raise argparse.ArgumentTypeError(f"host {host.strip()} is given twice")
        out[host.strip()] = int(pid)
    return out


def pid_map_text(pids: dict) -> str:
    return ",".join(f"{h}={p}" for h, p in pids.items())


def _run(ns: argparse.Namespace, cfg: SessionConfig,
         on_message: Callable[[str], None], **run_options) -> "FleetOutcome":
    # here, not at the top: the command's parser is built from this module's arguments,
    # and a run on one host must not import the fleet's client (numpy, merging: ~0.1 s)
    from dtrace_nb.fleet.client import FleetRun

    if getattr(ns, "frames", False):
        cfg.record_frames = True  # each host's frames come back and merge (FleetResult)
    pids = ns.pid if isinstance(ns.pid, dict) else None
    return FleetRun(ns.cluster, cfg, hosts=ns.hosts, count=ns.nworkers, pids=pids,
                    on_message=on_message).run(duration=ns.duration, **run_options)


def trace_command(ns: argparse.Namespace, cfg: SessionConfig, out, message) -> int:
    """dtrace-nb --cluster: each host's records tagged with the host, then the merged
    aggregations as dtrace(1) prints them; a failed host on stderr. 1 if every host
    failed."""
    from dtrace_nb.fleet.text import (aggregations_text, host_aggregations_text,
                                      host_messages, host_records_text)

    outcome = _run(ns, cfg, message)  # its own messages (failed hosts) go out as they come
    for m in host_messages(outcome):
        message(m)
    out.write(host_records_text(outcome))
    out.write(aggregations_text(outcome))
    if ns.by_host:
        out.write(host_aggregations_text(outcome))
    out.flush()
    if outcome.hosts and all(not h.ok for h in outcome.hosts):
        return 1
    statuses = [h.data.get("exit_status") for h in outcome.hosts if h.data]
    return next((s for s in statuses if s), 0)


def trace_cell(ns: argparse.Namespace, cfg: SessionConfig, source: str, view,
               progress_every: float = 1.0, should_stop=None, open_view: bool = True):
    """%%dtrace --cluster: traced with `view` (a FleetLiveView) refreshing the cell's one
    area (opened here unless `open_view` is false: --bg opens it in its cell), until the
    view's Stop or should_stop(); the FleetResult."""
    from dtrace_nb.fleet.report import FleetResult  # pandas: once the hosts are done

    if open_view:
        view.open(ns.duration)
    outcome, failure = None, ""
    try:
        outcome = _run(ns, cfg, view.on_message,
                       should_stop=lambda: view.should_stop() or bool(should_stop and
                                                                      should_stop()),
                       on_progress=view.on_progress, progress_every=progress_every)
    except DError as err:
        failure = err.render(source)
        raise
    finally:
        view.finish(outcome, failure)
    result = FleetResult.from_outcome(outcome, source)
    result.refreshes = view.refreshes
    return result
