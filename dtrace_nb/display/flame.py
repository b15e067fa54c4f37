"""Flame graphs (drawn as icicles: the root at the top) of stack aggregations such as
`@[ustack()] = count()` or `@[stack()] = count()`, with matplotlib's object API.

Frames are merged by function (the `+0x..` offset is dropped), so every sample of a
function counts towards one box; a box's width is its share of all samples.
"""

from __future__ import annotations

import re
import zlib
from typing import Optional

import pandas as pd

_OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def stack_frames(text: str) -> list[str]:
    """Frames of one printed stack, outermost (root) first, offsets removed."""
    names = [_OFFSET.sub("", ln.strip()) for ln in text.splitlines() if ln.strip()]
    return names[::-1]


def stack_tree(df: pd.DataFrame, stack_col: Optional[str] = None, count_col: str = "count"):
    """{frame: [samples, children]} from an aggregation frame with a stack key column."""
    col = stack_col or next(c for c in df.columns if c != count_col)
    root: dict = {}
    for text, n in zip(df[col], df[count_col]):
        level = root
        for name in stack_frames(str(text)) or ["[no frames]"]:
            node = level.setdefault(name, [0, {}])
            node[0] += int(n)
            level = node[1]
    return root


def flame_figure(df: pd.DataFrame, stack_col: Optional[str] = None, count_col: str = "count",
                 title: str = "", style: str = "default", min_share: float = 0.005):
    """A Figure with one box per (stack position, function), the root at the top; boxes
    under `min_share` of all samples are left out (their time stays in the parent)."""
    from matplotlib import colormaps
    from matplotlib import style as mstyle
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    tree = stack_tree(df, stack_col, count_col)
    total = sum(node[0] for node in tree.values())
    boxes = []  # (x, depth, width, name, samples)

    def walk(level: dict, x: float, depth: int) -> None:
        for name, (n, children) in sorted(level.items()):
            w = n / total if total else 0
            if w >= min_share:
                boxes.append((x, depth, w, name, n))
                walk(children, x, depth + 1)
            x += w

    walk(tree, 0.0, 0)
    depth = max((d for _, d, *_ in boxes), default=0) + 1
    with mstyle.context(style):
        fig = Figure(figsize=(11, 0.6 + 0.32 * depth), layout="constrained")
        ax = fig.add_subplot()
        cmap = colormaps["YlOrRd"]
        for x, d, w, name, n in boxes:
            # a stable colour per function (str hash() changes from process to process)
            color = cmap(0.2 + 0.5 * (zlib.crc32(name.encode()) % 100) / 100)
            ax.add_patch(Rectangle((x, d), w, 0.95, facecolor=color, edgecolor="white",
                                   linewidth=0.5))
            if w > 0.04:
                label = name if len(name) * 0.0075 < w else name[: max(1, int(w / 0.0075) - 2)] + ".."
                ax.text(x + 0.004, d + 0.47, label, va="center", fontsize=8, clip_on=True)
        ax.set_xlim(0, 1)
        ax.set_ylim(depth, 0)  # icicle: root on top
        ax.set_yticks([])
        ax.set_xlabel(f"share of {total} samples")
        ax.set_title(title or "stacks (root at the top)", fontsize=10)
    return fig
