"""Which tests need what this kernel cannot give: each skip names its reason.

Read off the machine, not assumed: kprobes exist when tracefs has kprobe_events; a hardware
PMU when the perf `cpu` event source exists. dtrace-utils serves fbt and rawfbt with kprobes
(or fentry), lockstat with kprobes on the kernel's lock functions, and cpc with hardware
counters. The test's probe descriptions are read with comments taken out.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.conformance.suite import Test

TRACEFS = Path("/sys/kernel/tracing")
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def _provider_used(text: str, provider: str) -> bool:
    return re.search(r"(?<![\w$])" + provider + r"\s*:", COMMENT.sub(" ", text)) is not None


class Capabilities:
    def __init__(self, tracefs: Path = TRACEFS):
        self.kprobes = (tracefs / "kprobe_events").exists()
        self.pmu = Path("/sys/bus/event_source/devices/cpu").exists()

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

    def describe(self) -> str:
        return (f"kprobes: {'yes' if self.kprobes else 'no'}; "
                f"hardware counters: {'yes' if self.pmu else 'no'}")
