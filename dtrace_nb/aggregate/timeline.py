"""Aggregations over time: one sample per refresh, for `result.timeline('name')`.

Each sample keeps one number per key (values.sample_value: the value for count/sum/min/max,
the average for avg, the standard deviation for stddev, the number of events for
histograms). History is bounded (MAX_SAMPLES, and the MAX_KEYS keys with the largest
values in a sample) so a long trace cannot grow without limit; what was cut is counted and
said.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Optional

from dtrace_nb.aggregate.values import sample_value

if TYPE_CHECKING:  # pandas is imported when a timeline is read: the CLI never needs it
    import pandas as pd

MAX_SAMPLES = 3600
MAX_KEYS = 100


def _key_label(key: tuple) -> str:
    return ", ".join(str(k) for k in key) if key else "value"


class Timeline:
    def __init__(self, max_samples: int = MAX_SAMPLES, max_keys: int = MAX_KEYS):
        self.max_samples = max_samples
        self.max_keys = max_keys
        self._samples: dict[str, list[tuple[float, dict[str, float]]]] = {}
        self._funcs: dict[str, str] = {}
        self.dropped_samples = 0
        self.dropped_keys = 0
        self._lock = threading.Lock()

    def add(self, snapshot: dict, when: Optional[float] = None) -> None:
        """One sample of every aggregation in `snapshot` (name -> AggSnapshot)."""
        when = time.time() if when is None else when
        with self._lock:
            for name, snap in snapshot.items():
                top = snap.largest(self.max_keys) if hasattr(snap, "largest") else None
                if top is not None:  # count/sum/min/max: picked from the arrays
                    keys, values = top
                    self.dropped_keys += len(snap) - len(keys)
                    row = {_key_label(k): float(v) for k, v in zip(keys, values)}
                else:
                    row = {_key_label(k): sample_value(snap.func, v)
                           for k, v in zip(snap.keys, snap.values)}
                    if len(row) > self.max_keys:  # keep the largest
                        self.dropped_keys += len(row) - self.max_keys
                        row = dict(sorted(row.items(), key=lambda kv: kv[1])[-self.max_keys:])
                samples = self._samples.setdefault(name, [])
                samples.append((when, row))
                self._funcs[name] = snap.func
                if len(samples) > self.max_samples:
                    del samples[0]
                    self.dropped_samples += 1

    def names(self) -> list[str]:
        return list(self._samples)

    def frame(self, name: str, rate: bool = False) -> "pd.DataFrame":
        """Samples of aggregation `name` (with or without '@'): a DataFrame indexed by wall
        time, one column per key. rate=True: change per second between samples (what a
        count is doing now), for count/sum and histogram totals."""
        key = name[1:] if name.startswith("@") else name
        with self._lock:
            samples = list(self._samples.get(key, []))
        if not samples and key == "" and len(self._samples) == 1:
            samples = next(iter(self._samples.values()))
        if not samples:
            known = ", ".join("@" + n for n in self._samples) or "none"
            raise KeyError(f"no timeline for @{key} (aggregations with samples: {known})")
        import pandas as pd  # here, not at the top: the CLI never reads a timeline

        index = pd.to_datetime([t for t, _ in samples], unit="s")
        df = pd.DataFrame([row for _, row in samples], index=index).fillna(0.0)
        df.index.name = "time"
        if rate:
            secs = pd.Series(index.astype("int64") / 1e9, index=index)
            df = df.diff().div(secs.diff(), axis=0).iloc[1:]
        return df

    def to_dict(self) -> dict:
        with self._lock:
            return {"samples": {n: [(t, dict(r)) for t, r in s] for n, s in self._samples.items()},
                    "funcs": dict(self._funcs)}

    @classmethod
    def from_dict(cls, data: dict) -> "Timeline":
        tl = cls()
        tl._samples = {n: [(t, dict(r)) for t, r in s] for n, s in data.get("samples", {}).items()}
        tl._funcs = dict(data.get("funcs", {}))
        return tl
