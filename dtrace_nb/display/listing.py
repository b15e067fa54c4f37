"""Probe listings (`-l`, `-lv`): dtrace(1)'s table as text, and the same as a DataFrame."""

from __future__ import annotations

import pandas as pd

from dtrace_nb.probes import BindContext, Probe, ProbeCatalog

_ROW = "%5s %10s %17s %33s %s\n"  # dtrace(1)'s list format


def _stability(catalog: ProbeCatalog, probe: Probe) -> str:
    # A provider may declare how stable its probe names and arguments are (DTrace's
    # Stable / Evolving / Unstable); a provider that says nothing is "Unstable".
    return getattr(catalog.owner(probe), "stability", "Unstable")


def _matching(patterns: list[str] | None, catalog: ProbeCatalog,
              ctx: BindContext) -> list[Probe]:
    probes: dict[int, Probe] = {}
    for pat in patterns or [":::"]:
        for p in catalog.match(pat.strip(), ctx):
            probes[p.id] = p
    return sorted(probes.values(), key=lambda p: p.id)


def probe_frame(patterns: list[str] | None = None, catalog: ProbeCatalog | None = None,
                verbose: bool = False, ctx: BindContext = BindContext()) -> pd.DataFrame:
    catalog = catalog or ProbeCatalog()
    rows = []
    for p in _matching(patterns, catalog, ctx):
        row = {"ID": p.id, "PROVIDER": p.provider, "MODULE": p.module, "FUNCTION": p.function,
               "NAME": p.name}
        if verbose:
            row["ARGS"] = ", ".join(f"{a.dtrace_type} {a.name}".strip() for a in p.args)
            row["STABILITY"] = _stability(catalog, p)
        rows.append(row)
    cols = ["ID", "PROVIDER", "MODULE", "FUNCTION", "NAME"]
    if verbose:
        cols += ["ARGS", "STABILITY"]
    return pd.DataFrame(rows, columns=cols)


def probe_table(patterns: list[str] | None = None, catalog: ProbeCatalog | None = None,
                verbose: bool = False, ctx: BindContext = BindContext()) -> str:
    """dtrace -l's table; with verbose (-lv), each probe's stability and argument types."""
    catalog = catalog or ProbeCatalog()
    lines = [_ROW % ("ID", "PROVIDER", "MODULE", "FUNCTION", "NAME")]
    for p in _matching(patterns, catalog, ctx):
        lines.append(_ROW % (p.id, p.provider, p.module, p.function, p.name))
        if verbose:
            stab = _stability(catalog, p)
            lines.append("\n\tProbe Description Attributes\n"
                         f"\t\tIdentifier Names: {stab}\n"
                         f"\t\tData Semantics:   {stab}\n"
                         "\t\tDependency Class: Common\n\n"
                         "\tArgument Attributes\n"
                         f"\t\tIdentifier Names: {stab}\n"
                         f"\t\tData Semantics:   {stab}\n"
                         "\t\tDependency Class: Common\n\n"
                         "\tArgument Types\n")
            if p.args:
                lines.extend(f"\t\targs[{i}]: {a.dtrace_type}\n" for i, a in enumerate(p.args))
            else:
                lines.append("\t\tNone\n")
            lines.append("\n")
    return "".join(lines)
