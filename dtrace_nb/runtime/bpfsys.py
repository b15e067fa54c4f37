"""The bpf(2) calls the runtime makes itself: create a map, load a program, read and write
map elements, and a small handle per map.

Programs are compiled elsewhere (runtime/compiler.py, in a child process); this process
only creates the maps and loads the instructions, so it never holds an LLVM module and a
compiled object can be loaded again without compiling it (the object cache).
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Optional

SYS_BPF = 321  # x86-64
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_PROG_LOAD = 5

BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
PERCPU_TYPES = frozenset((BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY,
                          BPF_MAP_TYPE_LRU_PERCPU_HASH))
OBJ_NAME_LEN = 16

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * OBJ_NAME_LEN),
                ("map_ifindex", ctypes.c_uint32), ("btf_fd", ctypes.c_uint32),
                ("btf_key_type_id", ctypes.c_uint32), ("btf_value_type_id", ctypes.c_uint32),
                ("btf_vmlinux_value_type_id", ctypes.c_uint32), ("map_extra", ctypes.c_uint64)]


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * OBJ_NAME_LEN),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32)]


class _ElemAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
                ("key", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("flags", ctypes.c_uint64)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    """bpf(cmd, attr); the result, or -errno."""
    ret = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    return ret if ret >= 0 else -ctypes.get_errno()


def _object_name(name: str) -> bytes:
    # the kernel keeps 15 characters of [A-Za-z0-9_.]
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name)[:OBJ_NAME_LEN - 1].encode()


def map_create(map_type: int, name: str, key_size: int, value_size: int, max_entries: int,
               flags: int = 0) -> int:
    """A new map's fd; OSError if the kernel refuses."""
    attr = _MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                          max_entries=max_entries, map_flags=flags, map_name=_object_name(name))
    fd = _bpf(BPF_MAP_CREATE, attr)
    if fd < 0:
        raise OSError(-fd, f"could not create map {name}: {os.strerror(-fd)}")
    return fd


def prog_load(prog_type: int, name: str, insns: bytes, license: bytes = b"GPL",
              kern_version: int = 0, expected_attach_type: int = 0, attach_btf_id: int = 0,
              log_size: int = 0) -> tuple[int, str]:
    """(fd or -errno, verifier log). With log_size 0 the kernel writes no log (the fast
    path); callers ask again with a log when the first load fails."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license)
    log = ctypes.create_string_buffer(log_size) if log_size else None
    attr = _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8,
                         insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                         kern_version=kern_version, prog_name=_object_name(name),
                         expected_attach_type=expected_attach_type,
                         attach_btf_id=attach_btf_id)
    if log is not None:
        attr.log_level, attr.log_size, attr.log_buf = 1, log_size, ctypes.addressof(log)
    fd = _bpf(BPF_PROG_LOAD, attr)
    text = log.value.decode(errors="replace") if log is not None else ""
    return fd, text


def _elem(cmd: int, fd: int, key: ctypes.c_void_p, value: ctypes.c_void_p, flags: int = 0) -> int:
    attr = _ElemAttr(map_fd=fd, key=key or 0, value=value or 0, flags=flags)
    return _bpf(cmd, attr)


def lookup(fd: int, key_addr: int, value_addr: int) -> bool:
    return _elem(BPF_MAP_LOOKUP_ELEM, fd, key_addr, value_addr) == 0


def update(fd: int, key_addr: int, value_addr: int) -> None:
    err = _elem(BPF_MAP_UPDATE_ELEM, fd, key_addr, value_addr)
    if err < 0:
        raise OSError(-err, f"map update failed: {os.strerror(-err)}")


@lru_cache(maxsize=1)
def possible_cpus() -> int:
    """The number of possible CPUs: per-CPU maps hold a value for each."""
    with open("/sys/devices/system/cpu/possible") as f:
        last = 0
        for part in f.read().strip().split(","):
            last = max(last, int(part.split("-")[-1]))
    return last + 1


@dataclass(frozen=True)
class MapSpec:
    """A map as the compiler declared it; `key_desc`/`leaf_desc` are bcc's JSON type
    descriptions, from which the handle builds ctypes Key and Leaf types."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    key_desc: str
    leaf_desc: str


class MapHandle:
    """One map of a loaded program: its fd, its element types, and the few accesses the
    runtime needs (write an element, read one, per-CPU values, a stack trace's frames)."""

    def __init__(self, spec: MapSpec, fd: int, key_type, leaf_type):
        self.spec = spec
        self.fd = fd
        self.Key = key_type
        self.Leaf = leaf_type

    @property
    def max_entries(self) -> int:
        return self.spec.max_entries

    def get_fd(self) -> int:
        return self.fd

    def _key(self, key):
        return key if isinstance(key, ctypes._SimpleCData) or \
            isinstance(key, (ctypes.Structure, ctypes.Union, ctypes.Array)) else self.Key(key)

    def __setitem__(self, key, value) -> None:
        k = self._key(key)
        update(self.fd, ctypes.addressof(k), ctypes.addressof(value))

    def lookup(self, key) -> Optional[ctypes.Structure]:
        k = self._key(key)
        v = self.Leaf()
        return v if lookup(self.fd, ctypes.addressof(k), ctypes.addressof(v)) else None

    def getvalue(self, key) -> list:
        """A per-CPU map's values for one key, one per possible CPU."""
        k = self._key(key)
        stride = (self.spec.value_size + 7) // 8 * 8
        n = possible_cpus()
        buf = ctypes.create_string_buffer(stride * n)
        if not lookup(self.fd, ctypes.addressof(k), ctypes.addressof(buf)):
            raise KeyError(key)
        size = ctypes.sizeof(self.Leaf)
        values = [self.Leaf.from_buffer_copy(buf.raw[i * stride:i * stride + size])
                  for i in range(n)]
        if issubclass(self.Leaf, ctypes._SimpleCData):
            return [v.value for v in values]
        return values

    def walk(self, stackid: int) -> Iterator[int]:
        """The frames of a stack-trace map entry, innermost first."""
        k = ctypes.c_uint32(stackid)
        frames = (ctypes.c_uint64 * (self.spec.value_size // 8))()
        if not lookup(self.fd, ctypes.addressof(k), ctypes.addressof(frames)):
            raise KeyError(stackid)
        for addr in frames:
            if not addr:
                return
            yield addr
