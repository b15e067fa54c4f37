"""The profile provider: `profile-N` (every CPU) and `tick-N` (one CPU), N with a unit.

Units as in DTrace: ns nsec us usec ms msec s sec m min h hour d day hz (no unit: hz).
Mechanism: a software cpu-clock perf event per CPU (profile) or on CPU 0 (tick), sampling
at the frequency (hz) or period (time units) asked for. arg0 is the kernel PC when the
sample interrupted the kernel, arg1 the user PC when it interrupted user code.
"""

from __future__ import annotations

import re
from typing import Iterable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DProbeError
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, PerfEventAttach, Probe,
                              ProbePattern, ProbeSite, glob_match, is_glob)

PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0

_UNITS_NS = {"ns": 1, "nsec": 1, "us": 1_000, "usec": 1_000, "ms": 1_000_000,
             "msec": 1_000_000, "s": 10**9, "sec": 10**9, "m": 60 * 10**9, "min": 60 * 10**9,
             "h": 3600 * 10**9, "hour": 3600 * 10**9, "d": 86400 * 10**9, "day": 86400 * 10**9}
_NAME = re.compile(r"^(profile|tick)-(\d+)([a-z]*)$")
# What `-l` shows, as DTrace does; any other rate is created on demand.
LISTED = ("profile-97", "profile-199", "profile-499", "profile-997", "profile-1999",
          "profile-4001", "profile-4999", "tick-1", "tick-10", "tick-100", "tick-500",
          "tick-1000", "tick-5000", "tick-1s", "tick-10s")
ARGS = (ArgInfo("uintptr_t", "uintptr_t", "pc"), ArgInfo("uintptr_t", "uintptr_t", "upc"))


def parse_rate(name: str) -> tuple[str, int, int]:
    """(kind, sample_period_ns, sample_freq_hz) for a probe name such as 'tick-10ms'."""
    m = _NAME.match(name)
    if not m:
        raise DProbeError(f"'{name}' is not a profile probe name (profile-N or tick-N[unit])")
    kind, n, unit = m.group(1), int(m.group(2)), m.group(3)
    if n <= 0:
        raise DProbeError(f"'{name}': the rate must be positive")
    if unit in ("", "hz"):
        return kind, 0, n
    if unit not in _UNITS_NS:
        raise DProbeError(f"'{name}': unknown unit '{unit}'",
                          hint="use ns, us, ms, s, m, h, d or hz")
    return kind, n * _UNITS_NS[unit], 0


MIN_PERIOD_NS = 200_000


def _period_ns(name: str) -> int:
    _, period, freq = parse_rate(name)
    return period or 10**9 // freq


class ProfileProvider:
    name = "profile"
    order = 20

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if not (glob_match(pattern.module, "") and glob_match(pattern.function, "")):
            return []
        if is_glob(pattern.name):
            names = [n for n in LISTED if glob_match(pattern.name, n)]
        else:
            names = [pattern.name] if _NAME.match(pattern.name) else []
            # rejects bad units at compile time; a rate faster than 200 us is no probe at
            # all (dtrace-utils' dt_prov_profile enforces the limit: D_PDESC_ZERO)
            names = [n for n in names if _period_ns(n) >= MIN_PERIOD_NS]
        return [ProbeSite("", "", n, ARGS) for n in names]

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        out = []
        user = f"({api.perf_event_register('cs')} & 3)"
        ip = api.perf_event_register("ip")
        for p in probes:
            kind, period, freq = parse_rate(p.name)
            out.append(Binding(
                attach=PerfEventAttach(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK,
                                       sample_period=period, sample_freq=freq,
                                       cpu=-1 if kind == "profile" else 0),
                ctx_decl=api.PERF_EVENT_CTX,
                probes=(p,),
                arg_exprs=(f"({user} ? 0 : {ip})", f"({user} ? {ip} : 0)"),
                arg_notes=("interrupted kernel PC (0 in user mode)",
                           "interrupted user PC (0 in kernel mode)"),
                includes=api.PERF_EVENT_INCLUDES,
                declarations=api.PERF_EVENT_DECLARATIONS,
            ))
        return out
