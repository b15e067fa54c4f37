"""Result: what a finished (or interrupted) session leaves for the user to analyse."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from dtrace_nb.aggregate.timeline import Timeline
from dtrace_nb.display.flame import flame_figure
from dtrace_nb.display.plots import histogram_figure
from dtrace_nb.display.tables import clean_columns, fmt
from dtrace_nb.errors import DError
from dtrace_nb.result import recording
from dtrace_nb.session import RunOutcome, Session
from dtrace_nb.text.messages import is_problem_message
from dtrace_nb.text.messages import is_fault_message


def budget_frame(rows) -> pd.DataFrame:
    """--budget's rows (runtime.budget.AttachmentCost) as a DataFrame, costliest first."""
    return pd.DataFrame([{"probes": r.probes, "attachment": r.attachment, "runs": r.runs,
                          "runs_per_s": r.runs_per_second, "ns_per_run": r.ns_per_run,
                          "cpu_share": r.cpu_share} for r in rows],
                        columns=["probes", "attachment", "runs", "runs_per_s", "ns_per_run",
                                 "cpu_share"])


class Aggregations(dict):
    """name -> DataFrame. Keys are D names ('@bytes', '@' for the anonymous one);
    `aggs['bytes']` works too."""

    def __missing__(self, key):
        if isinstance(key, str) and not key.startswith("@") and "@" + key in self:
            return self["@" + key]
        raise KeyError(key)


@dataclass
class Result:
    aggregations: Aggregations
    output: str
    drops: dict[tuple[str, int], int]
    messages: list[str] = field(default_factory=list)
    exit_status: Optional[int] = None
    stop_reason: str = ""
    interrupted: bool = False
    error: Optional[DError] = None
    duration: float = 0.0
    probes_enabled: int = 0
    records: int = 0
    target_pid: Optional[int] = None
    target_output: str = ""
    c_source: str = ""
    source: str = ""
    funcs: dict[str, str] = field(default_factory=dict)  # '@name' -> aggregating function
    history: Optional[Timeline] = None
    plot_style: str = "default"
    # what the live view showed at each refresh: (unix time, status, frames, funcs)
    refreshes: list = field(default_factory=list)
    replayed_from: str = ""  # the recording this Result was played back from
    # records kept as columns (SessionConfig(record_frames=True)):
    # (clause index, probe text) -> DataFrame; not saved in recordings
    record_frames: dict = field(default_factory=dict)
    # --budget: each attachment's cost as the kernel counted it (not saved in recordings)
    budget: Optional[pd.DataFrame] = None

    def save(self, path: str) -> str:
        """Record this session to a JSON file that `%%dtrace --replay FILE` plays back."""
        return recording.save(self, path)

    @classmethod
    def load(cls, path: str) -> "Result":
        fields = recording.load(path)
        fields.pop("extra")
        fields["aggregations"] = Aggregations(fields["aggregations"])
        return cls(**fields)

    @classmethod
    def from_session(cls, session: Session, outcome: Optional[RunOutcome] = None) -> "Result":
        """What a session that has stopped leaves; `outcome`: how its run() ended."""
        outcome = outcome or RunOutcome()
        snap = session._final or {}
        aggs = Aggregations()
        funcs = {}
        for name, s in snap.items():
            aggs["@" + name] = clean_columns(s.to_frame())
            funcs["@" + name] = s.func
        target = session.target
        return cls(
            aggregations=aggs,
            output="".join(session.output),
            drops=dict(session._drops),
            messages=list(session.messages),  # drop reports included, as they came
            exit_status=session.exit_status,
            stop_reason=session.stop_reason,
            interrupted=outcome.interrupted,
            error=outcome.error,
            duration=(session.ended_at - session.started_at) if session.started_at else 0.0,
            probes_enabled=session.probes_enabled,
            records=session.records,
            target_pid=target.pid if target else None,
            target_output="".join(target.output) if target else "",
            c_source=session.program.c_source if session.program else "",
            source=session.cfg.source,
            funcs=funcs,
            history=session.timeline,
            record_frames=session.records_frames(),
            budget=budget_frame(session.budget) if session.cfg.budget else None,
        )

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def df(self) -> pd.DataFrame:
        """The first aggregation's DataFrame (the usual case of one aggregation)."""
        if not self.aggregations:
            return pd.DataFrame()
        return next(iter(self.aggregations.values()))

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.aggregations[name]

    def records_frame(self, clause=None) -> pd.DataFrame:
        """The records of one clause as a DataFrame (a session run with record_frames=True
        keeps the records of clauses that only trace()/printf()/tracemem() as columns
        instead of text): cpu, probe, then one column per recorded value ('trace',
        'printf_1', 'printf_2'...). `clause`: its index in the program (0 = the first), or
        its probe description as written; None when only one clause recorded."""
        frames = self.record_frames
        if clause is None:
            if len(frames) != 1:
                raise KeyError(f"say which clause: {[k for k in frames]}" if frames else
                               "no records were kept as columns (record_frames=True)")
            return next(iter(frames.values()))
        for (index, text), df in frames.items():
            if clause == index or clause == text:
                return df
        raise KeyError(f"no records kept for clause {clause!r}; have {list(frames)}")

    def timeline(self, name: str = "", rate: bool = False) -> pd.DataFrame:
        """Aggregation `name` sampled at every refresh of the live view (and at the end):
        indexed by time, one column per key. rate=True gives the change per second."""
        if self.history is None:
            raise KeyError("this result has no timeline")
        return self.history.frame(name, rate=rate)

    def figure(self, log: Optional[bool] = None, keys: Optional[int] = None):
        """The histograms (quantize/lquantize/llquantize) as a matplotlib Figure, or None;
        a notebook shows it with or without pyplot. `log`: counts on a log scale (None:
        when they span more than two orders of magnitude); `keys`: panels drawn (6)."""
        return histogram_figure(self._histograms(), self.plot_style, log=log, keys=keys)

    def flamegraph(self, name: str = "", title: str = ""):
        """A flame graph (icicle) Figure of a stack aggregation (`@[ustack()] = count()`)."""
        df = self.aggregations[name] if name else self.df
        return flame_figure(df, title=title or (name or "stacks"), style=self.plot_style)

    def _histograms(self) -> dict:
        return {n: (self.funcs.get(n, ""), df) for n, df in self.aggregations.items()}

    def __repr__(self) -> str:
        return self._text()

    def _text(self) -> str:
        parts = []
        if self.error is not None:
            parts.append(self.error.render(self.source))
        parts.append(self.output)
        parts.extend(m + "\n" for m in self.messages if is_problem_message(m))
        return "".join(parts).rstrip("\n") + "\n" if any(parts) else "(no output)\n"

    def summary(self) -> str:
        """One line: how it ended, how long, what it saw."""
        state = "failed" if self.error is not None else (
            self.stop_reason if self.stop_reason in ("stopped", "interrupted") else
            "done" + (f" ({self.stop_reason})" if self.stop_reason else ""))
        errors = sum(1 for m in self.messages if is_fault_message(m))
        drops = sum(self.drops.values()) if self.drops else 0
        records = f"{fmt(self.records)} records · " \
            if self.records or not self.aggregations else ""
        return (f"{state} · {self.duration:.2f} s · {records}"
                f"{fmt(drops)} drops · {fmt(errors)} errors · "
                f"{fmt(self.probes_enabled)} probes")

    def _repr_html_(self) -> str:
        """A compact summary (the cell showed the tables already): how it ended, and each
        aggregation's name, function, key count and top entry."""
        rows = []
        for name, df in self.aggregations.items():
            func = self.funcs.get(name, "")
            rows.append(f"<li><code>r[{html.escape(repr(name))}]</code> {html.escape(func)}, "
                        f"{len(df):,} rows</li>")
        more = "<ul style='margin:2px 0'>" + "".join(rows) + "</ul>" if rows else ""
        lines = self.output.count("\n")
        out = f" · {lines:,} lines of output (r.output)" if lines else ""
        return (f"<div style='font-family:monospace'><b>dtrace-nb Result</b> &middot; "
                f"{html.escape(self.summary())}{html.escape(out)}</div>{more}")

def run_session(session: Session, duration: Optional[float] = None, **run_options) -> Result:
    """Run a session to its end (Session.run's options) and return its Result."""
    return Result.from_session(session, session.run(duration=duration, **run_options))
