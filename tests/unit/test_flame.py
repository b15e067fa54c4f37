"""flame_boxes (numpy, level by level) against a plain model: a tree of dicts walked
depth first, siblings by name, a box under the threshold left out with what is above it."""

from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from dtrace_nb.display.flame import flame_boxes


def model_boxes(df: pd.DataFrame, min_share: float) -> list[tuple]:
    root: dict = {}
    for text, n in zip(df["stack"], df["count"]):
        frames = [re.sub(r"\+0x[0-9a-f]+$", "", ln.strip()) for ln in text.splitlines()
                  if ln.strip()][::-1] or ["[no frames]"]
        level = root
        for name in frames:
            node = level.setdefault(name, [0, {}])
            node[0] += n
            level = node[1]
    total = sum(node[0] for node in root.values())
    out = []

    def walk(level, x, depth):
        for name, (n, children) in sorted(level.items()):
            w = n / total
            if w >= min_share:
                out.append((x, depth, w, name, n))
                walk(children, x, depth + 1)
            x += w
    walk(root, 0.0, 0)
    return out


def random_stacks(rnd: random.Random, n: int) -> pd.DataFrame:
    funcs = [f"m{i % 3}`f{i}" for i in range(12)]
    texts = []
    for _ in range(n):
        depth = rnd.randint(0, 6)
        frames = [f"{rnd.choice(funcs)}+0x{rnd.choice([4, 16, 255]):x}" if rnd.random() < 0.8
                  else rnd.choice(funcs) for _ in range(depth)]
        texts.append("\n" + "".join(f"              {f}\n" for f in frames))
    return pd.DataFrame({"stack": texts, "count": [rnd.randint(1, 40) for _ in texts]})


def _key(box):
    x, depth, w, name, n = box
    return (depth, round(x, 9), name)


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("min_share", [0.0, 0.005, 0.05])
def test_boxes_equal_the_models(seed, min_share):
    df = random_stacks(random.Random(seed), random.Random(seed).randint(1, 300))
    boxes, total = flame_boxes(df, min_share=min_share)
    want = model_boxes(df, min_share)
    assert total == int(df["count"].sum())
    assert len(boxes) == len(want)
    for got, exp in zip(sorted(boxes, key=_key), sorted(want, key=_key)):
        assert got[1] == exp[1] and got[3] == exp[3] and got[4] == exp[4]
        assert got[0] == pytest.approx(exp[0], abs=1e-9)
        assert got[2] == pytest.approx(exp[2], abs=1e-12)


def test_an_empty_aggregation_has_no_boxes():
    assert flame_boxes(pd.DataFrame({"stack": [], "count": []})) == ([], 0)
