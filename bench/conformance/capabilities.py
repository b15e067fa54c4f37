"""Which tests need what this kernel cannot give: each skip names its reason.

Read off the machine, not assumed: kprobes exist when tracefs has kprobe_events; a hardware
PMU when the perf `cpu` event source exists. dtrace-utils serves fbt and rawfbt with kprobes
(or fentry), lockstat with kprobes on the kernel's lock functions, and cpc with hardware
counters. The test's probe descriptions are read with comments taken out. Kernel variables
(`` `max_pfn ``) need their addresses from /proc/kallsyms, which lists data symbols only on
kernels built with CONFIG_KALLSYMS_ALL; a test dtrace-nb refuses for that reason, on a machine
whose kallsyms has no data symbols, is skipped after it ran (`refused_for_lack`).
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.conformance.suite import Test

TRACEFS = Path("/sys/kernel/tracing")
KALLSYMS = Path("/proc/kallsyms")
# dtrace-nb's refusal of a kernel variable (lang/check/typedecls.py) names the symbol first
_KERNEL_VARIABLE_REFUSED = re.compile(r"(\S*`\w+): kernel variables cannot be read here")
# a kernel built with CONFIG_KALLSYMS_ALL lists tens of thousands of data symbols; without
# it, a few dozen (those in sections kallsyms always covers)
_FEW_DATA_SYMBOLS = 1000
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def _provider_used(text: str, provider: str) -> bool:
    return re.search(r"(?<![\w$])" + provider + r"\s*:", COMMENT.sub(" ", text)) is not None


class Capabilities:
    def __init__(self, tracefs: Path = TRACEFS, kallsyms: Path = KALLSYMS):
        self.kprobes = (tracefs / "kprobe_events").exists()
        self.pmu = Path("/sys/bus/event_source/devices/cpu").exists()
        self.kernel_data_symbols = _data_symbols(kallsyms) >= _FEW_DATA_SYMBOLS

    def missing(self, test: Test) -> str | None:
        text = test.text
        if not self.kprobes:
            for provider in ("fbt", "rawfbt"):
                if _provider_used(text, provider):
                    return f"{provider} needs kprobes or fentry; this kernel has neither"
            if _provider_used(text, "lockstat") or test.category == "lockstat":
                return "lockstat's probes are kprobes on the kernel's lock functions"
        if not self.pmu and (_provider_used(text, "cpc") or test.category == "cpc"):
            return "cpc needs hardware performance counters; this machine has none"
        return None

    def refused_for_lack(self, stderr: str) -> str | None:
        """The skip reason when dtrace-nb refused the test for what this machine lacks."""
        m = _KERNEL_VARIABLE_REFUSED.search(stderr)
        if m and not self.kernel_data_symbols:
            return (f"needs the kernel variable {m.group(1)}: this kernel's /proc/kallsyms "
                    "lists no data symbols (built without CONFIG_KALLSYMS_ALL)")
        return None

    def describe(self) -> str:
        return (f"kprobes: {'yes' if self.kprobes else 'no'}; "
                f"hardware counters: {'yes' if self.pmu else 'no'}; "
                f"kernel data symbols: {'yes' if self.kernel_data_symbols else 'no'}")


def _data_symbols(kallsyms: Path) -> int:
    try:
        with kallsyms.open() as f:
            return sum(1 for line in f if line.split(" ", 2)[1:2] and
                       line.split(" ", 2)[1] in "dDbBrR")
    except OSError:
        return 0
