"""The explain view: what a D program asks for, and how this kernel will provide it.

For each clause: the abstract probes it matched, the provider and kernel mechanism serving
each, how every argN / args[N] the clause reads is fetched; then the BPF maps and the
generated C (syntax-highlighted in HTML). Built from compile_program, so it needs no
privileges and loads nothing: `%%dtrace --explain`, `dtrace-nb -e -S`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from dtrace_nb.lang import ast
from dtrace_nb.runtime.compile import ProgramRequest, compile_program

_MAP = re.compile(r"^\s*BPF_(?P<kind>[A-Z_]+)\((?P<args>.*)\);", re.M)
_MAP_KINDS = {"HASH": "hash", "PERCPU_HASH": "per-CPU hash", "ARRAY": "array",
              "PERCPU_ARRAY": "per-CPU array", "RINGBUF_OUTPUT": "ring buffer",
              "STACK_TRACE": "stack traces"}


# dtrace-nb's own maps (codegen/__init__.py), for people reading the explain view
_PURPOSES = {
    "dtnb_drops": "drop counters, per CPU",
    "dtnb_state": "exit() flag, walltimestamp offset, $target and $pid",
    "dtnb_cells": "loop state of string subroutines",
    "dtnb_probes": "probe descriptions for probeprov/probemod/probefunc/probename",
    "dtnb_zero": "a zero value to insert new aggregation keys with",
    "dtnb_scratch": "string scratch space",
    "dtnb_rb": "records for the consumer (printf, trace, printa, exit...)",
    "dtnb_sel_": "which probe fired, by the binding's selector value",
    "dtnb_globals": "global scalar variables",
    "dtnb_this": "clause-local this-> variables",
    "dtnb_stacks": "stack() / ustack() traces",
    "dtnb_spec": "speculation buffers",
}


@dataclass
class ProbeUse:
    description: str
    provider: str
    mechanism: str


@dataclass
class ArgUse:
    name: str  # "arg2", "args[0]"
    how: list[str]  # one line per distinct way the serving bindings fetch it


@dataclass
class ClauseExplanation:
    index: int
    line: int
    descriptions: list[str]
    probes: list[ProbeUse] = field(default_factory=list)
    args: list[ArgUse] = field(default_factory=list)
    d_text: str = ""  # the clause as the user wrote it
    c_text: str = ""  # the generated C of the clause (in the first function serving it)


@dataclass
class MapInfo:
    name: str
    kind: str
    detail: str


@dataclass
class Explanation:
    clauses: list[ClauseExplanation]
    maps: list[MapInfo]
    c_source: str

    def text(self, with_c: bool = True) -> str:
        out = []
        for c in self.clauses:
            out.append(f"clause {c.index + 1} (line {c.line}): {', '.join(c.descriptions)}")
            out.append(f"  matched {len(c.probes)} probe{'s' * (len(c.probes) != 1)}")
            for p in c.probes[:20]:
                out.append(f"    {p.description:<44} {p.provider:<8} {p.mechanism}")
            if len(c.probes) > 20:
                out.append(f"    ... and {len(c.probes) - 20} more")
            for a in c.args:
                for how in a.how:
                    out.append(f"  {a.name:<8} {how}")
        out.append("maps")
        for m in self.maps:
            out.append(f"  {m.name:<20} {m.kind:<14} {m.detail}")
        if with_c:
            out.append("generated C")
            out.append(self.c_source)
        return "\n".join(out) + "\n"

    def __repr__(self) -> str:
        return self.text(with_c=False)

    def _repr_html_(self) -> str:
        """The user's clauses first, each beside its generated C; then the probes, the
        arguments and the maps; the whole C program (prelude, helpers) folded."""
        parts = []
        for c in self.clauses:
            parts.append(f"<h4>clause {c.index + 1} (line {c.line}): "
                         f"<code>{html.escape(', '.join(c.descriptions))}</code></h4>")
            if c.d_text or c.c_text:
                parts.append("<div style='display:grid;grid-template-columns:minmax(0,2fr) "
                             "minmax(0,3fr);gap:12px;align-items:start'>"
                             f"<div><b>D</b><pre>{html.escape(c.d_text)}</pre></div>"
                             f"<div><b>generated C</b>{highlight_c(c.c_text)}</div></div>")
            rows = "".join(f"<tr><td><code>{html.escape(p.description)}</code></td>"
                           f"<td>{html.escape(p.provider)}</td><td>{html.escape(p.mechanism)}"
                           "</td></tr>" for p in c.probes[:50])
            more = (f"<tr><td colspan=3>... and {len(c.probes) - 50} more</td></tr>"
                    if len(c.probes) > 50 else "")
            parts.append("<table><tr><th>probe</th><th>provider</th><th>kernel mechanism</th>"
                         f"</tr>{rows}{more}</table>")
            if c.args:
                rows = "".join(f"<tr><td><code>{html.escape(a.name)}</code></td><td>"
                               + "<br>".join(html.escape(h) for h in a.how) + "</td></tr>"
                               for a in c.args)
                parts.append(f"<table><tr><th>argument</th><th>fetched as</th></tr>{rows}</table>")
        rows = "".join(f"<tr><td><code>{html.escape(m.name)}</code></td><td>{html.escape(m.kind)}"
                       f"</td><td><code>{html.escape(m.detail)}</code></td></tr>" for m in self.maps)
        parts.append(f"<h4>maps</h4><table><tr><th>map</th><th>kind</th><th>declaration</th></tr>"
                     f"{rows}</table>")
        n = len(self.c_source.splitlines())
        parts.append(f"<details><summary>the whole generated C ({n:,} lines: prelude, "
                     "helpers, maps, one function per probe binding)</summary>"
                     + highlight_c(self.c_source) + "</details>")
        return "\n".join(parts)


def clause_c(c_source: str, index: int) -> str:
    """The C generated for clause `index` (0-based): from its `/* clause N (...` comment to
    its end label, in the first function that serves it."""
    lines = c_source.splitlines()
    mark = f"/* clause {index + 1} ("
    for i, line in enumerate(lines):
        if line.strip().startswith(mark):
            for j in range(i + 1, len(lines)):
                if re.match(r"\s*dt_end_\d+:", lines[j]):
                    return _dedent(lines[i:j + 1])
            return _dedent(lines[i:])
    return ""


def _dedent(lines: list[str]) -> str:
    import textwrap

    return textwrap.dedent("\n".join(lines).expandtabs(4))


def clause_text(source: str, span) -> str:
    """The clause's lines as written."""
    lines = source.splitlines()
    end = getattr(span, "end_line", span.line) or span.line
    return "\n".join(lines[span.line - 1:end])


def highlight_c(source: str) -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import CLexer

    return highlight(source, CLexer(), HtmlFormatter(noclasses=True))


def _args_read(clause: ast.Clause, annotations) -> list[tuple[str, int]]:
    """(name, index) of every argN and args[N] the clause reads, in first-use order."""
    seen: dict[str, int] = {}
    for node in ast.walk(clause):
        if isinstance(node, ast.Ident) and re.fullmatch(r"arg\d", node.name):
            seen.setdefault(node.name, int(node.name[3:]))
        elif isinstance(node, ast.Index) and annotations.arg(node) is not None:
            n = annotations.arg(node).n
            seen.setdefault(f"args[{n}]", n)
    return list(seen.items())


def explain_program(checked, program) -> Explanation:
    clauses = []
    for cc in checked.clauses:
        ce = ClauseExplanation(cc.index, cc.clause.span.line,
                               [p.text for p in cc.clause.probes],
                               d_text=clause_text(checked.source, cc.clause.span),
                               c_text=clause_c(program.c_source, cc.index))
        served = [f for f in program.functions if cc.index in f.clauses]
        ids = {p.id for p in cc.probes}
        for f in served:
            for p in f.binding.probes:
                if p.id in ids:
                    ce.probes.append(ProbeUse(p.description, p.provider,
                                              f.binding.attach.describe()))
        for name, n in _args_read(cc.clause, checked.annotations):
            how = []
            for f in served:
                notes = f.binding.arg_notes
                note = notes[n] if n < len(notes) else (
                    "0 (the probe has no such argument)" if n >= len(f.binding.arg_exprs)
                    else "a C expression of the binding")
                line = f"{f.binding.attach.describe()}: {note}"
                if line not in how:
                    how.append(line)
            ce.args.append(ArgUse(name, how))
        clauses.append(ce)
    purposes = dict(_PURPOSES)
    for agg in program.resources.aggs.values():
        purposes[agg.map_name] = f"@{agg.info.name} = {agg.info.func}()"
    for var in program.resources.vars.values():
        if getattr(var, "map_name", ""):
            purposes[var.map_name] = {"self": "thread-local self-> variable",
                                      "assoc": "associative array"}.get(var.storage,
                                                                        f"{var.storage} variable")
    maps = []
    for m in _MAP.finditer(program.c_source):
        args = [a.strip() for a in m.group("args").split(",")]
        name = args[0]
        purpose = next((v for k, v in purposes.items() if name == k or name.startswith(k)), "")
        maps.append(MapInfo(name, _MAP_KINDS.get(m.group("kind"), m.group("kind").lower()),
                            ", ".join(args[1:]) + (f"  ({purpose})" if purpose else "")))
    return Explanation(clauses, maps, program.c_source)


def explain(cfg: ProgramRequest, catalog=None, target_pid=None) -> Explanation:
    checked, program = compile_program(cfg, catalog, target_pid)
    return explain_program(checked, program)
