"""The fleet's pure parts: -p's per-host form, which pid is $target on which host (refused
before anything is sent), and the probe-set difference message."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from dtrace_nb.errors import DUsageError
from dtrace_nb.fleet.client import target_pids
from dtrace_nb.fleet.probesets import host_probe_names, probe_differences
from dtrace_nb.fleet.shell import pid_argument
from dtrace_nb.frontend import build_parser, single_pid

WORKERS = {"tcp://10.0.0.1:1": {"name": "web1", "host": "10.0.0.1"},
           "tcp://10.0.0.2:1": {"name": "web2", "host": "10.0.0.2"}}
BOTH = {"tcp://10.0.0.1:1": "web1", "tcp://10.0.0.2:1": "web2"}


def test_p_takes_a_pid_or_a_pid_per_host():
    assert pid_argument("1234") == 1234
    assert pid_argument("web1=1234,web2=5678") == {"web1": 1234, "web2": 5678}
    for bad in ("web1", "web1=x", "=12", "web1=1,web1=2", "12x"):
        with pytest.raises(argparse.ArgumentTypeError):
            pid_argument(bad)
    ns = build_parser().parse_args(["--cluster", "tcp://s:8786", "-p", "web1=1,web2=2"])
    assert ns.pid == {"web1": 1, "web2": 2} and single_pid(ns) is None
    ns = build_parser().parse_args(["-p", "web1=1"])
    with pytest.raises(DUsageError, match="a pid per host needs --cluster"):
        single_pid(ns)


def test_each_host_gets_its_own_pid():
    assert target_pids(WORKERS, BOTH, {"web1": 11, "10.0.0.2": 22}, None) == \
        {"tcp://10.0.0.1:1": 11, "tcp://10.0.0.2:1": 22}
    assert target_pids(WORKERS, BOTH, None, None) == {a: None for a in BOTH}
    one = {"tcp://10.0.0.2:1": "web2"}
    assert target_pids(WORKERS, one, None, 7) == {"tcp://10.0.0.2:1": 7}


@pytest.mark.parametrize("pids, pid, chosen, said", [
    ({"web1": 1}, None, BOTH, "no pid given for host web2"),
    ({"web1": 1, "web3": 3}, None, BOTH, "no worker named web3"),
    ({"web1": 1, "web2": 2}, None, {"tcp://10.0.0.1:1": "web1"}, "-p names web2"),
    ({"web1": 1, "10.0.0.1": 2}, None, {"tcp://10.0.0.1:1": "web1"}, "two pids"),
    (None, 5, BOTH, "-p 5: a pid is one host's process, and 2 hosts are chosen"),
])
def test_refusals(pids, pid, chosen, said):
    with pytest.raises(DUsageError, match=said):
        target_pids(WORKERS, chosen, pids, pid)


def test_probe_differences_name_each_hosts_missing_probes():
    a = ["syscall::read:entry", "syscall::foo:entry", "pid$target:app:f:entry"]
    b = ["syscall::read:entry"]
    assert probe_differences({"web1": a, "web2": b, "web3": a}) == (
        "dtrace-nb: probes differ between hosts: web2 lacks pid$target:app:f:entry, "
        "syscall::foo:entry")
    assert probe_differences({"web1": a, "web2": list(reversed(a))}) == ""
    assert probe_differences({"web1": a}) == ""
    many = [f"syscall::s{i}:entry" for i in range(8)]
    text = probe_differences({"web1": many, "web2": []})
    assert text.endswith("syscall::s4:entry and 3 more")
    both = probe_differences({"web1": ["x:::a"], "web2": ["x:::b"]})
    assert both == "dtrace-nb: probes differ between hosts: web1 lacks x:::b; web2 lacks x:::a"


def test_a_hosts_own_target_is_written_dollar_target():
    probes = [SimpleNamespace(provider="pid77", module="app", function="f", name="entry"),
              SimpleNamespace(provider="pid770", module="app", function="f", name="entry"),
              SimpleNamespace(provider="syscall", module="", function="read", name="entry")]
    assert host_probe_names(probes, 77) == ["pid$target:app:f:entry", "pid770:app:f:entry",
                                            "syscall::read:entry"]
    assert host_probe_names(probes[:1], None) == ["pid77:app:f:entry"]
