"""Aggregations: `@name[keys] = func(args)` statements, their functions, constant
parameters and keys, and one shape per aggregation across the program; and references
to aggregations by actions (printa, clear, trunc, normalize, denormalize), which must
follow an aggregating statement in program order."""

from __future__ import annotations

from typing import Optional

from dtrace_nb.errors import DCompileError, arg_count_error, proto_arg
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import (ACTIONS, AGG_FUNCS, AGG_INCREMENT, AGG_PARAM_DEFAULTS,
                                     SUBROUTINES, UNAVAILABLE_SUBROUTINES)
from dtrace_nb.lang.check.results import AggInfo
from dtrace_nb.lang.check.state import (INT64_MAX, INT64_MIN, NotConstant, agg_target,
                                        check_keys, key_name)
from dtrace_nb.lang.check.walk import Walk
from dtrace_nb.lang.types import INT64, DType, StackType

LQUANTIZE_MAX_LEVELS = 4096


def check_aggregation(w: Walk, e: ast.Assign) -> None:
    root = e.target
    while isinstance(root, ast.Index):
        root = root.base
    assert isinstance(root, ast.AggRef)
    label = f"@{root.name}"
    if e.op != "=":
        raise DCompileError(f"operator {e.op} cannot be applied to aggregation {label}",
                            e.span, hint="aggregations are assigned with '='")
    if isinstance(e.target, ast.Index) and isinstance(e.target.base, ast.Index):
        raise DCompileError(f"{label} has one list of keys: @a[k1, k2], not @a[k1][k2]",
                            e.target.span, tag="D_AGG_MDIM",
                            dtrace=f"improper attempt to reference {label} as a "
                                   "multi-dimensional array")
    name, keys = agg_target(e.target)
    call = e.value
    if isinstance(call, ast.Call) and call.name not in AGG_FUNCS and not known_function(
            call.name):
        raise DCompileError(f"unknown function '{call.name}()'", call.span,
                            tag="D_FUNC_UNDEF", dtrace=f"undefined function name: {call.name}")
    if not isinstance(call, ast.Call) or call.name not in AGG_FUNCS:
        raise DCompileError(f"{label} must be assigned an aggregating function",
                            e.value.span, tag="D_AGG_FUNC",
                            dtrace=f"{label} must be assigned the result of an aggregating "
                                   "function",
                            hint="one of " + ", ".join(f"{f}()" for f in AGG_FUNCS))
    nvals, nparams = AGG_FUNCS[call.name]
    defaults = AGG_PARAM_DEFAULTS.get(call.name, ())
    lo = nvals + nparams - len(defaults)
    hi = nvals + nparams + (call.name in AGG_INCREMENT)
    n = len(call.args)
    if not lo <= n <= hi:
        raise arg_count_error(call.name, n, lo, hi, call.span,
                              "or" if hi == lo + 1 else "to")
    for a in call.args[:nvals]:
        if not w.x.expr(a).is_int:
            raise DCompileError(f"{call.name}() needs an integer argument, not "
                                f"{w.x.ann.type(a)}", a.span, tag="D_AGG_SCALAR",
                                dtrace=f"{call.name}( ) argument #1 must be of scalar type")
    given = call.args[nvals:nvals + nparams]
    params = tuple(_param(w, call, i, a) for i, a in enumerate(given, 1))
    if len(given) < nparams:
        params += defaults[len(defaults) - (nparams - len(given)):]
    incr = increment(call)
    if incr is not None and not w.x.expr(incr).is_int:
        raise DCompileError(f"{call.name}() increment must be an integer, not "
                            f"{w.x.ann.type(incr)}", incr.span, tag="D_PROTO_ARG",
                            dtrace=proto_arg(call.name, len(call.args), "int",
                                             str(w.x.ann.type(incr))))
    _check_params(call, params)
    key_types = [_key_type(w, k) for k in keys]
    for i, (k, t) in enumerate(zip(keys, key_types), 1):
        if not (t.is_int or t.is_string):
            raise DCompileError(f"an aggregation key must be an integer or a string, not {t}",
                                k.span, tag="D_KEY_TYPE",
                                dtrace=f"{t} expression may not be used as aggregation index: "
                                       f"key #{i}")
    info = w.aggs.get(name)
    if info is None:
        w.aggs[name] = AggInfo(name, len(w.aggs), call.name, key_types,
                               [key_name(k, i) for i, k in enumerate(keys)], e.span, params)
        return
    _same_shape(info, call, params, key_types, keys, e.target)


def known_function(name: str) -> bool:
    return name in ACTIONS or name in SUBROUTINES or name in UNAVAILABLE_SUBROUTINES


def increment(call: ast.Call) -> Optional[ast.Expr]:
    """The optional increment of quantize(v, incr), lquantize(v, lo, hi, step, incr) and
    llquantize(v, factor, lo, hi, steps, incr): the argument after the parameters."""
    if call.name not in AGG_INCREMENT:
        return None
    nvals, nparams = AGG_FUNCS[call.name]
    return call.args[nvals + nparams] if len(call.args) > nvals + nparams else None


def _same_shape(info: AggInfo, call: ast.Call, params: tuple[int, ...],
                key_types: list[DType], keys: list[ast.Expr], target: ast.Expr) -> None:
    """A later use of an aggregation agrees with its first; keys may grow wider."""
    label = f"@{info.name}"
    if info.func != call.name:
        raise DCompileError(f"{label} is used with {call.name}() here but with "
                            f"{info.func}() at {info.span}", call.span, tag="D_AGG_REDEF",
                            dtrace=f"aggregation redefined: {label}\n\t current: {label} = "
                                   f"{call.name}( )\n\tprevious: {label} = {info.func}( ) : "
                                   f"line {info.span.line}")
    if info.params != params:
        tag, text = _mismatch(call.name, info.params, params)
        raise DCompileError(f"{label} is used with {call.name}() parameters {params} here "
                            f"but {info.params} at {info.span}", call.span, tag=tag,
                            dtrace=text)
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
    return w.x.value(k)


# dt_cg_agg_lquantize/llquantize's tags and words for a parameter that is not a constant,
# and for one that differs from the aggregation's first use
_PARAM_TAGS = {"lquantize": ("D_LQUANT_BASETYPE", "D_LQUANT_LIMTYPE", "D_LQUANT_STEPTYPE"),
               "llquantize": ("D_LLQUANT_FACTORTYPE", "D_LLQUANT_LMAGTYPE",
                              "D_LLQUANT_HMAGTYPE", "D_LLQUANT_STEPTYPE")}
_MATCH = {"lquantize": (("D_LQUANT_MATCHBASE", "lquantize( ) base (argument #1)"),
                        ("D_LQUANT_MATCHLIM", "lquantize( ) limit (argument #2)"),
                        ("D_LQUANT_MATCHSTEP", "lquantize( ) step (argument #3)")),
          "llquantize": (("D_LLQUANT_MATCHFACTOR", "llquantize() factor (argument #1)"),
                         ("D_LLQUANT_MATCHLMAG", "llquantize() lmag (argument #2)"),
                         ("D_LLQUANT_MATCHHMAG", "llquantize() hmag (argument #3)"),
                         ("D_LLQUANT_MATCHSTEPS", "llquantize() steps (argument #4)"))}


def _param(w: Walk, call: ast.Call, i: int, a: ast.Expr) -> int:
    """Parameter `i` (from 1, after the value): an integer constant."""
    try:
        return w.x.constant(a, f"{call.name}() parameter")
    except NotConstant as err:
        tags = _PARAM_TAGS.get(call.name, ())
        if i > len(tags):
            raise
        step = (call.name, i) in (("lquantize", 3), ("llquantize", 4))
        raise DCompileError(err.message, err.span, err.hint, tag=tags[i - 1],
                            dtrace=f"{call.name}( ) argument #{i} must be "
                                   f"{'a non-zero positive' if step else 'an'} integer "
                                   "constant") from None


def _mismatch(func: str, old: tuple[int, ...], new: tuple[int, ...]) -> tuple[str, str]:
    for (tag, what), o, n in zip(_MATCH.get(func, ()), old, new):
        if o != n:
            return tag, (f"{what} doesn't match previous declaration: expected {o}, "
                         f"found {n}")
    return "", ""


def _check_params(call: ast.Call, params: tuple[int, ...]) -> None:
    for a, v in zip(call.args[1:], params):  # a defaulted parameter is in range
        if not INT64_MIN <= v <= INT64_MAX:
            raise DCompileError(f"{call.name}() parameter {v} does not fit in 64 bits", a.span)
    if call.name == "lquantize":
        _check_lquantize(call, *params)
    elif call.name == "llquantize":
        _check_llquantize(call, *params)


def _check_lquantize(call: ast.Call, base: int, limit: int, step: int) -> None:
    """dt_cg_agg_lquantize's rules, in its words; a range that is not a multiple of the
    step is valid (the last level ends below the limit)."""
    a = call.args
    i32 = (-2**31, 2**31 - 1)
    if not i32[0] <= base <= i32[1]:
        raise DCompileError("lquantize( ) argument #1 must be a 32-bit quantity", a[1].span,
                            tag="D_LQUANT_BASEVAL")
    if not i32[0] <= limit <= i32[1]:
        raise DCompileError("lquantize( ) argument #2 must be a 32-bit quantity", a[2].span,
                            tag="D_LQUANT_LIMVAL")
    if limit <= base:
        raise DCompileError("lquantize( ) base (argument #1) must be less than limit "
                            "(argument #2)", a[2].span, tag="D_LQUANT_MISMATCH")
    step_span = a[3].span if len(a) > 3 else call.span
    if step <= 0:
        raise DCompileError("lquantize( ) argument #3 must be a non-zero positive integer "
                            "constant", step_span, tag="D_LQUANT_STEPTYPE")
    if step > 0xFFFF:
        raise DCompileError("lquantize( ) argument #3 must be a 16-bit quantity", step_span,
                            tag="D_LQUANT_STEPVAL")
    levels = (limit - base) // step
    if levels == 0:
        raise DCompileError("lquantize( ) step (argument #3) too large: must have at least "
                            "one quantization level", call.span, tag="D_LQUANT_STEPLARGE")
    if levels > 0xFFFF:
        raise DCompileError(f"lquantize() has {levels} levels; at most "
                            f"{LQUANTIZE_MAX_LEVELS} are supported", call.span,
                            tag="D_LQUANT_STEPSMALL",
                            dtrace="lquantize( ) step (argument #3) too small: number of "
                                   "quantization levels must be a 16-bit quantity")
    if levels > LQUANTIZE_MAX_LEVELS:  # DTrace allows 65535: here each level is map space
        raise DCompileError(f"lquantize() has {levels} levels; at most "
                            f"{LQUANTIZE_MAX_LEVELS} are supported", call.span)


def _check_llquantize(call: ast.Call, factor: int, low: int, high: int, steps: int) -> None:
    """dt_cg_agg_llquantize's rules, in its words (arguments counted after the value)."""
    a = call.args
    u16 = 0xFFFF
    if not 2 <= factor <= u16:
        raise DCompileError("llquantize( ) argument #1 must be an unsigned 16-bit quantity "
                            "greater than or equal to 2", a[1].span, tag="D_LLQUANT_FACTORVAL")
    if not 0 <= low <= u16:
        raise DCompileError("llquantize( ) argument #2 must be an unsigned 16-bit quantity",
                            a[2].span, tag="D_LLQUANT_LMAGVAL")
    if not 0 <= high <= u16:
        raise DCompileError("llquantize( ) argument #3 must be an unsigned 16-bit quantity",
                            a[3].span, tag="D_LLQUANT_HMAGVAL")
    if high < low:
        raise DCompileError("llquantize( ) argument #3 (high magnitude) must be at least "
                            "argument #2 (low magnitude)", a[3].span, tag="D_LLQUANT_HMAGVAL")
    # DTrace's limit is 64 unsigned bits; the buckets here are computed in signed ones.
    # (high < 64 first: factor ** (high + 1) of a huge high would never finish.)
    if high >= 64 or factor ** (high + 1) > 2**63:
        raise DCompileError("llquantize( ) argument #3 (high magnitude) will cause overflow "
                            "of 64 bits", a[3].span, tag="D_LLQUANT_HMAGVAL")
    if steps <= 0:
        raise DCompileError("llquantize( ) argument #4 must be a non-zero positive integer "
                            "constant", a[4].span, tag="D_LLQUANT_STEPTYPE")
    if steps > u16:
        raise DCompileError("llquantize( ) argument #4 must be an unsigned 16-bit quantity",
                            a[4].span, tag="D_LLQUANT_STEPVAL")
    if steps < factor and factor % steps:
        raise DCompileError("llquantize() argument #4 (steps) must evenly divide argument #1 "
                            "(factor) when steps<factor", a[1].span, tag="D_LLQUANT_STEPVAL")
    if steps > factor:
        if steps % factor:
            raise DCompileError("llquantize() argument #4 (steps) must be a multiple of "
                                "argument #1 (factor) when steps>factor", a[1].span,
                                tag="D_LLQUANT_STEPVAL")
        if low == 0 and (factor * factor) % steps:
            raise DCompileError("llquantize() argument #4 (steps) must evenly divide the "
                                "square of argument #1 (factor) when steps>factor and "
                                "lmag==0", a[1].span, tag="D_LLQUANT_STEPVAL")
        if low > 0 and factor ** (low + 1) % steps:
            raise DCompileError("llquantize() argument #4 (steps) must evenly divide "
                                "pow(argument #1 (factor), lmag (argument #2) + 1) when "
                                "steps>factor and lmag>0", a[1].span, tag="D_LLQUANT_STEPVAL")


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
        tag = {"clear": "D_CLEAR_AGGARG", "trunc": "D_TRUNC_AGGARG"}.get(call.name,
                                                                        "D_NORMALIZE_AGGARG")
        raise DCompileError(f"{call.name}() argument {i + 1} must be an aggregation", a.span,
                            tag=tag, dtrace=proto_arg(call.name, i + 1, "aggregation",
                                                      str(w.x.value(a))))
    referenced(w, a)


def printa_aggs(w: Walk, call: ast.Call, args: list[ast.Expr],
                fmt: Optional[list] = None) -> None:
    """printa()'s aggregations: defined, printable together (keys of one shape), and
    their keys fit the format's conversions (`fmt`, its conversions in order)."""
    has_format = fmt is not None
    infos = []
    for a in args:
        if not isinstance(a, ast.AggRef):
            raise DCompileError("printa() arguments after the format must be aggregations",
                                a.span, tag="D_PRINTA_AGGARG",
                                dtrace=proto_arg("printa", args.index(a) + 1 + has_format,
                                                 "aggregation", str(w.x.expr(a))))
        info = referenced(w, a)
        if info is not None:
            infos.append((a, info))
    for a, info in infos[1:]:
        _same_keys(call, a, infos[0][1], info)
    if not has_format and len(args) > 1:
        raise DCompileError("printa() of several aggregations needs a format", call.span)
    if fmt and infos:
        _printa_conversions(call, fmt, infos[0][1].key_types)


def _same_keys(call: ast.Call, a: ast.AggRef, first: AggInfo, info: AggInfo) -> None:
    """dt_printa_validate: aggregations printed together have keys of one signature."""
    lo, ro = first.key_types, info.key_types
    if len(lo) != len(ro):
        def keys(n: int) -> str:
            return f"{n} key{'s' * (n != 1)}"
        raise DCompileError(f"@{info.name} and @{first.name} have different keys and cannot "
                            "be printed together", a.span, tag="D_PRINTA_AGGKEY",
                            dtrace=f"printa( ): @{first.name} and @{info.name} do not have "
                                   f"matching key signatures: @{first.name} has "
                                   f"{keys(len(lo))}, @{info.name} has {keys(len(ro))}")
    for n, (lt, rt) in enumerate(zip(lo, ro), 1):
        if lt.is_int != rt.is_int:
            raise DCompileError(f"@{info.name} and @{first.name} have different keys and "
                                "cannot be printed together", a.span, tag="D_PRINTA_AGGPROTO",
                                dtrace=f"printa( ): @{info.name}[ ] key #{n} is incompatible "
                                       f"with @{first.name}:\n{first.name:>9} key #{n}: {lt}\n"
                                       f"{info.name:>9} key #{n}: {rt}")


# what each conversion takes, in dt_printf.c's words (its prototypes)
_PROTOTYPES = {**{c: "integer" for c in "diouxX"}, "c": "char, short, or int",
               "p": "pointer or integer", "a": "pointer or integer",
               "A": "pointer or integer", "s": "char [] or string (or use stringof)",
               "S": "char [] or string (or use stringof)", "k": "stack", "Y": "integer",
               **{c: "double" for c in "eEfgG"}}


def _printa_conversions(call: ast.Call, fmt: list, key_types: list[DType]) -> None:
    """dt_printf_validate: the conversions without '@' take the keys in order ('*' takes
    one too): a stack key only %k, a string key %s or %S, an integer key the others."""
    ki = 0
    for number, conv in enumerate(fmt, 1):
        wants = [None] * conv.star_count + ([] if conv.is_agg else [conv.conv])
        for want in wants:
            if ki >= len(key_types):
                return  # too few keys: text/printa.py says so when printing
            t = key_types[ki]
            kind = "stack" if isinstance(t, StackType) else "string" if t.is_string else "int"
            if want is None or want not in "ksS":
                fits = kind == "int"
            else:
                fits = kind == ("stack" if want == "k" else "string")
            if not fits:
                conv_text = "*" if want is None else f"%{conv.conv}"
                proto = "integer" if want is None else _PROTOTYPES.get(want, want)
                shown = "stack" if kind == "stack" else str(t)
                raise DCompileError(f"printa( ) argument #{ki + 2} is incompatible with "
                                    f"conversion #{number} prototype:\n\tconversion: "
                                    f"{conv_text}\n\t prototype: {proto}\n\t  argument: "
                                    f"{shown}", call.span, tag="D_PRINTF_ARG_TYPE")
            ki += 1
