"""Flame graphs (drawn as icicles: the root at the top) of stack aggregations such as
`@[ustack()] = count()` or `@[stack()] = count()`, with matplotlib's object API.

Frames are merged by function (the `+0x..` offset is dropped), so every sample of a
function counts towards one box; a box's width is its share of all samples.
"""

from __future__ import annotations

import re
import zlib
from typing import Optional

import numpy as np
import pandas as pd

_OFFSET = re.compile(r"\+0x[0-9a-f]+$")


def stack_frames(text: str) -> list[str]:
    """Frames of one printed stack, outermost (root) first, offsets removed."""
    names = [_OFFSET.sub("", ln.strip()) for ln in text.splitlines() if ln.strip()]
    return names[::-1]


def flame_boxes(df: pd.DataFrame, stack_col: Optional[str] = None, count_col: str = "count",
                min_share: float = 0.005) -> tuple[list[tuple], int]:
    """The boxes of the graph, (x, depth, width, function, samples), and the samples in all.
    Siblings are ordered by name; a box under `min_share` of all samples is left out with
    everything above it (its width stays in its parent). Built level by level with numpy:
    100k distinct stacks hold over a million frames, too many for a loop in Python."""
    col = stack_col or next(c for c in df.columns if c != count_col)
    counts = np.asarray(df[count_col].to_numpy(), dtype=np.int64)
    total = int(counts.sum())
    if not len(df) or total <= 0:
        return [], total
    lines = pd.Series(df[col].astype(str).to_numpy(), copy=False).str.split("\n").explode()
    stack = lines.index.to_numpy(dtype=np.int64)
    codes, distinct = pd.factorize(lines.to_numpy())
    clean = pd.Series(distinct).str.strip().str.replace(_OFFSET, "", regex=True).to_numpy()
    keep = clean[codes] != ""
    stack, names_of_frames = stack[keep], clean[codes[keep]]
    # a stack without frames still counts, as one "[no frames]" box
    empty = np.setdiff1d(np.arange(len(df)), stack)
    if len(empty):
        stack = np.concatenate([stack, empty])
        names_of_frames = np.concatenate([names_of_frames,
                                          np.full(len(empty), "[no frames]", dtype=object)])
        order = np.argsort(stack, kind="stable")
        stack, names_of_frames = stack[order], names_of_frames[order]
    fcode, fnames = pd.factorize(names_of_frames)
    name_rank = np.empty(len(fnames), dtype=np.int64)
    name_rank[np.argsort(np.asarray(fnames, dtype=object).astype(str), kind="stable")] = \
        np.arange(len(fnames))
    # printed innermost first: depth counts from the root, the last line of each stack
    n = len(stack)
    starts = np.r_[0, np.flatnonzero(np.diff(stack)) + 1]
    lens = np.diff(np.r_[starts, n])
    depth = np.repeat(lens, lens) - 1 - (np.arange(n) - np.repeat(starts, lens))
    by_depth = np.argsort(depth, kind="stable")
    level_starts = np.searchsorted(depth[by_depth], np.arange(depth.max() + 2))
    # per stack: the node (box) its frames so far lead to, its x; -1: left out
    node_of = np.zeros(len(df), dtype=np.int64)
    x_of_node = np.zeros(1)
    boxes = []
    next_id = 1
    for d in range(depth.max() + 1):
        idx = by_depth[level_starts[d]:level_starts[d + 1]]
        st = stack[idx]
        alive = node_of[st] >= 0
        idx, st = idx[alive], st[alive]
        if not len(idx):
            break
        parent = node_of[st]
        key = parent * len(fnames) + fcode[idx]
        ukeys, inverse = np.unique(key, return_inverse=True)
        samples = np.bincount(inverse, weights=counts[st]).astype(np.int64)
        uparent, ucode = ukeys // len(fnames), ukeys % len(fnames)
        # siblings by name: x = the parent's x + the widths of the siblings before
        order = np.lexsort((name_rank[ucode], uparent))
        width = samples[order] / total
        group_start = np.r_[True, uparent[order][1:] != uparent[order][:-1]]
        csum = np.cumsum(width)
        before = csum - width - np.maximum.accumulate(np.where(group_start, csum - width, 0))
        x = np.empty(len(ukeys))
        x[order] = x_of_node[uparent[order]] + before
        shown = samples / total >= min_share
        ids = np.full(len(ukeys), -1, dtype=np.int64)
        ids[shown] = np.arange(next_id, next_id + int(shown.sum()))
        next_id += int(shown.sum())
        x_of_node = np.concatenate([x_of_node, x[shown]])
        node_of[st] = ids[inverse]
        for i in order[shown[order]]:
            boxes.append((float(x[i]), d, float(samples[i] / total), str(fnames[ucode[i]]),
                          int(samples[i])))
    return boxes, total


def flame_figure(df: pd.DataFrame, stack_col: Optional[str] = None, count_col: str = "count",
                 title: str = "", style: str = "default", min_share: float = 0.005):
    """A Figure with one box per (stack position, function), the root at the top; boxes
    under `min_share` of all samples are left out (their time stays in the parent)."""
    from matplotlib import colormaps
    from matplotlib import style as mstyle
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    boxes, total = flame_boxes(df, stack_col, count_col, min_share)
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
