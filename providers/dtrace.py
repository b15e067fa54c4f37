"""The dtrace provider: BEGIN, END and ERROR.

These probes fire in the consumer's own context, not on a kernel event: the runtime runs
each one's program with BPF_PROG_TEST_RUN at the right moment (BEGIN before any other
probe is attached, END after all are detached), so they run exactly once, in order, with
`pid` and `execname` those of dtrace-nb itself, as in DTrace.
"""

from __future__ import annotations

from typing import Iterable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, Probe, ProbePattern, ProbeSite,
                              TriggerAttach, glob_match)

_ERROR_ARGS = (ArgInfo("uint64_t", "uint64_t", "arg0"), ArgInfo("uint64_t", "uint64_t", "epid"),
               ArgInfo("uint64_t", "uint64_t", "clause"), ArgInfo("uint64_t", "uint64_t", "offset"),
               ArgInfo("uint64_t", "uint64_t", "fault"), ArgInfo("uint64_t", "uint64_t", "addr"))
PROBES = {"BEGIN": (), "END": (), "ERROR": _ERROR_ARGS}


class DTraceProvider:
    name = "dtrace"
    order = 0  # BEGIN, END and ERROR get the first probe ids, as in DTrace

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if not (glob_match(pattern.module, "") and glob_match(pattern.function, "")):
            return []
        return [ProbeSite("", "", name, args) for name, args in PROBES.items()
                if glob_match(pattern.name, name)]

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        return [Binding(attach=TriggerAttach(p.name),
                        ctx_decl=api.RAW_TRACEPOINT_CTX,
                        probes=(p,),
                        arg_exprs=tuple(api.raw_tracepoint_arg(i) for i in range(len(p.args))),
                        arg_notes=tuple(f"argument {i} passed by dtrace-nb"
                                        for i in range(len(p.args))),
                        runs_after_exit=p.name in ("END", "ERROR"),
                        runs_before_begin=p.name in ("BEGIN", "ERROR"))
                for p in probes]
