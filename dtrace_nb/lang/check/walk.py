"""One walk over the clauses' statements: the expression checker and what the walk
collects (aggregations in program order, whether exit() is used, destructive actions).
The pass that learns variable types walks once leniently and keeps only the variables;
the checking pass walks strictly and keeps everything."""

from __future__ import annotations

from dataclasses import dataclass, field

from dtrace_nb.lang import ast
from dtrace_nb.lang.check.exprs import ExprChecker
from dtrace_nb.lang.check.results import AggInfo


@dataclass
class Walk:
    x: ExprChecker
    aggs: dict[str, AggInfo] = field(default_factory=dict)
    uses_exit: bool = False
    destructive: list[ast.Call] = field(default_factory=list)

    @property
    def lenient(self) -> bool:
        return self.x.lenient
