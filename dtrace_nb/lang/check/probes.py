"""Pass: probe descriptions -> probes. Each description of each clause, its macro
variables expanded, is matched in the ProbeCatalog (the only place the compiler meets
providers, and only through the generic protocol)."""

from __future__ import annotations

from dtrace_nb.errors import DCompileError, DError, DProbeError
from dtrace_nb.lang import ast
from dtrace_nb.lang.check.results import CheckedClause
from dtrace_nb.lang.check.state import CheckState
from dtrace_nb.probes import Probe


def resolve_probes(st: CheckState) -> None:
    for i, c in enumerate(st.program.clauses):
        per_spec = [_resolve(st, spec) for spec in c.probes]
        found = {p.id: p for probes in per_spec for p in probes}
        st.clauses.append(CheckedClause(i, c, list(found.values()), spec_probes=per_spec))
    if not st.clauses:
        return  # require_clauses says so, once the declarations have been checked
    st.probes = sorted({p.id: p for c in st.clauses for p in c.probes}.values(),
                       key=lambda p: p.id)
    if not st.probes:  # -Z, and nothing matched
        raise DProbeError("no probes matched", hint="dtrace-nb traces only probes that exist; "
                                                    "list them with dtrace-nb -l")
    longest = max(len(s) for p in st.probes for s in (p.provider, p.module, p.function, p.name))
    st.probe_string_size = (longest + 1 + 7) // 8 * 8


def require_clauses(st: CheckState) -> None:
    """A program of declarations only is refused after them, as dtrace(1) does (an error
    in a declaration is reported first)."""
    if not st.clauses:
        raise DCompileError("the program has no probe clauses", st.program.span or None,
                            tag="D_EMPTY", dtrace="empty D program translation unit",
                            at_end=True,
                            hint="write at least one clause, e.g. BEGIN { exit(0); }")


def _resolve(st: CheckState, spec: ast.ProbeSpec) -> list[Probe]:
    text = st.macros.expand(spec)
    try:
        probes = st.catalog.match(text, st.bind_ctx)
    except DError as err:
        if err.span is not None:
            raise
        raise type(err)(err.message, spec.span, err.hint, err.detail, tag=err.tag,
                        dtrace=err.dtrace) from None
    if not probes and st.options["zdefs"]:
        return []  # -Z: a description that matches nothing enables nothing
    if not probes:
        # dtrace(1) names the description with all four fields (`::BEGIN:tick-1`)
        full = ":" * max(0, 3 - _fields(text)) + text
        raise DProbeError(f"probe description {text} does not match any probes",
                          spec.span, tag="D_PDESC_ZERO",
                          dtrace=f"probe description {full} does not match any probes",
                          hint="list what exists with dtrace-nb -l -n 'PATTERN'")
    return probes


def _fields(text: str) -> int:
    """How many fields separated by colons a description has (an escaped colon is not a
    separator)."""
    return text.replace("\\:", "").count(":")
