"""The ip provider (DTrace's ip.d probes) on this kernel's net: tracepoints, IPv4 and IPv6.

| probe | kernel hook | fires |
|---|---|---|
| send | net:net_dev_start_xmit | an IPv4 or IPv6 packet is handed to a device driver (before the driver runs, so the packet is still the sender's; on loopback, in the sending thread) |
| receive | net:netif_receive_skb | an IPv4 or IPv6 packet enters the stack from a device (softirq context: pid and execname are whoever was interrupted) |

Other packets (ARP...) do not fire: the skb's protocol (ETH_P_IP, ETH_P_IPV6) and the
header's version must agree. Arguments as DTrace's: args[0] pktinfo_t (pkt_addr: the
sk_buff), args[1] csinfo_t (cs_addr: the skb's socket, 0 on receive), args[2] ipinfo_t
(ip_ver 4 or 6, ip_plength: IPv4 total length less the header, IPv6 payload_len,
ip_saddr/ip_daddr strings as inet_ntoa()/inet_ntoa6() make them), args[3] ifinfo_t
(if_name, the device), args[4] ipv4info_t and args[5] ipv6info_t (the header's fields;
the one of the other version reads as ip.d's translator of a NULL header: 0 and
"<null>"). ipv6_src/ipv6_dst are the addresses' kernel addresses (uintptr_t: pass them
to inet_ntoa6()); the protocol-name members (ipv4_protostr, ipv6_nextstr) are refused.
Kernel structures read: sk_buff.{head, network_header, protocol, sk} (BTF) and the IPv4
or IPv6 header the skb's network header points at (IPv6: the fixed 40-byte header;
extension headers are not walked, so ipv6_nexthdr is the first next-header value).
"""

from __future__ import annotations

from functools import lru_cache

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.runtime import btf
from dtrace_nb_providers import _netinfo as net
from dtrace_nb_providers._stable import StableProbe, StableProvider, tracepoint_hook
from dtrace_nb_providers._tracepoint import field_expr
from dtrace_nb_providers.tcp import record_field

EVENTS = {"send": ("net", "net_dev_start_xmit"), "receive": ("net", "netif_receive_skb")}
ETH_P_IP_BE = 0x0008  # htons(0x0800) as the u16 reads on a little-endian CPU
ETH_P_IPV6_BE = 0xdd86  # htons(0x86dd)
IH = api.local("ih")  # the IP header's kernel address (prologue local)
VER = api.local("ver")  # its version, 4 or 6 (prologue local)
PROTO = api.local("proto")  # the skb's protocol (prologue local)
NO_NAMES = "protocol names are not formatted by this provider (the number is)"


@lru_cache(maxsize=1)
def skb_offsets() -> dict[str, int]:
    out = {}
    for m in ("head", "network_header", "protocol", "sk"):
        off = btf.member_offset("sk_buff", m)
        if off is None:
            raise DEnvironmentError(f"this kernel's BTF does not describe sk_buff.{m}")
        out[m] = off
    return out


def _skb(event) -> str:
    return record_field(event, "skbaddr", "u64")


def _hdr(off: int, ctype: str) -> str:
    return api.struct_member(IH, off, ctype)


def _be16(off: int) -> str:
    return f"__builtin_bswap16({_hdr(off, 'u16')})"


def _const(expr: str):
    return lambda _arg: f"(u64)({expr})"


def _v4(expr: str, otherwise: str = "0") -> str:
    """`expr` (of the IPv4 header) on an IPv4 packet, else `otherwise`: ipv4info_t of
    an IPv6 packet reads as the translator's NULL header does."""
    return f"({VER} == 4 ? ({expr}) : {otherwise})"


def _v6(expr: str, otherwise: str = "0") -> str:
    return f"({VER} == 6 ? ({expr}) : {otherwise})"


def _ip_args(event):
    def args():
        skb, o = _skb(event), skb_offsets()
        sock = "0" if event == EVENTS["receive"] else api.struct_member(skb, o["sk"])
        ihl = f"(({_hdr(0, 'u8')}) & 0xf)"
        # payload bytes: IPv4 total length less the header; IPv6 payload_len
        plen = _v4(f"{_be16(2)} - {ihl} * 4", _be16(4))
        family = _v4(str(net.AF_INET), str(net.AF_INET6))
        # the IPv4 addresses as they lie in the header (network order), the IPv6 ones
        # by their kernel address, for the compiler's formatting
        conn = net.Conn(sock=sock, family=family, laddr=_hdr(12, "u32"),
                        raddr=_hdr(16, "u32"), lport="0", rport="0", state="0", bytes=plen,
                        laddr6=api.member_address(IH, 8), raddr6=api.member_address(IH, 24))
        ipv4 = (("ipv4_ver", "uint8_t", f"({_hdr(0, 'u8')} >> 4)"),
                ("ipv4_ihl", "uint8_t", f"({ihl} * 4)"),
                ("ipv4_tos", "uint8_t", _hdr(1, "u8")),
                ("ipv4_length", "uint16_t", _be16(2)),
                ("ipv4_ident", "uint16_t", _be16(4)),
                ("ipv4_flags", "uint8_t", f"({_be16(6)} >> 13)"),
                ("ipv4_offset", "uint16_t", f"({_be16(6)} & 0x1fff)"),
                ("ipv4_ttl", "uint8_t", _hdr(8, "u8")),
                ("ipv4_protocol", "uint8_t", _hdr(9, "u8")),
                ("ipv4_checksum", "uint16_t", _be16(10)),
                ("ipv4_src", "ipaddr_t", _hdr(12, "u32")),
                ("ipv4_dst", "ipaddr_t", _hdr(16, "u32")))
        word0 = f"__builtin_bswap32({_hdr(0, 'u32')})"
        ipv6 = (("ipv6_ver", "uint8_t", f"({_hdr(0, 'u8')} >> 4)"),
                ("ipv6_tclass", "uint8_t", f"(({word0} >> 20) & 0xff)"),
                ("ipv6_flow", "uint32_t", f"({word0} & 0xfffff)"),
                ("ipv6_plen", "uint16_t", _be16(4)),
                ("ipv6_nexthdr", "uint8_t", _hdr(6, "u8")),
                ("ipv6_hlim", "uint8_t", _hdr(7, "u8")),
                ("ipv6_src", "uintptr_t", api.member_address(IH, 8)),
                ("ipv6_dst", "uintptr_t", api.member_address(IH, 24)))
        v4_family = _v4(str(net.AF_INET), str(net.NO_HEADER_FAMILY))
        v6_family = _v6(str(net.AF_INET6), str(net.NO_HEADER_FAMILY))
        name = field_expr(*event, "name")
        return (
            api.translated_arg("struct sk_buff *", "pktinfo_t *", (
                api.member("pkt_addr", "uintptr_t", _const(skb)),)),
            api.translated_arg("struct sock *", "csinfo_t *", (
                api.member("cs_addr", "uintptr_t", _const(sock)),
                api.member("cs_cid", "uint64_t", _const(sock)),
                api.refused_member("cs_pid", "pid_t", net.NO_PID))),
            net.ipinfo(conn),
            api.translated_arg("struct net_device *", "ifinfo_t *", (
                api.member("if_name", "string", lambda _a: f"(u64)({name})", string_size=16),
                api.refused_member("if_local", "int8_t", "not read by this provider"),
                api.refused_member("if_addr", "uintptr_t", "not read by this provider"))),
            api.translated_arg("struct iphdr *", "ipv4info_t *", tuple(
                api.member(n, t, _const(_v4(c))) for n, t, c in ipv4) + (
                api.address_member("ipv4_saddr", v4_family, v4=_hdr(12, "u32")),
                api.address_member("ipv4_daddr", v4_family, v4=_hdr(16, "u32")),
                api.refused_member("ipv4_protostr", "string", NO_NAMES))),
            api.translated_arg("struct ipv6hdr *", "ipv6info_t *", tuple(
                api.member(n, t, _const(_v6(c))) for n, t, c in ipv6) + (
                api.address_member("ipv6_saddr", v6_family, v6=api.member_address(IH, 8)),
                api.address_member("ipv6_daddr", v6_family, v6=api.member_address(IH, 24)),
                api.refused_member("ipv6_nextstr", "string", NO_NAMES))),
        )
    return args


def _hooks(event):
    def hooks():
        skb, o = _skb(event), skb_offsets()
        head = api.struct_member(skb, o["head"])
        nh = api.struct_member(skb, o["network_header"], "u16")
        proto = api.struct_member(skb, o["protocol"], "u16")
        return [tracepoint_hook(*event, arg_exprs=(skb,) * 6,
                                notes=(f"the sk_buff ({event[0]}:{event[1]} skbaddr)",) * 6,
                                prologue=(
                                    api.declare("u16", "proto", proto),
                                    api.skip_unless(f"{PROTO} == {ETH_P_IP_BE} || "
                                                    f"{PROTO} == {ETH_P_IPV6_BE}"),
                                    api.declare("u64", "ih", f"{head} + {nh}"),
                                    api.declare("u8", "ver", f"{_hdr(0, 'u8')} >> 4"),
                                    # the header's version agrees with the skb's protocol
                                    api.skip_unless(
                                        f"({VER} == 4 && {PROTO} == {ETH_P_IP_BE}) || "
                                        f"({VER} == 6 && {PROTO} == {ETH_P_IPV6_BE})")),
                                declarations=(net.ADDR_HELPER,))]
    return hooks


class IpProvider(StableProvider):
    name = "ip"
    order = 45
    probes = tuple(StableProbe(n, _ip_args(ev), _hooks(ev)) for n, ev in EVENTS.items())
