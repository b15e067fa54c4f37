"""Suite-wide fixtures and rules.

- `workloads`: the compiled ground-truth programs (tests/workloads/*.c), name -> path.
- A leak check around the whole session (tests/leakcheck.py): any BPF program, map, perf
  event, bpf fd or tracefs probe of ours still present at the end fails the run.
- A test marked `kernel` that skips is a failure (under CI, or DTRACE_NB_REQUIRE_KERNEL=1):
  on this project's machines the kernel is always there, so a skip hides a regression.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from tests.leakcheck import bpf_state, claim_children, settled_diff
from tests.workloads.build import build_workloads

WORKLOAD_BIN = Path(__file__).parent / "workloads" / "bin"


# --- fixtures ----------------------------------------------------------------------------

def ipython_shell():
    """The process's one in-process IPython shell (IPython's test helper starts it once and
    returns None on later calls, whichever test module called it first)."""
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    return start_ipython() or get_ipython()


@pytest.fixture(scope="session")
def workloads() -> dict[str, Path]:
    return build_workloads(WORKLOAD_BIN)


# --- session leak check ------------------------------------------------------------------

_LEAK_BASELINE = pytest.StashKey()


def pytest_sessionstart(session):
    claim_children()
    session.config.stash[_LEAK_BASELINE] = bpf_state()


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_LEAK_BASELINE, None)
    if before is None:
        return
    gc.collect()  # objects of ours that only wait for the collector release their fds here
    problems = settled_diff(before)
    if problems:
        text = "LEAK CHECK FAILED: " + "; ".join(problems)
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(text, red=True)
        else:
            print(text)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- kernel tests must not skip where the kernel is required -----------------------------

def _require_kernel() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("DTRACE_NB_REQUIRE_KERNEL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if (report.skipped and not hasattr(report, "wasxfail")
            and item.get_closest_marker("kernel") and _require_kernel()):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"kernel test skipped on a machine that must run it: {reason}"
