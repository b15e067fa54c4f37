"""What the passes share while checking one program, and the helpers several of them use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.errors import DCompileError, proto_arg, proto_len
from dtrace_nb.lang import ast
from dtrace_nb.lang.check.macros import MacroEnv
from dtrace_nb.lang.check.results import AggInfo, Annotations, CheckedClause, Variable
from dtrace_nb.lang.options import Options
from dtrace_nb.lang.printer import to_source
from dtrace_nb.lang.decltypes import TypeTable, resolve
from dtrace_nb.lang.translated import constant
from dtrace_nb.lang.types import DType, IntType, StringType, VoidType
from dtrace_nb.probes import BindContext, Probe, ProbeCatalog

# Deeper nesting (of expressions, statements and blocks together) is refused: the checker
# and the code generator recurse over the tree, and no real program comes near this. (The
# parser itself takes any depth.)
MAX_NESTING = 200
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
TRACEMEM_MAX = 64 << 10  # one record in the ring buffer
STACK_FRAMES_MAX = 127  # the kernel's perf_event_max_stack default


class NoValue(DCompileError):
    """An expression that has no value: an action's call (of type void in D) or an
    aggregation. Where D has a rule for such an operand (an operator's, a prototype's),
    the checker catches this and refuses the expression in that rule's words."""

    def __init__(self, message: str, span: ast.Span, what: str, hint: str = ""):
        super().__init__(message, span, hint)
        self.what = what  # "void" or "aggregation", as dtrace(1) names the type


class NotConstant(DCompileError):
    """An expression where D needs an integer constant (rules that have a tag of their
    own for it catch this)."""


class AggregationValue(DType):
    """The type dtrace(1) names an aggregation used as an operand: `aggregation`."""

    def __str__(self) -> str:
        return "aggregation"


def incompatible(a: DType, op: str, b: DType) -> str:
    return f'operands have incompatible types: "{a}" {op} "{b}"'


@dataclass
class CheckState:
    """The program being checked and everything the passes have found so far."""

    program: ast.Program
    catalog: ProbeCatalog
    macros: MacroEnv
    options: Options
    bind_ctx: BindContext
    ann: Annotations = field(default_factory=Annotations)
    clauses: list[CheckedClause] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)  # every enabled probe, by id
    probe_string_size: int = 8
    vars: dict[tuple[str, str], Variable] = field(default_factory=dict)
    aggs: dict[str, AggInfo] = field(default_factory=dict)
    uses_exit: bool = False
    destructive: list[ast.Call] = field(default_factory=list)
    # the program's declared types (typedecls.py), and its variables of struct type
    types: TypeTable = field(default_factory=TypeTable)
    struct_vars: dict[tuple[str, str], tuple[DType, ast.Span]] = field(default_factory=dict)

    @property
    def strsize(self) -> int:
        return int(self.options["strsize"])

    def type_of(self, tn: ast.TypeName) -> DType:
        """The type a declaration or cast names."""
        t = resolve(self.types, tn, self.strsize)
        if isinstance(t, VoidType):
            raise DCompileError(f"unknown type '{tn}'", tn.span)
        return t

    def storage_type(self, t: DType) -> DType:
        """Variables of string type hold strsize bytes, whatever they were assigned first."""
        return StringType(self.strsize) if isinstance(t, StringType) else t


def const_value(e: ast.Expr, ann: Annotations) -> Optional[int]:
    """The value of an integer constant expression, or None."""
    if isinstance(e, (ast.IntLit, ast.CharLit)):
        return e.value
    if isinstance(e, (ast.MacroVar, ast.Ident)):  # an Ident's value: a predefined constant
        v = ann.macro(e)
        if isinstance(v, int):
            return v
        # or a register name of uregs[] (R_PC...), unless a variable has that name
        return constant(e, ann.var(e) is not None) if isinstance(e, ast.Ident) else None
    if isinstance(e, ast.Unary) and e.op in ("-", "+", "~"):
        v = const_value(e.operand, ann)
        if v is None:
            return None
        return -v if e.op == "-" else v if e.op == "+" else ~v
    if isinstance(e, ast.SizeOf):
        return ann.size(e)
    if isinstance(e, ast.Cast):
        v = const_value(e.operand, ann)
        t = ann.type_or_none(e)
        return None if v is None or not isinstance(t, IntType) else t.wrap(v)
    if isinstance(e, ast.Binary) and e.op in ("+", "-", "*", "<<", "|", "&"):
        a, b = const_value(e.left, ann), const_value(e.right, ann)
        if a is None or b is None:
            return None
        return {"+": a + b, "-": a - b, "*": a * b, "<<": a << b if 0 <= b < 64 else 0,
                "|": a | b, "&": a & b}[e.op]
    return None


def is_null(e: ast.Expr, ann: Annotations) -> bool:
    """Whether `e` is D's NULL pointer: NULL, or an integer constant 0. A string compares
    with it and takes it as a value (the empty string: this model has no NULL string)."""
    if isinstance(e, ast.Ident) and e.name == "NULL":
        return ann.var(e) is None
    t = ann.type_or_none(e)
    return t is not None and t.is_int and const_value(e, ann) == 0


def check_keys(label: str, first: ast.Span, old: list[DType], new: list[DType],
               span: ast.Span, key_spans: list[ast.Span], but: str) -> None:
    """Keys `new` (here) agree in number and kind (integer or string) with `old` (first
    seen at `first`); `but` joins the two in messages."""
    name = label[:-2] if label.endswith("[]") else label  # dtrace(1) names `x[ ]`, `@a[ ]`
    if len(old) != len(new):
        raise DCompileError(f"{label} has {len(old)} key(s) at {first}{but} {len(new)} here",
                            span, tag="D_PROTO_LEN",
                            dtrace=proto_len(name, len(new), len(old), len(old), key=True))
    for i, (o, n) in enumerate(zip(old, new)):
        if o.is_int != n.is_int:
            raise DCompileError(f"key {i + 1} of {label} is {o} at {first}{but} {n} here",
                                key_spans[i], tag="D_PROTO_ARG",
                                dtrace=proto_arg(name, i + 1, str(o), str(n), key=True))


def describe(e: ast.Expr) -> str:
    """An expression as D text, for messages."""
    try:
        return to_source(e)
    except Exception:  # a description is a convenience
        return "this expression"


def key_name(e: ast.Expr, i: int) -> str:
    """A column name for an aggregation key: its D text when short."""
    if isinstance(e, ast.Ident):
        return e.name
    try:
        text = to_source(e)
    except Exception:  # the printer is a convenience: never fail a compile over a name
        text = ""
    return text if text and len(text) <= 40 else f"key{i}"


def is_agg_target(t: ast.Expr) -> bool:
    """`@name`, `@name[keys]` (or `@name[k][k]`, which check_aggregation refuses)."""
    while isinstance(t, ast.Index):
        t = t.base
    return isinstance(t, ast.AggRef)


def agg_target(t: ast.Expr) -> tuple[str, list[ast.Expr]]:
    """(name, keys) of `@name` or `@name[keys]`."""
    if isinstance(t, ast.Index) and isinstance(t.base, ast.AggRef):
        return t.base.name, t.indexes
    assert isinstance(t, ast.AggRef)
    return t.name, []
