"""The D abstract syntax tree.

Every node carries the source span it came from, so any later stage (checker, code
generator, runtime) can point an error at the user's text. The tree covers the whole D
language; stages that do not support a construct yet say so with a located error rather
than by the parser refusing it.

The checker annotates expression nodes in place (`ty`); everything else is set once by
the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


NOWHERE = Span(0, 0, 0, 0)


@dataclass(eq=False)
class Node:
    span: Span = field(default=NOWHERE, kw_only=True, repr=False)


# --------------------------------------------------------------------------- expressions


@dataclass(eq=False)
class Expr(Node):
    # Set by the checker: a dtrace_nb.lang.types.DType.
    ty: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(eq=False)
class IntLit(Expr):
    value: int
    unsigned: bool = False
    long: bool = False


@dataclass(eq=False)
class StrLit(Expr):
    value: str


@dataclass(eq=False)
class CharLit(Expr):
    value: int


@dataclass(eq=False)
class Ident(Expr):
    """A bare name: a builtin variable (pid, arg0, ...), a global variable, or an inline."""

    name: str


@dataclass(eq=False)
class MacroVar(Expr):
    """`$target`, `$pid`, `$1`; `$$1` (quoted) has quoted=True."""

    name: str
    quoted: bool = False


@dataclass(eq=False)
class AggRef(Expr):
    """`@name` (name is "" for the anonymous `@`)."""

    name: str


@dataclass(eq=False)
class ScopedVar(Expr):
    """`self->x` (scope 'self') or `this->x` (scope 'this')."""

    scope: str
    name: str


@dataclass(eq=False)
class Index(Expr):
    """`base[i, j]`: associative array, aggregation key, or `args[N]`."""

    base: Expr
    indexes: list[Expr]


@dataclass(eq=False)
class Call(Expr):
    """A subroutine, action or aggregating function call: `name(args)`."""

    name: str
    args: list[Expr]
    name_span: Span = field(default=NOWHERE, kw_only=True, repr=False)


@dataclass(eq=False)
class Member(Expr):
    """`base.name` or `base->name` (arrow=True)."""

    base: Expr
    name: str
    arrow: bool = False


@dataclass(eq=False)
class Unary(Expr):
    """Prefix operators: - + ! ~ * & and prefix ++/-- (op '++pre'/'--pre')."""

    op: str
    operand: Expr


@dataclass(eq=False)
class Postfix(Expr):
    op: str  # '++' or '--'
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(eq=False)
class Ternary(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass(eq=False)
class Assign(Expr):
    """`target op value` where op is '=' or a compound operator ('+=', ...)."""

    op: str
    target: Expr
    value: Expr


@dataclass(eq=False)
class TypeName(Node):
    """A C/D type as written: base words plus pointer depth, e.g. ('unsigned', 'int'), 1."""

    words: tuple[str, ...]
    pointer: int = 0

    def __str__(self) -> str:
        return " ".join(self.words) + " " * bool(self.pointer) + "*" * self.pointer


@dataclass(eq=False)
class Cast(Expr):
    to: TypeName
    operand: Expr


@dataclass(eq=False)
class SizeOf(Expr):
    """`sizeof(type)` (of_type set) or `sizeof expr`."""

    of_type: Optional[TypeName] = None
    operand: Optional[Expr] = None


@dataclass(eq=False)
class StringOf(Expr):
    """`stringof expr` (an operator in D, not a function)."""

    operand: Expr


# --------------------------------------------------------------------------- statements


@dataclass(eq=False)
class Stmt(Node):
    pass


@dataclass(eq=False)
class ExprStmt(Stmt):
    expr: Expr


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    other: list[Stmt] = field(default_factory=list)


@dataclass(eq=False)
class Block(Stmt):
    body: list[Stmt]


# --------------------------------------------------------------------------- top level


@dataclass(eq=False)
class ProbeSpec(Node):
    """One probe description as written, e.g. 'syscall::read:entry' or 'BEGIN'."""

    text: str


@dataclass(eq=False)
class Clause(Node):
    probes: list[ProbeSpec]
    predicate: Optional[Expr]
    body: list[Stmt]
    # True when the clause was written without braces: DTrace's default action applies.
    default_action: bool = False


@dataclass(eq=False)
class Pragma(Node):
    """`#pragma D option name=value` (and other `#pragma D` forms, kept as words)."""

    words: list[str]


@dataclass(eq=False)
class VarDecl(Node):
    """A declaration such as `int x;`, `self int y;`, `this string s;`, `int a[int];`."""

    scope: str  # 'global', 'self' or 'this'
    type: TypeName
    name: str
    key_types: Optional[list[TypeName]] = None


@dataclass(eq=False)
class Program(Node):
    items: list[Node]
    source: str = ""

    @property
    def clauses(self) -> list[Clause]:
        return [i for i in self.items if isinstance(i, Clause)]

    @property
    def pragmas(self) -> list[Pragma]:
        return [i for i in self.items if isinstance(i, Pragma)]

    @property
    def decls(self) -> list[VarDecl]:
        return [i for i in self.items if isinstance(i, VarDecl)]


def children(node) -> list:
    """The nodes directly below `node`, in source order."""
    from dataclasses import fields as _fields

    out = []
    for f in _fields(node):
        if f.name in ("span", "ty", "name_span"):
            continue
        v = getattr(node, f.name)
        if isinstance(v, Node):
            out.append(v)
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, Node))
    return out


def walk(node):
    """Every node below (and including) `node`, depth first, in source order."""
    from dataclasses import fields as _fields

    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Node):
            yield n
            children = []
            for f in _fields(n):
                if f.name in ("span", "ty", "name_span"):
                    continue
                v = getattr(n, f.name)
                if isinstance(v, Node):
                    children.append(v)
                elif isinstance(v, list):
                    children.extend(x for x in v if isinstance(x, Node))
            stack.extend(reversed(children))
