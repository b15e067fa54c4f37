"""The tracepoint provider: bpftrace's spelling of the sdt provider's probes.

`tracepoint:GROUP:EVENT` (what bpftrace users type; as a DTrace description of three
fields it reads module `tracepoint`, function GROUP, name EVENT) and
`tracepoint:GROUP::EVENT` both name the kernel tracepoint GROUP:EVENT, the probe that
`sdt:GROUP::EVENT` names, listed as `tracepoint:GROUP::EVENT`. Same mechanism and
arguments as sdt (sdt.py). Listing every probe (`-l`) does not repeat the tracepoints
under this name; `-l -n 'tracepoint:::'` or `-l -n 'tracepoint:sched:*'` lists them.
"""

from __future__ import annotations

from typing import Iterable

from dtrace_nb.probes import BindContext, ProbePattern, ProbeSite
from dtrace_nb_providers.sdt import SdtProvider

NAME = "tracepoint"


def as_sdt(pattern: ProbePattern) -> ProbePattern | None:
    """The sdt description a tracepoint description means, None if it is not one."""
    if pattern.provider == NAME:
        return ProbePattern("sdt", pattern.module, pattern.function, pattern.name)
    if pattern.provider == "" and pattern.module == NAME:  # tracepoint:GROUP:EVENT
        return ProbePattern("sdt", pattern.function, "", pattern.name)
    return None


class TracepointProvider(SdtProvider):
    name = NAME
    order = 31
    # the three-field spelling does not match its sites field by field
    filters_sites = True

    def provides(self, provider_field: str) -> bool:
        return provider_field in (NAME, "")

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        sdt = as_sdt(pattern)
        if sdt is None:
            return []
        return [ProbeSite(s.module, s.function, s.name, s.args, data=s.data, provider=NAME)
                for s in super().sites(sdt, ctx)]
