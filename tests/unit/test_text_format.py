"""DTrace's text formats (libdtrace dt_consume.c / dt_printf.c rules) and bucket math."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtrace_nb.text.printf import format_printf
from dtrace_nb.lang.printf_format import parse_format
from dtrace_nb.aggregate.buckets import (quantize_bucket, quantize_bucket_bounds,
                                         quantize_bucket_value)
from dtrace_nb.aggregate.order import sort_order
from dtrace_nb.text.aggregations import format_aggregation, format_all
from dtrace_nb.errors import DCompileError

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def test_keyless_count_is_one_right_aligned_number():
    assert format_all([("count", [()], [800], [])]) == "\n" + " %16d\n" % 800


def test_string_and_int_keys():
    out = format_aggregation("count", [("sshd", 4), ("dtrace", 12)], [2, 14], ["string", "int4"])
    assert out == ("  %-50s %8d %16d\n" % ("sshd", 4, 2)) + ("  %-50s %8d %16d\n" % ("dtrace", 12, 14))


def test_avg_truncates_like_c():
    assert format_aggregation("avg", [()], [(3, -7)], []) == " %16d\n" % -2


def test_quantize_histogram_block():
    buckets = [0] * 127
    for v in (1, 2, 3, 4, 100):
        buckets[quantize_bucket(v)] += 1
    out = format_aggregation("quantize", [("read",)], [buckets], ["string"])
    assert out == (
        "  read                                              \n"
        "           value  ------------- Distribution ------------- count    \n"
        "               0 |                                         0        \n"
        "               1 |@@@@@@@@                                 1        \n"
        "               2 |@@@@@@@@@@@@@@@@                         2        \n"
        "               4 |@@@@@@@@                                 1        \n"
        "               8 |                                         0        \n"
        "              16 |                                         0        \n"
        "              32 |                                         0        \n"
        "              64 |@@@@@@@@                                 1        \n"
        "             128 |                                         0        \n"
        "\n")


def test_quantize_of_negative_values_labels_negative_buckets():
    """Negative *values* get buckets below zero; the two-sided bar is only for negative
    *counts* (dt_print_quantline's positives/negatives are about the counts)."""
    buckets = [0] * 127
    buckets[quantize_bucket(-1)] = 1
    buckets[quantize_bucket(1)] = 1
    lines = format_aggregation("quantize", [()], [buckets], []).split("\n")
    assert [ln[:17] for ln in lines[2:6]] == ["              -2 ", "              -1 ",
                                             "               0 ", "               1 "]
    assert lines[3] == "              -1 |" + "@" * 20 + " " * 20 + " 1        "


def test_negative_counts_draw_both_sides():
    buckets = [0] * 127
    buckets[quantize_bucket(1)] = -1
    buckets[quantize_bucket(2)] = 1
    lines = format_aggregation("quantize", [()], [buckets], []).split("\n")
    assert lines[3] == "               1 " + " " * 10 + "@" * 10 + "|" + " " * 20 + " -1       "
    assert lines[4] == "               2 " + " " * 20 + "|" + "@" * 10 + " " * 10 + " 1        "


def test_default_sort_is_by_value_then_key():
    keys = [("b",), ("a",), ("c",)]
    assert sort_order("count", keys, [5, 5, 1]) == [2, 1, 0]
    assert sort_order("count", keys, [5, 5, 1], aggsortkey=True) == [1, 0, 2]
    assert sort_order("count", keys, [5, 5, 1], aggsortrev=True) == [0, 1, 2]


@given(INT64)
def test_quantize_bucket_contains_its_value(v):
    low, high = quantize_bucket_bounds(quantize_bucket(v))
    assert low <= v <= high


@given(st.integers(min_value=0, max_value=126))
def test_bucket_value_lands_in_its_bucket(i):
    assert quantize_bucket(quantize_bucket_value(i)) == i


@pytest.mark.parametrize("fmt, args, types, want", [
    ("%d|%5d|%-5d|%05d", [-3, 42, 42, 42], None, "-3|   42|42   |00042"),
    ("%u %x %X %o", [-1, -1, 255, 8], [(4, True), (4, True), (8, True), (8, True)],
     "4294967295 ffffffff FF 10"),
    ("%x", [-1], [(8, True)], "ffffffffffffffff"),
    # pfcheck_dint: %d of an unsigned argument prints as %u
    ("%d", [0xFFFFFFFFFFFFFFFF], [(8, False)], "18446744073709551615"),
    ("%s=%-6s|%.2s", ["a", "bc", "xyz"], None, "a=bc    |xy"),
    ("%c%c", [104, 105], None, "hi"),
    ("%*d|%-*d|", [4, 7, 3, 1], None, "   7|1  |"),
    ("100%% %ld %lld %hd %lu", [1, 2, 3, 4], None, "100% 1 2 3 4"),
    ("%p", [4096], None, "1000"),  # dt_printf.c: %p is %llx
])
def test_printf(fmt, args, types, want):
    assert format_printf(fmt, args, types) == want


# (dt_printf.c knows no hh, z, j or t length: `%zu` is undefined there)
@pytest.mark.parametrize("bad", ["%j", "%", "abc %5", "%-+q", "%zu", "%hhd", "%z"])
def test_printf_rejects_bad_conversions(bad):
    with pytest.raises(DCompileError):
        parse_format(bad)
