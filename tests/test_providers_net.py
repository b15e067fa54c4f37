"""The network providers on loopback traffic the test makes (127.0.0.1 and ::1, and IPv6
addresses on the loopback of a network namespace the test makes): a TCP client/server
doing N connects and M bytes, and UDP datagrams of known number and size, counted with
DTrace's translated arguments; members Linux cannot supply are refused."""

from __future__ import annotations

import ipaddress

import pytest

from tests.test_language import refused, traced
from tests.test_providers import PYTHON, agg_rows

pytestmark = pytest.mark.kernel
CONNECTS, SIZE = 7, 10000
DATAGRAMS, DGRAM = 23, 300

TCP_WORK = """
import socket, sys, threading
n, size, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
srv.bind((host, 0))
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
    s = socket.create_connection(srv.getsockname()[:2])
    s.sendall(b"x" * size)
    s.close()
t.join()
assert sum(got) == n * size, got
"""

UDP_WORK = """
import socket, sys
n, size, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
r = socket.socket(family, socket.SOCK_DGRAM)
r.bind((host, 0))
s = socket.socket(family, socket.SOCK_DGRAM)
s.connect(r.getsockname())
for _ in range(n):
    s.send(b"u" * size)
    r.recv(65536)
"""


def run_work(tmp_path, prog: str, work: str, n: int, size: int,
             host: str = "127.0.0.1") -> dict[str, int]:
    script = tmp_path / "work.py"
    script.write_text(work)
    cmd = " ".join([PYTHON, "-S", str(script), str(n), str(size), host])
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


# -- IPv6 (::1): the same ground truth, with the addresses in inet_ntoa6()'s text --------

TCP6_SCRIPT = r"""
tcp:::connect-established /pid == $target/
{ @c["connect", args[3]->tcps_raddr, args[3]->tcps_laddr, args[2]->ip_ver, args[3]->tcps_local] = count(); }
tcp:::accept-established /args[3]->tcps_laddr == "::1"/ { @a["accept", args[2]->ip_saddr, args[2]->ip_daddr, args[2]->ip_ver] = count(); }
tcp:::connect-request /pid == $target/ { @r["request", args[2]->ip_daddr, args[1]->cs_addr != 0] = count(); }
tcp:::send /pid == $target/ { @b["out", args[2]->ip_saddr, args[2]->ip_daddr] = sum(args[2]->ip_plength - args[4]->tcp_offset); }
tcp:::receive /pid == $target/ { @b["in", args[2]->ip_saddr, args[3]->tcps_raddr] = sum(args[2]->ip_plength); }
tcp:::state-change /pid == $target && args[5]->tcps_state == 2/ { @s["syn-sent ->", args[3]->tcps_state] = count(); }
tcp:::connect-established /pid == $target/ { @p["same port", args[3]->tcps_rport == args[4]->tcp_sport] = count(); }
"""


def test_tcp_over_ipv6_loopback(tmp_path):
    rows = run_work(tmp_path, TCP6_SCRIPT, TCP_WORK, CONNECTS, SIZE, "::1")
    assert rows == {"connect ::1 ::1 6 1": CONNECTS, "accept ::1 ::1 6": CONNECTS,
                    "request ::1 1": CONNECTS,
                    "out ::1 ::1": CONNECTS * SIZE, "in ::1 ::1": CONNECTS * SIZE,
                    "syn-sent -> 1": CONNECTS, "same port 1": CONNECTS}


def test_udp_over_ipv6_loopback(tmp_path):
    prog = r"""
udp:::send /pid == $target/
{ @n["send", args[2]->ip_ver, args[2]->ip_saddr, args[2]->ip_daddr, args[3]->udps_raddr] = count();
  @b["bytes"] = sum(args[4]->udp_length - 8); }
udp:::receive /pid == $target/
{ @r["receive", args[2]->ip_saddr, args[3]->udps_laddr, args[4]->udp_dport == args[3]->udps_lport] = count(); }
"""
    rows = run_work(tmp_path, prog, UDP_WORK, DATAGRAMS, DGRAM, "::1")
    # receive's addresses are its socket's: the receiver never connect()ed, so its
    # remote address (the packet's source) is the unspecified "::"
    assert rows == {"send 6 ::1 ::1 ::1": DATAGRAMS, "receive :: ::1 1": DATAGRAMS,
                    "bytes": DATAGRAMS * DGRAM}


def test_ip_send_and_receive_of_ipv6_datagrams(tmp_path):
    # ipv6info_t from the packet's header; ipv4info_t of an IPv6 packet is ip.d's NULL
    # header's (0, "<null>"); receive is matched by the UDP length, as for IPv4
    prog = r"""
ip:::send /pid == $target && args[5]->ipv6_nexthdr == 17/
{ @n["send", args[2]->ip_ver, args[2]->ip_saddr, args[2]->ip_daddr, args[3]->if_name,
     args[5]->ipv6_ver, args[5]->ipv6_hlim, args[4]->ipv4_ver, args[4]->ipv4_saddr,
     inet_ntoa6(args[5]->ipv6_dst)] = count();
  @b["out"] = sum(args[2]->ip_plength); @b["plen"] = sum(args[5]->ipv6_plen); }
ip:::receive /args[5]->ipv6_nexthdr == 17 && args[2]->ip_plength == LEN/
{ @r["receive", args[2]->ip_ver, args[5]->ipv6_saddr, args[5]->ipv6_daddr] = count();
  @b["in"] = sum(args[2]->ip_plength); }
ip:::send,ip:::receive /args[2]->ip_ver == 6 && args[4]->ipv4_protocol != 0/ { @v["v4 member"] = count(); }
""".replace("LEN", str(DGRAM + 8))
    rows = run_work(tmp_path, prog, UDP_WORK, DATAGRAMS, DGRAM, "::1")
    assert rows == {"send 6 ::1 ::1 lo 6 64 0 <null> ::1": DATAGRAMS,
                    "receive 6 ::1 ::1": DATAGRAMS,
                    "out": DATAGRAMS * (DGRAM + 8), "plen": DATAGRAMS * (DGRAM + 8),
                    "in": DATAGRAMS * (DGRAM + 8)}


@pytest.mark.parametrize("use", ["args[5]->ipv6_nextstr", "args[4]->ipv4_protostr"])
def test_ip_protocol_names_are_refused(tmp_path, use):
    err = refused(tmp_path, f"ip:::send {{ trace({use}); }}")
    assert "is not available" in err and "protocol names" in err, err


NS_WORK = """
import socket, subprocess, sys
addrs = sys.argv[1].split(",")
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
for a in addrs:
    if not a.startswith("::ffff:"):
        subprocess.run(["ip", "-6", "addr", "add", a + "/128", "dev", "lo", "nodad"], check=True)
for a in addrs:
    srv = socket.socket(socket.AF_INET6)
    srv.bind(("::" if a.startswith("::ffff:") else a, 0))
    srv.listen(4)
    c = socket.socket(socket.AF_INET6)
    c.connect((a, srv.getsockname()[1]))
    s, _ = srv.accept()
    s.close(); c.close(); srv.close()
"""

# zero runs of different lengths and places (the longest, the first of equal ones), no
# run at all, and an IPv4-mapped address, which inet_ntoa6() prints as its dotted quad
NS_ADDRS = ("2001:db8:0:1::1", "fd00:1:2:3:4:5:6:7", "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:5", "::ffff:127.0.0.1")


def test_ipv6_address_text_in_a_network_namespace(tmp_path):
    # the addresses live on the loopback of a network namespace the workload makes
    script = tmp_path / "ns.py"
    script.write_text(NS_WORK)
    prog = ("tcp:::connect-established /pid == $target/ "
            "{ @[args[3]->tcps_raddr, args[2]->ip_daddr, args[2]->ip_ver] = count(); }")
    cmd = f"unshare -n {PYTHON} -S {script} {','.join(NS_ADDRS)}"
    rows = agg_rows(traced(tmp_path, prog, cmd))
    text = {a: ipaddress.ip_address(a).compressed for a in NS_ADDRS[:-1]}
    assert text["2001:0:0:1:0:0:0:5"] == "2001:0:0:1::5"
    expected = {f"{t} {t} 6": 1 for t in text.values()}
    expected["127.0.0.1 127.0.0.1 6"] = 1
    assert rows == expected


# udp:::receive's remote end is its socket's: the packet is out of reach where the
# receiver runs. The workload sends from known addresses (127.0.0.2, 127.0.0.3 on
# loopback) to an unconnected receiver with sendto()/recvfrom(); the skb tracepoints
# that could give the packet's source to the receiving thread do not fire for it on this
# kernel (udp_recvmsg copies a linear skb without skb_copy_datagram_iovec and frees it
# without consume_skb): if a kernel fires them, the provider can read the sender there.
UDP_FROM_WORK = """
import socket, sys
n, size, host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind((host, 0))
senders = []
for src in ("127.0.0.2", "127.0.0.3"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    senders.append(s)
for _ in range(n):
    for s in senders:
        s.sendto(b"u" * size, r.getsockname())
        assert r.recvfrom(65536)[1] == s.getsockname()
"""


def test_udp_receive_on_an_unconnected_socket_has_the_sockets_remote_end(tmp_path):
    prog = r"""
udp:::receive /pid == $target/ { @r["receive", args[2]->ip_saddr, args[4]->udp_sport, args[3]->udps_raddr] = count(); }
sdt:skb::skb_copy_datagram_iovec /pid == $target/ { @s["copy"] = count(); }
sdt:skb::consume_skb /pid == $target/ { @s["consume"] = count(); }
"""
    rows = run_work(tmp_path, prog, UDP_FROM_WORK, DATAGRAMS, DGRAM)
    assert rows == {"receive 0.0.0.0 0 0.0.0.0": 2 * DATAGRAMS}
