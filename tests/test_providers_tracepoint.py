"""`tracepoint:GROUP:EVENT` (bpftrace's spelling) names the sdt provider's probe
GROUP:EVENT, in scripts and in -l, and counts what sdt counts."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.test_language import run_d
from tests.test_providers import agg_rows, ok

pytestmark = pytest.mark.kernel


def listing(pattern: str, *flags: str) -> str:
    return ok(subprocess.run([sys.executable, "-m", "dtrace_nb.cli", *flags, "-l", "-n", pattern],
                             capture_output=True, text=True, timeout=60))


@pytest.mark.parametrize("spelling", ["tracepoint:syscalls:sys_enter_getppid",
                                      "tracepoint:syscalls::sys_enter_getppid"])
def test_alias_counts_like_sdt(tmp_path, workloads, spelling):
    prog = (f"{spelling} /pid == $target/ {{ @[probeprov, probemod, probename] = count(); }}\n"
            "sdt:syscalls::sys_enter_getppid /pid == $target/ { @[probeprov, probemod, probename] = count(); }")
    rows = agg_rows(ok(run_d(tmp_path, prog, extra=("-c", f"{workloads['sysload']} getppid 29"))))
    assert rows == {"tracepoint syscalls sys_enter_getppid": 29,
                    "sdt syscalls sys_enter_getppid": 29}


def test_alias_is_listed_with_the_format_fields():
    out = listing("tracepoint:sched:sched_switch", "-v")
    assert re.search(r"^\s+\d+\s+tracepoint\s+sched\s+sched_switch$", out, re.M)
    assert "args[0]: string" in out
    rows = [ln for ln in listing("tracepoint:sched::sched_wakeup*").splitlines()[1:]]
    assert {ln.split()[-1] for ln in rows} == {"sched_wakeup", "sched_wakeup_new"}


def test_listing_everything_does_not_repeat_the_tracepoints():
    out = ok(subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-l"], capture_output=True,
                            text=True, timeout=60))
    assert not [ln for ln in out.splitlines()[1:] if ln.split()[1] == "tracepoint"]
