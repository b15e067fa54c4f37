"""The udp provider (DTrace's udp.d probes) on this kernel's sock: tracepoints.

| probe | kernel hook | fires |
|---|---|---|
| send | sock:sock_send_length (protocol UDP, bytes > 0) | once per datagram sent (one send call) |
| receive | sock:sock_recv_length (protocol UDP, bytes > 0) | once per datagram received |

Arguments as DTrace's: args[0] pktinfo_t, args[1] csinfo_t, args[2] ipinfo_t, args[3]
udpsinfo_t, args[4] udpinfo_t (udp_length: payload + 8). A datagram sent with sendto()
on an unconnected socket has no remote address in the socket: udps_raddr/udps_rport are
then 0. Translators: _netinfo.py.

receive's remote end (ip_saddr, udp_sport, udps_raddr) is the socket's, not the
packet's: a receiver that never connect()ed reads "0.0.0.0" / "::" and port 0. No
tracepoint here reaches the received skb in the receiving thread (net:netif_receive_skb
runs before the socket is found; skb:skb_copy_datagram_iovec and skb:consume_skb do not
fire for a UDP receive on this kernel: tests/test_providers_net.py counts them 0).

"""

from __future__ import annotations

from dtrace_nb_providers import _netinfo as net
from dtrace_nb_providers._stable import StableProbe, StableProvider
from dtrace_nb_providers.tcp import _io_conn, io_hooks


def _args(inbound: bool):
    def args():
        c = _io_conn(inbound)
        return (net.pktinfo(c), net.csinfo(c), net.ipinfo(c), net.udpsinfo(c), net.udpinfo(c))
    return args


class UdpProvider(StableProvider):
    name = "udp"
    order = 44
    probes = (
        StableProbe("send", _args(False), io_hooks(False, net.IPPROTO_UDP)),
        StableProbe("receive", _args(True), io_hooks(True, net.IPPROTO_UDP)),
    )
