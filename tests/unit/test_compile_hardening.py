"""What fuzzing the compiler found (tests/unit/test_fuzz.py), each pinned as a
specification: the input, and where and how it is refused."""

from __future__ import annotations

import time

import pytest

from dtrace_nb.errors import DError
from dtrace_nb.lang.check import MAX_NESTING
from dtrace_nb.runtime.compile import compile_program
from dtrace_nb.session import SessionConfig
from tests.dfuzz import catalog, compile_or_located_error
from tests.unit.located import assert_located


def refused(source: str, **cfg) -> DError:
    with pytest.raises(DError) as info:
        compile_program(SessionConfig(source, **cfg), catalog())
    return info.value


@pytest.mark.parametrize("program, where, message", [
    # factor ** (high + 1) of a huge high never finished
    ("BEGIN { @ = llquantize(1, 10, 0, 30, 10); }", "1:34", "overflow of 64 bits"),
    # record fields of a terabyte, or of a negative size
    ("BEGIN { tracemem(arg0, 1099511627776); }", "1:24", "between 1 and 65536"),
    ("BEGIN { tracemem(arg0, -5); }", "1:24", "between 1 and 65536"),
    ("BEGIN { tracemem(arg0, 0); }", "1:24", "between 1 and 65536"),
    ("BEGIN { stack(-1); }", "1:15", "frame count must be between 1 and 127"),
    ("BEGIN { ustack(100000000000); }", "1:16", "frame count must be between 1 and 127"),
    ("BEGIN { ustack(5, -1); }", "1:19", "string size must not be negative"),
    # C literals wider than 64 bits
    ("BEGIN { @ = lquantize(1, (1<<62) * 16, (1<<62) * 16 + 10, 1); }", "1:26",
     "does not fit in 64 bits"),
    # text Python cannot encode (a lone surrogate): UnicodeEncodeError before
    ('BEGIN { trace("a\ud800"); }', "1:17", "lone surrogate"),
    ("BEGIN { trace(1); } // \ud800", "1:24", "lone surrogate"),
])
def test_refused_where_and_why(program, where, message):
    assert_located(refused(program), program, where, message)


def test_llquantize_refusal_is_immediate():
    start = time.monotonic()
    refused("BEGIN { @ = llquantize(1, 10, 0, 1000000000000, 10); }")
    assert time.monotonic() - start < 1


@pytest.mark.parametrize("make", [
    lambda n: "BEGIN { trace(" + "1+" * n + "1); }",
    lambda n: "BEGIN { trace(" + "x?" * n + "1" + ":1" * n + "); }",
    lambda n: "BEGIN " + "{" * n + "}" * n,
    lambda n: "BEGIN { x = " + 'strjoin("a", ' * n + '"b"' + ")" * n + "; }",
    lambda n: "BEGIN { " + "if (1) " * n + "trace(1); }",
], ids=["sum", "ternary", "blocks", "calls", "ifs"])
def test_deep_nesting_is_a_located_error_not_a_recursion_error(make):
    program = make(5000)
    err = refused(program)
    assert err.span is not None and "nested too deeply" in err.message


def test_nesting_up_to_the_limit_compiles():
    n = MAX_NESTING - 6
    assert compile_or_located_error("BEGIN { trace(" + "1+" * n + "1); }") == "ok"
    assert compile_or_located_error("BEGIN { x = 0; trace(" + "x?" * (n // 2) + "1"
                                    + ":1" * (n // 2) + "); }") == "ok"


def test_too_many_clauses_on_one_attachment_points_at_the_first_extra_clause():
    program = "\n".join(f"BEGIN {{ trace({i}); }}" for i in range(70))
    err = refused(program)
    assert_located(err, program, "65:1", "more than 64 clauses")


def test_a_provider_that_cannot_bind_is_located_at_the_description():
    # a provider that lists probes but cannot bind them (as fbt on a kernel without kprobes
    # or fentry; the fake catalog's nobind always): a description matching its probes
    # among others is where the refusal points
    program = "syscall::getppid:entry { }\n  :entry { }"
    assert_located(refused(program), program, "2:3", "nobind provider cannot attach")


@pytest.mark.parametrize("args, where, message", [
    (["99999999999999999999999"], "1:15", "does not fit in 64 bits"),
    (["\udcff"], "1:15", "not valid UTF-8"),  # a byte of argv that is not UTF-8
])
def test_macro_arguments_that_cannot_be_d_values(args, where, message):
    program = "BEGIN { trace($1); }"
    assert_located(refused(program, macro_args=args), program, where, message)


def test_different_argument_types_are_listed_briefly():
    # `*` (every probe; on a real kernel 56k functions among them) used to list 2,600
    # type names
    program = "dtrace:::BEGIN\n*/x/ { trace(args[1]); }"
    err = refused(program)
    assert_located(err, program, "2:14", "args[1] has different types")
    assert len(err.message) < 300 and "more)" in err.message
