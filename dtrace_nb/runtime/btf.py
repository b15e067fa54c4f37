"""Struct member offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).

bcc compiles against installed headers, which may be of another kernel version than the
one running (here: 6.1 headers on a 6.18 kernel), so struct layouts from headers can be
wrong. For the few kernel structures the runtime reads itself (task_struct for ppid), the
offsets come from BTF instead and reach the C as -D flags.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from typing import Optional

VMLINUX = "/sys/kernel/btf/vmlinux"
_KIND_STRUCT, _KIND_UNION = 4, 5
# bytes of kind-specific data after the 12-byte common header: (fixed, per vlen item)
_EXTRA = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
          8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
          15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12)}


class BTF:
    def __init__(self, data: bytes):
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", data)
        if magic != 0xEB9F:
            raise ValueError("not BTF data")
        self.data = data
        self.types_start = hdr_len + type_off
        self.strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
        self.offsets = [0]  # byte offset of type id i (id 0 is void)
        pos, end = self.types_start, self.types_start + type_len
        unpack = struct.unpack_from
        while pos < end:
            self.offsets.append(pos)
            info = unpack("<I", data, pos + 4)[0]
            fixed, per = _EXTRA.get((info >> 24) & 0x1F, (0, 0))
            pos += 12 + fixed + per * (info & 0xFFFF)

    def name(self, off: int) -> str:
        end = self.strings.index(b"\0", off)
        return self.strings[off:end].decode()

    def find_struct(self, name: str) -> Optional[int]:
        needle = b"\0" + name.encode() + b"\0"
        idx = self.strings.find(needle)
        if idx < 0:
            return None
        name_off = idx + 1
        for tid in range(1, len(self.offsets)):
            pos = self.offsets[tid]
            n, info = struct.unpack_from("<II", self.data, pos)
            if n == name_off and (info >> 24) & 0x1F == _KIND_STRUCT and info & 0xFFFF:
                return tid
        return None

    def member_offset(self, tid: int, member: str) -> Optional[int]:
        """Byte offset of `member` in struct/union `tid`, looking inside anonymous members."""
        found = self.member(tid, member)
        return None if found is None else found[0]

    def member(self, tid: int, member: str) -> Optional[tuple[int, int]]:
        """(byte offset, type id) of `member` in struct/union `tid`, looking inside
        anonymous members."""
        pos = self.offsets[tid]
        _n, info, _size = struct.unpack_from("<III", self.data, pos)
        bitfield = info >> 31
        for i in range(info & 0xFFFF):
            mname, mtype, moff = struct.unpack_from("<III", self.data, pos + 12 + 12 * i)
            bits = moff & 0xFFFFFF if bitfield else moff
            if mname and self.name(mname) == member:
                return bits // 8, mtype
            if not mname:
                inner = self._resolve(mtype)
                if inner is not None:
                    found = self.member(inner, member)
                    if found is not None:
                        return bits // 8 + found[0], found[1]
        return None

    def path_offset(self, tid: int, path: str) -> Optional[int]:
        """Byte offset of a member path through embedded structs ("f_path.dentry")."""
        total = 0
        for i, name in enumerate(path.split(".")):
            if i:
                inner = self._resolve(tid)
                if inner is None:
                    return None
                tid = inner
            found = self.member(tid, name)
            if found is None:
                return None
            total += found[0]
            tid = found[1]
        return total

    def _resolve(self, tid: int) -> Optional[int]:
        """Follow typedef/const/volatile to a struct or union id."""
        for _ in range(16):
            if tid == 0:
                return None
            _n, info, ref = struct.unpack_from("<III", self.data, self.offsets[tid])
            kind = (info >> 24) & 0x1F
            if kind in (_KIND_STRUCT, _KIND_UNION):
                return tid
            if kind not in (8, 9, 10, 11, 18):
                return None
            tid = ref
        return None


@lru_cache(maxsize=1)
def _vmlinux() -> Optional[BTF]:
    try:
        with open(VMLINUX, "rb") as f:
            return BTF(f.read())
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=None)
def task_offsets() -> dict[str, int]:
    """-D definitions for the task_struct members the prelude reads (empty without BTF)."""
    btf = _vmlinux()
    if btf is None:
        return {}
    tid = btf.find_struct("task_struct")
    if tid is None:
        return {}
    out = {}
    for member, macro in (("real_parent", "DT_TASK_REAL_PARENT_OFF"), ("tgid", "DT_TASK_TGID_OFF")):
        off = btf.member_offset(tid, member)
        if off is not None:
            out[macro] = off
    # vtimestamp: the thread's on-CPU time, task_struct.se.sum_exec_runtime
    se = btf.member_offset(tid, "se")
    sched = btf.find_struct("sched_entity")
    if se is not None and sched is not None:
        off = btf.member_offset(sched, "sum_exec_runtime")
        if off is not None:
            out["DT_TASK_SUM_EXEC_OFF"] = se + off
    return out


# --------------------------------------------------------------------------- for providers
# Providers that read kernel structures (the stable proc/sched/io translators) take member
# offsets and raw tracepoint prototypes from here, so a kernel whose layout moved is read
# right (or refused clearly) instead of through stale headers.

_KIND_NAMES = {1: "int", 2: "ptr", 3: "array", 4: "struct", 5: "union", 6: "enum",
               8: "typedef", 9: "volatile", 10: "const", 11: "restrict", 12: "func",
               13: "func_proto", 16: "float", 18: "type_tag", 19: "enum64"}


def member_offset(struct_name: str, member: str) -> Optional[int]:
    """Byte offset of `member` (looking inside anonymous members) in a kernel struct, or
    None when BTF is missing or the struct has no such member."""
    btf = _vmlinux()
    if btf is None:
        return None
    tid = btf.find_struct(struct_name)
    return None if tid is None else btf.member_offset(tid, member)


def path_offset(struct_name: str, path: str) -> Optional[int]:
    """Byte offset of a member path through embedded structs and unions of a kernel struct
    ("f_path.dentry", "se.sum_exec_runtime"), or None."""
    btf = _vmlinux()
    if btf is None:
        return None
    tid = btf.find_struct(struct_name)
    return None if tid is None else btf.path_offset(tid, path)


def _type_name(btf: BTF, tid: int, depth: int = 0) -> str:
    if tid == 0:
        return "void"
    if depth > 8:
        return "?"
    name_off, info, ref = struct.unpack_from("<III", btf.data, btf.offsets[tid])
    kind = _KIND_NAMES.get((info >> 24) & 0x1F, "?")
    name = btf.name(name_off) if name_off else ""
    if kind == "ptr":
        return _type_name(btf, ref, depth + 1) + " *"
    if kind in ("const", "volatile", "type_tag", "restrict"):
        return _type_name(btf, ref, depth + 1)
    if kind in ("struct", "union", "enum"):
        return f"{kind} {name}"
    return name or kind


@lru_cache(maxsize=None)
def raw_tracepoint_params(tracepoint: str) -> Optional[tuple[str, ...]]:
    """The C types of a raw tracepoint's arguments (what ctx->args[i] hold), from the
    kernel's `btf_trace_<name>` typedef, or None when BTF does not describe it."""
    btf = _vmlinux()
    if btf is None:
        return None
    needle = b"\0btf_trace_" + tracepoint.encode() + b"\0"
    idx = btf.strings.find(needle)
    if idx < 0:
        return None
    name_off = idx + 1
    for tid in range(1, len(btf.offsets)):
        n, info, ref = struct.unpack_from("<III", btf.data, btf.offsets[tid])
        if n != name_off or (info >> 24) & 0x1F != 8:
            continue
        _n, pinfo, proto = struct.unpack_from("<III", btf.data, btf.offsets[ref])
        if (pinfo >> 24) & 0x1F != 2:
            return None
        pos = btf.offsets[proto]
        _n, finfo, _ret = struct.unpack_from("<III", btf.data, pos)
        params = [struct.unpack_from("<II", btf.data, pos + 12 + 8 * i)[1]
                  for i in range(finfo & 0xFFFF)]
        # the first parameter is the tracepoint's private data, not an argument
        return tuple(_type_name(btf, t) for t in params[1:])
    return None


@lru_cache(maxsize=1)
def kernel_functions() -> dict[str, int]:
    """Every function BTF describes in vmlinux: name -> its FUNC type id (what an fentry
    program attaches to; its `type` is the FUNC_PROTO)."""
    btf = _vmlinux()
    if btf is None:
        return {}
    out = {}
    data, unpack = btf.data, struct.unpack_from
    for tid in range(1, len(btf.offsets)):
        name_off, info = unpack("<II", data, btf.offsets[tid])
        if (info >> 24) & 0x1F == 12 and name_off:  # FUNC
            out[btf.name(name_off)] = tid
    return out


def function_params(name: str) -> Optional[tuple[tuple[str, str], ...]]:
    """(type, name) of each parameter of kernel function `name`, from BTF."""
    btf = _vmlinux()
    func = kernel_functions().get(name)
    if btf is None or func is None:
        return None
    proto = struct.unpack_from("<III", btf.data, btf.offsets[func])[2]
    pos = btf.offsets[proto]
    _n, info, _ret = struct.unpack_from("<III", btf.data, pos)
    params = []
    for i in range(info & 0xFFFF):
        pname, ptype = struct.unpack_from("<II", btf.data, pos + 12 + 8 * i)
        params.append((_type_name(btf, ptype), btf.name(pname) if pname else f"arg{i}"))
    return tuple(params)


def function_btf_id(name: str) -> Optional[int]:
    """The BTF type id of kernel function `name` (what an fentry program attaches to)."""
    return kernel_functions().get(name)


# --------------------------------------------------------------------- kernel struct members
# The layout `curthread->member` reads (lang/kernel_types.py): each member's offset and what
# it holds, following typedefs, const and volatile to the type underneath.

_INT, _PTR, _ARRAY, _ENUM, _ENUM64 = 1, 2, 3, 6, 19
_QUALIFIERS = (8, 9, 10, 11, 18)  # typedef volatile const restrict type_tag


def _strip(btf: BTF, tid: int) -> int:
    for _ in range(16):
        if tid == 0:
            return 0
        _n, info, ref = struct.unpack_from("<III", btf.data, btf.offsets[tid])
        if (info >> 24) & 0x1F not in _QUALIFIERS:
            return tid
        tid = ref
    return tid


def _struct_name(btf: BTF, tid: int) -> str:
    """The name of struct/union `tid` ("" for an anonymous one or another kind)."""
    name_off, info = struct.unpack_from("<II", btf.data, btf.offsets[tid])
    return btf.name(name_off) if (info >> 24) & 0x1F in (_KIND_STRUCT, _KIND_UNION) \
        and name_off else ""


def _find_member(btf: BTF, tid: int, member: str) -> Optional[tuple[int, int, int]]:
    """(bit offset, bit-field size or 0, type id) of `member`, inside anonymous members."""
    pos = btf.offsets[tid]
    _n, info, _size = struct.unpack_from("<III", btf.data, pos)
    kflag = info >> 31
    for i in range(info & 0xFFFF):
        mname, mtype, moff = struct.unpack_from("<III", btf.data, pos + 12 + 12 * i)
        bits, fsize = (moff & 0xFFFFFF, moff >> 24) if kflag else (moff, 0)
        if mname and btf.name(mname) == member:
            return bits, fsize, mtype
        if not mname:
            inner = btf._resolve(mtype)
            if inner is not None:
                found = _find_member(btf, inner, member)
                if found is not None:
                    return bits + found[0], found[1], found[2]
    return None


@lru_cache(maxsize=None)
def kernel_member(struct_name: str, member: str):
    """Where `member` of kernel struct (or union) `struct_name` is and what it holds, as
    lang.kernel_types.KernelMember, or None."""
    from dtrace_nb.lang.kernel_types import KernelMember
    btf = _vmlinux()
    if btf is None:
        return None
    tid = btf.find_struct(struct_name)
    if tid is None:
        return None
    found = _find_member(btf, tid, member)
    if found is None:
        return None
    bit_off, fsize, mtype = found
    text = _type_name(btf, mtype)
    t = _strip(btf, mtype)
    _n, info, size_or_ref = struct.unpack_from("<III", btf.data, btf.offsets[t])
    kind = (info >> 24) & 0x1F
    byte, within = bit_off // 8, bit_off % 8
    if kind == _INT:
        enc = struct.unpack_from("<I", btf.data, btf.offsets[t] + 12)[0]
        signed = bool((enc >> 24) & 1)
        nbits = fsize or (enc & 0xFF if (enc & 0xFF) != size_or_ref * 8 else 0)
        return KernelMember(byte, "int", size_or_ref, signed, bit_offset=within,
                            bits=nbits if nbits != size_or_ref * 8 else 0, type_text=text)
    if kind in (_ENUM, _ENUM64):
        return KernelMember(byte, "int", size_or_ref, kind == _ENUM, type_text=text)
    if kind == _PTR:
        target = _strip(btf, size_or_ref)
        return KernelMember(byte, "ptr", 8, target=_struct_name(btf, target) if target else "",
                            type_text=text)
    if kind in (_KIND_STRUCT, _KIND_UNION):
        name = _struct_name(btf, t)
        return KernelMember(byte, "struct", size_or_ref, target=name, type_text=text) \
            if name else KernelMember(byte, "other", type_text=text)
    if kind == _ARRAY:
        elem, _index, count = struct.unpack_from("<III", btf.data, btf.offsets[t] + 12)
        e = _strip(btf, elem)
        _n, einfo, esize = struct.unpack_from("<III", btf.data, btf.offsets[e])
        if (einfo >> 24) & 0x1F == _INT and esize == 1:
            return KernelMember(byte, "chars", count, type_text=text)
        element = _element(btf, e)
        if element is not None:
            return KernelMember(byte, "array", count, type_text=text, element=element)
    return KernelMember(byte, "other", type_text=text)


def _element(btf: BTF, tid: int):
    """An array element (at offset 0, its size in `bits`' place: KernelMember.size) of
    kind int, ptr or struct, or None."""
    from dtrace_nb.lang.kernel_types import KernelMember
    _n, info, size_or_ref = struct.unpack_from("<III", btf.data, btf.offsets[tid])
    kind = (info >> 24) & 0x1F
    text = _type_name(btf, tid)
    if kind == _INT:
        enc = struct.unpack_from("<I", btf.data, btf.offsets[tid] + 12)[0]
        return KernelMember(0, "int", size_or_ref, bool((enc >> 24) & 1), type_text=text)
    if kind in (_ENUM, _ENUM64):
        return KernelMember(0, "int", size_or_ref, kind == _ENUM, type_text=text)
    if kind == _PTR:
        target = _strip(btf, size_or_ref)
        return KernelMember(0, "ptr", 8, target=_struct_name(btf, target) if target else "",
                            type_text=text)
    if kind in (_KIND_STRUCT, _KIND_UNION) and _struct_name(btf, tid):
        return KernelMember(0, "struct", size_or_ref, target=_struct_name(btf, tid),
                            type_text=text)
    return None
