"""Bad D never produces a Python traceback: every input compiles to C or raises a DError
that names line:col (tests/dfuzz.py has the generators and the property).

The short runs are part of `make test`; the `long` ones (over 100k inputs together) run
with `make test-long`. Both compile against the fixed fake catalog (tests/fakeprobes.py):
nothing of the host is read and nothing is loaded.
"""

from __future__ import annotations

import collections

import pytest
from hypothesis import HealthCheck, given, settings

from tests.dfuzz import compile_or_located_error, mutated_sources, programs

SHORT = 1000  # each of the two short runs: about 25 s together
LONG = 50_000  # each of the two long runs: 100k inputs together

_SETTINGS = dict(database=None, deadline=None, derandomize=False,
                 suppress_health_check=list(HealthCheck))
# outcome ('ok' or the DError class) -> count, for the generated programs
OUTCOMES: collections.Counter = collections.Counter()


def _generated(case) -> None:
    source, options = case
    OUTCOMES[compile_or_located_error(source, options)] += 1


def _mutated(source) -> None:
    compile_or_located_error(source)


@settings(max_examples=SHORT, **_SETTINGS)
@given(programs())
def test_generated_programs_compile_or_fail_located(case):
    _generated(case)


@settings(max_examples=SHORT, **_SETTINGS)
@given(mutated_sources())
def test_mutated_bytes_compile_or_fail_located(source):
    _mutated(source)


@pytest.mark.long
@settings(max_examples=LONG, **_SETTINGS)
@given(programs())
def test_long_generated_programs(case):
    _generated(case)


@pytest.mark.long
@settings(max_examples=LONG, **_SETTINGS)
@given(mutated_sources())
def test_long_mutated_bytes(source):
    _mutated(source)


def test_fuzzing_reached_the_code_generator():
    """The generator is worth its time only if many programs get through the checker
    (20-40% do; the inputs are fresh on every run, so the bound leaves room: 19.2% was seen)."""
    if not OUTCOMES:
        pytest.skip("run with the fuzz tests")
    assert OUTCOMES["ok"] > 0.1 * sum(OUTCOMES.values()), dict(OUTCOMES)
