"""DTrace's network translators (libdtrace's ip.d, tcp.d, udp.d) over what this kernel's
tracepoints carry: pktinfo_t, csinfo_t, ipinfo_t, tcpsinfo_t, tcplsinfo_t, tcpinfo_t and
udpinfo_t members, each read from a connection's endpoints (`Conn`), which a provider
builds from a tracepoint record (sock:inet_sock_set_state) or from the `struct sock *`
a record names (sock:sock_send_length), through BTF offsets of sock_common.

Addresses are strings the compiler formats (api.address_member) as dtrace-utils'
translators make them: inet_ntoa() for AF_INET ("127.0.0.1"), inet_ntoa6() for AF_INET6
(RFC 5952 text, "::1"; an IPv4-mapped or -compatible address as its dotted quad alone,
inet_ntoa6's default), "<unknown>" for another family.
Members the tracepoints give no way to know are listed and refused with the reason.

Kernel structures read: sock_common.{skc_daddr, skc_rcv_saddr, skc_v6_daddr,
skc_v6_rcv_saddr, skc_dport, skc_num, skc_state, skc_family} (through BTF), and the
tracepoint records (their format files: inet_sock_set_state's saddr_v6/daddr_v6).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import ArgInfo, MemberInfo
from dtrace_nb.runtime import btf

AF_INET, AF_INET6, NO_HEADER_FAMILY = api.AF_INET, api.AF_INET6, api.NO_HEADER
IPPROTO_TCP, IPPROTO_UDP = 6, 17
ADDR_LOCAL = api.local("addr_local")
# addr_local(family, l4, r4, l6, r6): are the two ends the same host? (l4/r4 the IPv4
# addresses in network order, l6/r6 the kernel addresses of the IPv6 ones)
ADDR_HELPER = f"""static __always_inline u64 {ADDR_LOCAL}(u32 family, u32 l4, u32 r4, u64 l6, u64 r6)
{{
	if (family == {AF_INET})
		return l4 == r4 || (r4 & 0xff) == 127;
	u64 l[2] = {{}}, r[2] = {{}};
	if (family != {AF_INET6} || bpf_probe_read_kernel(l, 16, (void *)l6) < 0
	    || bpf_probe_read_kernel(r, 16, (void *)r6) < 0)
		return 0;
	/* the same address, ::1, or an IPv4-mapped 127.x.y.z */
	return (l[0] == r[0] && l[1] == r[1]) || (r[0] == 0 && r[1] == 0x0100000000000000ULL)
	    || (r[0] == 0 && (u32)r[1] == 0xffff0000 && ((r[1] >> 32) & 0xff) == 127);
}}"""


@dataclass(frozen=True)
class Conn:
    """C expressions (of the binding's context) for one connection at a firing: its
    socket's address, family, local and remote IPv4 address (u32 in network order), the
    kernel addresses of the local and remote IPv6 address (16 bytes each, read when the
    family is AF_INET6), port (host order), state (Linux's TCP state numbers, which
    DTrace's tcp.d uses), and the payload bytes of this firing (0 where there are none)."""

    sock: str
    family: str
    laddr: str
    raddr: str
    lport: str
    rport: str
    state: str
    bytes: str = "0"
    laddr6: str = "0"
    raddr6: str = "0"
    # inbound: the packet's source is the remote end (ipinfo_t, tcpinfo_t, udpinfo_t)
    inbound: bool = False


def address(name: str, conn: Conn, which: str) -> MemberInfo:
    """Member `name`, the text of the connection's `which` address ("laddr", "raddr"),
    formatted by the compiler (api.address_member)."""
    return api.address_member(name, conn.family, getattr(conn, which),
                              getattr(conn, which + "6"))


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
        api.member("ip_ver", "uint8_t", _const(
            f"({conn.family}) == {AF_INET} ? 4 : ({conn.family}) == {AF_INET6} ? 6 : 0")),
        api.member("ip_plength", "uint16_t", _const(conn.bytes)),
        address("ip_saddr", conn, src),
        address("ip_daddr", conn, dst)))


def tcpsinfo(conn: Conn, state: str = "") -> ArgInfo:
    return api.translated_arg("struct sock *", "tcpsinfo_t *", (
        api.member("tcps_addr", "uintptr_t", _const(conn.sock)),
        api.member("tcps_local", "int", _const(
            f"{ADDR_LOCAL}((u32)({conn.family}), (u32)({conn.laddr}), (u32)({conn.raddr}), "
            f"(u64)({conn.laddr6}), (u64)({conn.raddr6}))")),
        api.member("tcps_lport", "uint16_t", _const(conn.lport)),
        api.member("tcps_rport", "uint16_t", _const(conn.rport)),
        address("tcps_laddr", conn, "laddr"),
        address("tcps_raddr", conn, "raddr"),
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
        address("udps_laddr", conn, "laddr"),
        address("udps_raddr", conn, "raddr")))


_SOCK_MEMBERS = ("skc_daddr", "skc_rcv_saddr", "skc_dport", "skc_num", "skc_state",
                 "skc_family")
# absent from a kernel built without IPv6: an AF_INET6 socket's addresses then read
# as "<unknown>" (there are none)
_SOCK_V6 = ("skc_v6_daddr", "skc_v6_rcv_saddr")


@lru_cache(maxsize=1)
def sock_offsets() -> dict[str, int]:
    out = {}
    for m in _SOCK_MEMBERS:
        off = btf.member_offset("sock_common", m)
        if off is None:
            raise DEnvironmentError(f"this kernel's BTF does not describe sock_common.{m}",
                                    hint="the network providers read sockets through BTF")
        out[m] = off
    for m in _SOCK_V6:
        off = btf.member_offset("sock_common", m)
        if off is not None:
            out[m] = off
    return out


def sock_conn(sock: str, nbytes: str = "0", inbound: bool = False,
              offs: dict[str, int] | None = None) -> Conn:
    """The connection of the `struct sock *` at C expression `sock`."""
    o = offs or sock_offsets()
    rd = lambda m, t: api.struct_member(sock, o[m], t)  # noqa: E731
    v6 = lambda m: api.member_address(sock, o[m]) if m in o else "0"  # noqa: E731
    return Conn(sock=sock, family=rd("skc_family", "u16"), laddr=rd("skc_rcv_saddr", "u32"),
                raddr=rd("skc_daddr", "u32"),
                rport=f"__builtin_bswap16({rd('skc_dport', 'u16')})",
                lport=rd("skc_num", "u16"), state=rd("skc_state", "u8"), bytes=nbytes,
                inbound=inbound, laddr6=v6("skc_v6_rcv_saddr"), raddr6=v6("skc_v6_daddr"))
