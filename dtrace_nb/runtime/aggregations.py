"""Reading aggregation maps: kernel bytes -> numpy arrays -> aggregate.snapshot.

Each aggregation is a per-CPU map. A snapshot reads the whole map with batched lookups
into numpy buffers and decodes keys and values with structured dtypes built from the same
layout the C was generated from; dtrace_nb.aggregate merges the CPUs as DTrace does and
orders the rows, all vectorised. clear() and trunc() write the maps back.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Mapping, Optional

import numpy as np

from dtrace_nb.aggregate.order import trunc_kept
from dtrace_nb.aggregate.snapshot import AggSnapshot, make_snapshot
from dtrace_nb.aggregate.values import merge, values_list
from dtrace_nb.codegen.layout import AggLayout, Field
from dtrace_nb.lang.types import StackType
from dtrace_nb.runtime.kernel.cpus import possible_cpus
from dtrace_nb.runtime.maps import Map


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


StackText = Callable[[str, int, int, list], str]  # (kind, stack id, pid, args) -> text


class AggregationReader:
    """Reads a program's aggregation maps (one per-CPU map each, runtime/maps.py) into
    merged, sorted snapshots, and clears or truncates them for clear() and trunc().
    `stack_text` names a stack key's frames (the session's symboliser)."""

    def __init__(self, maps: Mapping[str, Map], aggs: dict[str, AggLayout],
                 sort_options: dict | None = None, stack_text: Optional[StackText] = None):
        self.sort_options = sort_options or {}
        self.stack_text = stack_text
        self.ncpu = possible_cpus()
        self.aggs = aggs
        self.maps = {name: maps[a.map_name] for name, a in aggs.items()}
        self.normal: dict[str, int] = {}
        # False on a host of a fleet: snapshots keep the raw values, and the fleet divides
        # by normalize()'s factor once after merging (dividing per host is not exact)
        self.apply_normal = True
        # (kind, limit, key value) -> the stack's text. A stack id names the same stack for
        # the map's life (no BPF_F_REUSE_STACKID), so each stack is symbolised once, not at
        # every snapshot (a live view refreshes every second)
        self._stack_cache: dict[tuple[str, int, int], str] = {}

    def read_raw(self, agg: AggLayout, m) -> tuple[np.ndarray, np.ndarray]:
        """(keys, values[n, ncpu]) of one aggregation's map."""
        vdt = value_dtype(agg)
        if agg.keyless:
            vals = m.read(ctypes.c_uint32(0), vdt)
            if vals is None:
                return np.zeros(0, dtype="u4"), np.zeros((0, self.ncpu), dtype=vdt)
            return np.zeros(1, dtype="u4"), vals[None, :]
        return m.read_all(key_dtype(agg.key_fields), vdt)

    def snapshot(self, name: str) -> AggSnapshot:
        agg = self.aggs[name]
        keys, vals = self.read_raw(agg, self.maps[name])
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
                             factor=self.normal.get(name, 1) if self.apply_normal else 1,
                             sort_options=self.sort_options)

    def stack_texts(self, t: StackType, values: list[int]) -> list[str]:
        """Stack-key values (stack id, and pid for ustack) as DTrace prints stacks."""
        if self.stack_text is None:
            return [""] * len(values)
        out, cache = [], self._stack_cache
        for v in values:
            key = (t.kind, t.limit or 0, v)
            if key not in cache:
                sid, pid = v & 0xFFFFFFFF, v >> 32
                sid = 2**64 - 1 if sid == 0xFFFFFFFF else sid  # could not be taken
                cache[key] = self.stack_text(t.kind, sid, pid, [t.limit] if t.limit else [])
            out.append(cache[key])
        return out

    def clear(self, name: str) -> None:
        """clear(): every value back to zero, keys kept (as DTrace does)."""
        agg = self.aggs[name]
        keys, vals = self.read_raw(agg, self.maps[name])
        zero = np.zeros((self.ncpu,), dtype=value_dtype(agg))
        m = self.maps[name]
        for i in range(len(keys)):
            m.write(keys[i:i + 1] if not agg.keyless else np.zeros(1, dtype="u4"), zero)

    def trunc(self, name: str, keep: Optional[int]) -> None:
        """trunc(@a[, n]): remove every key but the n with the highest values (n < 0: the
        lowest); without n, remove them all."""
        agg = self.aggs[name]
        if agg.keyless:
            if not keep:
                self.clear(name)
            return
        keys, vals = self.read_raw(agg, self.maps[name])
        kept = trunc_kept(agg.info.func, values_list(agg.info.func, merge(agg.info.func, vals)),
                          keep, agg.info.params) if keep else set()
        m = self.maps[name]
        for i in (i for i in range(len(keys)) if i not in kept):
            m.delete(keys[i:i + 1])


def key_kind(f: Field) -> str:
    """'string', 'stack', or 'intN' with N the key's C size in bytes (DTrace's print width)."""
    if isinstance(f.dtype, StackType):
        return "stack"
    return "string" if f.is_string else f"int{f.dtype.size}"
