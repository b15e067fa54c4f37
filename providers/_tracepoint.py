"""A tracepoint's record as C and as probe arguments, from its tracefs format file.

The generated context struct uses only fixed-size integer types chosen from each field's
size and signedness, placed at the format file's offsets with explicit padding: types the
installed headers may not know (`key_serial_t`, a newer kernel's enums) never reach the
compiler, and a layout that changed since the headers were packaged is still read right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.probes import ArgInfo
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb_providers._tracefs import FormatField, event_format

_INT = {1: "8", 2: "16", 4: "32", 8: "64"}
# char arrays (and __data_loc char[]) are strings in D; other arrays are addresses.
_CHAR_TYPES = ("char", "signed char", "const char")
COMMON_SIZE = 8  # the common_* header every record starts with


@dataclass(frozen=True)
class TracepointArgs:
    struct_name: str
    declaration: str
    args: tuple[ArgInfo, ...]
    exprs: tuple[str, ...]
    notes: tuple[str, ...]


def _c_ident(text: str) -> str:
    return re.sub(r"\W", "_", text)


def _is_string(f: FormatField) -> bool:
    if f.ctype.startswith("__data_loc"):
        return f.ctype.replace("__data_loc", "").strip() in ("char[]", "const char[]")
    return f.array > 0 and f.ctype in _CHAR_TYPES


def _aligned(f: FormatField) -> bool:
    return f.size in (1, 2, 4, 8) and f.offset % f.size == 0 and f.array == 0


# Declared C integer types whose width may be smaller than the field that stores them:
# syscalls:* records keep every argument in 8 bytes (`int dfd` has size 8, signed 0).
_DECLARED = {"char": (1, True), "signed char": (1, True), "unsigned char": (1, False),
             "short": (2, True), "unsigned short": (2, False), "int": (4, True),
             "unsigned int": (4, False), "unsigned": (4, False), "pid_t": (4, True),
             "uid_t": (4, False), "gid_t": (4, False), "umode_t": (2, False),
             "key_serial_t": (4, True), "clockid_t": (4, True), "timer_t": (4, True),
             "mqd_t": (4, True), "rwf_t": (4, True), "qid_t": (4, False), "bool": (1, False)}


def _declared(f: FormatField) -> tuple[int, bool]:
    """(size, signed) of a scalar field as its C declaration says, where known."""
    base = f.ctype.replace("const ", "").strip()
    size, signed = _DECLARED.get(base, (f.size, f.signed))
    return (size, signed) if size <= f.size else (f.size, f.signed)


def d_type(f: FormatField) -> str:
    """The D type of a scalar field: pointers keep their C spelling (they read as integers
    remembering their target); other scalars become the fixed-size integer of their
    declared size (else the field's size)."""
    if f.ctype.endswith("*") and f.size == 8:
        return f.ctype
    size, signed = _declared(f)
    return f"{'int' if signed else 'uint'}{_INT.get(size, '64')}_t"


def tracepoint_args(category: str, event: str, fields: tuple[FormatField, ...]) -> TracepointArgs:
    """The context struct declaration and argN/args[N] for every field, in format order."""
    name = f"dt_tp_{_c_ident(category)}__{_c_ident(event)}"
    lines = [f"struct {name} {{", "\tu64 dt_common;"]
    pos = COMMON_SIZE
    args, exprs, notes = [], [], []
    for i, f in enumerate(fields):
        if f.offset < pos:  # overlapping or out-of-order fields: skip them rather than guess
            continue
        if f.offset > pos:
            lines.append(f"\tu8 dt_pad{i}[{f.offset - pos}];")
        member = f"f_{_c_ident(f.name)}"
        if _aligned(f):
            lines.append(f"\t{'s' if f.signed else 'u'}{_INT[f.size]} {member};")
        else:
            lines.append(f"\tu8 {member}[{f.size}];")
        pos = f.offset + f.size
        where = f"field {f.name} ({f.ctype}{'[%d]' % f.array if f.array else ''}) at offset {f.offset}"
        if f.ctype.startswith("__data_loc"):
            # a u32: the data's offset from the record's start (low 16 bits) and length
            exprs.append(api.tracepoint_data_loc(member))
            notes.append(f"address of the variable-length {where} (__data_loc)")
            if _is_string(f):
                args.append(ArgInfo(f.ctype, "string", f.name))
            else:
                args.append(ArgInfo(f.ctype, "uintptr_t", f.name))
        elif not _aligned(f):
            exprs.append(api.tracepoint_field_address(member))
            notes.append(f"address of {where}")
            if _is_string(f):
                args.append(ArgInfo(f"{f.ctype}[{f.array}]", "string", f.name,
                                    string_size=f.size))
            else:
                args.append(ArgInfo(f"{f.ctype}[{f.array or f.size}]", "uintptr_t", f.name))
        else:
            size, signed = _declared(f)
            ctype = f"{'s' if signed else 'u'}{_INT[size]}"
            exprs.append(f"({api.widen(api.tracepoint_field(member), ctype)})")
            notes.append(f"{where}, read from the tracepoint record")
            args.append(ArgInfo(f.ctype, d_type(f), f.name))
    lines.append("};")
    return TracepointArgs(name, "\n".join(lines), tuple(args), tuple(exprs), tuple(notes))


@lru_cache(maxsize=None)
def record(category: str, event: str) -> TracepointArgs:
    """The record of tracepoint category:event on this kernel (cached)."""
    return tracepoint_args(category, event, event_format(category, event))


def field_expr(category: str, event: str, field: str) -> str:
    """C reading one named field of a tracepoint record through `ctx` (for providers that
    build their arguments from a tracepoint's fields); a clear error if the kernel's
    record has no such field."""
    rec = record(category, event)
    for info, expr in zip(rec.args, rec.exprs):
        if info.name == field:
            return expr
    raise DEnvironmentError(
        f"tracepoint {category}:{event} has no field '{field}' on this kernel",
        hint="is tracefs mounted? otherwise the provider needs updating for this kernel")
