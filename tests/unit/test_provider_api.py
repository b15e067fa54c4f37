"""The providers' code-generation API (dtrace_nb/codegen/provider_api.py), without a
kernel: the example provider of providers/README.md compiles as written, translated
members are functions of the argument, and the probes of one clause must translate a
member alike (as when members were C templates)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DCompileError
from dtrace_nb.probes import (BindContext, Binding, ProbeCatalog, ProbeSite, RawTracepointAttach,
                              glob_match)
from tests.fakeprobes import compile_c, fake_providers

README = Path(__file__).resolve().parents[2] / "providers" / "README.md"


def readme_provider():
    """The provider class of the README's example, run as the README shows it."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "providers/README.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    return namespace["DemoProvider"]()


def test_the_readme_provider_compiles_through_the_api():
    catalog = ProbeCatalog(fake_providers() + [readme_provider()])
    _checked, program = compile_c("demo:::getppid { trace(arg0); }", catalog=catalog)
    c = program.c_source
    assert "int dtnb_b0(struct bpf_raw_tracepoint_args *ctx) {" in c
    assert "struct pt_regs *dtp_regs = (struct pt_regs *)ctx->args[0];" in c
    assert "u32 dt_key" not in c  # one probe: a compare, no selector map
    assert "if ((u64)(ctx->args[1]) != 110ULL)" in c
    assert "s64 dt_arg0 = (s64)(dt_kread_u64((void *)(&dtp_regs->di)));" in c
    assert "#include <uapi/linux/ptrace.h>" in c


def test_reads_and_values():
    assert api.struct_member("t", 24, "s32") == "((s32)dt_kread_u64((void *)(((t) + 24))))"
    assert api.struct_member("t", 8) == "dt_kread_u64((void *)(((t) + 8)))"
    assert api.member_address("t", 16) == "((t) + 16)"
    assert api.widen("x", "s32") == "(u64)(s64)(s32)(x)"
    assert api.widen("x", "u16") == "(u64)(u16)(x)"
    assert api.declare("s64", "ret", "0") == "s64 dtp_ret = 0;"
    assert api.declare("struct pt_regs *", "regs", "p") == "struct pt_regs *dtp_regs = p;"
    assert api.skip_if("a > 1") == "if (a > 1)\n\treturn 0;"
    assert api.skip_unless("a") == "if (!(a))\n\treturn 0;"
    assert api.let("s32", "c", "v", "(dtp_c & 1)") == "({\n\ts32 dtp_c = v;\n\t(dtp_c & 1);\n})"


class TwoProbes:
    """Probes `a` and `b`, each with the one translated argument `arg(i)` builds for its
    index, each bound to a raw tracepoint of its own."""

    name = ""
    order = 95

    def provides(self, provider_field):
        return glob_match(provider_field, self.name)

    def arg(self, i: int):
        raise NotImplementedError

    def sites(self, pattern, ctx):
        return [ProbeSite("", "", name, (self.arg(i),))
                for i, name in enumerate(("a", "b")) if glob_match(pattern.name, name)]

    def bind(self, probes, ctx: BindContext):
        return [Binding(attach=RawTracepointAttach(f"ev_{p.name}"),
                        ctx_decl=api.RAW_TRACEPOINT_CTX, probes=(p,),
                        arg_exprs=(api.raw_tracepoint_arg(0),)) for p in probes]


class TwoTasks(TwoProbes):
    """Two probes handing a task, whose `pr_x` members are read at `offsets`."""

    name = "two"

    def __init__(self, offsets: tuple[int, int]):
        self.offsets = offsets

    def arg(self, i: int):
        off = self.offsets[i]
        return api.translated_arg("struct task_struct *", "xinfo_t *", (
            api.member("pr_x", "int", lambda task: api.struct_member(task, off, "s32")),))


def test_a_member_is_read_by_the_providers_function_of_the_argument():
    catalog = ProbeCatalog(fake_providers() + [TwoTasks((40, 40))])
    _checked, program = compile_c("two:::a, two:::b { trace(args[0]->pr_x); }",
                                  catalog=catalog)
    reads = re.findall(r"= \(s64\)\((.*)\);", program.c_source)
    # both functions read the member at offset 40 of their own argument
    assert [r for r in reads if "+ 40" in r] == [
        "((s32)(((s32)dt_kread_u64((void *)(((((u64)dt_arg0)) + 40))))))"] * 2


def test_probes_of_one_clause_must_translate_a_member_alike():
    catalog = ProbeCatalog(fake_providers() + [TwoTasks((40, 48))])
    with pytest.raises(DCompileError, match="args\\[0\\] has different types"):
        compile_c("two:::a, two:::b { trace(args[0]->pr_x); }", catalog=catalog)
    # each alone is fine
    compile_c("two:::a { trace(args[0]->pr_x); } two:::b { trace(args[0]->pr_x); }",
              catalog=catalog)


class Packets(TwoProbes):
    """Two probes whose `ip_saddr` member is the text of an address the compiler formats,
    of the family `families[i]`."""

    name = "pk"
    order = 96

    def __init__(self, families: tuple[str, str]):
        self.families = families

    def arg(self, i: int):
        return api.translated_arg("struct sk_buff *", "ipinfo_t *", (
            api.address_member("ip_saddr", self.families[i], v4=api.tracepoint_field("a4"),
                               v6=api.tracepoint_field_address("a6")),))


def test_an_address_member_is_formatted_by_the_compilers_helper():
    catalog = ProbeCatalog(fake_providers() + [Packets(("2", "10"))])
    _checked, program = compile_c("pk:::a { trace(args[0]->ip_saddr); }", catalog=catalog)
    c = program.c_source
    assert "static __always_inline void dt_inet_text(" in c  # addresses.h, included
    assert re.search(r"dt_inet_text\(\(dt_s \+ \d+\), \(u32\)\(2\), \(u32\)\(ctx->a4\), "
                     r"\(const void \*\)\(u64\)\(\(\(u64\)ctx->a6\)\)\);", c)
    # a program without one does not carry the formatter
    _checked, plain = compile_c("pk:::a { trace(1); }", catalog=catalog)
    assert "dt_inet_text" not in plain.c_source


def test_probes_of_one_clause_must_format_an_address_alike():
    catalog = ProbeCatalog(fake_providers() + [Packets(("2", "10"))])
    with pytest.raises(DCompileError, match="args\\[0\\] has different types"):
        compile_c("pk:::a, pk:::b { trace(args[0]->ip_saddr); }", catalog=catalog)
    compile_c("pk:::a, pk:::b { trace(args[0]->ip_saddr); }",
              catalog=ProbeCatalog(fake_providers() + [Packets(("2", "2"))]))
