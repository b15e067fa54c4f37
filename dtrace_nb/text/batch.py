"""The text of many trace records of one clause at once, byte for byte what the consumer
prints for each record on its own (consumer._print_record, text/records.py, printf.py).

A clause's records share a layout: the same actions in the same order, the same printf
formats, the same field types. So the text of a record is one Python %-format applied to
a tuple of its values, and the format is worked out once per clause (and per set of
actions that ran, for actions under an `if`): the probe prefix, each trace() and each
printf() piece become parts of that format, and the values are numpy columns turned
into lists. A conversion whose C rules Python's % does not share (`#`, `%c`, floats, %S,
%a, %Y...) gets a column of strings made by the per-record formatter itself, value by
value; a printf with a `*` width or precision is formatted record by record by
format_printf. Clauses with any other action (exit, printa, stacks, tracemem,
speculations...) are not batched: formatter() returns None and their records go through
the consumer one by one.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from dtrace_nb.codegen.layout import RecordAction, RecordLayout
from dtrace_nb.lang.printf_format import parse_format
from dtrace_nb.lang.types import IntType, StringType
from dtrace_nb.runtime.records import RecordDecoder
from dtrace_nb.text import records
from dtrace_nb.text.printf import (SymbolLookup, format_conversion, format_printf,
                                   static_conversion)

# the actions whose text a batch can make; every other action acts on the session
BATCH_ACTIONS = frozenset(("trace", "printf", "default"))

# a producer: decoded rows -> one value per row for the row format (cache: columns made
# once per batch, shared by conversions of the same field)
Producer = Callable[[np.ndarray, dict], list]


def int_spec(conv: str, flags: str, width: Optional[int], prec: Optional[int],
             signed: bool) -> Optional[tuple[str, bool]]:
    """The Python % conversion that prints an integer argument as printf.c_int does, and
    whether the argument is read signed; None where Python's rules differ from C's (`#`:
    Python writes 0o for octal and 0x0 for zero)."""
    if "#" in flags:
        return None
    if conv in "di" and signed:
        py, keep = "d", "-+ 0"
    elif conv in "diu":
        py, keep, signed = "d", "-0", False  # %d of an unsigned argument is %u
    elif conv in "oxX":
        py, keep, signed = conv, "-0", False
    elif conv == "p":
        py, keep, signed = "x", "-0", False
    else:
        return None
    if prec is not None:
        keep = keep.replace("0", "")  # C zero-pads only without a precision
    spec = "%" + "".join(f for f in flags if f in keep)
    spec += ("" if width is None else str(width)) + ("" if prec is None else f".{prec}")
    return spec + py, signed


def str_spec(flags: str, width: Optional[int], prec: Optional[int]) -> str:
    """The Python % conversion that prints a value as printf.c_str prints its str(): at
    most `prec` characters, padded with spaces (even with the 0 flag) to `width`."""
    return ("%" + ("-" if "-" in flags else "") + ("" if width is None else str(width))
            + ("" if prec is None else f".{prec}") + "s")


def _escape(text: str) -> str:
    return text.replace("%", "%%")


class _Columns:
    """The columns of one clause's decoded rows, as the per-record path sees the values."""

    def __init__(self, decoder: RecordDecoder, layout: RecordLayout):
        self.decoder, self.layout = decoder, layout

    def values(self, i: int) -> Producer:
        """Field i as a Record holds it (ints, strings up to the NUL)."""
        def make(rows, cache):
            key = ("values", i)
            if key not in cache:
                cache[key] = self.decoder.column(self.layout.epid, rows, i)
            return cache[key]
        return make

    def wrapped(self, i: int, size: int, signed: bool) -> Producer:
        """Field i reduced to a C integer of `size` bytes (printf's _as, IntType.wrap)."""
        name = self.layout.fields[i].name
        if size not in (1, 2, 4, 8):
            mask, top = (1 << (size * 8)) - 1, 1 << (size * 8 - 1)

            def wrap(rows, cache):
                vals = [v & mask for v in rows[name].tolist()]
                return [v - (top << 1) if signed and v & top else v for v in vals]
            return wrap
        dt = np.dtype(f"<{'i' if signed else 'u'}{size}")
        return lambda rows, _cache: rows[name].astype(dt).tolist()


class BatchFormatter:
    """rows of one clause -> the text of each row (a list of str), or None if any row
    could not be formatted this way (the caller then takes the per-record path, which
    reports what went wrong as it always has)."""

    def __init__(self, layout: RecordLayout, decoder: RecordDecoder, quiet: bool,
                 testing: bool, ksym: Optional[SymbolLookup]):
        self.layout, self.decoder = layout, decoder
        self.quiet, self.testing, self.ksym = quiet, testing, ksym
        self.cols = _Columns(decoder, layout)
        self.bits = 0
        for a in layout.actions:
            if a.kind != "default":
                self.bits |= 1 << a.bit
        self._compiled: dict[int, tuple[str, list[Producer]]] = {}

    def __call__(self, rows: np.ndarray) -> Optional[list]:
        try:
            return self._format(rows)
        except Exception:  # noqa: BLE001 - the per-record path raises it again, as before
            return None

    def _format(self, rows: np.ndarray) -> list:
        masks = rows["mask"] & np.uint64(self.bits)
        first = int(masks[0]) if len(masks) else self.bits
        if not len(masks) or (masks == first).all():
            return self._texts(first, rows)
        out: list = [None] * len(rows)
        for m in np.unique(masks).tolist():
            where = np.flatnonzero(masks == m)
            for i, text in zip(where.tolist(), self._texts(m, rows[where])):
                out[i] = text
        return out

    def _texts(self, mask: int, rows: np.ndarray) -> list:
        compiled = self._compiled.get(mask)
        if compiled is None:
            compiled = self._compiled[mask] = self._compile(mask)
        fmt, producers = compiled
        cache: dict = {}
        cols = [p(rows, cache) for p in producers]
        if not cols:
            return [fmt % ()] * len(rows)
        if len(cols) == 1:  # values are ints and strs, never tuples: fmt % value
            return list(map(fmt.__mod__, cols[0]))
        return list(map(fmt.__mod__, zip(*cols)))

    # -- the row format of one set of actions that ran ----------------------------------

    def _compile(self, mask: int) -> tuple[str, list[Producer]]:
        """(format, producers): a row's text is format % (one value of each producer)."""
        fmt: list[str] = []
        producers: list[Producer] = []
        if not self.quiet:
            fmt.append("%s")
            producers.append(self._prefixes)
        for action in self.layout.actions:
            if action.kind != "default" and not (mask >> action.bit) & 1:
                continue
            if action.kind == "trace":
                self._trace(action, fmt, producers)
            elif action.kind == "printf":
                self._printf(action, fmt, producers)
        if not self.quiet:
            fmt.append("\n")
        return "".join(fmt), producers

    def _prefixes(self, rows: np.ndarray, _cache: dict) -> list:
        """records.probe_prefix of each row, made once per distinct (cpu, probe)."""
        probes = self.decoder.probes
        key = rows["cpu"].astype(np.int64) * len(probes) + rows["pidx"].astype(np.int64)
        table = np.empty(int(key.max()) + 1, dtype=object)  # cpus x probes: small
        for k in np.flatnonzero(np.bincount(key)).tolist():
            table[k] = records.probe_prefix(k // len(probes), probes[k % len(probes)],
                                            self.testing)
        return table[key].tolist()

    def _trace(self, action: RecordAction, fmt: list, producers: list) -> None:
        i = action.fields[0]
        dtype = self.layout.fields[i].dtype
        if isinstance(dtype, StringType):
            fmt.append("%s" if self.quiet else "  %-33s")
            producers.append(self.cols.values(i))
            return
        assert isinstance(dtype, IntType)  # formatter() batches no other trace()
        fmt.append(records.trace_int_format(dtype, self.quiet))
        producers.append(self.cols.wrapped(i, dtype.size, dtype.signed))

    def _printf(self, action: RecordAction, fmt: list, producers: list) -> None:
        pieces = parse_format(action.fmt)
        fields = [self.layout.fields[i] for i in action.fields]
        types = [records.arg_type(f.dtype) for f in fields]
        if any(not isinstance(p, str) and static_conversion(p) is None for p in pieces):
            # `*` widths and precisions take their values from the record
            fmt.append("%s")
            producers.append(self._printf_rows(pieces, action.fields, types))
            return
        arg = 0
        for piece in pieces:
            if isinstance(piece, str):
                fmt.append(_escape(piece))
                continue
            flags, width, prec = static_conversion(piece)
            i, f, (size, signed) = action.fields[arg], fields[arg], types[arg]
            arg += 1
            conv = piece.conv
            spec = int_spec(conv, flags, width, prec, signed) \
                if isinstance(f.dtype, IntType) else None
            if spec is not None:
                fmt.append(spec[0])
                producers.append(self.cols.wrapped(i, 8 if conv == "p" else size, spec[1]))
            elif conv == "s" and isinstance(f.dtype, (IntType, StringType)):
                fmt.append(str_spec(flags, width, prec))
                producers.append(self.cols.values(i))
            else:
                fmt.append("%s")
                producers.append(self._each_value(conv, flags, width, prec, i, size, signed))

    def _each_value(self, conv, flags, width, prec, i, size, signed) -> Producer:
        """One conversion made value by value by the per-record formatter."""
        values, ksym = self.cols.values(i), self.ksym

        def make(rows, cache):
            return [format_conversion(conv, flags, width, prec, v, size, signed, ksym=ksym)
                    for v in values(rows, cache)]
        return make

    def _printf_rows(self, pieces, fields: list[int], types) -> Producer:
        """A whole printf() made record by record by format_printf."""
        cols, ksym = [self.cols.values(i) for i in fields], self.ksym

        def make(rows, cache):
            return [format_printf(pieces, list(args), types, ksym=ksym)
                    for args in zip(*[c(rows, cache) for c in cols])]
        return make


def formatter(layout: RecordLayout, decoder: RecordDecoder, quiet: bool, testing: bool,
              ksym: Optional[SymbolLookup]) -> Optional[BatchFormatter]:
    """A batch formatter for a clause's records, or None for a clause whose actions do
    more than print (or print stacks), which the consumer must see record by record."""
    if not all(a.kind in BATCH_ACTIONS for a in layout.actions):
        return None
    if any(records.is_stack(f.dtype) or records.is_pid(f.dtype) for f in layout.fields):
        return None
    if any(a.kind == "trace" and not isinstance(layout.fields[a.fields[0]].dtype,
                                                 (IntType, StringType))
           for a in layout.actions):
        return None
    return BatchFormatter(layout, decoder, quiet, testing, ksym)
