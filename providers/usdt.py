"""The usdt provider: static probes compiled into user programs (SystemTap SDT notes, the
`DTRACE_PROBE*` macros of <sys/sdt.h>), as `PROVIDER$target:MODULE:FUNCTION:NAME`.

- PROVIDER and a process id: `python$target:::function-entry`, `dtnb1234:::loop`. Without
  a process id, an absolute path as MODULE traces that binary in every process
  (`dtnb:/usr/local/bin/app::loop`, a dtrace-nb extension).
- MODULE: the object's basename; FUNCTION: the function containing the probe site;
  NAME: the note's name with `__` written `-` (as DTrace spells them: `function__entry` is
  `function-entry`).

Mechanism: a uprobe at each probe site (one probe may have several sites), with the
note's semaphore passed to the kernel as the uprobe's reference counter, so guarded
probes (`if (PROBE_ENABLED())`) fire only while traced. Arguments come from the note's
operand specs (`-4@%edi`, `8@-16(%rbp)`, `4@$5`): registers from the probe site's pt_regs,
memory operands read from the process with bpf_probe_read_user, constants as written,
each truncated and sign-extended to its declared size. Pointers (Python's filename and
function name) are user addresses: read them with copyinstr(arg0).
"""

from __future__ import annotations

import bisect
import os
import platform
import re
from typing import Iterable

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DProbeError
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, Probe, ProbePattern, ProbeSite,
                              UprobeAttach, glob_match, is_glob)
from dtrace_nb_providers import _elf
from dtrace_nb_providers._elf import target_objects

_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*?)(\d*)$")
# x86-64 register names in SDT operands -> struct pt_regs members
_REGS = {}
for _m, _names in {"ax": "rax eax ax al", "bx": "rbx ebx bx bl", "cx": "rcx ecx cx cl",
                   "dx": "rdx edx dx dl", "si": "rsi esi si sil", "di": "rdi edi di dil",
                   "bp": "rbp ebp bp bpl", "sp": "rsp esp sp spl", "ip": "rip eip ip"}.items():
    for _n in _names.split():
        _REGS[_n] = _m
for _i in range(8, 16):
    for _suffix in ("", "d", "w", "b"):
        _REGS[f"r{_i}{_suffix}"] = f"r{_i}"
_OPERAND = re.compile(r"^(?P<size>-?\d+)@(?P<op>.+)$")
_MEM = re.compile(r"^(?P<off>-?\d*)\(%(?P<reg>\w+)\)$")


def operand_c(spec: str) -> tuple[str, str]:
    """C (u64) for one SDT argument spec, and how it is fetched in words."""
    m = _OPERAND.match(spec)
    size, op = (int(m.group("size")), m.group("op")) if m else (8, spec)
    signed, nbytes = size < 0, abs(size) if size else 8
    if nbytes not in (1, 2, 4, 8):
        raise DProbeError(f"USDT argument '{spec}': unsupported size {size}")
    ctype = f"{'s' if signed else 'u'}{nbytes * 8}"
    if op.startswith("$"):
        return api.widen(f"{int(op[1:], 0)}LL", ctype), f"the constant {op[1:]}"
    if op.startswith("%"):
        reg = _REGS.get(op[1:])
        if reg is None:
            raise DProbeError(f"USDT argument '{spec}': unknown register {op}")
        return api.widen(api.register(reg), ctype), f"register {op} ({nbytes} bytes)"
    mm = _MEM.match(op)
    if mm and _REGS.get(mm.group("reg")):
        reg, off = _REGS[mm.group("reg")], int(mm.group("off") or 0)
        return (api.widen(api.user_read(f"{api.register(reg)} + ({off})", ctype), ctype),
                f"{nbytes} bytes of user memory at %{mm.group('reg')}{off:+d}")
    raise DProbeError(f"USDT argument '{spec}': operand form '{op}' is not supported",
                      hint="supported: registers, constants, offset(%register)")


def _is_process_glob(field: str) -> bool:
    return is_glob(field) and field.strip("*") != ""


def probe_name(note_name: str) -> str:
    return note_name.replace("__", "-")


class UsdtProvider:
    name = "usdt"
    order = 60
    stability = "Evolving"
    filters_sites = True

    def provides(self, provider_field: str) -> bool:
        # Any PROVIDERpid name may be a USDT provider; which ones exist is known only
        # from the process's objects, so sites() decides (and returns nothing cheaply).
        # A glob (python*) is matched against PROVIDERpid of every running process, as
        # DTrace matches its per-process providers; a bare '*' is not (listing every
        # probe would read every process's objects).
        if _is_process_glob(provider_field):
            return True
        return bool(provider_field) and bool(_FIELD.match(provider_field))

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        if _is_process_glob(pattern.provider):
            return self._glob_sites(pattern, ctx)
        m = _FIELD.match(pattern.provider)
        if not m:
            return []
        prov, pid = m.group(1), int(m.group(2)) if m.group(2) else -1
        if pid >= 0:
            objects = target_objects(pid, ctx)
        elif pattern.module.startswith("/"):
            objects = [os.path.realpath(pattern.module)]
        else:
            return []
        return self._sites(pattern, pid, objects, lambda name: name == prov, False)

    def _glob_sites(self, pattern: ProbePattern, ctx: BindContext) -> list[ProbeSite]:
        """`python*:::function-entry`: the probes of every process (the -c target's
        included: its executable is the one it is about to exec) whose PROVIDERpid the
        glob matches."""
        out: list[ProbeSite] = []
        pids = [p for p in _elf.running_pids()
                if p == ctx.target_pid or not _elf.is_ours(p)]
        if ctx.target_pid >= 0 and ctx.target_pid not in pids:
            pids.append(ctx.target_pid)
        for pid in pids:
            try:
                objects = target_objects(pid, ctx) if pid == ctx.target_pid else \
                    _elf.process_objects(pid)
            except (ProcessLookupError, DProbeError):
                continue  # exited while we looked
            objects = [o for o in objects if _elf.has_usdt_notes(o)]
            if objects:
                out += self._sites(pattern, pid, objects,
                                   lambda name, pid=pid: glob_match(pattern.provider,
                                                                    f"{name}{pid}"), True)
        return out

    def _sites(self, pattern: ProbePattern, pid: int, objects: list[str],
               provider_ok, from_glob: bool) -> list[ProbeSite]:
        found: dict[tuple[str, str, str], list] = {}
        for path in objects:
            if pattern.module.startswith("/"):
                if os.path.realpath(pattern.module) != os.path.realpath(path):
                    continue
            elif not any(glob_match(pattern.module, n) for n in _elf.module_names(path)):
                continue
            try:
                elf = _elf.load(path)
                notes = elf.usdt_notes()
            except (OSError, _elf.ELFError):
                continue
            if not notes:
                continue
            funcs = sorted(elf.functions(), key=lambda s: s.addr)
            starts = [f.addr for f in funcs]
            for note in notes:
                name = probe_name(note.name)
                if not provider_ok(note.provider) or not glob_match(pattern.name, name):
                    continue
                i = bisect.bisect_right(starts, note.pc) - 1
                func = funcs[i].name if i >= 0 and note.pc < funcs[i].addr + max(
                    funcs[i].size, 1) else ""
                if not glob_match(pattern.function, func):
                    continue
                key = (note.provider, os.path.basename(path), func, name)
                found.setdefault(key, []).append((path, note))
        out = []
        for (prov, module, func, name), sites in found.items():
            nargs = max(len(n.args) for _, n in sites)
            args = tuple(ArgInfo("uint64_t", "int64_t", f"arg{i}") for i in range(nargs))
            out.append(ProbeSite(module, func, name, args, data=(pid, tuple(sites), from_glob),
                                 provider=f"{prov}{pid}" if pid >= 0 else prov))
        return out

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        if platform.machine() != "x86_64":
            raise DProbeError(f"the usdt provider supports x86_64 only, not {platform.machine()}")
        out = []
        for p in probes:
            pid, sites, from_glob = p.data
            for path, note in sites:
                elf = _elf.load(path)
                fetched = [operand_c(a) for a in note.args]
                out.append(Binding(
                    attach=UprobeAttach(path, elf.file_offset(note.pc), pid,
                                        ref_ctr_offset=(elf.file_offset(note.semaphore)
                                                        if note.semaphore else 0),
                                        symbol=f"{note.provider}:{note.name}",
                                        may_vanish=from_glob and pid != ctx.target_pid),
                    ctx_decl=api.PT_REGS_CTX, probes=(p,),
                    arg_exprs=tuple(c for c, _ in fetched),
                    arg_notes=tuple(f"{how} (note operand {a})"
                                    for (_, how), a in zip(fetched, note.args)),
                    includes=api.PT_REGS_INCLUDES))
        return out
