"""Suite-wide fixtures and rules.

- `workloads`: the compiled ground-truth programs (tests/workloads/*.c).
- A leak check around the whole session: any BPF program, map, perf event or uprobe of
  ours still loaded at the end fails the run.
- A test marked `kernel` that skips is a failure (under CI, or DTRACE_NB_REQUIRE_KERNEL=1):
  on this project's machines the kernel is always there, so a skip hides a regression.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from tests.leakcheck import bpf_state, settled_diff
from tests.workloads.build import build_workloads

_BEFORE = None


@pytest.fixture(scope="session")
def workloads() -> dict[str, Path]:
    return build_workloads(Path(__file__).parent / "workloads" / "bin")


def pytest_sessionstart(session):
    global _BEFORE
    _BEFORE = bpf_state()


def pytest_sessionfinish(session, exitstatus):
    if _BEFORE is None:
        return
    gc.collect()
    problems = settled_diff(_BEFORE)
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "LEAK CHECK FAILED: " + "; ".join(problems)
        if reporter is not None:
            reporter.write_line(text, red=True)
        else:
            print(text)
        session.exitstatus = 1


def _require_kernel() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("DTRACE_NB_REQUIRE_KERNEL") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("kernel") and _require_kernel():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"kernel test skipped on a machine that must run it: {reason}"
