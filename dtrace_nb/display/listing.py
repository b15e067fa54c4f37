"""Probe listings (`-l`): dtrace(1)'s table as text, and the same as a DataFrame."""

from __future__ import annotations

import pandas as pd

from dtrace_nb.probes import BindContext, ProbeCatalog

_ROW = "%5s %10s %17s %33s %s\n"  # dtrace(1)'s list format


def probe_frame(patterns: list[str] | None = None, catalog: ProbeCatalog | None = None,
                verbose: bool = False) -> pd.DataFrame:
    catalog = catalog or ProbeCatalog()
    probes = {}
    for pat in patterns or [":::"]:
        for p in catalog.match(pat.strip(), BindContext()):
            probes[p.id] = p
    rows = [{"ID": p.id, "PROVIDER": p.provider, "MODULE": p.module, "FUNCTION": p.function,
             "NAME": p.name,
             **({"ARGS": ", ".join(f"{a.dtrace_type} {a.name}".strip() for a in p.args)}
                if verbose else {})}
            for p in sorted(probes.values(), key=lambda p: p.id)]
    cols = ["ID", "PROVIDER", "MODULE", "FUNCTION", "NAME"] + (["ARGS"] if verbose else [])
    return pd.DataFrame(rows, columns=cols)


def probe_table(patterns: list[str] | None = None, catalog: ProbeCatalog | None = None) -> str:
    df = probe_frame(patterns, catalog)
    lines = [_ROW % ("ID", "PROVIDER", "MODULE", "FUNCTION", "NAME")]
    lines.extend(_ROW % (r.ID, r.PROVIDER, r.MODULE, r.FUNCTION, r.NAME)
                 for r in df.itertuples(index=False))
    return "".join(lines)
