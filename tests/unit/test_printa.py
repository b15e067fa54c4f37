"""printa() with a format (dt_printf.c dtrace_fprinta / dt_printf_format, dt_aggregate.c
for the order). Each expected string is worked out by hand from those functions; the
comment says why."""

from __future__ import annotations

import pytest

from dtrace_nb.text.printa import format_printa
from dtrace_nb.aggregate.buckets import quantize_bucket
from dtrace_nb.text.aggregations import format_quantize
from dtrace_nb.errors import DCompileError

S = ["string"]


def count(rows, kinds=S):
    return ("count", (), kinds, rows)


def test_one_line_per_key_sorted_by_value_then_key_and_no_leading_newline():
    # the format is printed once per key and nothing else; order: value 2 (cron < sshd),
    # then 14. %-10s pads the key to 10, %@8u right-aligns the count in 8.
    out = format_printa("%-10s %@8u\n", [count({("sshd",): 2, ("bash",): 14, ("cron",): 2})])
    assert out == ("cron       %8d\n" % 2) + ("sshd       %8d\n" % 2) + ("bash       %8d\n" % 14)


def test_value_flags_and_widths():
    # %-@6d left-aligns the value; %@x prints a sum's 64-bit pattern (int64_t value,
    # pfprint_uint); %@+d the sign
    sums = ("sum", (), S, {("a",): -1})
    assert format_printa("%s|%-@6d|%@x|%@+d|\n", [sums]) == \
        "a|-1    |ffffffffffffffff|-1|\n"
    cnt = count({("a",): 7})
    assert format_printa("[%@05d][%8@d]", [cnt]) == "[00007][       7]"


def test_two_aggregations_share_keys_and_missing_ones_are_zero():
    # keys: union of a, b (count) and a, c (sum); c has no count (0), b no sum (0).
    # Sorted by the first aggregation's value: c (0), b (1), a (3).
    c = count({("a",): 3, ("b",): 1})
    s = ("sum", (), S, {("a",): -5, ("c",): 7})
    assert format_printa("%s %@d %@d\n", [c, s]) == "c 0 7\nb 1 0\na 3 -5\n"


def test_aggsortpos_sorts_by_another_aggregation():
    # by the sum: a (-5), b (0), c (7)
    c = count({("a",): 3, ("b",): 1})
    s = ("sum", (), S, {("a",): -5, ("c",): 7})
    assert format_printa("%s %@d %@d\n", [c, s], aggsortpos=1) == "a 3 -5\nb 1 0\nc 0 7\n"


def test_aggsortkey_and_aggsortrev():
    rows = {("b",): 1, ("a",): 2, ("c",): 3}
    assert format_printa("%s ", [count(rows)], aggsortkey=True) == "a b c "
    assert format_printa("%s ", [count(rows)], aggsortrev=True) == "c a b "
    assert format_printa("%s ", [count(rows)], aggsortkey=True, aggsortrev=True) == "c b a "


def test_aggsortkeypos_sorts_by_that_key_column():
    rows = {("x", 2): 5, ("y", 1): 5}
    kinds = ["string", "int4"]
    # equal values: the key decides; by default its first column (x < y), with
    # aggsortkeypos=1 its second (1 < 2)
    assert format_printa("%s%d ", [count(rows, kinds)]) == "x2 y1 "
    assert format_printa("%s%d ", [count(rows, kinds)], aggsortkeypos=1) == "y1 x2 "


def test_extra_percent_at_repeats_the_last_aggregation():
    # dt_printf_format: curagg stops at the last aggregation variable
    c = count({("a",): 3})
    s = ("sum", (), S, {("a",): 9})
    assert format_printa("%@d %@d %@d\n", [c, s]) == "3 9 9\n"
    assert format_printa("%@d %@d\n", [c]) == "3 3\n"


def test_keys_without_conversions_are_not_printed():
    rows = {("a", 1): 4}
    assert format_printa("%s=%@d\n", [count(rows, ["string", "int8"])]) == "a=4\n"


def test_no_percent_at_prints_no_value():
    # the value record is dropped (nrecs--) and nothing asks for it: keys only
    assert format_printa("%s\n", [count({("a",): 4, ("b",): 9})]) == "a\nb\n"
    # no conversion at all: the text once per key
    assert format_printa("x\n", [count({("a",): 4, ("b",): 9})]) == "x\nx\n"


def test_integer_keys_print_by_their_type():
    # an int key -1 printed with %u is 4294967295 (4 bytes); with %d it is -1; %5d pads
    kinds = ["int4"]
    out = format_printa("%u %d %5d %@d\n", [("count", (), kinds * 3, {(-1, -1, 42): 1})])
    assert out == "4294967295 -1    42 1\n"


def test_star_width_takes_a_key():
    # dt_printf_format: the '*' width is the next record, i.e. the next key component
    rows = {(6, "ab"): 1}
    assert format_printa("[%*s]%@d", [count(rows, ["int4", "string"])]) == "[    ab]1"


def test_avg_and_stddev_print_their_values():
    # avg 10/4 = 2 (C truncation), -7/3 = -2; stddev of 2 and 4: n 2, sum 6, squares 20:
    # 20/2 - 3*3 = 1 -> sqrt 1
    av = ("avg", (), S, {("a",): (4, 10), ("b",): (3, -7)})
    sd = ("stddev", (), S, {("a",): (2, 6, 20), ("b",): (2, 6, 20)})
    assert format_printa("%s %@d %@d\n", [av, sd]) == "b -2 1\na 2 1\n"


def test_quantize_value_is_the_histogram_block():
    # pfprint_quantize ignores flags and width: the histogram as dt_print_quantize
    # prints it (starting with its own newline)
    b = [0] * 127
    b[quantize_bucket(1)] = 1
    q = ("quantize", (), S, {("read",): b})
    assert format_printa("%s:%@8d\n", [q]) == "read:" + format_quantize(b) + "\n"


def test_lquantize_and_llquantize_values():
    lq = ("lquantize", (0, 10, 5), S, {("k",): [0, 1, 0, 0]})
    out = format_printa("%@d", [lq])
    # 0..10 step 5: buckets "< 0", 0, 5, ">= 10"; the non-zero one is 0 -> window
    # "< 0" .. 5
    assert [ln[:17] for ln in out.split("\n")[2:5]] == ["             < 0 ",
                                                       "               0 ",
                                                       "               5 "]
    llq = ("llquantize", (2, 0, 4, 4), S, {("k",): [0] * 10 + [1]})
    out = format_printa("%@d", [llq])
    assert out.split("\n")[-2].startswith("           >= 32 |@@@@")


def test_missing_histogram_key_is_all_zero_buckets():
    # the count has key "b" the quantize lacks: b's histogram is all zero (the empty
    # window: buckets -1, 0, 1)
    b = [0] * 127
    b[quantize_bucket(1)] = 2
    c = count({("a",): 1, ("b",): 2})
    q = ("quantize", (), S, {("a",): b})
    out = format_printa("%s%@d%@d", [c, q])
    assert out == "a1" + format_quantize(b) + "b2" + format_quantize([0] * 127)


def test_format_errors():
    with pytest.raises(DCompileError):  # more key conversions than keys
        format_printa("%s %s %@d\n", [count({("a",): 1})])
    with pytest.raises(DCompileError):  # %d of a string key
        format_printa("%d %@d\n", [count({("a",): 1})])
    with pytest.raises(DCompileError):  # different key signatures
        format_printa("%@d\n", [count({("a",): 1}), ("sum", (), [], {(): 1})])
