"""pid provider module names as DTrace takes them: short library names (`libc`, `libc.so`
for libc.so.6), and the libraries a -c target links against though it has not mapped them
yet (held before its exec): a program of ours calls getppid(2) through libc and cbrt()
through libm a known number of times."""

from __future__ import annotations


import subprocess
import sys
import time

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


# -- many functions: no cap on a description's probes -----------------------------------

FUNCTIONS, ROUNDS = 1500, 3


def _many_functions_c(n: int) -> str:
    lines = ["#include <stdlib.h>"]
    lines += [f"__attribute__((noinline)) int fn_{i}(int x) {{ __asm__ volatile(\"\"); "
              f"return x + {i}; }}" for i in range(n)]
    lines.append("int (*const table[])(int) = {" + ", ".join(f"fn_{i}" for i in range(n)) + "};")
    lines.append("int main(int argc, char **argv) { int r = atoi(argv[1]); volatile int s = 0;\n"
                 f"  for (int k = 0; k < r; k++) for (int i = 0; i < {n}; i++) s += table[i](k);\n"
                 "  return s == 42; }")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    return build_c(tmp_path_factory, "many", _many_functions_c(FUNCTIONS))


def test_a_description_matching_more_than_a_thousand_functions(tmp_path, many):
    # 1,500 entry and 1,500 return probes: each called ROUNDS times through the table
    prog = ("pid$target:a.out:fn_*:entry { @e = count(); @f[probefunc] = count(); }\n"
            "pid$target:a.out:fn_*:return { @r = count(); @v = sum(arg1 - 0); }")
    start = time.monotonic()
    out = ok(run_d(tmp_path, prog, extra=("-c", f"{many} {ROUNDS}"), timeout=120))
    took = time.monotonic() - start
    rows = agg_rows(out)
    calls = FUNCTIONS * ROUNDS
    assert rows.pop("fn_0") == ROUNDS and rows.pop(f"fn_{FUNCTIONS - 1}") == ROUNDS
    funcs = {k: v for k, v in rows.items() if k.startswith("fn_")}
    assert len(funcs) == FUNCTIONS - 2 and set(funcs.values()) == {ROUNDS}
    # the return values: fn_i(k) = k + i, summed over i < FUNCTIONS and k < ROUNDS
    total = sum(k + i for k in range(ROUNDS) for i in range(FUNCTIONS))
    assert {k: v for k, v in rows.items() if not k.startswith("fn_")} == {}
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    singles = [int(p[0]) for p in lines if len(p) == 1 and p[0].isdigit()]
    assert singles == [calls, calls, total], out
    # one uprobe_multi link per kind: attach and detach of 3,000 probes in seconds
    # (3,000 uprobe perf events took minutes to close: a grace period each)
    assert took < 60, took


FD_BUDGET = """
import resource, sys
from dtrace_nb.errors import DProbeError
from dtrace_nb_providers.pid import _check_fd_budget
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 4096))
_check_fd_budget(1000)  # 2,000 fds and more: the soft limit goes up to the hard one
print(resource.getrlimit(resource.RLIMIT_NOFILE))
try:
    _check_fd_budget(3000)
except DProbeError as err:
    print(err)
"""


def test_without_uprobe_multi_the_fd_limit_is_checked_and_named(tmp_path):
    # the path of kernels without uprobe_multi links: two fds a probe, in a process of
    # its own (the limits are the process's)
    script = tmp_path / "budget.py"
    script.write_text(FD_BUDGET)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()[:2]
    assert first == "(4096, 4096)"
    assert "3000 pid probes need" in second and "RLIMIT_NOFILE's hard limit of 4096" in second
