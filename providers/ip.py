"""The ip provider (DTrace's ip.d probes) on this kernel's net: tracepoints, IPv4.

| probe | kernel hook | fires |
|---|---|---|
| send | net:net_dev_start_xmit | an IPv4 packet is handed to a device driver (before the driver runs, so the packet is still the sender's; on loopback, in the sending thread) |
| receive | net:netif_receive_skb | an IPv4 packet enters the stack from a device (softirq context: pid and execname are whoever was interrupted) |

Packets that are not IPv4 (ARP, IPv6) do not fire: ip.d's IPv6 side (ipv6info_t) is not
served. Arguments as DTrace's: args[0] pktinfo_t (pkt_addr: the sk_buff), args[1]
csinfo_t (cs_addr: the skb's socket, 0 on receive), args[2] ipinfo_t (ip_ver, ip_plength:
total length less the header, ip_saddr/ip_daddr strings), args[3] ifinfo_t (if_name, the
device), args[4] ipv4info_t (the header's fields), args[5] ipv6info_t (refused).
Kernel structures read: sk_buff.{head, network_header, protocol, sk} (BTF) and the IPv4
header the skb's network header points at.
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
IH = api.local("ih")  # the IPv4 header's kernel address (prologue local)


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


def _ip_args(event):
    def args():
        skb, o = _skb(event), skb_offsets()
        sock = "0" if event == EVENTS["receive"] else api.struct_member(skb, o["sk"])
        ihl = f"(({_hdr(0, 'u8')}) & 0xf)"
        plen = f"({_be16(2)} - {ihl} * 4)"
        # the addresses as they lie in the header (network order), for _netinfo's helper
        conn = net.Conn(sock=sock, family=str(net.AF_INET), laddr=_hdr(12, "u32"),
                        raddr=_hdr(16, "u32"), lport="0", rport="0", state="0", bytes=plen)
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
                api.member(n, t, _const(c)) for n, t, c in ipv4) + (
                api.member("ipv4_saddr", "string",
                           lambda _a: f"{net.IPV4_STR}(0, (u32)({_hdr(12, 'u32')}), 2)",
                           string_size=16),
                api.member("ipv4_daddr", "string",
                           lambda _a: f"{net.IPV4_STR}(1, (u32)({_hdr(16, 'u32')}), 2)",
                           string_size=16))),
            api.translated_arg("struct ipv6hdr *", "ipv6info_t *", (
                api.refused_member("ipv6_ver", "uint8_t", "IPv6 packets do not fire here"),)),
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
                                prologue=(api.skip_unless(f"{proto} == {ETH_P_IP_BE}"),
                                          api.declare("u64", "ih", f"{head} + {nh}"),
                                          api.skip_unless(f"({_hdr(0, 'u8')} >> 4) == 4")),
                                declarations=(net.ADDR_HELPER,))]
    return hooks


class IpProvider(StableProvider):
    name = "ip"
    order = 45
    probes = tuple(StableProbe(n, _ip_args(ev), _hooks(ev)) for n, ev in EVENTS.items())
