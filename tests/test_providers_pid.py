"""pid provider module names as DTrace takes them: short library names (`libc`, `libc.so`
for libc.so.6), and the libraries a -c target links against though it has not mapped them
yet (held before its exec): a program of ours calls getppid(2) through libc and cbrt()
through libm a known number of times."""

from __future__ import annotations


import pytest

from tests.test_language import run_d
from tests.test_providers import build_c, agg_rows, ok

pytestmark = pytest.mark.kernel
CALLS = 37

PROGRAM_C = r"""
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = atoi(argv[1]);
	volatile double x = 0.5, sum = 0;
	for (int i = 0; i < n; i++) {
		getppid();
		sum += cbrt(x); /* cbrt: a plain function (cos is an IFUNC: its symbol is the resolver) */
	}
	return sum < 0;
}
"""


@pytest.fixture(scope="module")
def caller(tmp_path_factory):
    return build_c(tmp_path_factory, "caller", PROGRAM_C, "-fno-builtin", libs=("-lm",))


@pytest.mark.parametrize("module", ["libc", "libc.so", "libc.so.6", "libc*"])
def test_short_library_names(tmp_path, caller, module):
    prog = f"pid$target:{module}:getppid:entry {{ @[probemod] = count(); }}"
    rows = agg_rows(ok(run_d(tmp_path, prog, extra=("-c", f"{caller} {CALLS}"))))
    assert rows == {"libc.so.6": CALLS}


def test_a_library_the_target_maps_after_exec(tmp_path, caller):
    # libm is not mapped while the target is held before its exec: found from DT_NEEDED
    prog = "pid$target:libm:cbrt:entry { @[probemod] = count(); }"
    rows = agg_rows(ok(run_d(tmp_path, prog, extra=("-c", f"{caller} {CALLS}"))))
    assert rows == {"libm.so.6": CALLS}
