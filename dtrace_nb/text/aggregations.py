"""Aggregations in DTrace's text format, as dtrace(1) prints them at the end of a run.

Derived from libdtrace (illumos dt_consume.c: dt_print_aggs, dt_print_datum,
dt_print_quantize, dt_print_quantline, dt_print_average; dt_aggregate.c for the order):
each row is the keys (integers right-aligned in 3/5/8/16 columns by size, strings as
"  %-50s"), then the value (" %16lld"), then a newline; quantize rows are the histogram
with 40-column '@' bars. The rows come in the order given (aggregate.order's); the
buckets and values mean what dtrace_nb.aggregate says.
"""

from __future__ import annotations

from typing import Optional, Sequence

from dtrace_nb.aggregate.buckets import (QUANTIZE_NBUCKETS, QUANTIZE_ZERO,
                                         llquantize_bucket_value, llquantize_nbuckets,
                                         lquantize_bucket_value, lquantize_levels,
                                         quantize_bucket_value)
from dtrace_nb.aggregate.values import avg_value, stddev_value

_INT_WIDTH = {1: 3, 2: 5, 4: 8, 8: 16}
_ATS = "@" * 40
_HEADER = "\n%16s %41s %-9s\n" % ("value", "------------- Distribution -------------", "count")


# ----------------------------------------------------------------------------- rows

def format_key(value, kind: str) -> str:
    if kind == "stack":
        return value  # already DTrace's stack text: a newline, then one indented frame a line
    if kind == "string":
        return "  %-50s" % value
    size = int(kind[3:]) if kind.startswith("int") and kind[3:].isdigit() else 8
    return " %*d" % (_INT_WIDTH.get(size, 16), value)


def quantline(val: int, total: float, positives: bool, negatives: bool) -> str:
    """One histogram bar, as dt_print_quantline draws it."""
    if not negatives:
        depth = int(abs(val) * 40 / total + 0.5) if positives else 0
        return "|%s%s %-9d\n" % (_ATS[:depth], " " * (40 - depth), val)
    if not positives:
        depth = int(abs(val) * 40 / total + 0.5)
        return "%s%s| %-9d\n" % (" " * (40 - depth), _ATS[:depth], val)
    depth = int(abs(val) * 20 / total + 0.5)
    if val <= 0:
        return "%s%s|%20s %-9d\n" % (" " * (20 - depth), _ATS[:depth], "", val)
    return "%20s|%s%s %-9d\n" % ("", _ATS[:depth], " " * (20 - depth), val)


def _window(data: list[int], scan_end: int, empty: tuple[int, int]) -> tuple[int, int]:
    """The rows dt_print_*quantize print: one zero bucket either side of the non-zero ones.
    Only data[:scan_end] is searched for the first non-zero bucket; nothing found gives
    `empty`."""
    first = 0
    while first < scan_end and data[first] == 0:
        first += 1
    if first == scan_end:
        return empty
    last = len(data) - 1
    while last > 0 and data[last] == 0:
        last -= 1
    return max(0, first - 1), min(len(data) - 1, last + 1)


def _histogram(data: list[int], window: tuple[int, int], label) -> str:
    """The header, then one row per bucket in the window: its label and its '@' bar."""
    first, last = window
    shown = data[first:last + 1]
    total = float(sum(abs(v) for v in shown))
    pos, neg = any(v > 0 for v in shown), any(v < 0 for v in shown)
    out = [_HEADER]
    for i in range(first, last + 1):
        out.append("%16s " % label(i))
        out.append(quantline(data[i], total, pos, neg))
    return "".join(out)


def format_quantize(buckets: Sequence[int]) -> str:
    data = list(buckets) + [0] * (QUANTIZE_NBUCKETS - len(buckets))
    # every bucket, the last (values from 2^62) included, as dt_print_quantize scans them
    window = _window(data, QUANTIZE_NBUCKETS, (QUANTIZE_ZERO - 1, QUANTIZE_ZERO + 1))
    return _histogram(data, window, quantize_bucket_value)


def format_lquantize(buckets: Sequence[int], params: tuple) -> str:
    """dt_print_lquantize: '< base' and '>= limit' rows around the linear buckets."""
    base, limit, step = params
    levels = lquantize_levels(base, limit, step)
    data = list(buckets)[:levels + 2]
    data += [0] * (levels + 2 - len(data))

    def label(i: int) -> str:
        if i == 0:
            return f"< {base}"
        if i == levels + 1:
            return f">= {base + levels * step}"
        return str(lquantize_bucket_value(i, base, limit, step))

    return _histogram(data, _window(data, levels + 2, (0, min(2, levels + 1))), label)


def format_llquantize(buckets: Sequence[int], params: tuple) -> str:
    """dt_print_llquantize: the "< factor**low" row, one row per log-linear bucket, and the
    ">= factor**(high+1)" row, for the window of buckets around the non-zero ones (one
    zero bucket either side; buckets 0 and 1 when every bucket is zero)."""
    factor, low, high, nsteps = params
    levels = llquantize_nbuckets(factor, low, high, nsteps)
    data = list(buckets)[:levels]
    data += [0] * (levels - len(data))

    def label(i: int) -> str:
        if i == 0:
            return f"< {factor ** low}"
        if i == levels - 1:
            return f">= {factor ** (high + 1)}"
        return str(llquantize_bucket_value(i, factor, low, high, nsteps))

    return _histogram(data, _window(data, levels, (0, 1)), label)


def format_value(func: str, value, params: tuple = ()) -> str:
    if func == "quantize":
        return format_quantize(value)
    if func == "lquantize":
        return format_lquantize(value, params)
    if func == "llquantize":
        return format_llquantize(value, params)
    if func == "stddev":
        return " %16d" % stddev_value(*value)
    if func == "avg":
        return " %16d" % avg_value(*value)
    return " %16d" % value


def format_aggregation(func: str, keys: Sequence[tuple], values: Sequence,
                       key_kinds: Optional[Sequence[str]] = None, params: tuple = ()) -> str:
    """Every row of one aggregation, in the order given (DTrace's: aggregate.order)."""
    kinds = list(key_kinds or [])
    out = []
    for key, value in zip(keys, values):
        row = "".join(format_key(k, kinds[i] if i < len(kinds) else
                                 ("string" if isinstance(k, str) else "int8"))
                      for i, k in enumerate(key))
        out.append(row + format_value(func, value, params) + "\n")
    return "".join(out)


def format_all(aggs: Sequence[tuple[str, Sequence[tuple], Sequence, Sequence[str]]]) -> str:
    """What dtrace(1) prints when tracing ends: a newline, then every aggregation."""
    # dtrace(1) prints a newline when tracing stops, then dtrace_aggregate_print walks the
    # rows of every aggregation not yet printed, one after the other (dt_print_aggs ends
    # each row with its newline; nothing separates two aggregations)
    return "\n" + "".join(format_aggregation(*agg) for agg in aggs)
