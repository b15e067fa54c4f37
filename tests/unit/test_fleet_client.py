"""The fleet client's small decisions: why a run ended when every host ended before the
client's loop looked again, and the names hosts are reported by."""

from __future__ import annotations

import pytest

from dtrace_nb.fleet.client import ended_reason


@pytest.mark.parametrize("hosts, fleet", [
    (["stopped", "exit"], "exit"),               # one host's exit() stopped the others
    (["exit", "exit"], "exit"),
    (["target exited", "target exited"], "target exited"),
    (["target exited", "stopped"], ""),          # no one reason for the fleet
    ([], ""),                                    # no host answered
])
def test_the_fleets_reason_from_its_hosts(hosts, fleet):
    assert ended_reason(hosts) == fleet


def test_workers_are_reported_by_their_names_even_zero():
    from dtrace_nb.fleet.client import choose_workers

    workers = {"tcp://127.0.0.1:1": {"name": 0}, "tcp://127.0.0.1:2": {"name": 1},
               "tcp://127.0.0.1:3": {"name": ""}}
    assert choose_workers(workers) == {"tcp://127.0.0.1:1": "0", "tcp://127.0.0.1:2": "1",
                                       "tcp://127.0.0.1:3": "tcp://127.0.0.1:3"}
    assert choose_workers(workers, hosts=["0"]) == {"tcp://127.0.0.1:1": "0"}
