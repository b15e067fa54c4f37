"""Aggregations: `@name[keys] = func(args)` statements, their functions, constant
parameters and keys, and one shape per aggregation across the program; and references
to aggregations by actions (printa, clear, trunc, normalize, denormalize), which must
follow an aggregating statement in program order."""

from __future__ import annotations

from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import AGG_FUNCS
from dtrace_nb.lang.check.results import AggInfo
from dtrace_nb.lang.check.state import (INT64_MAX, INT64_MIN, agg_target, check_keys,
                                        key_name)
from dtrace_nb.lang.check.walk import Walk
from dtrace_nb.lang.types import INT64, DType, StackType

LQUANTIZE_MAX_LEVELS = 4096


def check_aggregation(w: Walk, e: ast.Assign) -> None:
    name, keys = agg_target(e.target)
    label = f"@{name}"
    if e.op != "=":
        raise DCompileError(f"operator {e.op} cannot be applied to aggregation {label}",
                            e.span, hint="aggregations are assigned with '='")
    call = e.value
    if not isinstance(call, ast.Call) or call.name not in AGG_FUNCS:
        raise DCompileError(f"{label} must be assigned an aggregating function",
                            e.value.span,
                            hint="one of " + ", ".join(f"{f}()" for f in AGG_FUNCS))
    nvals, nparams = AGG_FUNCS[call.name]
    want = nvals + nparams
    if len(call.args) != want:
        raise DCompileError(f"{call.name}() takes {want} argument{'s' * (want != 1)}, "
                            f"{len(call.args)} given", call.span)
    for a in call.args[:nvals]:
        if not w.x.expr(a).is_int:
            raise DCompileError(f"{call.name}() needs an integer argument, not "
                                f"{w.x.ann.type(a)}", a.span)
    params = tuple(w.x.constant(a, f"{call.name}() parameter") for a in call.args[nvals:])
    _check_params(call, params)
    key_types = [_key_type(w, k) for k in keys]
    for k, t in zip(keys, key_types):
        if not (t.is_int or t.is_string):
            raise DCompileError(f"an aggregation key must be an integer or a string, not {t}",
                                k.span)
    info = w.aggs.get(name)
    if info is None:
        w.aggs[name] = AggInfo(name, len(w.aggs), call.name, key_types,
                               [key_name(k, i) for i, k in enumerate(keys)], e.span, params)
        return
    _same_shape(info, call, params, key_types, keys, e.target)


def _same_shape(info: AggInfo, call: ast.Call, params: tuple[int, ...],
                key_types: list[DType], keys: list[ast.Expr], target: ast.Expr) -> None:
    """A later use of an aggregation agrees with its first; keys may grow wider."""
    label = f"@{info.name}"
    if info.func != call.name:
        raise DCompileError(f"{label} is used with {call.name}() here but with "
                            f"{info.func}() at {info.span}", call.span)
    if info.params != params:
        raise DCompileError(f"{label} is used with {call.name}() parameters {params} here "
                            f"but {info.params} at {info.span}", call.span)
    check_keys(label, info.span, info.key_types, key_types, target.span,
               [k.span for k in keys], " but")
    for i, (old, new) in enumerate(zip(info.key_types, key_types)):
        if new.size > old.size:
            info.key_types[i] = new


def _key_type(w: Walk, k: ast.Expr) -> DType:
    """A key's type; stack() and ustack() are keys too (`@[ustack()] = count()`)."""
    if isinstance(k, ast.Call) and k.name in ("stack", "ustack"):
        most = 2 if k.name == "ustack" else 1
        if len(k.args) > most:
            raise DCompileError(f"{k.name}() takes at most {most} argument(s)", k.span)
        limit = w.x.constant(k.args[0], f"the {k.name}() frame count") if k.args else 0
        if limit < 0:
            raise DCompileError(f"{k.name}() frame count must be positive", k.args[0].span)
        t = StackType(8, False, f"{k.name}()", k.name, limit)
        w.x.ann.types[k] = t
        return t
    return w.x.expr(k)


def _check_params(call: ast.Call, params: tuple[int, ...]) -> None:
    for a, v in zip(call.args[-len(params):] if params else [], params):
        if not INT64_MIN <= v <= INT64_MAX:
            raise DCompileError(f"{call.name}() parameter {v} does not fit in 64 bits", a.span)
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
        if levels > LQUANTIZE_MAX_LEVELS:
            raise DCompileError(f"lquantize() has {levels} levels; at most "
                                f"{LQUANTIZE_MAX_LEVELS} are supported", call.span)
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


def referenced(w: Walk, a: ast.AggRef) -> Optional[AggInfo]:
    """The aggregation an action names; it must have been aggregated into before (None
    while learning variable types, when it may not have been seen yet)."""
    w.x.ann.types[a] = INT64
    info = w.aggs.get(a.name)
    if info is None and not w.lenient:
        raise DCompileError(f"aggregation @{a.name} is not defined before this use", a.span,
                            hint="aggregate into it in an earlier clause")
    return info


def agg_arg(w: Walk, call: ast.Call, i: int) -> None:
    """Argument `i` of clear(), trunc(), normalize(), denormalize(): an aggregation."""
    a = call.args[i]
    if not isinstance(a, ast.AggRef):
        raise DCompileError(f"{call.name}() argument {i + 1} must be an aggregation", a.span)
    referenced(w, a)


def printa_aggs(w: Walk, call: ast.Call, args: list[ast.Expr], has_format: bool) -> None:
    """printa()'s aggregations: defined, and printable together (keys of one shape)."""
    infos = []
    for a in args:
        if not isinstance(a, ast.AggRef):
            raise DCompileError("printa() arguments after the format must be aggregations",
                                a.span)
        info = referenced(w, a)
        if info is not None:
            infos.append((a, info))
    if not has_format and len(args) > 1:
        raise DCompileError("printa() of several aggregations needs a format", call.span)
    for a, info in infos[1:]:
        first = infos[0][1]
        if [t.is_int for t in info.key_types] != [t.is_int for t in first.key_types]:
            raise DCompileError(f"@{info.name} and @{first.name} have different keys and "
                                "cannot be printed together", a.span)
