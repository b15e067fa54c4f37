"""What the stable providers (proc, sched, io) share: a table of probes, each served by one
or more kernel hooks (a tracepoint or raw tracepoint plus a filter), turned into Bindings.

A stable probe is a promise about meaning (proc:::exit fires once per process exit, with
the reason as args[0]); a hook is how this kernel keeps it. Each provider module documents
which hook serves which probe and which kernel structures its translators read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.probes import (ArgInfo, Attach, BindContext, Binding, Probe, ProbePattern,
                              ProbeSite, RawTracepointAttach, ThreadContext, TracepointAttach,
                              glob_match)
from dtrace_nb_providers._tracepoint import TracepointArgs, record


@dataclass(frozen=True)
class Hook:
    attach: Attach
    ctx_decl: str
    arg_exprs: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # prologue statements: filters (api.skip_if) when this firing is not the probe's event
    prologue: tuple[str, ...] = ()
    declarations: tuple[str, ...] = ()
    builtins: dict[str, str] = field(default_factory=dict)
    includes: tuple[str, ...] = ()
    thread: Optional[ThreadContext] = None  # the probe's thread, when not the current one


def tracepoint_hook(category: str, event: str,
                    record: Callable[[str, str], TracepointArgs] = record,
                    **kw) -> Hook:
    """A hook on tracepoint category:event; `record` gives its record (the running kernel's
    format file by default)."""
    rec = record(category, event)
    extra = kw.pop("declarations", ())
    return Hook(TracepointAttach(category, event), api.tracepoint_ctx(rec.struct_name),
                declarations=(rec.declaration, *extra), **kw)


def raw_hook(name: str, **kw) -> Hook:
    return Hook(RawTracepointAttach(name), api.RAW_TRACEPOINT_CTX, **kw)


@dataclass(frozen=True)
class StableProbe:
    name: str
    args: Callable[[], tuple[ArgInfo, ...]]
    hooks: Callable[[], list[Hook]]  # built at bind time: they may read BTF and tracefs
    module: str = ""
    function: str = ""


class StableProvider:
    """Base of proc/sched/io: `probes` is the table; listing and binding are generic."""

    name = ""
    order = 40
    stability = "Evolving"
    probes: tuple[StableProbe, ...] = ()

    def provides(self, provider_field: str) -> bool:
        return glob_match(provider_field, self.name)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        out = []
        for sp in self.probes:
            if (glob_match(pattern.module, sp.module) and glob_match(pattern.function, sp.function)
                    and glob_match(pattern.name, sp.name)):
                out.append(ProbeSite(sp.module, sp.function, sp.name, _safe_args(sp),
                                     data=sp.name))
        return out

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        table = {sp.name: sp for sp in self.probes}
        out = []
        for p in probes:
            for hook in table[p.data].hooks():
                out.append(Binding(attach=hook.attach, ctx_decl=hook.ctx_decl, probes=(p,),
                                   arg_exprs=hook.arg_exprs, arg_notes=hook.notes,
                                   prologue=hook.prologue, declarations=hook.declarations,
                                   builtins=dict(hook.builtins), includes=hook.includes,
                                   thread=hook.thread, kernel_stack_skip=_stack_skip(hook)))
        return out


def _stack_skip(hook: Hook) -> int:
    raw = isinstance(hook.attach, RawTracepointAttach)
    return api.RAW_TRACEPOINT_STACK_SKIP if raw else 0


def _safe_args(sp: StableProbe) -> tuple[ArgInfo, ...]:
    # Listing must work where BTF is missing: translated args need BTF offsets, so a
    # listing shows the types without members, and binding reports the real problem.
    try:
        return sp.args()
    except DEnvironmentError:  # binding raises the same error, with the fix
        return ()
