"""Semantic analysis: from a parsed Program to a CheckedProgram.

Resolves probe descriptions through the ProbeCatalog (the only place the compiler meets
providers, and only through the generic protocol), expands macro variables, gives every
expression a type, resolves variables (globals, associative arrays, `self->`, `this->`)
and checks aggregations, subroutines and actions.

Variables take the type of their first assignment in program order (or their declaration),
as in D. The checker makes two passes: the first learns every variable's type from the
assignments, so a clause may read `self->ts` before the clause that sets it; the second
checks strictly and annotates the tree (`Expr.ty`, plus the resolved `var`, `sub`, `member`
or `arg` on the nodes that need them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.errors import DCompileError, DError, DProbeError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import (ACTIONS, AGG_FUNCS, DESTRUCTIVE, EXECNAME, INT_BUILTINS,
                                     PROBE_STRINGS, RECORDING_ACTIONS, SUBROUTINES,
                                     UNAVAILABLE_BUILTINS)
from dtrace_nb.lang.options import Options
from dtrace_nb.lang.types import (INT, INT64, UINT64, DType, IntType, MemberType, PtrType,
                                  StackType, StringType, TranslatedType, VoidType, native_type,
                                  promote, type_from_words, unary_promote)
from dtrace_nb.probes import ArgInfo, BindContext, Probe, ProbeCatalog

__all__ = ["check", "CheckedProgram", "CheckedClause", "AggInfo", "Variable",
           "MacroEnv", "flat_statements", "ACTIONS", "AGG_FUNCS", "INT_BUILTINS", "PROBE_STRINGS"]


@dataclass
class AggInfo:
    """One aggregation of the program (`@name`)."""

    name: str
    index: int
    func: str
    key_types: list[DType]
    key_names: list[str]
    span: ast.Span
    params: tuple[int, ...] = ()  # lquantize (base, limit, step); llquantize (factor, low, high, nsteps)


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
    def has_data(self) -> bool:
        """Whether a firing records data for the consumer (DTrace's principal buffer)."""
        return self.clause.default_action or not self.clause.body or any(
            c.name in RECORDING_ACTIONS for c in clause_calls(self.clause))


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
    variables: dict[tuple[str, str], Variable] = field(default_factory=dict)
    uses_speculation: bool = False
    destructive: list[ast.Call] = field(default_factory=list)

    @property
    def strsize(self) -> int:
        return int(self.options["strsize"])


@dataclass
class MacroEnv:
    """Values for `$target`, `$pid` and `$1..$9` (strings as given on the command line)."""

    target: Optional[int] = None
    pid: int = 0
    args: list[str] = field(default_factory=list)
    defaultargs: bool = False

    def value(self, name: str, span: ast.Span) -> str:
        if name == "target":
            if self.target is None:
                raise DCompileError("$target is used but no target process was given",
                                    span, hint="start one with -c CMD or name one with -p PID")
            return str(self.target)
        if name == "pid":
            return str(self.pid)
        if name in ("ppid", "uid", "gid", "pgid", "sid", "projid", "taskid"):
            import os

            return str({"ppid": os.getppid, "uid": os.getuid, "gid": os.getgid,
                        "pgid": os.getpgrp, "sid": lambda: os.getsid(0)}.get(
                            name, lambda: 0)())
        if name.isdigit():
            n = int(name)
            if n == 0:
                return "dtrace-nb"
            if n <= len(self.args):
                return self.args[n - 1]
            if self.defaultargs:
                return ""
            raise DCompileError(f"macro argument ${n} is not defined", span,
                                hint=f"pass {n} argument(s) after the script "
                                     "(or -x defaultargs to use 0 / \"\")")
        raise DCompileError(f"unknown macro variable ${name}", span)


# Deeper nesting (of expressions, statements and blocks together) is refused: the checker
# and the code generator recurse over the tree, and no real program comes near this. (The
# parser itself takes any depth.)
MAX_NESTING = 200
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
TRACEMEM_MAX = 64 << 10  # one record in the ring buffer
STACK_FRAMES_MAX = 127  # the kernel's perf_event_max_stack default

_MACRO_IN_DESC = re.compile(r"\$(\$?)(\w+)")
_COMPARE = ("==", "!=", "<", "<=", ">", ">=")


class Checker:
    def __init__(self, catalog: ProbeCatalog, macros: MacroEnv, options: Options,
                 bind_ctx: BindContext):
        self.catalog = catalog
        self.macros = macros
        self.options = options
        self.bind_ctx = bind_ctx
        self.aggs: dict[str, AggInfo] = {}
        self.vars: dict[tuple[str, str], Variable] = {}
        self.uses_exit = False
        self.uses_speculation = False
        self.destructive: list[ast.Call] = []
        self.probe_string_size = 8
        self.lenient = False
        self.clause: Optional[CheckedClause] = None

    @property
    def strsize(self) -> int:
        return int(self.options["strsize"])

    # -- program ---------------------------------------------------------------------

    def check(self, program: ast.Program) -> CheckedProgram:
        for pragma in program.pragmas:
            self.options.apply_pragma(pragma)
        self.macros.defaultargs = bool(self.options["defaultargs"])
        for decl in program.decls:
            self.declare(decl)
        clauses = []
        for i, c in enumerate(program.clauses):
            per_spec = [self.resolve_spec(spec) for spec in c.probes]
            found = {p.id: p for probes in per_spec for p in probes}
            clauses.append(CheckedClause(i, c, list(found.values()), spec_probes=per_spec))
        if not clauses:
            raise DCompileError("the program has no probe clauses", program.span or None,
                                hint="write at least one clause, e.g. BEGIN { exit(0); }")
        enabled = sorted({p.id: p for c in clauses for p in c.probes}.values(), key=lambda p: p.id)
        longest = max(len(s) for p in enabled
                      for s in (p.provider, p.module, p.function, p.name))
        self.probe_string_size = (longest + 1 + 7) // 8 * 8
        # Pass 1 learns variable types from assignments in program order.
        self.lenient = True
        for c in clauses:
            self.check_clause(c)
        self.lenient = False
        self.aggs = {}
        self.uses_exit = self.uses_speculation = False
        self.destructive = []
        for c in clauses:
            self.check_clause(c)
        if self.destructive and not self.options["destructive"]:
            call = self.destructive[0]
            raise DCompileError(f"{call.name}() is a destructive action and destructive actions "
                                "are not allowed", call.name_span if call.name_span.line
                                else call.span,
                                hint="allow them with -w (or #pragma D option destructive)")
        for i, v in enumerate(self.vars.values()):
            v.index = i
        return CheckedProgram(program.source, program, clauses, self.aggs, self.options,
                              self.probe_string_size, self.uses_exit, enabled, self.vars,
                              self.uses_speculation, self.destructive)

    def declare(self, decl: ast.VarDecl) -> None:
        t = self.type_of(decl.type)
        keys = None
        if decl.key_types is not None:
            if decl.scope != "global":
                raise DCompileError("only global variables can be associative arrays", decl.span)
            keys = [self.type_of(k) for k in decl.key_types]
        key = (decl.scope, decl.name)
        if key in self.vars:
            raise DCompileError(f"{self.vars[key].label} is declared twice", decl.span)
        if decl.scope == "global" and (decl.name in INT_BUILTINS or decl.name in PROBE_STRINGS
                                       or decl.name in ("execname", "args")):
            raise DCompileError(f"'{decl.name}' is a built-in variable", decl.span)
        self.vars[key] = Variable(decl.scope, decl.name, self.storage_type(t), decl.span, keys)

    def type_of(self, tn: ast.TypeName) -> DType:
        t = type_from_words(tn.words, tn.pointer, self.strsize)
        if t is None or isinstance(t, VoidType):
            raise DCompileError(f"unknown type '{tn}'", tn.span)
        return t

    def storage_type(self, t: DType) -> DType:
        """Variables of string type hold strsize bytes, whatever they were assigned first."""
        return StringType(self.strsize) if isinstance(t, StringType) else t

    def resolve_probes(self, clause: ast.Clause) -> list[Probe]:
        found: dict[int, Probe] = {}
        for spec in clause.probes:
            for p in self.resolve_spec(spec):
                found.setdefault(p.id, p)
        return list(found.values())

    def resolve_spec(self, spec: ast.ProbeSpec) -> list[Probe]:
        text = self.expand_desc(spec)
        try:
            probes = self.catalog.match(text, self.bind_ctx)
        except DError as err:
            if err.span is not None:
                raise
            raise type(err)(err.message, spec.span, err.hint, err.detail) from None
        if not probes:
            raise DProbeError(f"probe description {text} does not match any probes",
                              spec.span, hint="list what exists with dtrace-nb -l -n 'PATTERN'")
        return probes

    def expand_desc(self, spec: ast.ProbeSpec) -> str:
        return _MACRO_IN_DESC.sub(lambda m: self.macros.value(m.group(2), spec.span), spec.text)

    # -- clauses and statements --------------------------------------------------------

    def check_clause(self, c: CheckedClause) -> None:
        self.clause = c
        self.seen_data_action = False
        self.speculated = False
        clause = c.clause
        if clause.predicate is not None:
            t = self.expr(clause.predicate)
            if not t.is_int:
                raise DCompileError("a predicate must be an integer or pointer expression, "
                                    f"not {t}", clause.predicate.span)
        self.block(clause.body)
        c.speculative = self.speculated

    def block(self, body: list) -> None:
        for stmt in body:
            self.stmt(stmt)

    def stmt(self, stmt: ast.Stmt) -> None:
        if isinstance(stmt, ast.ExprStmt):
            e = stmt.expr
            if isinstance(e, ast.Assign) and _is_agg_target(e.target):
                self.aggregation(e)
            elif isinstance(e, ast.Call) and e.name in ACTIONS:
                self.action(e)
            elif isinstance(e, (ast.Assign, ast.Postfix)) or (
                    isinstance(e, ast.Unary) and e.op in ("++pre", "--pre")):
                self.expr(e)
            elif isinstance(e, ast.Call) and e.name in SUBROUTINES:
                self.expr(e)  # e.g. a bare speculation(): legal, if pointless
            else:
                self.expr(e)
                raise DCompileError("this statement has no effect", e.span,
                                    hint="use trace(expr) or printf() to record a value")
        elif isinstance(stmt, ast.Block):
            self.block(stmt.body)
        elif isinstance(stmt, ast.If):
            if not self.expr(stmt.cond).is_int:
                raise DCompileError("an if condition must be an integer or pointer expression",
                                    stmt.cond.span)
            self.block(stmt.then)
            self.block(stmt.other)
        else:
            raise DCompileError(f"{type(stmt).__name__.lower()} statements are not supported",
                                stmt.span)

    # -- aggregations ------------------------------------------------------------------

    def aggregation(self, e: ast.Assign) -> None:
        target = e.target
        name = target.base.name if isinstance(target, ast.Index) else target.name
        keys = target.indexes if isinstance(target, ast.Index) else []
        label = f"@{name}"
        if e.op != "=":
            raise DCompileError(f"operator {e.op} cannot be applied to aggregation {label}",
                                e.span, hint="aggregations are assigned with '='")
        call = e.value
        if not isinstance(call, ast.Call) or call.name not in AGG_FUNCS:
            raise DCompileError(f"{label} must be assigned an aggregating function",
                                e.value.span, hint="one of " + ", ".join(f"{f}()" for f in AGG_FUNCS))
        nvals, nparams = AGG_FUNCS[call.name]
        want = nvals + nparams
        if call.name == "llquantize" and len(call.args) == 4:
            want = 4  # DTrace's older four-argument form has no steps; we need them
        if len(call.args) != nvals + nparams:
            raise DCompileError(f"{call.name}() takes {want} argument{'s' * (want != 1)}, "
                                f"{len(call.args)} given", call.span)
        for a in call.args[:nvals]:
            if not self.expr(a).is_int:
                raise DCompileError(f"{call.name}() needs an integer argument, not {a.ty}", a.span)
        params = tuple(self.constant(a, f"{call.name}() parameter") for a in call.args[nvals:])
        self.check_agg_params(call, params)
        key_types = [self.agg_key(k) for k in keys]
        for k, t in zip(keys, key_types):
            if not (t.is_int or t.is_string):
                raise DCompileError(f"an aggregation key must be an integer or a string, not {t}",
                                    k.span)
        info = self.aggs.get(name)
        if info is None:
            self.aggs[name] = AggInfo(name, len(self.aggs), call.name, key_types,
                                      [_key_name(k, i) for i, k in enumerate(keys)], e.span, params)
            return
        if info.func != call.name:
            raise DCompileError(f"{label} is used with {call.name}() here but with "
                                f"{info.func}() at {info.span}", call.span)
        if info.params != params:
            raise DCompileError(f"{label} is used with {call.name}() parameters {params} here "
                                f"but {info.params} at {info.span}", call.span)
        if len(info.key_types) != len(key_types):
            raise DCompileError(f"{label} has {len(info.key_types)} key(s) at {info.span} but "
                                f"{len(key_types)} here", target.span)
        for i, (old, new) in enumerate(zip(info.key_types, key_types)):
            if old.is_int != new.is_int:
                raise DCompileError(f"key {i + 1} of {label} is {old} at {info.span} but {new} here",
                                    keys[i].span)
            if old.is_string and new.size > old.size:
                info.key_types[i] = new
            elif old.is_int and new.is_int and new.size > old.size:
                info.key_types[i] = new

    def agg_key(self, k: ast.Expr) -> DType:
        """A key's type; stack() and ustack() are keys too (`@[ustack()] = count()`)."""
        if isinstance(k, ast.Call) and k.name in ("stack", "ustack"):
            if len(k.args) > (2 if k.name == "ustack" else 1):
                raise DCompileError(f"{k.name}() takes at most "
                                    f"{2 if k.name == 'ustack' else 1} argument(s)", k.span)
            limit = self.constant(k.args[0], f"the {k.name}() frame count") if k.args else 0
            if limit < 0:
                raise DCompileError(f"{k.name}() frame count must be positive", k.args[0].span)
            k.ty = StackType(8, False, f"{k.name}()", k.name, limit)
            return k.ty
        return self.expr(k)

    def check_agg_params(self, call: ast.Call, params: tuple[int, ...]) -> None:
        for a, v in zip(call.args[-len(params):] if params else [], params):
            if not INT64_MIN <= v <= INT64_MAX:
                raise DCompileError(f"{call.name}() parameter {v} does not fit in 64 bits",
                                    a.span)
        if call.name == "lquantize":
            base, limit, step = params
            if step <= 0:
                raise DCompileError("lquantize() step must be greater than zero", call.args[3].span)
            if limit <= base:
                raise DCompileError("lquantize() upper bound must be greater than the lower bound",
                                    call.args[2].span)
            levels = (limit - base) // step
            if (limit - base) % step:
                raise DCompileError("lquantize() range must be a multiple of the step",
                                    call.args[3].span)
            if levels > 4096:
                raise DCompileError(f"lquantize() has {levels} levels; at most 4096 are supported",
                                    call.span)
        elif call.name == "llquantize":
            factor, low, high, nsteps = params
            if factor < 2:
                raise DCompileError("llquantize() factor must be at least 2", call.args[1].span)
            if low < 0 or high < low:
                raise DCompileError("llquantize() magnitudes must satisfy 0 <= low <= high",
                                    call.args[2].span)
            if nsteps < factor or nsteps % factor:
                raise DCompileError("llquantize() steps must be a multiple of the factor",
                                    call.args[4].span)
            # high < 64 first: factor ** (high + 1) of a huge high would never finish
            if high >= 64 or factor ** (high + 1) > 2**63:
                raise DCompileError("llquantize() high magnitude overflows 64 bits",
                                    call.args[3].span)

    def constant(self, e: ast.Expr, what: str) -> int:
        self.expr(e)
        value = const_value(e)
        if value is None:
            raise DCompileError(f"{what} must be an integer constant", e.span)
        return value

    # -- actions -----------------------------------------------------------------------

    def action(self, call: ast.Call) -> None:
        lo, hi = ACTIONS[call.name]
        n = len(call.args)
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise DCompileError(f"{call.name}() takes {want} argument{'s' * (hi != 1)}, "
                                f"{n} given", call.span)
        if call.name in DESTRUCTIVE:
            self.destructive.append(call)
        if call.name in ("panic", "breakpoint", "chill", "freopen", "ftruncate"):
            raise DCompileError(f"{call.name}() is not supported on Linux by dtrace-nb",
                                call.span)
        if call.name in ("speculate", "commit", "discard"):
            self.speculation_action(call)
        elif self.speculated and call.name in ("exit", "printa", "clear", "trunc", "normalize",
                                               "denormalize", "setopt", "system"):
            raise DCompileError(f"{call.name}() may not follow speculate() in a clause", call.span)
        name = call.name
        if name in ("printf", "system"):
            self.printf(call)
        elif name == "printa":
            self.printa(call)
        elif name in ("trace",):
            t = self.expr(call.args[0])
            if isinstance(t, (TranslatedType, VoidType)):
                raise DCompileError(f"trace() cannot record {t}", call.args[0].span)
        elif name == "tracemem":
            self.int_arg(call, 0)
            size = self.constant(call.args[1], "tracemem() size")
            if not 0 < size <= TRACEMEM_MAX:
                raise DCompileError(f"tracemem() size must be between 1 and {TRACEMEM_MAX}, "
                                    f"not {size}", call.args[1].span)
            if n == 3:
                self.int_arg(call, 2)
        elif name in ("stack", "ustack"):
            self.stack_args(call)
        elif name == "exit":
            self.int_arg(call, 0)
            self.uses_exit = True
        elif name in ("clear", "denormalize"):
            self.agg_arg(call, 0)
        elif name == "trunc":
            self.agg_arg(call, 0)
            if n == 2:
                self.int_arg(call, 1)
        elif name == "normalize":
            self.agg_arg(call, 0)
            self.int_arg(call, 1)
        elif name == "setopt":
            for i in range(n):
                if not isinstance(call.args[i], ast.StrLit):
                    raise DCompileError("setopt() takes string constants", call.args[i].span)
                self.expr(call.args[i])
            from dtrace_nb.lang.options import KNOWN

            opt = call.args[0].value
            if opt not in KNOWN:
                raise DCompileError(f"unknown option '{opt}'", call.args[0].span)
        elif name in ("raise",):
            self.int_arg(call, 0)
        elif name in ("copyout",):
            for i in range(3):
                self.expr(call.args[i])
        elif name in ("copyoutstr",):
            if not self.expr(call.args[0]).is_string:
                raise DCompileError("copyoutstr() copies a string", call.args[0].span)
            self.int_arg(call, 1)
            self.int_arg(call, 2)
        if name in RECORDING_ACTIONS and name not in ("commit", "discard"):
            self.seen_data_action = True

    def stack_args(self, call: ast.Call) -> None:
        """stack(nframes), ustack(nframes, strsize): constants, nframes positive."""
        for i, a in enumerate(call.args):
            v = self.constant(a, f"{call.name}() argument")
            if i == 0 and not 0 < v <= STACK_FRAMES_MAX:
                raise DCompileError(f"{call.name}() frame count must be between 1 and "
                                    f"{STACK_FRAMES_MAX}, not {v}", a.span)
            if i == 1 and not 0 <= v <= INT64_MAX:
                raise DCompileError(f"{call.name}() string size must not be negative", a.span)

    def speculation_action(self, call: ast.Call) -> None:
        self.uses_speculation = True
        self.int_arg(call, 0)
        if call.name == "speculate":
            if self.speculated:
                raise DCompileError("a clause may speculate() only once", call.span)
            if self.seen_data_action:
                raise DCompileError("speculate() must come before any data-recording action "
                                    "in its clause", call.span)
            self.speculated = True
        elif self.speculated:
            raise DCompileError(f"{call.name}() may not follow speculate() in a clause", call.span)

    def int_arg(self, call: ast.Call, i: int) -> None:
        if not self.expr(call.args[i]).is_int:
            raise DCompileError(f"{call.name}() argument {i + 1} must be an integer, "
                                f"not {call.args[i].ty}", call.args[i].span)

    def agg_arg(self, call: ast.Call, i: int) -> AggInfo:
        a = call.args[i]
        if not isinstance(a, ast.AggRef):
            raise DCompileError(f"{call.name}() argument {i + 1} must be an aggregation",
                                a.span)
        a.ty = INT64
        info = self.aggs.get(a.name)
        if info is None:
            if self.lenient:
                return None  # type: ignore[return-value]
            raise DCompileError(f"aggregation @{a.name} is not defined before this use", a.span,
                                hint="aggregate into it in an earlier clause")
        return info

    def printf(self, call: ast.Call) -> None:
        from dtrace_nb.lang.printf_format import parse_format

        if not call.args or not isinstance(call.args[0], ast.StrLit):
            raise DCompileError(f"{call.name}() needs a format string literal as its first "
                                "argument", call.span)
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
            raise DCompileError(f"{call.name}() format \"{fmt.value}\" needs {len(wanted)} "
                                f"argument{'s' * (len(wanted) != 1)}, {len(args)} given",
                                call.span)
        for i, (a, kind) in enumerate(zip(args, wanted)):
            if kind in ("stack",):
                if not (isinstance(a, ast.Call) and a.name in ("stack", "ustack")):
                    raise DCompileError("%k needs stack() or ustack()", a.span)
                lo, hi = ACTIONS[a.name]
                if not lo <= len(a.args) <= hi:
                    raise DCompileError(f"{a.name}() takes {lo} to {hi} arguments, "
                                        f"{len(a.args)} given", a.span)
                self.stack_args(a)
                a.ty = INT64
                continue
            t = self.expr(a)
            self.printf_arg(call, i, a, t, kind)

    def printf_arg(self, call: ast.Call, i: int, a: ast.Expr, t: DType, kind: str) -> None:
        if kind == "agg":
            raise DCompileError("%@ is only valid in printa()", call.args[0].span)
        if kind == "string" and not t.is_string:
            raise DCompileError(f"{call.name}() argument {i + 2} is {t} but the format wants a "
                                "string", a.span)
        if kind not in ("string",) and not t.is_int:
            raise DCompileError(f"{call.name}() argument {i + 2} is {t} but the format wants "
                                "an integer", a.span)

    def printa(self, call: ast.Call) -> None:
        from dtrace_nb.lang.printf_format import parse_format

        args = call.args
        fmt: Optional[ast.StrLit] = None
        if isinstance(args[0], ast.StrLit):
            fmt = args[0]
            fmt.ty = StringType(len(fmt.value.encode()) + 1)
            args = args[1:]
            try:
                parse_format(fmt.value)
            except DCompileError as err:
                raise DCompileError(err.message, fmt.span, err.hint) from None
        if not args:
            raise DCompileError("printa() needs at least one aggregation", call.span)
        infos = []
        for i, a in enumerate(args):
            if not isinstance(a, ast.AggRef):
                raise DCompileError("printa() arguments after the format must be aggregations",
                                    a.span)
            a.ty = INT64
            info = self.aggs.get(a.name)
            if info is None:
                if self.lenient:
                    continue
                raise DCompileError(f"aggregation @{a.name} is not defined before this use",
                                    a.span, hint="aggregate into it in an earlier clause")
            infos.append((a, info))
        if fmt is None and len(args) > 1:
            raise DCompileError("printa() of several aggregations needs a format", call.span)
        for a, info in infos[1:]:
            first = infos[0][1]
            if [t.is_int for t in info.key_types] != [t.is_int for t in first.key_types]:
                raise DCompileError(f"@{info.name} and @{first.name} have different keys and "
                                    "cannot be printed together", a.span)

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
            return self.ident(e)
        if isinstance(e, ast.ScopedVar):
            return self.scoped(e)
        if isinstance(e, ast.MacroVar):
            return self.macro(e)
        if isinstance(e, ast.Unary):
            return self.unary(e)
        if isinstance(e, ast.Postfix):
            return self.incdec(e, e.operand, e.op)
        if isinstance(e, ast.Binary):
            return self.binary(e)
        if isinstance(e, ast.Ternary):
            return self.ternary(e)
        if isinstance(e, ast.Assign):
            return self.assign(e)
        if isinstance(e, ast.Cast):
            t = self.type_of(e.to)
            if not t.is_int:
                raise DCompileError(f"cannot cast to '{e.to}'", e.to.span or e.span)
            if not self.expr(e.operand).is_int:
                raise DCompileError(f"cannot cast {e.operand.ty} to an integer type",
                                    e.operand.span, hint="strings convert with strtoll()")
            return t
        if isinstance(e, ast.SizeOf):
            if e.of_type is not None:
                t = self.type_of(e.of_type)
            else:
                t = self.expr(e.operand)
            e.size = t.size if isinstance(t, (IntType, StringType)) else 8  # type: ignore[attr-defined]
            return IntType(8, False, "size_t")
        if isinstance(e, ast.StringOf):
            t = self.expr(e.operand)
            if t.is_string:
                return t
            if not t.is_int:
                raise DCompileError(f"stringof cannot convert {t}", e.span)
            return StringType(self.strsize)
        if isinstance(e, ast.Index):
            return self.index(e)
        if isinstance(e, ast.Member):
            return self.member(e)
        if isinstance(e, ast.Call):
            return self.call(e)
        if isinstance(e, ast.AggRef):
            raise DCompileError("an aggregation has no value in an expression", e.span,
                                hint="print it with printa() or read it from the result")
        raise DCompileError(f"{type(e).__name__} expressions are not supported", e.span)

    def ident(self, e: ast.Ident) -> DType:
        n = e.name
        var = self.vars.get(("global", n))
        if var is not None:
            if var.is_assoc:
                raise DCompileError(f"{n} is an associative array; index it: {n}[...]", e.span)
            e.var = var  # type: ignore[attr-defined]
            return var.type
        if n in INT_BUILTINS:
            if n.startswith("arg") and n[3:].isdigit():
                self.note_arg(int(n[3:]))
            return INT_BUILTINS[n]
        if n == "execname":
            return EXECNAME
        if n in PROBE_STRINGS:
            return StringType(self.probe_string_size)
        if n in UNAVAILABLE_BUILTINS:
            raise DCompileError(UNAVAILABLE_BUILTINS[n], e.span)
        if n == "args":
            raise DCompileError("args must be indexed: args[N]", e.span)
        if self.lenient:
            return INT64
        raise DCompileError(f"unknown variable '{n}'", e.span,
                            hint="assign it first (x = ...), or use a built-in: pid tid ppid "
                                 "uid gid execname timestamp cpu id probefunc arg0..arg9 ...")

    def note_arg(self, n: int) -> None:
        pass

    def scoped(self, e: ast.ScopedVar) -> DType:
        var = self.vars.get((e.scope, e.name))
        if var is None:
            if self.lenient:
                return INT64
            raise DCompileError(f"{e.scope}->{e.name} is never assigned", e.span,
                                hint=f"assign it in a clause (e.g. {e.scope}->{e.name} = ...)")
        e.var = var  # type: ignore[attr-defined]
        return var.type

    def macro(self, e: ast.MacroVar) -> DType:
        text = self.macros.value(e.name, e.span)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DCompileError(f"the value of ${'$' * e.quoted}{e.name} is not valid UTF-8 "
                                "text", e.span) from None
        if e.quoted:
            e.resolved = text  # type: ignore[attr-defined]
            return StringType(len(text.encode()) + 1)
        if text == "" and self.macros.defaultargs:
            e.resolved = 0  # type: ignore[attr-defined]
            return INT64
        try:
            e.resolved = int(text, 0)  # type: ignore[attr-defined]
        except ValueError:
            e.resolved = text  # type: ignore[attr-defined]
            return StringType(len(text.encode()) + 1)
        if not INT64_MIN <= e.resolved <= UINT64_MAX:  # type: ignore[attr-defined]
            raise DCompileError(f"the value of ${e.name} ({text}) does not fit in 64 bits",
                                e.span)
        return INT64

    def index(self, e: ast.Index) -> DType:
        base = e.base
        if isinstance(base, ast.AggRef):
            raise DCompileError("an aggregation has no value in an expression", e.span,
                                hint="print it with printa() or read it from the result")
        if isinstance(base, ast.Ident) and base.name == "args" and ("global", "args") not in self.vars:
            return self.args_index(e)
        if not isinstance(base, ast.Ident):
            raise DCompileError("only associative arrays and args[] can be indexed", e.span)
        key_types = [self.expr(k) for k in e.indexes]
        for k, t in zip(e.indexes, key_types):
            if not (t.is_int or t.is_string):
                raise DCompileError(f"an array key must be an integer or a string, not {t}",
                                    k.span)
        var = self.vars.get(("global", base.name))
        if var is None:
            if self.lenient:
                return INT64
            raise DCompileError(f"associative array {base.name} is never assigned", e.span)
        if not var.is_assoc:
            raise DCompileError(f"{base.name} is a scalar and cannot be indexed", e.span)
        self.match_keys(var, key_types, e)
        e.var = var  # type: ignore[attr-defined]
        return var.type

    def match_keys(self, var: Variable, key_types: list[DType], e: ast.Index) -> None:
        if len(var.key_types) != len(key_types):
            raise DCompileError(f"{var.name}[] has {len(var.key_types)} key(s) at {var.span}, "
                                f"{len(key_types)} here", e.span)
        for i, (old, new) in enumerate(zip(var.key_types, key_types)):
            if old.is_int != new.is_int:
                raise DCompileError(f"key {i + 1} of {var.name}[] is {old} at {var.span}, "
                                    f"{new} here", e.indexes[i].span)

    def args_index(self, e: ast.Index) -> DType:
        if len(e.indexes) != 1:
            raise DCompileError("args[] takes one index", e.span)
        n = self.constant(e.indexes[0], "the args[] index")
        if not 0 <= n < 10:
            raise DCompileError(f"args[{n}] is out of range (0..9)", e.indexes[0].span)
        infos = [p.args[n] for p in self.clause.probes if n < len(p.args)]
        if not infos:
            desc = self.clause.probes[0].description
            count = len(self.clause.probes[0].args)
            raise DCompileError(f"args[{n}] does not exist: {desc} has {count} argument(s)",
                                e.span, hint="list argument types with dtrace-nb -lv -n PROBE")
        types = {self.arg_type(a) for a in infos}
        if len(types) > 1:
            if all(t.is_int for t in types):
                t = INT64
            else:
                names = sorted({a.dtrace_type for a in infos})
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more"
                                                 if len(names) > 8 else "")
                raise DCompileError(f"args[{n}] has different types on the probes of this clause "
                                    f"({shown})", e.span,
                                    hint="split the clause so each has one argument type")
        else:
            t = types.pop()
        if t.is_string and len({a.user_string for a in infos}) > 1:
            raise DCompileError(f"args[{n}] is a user-space string on some probes of this clause "
                                "and a kernel one on others", e.span,
                                hint="split the clause by probe")
        e.arg = n  # type: ignore[attr-defined]
        e.arg_user = infos[0].user_string  # type: ignore[attr-defined]
        self.note_arg(n)
        return t

    def arg_type(self, a: ArgInfo) -> DType:
        if a.dtrace_type == "string":
            return StringType(a.string_size or self.strsize)
        if a.members:
            members = []
            for m in a.members:
                mt = (StringType(m.string_size or self.strsize) if m.dtrace_type == "string"
                      else native_type(m.dtrace_type))
                members.append(MemberType(m.name, mt, m.c_expr))
            return TranslatedType(a.dtrace_type, tuple(members))
        return native_type(a.dtrace_type)

    def member(self, e: ast.Member) -> DType:
        t = self.expr(e.base)
        if isinstance(t, TranslatedType):
            if not e.arrow:
                raise DCompileError(f"{t} is a pointer: use -> to reach its members", e.span)
            m = t.member(e.name)
            if m is None:
                raise DCompileError(f"{t} has no member '{e.name}'", e.span,
                                    hint="members: " + ", ".join(x.name for x in t.members))
            e.member = m  # type: ignore[attr-defined]
            return m.dtype
        raise DCompileError(f"'{'->' if e.arrow else '.'}{e.name}' needs a struct; "
                            f"{_describe(e.base)} is {t}", e.span,
                            hint="kernel struct types are not available; providers give "
                                 "translated args[] (e.g. args[0]->pr_pid)")

    def call(self, e: ast.Call) -> DType:
        where = e.name_span if e.name_span.line else e.span
        if e.name in AGG_FUNCS:
            raise DCompileError(f"{e.name}() may only be assigned to an aggregation",
                                e.span, hint=f"@name[keys] = {e.name}(...)")
        if e.name in ACTIONS:
            raise DCompileError(f"{e.name}() is an action and has no value", e.span)
        sub = SUBROUTINES.get(e.name)
        if sub is None:
            raise DCompileError(f"unknown function '{e.name}()'", where)
        n, hi = len(e.args), len(sub.args)
        lo = hi - sub.optional
        if not lo <= n <= hi:
            want = f"{lo}" if lo == hi else f"{lo} or {hi}"
            raise DCompileError(f"{e.name}() takes {want} argument{'s' * (hi != 1)}, {n} given",
                                e.span)
        for i, (a, kind) in enumerate(zip(e.args, sub.args)):
            t = self.expr(a)
            if kind == "int" and not t.is_int:
                raise DCompileError(f"{e.name}() argument {i + 1} must be an integer, not {t}",
                                    a.span)
            if kind == "string" and not t.is_string:
                raise DCompileError(f"{e.name}() argument {i + 1} must be a string, not {t}",
                                    a.span, hint="read a string from an address with "
                                                 "copyinstr() (user) or stringof() (kernel)")
        e.sub = sub  # type: ignore[attr-defined]
        if e.name == "speculation":
            self.uses_speculation = True
        if e.name == "copyin":
            size = self.constant(e.args[1], "copyin() size")
            if not 0 < size <= 4096:
                raise DCompileError("copyin() size must be between 1 and 4096", e.args[1].span)
            return PtrType(8, False, "void *", None)
        if sub.result == "string":
            if e.name == "lltostr":
                return StringType(24)
            if e.name == "inet_ntoa":
                return StringType(16)
            if e.name == "stringof":
                t = e.args[0].ty
                return t if t.is_string else StringType(self.strsize)
            return StringType(self.strsize)
        return sub.int_type or INT64

    def unary(self, e: ast.Unary) -> DType:
        if e.op in ("++pre", "--pre"):
            return self.incdec(e, e.operand, e.op[:2])
        t = self.expr(e.operand)
        if e.op in ("-", "+", "~", "!"):
            if not t.is_int:
                raise DCompileError(f"operator {e.op} needs an integer operand, not {t}", e.span)
            return INT if e.op == "!" else unary_promote(t)
        if e.op == "*":
            if not isinstance(t, PtrType):
                raise DCompileError(f"operator * needs a pointer, not {t}", e.span,
                                    hint="cast the address first, e.g. *(int *)arg0")
            if t.target is None:
                raise DCompileError("cannot dereference a void pointer", e.span,
                                    hint="cast it to the type to read, e.g. *(int *)p")
            return t.target
        if e.op == "&":
            raise DCompileError("the address of a D variable cannot be taken", e.span)
        raise DCompileError(f"operator {e.op} is not supported", e.span)

    def incdec(self, e: ast.Expr, operand: ast.Expr, op: str) -> DType:
        t = self.lvalue(operand, None)
        if not t.is_int:
            raise DCompileError(f"operator {op} needs an integer variable", e.span)
        return t

    def binary(self, e: ast.Binary) -> DType:
        if e.op == ",":
            self.expr(e.left)
            return self.expr(e.right)
        a, b = self.expr(e.left), self.expr(e.right)
        if e.op in _COMPARE:
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
            raise DCompileError(f"operator {e.op} needs integer operands, not {a} and {b}", e.span,
                                hint="join strings with strjoin()" if e.op == "+" else None)
        if e.op in ("<<", ">>"):
            return unary_promote(a)
        if e.op in ("+", "-") and isinstance(a, PtrType) and not isinstance(b, PtrType):
            return a  # pointer arithmetic keeps the pointer (scaled by the code generator)
        return promote(a, b)

    def ternary(self, e: ast.Ternary) -> DType:
        if not self.expr(e.cond).is_int:
            raise DCompileError("the condition of ?: must be an integer", e.cond.span)
        a, b = self.expr(e.then), self.expr(e.other)
        if a.is_int and b.is_int:
            return promote(a, b)
        if a.is_string and b.is_string:
            return StringType(max(a.size, b.size))
        raise DCompileError(f"the two sides of ?: must both be integers or both strings, not "
                            f"{a} and {b}", e.span)

    # -- assignment --------------------------------------------------------------------

    def assign(self, e: ast.Assign) -> DType:
        vt = self.expr(e.value)
        if isinstance(vt, (TranslatedType, VoidType)):
            raise DCompileError(f"a variable cannot hold {vt}", e.value.span,
                                hint="assign a member instead, e.g. x = args[0]->member")
        if e.op != "=" and not vt.is_int:
            raise DCompileError(f"operator {e.op} needs an integer value, not {vt}", e.value.span)
        t = self.lvalue(e.target, vt if e.op == "=" else None, e)
        if t.is_string != vt.is_string:
            raise DCompileError(f"cannot assign {vt} to {_describe(e.target)}, which is {t}",
                                e.span)
        if e.op != "=" and not t.is_int:
            raise DCompileError(f"operator {e.op} needs an integer variable", e.span)
        return t

    def lvalue(self, target: ast.Expr, new_type: Optional[DType],
               assign: Optional[ast.Assign] = None) -> DType:
        """The type of an assignable expression, creating the variable on first assignment."""
        if isinstance(target, ast.Ident):
            n = target.name
            if n in INT_BUILTINS or n in PROBE_STRINGS or n in ("execname", "args"):
                raise DCompileError(f"'{n}' is a built-in variable and cannot be assigned",
                                    target.span)
            var = self.vars.get(("global", n))
            if var is None:
                if new_type is None:
                    return self.ident(target)
                var = self.new_var("global", n, new_type, target.span)
            elif var.is_assoc:
                raise DCompileError(f"{n} is an associative array; index it: {n}[...]",
                                    target.span)
            target.var = var  # type: ignore[attr-defined]
            target.ty = var.type
            return var.type
        if isinstance(target, ast.ScopedVar):
            var = self.vars.get((target.scope, target.name))
            if var is None:
                if new_type is None:
                    return self.scoped(target)
                var = self.new_var(target.scope, target.name, new_type, target.span)
            target.var = var  # type: ignore[attr-defined]
            target.ty = var.type
            return var.type
        if isinstance(target, ast.Index) and isinstance(target.base, ast.Ident) \
                and target.base.name != "args":
            key_types = [self.expr(k) for k in target.indexes]
            for k, t in zip(target.indexes, key_types):
                if not (t.is_int or t.is_string):
                    raise DCompileError(f"an array key must be an integer or a string, not {t}",
                                        k.span)
            n = target.base.name
            var = self.vars.get(("global", n))
            if var is None:
                if new_type is None:
                    return self.index(target)
                keys = [StringType(self.strsize) if t.is_string else INT64 for t in key_types]
                var = self.new_var("global", n, new_type, target.span, keys)
            if not var.is_assoc:
                raise DCompileError(f"{n} is a scalar and cannot be indexed", target.span)
            self.match_keys(var, key_types, target)
            target.var = var  # type: ignore[attr-defined]
            target.ty = var.type
            return var.type
        raise DCompileError(f"{_describe(target)} cannot be assigned", target.span,
                            hint="assign variables: x, x[key], self->x, this->x")

    def new_var(self, scope: str, name: str, t: DType, span: ast.Span,
                keys: Optional[list[DType]] = None) -> Variable:
        if not (t.is_int or t.is_string):
            raise DCompileError(f"a variable cannot hold {t}", span)
        if t.is_int and not isinstance(t, PtrType) and t.size < 4 and False:
            t = INT
        var = Variable(scope, name, self.storage_type(t), span, keys)
        self.vars[(scope, name)] = var
        return var


def const_value(e: ast.Expr) -> Optional[int]:
    """The value of an integer constant expression, or None."""
    if isinstance(e, ast.IntLit):
        return e.value
    if isinstance(e, ast.CharLit):
        return e.value
    if isinstance(e, ast.MacroVar) and isinstance(getattr(e, "resolved", None), int):
        return e.resolved  # type: ignore[attr-defined]
    if isinstance(e, ast.Unary) and e.op in ("-", "+", "~"):
        v = const_value(e.operand)
        if v is None:
            return None
        return -v if e.op == "-" else v if e.op == "+" else ~v
    if isinstance(e, ast.SizeOf):
        return getattr(e, "size", None)
    if isinstance(e, ast.Cast):
        v = const_value(e.operand)
        return None if v is None or not isinstance(e.ty, IntType) else e.ty.wrap(v)
    if isinstance(e, ast.Binary) and e.op in ("+", "-", "*", "<<", "|", "&"):
        a, b = const_value(e.left), const_value(e.right)
        if a is None or b is None:
            return None
        return {"+": a + b, "-": a - b, "*": a * b, "<<": a << b if 0 <= b < 64 else 0,
                "|": a | b, "&": a & b}[e.op]
    return None


def _describe(e: ast.Expr) -> str:
    try:
        from dtrace_nb.lang.printer import to_source

        return to_source(e)
    except Exception:  # a description is a convenience
        return "this expression"


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
    check_nesting(program)
    try:
        return Checker(catalog, macros, options, bind_ctx).check(program)
    except RecursionError:
        # check_nesting bounds the depth (MAX_NESTING); this is the net under a deep caller stack
        raise DCompileError("the program is nested too deeply to check",
                            program.span) from None


def check_nesting(program: ast.Program) -> None:
    """Refuse, at the node that goes too deep, a program nested beyond MAX_NESTING."""
    todo: list = [(program, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_NESTING:
            raise DCompileError(f"the program is nested too deeply (more than {MAX_NESTING} "
                                "levels of expressions and blocks)", node.span)
        todo.extend((child, depth + 1) for child in ast.children(node))
