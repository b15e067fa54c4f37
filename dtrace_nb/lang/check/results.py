"""What checking produces: the program's aggregations, variables and clauses with their
probes, and the annotations of the tree (a side table, as bpftrace's TypeMap: the AST
stays as the parser made it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import ACTIONS, RECORDING_ACTIONS
from dtrace_nb.lang.options import Options
from dtrace_nb.lang.types import DType
from dtrace_nb.probes import MemberInfo, Probe


@dataclass
class AggInfo:
    """One aggregation of the program (`@name`)."""

    name: str
    index: int
    func: str
    key_types: list[DType]
    key_names: list[str]
    span: ast.Span
    # lquantize (base, limit, step); llquantize (factor, low, high, nsteps)
    params: tuple[int, ...] = ()


@dataclass
class Variable:
    """A D variable: scope 'global' (scalar or, with key_types, associative array), 'self'
    (thread-local) or 'this' (clause-local)."""

    scope: str
    name: str
    type: DType
    span: ast.Span
    key_types: Optional[list[DType]] = None
    index: int = 0

    @property
    def is_assoc(self) -> bool:
        return self.key_types is not None

    @property
    def label(self) -> str:
        return {"self": "self->", "this": "this->"}.get(self.scope, "") + self.name


@dataclass(frozen=True)
class ArgRef:
    """`args[N]` resolved: the argument number, and whether its string is in user memory."""

    n: int
    user_string: bool = False


class Annotations:
    """What the checker learned about nodes of the tree, keyed by node identity (nodes
    compare and hash by identity): every expression's type, the variable a reference or
    assignment target names, the argument `args[N]` reads, the provider's translated member
    `args[N]->m` reads, a macro variable's value and a sizeof's size."""

    def __init__(self) -> None:
        self.types: dict[ast.Node, DType] = {}
        self.vars: dict[ast.Node, Variable] = {}
        self.args: dict[ast.Node, ArgRef] = {}
        self.members: dict[ast.Node, MemberInfo] = {}
        self.macros: dict[ast.Node, Union[int, str]] = {}
        self.sizes: dict[ast.Node, int] = {}

    def type(self, e: ast.Node) -> DType:
        return self.types[e]

    def type_or_none(self, e: ast.Node) -> Optional[DType]:
        return self.types.get(e)

    def var(self, e: ast.Node) -> Optional[Variable]:
        return self.vars.get(e)

    def arg(self, e: ast.Node) -> Optional[ArgRef]:
        return self.args.get(e)

    def member(self, e: ast.Node) -> MemberInfo:
        return self.members[e]

    def macro(self, e: ast.Node) -> Union[int, str, None]:
        return self.macros.get(e)

    def size(self, e: ast.Node) -> Optional[int]:
        return self.sizes.get(e)


def flat_statements(body: list) -> list:
    """A clause's statements with `{ }` blocks and both arms of every `if` opened up, in
    source order."""
    out = []
    for s in body:
        if isinstance(s, ast.Block):
            out.extend(flat_statements(s.body))
        elif isinstance(s, ast.If):
            out.append(s)
            out.extend(flat_statements(s.then))
            out.extend(flat_statements(s.other))
        else:
            out.append(s)
    return out


def clause_calls(clause: ast.Clause) -> list[ast.Call]:
    """Action calls of a clause, in source order (statements only, not nested expressions)."""
    return [s.expr for s in flat_statements(clause.body)
            if isinstance(s, ast.ExprStmt) and isinstance(s.expr, ast.Call)
            and s.expr.name in ACTIONS]


@dataclass
class CheckedClause:
    index: int
    clause: ast.Clause
    probes: list[Probe]
    speculative: bool = False
    # the probes each of the clause's descriptions matched, in order (for locating errors)
    spec_probes: list[list[Probe]] = field(default_factory=list)

    @property
    def records_default(self) -> bool:
        """Whether a firing records DTrace's default action (the probe line): a clause
        without statements, or a speculative one whose only action is speculate()
        (dtrace-utils' dt_cg_clause: no action but the speculation)."""
        return self.clause.default_action or not self.clause.body or (
            self.speculative and all(c.name == "speculate" for c in clause_calls(self.clause)))

    @property
    def has_data(self) -> bool:
        """Whether a firing records data for the consumer (DTrace's principal buffer)."""
        return self.records_default or any(
            c.name in RECORDING_ACTIONS for c in clause_calls(self.clause))


@dataclass
class CheckedProgram:
    source: str
    program: ast.Program
    clauses: list[CheckedClause]
    aggregations: dict[str, AggInfo]
    options: Options
    probe_string_size: int
    annotations: Annotations
    uses_exit: bool = False
    probes: list[Probe] = field(default_factory=list)
    variables: dict[tuple[str, str], Variable] = field(default_factory=dict)
    destructive: list[ast.Call] = field(default_factory=list)

    @property
    def strsize(self) -> int:
        return int(self.options["strsize"])
