"""The vectorised aggregation order (numpy) is DTrace's order as aggregate.order defines it."""

import random

import numpy as np
import pytest

from dtrace_nb.aggregate.order import sort_order, vector_order

OPTIONS = [{}, {"aggsortkey": True}, {"aggsortrev": True},
           {"aggsortkey": True, "aggsortrev": True}, {"aggsortkeypos": 1},
           {"aggsortkeypos": 1, "aggsortkey": True}]


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("seed", range(5))
def test_vector_order_matches_sort_order(opts, seed):
    rng = random.Random(seed)
    n = 300
    words = ["", "a", "ab", "b", "bash", "Z", "zsh", "é", "python3"]
    # few distinct values so ties fall through to the keys
    ints = np.array([rng.randint(-3, 3) for _ in range(n)], dtype=np.int64)
    strs = np.array([rng.choice(words) for _ in range(n)], dtype=object)
    values = np.array([rng.randint(0, 4) for _ in range(n)], dtype=np.uint64)
    keys = list(zip(strs.tolist(), ints.tolist()))
    expected = sort_order("count", keys, values.tolist(), **opts)
    got = vector_order([strs, ints], values, **opts)
    # rows with equal keys and values may come in either order: compare what is printed
    assert [(keys[i], int(values[i])) for i in got] == \
           [(keys[i], int(values[i])) for i in expected]


def test_vector_order_of_nothing():
    assert len(vector_order([np.zeros(0, dtype=np.int64)], np.zeros(0, dtype=np.uint64))) == 0
