"""Timeline samples keep the keys with the largest values, from the arrays when they exist."""

from __future__ import annotations

import numpy as np

from dtrace_nb.aggregate.timeline import Timeline
from dtrace_nb.aggregate.snapshot import AggSnapshot


def test_vector_snapshot_keeps_the_largest_keys():
    names = np.array(["a", "b", "c", "d", "e"], dtype=object)
    counts = np.array([1, 50, 7, 30, 2], dtype=np.uint64)
    snap = AggSnapshot("n", "count", ["k"], ["string"], columns=[names], array=counts)
    keys, values = snap.largest(2)
    assert sorted(zip(keys, values)) == [(("b",), 50), (("d",), 30)]
    tl = Timeline(max_keys=3)
    tl.add({"n": snap}, when=100.0)
    df = tl.frame("n")
    assert sorted(df.columns) == ["b", "c", "d"] and df["b"].iloc[0] == 50.0
    assert tl.dropped_keys == 2


def test_list_snapshot_keeps_the_largest_keys():
    snap = AggSnapshot("a", "avg", ["k"], ["int8"], keys=[(1,), (2,), (3,)],
                       values=[(2, 10), (1, 1), (4, 400)])
    assert snap.largest(1) is None
    tl = Timeline(max_keys=2)
    tl.add({"a": snap}, when=1.0)
    assert sorted(tl.frame("a").columns) == ["1", "3"] and tl.dropped_keys == 1
