"""Snapshots of aggregation maps: kernel bytes -> merged values -> DataFrames.

Each aggregation is a per-CPU map. A snapshot reads the whole map with batched lookups
into numpy buffers, decodes keys and values with structured dtypes built from the same
layout the C was generated from, and merges the CPUs as DTrace does, all vectorised.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Callable, Mapping, Optional

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from dtrace_nb.codegen.layout import AggLayout, Field
from dtrace_nb.runtime.kernel.cpus import possible_cpus
from dtrace_nb.runtime.maps import Map
from dtrace_nb.display.text import sort_order
from dtrace_nb.lang.types import StackType

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
QUANTIZE_BUCKETS = 127


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


class AggSnapshot:
    """One aggregation's merged contents, in DTrace's print order (by value, then key).

    `keys` (tuples) and `values` (int per row; (count, total) for avg; (count, total, sum
    of squares) for stddev; bucket counts for quantize, lquantize and llquantize) are
    Python lists for the text formatters. For count/sum/min/max the reader hands over
    numpy columns instead, and the lists are only built when something asks for them:
    to_frame() goes straight from the arrays (100k keys in a few ms)."""

    def __init__(self, name: str, func: str, key_names: list[str], key_kinds: list[str],
                 keys: Optional[list] = None, values: Optional[list] = None,
                 params: tuple = (), columns: Optional[list] = None,
                 array: Optional[np.ndarray] = None):
        self.name = name
        self.func = func
        self.key_names = key_names
        self.key_kinds = key_kinds  # 'string' or 'intN' (N = size in bytes) per key
        self.params = params  # lquantize/llquantize parameters
        self._keys = keys
        self._values = values
        self._columns = columns  # one array per key, rows in print order
        self._array = array      # the values, rows in print order

    @property
    def keys(self) -> list:
        if self._keys is None:
            cols = [c.tolist() for c in self._columns]
            self._keys = list(zip(*cols)) if cols else [()] * len(self._array)
        return self._keys

    @property
    def values(self) -> list:
        if self._values is None:
            self._values = self._array.tolist()
        return self._values

    def __len__(self) -> int:
        return len(self._array) if self._array is not None else len(self._keys)

    def largest(self, n: int) -> Optional[tuple[list, list]]:
        """(keys, values) of the n rows with the largest values, picked in the arrays
        without building every row (the timeline samples this at each refresh); None when
        the snapshot holds Python lists only."""
        if self._array is None:
            return None
        arr = self._array
        if len(arr) <= n:
            idx = np.arange(len(arr))
        else:
            idx = np.argpartition(arr, len(arr) - n)[len(arr) - n:]
        keys = (list(zip(*[c[idx].tolist() for c in self._columns])) if self._columns
                else [()] * len(idx))
        return keys, arr[idx].tolist()

    def __repr__(self) -> str:
        return f"AggSnapshot({self.name!r}, {self.func!r}, {len(self)} rows)"

    def to_frame(self) -> "pd.DataFrame":
        """Key columns named after the key expressions, value columns after the function.
        quantize is long-form: one row per non-empty bucket (value = bucket's lower bound)."""
        import pandas as pd  # only when a frame is asked for: it costs ~0.3 s to import

        names = _unique(self.key_names)
        if self._array is not None:
            cols = dict(zip(names, self._columns))
            # counts are never near 2**63: int64, like every other value column
            cols[self.func] = (self._array.astype(np.int64) if self.func == "count"
                               else self._array)
            return pd.DataFrame(cols, copy=False)
        cols = {n: [k[i] for k in self.keys] for i, n in enumerate(names)}
        if self.func in ("quantize", "lquantize", "llquantize"):
            rows = []
            for key, buckets in zip(self.keys, self.values):
                for b, c in enumerate(buckets):
                    if c:
                        rows.append((*key, bucket_value(self.func, self.params, b), int(c)))
            return pd.DataFrame(rows, columns=[*names, "value", "count"])
        if self.func == "stddev":
            from dtrace_nb.display.text import stddev_value

            cols["stddev"] = [stddev_value(*v) for v in self.values]
            cols["count"] = [v[0] for v in self.values]
            cols["avg"] = [v[1] / v[0] if v[0] else 0.0 for v in self.values]
        if self.func == "avg":
            cols["avg"] = [t / n if n else 0.0 for n, t in self.values]
            cols["count"] = [n for n, _ in self.values]
            cols["total"] = [t for _, t in self.values]
        else:
            cols[self.func] = list(self.values)
        return pd.DataFrame(cols)


def bucket_value(func: str, params: tuple, index: int) -> int:
    """The value a histogram bucket is labelled with (its lower bound)."""
    from dtrace_nb.display import text

    if func == "quantize":
        return text.quantize_bucket_value(index)
    if func == "lquantize":
        base, _limit, step = params
        return base - 1 if index == 0 else base + (index - 1) * step
    return text.llquantize_bucket_value(index, *params)


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


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
        merged = merge(agg.info.func, vals)
        if agg.keyless:
            cols: list = []
        else:
            cols = []
            for f in agg.key_fields:
                col = keys[f.name]
                if f.is_string:
                    cols.append(np.array([b.split(b"\0", 1)[0].decode(errors="replace")
                                          for b in col.tolist()], dtype=object))
                elif isinstance(f.dtype, StackType):
                    cols.append(np.array(self.stack_texts(f.dtype, col.tolist()), dtype=object))
                else:
                    cols.append(col)
        # keyless aggregations that never fired have nothing to print, as in DTrace
        if agg.keyless and len(merged) and not _fired(agg.info.func, vals):
            merged = merged[:0]
        factor = self.normal.get(name, 1)
        kinds = [key_kind(f) for f in agg.key_fields]
        if agg.info.func in VECTOR_FUNCS and factor == 1:
            order = vector_order(cols, merged, **self.sort_options)
            return AggSnapshot(agg.info.name, agg.info.func, agg.info.key_names, kinds,
                               params=agg.info.params, columns=[c[order] for c in cols],
                               array=merged[order])
        key_tuples = (list(zip(*[c.tolist() for c in cols])) if cols
                      else [()] * len(merged))
        values = _values_list(agg.info.func, merged[:, :agg.nbuckets] if agg.nbuckets else merged)
        if factor != 1:
            from dtrace_nb.display.text import normalize_value

            values = [normalize_value(agg.info.func, v, factor) for v in values]
        order = sort_order(agg.info.func, key_tuples, values, params=agg.info.params,
                           **{k: v for k, v in self.sort_options.items() if k != "aggsortpos"})
        return AggSnapshot(agg.info.name, agg.info.func, agg.info.key_names, kinds,
                           [key_tuples[i] for i in order], [values[i] for i in order],
                           agg.info.params)

    def stack_texts(self, t: StackType, values: list[int]) -> list[str]:
        """Stack-key values (stack id, and pid for ustack) as DTrace prints stacks."""
        if self.stack_text is None:
            return [""] * len(values)
        out, cache = [], {}
        for v in values:
            if v not in cache:
                sid, pid = v & 0xFFFFFFFF, v >> 32
                sid = 2**64 - 1 if sid == 0xFFFFFFFF else sid  # could not be taken
                cache[v] = self.stack_text(t.kind, sid, pid, [t.limit] if t.limit else [])
            out.append(cache[v])
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
        doomed = list(range(len(keys)))
        if keep:
            values = _values_list(agg.info.func, merge(agg.info.func, vals))
            order = sort_order(agg.info.func, [()] * len(values), values, params=agg.info.params)
            kept = order[-keep:] if keep > 0 else order[:-keep]
            doomed = [i for i in doomed if i not in set(kept)]
        m = self.maps[name]
        for i in doomed:
            m.delete(keys[i:i + 1])


# Functions whose merged value is one integer per key: sorted and framed with numpy.
VECTOR_FUNCS = ("count", "sum", "min", "max")


def vector_order(cols: list[np.ndarray], values: np.ndarray, aggsortkey: bool = False,
                 aggsortrev: bool = False, aggsortkeypos: int = 0, **_ignored) -> np.ndarray:
    """display.text.sort_order for integer values, vectorised: by value then keys (or keys
    then value with aggsortkey), aggsortkeypos's key first, reversed with aggsortrev.
    String keys are compared as Python compares str (code points)."""
    cols = list(cols)
    if aggsortkeypos and 0 < aggsortkeypos < len(cols):
        cols = [cols[aggsortkeypos]] + cols[:aggsortkeypos] + cols[aggsortkeypos + 1:]
    cols = [c.astype(str) if c.dtype == object else c for c in cols]
    # np.lexsort sorts by its last array first
    by = [values, *cols] if not aggsortkey else [*cols, values]
    order = np.lexsort(by[::-1]) if len(values) else np.zeros(0, dtype=np.intp)
    return order[::-1] if aggsortrev else order


def _fired(func: str, vals: np.ndarray) -> bool:
    if func in ("min", "max", "avg", "stddev"):
        return bool(vals["n"].sum())
    if func in ("quantize", "lquantize", "llquantize"):
        return bool(vals["b"].sum())
    return bool(np.any(vals["v"]))


def merge(func: str, vals: np.ndarray):
    """Merge per-CPU values (shape [n, ncpu]) into one value per key."""
    if func in ("count", "sum"):
        return vals["v"].sum(axis=1, dtype=np.int64 if func == "sum" else np.uint64)
    if func in ("min", "max"):
        n = vals["n"]
        fill = INT64_MAX if func == "min" else INT64_MIN
        v = np.where(n > 0, vals["v"], fill)
        return v.min(axis=1) if func == "min" else v.max(axis=1)
    if func == "avg":
        return np.stack([vals["n"].sum(axis=1).astype(np.int64),
                         vals["v"].sum(axis=1, dtype=np.int64)], axis=1)
    if func == "quantize":
        return vals["b"].sum(axis=1)[:, :QUANTIZE_BUCKETS]
    if func in ("lquantize", "llquantize"):
        return vals["b"].sum(axis=1)
    if func == "stddev":
        # the 128-bit sums of squares overflow numpy: add them as Python ints per key
        n = vals["n"].sum(axis=1).astype(np.int64)
        total = vals["v"].sum(axis=1, dtype=np.int64)
        sq = vals["sq"]
        squares = [sum(int(lo) + (int(hi) << 64) for lo, hi in row) for row in sq.tolist()]
        return [(int(a), int(b), c) for a, b, c in zip(n.tolist(), total.tolist(), squares)]
    raise ValueError(func)


def _values_list(func: str, merged) -> list:
    if func == "avg":
        return [(int(n), int(t)) for n, t in merged.tolist()]
    if func == "stddev":
        return list(merged)
    if func in ("quantize", "lquantize", "llquantize"):
        return [list(map(int, row)) for row in merged.tolist()]
    return [int(v) for v in merged.tolist()]


def key_kind(f: Field) -> str:
    """'string', 'stack', or 'intN' with N the key's C size in bytes (DTrace's print width)."""
    if isinstance(f.dtype, StackType):
        return "stack"
    return "string" if f.is_string else f"int{f.dtype.size}"
