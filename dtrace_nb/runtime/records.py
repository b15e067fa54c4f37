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

from dtrace_nb.codegen.layout import ERROR_EPID, REC_HEADER, RecordLayout
from dtrace_nb.probes import Probe

_HEADER = struct.Struct("<IIIIQ")
_ERROR = struct.Struct("<QQQQ")


@dataclass
class Record:
    epid: int
    cpu: int
    probe: Probe
    values: list
    spec: int = 0
    mask: int = -1  # bit i set: action i ran


@dataclass
class ErrorRecord:
    """A run-time fault in a clause (see codegen/fault.h)."""

    cpu: int
    probe: Probe
    epid: int
    fault: int
    addr: int
    action: int


class RecordDecoder:
    def __init__(self, layouts: dict[int, RecordLayout], probes: list[Probe]):
        self.by_epid = {r.epid: r for r in layouts.values()}
        self.probes = probes
        self._structs = {r.epid: self._struct(r) for r in layouts.values()}
        # tracemem() buffers stay bytes; other buffers are NUL-terminated strings
        self._raw = {r.epid: {a.fields[0] for a in r.actions if a.kind == "tracemem"}
                     for r in layouts.values()}

    @staticmethod
    def _struct(r: RecordLayout) -> struct.Struct:
        fmt = "<" + "".join(f"{f.size}s" if f.is_string else ("q" if f.signed else "Q")
                            for f in r.fields)
        return struct.Struct(fmt)

    def decode(self, data: bytes):
        if len(data) < REC_HEADER:
            return None
        epid, cpu, pidx, spec, mask = _HEADER.unpack_from(data)
        if pidx >= len(self.probes):
            return None
        if epid == ERROR_EPID:
            fepid, fault, addr, action = _ERROR.unpack_from(data, REC_HEADER)
            return ErrorRecord(cpu, self.probes[pidx], fepid, fault, addr, action)
        layout = self.by_epid.get(epid)
        if layout is None:
            return None
        raw = self._structs[epid].unpack_from(data, REC_HEADER)
        keep = self._raw[epid]
        values = [v if (i in keep or not isinstance(v, bytes))
                  else v.split(b"\0", 1)[0].decode(errors="replace")
                  for i, v in enumerate(raw)]
        return Record(epid, cpu, self.probes[pidx], values, spec, mask)


class RingConsumer:
    """Pulls records out of the program's ring buffer and hands each decoded one on."""

    def __init__(self, bpf, decoder: RecordDecoder, on_record: Callable[[Record], None]):
        self.bpf = bpf
        self.decoder = decoder
        self.on_record = on_record

        self.failure: Optional[BaseException] = None

        def _cb(_ctx, data, size):
            # An exception must not vanish inside a C callback: keep it for the session.
            try:
                rec = decoder.decode(ctypes.string_at(data, size))
                if rec is not None:
                    on_record(rec)
            except BaseException as exc:  # noqa: BLE001 - re-raised by poll()
                if self.failure is None:
                    self.failure = exc
            return 0

        self._cb = _cb
        bpf[b"dtnb_rb"].open_ring_buffer(_cb)

    def poll(self, timeout_ms: int) -> None:
        self.bpf.ring_buffer_poll(timeout_ms)
        self._raise()

    def drain(self) -> None:
        self.bpf.ring_buffer_consume()
        self._raise()

    def _raise(self) -> None:
        if self.failure is not None:
            exc, self.failure = self.failure, None
            raise exc
