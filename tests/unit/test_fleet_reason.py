"""Why a fleet run ended when every host ended before the client's loop looked again."""

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
