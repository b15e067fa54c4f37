"""The buckets of quantize(), lquantize() and llquantize(): which bucket a value lands in,
how many buckets there are, and the value each bucket is labelled with.

One model, used to size the maps (codegen/layout.py), to label the histograms (text) and
the DataFrames (aggregate/snapshot.py); the kernel-side C in codegen/prelude.h and
codegen/aggregate.h mirrors it. Imports nothing: codegen sizes its maps from here.
"""

from __future__ import annotations

QUANTIZE_NBUCKETS = 127  # DTRACE_QUANTIZE_NBUCKETS: 63 negative, zero, 63 positive
QUANTIZE_ZERO = 63       # DTRACE_QUANTIZE_ZEROBUCKET

_INT64_MAX = (1 << 63) - 1


# ----------------------------------------------------------------------------- quantize

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


# ----------------------------------------------------------------------------- lquantize

def lquantize_levels(base: int, limit: int, step: int) -> int:
    """The linear buckets of lquantize(base, limit, step), without underflow and overflow."""
    return (limit - base) // step


def lquantize_nbuckets(base: int, limit: int, step: int) -> int:
    """Buckets of lquantize(): the levels, plus the underflow and the overflow bucket."""
    return lquantize_levels(base, limit, step) + 2


def lquantize_bucket_value(index: int, base: int, limit: int, step: int) -> int:
    """The value labelling a bucket: its lower bound; base - 1 for the underflow bucket."""
    return base - 1 if index == 0 else base + (index - 1) * step


# ----------------------------------------------------------------------------- llquantize
#
# llquantize(value, factor, low, high, nsteps) (illumos dtrace.c
# dtrace_aggregate_llquantize_bucket): bucket 0 holds values below factor**low; then each
# order of magnitude m = low..high covers [factor**m, factor**(m+1)) with buckets of width
# factor**(m+1) / min(nsteps, factor**(m+1)); the values below factor**m in that division
# belong to the magnitudes under it, so magnitude m has n - n/factor buckets (n the
# divisor); the last bucket holds values >= factor**(high+1).

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


# ----------------------------------------------------------------------------- any of them

HISTOGRAMS = ("quantize", "lquantize", "llquantize")


def nbuckets(func: str, params: tuple = ()) -> int:
    """How many buckets a histogram aggregation has (params: its lquantize/llquantize
    parameters)."""
    if func == "quantize":
        return QUANTIZE_NBUCKETS
    if func == "lquantize":
        return lquantize_nbuckets(*params)
    if func == "llquantize":
        return llquantize_nbuckets(*params)
    raise ValueError(f"{func}() has no buckets")


def bucket_value(func: str, params: tuple, index: int) -> int:
    """The value a histogram bucket is labelled with (its lower bound)."""
    if func == "quantize":
        return quantize_bucket_value(index)
    if func == "lquantize":
        return lquantize_bucket_value(index, *params)
    return llquantize_bucket_value(index, *params)
