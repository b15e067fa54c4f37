"""DTrace's network translators (libdtrace's ip.d, tcp.d, udp.d) over what this kernel's
tracepoints carry: pktinfo_t, csinfo_t, ipinfo_t, tcpsinfo_t, tcplsinfo_t, tcpinfo_t and
udpinfo_t members, each read from a connection's endpoints (`Conn`), which a provider
builds from a tracepoint record (sock:inet_sock_set_state) or from the `struct sock *`
a record names (sock:sock_send_length), through BTF offsets of sock_common.

Addresses are IPv4 strings ("127.0.0.1") made in the program by a helper into a per-CPU
buffer, one slot per member; IPv6 endpoints read as "" (only IPv4 is formatted).
Members the tracepoints give no way to know are listed and refused with the reason.

Kernel structures read: sock_common.{skc_daddr, skc_rcv_saddr, skc_dport, skc_num,
skc_state, skc_family} (through BTF), and the tracepoint records (their format files).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import ArgInfo, MemberInfo
from dtrace_nb.runtime import btf

AF_INET, IPPROTO_TCP, IPPROTO_UDP = 2, 6, 17
IPV4_STR = api.local("ipv4_str")
_BUFS = api.local("addrbufs")
# "a.b.c.d" of a u32 holding the address as it lies in memory (network order), written
# into slot `slot` of a per-CPU buffer; "" when the family is not AF_INET
ADDR_HELPER = f"""struct {_BUFS}_val {{ char s[4][16]; }};
BPF_PERCPU_ARRAY({_BUFS}, struct {_BUFS}_val, 1);
static __always_inline u64 {IPV4_STR}(u32 slot, u32 a, u32 family)
{{
	u32 k = 0, n = 0;
	struct {_BUFS}_val *b = {_BUFS}.lookup(&k);
	if (!b)
		return 0;
	char *s = b->s[slot & 3];
	if (family != {AF_INET}) {{
		s[0] = 0;
		return (u64)s;
	}}
#pragma unroll
	for (int i = 0; i < 4; i++) {{
		u32 o = (a >> (8 * i)) & 0xff;
		if (o >= 100) {{ s[n & 15] = '0' + o / 100; n++; }}
		if (o >= 10) {{ s[n & 15] = '0' + (o / 10) % 10; n++; }}
		s[n & 15] = '0' + o % 10; n++;
		if (i < 3) {{ s[n & 15] = '.'; n++; }}
	}}
	s[n & 15] = 0;
	return (u64)s;
}}"""


@dataclass(frozen=True)
class Conn:
    """C expressions (of the binding's context) for one connection at a firing: its
    socket's address, family, local and remote address (u32 in network order) and port
    (host order), state (Linux's TCP state numbers, which DTrace's tcp.d uses), and the
    payload bytes of this firing (0 where there are none)."""

    sock: str
    family: str
    laddr: str
    raddr: str
    lport: str
    rport: str
    state: str
    bytes: str = "0"
    # inbound: the packet's source is the remote end (ipinfo_t, tcpinfo_t, udpinfo_t)
    inbound: bool = False


def _addr(slot: int, conn: Conn, which: str) -> Callable[[str], str]:
    return lambda _arg: f"{IPV4_STR}({slot}, (u32)({getattr(conn, which)}), (u32)({conn.family}))"


def _const(expr: str) -> Callable[[str], str]:
    return lambda _arg: f"(u64)({expr})"


def _no(name: str, ctype: str, why: str) -> MemberInfo:
    return api.refused_member(name, ctype, why)


NO_SKB = "the tracepoint serving this probe carries no packet (sk_buff)"
NO_HEADER = "the tracepoint serving this probe carries no TCP header"
NO_PID = "the socket's process is not known in the kernel's network stack"


def pktinfo(conn: Conn) -> ArgInfo:
    return api.translated_arg("struct sk_buff *", "pktinfo_t *", (
        _no("pkt_addr", "uintptr_t", NO_SKB),))


def csinfo(conn: Conn) -> ArgInfo:
    return api.translated_arg("struct sock *", "csinfo_t *", (
        api.member("cs_addr", "uintptr_t", _const(conn.sock)),
        api.member("cs_cid", "uint64_t", _const(conn.sock)),
        _no("cs_pid", "pid_t", NO_PID)))


def ipinfo(conn: Conn) -> ArgInfo:
    src, dst = ("raddr", "laddr") if conn.inbound else ("laddr", "raddr")
    return api.translated_arg("struct sock *", "ipinfo_t *", (
        api.member("ip_ver", "uint8_t", _const(f"({conn.family}) == {AF_INET} ? 4 : 6")),
        api.member("ip_plength", "uint16_t", _const(conn.bytes)),
        api.member("ip_saddr", "string", _addr(0, conn, src), string_size=16),
        api.member("ip_daddr", "string", _addr(1, conn, dst), string_size=16)))


def tcpsinfo(conn: Conn, state: str = "") -> ArgInfo:
    return api.translated_arg("struct sock *", "tcpsinfo_t *", (
        api.member("tcps_addr", "uintptr_t", _const(conn.sock)),
        api.member("tcps_local", "int", _const(
            f"({conn.laddr}) == ({conn.raddr}) || (({conn.raddr}) & 0xff) == 127")),
        api.member("tcps_lport", "uint16_t", _const(conn.lport)),
        api.member("tcps_rport", "uint16_t", _const(conn.rport)),
        api.member("tcps_laddr", "string", _addr(2, conn, "laddr"), string_size=16),
        api.member("tcps_raddr", "string", _addr(3, conn, "raddr"), string_size=16),
        api.member("tcps_state", "int", _const(state or conn.state)),
        *(_no(m, "uint32_t", "sequence and window state are not read by this provider")
          for m in ("tcps_iss", "tcps_suna", "tcps_snxt", "tcps_rnxt", "tcps_swnd",
                    "tcps_rwnd", "tcps_cwnd", "tcps_rto", "tcps_mss", "tcps_rtt"))))


def tcplsinfo(old_state: str) -> ArgInfo:
    return api.translated_arg("int", "tcplsinfo_t *", (
        api.member("tcps_state", "int", _const(old_state)),))


def tcpinfo(conn: Conn) -> ArgInfo:
    sport, dport = ("rport", "lport") if conn.inbound else ("lport", "rport")
    return api.translated_arg("struct tcphdr *", "tcpinfo_t *", (
        api.member("tcp_sport", "uint16_t", _const(getattr(conn, sport))),
        api.member("tcp_dport", "uint16_t", _const(getattr(conn, dport))),
        # ip_plength counts payload bytes only here, so the books' payload formula
        # ip_plength - tcp_offset stays right with a header length of 0
        api.member("tcp_offset", "uint8_t", _const("0")),
        *(_no(m, t, NO_HEADER) for m, t in (
            ("tcp_seq", "uint32_t"), ("tcp_ack", "uint32_t"), ("tcp_flags", "uint8_t"),
            ("tcp_window", "uint16_t"), ("tcp_checksum", "uint16_t"),
            ("tcp_urgent", "uint16_t")))))


def udpinfo(conn: Conn) -> ArgInfo:
    sport, dport = ("rport", "lport") if conn.inbound else ("lport", "rport")
    return api.translated_arg("struct udphdr *", "udpinfo_t *", (
        api.member("udp_sport", "uint16_t", _const(getattr(conn, sport))),
        api.member("udp_dport", "uint16_t", _const(getattr(conn, dport))),
        api.member("udp_length", "uint16_t", _const(f"({conn.bytes}) + 8")),
        _no("udp_checksum", "uint16_t", "the tracepoint carries no UDP header")))


def udpsinfo(conn: Conn) -> ArgInfo:
    return api.translated_arg("struct sock *", "udpsinfo_t *", (
        api.member("udps_addr", "uintptr_t", _const(conn.sock)),
        api.member("udps_lport", "uint16_t", _const(conn.lport)),
        api.member("udps_rport", "uint16_t", _const(conn.rport)),
        api.member("udps_laddr", "string", _addr(2, conn, "laddr"), string_size=16),
        api.member("udps_raddr", "string", _addr(3, conn, "raddr"), string_size=16)))


_SOCK_MEMBERS = ("skc_daddr", "skc_rcv_saddr", "skc_dport", "skc_num", "skc_state",
                 "skc_family")


@lru_cache(maxsize=1)
def sock_offsets() -> dict[str, int]:
    out = {}
    for m in _SOCK_MEMBERS:
        off = btf.member_offset("sock_common", m)
        if off is None:
            raise DEnvironmentError(f"this kernel's BTF does not describe sock_common.{m}",
                                    hint="the network providers read sockets through BTF")
        out[m] = off
    return out


def sock_conn(sock: str, nbytes: str = "0", inbound: bool = False,
              offs: dict[str, int] | None = None) -> Conn:
    """The connection of the `struct sock *` at C expression `sock`."""
    o = offs or sock_offsets()
    rd = lambda m, t: api.struct_member(sock, o[m], t)  # noqa: E731
    return Conn(sock=sock, family=rd("skc_family", "u16"), laddr=rd("skc_rcv_saddr", "u32"),
                raddr=rd("skc_daddr", "u32"),
                rport=f"__builtin_bswap16({rd('skc_dport', 'u16')})",
                lport=rd("skc_num", "u16"), state=rd("skc_state", "u8"), bytes=nbytes,
                inbound=inbound)
