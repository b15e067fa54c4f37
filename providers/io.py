"""The io provider (stable): block device I/O, as in DTrace.

| probe | fires | kernel hook | arguments |
|---|---|---|---|
| start | a request is issued to the device driver | tracepoint block:block_rq_issue | args[0] bufinfo_t *, args[1] devinfo_t * |
| done | a request completed | tracepoint block:block_rq_complete | args[0] bufinfo_t *, args[1] devinfo_t * |

bufinfo_t members: b_flags (B_READ 0x40 / B_WRITE 0x100, from the record's rwbs string),
b_bcount (bytes: the record's `bytes` field where it has one, else nr_sector * 512),
b_blkno and b_lblkno (the start sector), b_error (the completion status; 0 at start).
devinfo_t members: dev_major, dev_minor (from the record's dev_t: major << 20 | minor).
arg0 and arg1 identify the request the same way at start and done: the device (its
12-bit major, its minor's low 8 bits) above the start sector's low 44 bits (DTrace's arg0 is the buf's address; the
block tracepoints give no request pointer), so `start[arg0] = timestamp` is found at done.
DTrace's args[2] fileinfo_t, and devinfo_t's dev_name/dev_statname, are not available from
the block tracepoints and are left out. done fires in interrupt context on most devices,
so pid/execname there are whatever was running.
Kernel structures read: only the tracepoint records (their format files).
"""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.probes import ArgInfo
from dtrace_nb_providers._stable import StableProbe, StableProvider, tracepoint_hook
from dtrace_nb_providers._tracefs import event_format
from dtrace_nb_providers._tracepoint import record

B_READ, B_WRITE = 0x40, 0x100
SECTOR = 512
_EVENTS = {"start": "block_rq_issue", "done": "block_rq_complete"}

# rwbs ("W", "WS", "R", "RA", "FWS"...) to DTrace's b_flags: scan its first 8 bytes.
FLAGS = api.local("io_flags")
FLAGS_HELPER = f"""static __always_inline u32 {FLAGS}(u64 rwbs)
{{
	u32 flags = 0;
#pragma unroll
	for (int i = 0; i < 8; i++) {{
		u8 c = (rwbs >> (8 * i)) & 0xff;
		if (c == 'W') flags |= {B_WRITE};
		if (c == 'R') flags |= {B_READ};
	}}
	return flags;
}}"""


def _field_offset(event: str, name: str) -> int:
    for f in event_format("block", event):
        if f.name == name:
            return f.offset
    return -1


def _field_reader(event: str, name: str, ctype: str):
    """A translator member's read of field `name` of the firing's record ("0" where the
    kernel's record has no such field). The raw argument is the request's identity, not
    the record, so members read the record through the context."""
    off = _field_offset(event, name)
    rec = api.tracepoint_record()
    return (lambda _arg: api.struct_member(rec, off, ctype)) if off >= 0 else (lambda _arg: "0")


def request_id(event: str) -> str:
    """arg0: the request as both probes see it, the device in the top 20 bits (major, low
    8 bits of the minor) and the start sector below (DTrace's arg0 is the buf's address, the same at start and done;
    the tracepoints give no request pointer, and device + sector names a request while
    it is in flight: `start[arg0] = timestamp` at start is found again at done)."""
    dev, sector = _field_reader(event, "dev", "u32")(""), _field_reader(event, "sector", "u64")("")
    # dev_t is major << 20 | minor: keep the 12-bit major and the minor's low 8 bits
    dev20 = f"(((((u64){dev}) >> 20) & 0xfff) << 8 | (((u64){dev}) & 0xff))"
    return f"(({dev20} << 44) | ({sector} & ((1ULL << 44) - 1)))"


def _bufinfo(event: str) -> ArgInfo:
    # the argument is the record's address: members read its fields safely
    rwbs, sector = _field_reader(event, "rwbs", "u64"), _field_reader(event, "sector", "u64")
    error = _field_reader(event, "error", "s32")
    if _field_offset(event, "bytes") >= 0:
        count = _field_reader(event, "bytes", "u32")
    else:
        nr_sector = _field_reader(event, "nr_sector", "u32")
        count = lambda rec: f"({nr_sector(rec)} * {SECTOR})"  # noqa: E731
    return api.translated_arg("struct request *", "bufinfo_t *", (
        api.member("b_flags", "int", lambda rec: f"{FLAGS}({rwbs(rec)})"),
        api.member("b_bcount", "size_t", count),
        api.member("b_blkno", "uint64_t", sector),
        api.member("b_lblkno", "uint64_t", sector),
        api.member("b_error", "int", error),
    ))


def _devinfo(event: str) -> ArgInfo:
    dev = _field_reader(event, "dev", "u32")
    return api.translated_arg("dev_t", "devinfo_t *", (
        api.member("dev_major", "int", lambda rec: f"({dev(rec)} >> 20)"),
        api.member("dev_minor", "int", lambda rec: f"({dev(rec)} & 0xfffff)")))


def _hooks(event: str):
    record("block", event)
    rid = request_id(event)
    return [tracepoint_hook("block", event, arg_exprs=(rid, rid),
                            notes=(f"the request: the {event} record's dev and sector "
                                   f"(bufinfo_t translated from the record's fields)",
                                   "the request (devinfo_t from the record's dev field)"),
                            declarations=(FLAGS_HELPER,))]


def _probe(name: str) -> StableProbe:
    ev = _EVENTS[name]
    return StableProbe(name, lambda: (_bufinfo(ev), _devinfo(ev)), lambda: _hooks(ev))


class IoProvider(StableProvider):
    name = "io"
    order = 42
    probes = (_probe("start"), _probe("done"))
