"""The io provider (stable): block device I/O, as in DTrace.

| probe | fires | kernel hook | arguments |
|---|---|---|---|
| start | a request is issued to the device driver | tracepoint block:block_rq_issue | args[0] bufinfo_t *, args[1] devinfo_t * |
| done | a request completed | tracepoint block:block_rq_complete | args[0] bufinfo_t *, args[1] devinfo_t * |

bufinfo_t members: b_flags (B_READ 0x40 / B_WRITE 0x100, from the record's rwbs string),
b_bcount (bytes: the record's `bytes` field where it has one, else nr_sector * 512),
b_blkno and b_lblkno (the start sector), b_error (the completion status; 0 at start).
devinfo_t members: dev_major, dev_minor (from the record's dev_t: major << 20 | minor).
DTrace's args[2] fileinfo_t, and devinfo_t's dev_name/dev_statname, are not available from
the block tracepoints and are left out. done fires in interrupt context on most devices,
so pid/execname there are whatever was running.
Kernel structures read: only the tracepoint records (their format files).
"""

from __future__ import annotations

from dtrace_nb.probes import ArgInfo, MemberInfo
from dtrace_nb_providers._stable import StableProbe, StableProvider, tracepoint_hook
from dtrace_nb_providers._tracefs import event_format
from dtrace_nb_providers._tracepoint import record

B_READ, B_WRITE = 0x40, 0x100
SECTOR = 512
_EVENTS = {"start": "block_rq_issue", "done": "block_rq_complete"}

# rwbs ("W", "WS", "R", "RA", "FWS"...) to DTrace's b_flags: scan its first 8 bytes.
FLAGS_HELPER = f"""static __always_inline u32 dt_io_flags(u64 rwbs)
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


def _bufinfo(event: str) -> ArgInfo:
    # {arg} is the record's address: members read it with bpf_probe_read_kernel
    def at(name: str, size: int, signed: bool = False) -> str:
        off = _field_offset(event, name)
        if off < 0:
            return "0"
        cast = {4: "u32", 8: "u64"}[size] if not signed else {4: "s32", 8: "s64"}[size]
        return f"(({cast})dt_kread_u64((void *)({{arg}} + {off})))"
    count = (at("bytes", 4) if _field_offset(event, "bytes") >= 0
             else f"({at('nr_sector', 4)} * {SECTOR})")
    members = (
        MemberInfo("b_flags", "int", f"dt_io_flags({at('rwbs', 8)})"),
        MemberInfo("b_bcount", "size_t", count),
        MemberInfo("b_blkno", "uint64_t", at("sector", 8)),
        MemberInfo("b_lblkno", "uint64_t", at("sector", 8)),
        MemberInfo("b_error", "int", at("error", 4, signed=True)),
    )
    return ArgInfo("struct request *", "bufinfo_t *", "", members=members)


def _devinfo(event: str) -> ArgInfo:
    off = _field_offset(event, "dev")
    dev = f"((u32)dt_kread_u64((void *)({{arg}} + {off})))" if off >= 0 else "0"
    return ArgInfo("dev_t", "devinfo_t *", "", members=(
        MemberInfo("dev_major", "int", f"({dev} >> 20)"),
        MemberInfo("dev_minor", "int", f"({dev} & 0xfffff)")))


def _hooks(event: str):
    record("block", event)
    return [tracepoint_hook("block", event, arg_exprs=("(u64)ctx", "(u64)ctx"),
                            notes=(f"the {event} record (bufinfo_t translated from its fields)",
                                   f"the {event} record (devinfo_t from its dev field)"),
                            declarations=(FLAGS_HELPER,))]


def _probe(name: str) -> StableProbe:
    ev = _EVENTS[name]
    return StableProbe(name, lambda: (_bufinfo(ev), _devinfo(ev)), lambda: _hooks(ev))


class IoProvider(StableProvider):
    name = "io"
    order = 42
    probes = (_probe("start"), _probe("done"))
