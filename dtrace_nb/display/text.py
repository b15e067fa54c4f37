"""Aggregations in DTrace's text format, as dtrace(1) prints them at the end of a run.

Derived from libdtrace (illumos dt_consume.c: dt_print_aggs, dt_print_datum,
dt_print_quantize, dt_print_quantline, dt_print_average; dt_aggregate.c for the order):
each row is the keys (integers right-aligned in 3/5/8/16 columns by size, strings as
"  %-50s"), then the value (" %16lld"), then a newline; quantize rows are the histogram
with 40-column '@' bars. The bucket functions mirror the kernel-side C in prelude.h.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

QUANTIZE_NBUCKETS = 127
QUANTIZE_ZERO = 63
_INT_WIDTH = {1: 3, 2: 5, 4: 8, 8: 16}
_ATS = "@" * 40
_HEADER = "\n%16s %41s %-9s\n" % ("value", "------------- Distribution -------------", "count")


# ----------------------------------------------------------------------------- buckets

def quantize_bucket(value: int) -> int:
    """DTrace's quantize() bucket index for a 64-bit value (see dtrace_aggregate_quantize)."""
    if value == 0:
        return QUANTIZE_ZERO
    if value > 0:
        return min(QUANTIZE_ZERO + value.bit_length(), QUANTIZE_NBUCKETS - 1)
    return max(0, QUANTIZE_ZERO - (-value).bit_length())


def quantize_bucket_value(index: int) -> int:
    """DTRACE_QUANTIZE_BUCKETVAL: the value printed for a bucket (its lower bound, or for
    negative buckets the bound closest to zero... as DTrace labels it)."""
    if index < QUANTIZE_ZERO:
        return -(1 << (QUANTIZE_ZERO - 1 - index))
    if index == QUANTIZE_ZERO:
        return 0
    return 1 << (index - QUANTIZE_ZERO - 1)


def quantize_bucket_bounds(index: int) -> tuple[int, int]:
    """[low, high] of the values that land in a bucket (inclusive)."""
    if index == QUANTIZE_ZERO:
        return (0, 0)
    if index > QUANTIZE_ZERO:
        low = quantize_bucket_value(index)
        high = (1 << 63) - 1 if index == QUANTIZE_NBUCKETS - 1 else 2 * low - 1
        return (low, high)
    high = quantize_bucket_value(index)
    low = -(1 << 63) if index == 0 else 2 * high + 1
    return (low, high)


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
    Only data[:scan_end] is searched for the first non-zero bucket (quantize stops one short
    of its last bucket, as dt_print_quantize does); nothing found gives `empty`."""
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
    window = _window(data, QUANTIZE_NBUCKETS - 1, (QUANTIZE_ZERO - 1, QUANTIZE_ZERO + 1))
    return _histogram(data, window, quantize_bucket_value)


def format_lquantize(buckets: Sequence[int], params: tuple) -> str:
    """dt_print_lquantize: '< base' and '>= limit' rows around the linear buckets."""
    base, limit, step = params
    levels = (limit - base) // step
    data = list(buckets)[:levels + 2]
    data += [0] * (levels + 2 - len(data))

    def label(i: int) -> str:
        if i == 0:
            return f"< {base}"
        if i == levels + 1:
            return f">= {base + levels * step}"
        return str(base + (i - 1) * step)

    return _histogram(data, _window(data, levels + 2, (0, min(2, levels + 1))), label)


def stddev_value(n: int, total: int, sumsq: int) -> int:
    """dt_stddev: integer standard deviation from count, sum and sum of squares."""
    if n == 0:
        return 0
    avg = abs(total) // n * (1 if total >= 0 else -1)
    var = sumsq // n - avg * avg
    return math.isqrt(var) if var > 0 else 0


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


# ----------------------------------------------------------------------------- llquantize
#
# llquantize(value, factor, low, high, nsteps) (illumos dtrace.c
# dtrace_aggregate_llquantize_bucket): bucket 0 holds values below factor**low; then each
# order of magnitude m = low..high covers [factor**m, factor**(m+1)) with buckets of width
# factor**(m+1) / min(nsteps, factor**(m+1)); the values below factor**m in that division
# belong to the magnitudes under it, so magnitude m has n - n/factor buckets (n the
# divisor); the last bucket holds values >= factor**(high+1).

_INT64_MAX = (1 << 63) - 1


def _wrap64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _llquantize_magnitudes(factor: int, low: int, high: int, nsteps: int):
    """(first value, step, number of buckets) of each order of magnitude low..high, as
    dt_print_llquantize walks them (value += step until value reaches the next power)."""
    value = factor ** low
    for _order in range(low, high + 1):
        nxt = value * factor
        step = nxt // nsteps if nxt > nsteps else 1
        yield value, step, (nxt - value) // step
        value = nxt


def llquantize_bucket(value: int, factor: int, low: int, high: int, nsteps: int) -> int:
    """The bucket index of a signed 64-bit value (dtrace_aggregate_llquantize_bucket)."""
    this = 1
    for _ in range(low):
        this = _wrap64(this * factor)
    last = this
    if value < last:
        return 0
    this = _wrap64(this * factor)
    base = 1
    for _order in range(low, high + 1):
        nbuckets = nsteps if this > nsteps else this
        nxt = _wrap64(this * factor)
        if nxt < this:  # factor**(order+2) overflows 64 bits: clamp as the kernel does
            value = this - 1
        if value < this:
            return base + (value - last) // (this // nbuckets)
        base += nbuckets - nbuckets // factor
        last, this = this, nxt
    return base


def llquantize_nbuckets(factor: int, low: int, high: int, nsteps: int) -> int:
    """Buckets of llquantize(factor, low, high, nsteps), underflow and overflow included
    (dtrace_ecb_aggregation_create sizes it as the bucket of INT64_MAX, plus one)."""
    return llquantize_bucket(_INT64_MAX, factor, low, high, nsteps) + 1


def llquantize_bucket_value(index: int, factor: int, low: int, high: int, nsteps: int) -> int:
    """The value labelling a bucket: its lower bound; factor**low - 1 for the underflow
    bucket (as lquantize's underflow is base - 1) and factor**(high+1) for the overflow
    bucket (dt_print_llquantize labels them "< factor**low" and ">= factor**(high+1)")."""
    if index <= 0:
        return factor ** low - 1
    i = 1
    for value, step, count in _llquantize_magnitudes(factor, low, high, nsteps):
        if index < i + count:
            return value + (index - i) * step
        i += count
    return factor ** (high + 1)


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
        n, total = value
        avg = 0 if n == 0 else int(total / n) if abs(total) < 2**52 else _cdiv(total, n)
        return " %16d" % avg
    return " %16d" % value


def _cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def format_aggregation(func: str, keys: Sequence[tuple], values: Sequence,
                       key_kinds: Optional[Sequence[str]] = None, params: tuple = ()) -> str:
    """Every row of one aggregation, in the order given (DTrace's: see sort_order)."""
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
    # dtrace(1) prints a newline when tracing stops; libdtrace separates aggregations with
    # a blank line
    return "\n" + "\n".join(format_aggregation(*agg) for agg in aggs)


# ----------------------------------------------------------------------------- order

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


def sort_order(func: str, keys: Sequence[tuple], values: Sequence, *, aggsortkey: bool = False,
               aggsortrev: bool = False, aggsortkeypos: int = 0,
               params: tuple = ()) -> list[int]:
    """Row order: by value then key (default), or by key then value (aggsortkey);
    reversed with aggsortrev. aggsortkeypos makes that key column sort first. params:
    the lquantize/llquantize parameters (llquantize sorts by its buckets' values)."""
    def key_of(i):
        k = keys[i]
        if aggsortkeypos and 0 < aggsortkeypos < len(k):
            k = (k[aggsortkeypos],) + k[:aggsortkeypos] + k[aggsortkeypos + 1:]
        return k
    if aggsortkey:
        order = sorted(range(len(keys)),
                       key=lambda i: (key_of(i), sort_value(func, values[i], params)))
    else:
        order = sorted(range(len(keys)),
                       key=lambda i: (sort_value(func, values[i], params), key_of(i)))
    return order[::-1] if aggsortrev else order
