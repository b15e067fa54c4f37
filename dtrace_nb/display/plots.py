"""Histograms of quantize/lquantize/llquantize aggregations as matplotlib figures.

Only matplotlib's object API (Figure + the Agg canvas): no pyplot, so nothing touches the
notebook's global figure state, nothing pops up, and a background thread may render.
"""

from __future__ import annotations

import io
from typing import Optional

import pandas as pd

from dtrace_nb.runtime.signals import deferred_interrupts

HISTOGRAMS = ("quantize", "lquantize", "llquantize")
MAX_PANELS = 6  # histograms drawn per figure (one per aggregation key, largest first)


def _label(v: int) -> str:
    return f"{v:,}" if abs(v) < 10**6 else f"{v:.3g}"


def histogram_panels(aggs: dict[str, tuple[str, pd.DataFrame]]) -> list[tuple[str, pd.DataFrame]]:
    """(title, frame of value/count) for each key of each histogram aggregation, the keys
    with the most events first, at most MAX_PANELS in all."""
    panels = []
    for name, (func, df) in aggs.items():
        if func not in HISTOGRAMS or df.empty:
            continue
        keys = [c for c in df.columns if c not in ("value", "count")]
        if not keys:
            panels.append((name, df[["value", "count"]]))
            continue
        totals = df.groupby(keys, sort=False)["count"].sum().sort_values(ascending=False)
        for key in totals.index:
            key_t = key if isinstance(key, tuple) else (key,)
            mask = pd.Series(True, index=df.index)
            for col, kv in zip(keys, key_t):
                mask &= df[col] == kv
            title = f"{name}[{', '.join(str(k) for k in key_t)}]"
            panels.append((title, df.loc[mask, ["value", "count"]]))
    return panels[:MAX_PANELS]


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


def histogram_figure(aggs: dict[str, tuple[str, pd.DataFrame]], style: str = "default"):
    """A Figure with one horizontal bar chart per histogram (DTrace's layout: the bucket
    values down the side, counts across), or None when there is nothing to draw."""
    panels = histogram_panels(aggs)
    if not panels:
        return None
    mstyle, Figure, _ = _matplotlib()
    with mstyle.context(style):
        ncols = 2 if len(panels) > 1 else 1
        nrows = (len(panels) + ncols - 1) // ncols
        fig = Figure(figsize=(6 * ncols, 0.4 + 2.8 * nrows), layout="constrained")
        for i, (title, frame) in enumerate(panels):
            ax = fig.add_subplot(nrows, ncols, i + 1)
            frame = frame.sort_values("value")
            ax.barh(range(len(frame)), frame["count"].to_numpy())
            ax.set_yticks(range(len(frame)), [_label(int(v)) for v in frame["value"]])
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("count")
            ax.set_ylabel("value")
    return fig


def figure_png(fig) -> bytes:
    FigureCanvasAgg = _matplotlib()[2]
    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf)
    return buf.getvalue()


def histogram_png(aggs: dict[str, tuple[str, pd.DataFrame]], style: str = "default") -> Optional[bytes]:
    fig = histogram_figure(aggs, style)
    return None if fig is None else figure_png(fig)


def as_image(fig):
    """A Figure as an IPython Image (PNG), displayable without pyplot or a backend."""
    from IPython.display import Image

    return Image(data=figure_png(fig), format="png")
