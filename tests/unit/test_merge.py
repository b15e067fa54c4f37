"""aggregate/merge.py against a model: every value a fleet saw aggregated at once, on one
imaginary host, must equal the merge of what each host aggregated from its own share."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtrace_nb.aggregate.buckets import llquantize_bucket, nbuckets, quantize_bucket
from dtrace_nb.aggregate.merge import MergeError, merge_hosts, merge_snapshots
from dtrace_nb.aggregate.order import sort_order
from dtrace_nb.aggregate.snapshot import AggSnapshot

FUNCS = ("count", "sum", "min", "max", "avg", "stddev", "quantize", "lquantize",
         "llquantize")
PARAMS = {"lquantize": (-50, 200, 10), "llquantize": (10, 0, 4, 10)}
I64 = st.integers(-(1 << 63), (1 << 63) - 1)


def _s64(v: int) -> int:
    return ((v + (1 << 63)) % (1 << 64)) - (1 << 63)


def _lquantize_bucket(v: int, base: int, limit: int, step: int) -> int:
    if v < base:
        return 0
    if v >= limit:
        return (limit - base) // step + 1
    return (v - base) // step + 1


def _bucket(func: str, v: int) -> int:
    if func == "quantize":
        return quantize_bucket(v)
    if func == "lquantize":
        return _lquantize_bucket(v, *PARAMS[func])
    return llquantize_bucket(v, *PARAMS[func])


def model(func: str, values: list[int]):
    """What one host holds for a key after aggregating `values` (in any order)."""
    if func == "count":
        return len(values)
    if func == "sum":
        return _s64(sum(values))
    if func == "min":
        return min(values)
    if func == "max":
        return max(values)
    if func == "avg":
        return (len(values), _s64(sum(values)))
    if func == "stddev":
        return (len(values), _s64(sum(values)), sum(v * v for v in values))
    buckets = [0] * nbuckets(func, PARAMS.get(func, ()))
    for v in values:
        buckets[_bucket(func, v)] += 1
    return buckets


def snapshot(func: str, events: list[tuple[tuple, int]], name: str = "a") -> AggSnapshot:
    """A host's snapshot as the reader makes one: each key seen, its value, DTrace's order."""
    by_key: dict[tuple, list[int]] = {}
    for key, v in events:
        by_key.setdefault(key, []).append(v)
    keys = list(by_key)
    values = [model(func, by_key[k]) for k in keys]
    params = PARAMS.get(func, ())
    order = sort_order(func, keys, values, params=params)
    return AggSnapshot(name, func, ["execname", "pid"], ["string", "int4"],
                       [keys[i] for i in order], [values[i] for i in order], params)


KEYS = st.tuples(st.sampled_from(["sh", "cat", "dd", "python3"]), st.integers(1, 4))
EVENTS = st.lists(st.tuples(st.integers(0, 3), KEYS, I64), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(func=st.sampled_from(FUNCS), events=EVENTS)
def test_merge_equals_aggregating_everything_at_once(func, events):
    hosts = sorted({h for h, _, _ in events})
    per_host = {f"h{h}": {"a": snapshot(func, [(k, v) for hh, k, v in events if hh == h])}
                for h in hosts}
    merged = merge_hosts(per_host)["a"]
    whole = snapshot(func, [(k, v) for _, k, v in events])
    assert merged.keys == whole.keys  # same keys, in DTrace's order
    assert merged.values == whole.values


@settings(max_examples=50, deadline=None)
@given(func=st.sampled_from(FUNCS), events=EVENTS, order=st.randoms())
def test_merge_does_not_depend_on_host_order(func, events, order):
    snaps = [snapshot(func, [(k, v) for hh, k, v in events if hh == h])
             for h in sorted({h for h, _, _ in events})]
    shuffled = list(snaps)
    order.shuffle(shuffled)
    a, b = merge_snapshots(snaps), merge_snapshots(shuffled)
    assert (a.keys, a.values) == (b.keys, b.values)


def test_counts_wrap_as_one_host_map_would():
    big = (1 << 63) - 1
    a = AggSnapshot("s", "sum", [], [], [()], [big], ())
    b = AggSnapshot("s", "sum", [], [], [()], [1], ())
    assert merge_snapshots([a, b]).values == [-(1 << 63)]


def test_normalize_is_applied_once_after_merging():
    # 3 + 3 normalized by 2 is 3; dividing per host first would give 1 + 1 = 2
    a = AggSnapshot("n", "sum", ["k"], ["int8"], [(1,)], [3], ())
    b = AggSnapshot("n", "sum", ["k"], ["int8"], [(1,)], [3], ())
    assert merge_snapshots([a, b], factor=2).values == [3]


def test_merging_different_aggregations_is_refused():
    a = AggSnapshot("q", "lquantize", [], [], [()], [[0] * 7], (0, 5, 1))
    b = AggSnapshot("q", "lquantize", [], [], [()], [[0] * 12], (0, 10, 1))
    with pytest.raises(MergeError, match="params differ"):
        merge_snapshots([a, b])


def test_a_host_without_the_aggregation_adds_nothing():
    a = snapshot("count", [(("sh", 1), 0)] * 3)
    merged = merge_hosts({"h1": {"a": a}, "h2": {}})
    assert merged["a"].values == [3]
