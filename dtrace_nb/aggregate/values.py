"""An aggregation's value per key: the per-CPU values merged as DTrace merges them, and
what each function's value means (avg, stddev, normalize(), the value of a key never
seen).

Values, by function: count/sum/min/max an int; avg (count, total); stddev (count, total,
sum of squares); quantize/lquantize/llquantize a list of bucket counts.
"""

from __future__ import annotations

import math

import numpy as np

from dtrace_nb.aggregate.buckets import HISTOGRAMS, QUANTIZE_NBUCKETS, nbuckets

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min

# Functions whose merged value is one integer per key: sorted and framed with numpy.
VECTOR_FUNCS = ("count", "sum", "min", "max")


def merge(func: str, vals: np.ndarray):
    """Merge per-CPU values (a structured array of shape [n, ncpu], fields as the value
    layout: v, n, sq, b) into one value per key."""
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
    # bucket counts are signed (int64_t in DTrace): a negative increment takes them below 0
    if func == "quantize":
        return vals["b"].astype(np.int64).sum(axis=1)[:, :QUANTIZE_NBUCKETS]
    if func in ("lquantize", "llquantize"):
        return vals["b"].astype(np.int64).sum(axis=1)
    if func == "stddev":
        # the 128-bit sums of squares overflow numpy: add them as Python ints per key
        n = vals["n"].sum(axis=1).astype(np.int64)
        total = vals["v"].sum(axis=1, dtype=np.int64)
        sq = vals["sq"]
        squares = [sum(int(lo) + (int(hi) << 64) for lo, hi in row) for row in sq.tolist()]
        return [(int(a), int(b), c) for a, b, c in zip(n.tolist(), total.tolist(), squares)]
    raise ValueError(func)


def fired(func: str, vals: np.ndarray) -> bool:
    """Whether a keyless aggregation's per-CPU values were ever written (one that never
    fired has nothing to print, as in DTrace)."""
    if func in ("min", "max", "avg", "stddev"):
        return bool(vals["n"].sum())
    if func in HISTOGRAMS:
        return bool(vals["b"].sum())
    return bool(np.any(vals["v"]))


def values_list(func: str, merged) -> list:
    """Merged values as Python values, one per key (see the module's docstring)."""
    if func == "avg":
        return [(int(n), int(t)) for n, t in merged.tolist()]
    if func == "stddev":
        return list(merged)
    if func in HISTOGRAMS:
        return [list(map(int, row)) for row in merged.tolist()]
    return [int(v) for v in merged.tolist()]


def avg_value(n: int, total: int) -> int:
    """avg(): the total divided by the count as C divides (truncated towards zero)."""
    if n == 0:
        return 0
    q = abs(total) // abs(n)
    return q if (total < 0) == (n < 0) else -q


def stddev_value(n: int, total: int, sumsq: int) -> int:
    """dt_stddev: integer standard deviation from count, sum and sum of squares."""
    if n == 0:
        return 0
    avg = abs(total) // n * (1 if total >= 0 else -1)
    var = sumsq // n - avg * avg
    return math.isqrt(var) if var > 0 else 0


def scalar_value(func: str, value) -> int:
    """The one number a non-histogram aggregation's value stands for (what printa's %@
    prints and dtrace(1) shows in the value column)."""
    if func == "avg":
        return avg_value(*value)
    if func == "stddev":
        return stddev_value(*value)
    return int(value)


def sample_value(func: str, value) -> float:
    """One number per key for the timeline: the value for count/sum/min/max, the average
    (not rounded) for avg, the standard deviation for stddev, the number of events for
    histograms."""
    if func in HISTOGRAMS:
        return float(sum(value))
    if func == "avg":
        n, total = value
        return total / n if n else 0.0
    if func == "stddev":
        return float(stddev_value(*value))
    return float(value)


def normalize_value(func: str, value, factor: int):
    """A value divided by normalize()'s factor, as dt_consume.c applies it."""
    if factor in (0, 1):
        return value
    if func == "avg":
        n, total = value
        return (n, int(total / factor))
    if func == "stddev":
        n, total, sq = value
        return (n, int(total / factor), sq // (factor * factor))
    if isinstance(value, list):
        return [int(v / factor) for v in value]
    return int(value / factor)


def zero_value(func: str, params: tuple = ()):
    """The value an aggregation has for a key it never saw."""
    if func == "avg":
        return (0, 0)
    if func == "stddev":
        return (0, 0, 0)
    if func in HISTOGRAMS:
        return [0] * nbuckets(func, params)
    return 0
