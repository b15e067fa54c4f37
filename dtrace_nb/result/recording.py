"""Recorded sessions: a Result (with the refreshes its live view showed) as a JSON file,
which replay.py plays back through the same live display where BPF cannot load (no root,
a container, Binder).

A recording holds the D source, the final aggregations (as DataFrames and their
functions), the text output and messages, the timeline, and the frames of each live
refresh. Playing back shows those refreshes in order (compressed to a few seconds), then
returns a Result equal in content to the recorded one.

Notebooks find recordings by cell: `DTRACE_NB_RECORD=DIR` saves each %%dtrace cell's Result
as DIR/<key>.json, `DTRACE_NB_REPLAY=DIR` plays DIR/<key>.json back instead of tracing,
where <key> hashes the magic's line and the cell's text (cell_key below).
"""

from __future__ import annotations

import hashlib
import json
import os
from io import StringIO
from typing import TYPE_CHECKING, Optional

from dtrace_nb.aggregate.timeline import Timeline

if TYPE_CHECKING:  # pandas only when a recording is read: the magic imports this module
    import pandas as pd

FORMAT = "dtrace-nb recording 1"
MAX_REFRESHES = 120  # refreshes kept in a recording (evenly thinned beyond that)


def cell_key(line: str, cell: Optional[str]) -> str:
    text = " ".join(line.split()) + "\n" + (cell or "").strip()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def frame_to_json(df: "pd.DataFrame") -> dict:
    return json.loads(df.to_json(orient="split", index=False))


def frame_from_json(data: dict) -> "pd.DataFrame":
    import pandas as pd  # here: the magic imports this module at %load_ext

    return pd.read_json(StringIO(json.dumps(data)), orient="split")


def thin(refreshes: list, limit: int = MAX_REFRESHES) -> list:
    if len(refreshes) <= limit:
        return refreshes
    step = len(refreshes) / limit
    return [refreshes[int(i * step)] for i in range(limit - 1)] + [refreshes[-1]]


def save(result, path: str, extra: Optional[dict] = None) -> str:
    """Write a Result (result.Result) to `path` as a recording; `extra`: what a kind of
    Result adds (plain JSON data, given back by load() as `extra`)."""
    data = {
        "format": FORMAT,
        "source": result.source,
        "aggregations": {name: {"func": result.funcs.get(name, ""),
                                "frame": frame_to_json(df)}
                         for name, df in result.aggregations.items()},
        "output": result.output,
        "messages": result.messages,
        "drops": [[k[0], k[1], v] for k, v in result.drops.items()],
        "exit_status": result.exit_status,
        "stop_reason": result.stop_reason,
        "duration": result.duration,
        "probes_enabled": result.probes_enabled,
        "records": result.records,
        "target_output": result.target_output,
        "c_source": result.c_source,
        "timeline": result.history.to_dict() if result.history is not None else None,
        "refreshes": [{"t": t, "status": status,
                       "frames": {n: frame_to_json(df) for n, df in frames.items()},
                       "funcs": funcs}
                      for t, status, frames, funcs in thin(result.refreshes)],
    }
    if extra:
        data["extra"] = extra
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)
    return path


def _read(path: str) -> dict:
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a dtrace-nb recording")
    return data


def extras(path: str) -> dict:
    """What a kind of Result added to the recording (e.g. {'fleet': ...}); {} for one
    session's."""
    return _read(path).get("extra") or {}


def load(path: str) -> dict:
    """A recording's contents, as the keyword arguments of result.Result (its
    aggregations as a plain dict of DataFrames: the Result wraps them), and `extra`."""
    data = _read(path)
    aggs = {}
    funcs = {}
    for name, a in data["aggregations"].items():
        aggs[name] = frame_from_json(a["frame"])
        funcs[name] = a["func"]
    refreshes = [(r["t"], r["status"],
                  {n: frame_from_json(f) for n, f in r["frames"].items()}, r["funcs"])
                 for r in data.get("refreshes", [])]
    return dict(
        aggregations=aggs, output=data["output"], messages=data["messages"],
        drops={(a, int(c)): int(n) for a, c, n in data["drops"]},
        exit_status=data["exit_status"], stop_reason=data["stop_reason"],
        duration=data["duration"], probes_enabled=data["probes_enabled"],
        records=data["records"], target_output=data["target_output"],
        c_source=data["c_source"], source=data["source"], funcs=funcs,
        history=Timeline.from_dict(data["timeline"]) if data.get("timeline") else None,
        refreshes=refreshes, replayed_from=path, extra=data.get("extra") or {})


# ------------------------------------------------------------------ recorded explanations

class RecordedExplanation:
    """An explain view saved on a machine that could resolve the probes."""

    def __init__(self, text: str, html: str, source: str = ""):
        self.text_value, self.html, self.source = text, html, source

    def text(self, with_c: bool = True) -> str:
        return self.text_value

    def __repr__(self) -> str:
        return self.text_value

    def _repr_html_(self) -> str:
        return self.html


def save_explanation(explanation, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"format": FORMAT + " explain", "text": explanation.text(with_c=False),
                   "html": explanation._repr_html_()}, f)
    return path


def load_explanation(path: str) -> RecordedExplanation:
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != FORMAT + " explain":
        raise ValueError(f"{path} is not a recorded explanation")
    return RecordedExplanation(data["text"], data["html"])
