"""The vminfo provider: virtual memory events, as DTrace's vminfo probes (arg0 the
increment, 1 for each event), in the context of the thread the event happened in.

| probe | kernel hook | fires |
|---|---|---|
| as_fault | perf software event page-faults (period 1, every CPU) | every page fault, user or kernel mode |
| maj_fault | perf software event major-faults | a fault that waited for I/O |
| min_fault | perf software event minor-faults (Linux's; DTrace has no such probe) | a fault served from memory |

arg1 is the faulting address (the perf sample's address; a dtrace-nb extension, as
DTrace's vminfo gives only the increment). DTrace's paging, swapping and scanner probes
(pgin, pgout, swapin, scan, ...) have no counterpart among this kernel's hooks and are
not listed. Kernel structures read: none (the perf sample).
"""

from __future__ import annotations

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.probes import ArgInfo, PerfEventAttach
from dtrace_nb_providers._stable import Hook, StableProbe, StableProvider

PERF_TYPE_SOFTWARE = 1
SW_PAGE_FAULTS, SW_PAGE_FAULTS_MIN, SW_PAGE_FAULTS_MAJ = 2, 5, 6
ARGS = (ArgInfo("uint64_t", "uint64_t", "increment"), ArgInfo("uint64_t", "uintptr_t", "addr"))


def perf_hook(config: int, what: str) -> Hook:
    return Hook(PerfEventAttach(PERF_TYPE_SOFTWARE, config, sample_period=1),
                api.PERF_EVENT_CTX, arg_exprs=("1", "ctx->addr"),
                notes=(f"1 ({what})", "the faulting address (perf sample addr)"),
                includes=api.PERF_EVENT_INCLUDES, declarations=api.PERF_EVENT_DECLARATIONS)


class VminfoProvider(StableProvider):
    name = "vminfo"
    order = 47
    probes = (
        StableProbe("as_fault", lambda: ARGS, lambda: [perf_hook(SW_PAGE_FAULTS, "a fault")]),
        StableProbe("maj_fault", lambda: ARGS,
                    lambda: [perf_hook(SW_PAGE_FAULTS_MAJ, "a major fault")]),
        StableProbe("min_fault", lambda: ARGS,
                    lambda: [perf_hook(SW_PAGE_FAULTS_MIN, "a minor fault")]),
    )
