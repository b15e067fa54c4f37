"""The compile driver: D text -> parse -> check -> bind -> generated C. Needs no privileges.

The Session compiles through it before loading anything, and the explain view
(`%%dtrace --explain`, `dtrace-nb -e -S`) stops here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional, Protocol

from dtrace_nb.errors import DError
from dtrace_nb.lang.check.macros import MacroEnv
from dtrace_nb.probes import BindContext, Binding, ProbeCatalog
from dtrace_nb.runtime import program_cache

if TYPE_CHECKING:
    from dtrace_nb.codegen import BpfProgram
    from dtrace_nb.lang.check import CheckedProgram


class ProgramRequest(Protocol):
    """What a compile needs of a session's configuration (SessionConfig has it)."""

    source: str
    macro_args: list[str]
    options: dict[str, Optional[str]]  # -x name=value
    quiet: bool


def compile_cached(cfg: ProgramRequest, catalog: Optional[ProbeCatalog] = None,
                   target_pid: Optional[int] = None,
                   target_exe: str = "") -> tuple["CheckedProgram", "BpfProgram", bool]:
    """compile_program through the program cache (program_cache.py): the same pair, and
    whether it came from the cache. A caller's own catalog bypasses the cache."""
    if catalog is not None or not program_cache.enabled():
        return (*compile_program(cfg, catalog, target_pid, target_exe), False)
    key = program_cache.program_key(cfg, target_pid is not None)
    macros = _macros(cfg, target_pid, program_cache.RecordingMacros)
    found = program_cache.load(key, macros)
    if found is not None:
        return (*found, True)
    checked, program = compile_program(cfg, None, target_pid, target_exe, macros)
    program_cache.store(key, macros.used, checked, program)
    return checked, program, False


def _macros(cfg: ProgramRequest, target_pid: Optional[int], kind=MacroEnv) -> MacroEnv:
    return kind(target=target_pid, pid=os.getpid(), args=list(cfg.macro_args))


def compile_program(cfg: ProgramRequest, catalog: Optional[ProbeCatalog] = None,
                    target_pid: Optional[int] = None, target_exe: str = "",
                    macros: Optional[MacroEnv] = None) -> tuple["CheckedProgram", "BpfProgram"]:
    """Everything up to generated C; needs no privileges."""
    # here, not at the top: a program from the cache needs neither the parser (lark) nor
    # the checker nor the code generator
    from dtrace_nb.codegen import generate
    from dtrace_nb.lang import kernel_types
    from dtrace_nb.lang.check import check
    from dtrace_nb.lang.options import Options
    from dtrace_nb.lang.parser import parse
    from dtrace_nb.runtime.btf import kernel_member

    opts = Options()
    for name, value in cfg.options.items():
        opts.set(name, value)
    if cfg.quiet:
        opts.set("quiet", None)
    catalog = catalog or ProbeCatalog()
    program = parse(cfg.source)
    bind_ctx = BindContext(target_pid=target_pid if target_pid is not None else -1,
                           target_exe=target_exe)
    macros = macros if macros is not None else _macros(cfg, target_pid)
    kernel_types.use_resolver(kernel_member)  # curthread->member: layouts from BTF
    checked = check(program, catalog, macros, opts, bind_ctx)
    bindings = bind_probes(catalog, checked, bind_ctx)  # a provider's refusal, located
    return checked, generate(checked, bindings)


def bind_probes(catalog: ProbeCatalog, checked: "CheckedProgram",
                bind_ctx: BindContext) -> list[Binding]:
    """The providers' Bindings for the program's probes. A provider that refuses (say fbt on
    a kernel without kprobes) raises without knowing the source; the refusal is located
    here at the first probe description whose probes it cannot bind."""
    try:
        return catalog.bind(checked.probes, bind_ctx)
    except DError as err:
        if err.span is not None:
            raise
        for c in checked.clauses:
            for spec, probes in zip(c.clause.probes, c.spec_probes):
                try:
                    catalog.bind(probes, bind_ctx)
                except DError:
                    raise type(err)(err.message, spec.span, err.hint, err.detail) from None
        raise type(err)(err.message, checked.program.span or None, err.hint,
                        err.detail) from None
