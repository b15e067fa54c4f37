"""The maps of a loaded program, one typed class per kind of BPF map (bcc's table.py
model): every read and write of a map goes through one of these, and through bpf(2) in
runtime/kernel/bpf.py.

    ArrayMap        BPF_MAP_TYPE_ARRAY: probe table, state, selectors, globals
    HashMap         BPF_MAP_TYPE_HASH (and LRU): selectors, dynamic variables
    PerCpuArrayMap  BPF_MAP_TYPE_PERCPU_ARRAY: drop counters, keyless aggregations
    PerCpuHashMap   BPF_MAP_TYPE_PERCPU_HASH (and LRU): keyed aggregations, read in batches
    RingBufferMap   BPF_MAP_TYPE_RINGBUF: records (read through mmap by runtime/records.py)
    StackTraceMap   BPF_MAP_TYPE_STACK_TRACE: stack() and ustack() frames

Elements are ctypes values (`Key`, `Leaf`: the types bcc described for the map) or, for
per-CPU maps, numpy arrays with one row per possible CPU; a per-CPU value is padded to
8 bytes per CPU, as the kernel copies it.
"""

from __future__ import annotations

import ctypes
import errno
from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from dtrace_nb.runtime.kernel import bpf
from dtrace_nb.runtime.kernel.cpus import possible_cpus
from dtrace_nb.runtime.kernel.libc import close, error


@dataclass(frozen=True)
class MapSpec:
    """A map as the compiler declared it; `key_desc`/`leaf_desc` are bcc's JSON type
    descriptions, from which the loader builds the ctypes Key and Leaf types."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    key_desc: str
    leaf_desc: str


def _addr(value) -> int:
    """The address of a ctypes value or of a numpy array's data."""
    if isinstance(value, np.ndarray):
        return value.ctypes.data
    return ctypes.addressof(value)


class Map:
    """One map of a loaded program: its fd (closed by `close()`), its declaration, and
    the ctypes types of its keys and values."""

    map_types: ClassVar[tuple[int, ...]] = ()

    def __init__(self, spec: MapSpec, fd: int, key_type=None, leaf_type=None):
        self.spec = spec
        self.fd = fd
        self.Key = key_type
        self.Leaf = leaf_type

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_entries(self) -> int:
        return self.spec.max_entries

    def close(self) -> None:
        if self.fd >= 0:
            close(self.fd)
            self.fd = -1

    def _key(self, key):
        """A key as bytes in memory: ctypes values and arrays as they are, ints through
        the map's Key type."""
        if isinstance(key, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union,
                            ctypes.Array, np.ndarray)):
            return key
        return self.Key(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, fd {self.fd})"


class _ElementMap(Map):
    """A map of one value per key (not per CPU)."""

    def __setitem__(self, key, value) -> None:
        k = self._key(key)
        bpf.map_update(self.fd, _addr(k), _addr(value))

    def get(self, key):
        """The value of `key` as a Leaf, or None."""
        k = self._key(key)
        v = self.Leaf()
        return v if bpf.map_lookup(self.fd, _addr(k), _addr(v)) else None


class _Deletable(Map):
    """Hash maps: keys come and go (an array's elements always exist)."""

    def delete(self, key) -> bool:
        """Remove a key; False if it was not there."""
        k = self._key(key)  # held: the kernel reads it at its address
        return bpf.map_delete(self.fd, _addr(k))


class ArrayMap(_ElementMap):
    map_types = (bpf.BPF_MAP_TYPE_ARRAY,)


class HashMap(_ElementMap, _Deletable):
    map_types = (bpf.BPF_MAP_TYPE_HASH, bpf.BPF_MAP_TYPE_LRU_HASH)


class _PerCpuMap(Map):
    """Values are one per possible CPU: read and written as numpy arrays of `dtype`, whose
    items must be the value's size rounded up to 8 bytes."""

    def __init__(self, spec: MapSpec, fd: int, key_type=None, leaf_type=None):
        super().__init__(spec, fd, key_type, leaf_type)
        self.ncpu = possible_cpus()

    def read(self, key, dtype: np.dtype) -> Optional[np.ndarray]:
        """The values of one key, one per CPU, or None."""
        k = self._key(key)
        out = np.zeros(self.ncpu, dtype=dtype)
        return out if bpf.map_lookup(self.fd, _addr(k), out.ctypes.data) else None

    def write(self, key, values: np.ndarray) -> None:
        """Set one key's value on every CPU (values: `ncpu` items)."""
        k = self._key(key)
        bpf.map_update(self.fd, _addr(k), values.ctypes.data)

    def values(self, key) -> list:
        """One key's values as Python values, one per CPU (ints for a scalar value type);
        KeyError if there are none."""
        stride = (self.spec.value_size + 7) // 8 * 8
        got = self.read(key, np.dtype((np.void, stride)))
        if got is None:
            raise KeyError(key)
        size = ctypes.sizeof(self.Leaf)
        raw = got.tobytes()
        leaves = [self.Leaf.from_buffer_copy(raw[i * stride:i * stride + size])
                  for i in range(self.ncpu)]
        if issubclass(self.Leaf, ctypes._SimpleCData):
            return [v.value for v in leaves]
        return leaves


class PerCpuArrayMap(_PerCpuMap):
    map_types = (bpf.BPF_MAP_TYPE_PERCPU_ARRAY,)


class PerCpuHashMap(_PerCpuMap, _Deletable):
    map_types = (bpf.BPF_MAP_TYPE_PERCPU_HASH, bpf.BPF_MAP_TYPE_LRU_PERCPU_HASH)

    def read_all(self, key_dtype: np.dtype,
                 value_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Every key and its per-CPU values, (keys[n], values[n, ncpu]), copied out with
        BPF_MAP_LOOKUP_BATCH straight into numpy buffers sized for the whole map."""
        cap = self.spec.max_entries
        keys = np.empty(cap, dtype=key_dtype)  # only the first `total` rows are read back
        vals = np.empty((cap, self.ncpu), dtype=value_dtype)
        token = ctypes.c_uint32(0)  # the hash table's bucket to go on from
        token_addr = ctypes.addressof(token)
        kstep, vstep = key_dtype.itemsize, self.ncpu * value_dtype.itemsize
        total, first = 0, True
        while total < cap:
            err, count = bpf.map_lookup_batch(
                self.fd, 0 if first else token_addr, token_addr,
                keys.ctypes.data + total * kstep, vals.ctypes.data + total * vstep,
                cap - total)
            first = False
            total += count
            if err:
                if err != -errno.ENOENT:  # ENOENT: the last batch
                    raise error(err, f"reading map {self.name}")
                break
            if count == 0:
                break
        return keys[:total], vals[:total]


class RingBufferMap(Map):
    map_types = (bpf.BPF_MAP_TYPE_RINGBUF,)

    @property
    def data_size(self) -> int:
        """Bytes of the data area (a power of two, a multiple of the page size)."""
        return self.spec.max_entries


class StackTraceMap(Map):
    map_types = (bpf.BPF_MAP_TYPE_STACK_TRACE,)

    def frames(self, stackid: int) -> list[int]:
        """The return addresses of a recorded stack, innermost first; [] for an id that
        says the stack could not be taken (negative) or one the map no longer holds."""
        if stackid < 0 or stackid >= 2**63:
            return []
        key = ctypes.c_uint32(stackid)
        frames = (ctypes.c_uint64 * (self.spec.value_size // 8))()
        if not bpf.map_lookup(self.fd, ctypes.addressof(key), ctypes.addressof(frames)):
            return []
        out = []
        for addr in frames:
            if not addr:
                break
            out.append(addr)
        return out


_BY_TYPE: dict[int, type[Map]] = {t: cls for cls in (
    ArrayMap, HashMap, PerCpuArrayMap, PerCpuHashMap, RingBufferMap, StackTraceMap)
    for t in cls.map_types}


def create_map(spec: MapSpec, key_type=None, leaf_type=None) -> Map:
    """Create the map in the kernel (OSError if it refuses) as the class of its kind."""
    cls = _BY_TYPE.get(spec.map_type, Map)
    fd = bpf.map_create(spec.map_type, spec.name, spec.key_size, spec.value_size,
                        spec.max_entries, spec.flags)
    return cls(spec, fd, key_type, leaf_type)
