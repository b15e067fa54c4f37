"""One aggregation's merged contents, in DTrace's order, and its DataFrame.

runtime/aggregations.py reads a map into numpy arrays (the keys decoded into columns,
the values per CPU); `make_snapshot` merges the CPUs, applies normalize() and orders the
rows as DTrace prints them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from dtrace_nb.aggregate.buckets import HISTOGRAMS, bucket_value
from dtrace_nb.aggregate.order import sort_order, vector_order
from dtrace_nb.aggregate.values import (VECTOR_FUNCS, fired, merge, normalize_value,
                                        stddev_value, values_list)

if TYPE_CHECKING:  # pandas is imported when a frame is asked for: it costs ~0.3 s
    import pandas as pd


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
        if self.func in HISTOGRAMS:
            rows = []
            for key, buckets in zip(self.keys, self.values):
                for b, c in enumerate(buckets):
                    if c:
                        rows.append((*key, bucket_value(self.func, self.params, b), int(c)))
            return pd.DataFrame(rows, columns=[*names, "value", "count"])
        if self.func == "stddev":
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


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def make_snapshot(name: str, func: str, key_names: list[str], key_kinds: list[str],
                  params: tuple, cols: list, vals: np.ndarray, *, keyless: bool,
                  nbuckets: int = 0, factor: int = 1,
                  sort_options: Optional[dict] = None) -> AggSnapshot:
    """An AggSnapshot from what a map read gave: `cols` the keys (one array per key
    component, already decoded), `vals` the per-CPU values [n, ncpu]. `nbuckets`: the
    buckets a histogram uses (its map value may hold more, rounded up to a power of two);
    `factor`: normalize()'s; sort_options: the aggsort* options."""
    opts = sort_options or {}
    merged = merge(func, vals)
    # keyless aggregations that never fired have nothing to print, as in DTrace
    if keyless and len(merged) and not fired(func, vals):
        merged = merged[:0]
    if func in VECTOR_FUNCS and factor == 1:
        order = vector_order(cols, merged, **opts)
        return AggSnapshot(name, func, key_names, key_kinds, params=params,
                           columns=[c[order] for c in cols], array=merged[order])
    key_tuples = list(zip(*[c.tolist() for c in cols])) if cols else [()] * len(merged)
    values = values_list(func, merged[:, :nbuckets] if nbuckets else merged)
    if factor != 1:
        values = [normalize_value(func, v, factor) for v in values]
    order = sort_order(func, key_tuples, values, params=params,
                       **{k: v for k, v in opts.items() if k != "aggsortpos"})
    return AggSnapshot(name, func, key_names, key_kinds, [key_tuples[i] for i in order],
                       [values[i] for i in order], params)
