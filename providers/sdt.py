"""The sdt provider: every kernel tracepoint, as `sdt:GROUP::EVENT`.

Naming follows dtrace-utils (Oracle's DTrace for Linux): the tracepoint group is the
module, the function is empty, the event is the probe name: `sdt:sched::sched_switch`,
`sdt:block::block_rq_issue`, `sdt:syscalls::sys_enter_openat`.

Mechanism: a perf-event tracepoint program per probe (not a raw tracepoint), because the
arguments are the fields of the tracepoint's record as its format file describes them:
`argN` is the N-th field after the common header, `args[N]` the same field typed
(`char comm[16]` and `__data_loc char[]` fields are strings). The record's C struct is
generated from the format file (see _tracepoint.py), so it needs no kernel headers.
"""

from __future__ import annotations

import os
from typing import Iterable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.probes import (BindContext, Binding, LazyArgs, Probe, ProbePattern, ProbeSite,
                              TracepointAttach, glob_match, is_glob)
from dtrace_nb_providers._tracefs import events, tracefs_root
from dtrace_nb_providers._tracepoint import record as record_args

# ftrace's own events (function, print, ...) are formats, not attachable tracepoints.
NOT_TRACEPOINTS = ("ftrace",)


def groups() -> list[str]:
    root = tracefs_root()
    if root is None:
        return []
    base = os.path.join(root, "events")
    return sorted(g for g in os.listdir(base)
                  if os.path.isdir(os.path.join(base, g)) and g not in NOT_TRACEPOINTS)


class SdtProvider:
    name = "sdt"
    order = 30

    # where the tracepoints come from: tracefs (the tests' fake catalog gives fixed ones)
    groups = staticmethod(groups)
    events = staticmethod(events)
    record = staticmethod(record_args)

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if not glob_match(pattern.function, ""):
            return []
        if is_glob(pattern.module):
            cats = [g for g in self.groups() if glob_match(pattern.module, g)]
        else:
            cats = [pattern.module]
        out = []
        for cat in cats:
            names = self.events(cat)
            if not is_glob(pattern.name):
                names = [pattern.name] if pattern.name in names else []
            for ev in names:
                if glob_match(pattern.name, ev):
                    args = LazyArgs(lambda c=cat, e=ev: self.record(c, e).args)
                    out.append(ProbeSite(cat, "", ev, args, data=(cat, ev)))
        return out

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        out = []
        for p in probes:
            cat, ev = p.data
            rec = self.record(cat, ev)
            out.append(Binding(
                attach=TracepointAttach(cat, ev),
                ctx_decl=api.tracepoint_ctx(rec.struct_name),
                probes=(p,),
                arg_exprs=rec.exprs,
                arg_notes=rec.notes,
                declarations=(rec.declaration,),
            ))
        return out
