"""Actions: statements that record data or act on the session (printf, trace, exit,
printa, clear, system, raise...): their argument counts and kinds, printf formats, and
which are destructive. The order rules of speculation are in speculation.py."""

from __future__ import annotations

from typing import Callable, Optional

from dtrace_nb.errors import DCompileError, arg_count_error, proto_arg, proto_len
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import ACTIONS, DESTRUCTIVE
from dtrace_nb.lang.check.aggregations import agg_arg, printa_aggs
from dtrace_nb.lang.check.state import (INT64_MAX, STACK_FRAMES_MAX, TRACEMEM_MAX,
                                        AggregationValue)
from dtrace_nb.lang.check.walk import Walk
from dtrace_nb.lang.printf_format import parse_format
from dtrace_nb.lang.types import (INT64, DType, StringType, TranslatedType,
                                  VoidType)

NOT_ON_LINUX = ("panic", "breakpoint", "chill", "freopen", "ftruncate")


def check_action(w: Walk, call: ast.Call) -> None:
    lo, hi = ACTIONS[call.name]
    n = len(call.args)
    if not lo <= n <= hi:
        raise arg_count_error(call.name, n, lo, hi, call.span)
    if call.name in DESTRUCTIVE:
        w.destructive.append(call)
    rule = _RULES.get(call.name)
    if rule is not None:  # the arguments first, as dtrace(1) cooks them
        rule(w, call)
    if call.name in NOT_ON_LINUX:
        raise DCompileError(f"{call.name}() is not supported on Linux by dtrace-nb", call.span)


def _int_arg(w: Walk, call: ast.Call, i: int, proto: str = "int") -> None:
    if not w.x.value(call.args[i]).is_int:
        got = w.x.ann.type(call.args[i])
        raise DCompileError(f"{call.name}() argument {i + 1} must be an integer, "
                            f"not {got}", call.args[i].span, tag="D_PROTO_ARG",
                            dtrace=proto_arg(call.name, i + 1, proto, str(got)))


def _format(w: Walk, call: ast.Call, fmt: ast.StrLit) -> list:
    w.x.ann.types[fmt] = StringType(len(fmt.value.encode()) + 1)
    try:
        return [c for c in parse_format(fmt.value) if not isinstance(c, str)]
    except DCompileError as err:
        raise DCompileError(err.message, fmt.span, err.hint, tag=err.tag,
                            dtrace=err.dtrace) from None


def _printf(w: Walk, call: ast.Call) -> None:
    """printf() and system(): a format literal, then one argument per conversion."""
    fmt = call.args[0] if call.args else None
    if not isinstance(fmt, ast.StrLit):
        t = w.x.value(fmt) if fmt is not None else None
        # dt_printf: a string that is not a constant, or not a string at all
        tag, proto = ("D_PRINTF_ARG_FMT", "string constant") if t is not None and \
            t.is_string else ("D_PROTO_ARG", "string")
        raise DCompileError(f"{call.name}() needs a format string literal as its first "
                            "argument", call.span, tag=tag if t is not None else "",
                            dtrace=proto_arg(call.name, 1, proto, str(t)) if t is not None
                            else "")
    if fmt.value == "":
        raise DCompileError(f"{call.name}() has an empty format string", fmt.span,
                            tag="D_PRINTF_FMT_EMPTY",
                            dtrace=f"{call.name}( ) format string is empty")
    wanted: list[str] = []
    # per argument wanted: (conversion number from 1, the conversion, "*"/".*"/"" for a
    # width, a precision or the value), for dtrace(1)'s words about it
    owner: list[tuple[int, object, str]] = []
    convs = _format(w, call, fmt)
    for n, conv in enumerate(convs, 1):
        for star, dyn in ((conv.width, "*"), (conv.precision, ".*")):
            if star == "*":
                wanted.append("int")
                owner.append((n, conv, dyn))
        if conv.kind != "none":
            wanted.append(conv.kind)
            owner.append((n, conv, ""))
    args = call.args[1:]
    if len(args) != len(wanted):
        tag, text = _printf_count_words(call.name, owner, len(args))
        raise DCompileError(f"{call.name}() format \"{fmt.value}\" needs {len(wanted)} "
                            f"argument{'s' * (len(wanted) != 1)}, {len(args)} given", call.span,
                            tag=tag, dtrace=text)
    for i, (a, kind) in enumerate(zip(args, wanted)):
        if kind == "stack":
            _stack_conversion(w, a)
        else:
            _printf_arg(call, i, a, w.x.value(a), kind, owner[i])


def _stack_conversion(w: Walk, a: ast.Expr) -> None:
    if not (isinstance(a, ast.Call) and a.name in ("stack", "ustack")):
        raise DCompileError("%k needs stack() or ustack()", a.span)
    lo, hi = ACTIONS[a.name]
    if not lo <= len(a.args) <= hi:
        raise DCompileError(f"{a.name}() takes {lo} to {hi} arguments, {len(a.args)} given",
                            a.span, tag="D_PROTO_LEN",
                            dtrace=proto_len(a.name, len(a.args), lo, hi))
    _stack_args(w, a)
    w.x.ann.types[a] = INT64


def _printf_count_words(func: str, owner: list, given: int) -> tuple[str, str]:
    """dt_printf_validate's tag and words for too few or too many arguments."""
    if given > len(owner):
        return ("D_PRINTF_ARG_EXTRA", f"{func}( ) prototype mismatch: only {len(owner)} "
                "arguments required by this format string")
    n, conv, dyn = owner[given]
    name = conv.length + conv.conv
    if dyn:
        return ("D_PRINTF_DYN_PROTO", f"{func}( ) prototype mismatch: conversion #{n} "
                f"(%{name}) is missing a corresponding \"{dyn}\" argument")
    return ("D_PRINTF_ARG_PROTO", f"{func}( ) prototype mismatch: conversion #{n} (%{name}) "
            "is missing a corresponding value argument")


# what dtrace(1) says a conversion takes (dt_printf.c's prototypes), by conversion letter
_CONV_PROTO = {"s": "char [] or string (or use stringof)", "p": "pointer or integer",
               "a": "pointer or integer"}
_XINT = "char, short, int, long, or long long"


def _printf_arg(call: ast.Call, i: int, a: ast.Expr, t: DType, kind: str,
                owner: tuple) -> None:
    if kind == "agg":
        raise DCompileError("%@ is only valid in printa()", call.args[0].span,
                            tag="D_PRINTF_AGG_CONV",
                            dtrace=f"%@ conversion requires an aggregation and is not for "
                                   f"use with {call.name}( )")
    n, conv, dyn = owner
    if dyn:
        tag = "D_PRINTF_DYN_TYPE"
        words = (f"{call.name}( ) argument #{i + 2} is incompatible with conversion #{n} "
                 f"prototype:\n\tconversion: % {dyn} {conv.length + conv.conv}\n"
                 f"\t prototype: int\n\t  argument: {t}")
    else:
        tag = "D_PRINTF_ARG_TYPE"
        words = (f"{call.name}( ) argument #{i + 2} is incompatible with conversion #{n} "
                 f"prototype:\n\tconversion: %{conv.length + conv.conv}\n"
                 f"\t prototype: {_CONV_PROTO.get(conv.conv, _XINT)}\n\t  argument: {t}")
    if kind == "string" and not t.is_string:
        raise DCompileError(f"{call.name}() argument {i + 2} is {t} but the format wants a "
                            "string", a.span, tag=tag, dtrace=words)
    if kind != "string" and not t.is_int:
        raise DCompileError(f"{call.name}() argument {i + 2} is {t} but the format wants "
                            "an integer", a.span, tag=tag, dtrace=words)


def _printa(w: Walk, call: ast.Call) -> None:
    args = call.args
    conversions: Optional[list] = None
    if isinstance(args[0], ast.StrLit):
        conversions = _format(w, call, args[0])
        args = args[1:]
    if not args:
        raise DCompileError("printa() needs at least one aggregation", call.span,
                            tag="D_PRINTA_PROTO",
                            dtrace=f"printa( ) prototype mismatch: {len(call.args)} args "
                                   f"passed, {len(call.args) + 1} expected")
    printa_aggs(w, call, args, conversions)


def _trace(w: Walk, call: ast.Call) -> None:
    t = w.x.value(call.args[0])
    if isinstance(t, VoidType):
        raise DCompileError("trace() of an action: an action has no value", call.args[0].span,
                            tag="D_TRACE_VOID",
                            dtrace="trace( ) may not be applied to a void expression")
    if isinstance(t, AggregationValue):
        raise DCompileError("trace() of an aggregation: print it with printa()",
                            call.args[0].span, tag="D_TRACE_DYN",
                            dtrace="trace( ) may not be applied to a dynamic expression")
    if isinstance(t, TranslatedType):
        raise DCompileError(f"trace() cannot record {t}", call.args[0].span)


def _tracemem(w: Walk, call: ast.Call) -> None:
    t = w.x.value(call.args[0])
    if not t.is_int:
        raise DCompileError(f"tracemem() reads memory at an address, not {t}",
                            call.args[0].span, tag="D_TRACEMEM_ADDR",
                            dtrace=proto_arg("tracemem", 1, "pointer or integer", str(t)))
    _int_arg(w, call, 1, "size_t")
    size = w.x.constant(call.args[1], "tracemem() size")
    if size <= 0:
        raise DCompileError(f"tracemem() size must be between 1 and {TRACEMEM_MAX}, "
                            f"not {size}", call.args[1].span, tag="D_TRACEMEM_SIZE",
                            dtrace="tracemem( ) argument #2 must be a non-zero positive "
                                   "integral constant expression")
    if size > TRACEMEM_MAX:
        raise DCompileError(f"tracemem() size must be between 1 and {TRACEMEM_MAX}, "
                            f"not {size}", call.args[1].span)
    if len(call.args) == 3:
        _int_arg(w, call, 2)


def _stack_args(w: Walk, call: ast.Call) -> None:
    """stack(nframes), ustack(nframes, strsize): constants, nframes positive."""
    for i, a in enumerate(call.args):
        _int_arg(w, call, i, "uint32_t")
        v = w.x.constant(a, f"{call.name}() argument")
        if i == 0 and v <= 0:
            raise DCompileError(f"{call.name}() frame count must be between 1 and "
                                f"{STACK_FRAMES_MAX}, not {v}", a.span,
                                tag="D_STACK_SIZE" if call.name == "stack" else
                                "D_USTACK_FRAMES",
                                dtrace=f"{call.name}( ) argument #1 must be a non-zero "
                                       "positive integer constant")
        if i == 0 and v > STACK_FRAMES_MAX:
            raise DCompileError(f"{call.name}() frame count must be between 1 and "
                                f"{STACK_FRAMES_MAX}, not {v}", a.span)
        if i == 1 and not 0 <= v <= INT64_MAX:
            raise DCompileError(f"{call.name}() string size must not be negative", a.span,
                                tag="D_USTACK_STRSIZE",
                                dtrace="ustack( ) argument #2 must be a positive integer "
                                       "constant")


def _exit(w: Walk, call: ast.Call) -> None:
    _int_arg(w, call, 0)
    w.uses_exit = True


def _agg_then_ints(*ints: int) -> Callable[[Walk, ast.Call], None]:
    def rule(w: Walk, call: ast.Call) -> None:
        agg_arg(w, call, 0)
        for i in ints:
            if i < len(call.args):
                _int_arg(w, call, i)
    return rule


def _setopt(w: Walk, call: ast.Call) -> None:
    for a in call.args:
        if not isinstance(a, ast.StrLit):
            raise DCompileError("setopt() takes string constants", a.span, tag="D_PROTO_ARG",
                                dtrace=proto_arg("setopt", call.args.index(a) + 1, "char *",
                                                 str(w.x.expr(a))))
        w.x.expr(a)
    # an option setopt() cannot set is reported when it runs, as dtrace(1) does


def _ints(*ints: int) -> Callable[[Walk, ast.Call], None]:
    def rule(w: Walk, call: ast.Call) -> None:
        for i in ints:
            _int_arg(w, call, i)
    return rule


def _copyout(w: Walk, call: ast.Call) -> None:
    """copyout(void *buf, uintptr_t addr, size_t nbytes)"""
    w.x.expr(call.args[0])
    _int_arg(w, call, 1, "uintptr_t")
    _int_arg(w, call, 2, "size_t")


def _copyoutstr(w: Walk, call: ast.Call) -> None:
    if not w.x.expr(call.args[0]).is_string:
        raise DCompileError("copyoutstr() copies a string", call.args[0].span)
    _int_arg(w, call, 1)
    _int_arg(w, call, 2)


# action -> the rule for its arguments (stop() has none)
_RULES: dict[str, Callable[[Walk, ast.Call], None]] = {
    "printf": _printf, "system": _printf, "printa": _printa, "trace": _trace,
    "tracemem": _tracemem, "stack": _stack_args, "ustack": _stack_args, "exit": _exit,
    "clear": _agg_then_ints(), "denormalize": _agg_then_ints(), "trunc": _agg_then_ints(1),
    "normalize": _agg_then_ints(1), "setopt": _setopt, "raise": _ints(0),
    "speculate": _ints(0), "commit": _ints(0), "discard": _ints(0),
    "copyout": _copyout, "copyoutstr": _copyoutstr, "chill": _ints(0),
}


def check_destructive(w_destructive: list[ast.Call], allowed: bool) -> None:
    """Destructive actions need -w (the destructive option)."""
    if w_destructive and not allowed:
        call = w_destructive[0]
        raise DCompileError(f"{call.name}() is a destructive action and destructive actions "
                            "are not allowed",
                            call.name_span if call.name_span.line else call.span,
                            hint="allow them with -w (or #pragma D option destructive)")
