"""Trace records from the ring buffer: bytes -> decoded records -> DTrace text.

The kernel writes only data; each record starts with the clause's EPID, and the layout
codegen produced for that clause says how to read the rest and which actions (printf,
trace, exit, the default action) turn the values into output.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from typing import Callable, Optional

from dtrace_nb.codegen.layout import REC_HEADER, RecordLayout
from dtrace_nb.probes import Probe

_HEADER = struct.Struct("<IIII")


@dataclass
class Record:
    epid: int
    cpu: int
    probe: Probe
    values: list


class RecordDecoder:
    def __init__(self, layouts: dict[int, RecordLayout], probes: list[Probe]):
        self.by_epid = {r.epid: r for r in layouts.values()}
        self.probes = probes
        self._structs = {r.epid: self._struct(r) for r in layouts.values()}

    @staticmethod
    def _struct(r: RecordLayout) -> struct.Struct:
        fmt = "<" + "".join(f"{f.size}s" if f.is_string else ("q" if f.signed else "Q")
                            for f in r.fields)
        return struct.Struct(fmt)

    def decode(self, data: bytes) -> Optional[Record]:
        if len(data) < REC_HEADER:
            return None
        epid, cpu, pidx, _ = _HEADER.unpack_from(data)
        layout = self.by_epid.get(epid)
        if layout is None or pidx >= len(self.probes):
            return None
        raw = self._structs[epid].unpack_from(data, REC_HEADER)
        values = [v.split(b"\0", 1)[0].decode(errors="replace") if isinstance(v, bytes) else v
                  for v in raw]
        return Record(epid, cpu, self.probes[pidx], values)


class RingConsumer:
    """Pulls records out of the program's ring buffer and hands each decoded one on."""

    def __init__(self, bpf, decoder: RecordDecoder, on_record: Callable[[Record], None]):
        self.bpf = bpf
        self.decoder = decoder
        self.on_record = on_record

        def _cb(_ctx, data, size):
            rec = decoder.decode(ctypes.string_at(data, size))
            if rec is not None:
                on_record(rec)
            return 0

        self._cb = _cb
        bpf[b"dtnb_rb"].open_ring_buffer(_cb)

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)

    def drain(self) -> None:
        self.bpf.ring_buffer_consume()
