"""Reading aggregation maps: kernel bytes -> numpy arrays -> aggregate.snapshot.

Each aggregation is a per-CPU map. A snapshot reads the whole map with batched lookups
into numpy buffers and decodes keys and values with structured dtypes built from the same
layout the C was generated from; dtrace_nb.aggregate merges the CPUs as DTrace does and
orders the rows, all vectorised. clear() and trunc() write the maps back.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from typing import Optional

import numpy as np

from dtrace_nb.aggregate.order import trunc_kept
from dtrace_nb.aggregate.snapshot import AggSnapshot, make_snapshot
from dtrace_nb.aggregate.values import merge, values_list
from dtrace_nb.codegen.layout import AggLayout, Field
from dtrace_nb.runtime.bpfsys import possible_cpus
from dtrace_nb.lang.types import StackType


def key_dtype(fields: list[Field]) -> np.dtype:
    return np.dtype({"names": [f.name for f in fields],
                     "formats": [f"S{f.size}" if f.is_string else ("<i8" if f.signed else "<u8")
                                 for f in fields],
                     "offsets": [f.offset for f in fields],
                     "itemsize": sum(f.size for f in fields)})


def value_dtype(agg: AggLayout) -> np.dtype:
    fmts = []
    for name, ctype, count in agg.value_fields:
        base = "<i8" if ctype == "s64" else "<u8"
        fmts.append((name, base, (count,)) if count > 1 else (name, base))
    return np.dtype(fmts)


class AggregationReader:
    def __init__(self, bcc, bpf, aggs: dict[str, AggLayout], sort_options: dict | None = None):
        self.sort_options = sort_options or {}
        self.bcc, self.bpf = bcc, bpf  # stack keys are symbolised from the stack map
        self.lib = bcc.libbcc.lib
        self.ncpu = possible_cpus()
        self.aggs = aggs
        self.fds = {name: bpf[a.map_name.encode()].get_fd() for name, a in aggs.items()}
        self.normal: dict[str, int] = {}

    def read_raw(self, agg: AggLayout, fd: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, values[n, ncpu]) of one per-CPU map."""
        vdt = value_dtype(agg)
        if agg.keyless:
            vals = np.zeros((1, self.ncpu), dtype=vdt)
            key = ctypes.c_uint32(0)
            if self.lib.bpf_lookup_elem(fd, ctypes.byref(key), vals.ctypes.data) != 0:
                return np.zeros(0, dtype="u4"), vals[:0]
            return np.zeros(1, dtype="u4"), vals
        kdt = key_dtype(agg.key_fields)
        cap = agg.max_entries
        keys = np.empty(cap, dtype=kdt)  # only the first `total` rows are read back
        vals = np.empty((cap, self.ncpu), dtype=vdt)
        total = 0
        batch = ctypes.c_uint32(0)
        count = ctypes.c_uint32(0)
        first = True
        while total < cap:
            count.value = cap - total
            res = self.lib.bpf_lookup_batch(
                fd, None if first else ctypes.byref(batch), ctypes.byref(batch),
                ctypes.c_void_p(keys.ctypes.data + total * kdt.itemsize),
                ctypes.c_void_p(vals.ctypes.data + total * self.ncpu * vdt.itemsize),
                ctypes.byref(count))
            err = ctypes.get_errno()
            first = False
            total += count.value
            if res != 0:
                if err not in (_errno.ENOENT, 0):
                    raise OSError(err, f"reading aggregation map: {_errno.errorcode.get(err, err)}")
                break
            if count.value == 0:
                break
        return keys[:total], vals[:total]

    def snapshot(self, name: str) -> AggSnapshot:
        agg = self.aggs[name]
        keys, vals = self.read_raw(agg, self.fds[name])
        cols: list = []
        for f in ([] if agg.keyless else agg.key_fields):
            col = keys[f.name]
            if f.is_string:
                cols.append(np.array([b.split(b"\0", 1)[0].decode(errors="replace")
                                      for b in col.tolist()], dtype=object))
            elif isinstance(f.dtype, StackType):
                cols.append(np.array(self.stack_texts(f.dtype, col.tolist()), dtype=object))
            else:
                cols.append(col)
        info = agg.info
        return make_snapshot(info.name, info.func, info.key_names,
                             [key_kind(f) for f in agg.key_fields], info.params, cols, vals,
                             keyless=agg.keyless, nbuckets=agg.nbuckets,
                             factor=self.normal.get(name, 1), sort_options=self.sort_options)

    def stack_texts(self, t: StackType, values: list[int]) -> list[str]:
        """Stack-key values (stack id, and pid for ustack) as DTrace prints stacks."""
        from dtrace_nb.display.stacks import format_stack

        out, cache = [], {}
        for v in values:
            if v not in cache:
                sid, pid = v & 0xFFFFFFFF, v >> 32
                sid = 2**64 - 1 if sid == 0xFFFFFFFF else sid  # could not be taken
                cache[v] = format_stack(self.bcc, self.bpf, t.kind, sid, pid,
                                        [t.limit] if t.limit else [])
            out.append(cache[v])
        return out

    def clear(self, name: str) -> None:
        """clear(): every value back to zero, keys kept (as DTrace does)."""
        agg = self.aggs[name]
        keys, vals = self.read_raw(agg, self.fds[name])
        zero = np.zeros((self.ncpu,), dtype=value_dtype(agg))
        for i in range(len(keys)):
            key = keys[i:i + 1] if not agg.keyless else np.zeros(1, dtype="u4")
            self.lib.bpf_update_elem(self.fds[name], ctypes.c_void_p(key.ctypes.data),
                                     ctypes.c_void_p(zero.ctypes.data), 0)

    def trunc(self, name: str, keep: Optional[int]) -> None:
        """trunc(@a[, n]): remove every key but the n with the highest values (n < 0: the
        lowest); without n, remove them all."""
        agg = self.aggs[name]
        if agg.keyless:
            if not keep:
                self.clear(name)
            return
        keys, vals = self.read_raw(agg, self.fds[name])
        kept = trunc_kept(agg.info.func, values_list(agg.info.func, merge(agg.info.func, vals)),
                          keep, agg.info.params) if keep else set()
        for i in (i for i in range(len(keys)) if i not in kept):
            self.lib.bpf_delete_elem(self.fds[name], ctypes.c_void_p(keys[i:i + 1].ctypes.data))


def key_kind(f: Field) -> str:
    """'string', 'stack', or 'intN' with N the key's C size in bytes (DTrace's print width)."""
    if isinstance(f.dtype, StackType):
        return "stack"
    return "string" if f.is_string else f"int{f.dtype.size}"
