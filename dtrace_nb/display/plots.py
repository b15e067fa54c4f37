"""Histograms of quantize/lquantize/llquantize aggregations as matplotlib figures.

Only matplotlib's object API (Figure + the Agg canvas): no pyplot, so nothing touches the
notebook's global figure state, nothing pops up, and a background thread may render.
"""

from __future__ import annotations

import io
from functools import reduce
from math import gcd
from typing import Optional

import pandas as pd

from dtrace_nb.aggregate.buckets import quantize_bucket, quantize_bucket_value
from dtrace_nb.runtime.signals import deferred_interrupts

HISTOGRAMS = ("quantize", "lquantize", "llquantize")
MAX_PANELS = 6  # histograms drawn per figure (one per aggregation key, largest first)


def _label(v: int, unit: str = "") -> str:
    """A bucket's value as a person reads it: 4,096 / 4 KiB / 1.5 ms."""
    if unit == "ns" and v:
        for div, name in ((10**9, "s"), (10**6, "ms"), (10**3, "µs")):
            if abs(v) >= div:
                return f"{v / div:.3g} {name}"
        return f"{v} ns"
    if unit == "bytes" and v:
        for shift, name in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
            if abs(v) >= 1 << shift:
                return f"{v / (1 << shift):.3g} {name}"
        return f"{v} B"
    return f"{v:,}"


def unit_of(name: str, expr: str) -> str:
    """'ns' when the aggregated expression is a time (a timestamp difference), 'bytes' when
    the aggregation or its expression says so; '' otherwise."""
    text = expr.lower()
    if "timestamp" in text:
        return "ns"
    if any(w in (name + " " + text).lower() for w in ("byte", "size", "len")):
        return "bytes"
    return ""


def fill_buckets(func: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Every bucket between the lowest and the highest non-empty one, as DTrace prints a
    histogram (the empty ones with a count of 0). lquantize's step is read off the
    values; llquantize's buckets are left as they are."""
    if frame.empty:
        return frame
    values = sorted(int(v) for v in frame["value"])
    lo, hi = values[0], values[-1]
    if func == "quantize":
        first, last = quantize_bucket(lo), quantize_bucket(hi)
        every = [quantize_bucket_value(i) for i in range(first, last + 1)]
    elif func == "lquantize" and len(values) > 1:
        # the step is the gcd of the gaps; the underflow and overflow buckets (base - 1,
        # limit) may be off the grid, so try without the ends when the whole gives 1
        lo_in, hi_in = lo, hi
        step = reduce(gcd, (b - a for a, b in zip(values, values[1:])))
        if step == 1 and len(values) > 3:
            lo_in, hi_in = values[1], values[-2]
            step = reduce(gcd, (b - a for a, b in zip(values[1:-1], values[2:-1])))
        if step <= 0 or (hi_in - lo_in) // step > 400:
            return frame
        every = sorted(set(values) | set(range(lo_in, hi_in + 1, step)))
    else:
        return frame
    counts = dict(zip((int(v) for v in frame["value"]), frame["count"]))
    return pd.DataFrame({"value": every, "count": [int(counts.get(v, 0)) for v in every]})


def histogram_panels(aggs: dict[str, tuple[str, pd.DataFrame]]) -> list[tuple[str, str, pd.DataFrame]]:
    """(title, func, frame of value/count) for each key of each histogram aggregation, the
    keys with the most events first (all of them: the figure draws MAX_PANELS)."""
    panels = []
    for name, (func, df) in aggs.items():
        if func not in HISTOGRAMS or df.empty:
            continue
        keys = [c for c in df.columns if c not in ("value", "count")]
        if not keys:
            panels.append((name, func, df[["value", "count"]]))
            continue
        totals = df.groupby(keys, sort=False)["count"].sum().sort_values(ascending=False)
        for key in totals.index:
            key_t = key if isinstance(key, tuple) else (key,)
            mask = pd.Series(True, index=df.index)
            for col, kv in zip(keys, key_t):
                mask &= df[col] == kv
            title = f"{name}[{', '.join(str(k) for k in key_t)}]"
            panels.append((title, func, df.loc[mask, ["value", "count"]]))
    return panels


def panels_caption(aggs: dict) -> str:
    """'6 of 25 keys shown' when the figure leaves some out, else ''."""
    n = len(histogram_panels(aggs))
    return f"{MAX_PANELS} of {n} keys shown (r.figure(keys=...) for others)" \
        if n > MAX_PANELS else ""


_MATPLOTLIB = None


def _matplotlib():
    """(matplotlib.style, Figure, FigureCanvasAgg), imported once with Ctrl-C held back.

    The first import happens at the first refresh of the live view, while tracing, when
    Ctrl-C is how the user stops: a KeyboardInterrupt in the middle of it leaves matplotlib
    half initialised in sys.modules, and every later plot in the process (the kernel) fails
    ("module 'matplotlib' has no attribute 'get_data_path'")."""
    global _MATPLOTLIB
    if _MATPLOTLIB is None:
        with deferred_interrupts():
            from matplotlib import style
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        _MATPLOTLIB = (style, Figure, FigureCanvasAgg)
    return _MATPLOTLIB


def available_styles() -> list[str]:
    """The matplotlib style names plot_style may take (besides 'default' and a file)."""
    mstyle, _, _ = _matplotlib()
    return list(mstyle.available)


def histogram_figure(aggs: dict[str, tuple[str, pd.DataFrame]], style: str = "default",
                     units: Optional[dict] = None, log: Optional[bool] = None,
                     keys: Optional[int] = None):
    """A Figure with one horizontal bar chart per histogram (DTrace's layout: the bucket
    values down the side, counts across, every bucket between the lowest and the highest
    non-empty one), or None when there is nothing to draw. `log`: counts on a log scale
    (None: when they span more than two orders of magnitude); `keys`: panels drawn."""
    panels = histogram_panels(aggs)
    if not panels:
        return None
    total = len(panels)
    panels = panels[:keys or MAX_PANELS]
    units = units or {}
    mstyle, Figure, _ = _matplotlib()
    with mstyle.context(style):
        ncols = 2 if len(panels) > 1 else 1
        nrows = (len(panels) + ncols - 1) // ncols
        fig = Figure(figsize=(6 * ncols, 0.5 + 3.0 * nrows), layout="constrained", dpi=80)
        for i, (title, func, frame) in enumerate(panels):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            frame = fill_buckets(func, frame.sort_values("value"))
            counts = frame["count"].to_numpy()
            ax.barh(range(len(frame)), counts, color="#4c78a8")
            unit = units.get(title.split("[")[0], "")
            ax.set_yticks(range(len(frame)), [_label(int(v), unit) for v in frame["value"]],
                          fontsize=10)
            ax.invert_yaxis()  # smallest bucket on top, as DTrace prints
            ax.set_title(title, fontsize=12)
            nonzero = counts[counts > 0]
            wide = len(nonzero) and nonzero.max() > 100 * nonzero.min()
            if log if log is not None else wide:
                ax.set_xscale("log")
                ax.set_xlabel("count (log)", fontsize=11)
            else:
                ax.set_xlabel("count", fontsize=11)
            ax.set_ylabel({"ns": "time", "bytes": "bytes"}.get(unit, "value"), fontsize=11)
        if total > len(panels):
            fig.suptitle(f"{len(panels)} of {total} keys shown", fontsize=12)
    return fig


def figure_png(fig) -> bytes:
    """The figure as a PNG of at most 64 colours: bar charts need few, and the notebook
    stores the picture (about a third of the size of a full-colour one)."""
    FigureCanvasAgg = _matplotlib()[2]
    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    try:
        from PIL import Image

        canvas.draw()
        image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(),
                                 "raw", "RGBA", 0, 1).convert("RGB")
        image.quantize(colors=64).save(buf, format="png", optimize=True)
    except ImportError:  # matplotlib needs Pillow; keep working without it all the same
        canvas.print_png(buf)
    return buf.getvalue()


def histogram_png(aggs: dict[str, tuple[str, pd.DataFrame]], style: str = "default",
                  units: Optional[dict] = None) -> Optional[bytes]:
    fig = histogram_figure(aggs, style, units)
    return None if fig is None else figure_png(fig)


def as_image(fig):
    """A Figure as an IPython Image (PNG), displayable without pyplot or a backend."""
    from IPython.display import Image

    return Image(data=figure_png(fig), format="png")
