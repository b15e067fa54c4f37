"""Semantic analysis: from a parsed Program to a CheckedProgram.

Resolves probe descriptions through the ProbeCatalog (the only place the compiler meets
providers, and only through the generic protocol), expands macro variables, gives every
expression a type, checks aggregations (one function per aggregation, a fixed key
signature) and actions (argument counts and printf formats), and collects options.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.errors import DCompileError, DProbeError
from dtrace_nb.lang import ast
from dtrace_nb.lang.options import Options
from dtrace_nb.lang.types import (INT, INT64, UINT64, DType, IntType, StringType, promote,
                                  type_from_words, unary_promote)
from dtrace_nb.probes import BindContext, Probe, ProbeCatalog

PID_T = IntType(4, True, "pid_t")
ID_T = IntType(4, True, "id_t")
UID_T = IntType(4, False, "uid_t")
GID_T = IntType(4, False, "gid_t")
CPU_T = IntType(4, True, "processorid_t")
EXECNAME = StringType(16)  # TASK_COMM_LEN

INT_BUILTINS: dict[str, IntType] = {
    "pid": PID_T, "tid": ID_T, "ppid": PID_T, "uid": UID_T, "gid": GID_T,
    "timestamp": UINT64, "cpu": CPU_T, "errno": INT, "id": IntType(4, False, "dtrace_id_t"),
    **{f"arg{i}": INT64 for i in range(10)},
}
PROBE_STRINGS = ("probeprov", "probemod", "probefunc", "probename")
AGG_FUNCS = {"count": 0, "sum": 1, "min": 1, "max": 1, "avg": 1, "quantize": 1}
ACTIONS = ("printf", "trace", "exit")


@dataclass
class AggInfo:
    """One aggregation of the program (`@name`)."""

    name: str
    index: int
    func: str
    key_types: list[DType]
    key_names: list[str]
    span: ast.Span


def flat_statements(body: list) -> list:
    """A clause's statements with bare `{ }` blocks opened up, in execution order."""
    out = []
    for s in body:
        out.extend(flat_statements(s.body) if isinstance(s, ast.Block) else [s])
    return out


@dataclass
class CheckedClause:
    index: int
    clause: ast.Clause
    probes: list[Probe]

    @property
    def has_data(self) -> bool:
        """Whether a firing records data for the consumer (DTrace's principal buffer)."""
        return self.clause.default_action or not self.clause.body or any(
            isinstance(s, ast.ExprStmt) and isinstance(s.expr, ast.Call)
            and s.expr.name in ACTIONS for s in flat_statements(self.clause.body))


@dataclass
class CheckedProgram:
    source: str
    program: ast.Program
    clauses: list[CheckedClause]
    aggregations: dict[str, AggInfo]
    options: Options
    probe_string_size: int
    uses_exit: bool = False
    probes: list[Probe] = field(default_factory=list)


@dataclass
class MacroEnv:
    """Values for `$target`, `$pid` and `$1..$9` (strings as given on the command line)."""

    target: Optional[int] = None
    pid: int = 0
    args: list[str] = field(default_factory=list)

    def value(self, name: str, span: ast.Span) -> str:
        if name == "target":
            if self.target is None:
                raise DCompileError("$target is used but no target process was given",
                                    span, hint="start one with -c CMD or name one with -p PID")
            return str(self.target)
        if name == "pid":
            return str(self.pid)
        if name.isdigit():
            n = int(name)
            if n == 0:
                return "dtrace-nb"
            if n <= len(self.args):
                return self.args[n - 1]
            raise DCompileError(f"macro argument ${n} is not defined", span,
                                hint=f"pass {n} argument(s) after the script")
        raise DCompileError(f"unknown macro variable ${name}", span)


_MACRO_IN_DESC = re.compile(r"\$(\$?)(\w+)")


class Checker:
    def __init__(self, catalog: ProbeCatalog, macros: MacroEnv, options: Options,
                 bind_ctx: BindContext):
        self.catalog = catalog
        self.macros = macros
        self.options = options
        self.bind_ctx = bind_ctx
        self.aggs: dict[str, AggInfo] = {}
        self.uses_exit = False
        self.probe_string_size = 8

    # -- program ---------------------------------------------------------------------

    def check(self, program: ast.Program) -> CheckedProgram:
        for pragma in program.pragmas:
            self.options.apply_pragma(pragma)
        for decl in program.decls:
            raise DCompileError("variable declarations are not supported yet", decl.span)
        clauses = [CheckedClause(i, c, self.resolve_probes(c))
                   for i, c in enumerate(program.clauses)]
        if not clauses:
            raise DCompileError("the program has no probe clauses", program.span or None,
                                hint="write at least one clause, e.g. BEGIN { exit(0); }")
        enabled = sorted({p.id: p for c in clauses for p in c.probes}.values(), key=lambda p: p.id)
        longest = max(len(s) for p in enabled
                      for s in (p.provider, p.module, p.function, p.name))
        self.probe_string_size = (longest + 1 + 7) // 8 * 8
        for c in clauses:
            self.check_clause(c)
        return CheckedProgram(program.source, program, clauses, self.aggs, self.options,
                              self.probe_string_size, self.uses_exit, enabled)

    def resolve_probes(self, clause: ast.Clause) -> list[Probe]:
        found: dict[int, Probe] = {}
        for spec in clause.probes:
            text = self.expand_desc(spec)
            try:
                probes = self.catalog.match(text, self.bind_ctx)
            except DProbeError as err:
                raise DProbeError(err.message, spec.span, err.hint) from None
            if not probes:
                raise DProbeError(f"probe description {text} does not match any probes",
                                  spec.span, hint="list what exists with dtrace-nb -l -n 'PATTERN'")
            for p in probes:
                found.setdefault(p.id, p)
        return list(found.values())

    def expand_desc(self, spec: ast.ProbeSpec) -> str:
        return _MACRO_IN_DESC.sub(lambda m: self.macros.value(m.group(2), spec.span), spec.text)

    # -- clauses and statements --------------------------------------------------------

    def check_clause(self, c: CheckedClause) -> None:
        clause = c.clause
        if clause.predicate is not None:
            t = self.expr(clause.predicate)
            if not t.is_int:
                raise DCompileError("a predicate must be an integer or pointer expression, "
                                    f"not {t}", clause.predicate.span)
        for stmt in clause.body:
            self.stmt(stmt)

    def stmt(self, stmt: ast.Stmt) -> None:
        if isinstance(stmt, ast.ExprStmt):
            e = stmt.expr
            if isinstance(e, ast.Assign) and _is_agg_target(e.target):
                self.aggregation(e)
            elif isinstance(e, ast.Call) and e.name in ACTIONS:
                self.action(e)
            elif isinstance(e, ast.Assign):
                raise DCompileError("variables are not supported yet; only aggregations "
                                    "(@name[keys] = func(...)) can be assigned", e.span)
            else:
                self.expr(e)
                raise DCompileError("this statement has no effect", e.span,
                                    hint="use trace(expr) or printf() to record a value")
        elif isinstance(stmt, ast.Block):
            for s in stmt.body:
                self.stmt(s)
        else:
            raise DCompileError(f"{type(stmt).__name__.lower()} statements are not supported yet",
                                stmt.span)

    def aggregation(self, e: ast.Assign) -> None:
        target = e.target
        name = target.base.name if isinstance(target, ast.Index) else target.name
        keys = target.indexes if isinstance(target, ast.Index) else []
        if e.op != "=":
            raise DCompileError(f"operator {e.op} cannot be applied to aggregation @{name}",
                                e.span, hint="aggregations are assigned with '='")
        call = e.value
        if not isinstance(call, ast.Call) or call.name not in AGG_FUNCS:
            raise DCompileError(f"@{name} must be assigned an aggregating function",
                                e.value.span, hint="one of " + ", ".join(f"{f}()" for f in AGG_FUNCS))
        want = AGG_FUNCS[call.name]
        if len(call.args) != want:
            raise DCompileError(f"{call.name}() takes {want} argument{'s' * (want != 1)}, "
                                f"{len(call.args)} given", call.span)
        for a in call.args:
            if not self.expr(a).is_int:
                raise DCompileError(f"{call.name}() needs an integer argument, not {a.ty}", a.span)
        key_types = []
        for k in keys:
            t = self.expr(k)
            key_types.append(t)
        info = self.aggs.get(name)
        label = f"@{name}"
        if info is None:
            self.aggs[name] = AggInfo(name, len(self.aggs), call.name, key_types,
                                      [_key_name(k, i) for i, k in enumerate(keys)], e.span)
            return
        if info.func != call.name:
            raise DCompileError(f"{label} is used with {call.name}() here but with "
                                f"{info.func}() at {info.span}", call.span)
        if len(info.key_types) != len(key_types):
            raise DCompileError(f"{label} has {len(info.key_types)} key(s) at {info.span} but "
                                f"{len(key_types)} here", target.span)
        for i, (old, new) in enumerate(zip(info.key_types, key_types)):
            if old.is_int != new.is_int:
                raise DCompileError(f"key {i + 1} of {label} is {old} at {info.span} but {new} here",
                                    keys[i].span)
            if old.is_string and new.size > old.size:
                info.key_types[i] = new

    def action(self, call: ast.Call) -> None:
        if call.name == "exit":
            if len(call.args) != 1:
                raise DCompileError("exit() takes one argument (the exit status)", call.span)
            if not self.expr(call.args[0]).is_int:
                raise DCompileError("exit() needs an integer status", call.args[0].span)
            self.uses_exit = True
        elif call.name == "trace":
            if len(call.args) != 1:
                raise DCompileError("trace() takes one argument", call.span)
            self.expr(call.args[0])
        elif call.name == "printf":
            self.printf(call)

    def printf(self, call: ast.Call) -> None:
        from dtrace_nb.display.printf import parse_format

        if not call.args or not isinstance(call.args[0], ast.StrLit):
            raise DCompileError("printf() needs a format string literal as its first argument",
                                call.span)
        fmt = call.args[0]
        fmt.ty = StringType(len(fmt.value.encode()) + 1)
        try:
            convs = [c for c in parse_format(fmt.value) if not isinstance(c, str)]
        except DCompileError as err:
            raise DCompileError(err.message, fmt.span, err.hint) from None
        wanted = []
        for conv in convs:
            wanted.extend(["int"] * conv.star_count)
            if conv.kind not in ("none",):
                wanted.append(conv.kind)
        args = call.args[1:]
        if len(args) != len(wanted):
            raise DCompileError(f"printf() format \"{fmt.value}\" needs {len(wanted)} "
                                f"argument{'s' * (len(wanted) != 1)}, {len(args)} given",
                                call.span)
        for i, (a, kind) in enumerate(zip(args, wanted)):
            t = self.expr(a)
            if kind == "string" and not t.is_string:
                raise DCompileError(f"printf() argument {i + 2} is {t} but the format wants a "
                                    "string", a.span)
            if kind in ("int", "float", "time") and not t.is_int:
                raise DCompileError(f"printf() argument {i + 2} is {t} but the format wants an "
                                    "integer", a.span)
            if kind == "agg":
                raise DCompileError("%@ is only valid in printa()", fmt.span)

    # -- expressions -------------------------------------------------------------------

    def expr(self, e: ast.Expr) -> DType:
        t = self._expr(e)
        e.ty = t
        return t

    def _expr(self, e: ast.Expr) -> DType:
        if isinstance(e, ast.IntLit):
            if e.value > 0x7FFFFFFFFFFFFFFF or e.unsigned:
                return UINT64 if (e.value > 0xFFFFFFFF or e.long) else IntType(4, False, "uint_t")
            return INT64 if (e.value > 0x7FFFFFFF or e.long) else INT
        if isinstance(e, ast.CharLit):
            return IntType(1, True, "char")
        if isinstance(e, ast.StrLit):
            return StringType(len(e.value.encode()) + 1)
        if isinstance(e, ast.Ident):
            if e.name in INT_BUILTINS:
                return INT_BUILTINS[e.name]
            if e.name == "execname":
                return EXECNAME
            if e.name in PROBE_STRINGS:
                return StringType(self.probe_string_size)
            raise DCompileError(f"unknown variable '{e.name}'", e.span,
                                hint="built-in variables: pid tid ppid uid gid execname timestamp "
                                     "cpu id probeprov probemod probefunc probename arg0..arg9 errno")
        if isinstance(e, ast.MacroVar):
            return self.macro(e)
        if isinstance(e, ast.Unary):
            return self.unary(e)
        if isinstance(e, ast.Binary):
            return self.binary(e)
        if isinstance(e, ast.Ternary):
            if not self.expr(e.cond).is_int:
                raise DCompileError("the condition of ?: must be an integer", e.cond.span)
            a, b = self.expr(e.then), self.expr(e.other)
            if a.is_int and b.is_int:
                return promote(a, b)
            raise DCompileError("?: with string operands is not supported yet", e.span)
        if isinstance(e, ast.Cast):
            t = type_from_words(e.to.words, e.to.pointer)
            if t is None or not t.is_int:
                raise DCompileError(f"cannot cast to '{e.to}'", e.to.span or e.span)
            if not self.expr(e.operand).is_int:
                raise DCompileError("only integers can be cast", e.operand.span)
            return t
        if isinstance(e, ast.Call):
            if e.name in AGG_FUNCS:
                raise DCompileError(f"{e.name}() may only be assigned to an aggregation",
                                    e.span, hint=f"@name[keys] = {e.name}(...)")
            if e.name in ACTIONS:
                raise DCompileError(f"{e.name}() is an action and has no value", e.span)
            raise DCompileError(f"unknown function '{e.name}()' (or not supported yet)",
                                e.name_span if e.name_span.line else e.span)
        if isinstance(e, ast.AggRef) or (isinstance(e, ast.Index) and isinstance(e.base, ast.AggRef)):
            raise DCompileError("an aggregation has no value in an expression", e.span,
                                hint="print it with printa() or read it from the result")
        raise DCompileError(f"{type(e).__name__} expressions are not supported yet", e.span)

    def macro(self, e: ast.MacroVar) -> DType:
        text = self.macros.value(e.name, e.span)
        if e.quoted:
            e.resolved = text  # type: ignore[attr-defined]
            return StringType(len(text.encode()) + 1)
        try:
            e.resolved = int(text, 0)  # type: ignore[attr-defined]
        except ValueError:
            e.resolved = text  # type: ignore[attr-defined]
            return StringType(len(text.encode()) + 1)
        return INT64

    def unary(self, e: ast.Unary) -> DType:
        t = self.expr(e.operand)
        if e.op in ("-", "+", "~", "!"):
            if not t.is_int:
                raise DCompileError(f"operator {e.op} needs an integer operand, not {t}", e.span)
            return INT if e.op == "!" else unary_promote(t)
        raise DCompileError(f"operator {e.op.replace('pre', '')} is not supported yet", e.span)

    def binary(self, e: ast.Binary) -> DType:
        a, b = self.expr(e.left), self.expr(e.right)
        if e.op in ("==", "!=", "<", "<=", ">", ">="):
            if a.is_string and b.is_string:
                return INT
            if a.is_int and b.is_int:
                return INT
            raise DCompileError(f"operator {e.op} cannot compare {a} with {b}", e.span)
        if e.op in ("&&", "||", "^^"):
            for side, t in ((e.left, a), (e.right, b)):
                if not t.is_int:
                    raise DCompileError(f"operator {e.op} needs integer operands, not {t}", side.span)
            return INT
        if not (a.is_int and b.is_int):
            raise DCompileError(f"operator {e.op} needs integer operands, not {a} and {b}", e.span)
        if e.op in ("<<", ">>"):
            return unary_promote(a)
        return promote(a, b)


def _is_agg_target(t: ast.Expr) -> bool:
    return isinstance(t, ast.AggRef) or (isinstance(t, ast.Index) and isinstance(t.base, ast.AggRef))


def _key_name(e: ast.Expr, i: int) -> str:
    if isinstance(e, ast.Ident):
        return e.name
    try:
        from dtrace_nb.lang.printer import to_source

        text = to_source(e)
    except Exception:  # the printer is a convenience: never fail a compile over a name
        text = ""
    return text if text and len(text) <= 40 else f"key{i}"


def check(program: ast.Program, catalog: ProbeCatalog, macros: MacroEnv, options: Options,
          bind_ctx: BindContext) -> CheckedProgram:
    return Checker(catalog, macros, options, bind_ctx).check(program)
