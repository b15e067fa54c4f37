"""Subroutines, the optional arguments of aggregating functions and the predefined
constants, end to end on the real kernel: each D program runs through `dtrace-nb -s` and its
output is compared byte for byte with what DTrace prints for it (each expected value worked
out by hand in the comment next to it).
"""

from __future__ import annotations

import pytest

from tests.test_language import run_d

pytestmark = pytest.mark.kernel  # every program runs through dtrace-nb on the real kernel

HIST_HEAD = "           value  ------------- Distribution ------------- count    \n"


def bar(n: int, total: int) -> str:
    return "@" * (40 * n // total) + " " * (40 - 40 * n // total)


def row(value: str, n: int, total: int) -> str:
    return f"{value:>16} |{bar(n, total)} {n:<9}\n" if n else f"{value:>16} |{' ' * 40} 0        \n"


# (id, program, expected stdout)
CASES = [
    # quantize(3, 5): the 2 bucket (2..3) gains the increment 5, not 1
    ("quantize-increment",
     'BEGIN { @ = quantize(3, 5); exit(0); }',
     "\n\n" + HIST_HEAD + row("1", 0, 5) + row("2", 5, 5) + row("4", 0, 5) + "\n"),
    # lquantize(v, 0, 5): the step defaults to 1; 3 and 4 land in their own buckets
    ("lquantize-default-step",
     'BEGIN { @ = lquantize(3, 0, 5); @ = lquantize(4, 0, 5); exit(0); }',
     "\n\n" + HIST_HEAD + row("2", 0, 2) + row("3", 1, 2) + row("4", 1, 2)
     + row(">= 5", 0, 2) + "\n"),
    # lquantize(2, 0, 10, 2, 3): bucket 2..3 gains 3
    ("lquantize-increment",
     'BEGIN { @ = lquantize(2, 0, 10, 2, 3); exit(0); }',
     "\n\n" + HIST_HEAD + row("0", 0, 3) + row("2", 3, 3) + row("4", 0, 3) + "\n"),
    # llquantize(15, 10, 0, 3, 10, 7): 15 is in the 10..19 bucket, which gains 7; the
    # increment is an expression evaluated when the clause fires (i is 7 there)
    ("llquantize-increment",
     'BEGIN { i = 7; @ = llquantize(15, 10, 0, 3, 10, i); exit(0); }',
     "\n\n" + HIST_HEAD + row("9", 0, 7) + row("10", 7, 7) + row("20", 0, 7) + "\n"),
    # Linux's signal numbers and errno values, DTrace's fault kinds, NULL
    ("constants",
     'BEGIN { printf("%d %d %d %d %d %d %d\\n", SIGHUP, SIGINT, SIGUSR1, SIGKILL, EPERM, ENOENT,'
     ' NULL); exit(0); }',
     "1 2 10 9 1 2 0\n\n"),
    # a constant is a constant expression: an lquantize() bound
    ("constant-as-parameter",
     'BEGIN { @ = lquantize(9, 0, SIGUSR1); exit(0); }',
     "\n\n" + HIST_HEAD + row("8", 0, 1) + row("9", 1, 1) + row(">= 10", 0, 1) + "\n"),
]


@pytest.mark.parametrize("name, program, expected", CASES, ids=[c[0] for c in CASES])
def test_program_output(tmp_path, name, program, expected):
    r = run_d(tmp_path, program)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected


def test_error_clause_compares_arg4_with_fault_constants(tmp_path):
    # the divide-by-zero ends BEGIN's clause; ERROR's arg4 is DTRACEFLT_DIVZERO (4)
    r = run_d(tmp_path, 'BEGIN { x = 0; y = 1 / x; }\n'
                        'ERROR /arg4 == DTRACEFLT_DIVZERO/ { printf("%d\\n", arg4); exit(0); }')
    assert r.stdout == "4\n\n", r.stderr


@pytest.mark.parametrize("program, message", [
    ('BEGIN { @ = quantize(1, ""); }', 'quantize() increment must be an integer, not'),
    ('BEGIN { @ = lquantize(1, 0); }', 'lquantize() takes 3 to 5 arguments, 2 given'),
    ('BEGIN { @ = lquantize(10, 0, 100, 1, 10, 20); }',
     'lquantize() takes 3 to 5 arguments, 6 given'),
    ('BEGIN { @ = llquantize(50000, 10, 2, 4); }',
     'llquantize() takes 5 or 6 arguments, 4 given'),
    ('BEGIN { @ = count(1); }', 'count() takes 0 arguments, 1 given'),
])
def test_aggregating_function_arguments_refused(tmp_path, program, message):
    r = run_d(tmp_path, program)
    assert r.returncode != 0
    assert message in r.stderr
