"""DTrace's order of an aggregation's rows (dt_aggregate.c): by value then key, or by key
then value (aggsortkey), one key column first (aggsortkeypos), reversed (aggsortrev); for
printa() of several aggregations, by the value of the one at aggsortpos."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from dtrace_nb.aggregate.buckets import llquantize_bucket_value, quantize_bucket_value
from dtrace_nb.aggregate.values import stddev_value


def sort_value(func: str, value, params: tuple = ()):
    """The value DTrace sorts rows by (dt_aggregate_valcmp and friends)."""
    if func == "avg":
        n, total = value
        return total / n if n else 0
    if func == "quantize":
        weighted = sum(quantize_bucket_value(i) * c for i, c in enumerate(value))
        return (weighted, sum(value))
    if func == "lquantize":
        return (sum(i * c for i, c in enumerate(value)), sum(value))
    if func == "llquantize":
        # like dt_aggregate_llquantizedcmp: the counts weighted by their buckets' values
        weighted = sum(llquantize_bucket_value(i, *params) * c for i, c in enumerate(value)
                       if c) if params else sum(i * c for i, c in enumerate(value))
        return (weighted, sum(value))
    if func == "stddev":
        return stddev_value(*value)
    return value


def _key_first(key: tuple, aggsortkeypos: int) -> tuple:
    """The key with its aggsortkeypos'th component moved first."""
    if 0 < aggsortkeypos < len(key):
        return (key[aggsortkeypos],) + key[:aggsortkeypos] + key[aggsortkeypos + 1:]
    return key


def sort_order(func: str, keys: Sequence[tuple], values: Sequence, *, aggsortkey: bool = False,
               aggsortrev: bool = False, aggsortkeypos: int = 0,
               params: tuple = ()) -> list[int]:
    """Row order: by value then key (default), or by key then value (aggsortkey);
    reversed with aggsortrev. aggsortkeypos makes that key column sort first. params:
    the lquantize/llquantize parameters (llquantize sorts by its buckets' values)."""
    def by(i):
        key, value = _key_first(keys[i], aggsortkeypos), sort_value(func, values[i], params)
        return (key, value) if aggsortkey else (value, key)

    order = sorted(range(len(keys)), key=by)
    return order[::-1] if aggsortrev else order


def joined_order(aggs: Sequence[tuple], keys: list[tuple], values: list[list], *,
                 aggsortkey: bool = False, aggsortrev: bool = False, aggsortkeypos: int = 0,
                 aggsortpos: int = 0) -> list[int]:
    """The order of the joined rows of printa(fmt, @a, @b...) (dt_aggregate.c,
    dtrace_aggregate_walk_joined): by the value of the aggregation at aggsortpos, then the
    key, then the other aggregations' values in order; with aggsortkey by the key first.
    aggsortkeypos puts that key column first; aggsortrev reverses everything. `aggs`: one
    (func, params) per aggregation. With one aggregation this is sort_order."""
    n = len(aggs)
    if n == 1:
        func, params = aggs[0][0], aggs[0][1]
        return sort_order(func, keys, values[0], aggsortkey=aggsortkey,
                          aggsortrev=aggsortrev, aggsortkeypos=aggsortkeypos, params=params)
    pos = aggsortpos if 0 <= aggsortpos < n else 0

    def val(j, i):
        return sort_value(aggs[j][0], values[j][i], aggs[j][1])

    def by(i):
        others = tuple(val(j, i) for j in range(n) if j != pos)
        key = _key_first(keys[i], aggsortkeypos)
        if aggsortkey:
            return (key, val(pos, i)) + others
        return (val(pos, i), key) + others

    order = sorted(range(len(keys)), key=by)
    return order[::-1] if aggsortrev else order


def vector_order(cols: list[np.ndarray], values: np.ndarray, aggsortkey: bool = False,
                 aggsortrev: bool = False, aggsortkeypos: int = 0, **_ignored) -> np.ndarray:
    """sort_order for integer values, vectorised: by value then keys (or keys then value
    with aggsortkey), aggsortkeypos's key first, reversed with aggsortrev. String keys are
    compared as Python compares str (code points)."""
    cols = list(cols)
    if aggsortkeypos and 0 < aggsortkeypos < len(cols):
        cols = [cols[aggsortkeypos]] + cols[:aggsortkeypos] + cols[aggsortkeypos + 1:]
    cols = [c.astype(str) if c.dtype == object else c for c in cols]
    # np.lexsort sorts by its last array first
    by = [values, *cols] if not aggsortkey else [*cols, values]
    order = np.lexsort(by[::-1]) if len(values) else np.zeros(0, dtype=np.intp)
    return order[::-1] if aggsortrev else order


def trunc_kept(func: str, values: Sequence, keep: Optional[int], params: tuple = ()) -> set[int]:
    """trunc(@a, n): the rows kept, the n with the highest values (n < 0: the lowest);
    none without n."""
    if not keep:
        return set()
    order = sort_order(func, [()] * len(values), values, params=params)
    return set(order[-keep:] if keep > 0 else order[:-keep])
