"""The batch formatter's Python % conversions (text/batch.py) print what the per-record
formatter (text/printf.py, C's rules) prints, for every flag set, width and precision
and for values at each integer type's edges; where they would differ, batch.py must
not use Python's % at all (it then makes the column value by value with the per-record
formatter)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dtrace_nb.text.batch import int_spec, str_spec
from dtrace_nb.text.printf import format_conversion

FLAG_SETS = ["".join(c) for n in range(4) for c in itertools.combinations("-+ 0#'", n)]
WIDTHS = [None, 1, 3, 8, 21]
PRECS = [None, 1, 3, 12]
TYPES = [(1, True), (1, False), (2, True), (2, False), (4, True), (4, False), (8, True),
         (8, False)]


def edges(size: int) -> list[int]:
    """Values around 0 and the limits of each width, as 64-bit register values (what a
    record holds: the batch formatter wraps them with numpy, format_conversion with _as)."""
    out = [0, 1, 7, 8, 255, 256, 4095, -1, -2, -128, -129]
    for bits in (8, 16, 32, 64):
        out += [(1 << (bits - 1)) - 1, 1 << (bits - 1), (1 << bits) - 1, -(1 << (bits - 1))]
    return sorted({v for v in out if -(1 << 63) <= v < (1 << 64)})


def wrapped(values: list[int], size: int, signed: bool) -> list[int]:
    """As BatchFormatter reads a field: the record's 64-bit column cast by numpy."""
    col = np.array([v & (2**64 - 1) for v in values], dtype="<u8").view("<i8")
    return col.astype(f"<{'i' if signed else 'u'}{size}").tolist()


@pytest.mark.parametrize("conv", list("diouxXp"))
def test_integer_conversions_match_the_c_rules(conv):
    checked = 0
    for flags, width, prec, (size, signed) in itertools.product(FLAG_SETS, WIDTHS, PRECS,
                                                                TYPES):
        got = int_spec(conv, flags, width, prec, signed)
        if got is None:
            assert "#" in flags  # the only case left to the per-record formatter
            continue
        spec, read_signed = got
        values = edges(size)
        size_read = 8 if conv == "p" else size
        for raw, v in zip(values, wrapped(values, size_read, read_signed)):
            want = format_conversion(conv, flags, width, prec, raw, size, signed)
            assert spec % v == want, (conv, flags, width, prec, size, signed, raw, spec)
            checked += 1
    assert checked > 10_000


@pytest.mark.parametrize("value", ["", "a", "abc", "execname", "x" * 40, "é ü", "%s %d"])
def test_string_conversions_match_the_c_rules(value):
    for flags, width, prec in itertools.product(FLAG_SETS, WIDTHS, PRECS):
        assert str_spec(flags, width, prec) % value == \
            format_conversion("s", flags, width, prec, value), (flags, width, prec)


def test_s_of_an_integer_is_its_decimal_text():
    for flags, width, prec in itertools.product(FLAG_SETS, WIDTHS, PRECS):
        for v in (0, -5, 123456789, 2**64 - 1):
            assert str_spec(flags, width, prec) % v == format_conversion("s", flags, width,
                                                                          prec, v)
