"""DTrace's network translators (libdtrace's ip.d, tcp.d, udp.d) over what this kernel's
tracepoints carry: pktinfo_t, csinfo_t, ipinfo_t, tcpsinfo_t, tcplsinfo_t, tcpinfo_t and
udpinfo_t members, each read from a connection's endpoints (`Conn`), which a provider
builds from a tracepoint record (sock:inet_sock_set_state) or from the `struct sock *`
a record names (sock:sock_send_length), through BTF offsets of sock_common.

Addresses are strings made in the program by a helper into a per-CPU buffer, one slot
per member, as dtrace-utils' translators make them: inet_ntoa() for AF_INET ("127.0.0.1"),
inet_ntoa6() for AF_INET6 (RFC 5952 text, "::1"; an IPv4-mapped or -compatible address
as its dotted quad alone, inet_ntoa6's default), "<unknown>" for another family.
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

AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP = 2, 10, 6, 17
# a "family" for the helper meaning: no header of this kind (ipv4info_t of an IPv6
# packet), formatted "<null>" as the translators do for a NULL header
NO_HEADER_FAMILY = 0xffff
ADDR_STR = api.local("addr_str")
ADDR_LOCAL = api.local("addr_local")
ADDR_SIZE = 48  # the longest text, eight groups of four hex digits, is 39 characters
_BUFS = api.local("addrbufs")
# addr_str(slot, family, a4, a6): the text of an address into slot `slot` of a per-CPU
# buffer: a4 the IPv4 address as it lies in memory (network order), a6 the kernel
# address of 16 bytes of IPv6 address. addr_local: are the two ends the same host?
ADDR_HELPER = f"""struct {_BUFS}_val {{ char s[4][64]; s32 v[12]; }};
BPF_PERCPU_ARRAY({_BUFS}, struct {_BUFS}_val, 1);
static __always_inline u32 {ADDR_STR}_dotted(char *s, u32 n, const u8 *b)
{{
#pragma unroll
	for (int i = 0; i < 4; i++) {{
		u32 o = b[i];
		if (o >= 100) {{ s[n & 63] = '0' + o / 100; n++; }}
		if (o >= 10) {{ s[n & 63] = '0' + (o / 10) % 10; n++; }}
		s[n & 63] = '0' + o % 10; n++;
		if (i < 3) {{ s[n & 63] = '.'; n++; }}
	}}
	return n;
}}
static __always_inline u64 {ADDR_STR}(u32 slot, u32 family, u32 a4, u64 a6)
{{
	u32 k = 0, n = 0;
	struct {_BUFS}_val *b = {_BUFS}.lookup(&k);
	if (!b)
		return 0;
	char *s = b->s[slot & 3];
	u8 x[16] = {{}};
	if (family == {AF_INET}) {{
		__builtin_memcpy(x, &a4, 4);
		n = {ADDR_STR}_dotted(s, 0, x);
		s[n & 63] = 0;
		return (u64)s;
	}}
	if (family == {NO_HEADER_FAMILY}) {{
		__builtin_memcpy(s, "<null>", 7);
		return (u64)s;
	}}
	if (family != {AF_INET6} || bpf_probe_read_kernel(x, 16, (void *)a6) < 0) {{
		__builtin_memcpy(s, "<unknown>", 10);
		return (u64)s;
	}}
	/* values read back from map memory are unknown to the verifier: the paths through
	   the zero-run search and through each group merge instead of multiplying */
	volatile s32 *v = b->v;
	u32 g[8];
#pragma unroll
	for (int i = 0; i < 8; i++) {{
		g[i] = (u32)x[2 * i] << 8 | x[2 * i + 1];
		v[4 + i] = g[i];
	}}
	int high_zero = (g[0] | g[1] | g[2] | g[3] | g[4]) == 0;
	if (high_zero && (g[5] == 0xffff || (g[5] == 0 && (g[6] != 0 || g[7] > 1)))) {{
		n = {ADDR_STR}_dotted(s, 0, x + 12);  /* mapped or compatible IPv4 */
		s[n & 63] = 0;
		return (u64)s;
	}}
	int best = -1, len = 1, run = 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {{
		run = g[i] == 0 ? run + 1 : 0;
		if (run > len) {{
			len = run;
			best = i - run + 1;
		}}
	}}
	v[0] = best;
	v[1] = len;
	best = v[0];
	len = v[1] & 15;
#pragma clang loop unroll(disable)
	for (int i = 0; i < 8; i++) {{
		u32 w = (u32)v[4 + (i & 7)];
		if (best >= 0 && i >= best && i < best + len) {{
			if (i == best) {{
				s[n & 63] = ':'; n++;
				s[n & 63] = ':'; n++;
			}}
		}} else {{
			if (i > 0 && i != best + len) {{
				s[n & 63] = ':'; n++;
			}}
			int started = 0;
#pragma unroll
			for (int sh = 12; sh >= 0; sh -= 4) {{
				u32 d = (w >> sh) & 0xf;
				if (d || started || sh == 0) {{
					s[n & 63] = d < 10 ? '0' + d : 'a' + d - 10;
					n++;
					started = 1;
				}}
			}}
		}}
		v[2] = n;
		n = v[2] & 63;
	}}
	s[n & 63] = 0;
	return (u64)s;
}}
static __always_inline u64 {ADDR_LOCAL}(u32 family, u32 l4, u32 r4, u64 l6, u64 r6)
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


def addr_str(slot: int, family: str, a4: str, a6: str) -> str:
    """C of the text of an address (see ADDR_HELPER), in buffer slot `slot` (0..3)."""
    return f"{ADDR_STR}({slot}, (u32)({family}), (u32)({a4}), (u64)({a6}))"


def _addr(slot: int, conn: Conn, which: str) -> Callable[[str], str]:
    return lambda _arg: addr_str(slot, conn.family, getattr(conn, which),
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
        api.member("ip_saddr", "string", _addr(0, conn, src), string_size=ADDR_SIZE),
        api.member("ip_daddr", "string", _addr(1, conn, dst), string_size=ADDR_SIZE)))


def tcpsinfo(conn: Conn, state: str = "") -> ArgInfo:
    return api.translated_arg("struct sock *", "tcpsinfo_t *", (
        api.member("tcps_addr", "uintptr_t", _const(conn.sock)),
        api.member("tcps_local", "int", _const(
            f"{ADDR_LOCAL}((u32)({conn.family}), (u32)({conn.laddr}), (u32)({conn.raddr}), "
            f"(u64)({conn.laddr6}), (u64)({conn.raddr6}))")),
        api.member("tcps_lport", "uint16_t", _const(conn.lport)),
        api.member("tcps_rport", "uint16_t", _const(conn.rport)),
        api.member("tcps_laddr", "string", _addr(2, conn, "laddr"), string_size=ADDR_SIZE),
        api.member("tcps_raddr", "string", _addr(3, conn, "raddr"), string_size=ADDR_SIZE),
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
        api.member("udps_laddr", "string", _addr(2, conn, "laddr"), string_size=ADDR_SIZE),
        api.member("udps_raddr", "string", _addr(3, conn, "raddr"), string_size=ADDR_SIZE)))


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
