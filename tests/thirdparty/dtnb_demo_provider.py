"""A third-party provider, outside dtrace_nb: `demo:::getppid` fires on every getppid(2).

It exists to show that the provider protocol is the whole interface: it is registered by
its own distribution metadata (dtnb_demo_provider-0.1.dist-info/entry_points.txt, found
when this directory is on sys.path) and dtrace_nb never names it.
"""

from dtrace_nb.probes import (ArgInfo, Binding, ProbeSite, RawTracepointAttach, Selector,
                              glob_match)

GETPPID = 110  # x86-64


class DemoProvider:
    name = "demo"
    order = 90
    stability = "Private"

    def provides(self, provider_field):
        return glob_match(provider_field, self.name)

    def sites(self, pattern, ctx):
        if glob_match(pattern.module, "") and glob_match(pattern.function, ""):
            if glob_match(pattern.name, "getppid"):
                return [ProbeSite("", "", "getppid", (ArgInfo("long", "int64_t", "nr"),))]
        return []

    def bind(self, probes, ctx):
        return [Binding(attach=RawTracepointAttach("sys_enter"),
                        ctx_decl="struct bpf_raw_tracepoint_args *ctx", probes=tuple(probes),
                        selector=Selector("ctx->args[1]", {p.id: GETPPID for p in probes}),
                        arg_exprs=("ctx->args[1]",), arg_notes=("the syscall number",))]
