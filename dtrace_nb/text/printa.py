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
from typing import Optional, Sequence

from dtrace_nb.aggregate.buckets import HISTOGRAMS
from dtrace_nb.aggregate.order import joined_order
from dtrace_nb.aggregate.values import scalar_value, zero_value
from dtrace_nb.errors import DCompileError
from dtrace_nb.lang.printf_format import Conversion, parse_format
from dtrace_nb.text.aggregations import format_value
from dtrace_nb.text.printf import SymbolLookup, format_printf


def _key_type(kind: str) -> tuple[int, bool]:
    """(size, signed) of a key kind: 'intN' (signed, N bytes), 'uintN', 'string'."""
    if kind.startswith("uint") and kind[4:].isdigit():
        return int(kind[4:]), False
    if kind.startswith("int") and kind[3:].isdigit():
        return int(kind[3:]), True
    return 8, True


def format_printa(fmt: str, aggs: Sequence[tuple[str, tuple, Sequence[str], dict]], *,
                  aggsortkey: bool = False, aggsortrev: bool = False, aggsortkeypos: int = 0,
                  aggsortpos: int = 0, ksym: Optional[SymbolLookup] = None) -> str:
    """printa(fmt, @a, @b, ...): `aggs` is one (func, params, key_kinds, {key: value})
    per aggregation, in the order given to printa(); returns the text DTrace prints.
    `ksym` symbolises %a keys (None: hex)."""
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
    return "".join(_row(pieces, keys[i], kinds, aggs, [v[i] for v in values], ksym)
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
         values: list, ksym: Optional[SymbolLookup]) -> str:
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
            out.append(format_printf((p,), args, types, ksym=ksym))
            continue
        func, params = aggs[curagg][0], aggs[curagg][1]
        value = values[curagg]
        if curagg < len(aggs) - 1:
            curagg += 1
        if func in HISTOGRAMS:
            out.append(format_value(func, value, params))
            continue
        plain = replace(p, flags=p.flags.replace("@", ""))
        args.append(scalar_value(func, value))
        types.append((8, func != "count"))
        out.append(format_printf((plain,), args, types, ksym=ksym))
    return "".join(out)
