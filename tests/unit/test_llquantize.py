"""llquantize(): bucket math (illumos dtrace.c dtrace_aggregate_llquantize_bucket) and the
histogram (dt_consume.c dt_print_llquantize). Expected values are worked out by hand from
those functions; the derivation is in the comments."""

from __future__ import annotations

import pytest

from dtrace_nb.aggregate.buckets import (llquantize_bucket, llquantize_bucket_value,
                                         llquantize_nbuckets)
from dtrace_nb.aggregate.order import sort_order
from dtrace_nb.text.aggregations import format_llquantize, format_value

# llquantize(x, 10, 0, 6, 20): magnitude 0 is [1, 10): the divisor is min(20, 10) = 10,
# width 10/10 = 1, buckets 1..9 (10 - 10/10 = 9 of them, indices 1..9). Magnitudes 1..6:
# divisor 20, width 10**(m+1)/20, 20 - 20/10 = 18 buckets each: [10, 100) in steps of 5
# (indices 10..27), [100, 1000) in steps of 50 (28..45), ... [10**6, 10**7) in steps of
# 500000 (indices 100..117). Index 0: x < 1; index 118: x >= 10**7.
TEN = (10, 0, 6, 20)
# llquantize(x, 2, 0, 4, 4): magnitude 0 [1,2): divisor min(4, 2) = 2, width 1, 2 - 1 = 1
# bucket (1); magnitude 1 [2,4): divisor 4, width 1, 4 - 2 = 2 buckets (2, 3);
# magnitude 2 [4,8): width 2 (4, 6); magnitude 3 [8,16): width 4 (8, 12); magnitude 4
# [16,32): width 8 (16, 24). Index 0: x < 1; index 10: x >= 32.
TWO = (2, 0, 4, 4)


def test_number_of_buckets():
    assert llquantize_nbuckets(*TEN) == 1 + 9 + 6 * 18 + 1  # 119
    assert llquantize_nbuckets(*TWO) == 1 + 1 + 4 * 2 + 1  # 11
    # low > 0: llquantize(x, 10, 2, 3, 10): [100, 1000) step 100 -> 9, [1000, 10000)
    # step 1000 -> 9; plus underflow and overflow
    assert llquantize_nbuckets(10, 2, 3, 10) == 20


@pytest.mark.parametrize("value, index", [
    (-5, 0), (0, 0),                 # below 10**0 = 1: the underflow bucket
    (1, 1), (2, 2), (9, 9),          # width 1 in [1, 10)
    (10, 10), (14, 10), (15, 11),    # [10, 100) in steps of 5: 10 -> 10, 15 -> 11
    (99, 27), (100, 28), (149, 28),  # 95..99 is the last of 18; 100 opens [100, 1000)
    (150, 29), (999, 45), (1000, 46),
    (9_999_999, 117), (10**7, 118),  # last bucket of magnitude 6, then the overflow
    (2**63 - 1, 118),
])
def test_bucket_edges_factor_10(value, index):
    assert llquantize_bucket(value, *TEN) == index


@pytest.mark.parametrize("value, index", [
    (0, 0), (1, 1),          # underflow below 1; 1 alone in magnitude 0
    (2, 2), (3, 3),          # magnitude 1, width 1
    (4, 4), (5, 4), (6, 5), (7, 5),     # magnitude 2, width 2
    (8, 6), (11, 6), (12, 7), (15, 7),  # magnitude 3, width 4
    (16, 8), (23, 8), (24, 9), (31, 9),  # magnitude 4, width 8
    (32, 10), (1000, 10),    # >= 2**5: overflow
])
def test_bucket_edges_factor_2(value, index):
    assert llquantize_bucket(value, *TWO) == index


@pytest.mark.parametrize("params", [TEN, TWO, (10, 2, 3, 10), (4, 1, 5, 16)])
def test_every_bucket_starts_at_its_value_and_the_value_below_is_in_the_one_before(params):
    n = llquantize_nbuckets(*params)
    for i in range(1, n):
        v = llquantize_bucket_value(i, *params)
        assert llquantize_bucket(v, *params) == i
        assert llquantize_bucket(v - 1, *params) == i - 1


def test_bucket_values():
    # the underflow bucket is labelled factor**low - 1 (as lquantize's is base - 1), the
    # overflow bucket factor**(high + 1)
    assert [llquantize_bucket_value(i, *TWO) for i in range(11)] == \
        [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
    assert llquantize_bucket_value(10, *TEN) == 10
    assert llquantize_bucket_value(11, *TEN) == 15
    assert llquantize_bucket_value(118, *TEN) == 10**7
    assert llquantize_bucket_value(0, 10, 2, 3, 10) == 99


def _buckets(params, values):
    b = [0] * llquantize_nbuckets(*params)
    for v in values:
        b[llquantize_bucket(v, *params)] += 1
    return b


HEADER = "\n           value  ------------- Distribution ------------- count    \n"


def test_histogram_factor_2():
    # values 1 2 3 5 5 40 -> buckets 1, 2, 3, 4 (twice), 10 (overflow). First non-zero
    # bucket is 1, so the window starts one earlier at 0 ("< 1"); the last non-zero is
    # the overflow bucket itself, so it ends there. Total 6: one count draws
    # int(40 * 1/6 + .5) = 7 '@', two draw int(13.83) = 13.
    out = format_llquantize(_buckets(TWO, [1, 2, 3, 5, 5, 40]), TWO)
    assert out == HEADER + (
        "             < 1 |                                         0        \n"
        "               1 |@@@@@@@                                  1        \n"
        "               2 |@@@@@@@                                  1        \n"
        "               3 |@@@@@@@                                  1        \n"
        "               4 |@@@@@@@@@@@@@                            2        \n"
        "               6 |                                         0        \n"
        "               8 |                                         0        \n"
        "              12 |                                         0        \n"
        "              16 |                                         0        \n"
        "              24 |                                         0        \n"
        "           >= 32 |@@@@@@@                                  1        \n")


def test_histogram_factor_10_window():
    # values 15, 20, 20, 120: buckets 11 (15), 12 (20) twice, 28 (100..149). The window
    # is bucket 10 (one before the first) to 29 (one after the last): 10, 15 ... 95, then
    # 100 and 150. Total 4: 1 count -> 10 '@', 2 counts -> 20 '@'.
    out = format_llquantize(_buckets(TEN, [15, 20, 20, 120]), TEN)
    rows = ["%16d |%s %-9d\n" % (10, " " * 40, 0),
            "%16d |%s%s %-9d\n" % (15, "@" * 10, " " * 30, 1),
            "%16d |%s%s %-9d\n" % (20, "@" * 20, " " * 20, 2)]
    rows += ["%16d |%s %-9d\n" % (v, " " * 40, 0) for v in range(25, 100, 5)]
    rows += ["%16d |%s%s %-9d\n" % (100, "@" * 10, " " * 30, 1),
             "%16d |%s %-9d\n" % (150, " " * 40, 0)]
    assert out == HEADER + "".join(rows)


def test_empty_histogram_shows_the_first_two_buckets():
    # dt_print_llquantize: no non-zero bucket -> first_bin 0, last_bin 1
    assert format_llquantize([0] * 11, TWO) == HEADER + (
        "             < 1 |                                         0        \n"
        "               1 |                                         0        \n")


def test_extra_slots_beyond_the_buckets_are_ignored():
    # the kernel map is a power of two long; the slots past the 11 buckets are not rows
    b = _buckets(TWO, [40]) + [0] * 5
    out = format_value("llquantize", b, TWO)
    assert out.endswith("           >= 32 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 1        \n")
    assert out.count("\n") == 4  # header (2 lines) + "24" + ">= 32"


def test_sorted_by_bucket_values():
    small, large = _buckets(TEN, [5]), _buckets(TEN, [500])
    assert sort_order("llquantize", [("b",), ("a",)], [large, small], params=TEN) == [1, 0]
