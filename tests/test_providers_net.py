"""The network providers on loopback traffic the test makes (127.0.0.1 only): a TCP
client/server doing N connects and M bytes, and UDP datagrams of known number and size,
counted with DTrace's translated arguments; members Linux cannot supply are refused."""

from __future__ import annotations


import pytest

from tests.test_language import refused, traced
from tests.test_providers import PYTHON, agg_rows

pytestmark = pytest.mark.kernel
CONNECTS, SIZE = 7, 10000
DATAGRAMS, DGRAM = 23, 300

TCP_WORK = """
import socket, sys, threading
n, size = int(sys.argv[1]), int(sys.argv[2])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
got = []
def serve():
    for _ in range(n):
        c, _ = srv.accept()
        total = 0
        while True:
            b = c.recv(65536)
            if not b:
                break
            total += len(b)
        got.append(total)
        c.close()
t = threading.Thread(target=serve)
t.start()
for _ in range(n):
    s = socket.create_connection(srv.getsockname())
    s.sendall(b"x" * size)
    s.close()
t.join()
assert sum(got) == n * size, got
"""

UDP_WORK = """
import socket, sys
n, size = int(sys.argv[1]), int(sys.argv[2])
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("127.0.0.1", 0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(r.getsockname())
for _ in range(n):
    s.send(b"u" * size)
    r.recv(65536)
"""


def run_work(tmp_path, prog: str, work: str, *args) -> dict[str, int]:
    script = tmp_path / "work.py"
    script.write_text(work)
    cmd = " ".join([PYTHON, "-S", str(script), *map(str, args)])
    return agg_rows(traced(tmp_path, prog, cmd))


# the book's shapes: connections by remote address, bytes by direction, state changes
TCP_SCRIPT = r"""
tcp:::connect-established /pid == $target/ { @c["connect", args[3]->tcps_raddr] = count(); }
tcp:::accept-established /args[3]->tcps_laddr == "127.0.0.1"/ { @c["accept", args[2]->ip_saddr] = count(); }
tcp:::send /pid == $target/ { @b["out", args[2]->ip_daddr] = sum(args[2]->ip_plength - args[4]->tcp_offset); }
tcp:::receive /pid == $target/ { @b["in", args[2]->ip_saddr] = sum(args[2]->ip_plength); }
tcp:::state-change /pid == $target && args[5]->tcps_state == 2/ { @s["syn-sent ->", args[3]->tcps_state] = count(); }
"""


def test_tcp_connects_and_payload_bytes(tmp_path):
    rows = run_work(tmp_path, TCP_SCRIPT, TCP_WORK, CONNECTS, SIZE)
    assert rows["connect 127.0.0.1"] == CONNECTS
    assert rows["accept 127.0.0.1"] == CONNECTS
    # send counts each send call's queued bytes, so the payload sums exactly
    assert rows["out 127.0.0.1"] == CONNECTS * SIZE
    assert rows["in 127.0.0.1"] == CONNECTS * SIZE
    assert rows["syn-sent -> 1"] == CONNECTS  # to ESTABLISHED


def test_tcp_ports_match_the_listener(tmp_path):
    prog = r"""
tcp:::connect-established /pid == $target/ { @["same port", args[3]->tcps_rport == args[4]->tcp_sport] = count(); }
"""
    rows = run_work(tmp_path, prog, TCP_WORK, CONNECTS, 10)
    assert rows == {"same port 1": CONNECTS}


def test_udp_datagrams(tmp_path):
    prog = r"""
udp:::send /pid == $target/ { @n["send", args[2]->ip_daddr] = count(); @b["bytes"] = sum(args[4]->udp_length - 8); }
udp:::receive /pid == $target/ { @r["receive", args[4]->udp_dport == args[3]->udps_lport] = count(); }
"""
    rows = run_work(tmp_path, prog, UDP_WORK, DATAGRAMS, DGRAM)
    assert rows == {"send 127.0.0.1": DATAGRAMS, "receive 1": DATAGRAMS,
                    "bytes": DATAGRAMS * DGRAM}


@pytest.mark.parametrize("use, why", [
    ("args[4]->tcp_seq", "no TCP header"),
    ("args[0]->pkt_addr", "no packet"),
    ("args[3]->tcps_rtt", "not read by this provider"),
])
def test_members_linux_cannot_supply_are_refused(tmp_path, use, why):
    err = refused(tmp_path, f"tcp:::send {{ trace({use}); }}")
    assert "is not available" in err and why in err, err
    assert "1:" in err  # located


def test_ip_send_and_receive_of_known_datagrams(tmp_path):
    # the book's "ip bytes by direction", kept to our datagrams: on loopback each is sent
    # once (in the sending thread) and received once (in softirq: matched by its length)
    prog = r"""
ip:::send /pid == $target && args[4]->ipv4_protocol == 17/
{ @n["send", args[2]->ip_saddr, args[2]->ip_daddr, args[3]->if_name] = count();
  @b["out"] = sum(args[2]->ip_plength); }
ip:::receive /args[4]->ipv4_protocol == 17 && args[2]->ip_plength == LEN/
{ @n["receive", args[4]->ipv4_saddr, args[4]->ipv4_daddr, args[3]->if_name] = count();
  @b["in"] = sum(args[2]->ip_plength); }
""".replace("LEN", str(DGRAM + 8))
    rows = run_work(tmp_path, prog, UDP_WORK, DATAGRAMS, DGRAM)
    assert rows == {"send 127.0.0.1 127.0.0.1 lo": DATAGRAMS,
                    "receive 127.0.0.1 127.0.0.1 lo": DATAGRAMS,
                    "out": DATAGRAMS * (DGRAM + 8), "in": DATAGRAMS * (DGRAM + 8)}


def test_accept_refused_is_listed_and_refused(tmp_path):
    err = refused(tmp_path, "tcp:::accept-refused { @ = count(); }")
    assert "tcp_send_reset" in err and "Traceback" not in err, err
