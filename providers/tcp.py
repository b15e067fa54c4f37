"""The tcp provider (DTrace's tcp.d probes) on this kernel's sock: tracepoints.

| probe | kernel hook | fires |
|---|---|---|
| state-change | sock:inet_sock_set_state (protocol TCP) | every TCP state change, IPv4 and IPv6 (the record's family, saddr/daddr and saddr_v6/daddr_v6) |
| connect-request | as state-change, CLOSE -> SYN_SENT | an active open sends its SYN |
| connect-established | as state-change, SYN_SENT -> ESTABLISHED | the SYN-ACK arrived |
| connect-refused | as state-change, SYN_SENT -> CLOSE | the active open failed (a RST, or a timeout: the tracepoint does not say which) |
| accept-established | as state-change, SYN_RECV -> ESTABLISHED | a passive open completed (the listener's child socket) |
| send | sock:sock_send_length (protocol TCP, bytes > 0) | once per send call with the bytes it queued, not once per segment: no tracepoint sees each outgoing segment |
| receive | sock:sock_recv_length (protocol TCP, bytes > 0) | once per receive call with the bytes it returned |

accept-refused (a RST answering a SYN to a closed port) is listed and refused:
tcp:tcp_send_reset carries no state to tell it from other resets. Arguments, as DTrace's: args[0] pktinfo_t,
args[1] csinfo_t, args[2] ipinfo_t, args[3] tcpsinfo_t, args[4] tcpinfo_t, args[5]
tcplsinfo_t (state-change family: the previous state). At send/receive ip_plength is the
payload bytes of the call (tcp_offset is 0, so `ip_plength - tcp_offset` is the payload, as
the books compute it); tcps_state numbers are Linux's, as in dtrace-utils' tcp.d
(ESTABLISHED 1, SYN_SENT 2, ..., CLOSE 7). Translators: _netinfo.py.
"""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DProbeError
from dtrace_nb_providers import _netinfo as net
from dtrace_nb_providers._stable import StableProbe, StableProvider, tracepoint_hook
from dtrace_nb_providers._tracefs import event_format

ESTABLISHED, SYN_SENT, SYN_RECV, CLOSE = 1, 2, 3, 7
STATE_EVENT = ("sock", "inet_sock_set_state")


def record_field(event: tuple[str, str], name: str, ctype: str) -> str:
    """C of field `name` of the firing's record (offsets from the format file)."""
    for f in event_format(*event):
        if f.name == name:
            return api.struct_member(api.tracepoint_record(), f.offset, ctype)
    raise KeyError(f"{event[0]}:{event[1]} has no field {name}")


def record_field_address(event: tuple[str, str], name: str) -> str:
    """C of the kernel address of field `name` of the firing's record (an array)."""
    for f in event_format(*event):
        if f.name == name:
            return api.member_address(api.tracepoint_record(), f.offset)
    raise KeyError(f"{event[0]}:{event[1]} has no field {name}")


def _state_conn(inbound: bool) -> net.Conn:
    f = lambda n, t: record_field(STATE_EVENT, n, t)  # noqa: E731
    return net.Conn(sock=f("skaddr", "u64"), family=f("family", "u16"),
                    laddr=f("saddr", "u32"), raddr=f("daddr", "u32"),
                    lport=f("sport", "u16"), rport=f("dport", "u16"),
                    state=f("newstate", "s32"), inbound=inbound,
                    laddr6=record_field_address(STATE_EVENT, "saddr_v6"),
                    raddr6=record_field_address(STATE_EVENT, "daddr_v6"))


def _state_args(inbound: bool):
    def args():
        c = _state_conn(inbound)
        return (net.pktinfo(c), net.csinfo(c), net.ipinfo(c), net.tcpsinfo(c), net.tcpinfo(c),
                net.tcplsinfo(record_field(STATE_EVENT, "oldstate", "s32")))
    return args


def _state_hooks(old: int | None = None, new: int | None = None):
    def hooks():
        f = lambda n, t: record_field(STATE_EVENT, n, t)  # noqa: E731
        cond = [f"{f('protocol', 'u16')} == {net.IPPROTO_TCP}"]
        if old is not None:
            cond.append(f"{f('oldstate', 's32')} == {old}")
        if new is not None:
            cond.append(f"{f('newstate', 's32')} == {new}")
        sk = f("skaddr", "u64")
        return [tracepoint_hook(*STATE_EVENT, arg_exprs=(sk,) * 6,
                                notes=("the socket (sock:inet_sock_set_state skaddr)",) * 6,
                                prologue=(api.skip_unless(" && ".join(cond)),),
                                declarations=(net.ADDR_HELPER,))]
    return hooks


def _length_event(inbound: bool) -> tuple[str, str]:
    return ("sock", "sock_recv_length" if inbound else "sock_send_length")


def _io_conn(inbound: bool) -> net.Conn:
    ev = _length_event(inbound)
    return net.sock_conn(record_field(ev, "sk", "u64"), record_field(ev, "ret", "s32"), inbound)


def _io_args(inbound: bool):
    def args():
        c = _io_conn(inbound)
        return (net.pktinfo(c), net.csinfo(c), net.ipinfo(c), net.tcpsinfo(c), net.tcpinfo(c))
    return args


def io_hooks(inbound: bool, protocol: int):
    """sock_send_length / sock_recv_length of one protocol with bytes (tcp and udp)."""
    def hooks():
        ev = _length_event(inbound)
        sk = record_field(ev, "sk", "u64")
        cond = (f"{record_field(ev, 'protocol', 'u16')} == {protocol} && "
                f"{record_field(ev, 'ret', 's32')} > 0")
        return [tracepoint_hook(*ev, arg_exprs=(sk,) * 5,
                                notes=(f"the socket (sock:{ev[1]} sk)",) * 5,
                                prologue=(api.skip_unless(cond),),
                                declarations=(net.ADDR_HELPER,))]
    return hooks


def _accept_refused():
    raise DProbeError("tcp:::accept-refused cannot be served on this kernel: tcp:tcp_send_reset "
                      "does not say whether the reset answers a SYN to a closed port",
                      hint="tcp:::connect-refused (the other end's view) is served")


class TcpProvider(StableProvider):
    name = "tcp"
    order = 43
    probes = (
        StableProbe("state-change", _state_args(False), _state_hooks()),
        StableProbe("connect-request", _state_args(False), _state_hooks(CLOSE, SYN_SENT)),
        StableProbe("connect-established", _state_args(True),
                    _state_hooks(SYN_SENT, ESTABLISHED)),
        StableProbe("connect-refused", _state_args(True), _state_hooks(SYN_SENT, CLOSE)),
        StableProbe("accept-established", _state_args(True),
                    _state_hooks(SYN_RECV, ESTABLISHED)),
        StableProbe("accept-refused", _state_args(True), _accept_refused),
        StableProbe("send", _io_args(False), io_hooks(False, net.IPPROTO_TCP)),
        StableProbe("receive", _io_args(True), io_hooks(True, net.IPPROTO_TCP)),
    )
