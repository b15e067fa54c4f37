"""printa() with a format string, as libdtrace prints it (dt_printf.c dtrace_fprinta,
dt_fprinta / dt_fprintas and dt_printf_format; the order from dt_aggregate.c's sorted and
joined walks).

For every key (the union of the keys of all the aggregations, which share one key
signature) the whole format is printed once, nothing else: no leading newline, no
trailing newline the format doesn't have. The format's conversions consume, in order:

- without `@`: the next key component (a `*` width or precision also takes one), printed
  exactly as printf() prints an argument of that type;
- with `@` (`%@d`, `%@8u`, `%-@10d`, `%8@x`...): the value of the next aggregation. Past
  the last aggregation, `%@` repeats the last one (dt_printf_format's curagg stops at
  naggvars - 1). count() is a uint64_t, the others int64_t (dt_printf_validate's aggnode).
  avg() and stddev() print their computed value; quantize(), lquantize() and llquantize()
  print their histogram block (dt_print_quantize & co. ignore the conversion's flags and
  width), which starts with a newline.

A key component the format has no conversion for is not printed. A format without any
`%@` prints no aggregation value at all: dt_printf_format drops the value record (nrecs--)
and prints only what the format asks for, so printa("%s\\n", @a) lists the keys and
printa("x\\n", @a) prints one "x" line per key (a format without conversions is printed
once per key: the pfc == NULL case returns after its prefix).

A key missing from one of the aggregations gives that aggregation its zero value there
(dtrace_aggregate_walk_joined fills in zero-filled data).

Differences from libdtrace, on purpose:

- avg() divides signed (C truncation, as dt_print_average does for the default layout);
  pfprint_average divides the raw uint64_t words, so in DTrace printa("%@d") of an average
  with a negative sum prints a meaningless large number;
- a conversion that doesn't fit the key's type (e.g. %d for a string key) or a format
  with more key conversions than the aggregations have keys is a compile-time error in
  DTrace (dt_printf_validate); here it raises DCompileError when formatting.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from dtrace_nb.display import text
from dtrace_nb.display.printf import Conversion, format_printf, parse_format
from dtrace_nb.errors import DCompileError

HISTOGRAMS = ("quantize", "lquantize", "llquantize")


def zero_value(func: str, params: tuple = ()):
    """The value an aggregation has for a key it never saw."""
    if func == "avg":
        return (0, 0)
    if func == "stddev":
        return (0, 0, 0)
    if func == "quantize":
        return [0] * text.QUANTIZE_NBUCKETS
    if func == "lquantize":
        base, limit, step = params
        return [0] * ((limit - base) // step + 2)
    if func == "llquantize":
        return [0] * text.llquantize_nbuckets(*params)
    return 0


def scalar_value(func: str, value) -> int:
    """The number a %@ conversion prints for a non-histogram aggregation."""
    if func == "avg":
        n, total = value
        if n == 0:
            return 0
        q = abs(total) // abs(n)
        return q if (total < 0) == (n < 0) else -q
    if func == "stddev":
        return text.stddev_value(*value)
    return int(value)


def _key_type(kind: str) -> tuple[int, bool]:
    """(size, signed) of a key kind: 'intN' (signed, N bytes), 'uintN', 'string'."""
    if kind.startswith("uint") and kind[4:].isdigit():
        return int(kind[4:]), False
    if kind.startswith("int") and kind[3:].isdigit():
        return int(kind[3:]), True
    return 8, True


def joined_order(aggs: Sequence[tuple], keys: list[tuple], values: list[list], *,
                 aggsortkey: bool = False, aggsortrev: bool = False, aggsortkeypos: int = 0,
                 aggsortpos: int = 0) -> list[int]:
    """The order of the joined rows (dt_aggregate.c, dtrace_aggregate_walk_joined): by
    the value of the aggregation at aggsortpos, then the key, then the other aggregations'
    values in order; with aggsortkey by the key first. aggsortkeypos puts that key column
    first; aggsortrev reverses everything. With one aggregation this is text.sort_order."""
    n = len(aggs)
    if n == 1:
        func, params = aggs[0][0], aggs[0][1]
        return text.sort_order(func, keys, values[0], aggsortkey=aggsortkey,
                               aggsortrev=aggsortrev, aggsortkeypos=aggsortkeypos,
                               params=params)
    pos = aggsortpos if 0 <= aggsortpos < n else 0

    def key_of(i):
        k = keys[i]
        if 0 < aggsortkeypos < len(k):
            k = (k[aggsortkeypos],) + k[:aggsortkeypos] + k[aggsortkeypos + 1:]
        return k

    def val(j, i):
        return text.sort_value(aggs[j][0], values[j][i], aggs[j][1])

    def sort_key(i):
        others = tuple(val(j, i) for j in range(n) if j != pos)
        if aggsortkey:
            return (key_of(i), val(pos, i)) + others
        return (val(pos, i), key_of(i)) + others

    order = sorted(range(len(keys)), key=sort_key)
    return order[::-1] if aggsortrev else order


def format_printa(fmt: str, aggs: Sequence[tuple[str, tuple, Sequence[str], dict]], *,
                  aggsortkey: bool = False, aggsortrev: bool = False, aggsortkeypos: int = 0,
                  aggsortpos: int = 0) -> str:
    """printa(fmt, @a, @b, ...): `aggs` is one (func, params, key_kinds, {key: value})
    per aggregation, in the order given to printa(); returns the text DTrace prints."""
    if not aggs:
        raise DCompileError("printa() needs at least one aggregation")
    nkeys = {len(a[2]) for a in aggs}
    if len(nkeys) > 1:
        raise DCompileError("printa( ): aggregations do not have matching key signatures")
    pieces = parse_format(fmt)
    kinds = list(aggs[0][2])
    _check(fmt, pieces, kinds)

    seen: dict[tuple, None] = {}
    for a in aggs:
        for k in a[3]:
            seen.setdefault(tuple(k), None)
    keys = list(seen)
    values = [[a[3].get(k, zero_value(a[0], a[1])) for k in keys] for a in aggs]
    order = joined_order(aggs, keys, values, aggsortkey=aggsortkey, aggsortrev=aggsortrev,
                         aggsortkeypos=aggsortkeypos, aggsortpos=aggsortpos)
    return "".join(_row(pieces, keys[i], kinds, aggs, [v[i] for v in values])
                   for i in order)


def _check(fmt: str, pieces: Sequence, kinds: list[str]) -> None:
    """dt_printf_validate for printa(): each non-%@ conversion takes a key of the right
    type; '*' takes an integer key."""
    ki = 0
    number = 0
    for p in pieces:
        if not isinstance(p, Conversion):
            continue
        number += 1
        wants = ["int"] * p.star_count + ([] if p.is_agg else [p.kind])
        for want in wants:
            if ki >= len(kinds):
                raise DCompileError(f"printa( ) prototype mismatch: conversion #{number} "
                                    f"(%{p.conv}) is missing a corresponding value argument")
            is_str = kinds[ki] == "string"
            if (want == "string") != is_str:
                raise DCompileError(f"printa( ) argument #{ki + 2} is incompatible with "
                                    f"conversion #{number} prototype: %{p.conv} wants "
                                    f"{'a string' if want == 'string' else 'an integer'}, "
                                    f"the key is {'a string' if is_str else 'an integer'}")
            ki += 1


def _row(pieces: Sequence, key: tuple, kinds: list[str], aggs: Sequence[tuple],
         values: list) -> str:
    out: list[str] = []
    ki = 0
    curagg = 0
    for p in pieces:
        if not isinstance(p, Conversion):
            out.append(p)
            continue
        args: list = []
        types: list[tuple[int, bool]] = []
        for _ in range(p.star_count):
            args.append(key[ki])
            types.append(_key_type(kinds[ki]))
            ki += 1
        if not p.is_agg:
            args.append(key[ki])
            types.append(_key_type(kinds[ki]))
            ki += 1
            out.append(format_printf((p,), args, types))
            continue
        func, params = aggs[curagg][0], aggs[curagg][1]
        value = values[curagg]
        if curagg < len(aggs) - 1:
            curagg += 1
        if func in HISTOGRAMS:
            out.append(text.format_value(func, value, params))
            continue
        plain = replace(p, flags=p.flags.replace("@", ""))
        args.append(scalar_value(func, value))
        types.append((8, func != "count"))
        out.append(format_printf((plain,), args, types))
    return "".join(out)
