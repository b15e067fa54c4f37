"""Aggregations as tables a person reads: largest first, thousands separators, key columns
named after their expressions (no quotes), a bar in each row. DTrace's own order stays in
the Result's DataFrames and in DTrace's text."""

from __future__ import annotations

import html
from typing import Optional

HISTOGRAMS = ("quantize", "lquantize", "llquantize")
BAR_COLOR = "#4c78a8"


def column_name(name: str) -> str:
    """A key column as the expression reads: `"pread64"` -> pread64."""
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1]
    return name


def clean_columns(df):
    """The frame with its key columns renamed by column_name (a copy only when needed)."""
    renames = {c: column_name(c) for c in df.columns if column_name(c) != c}
    return df.rename(columns=renames) if renames else df


def fmt(value) -> str:
    """An integer with thousands separators; a float with 4 significant digits."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return f"{int(value):,}"
    if isinstance(value, float) or (hasattr(value, "dtype") and value.dtype.kind == "f"):
        v = float(value)
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(value)


def value_column(func: str, df) -> Optional[str]:
    """The column a table is sorted on and a bar drawn for."""
    if func in HISTOGRAMS:
        return "count"
    for name in (func, "avg", "count"):
        if name in df.columns:
            return name
    return None


def summary_frame(func: str, df):
    """One row per key: a histogram's keys with their total count; others as they are."""
    if func not in HISTOGRAMS:
        return df
    keys = [c for c in df.columns if c not in ("value", "count")]
    if not keys:
        return None  # one keyless histogram: its picture says it all
    return df.groupby(keys, sort=False)["count"].sum().reset_index()


def largest_first(func: str, df):
    col = value_column(func, df)
    if col is None or df.empty:
        return df
    return df.iloc[::-1].sort_values(col, ascending=False, kind="stable")


def table_html(name: str, func: str, df, max_rows: int = 20) -> str:
    """An aggregation as an HTML table, largest first, with `max_rows` rows at most."""
    frame = summary_frame(func, df)
    if frame is None:
        return ""
    frame = clean_columns(largest_first(func, frame))
    total = len(frame)
    shown = frame.head(max_rows)
    col = value_column(func, frame)
    peak = max((abs(float(v)) for v in shown[col]), default=0.0) if col else 0.0
    head = "".join(f"<th style='text-align:left'>{html.escape(str(c))}</th>"
                   for c in shown.columns)
    rows = []
    vi = list(shown.columns).index(col) if col else -1
    for rec in shown.itertuples(index=False):
        cells = []
        for c, v in zip(shown.columns, rec):
            text = html.escape(fmt(v))
            if isinstance(v, str) and "\n" in v:
                text = f"<pre style='margin:0'>{text}</pre>"
            align = "right" if c == col or not isinstance(v, str) else "left"
            cls = " class='dtnb-value'" if c == col else ""
            cells.append(f"<td{cls} style='text-align:{align}'>{text}</td>")
        if col:
            width = 100.0 * abs(float(rec[vi])) / peak if peak else 0
            cells.append("<td style='width:160px'><div style='background:"
                         f"{BAR_COLOR};height:0.8em;width:{width:.0f}%'></div></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f" &middot; {total - len(shown):,} more rows" if total > len(shown) else ""
    caption = (f"<div style='font-weight:bold;margin-top:6px'>{html.escape(name)} "
               f"<span style='font-weight:normal;color:#666'>{html.escape(func)}, "
               f"{total:,} key{'s' * (total != 1)}{more}</span></div>")
    return (caption + "<table style='border-collapse:collapse'><thead><tr>" + head
            + ("<th></th>" if col else "") + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def table_text(name: str, func: str, df, max_rows: int = 20) -> str:
    """The same table as plain text (the text/plain fallback)."""
    frame = summary_frame(func, df)
    if frame is None:
        return f"{name} ({func}: see the histogram)"
    frame = clean_columns(largest_first(func, frame))
    shown = frame.head(max_rows)
    more = f" ({len(frame) - len(shown):,} more rows)" if len(frame) > len(shown) else ""
    body = shown.to_string(index=False, formatters={c: fmt for c in shown.columns})
    return f"{name}{more}\n{body}"
