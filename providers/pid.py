"""The pid provider: user functions, `pidPID:MODULE:FUNCTION:NAME`.

- PID: a process id (`pid$target` with -c/-p). `pid:/path/to/binary:func:entry` with no
  process id and an absolute path traces that binary in every process (a dtrace-nb
  extension, like bpftrace's `uprobe:`).
- MODULE: the basename of an executable object mapped in the process (`libc.so.6`, or
  short: `libc.so`, `libc`), its absolute path, or `a.out` for the main executable. With -c, the target is held before its
  exec: its objects are the command's executable and the libraries already mapped (the
  dynamic loader, libc); name any other library by its path.
- FUNCTION: a function symbol (.symtab and .dynsym), globs allowed.
- NAME: `entry`, `return`, or a hexadecimal offset into the function (`pid$target:a.out:main:4`,
  an instruction boundary the user chose; not checked). A NAME glob matches entry and
  return only: DTrace's per-instruction probes are not listed.

Mechanism: a uprobe (entry, offsets) or uretprobe (return) at the function's file offset,
filtered to the process. Where the kernel has uprobe_multi links (Linux 6.6), the probes
of one object, process and kind that a program uses are one BPF program on one link, the
probe told by the attach cookie of its offset: no cap on their number but the kernel's
(2^20 offsets a link, more make more links), one program and one fd for all, and one
detach (each uprobe perf event's close waits for a grace period: ~0.1 s measured). Else
each probe is its own program and perf event, two file descriptors, checked against
RLIMIT_NOFILE before attaching. Arguments on entry are the x86-64 argument registers
(rdi rsi rdx rcx r8 r9); on return arg1 is the return value (rax) and arg0 the return
offset, which a uretprobe cannot know: it is 0.

A function whose first instruction uprobes cannot step (a lock prefix, as libc's
pthread_spin_lock: the kernel answers ENOTSUPP) is left out and said once as tracing
begins ("dtrace: Failed to enable PROBE", as dtrace-utils words a probe whose attach is
not supported); the other probes trace. The kernel checks the instruction when it puts
the uprobe into a mapped object: an object a -c target maps only after its exec (its
executable, most libraries) gets no such check at attach, and a probe there that the
kernel cannot place then never fires, unsaid (with -p every object is mapped).
"""

from __future__ import annotations

import os
import platform
import re
import resource
from typing import Iterable, Optional

from dtrace_nb.codegen import provider_api as api
from dtrace_nb.errors import DProbeError
from dtrace_nb.probes import (ArgInfo, BindContext, Binding, Probe, ProbePattern, ProbeSite,
                              Selector, UprobeAttach, UprobeMultiAttach, glob_match, is_glob)
from dtrace_nb.runtime.kernel import features
from dtrace_nb_providers import _elf
from dtrace_nb_providers._elf import target_objects
from dtrace_nb_providers._regs import ARG_REGS, pt_regs_args

# the kernel's cap on one uprobe_multi link's offsets (kernel/trace/bpf_trace.c)
MAX_UPROBE_MULTI_CNT = 1 << 20
# without uprobe_multi each probe holds two file descriptors: its program and perf event
FDS_PER_SINGLE_PROBE = 2
_FIELD = re.compile(r"^pid(\d*)$")
_ENTRY_ARGS = tuple(ArgInfo("uint64_t", "uint64_t", f"arg{i}") for i in range(len(ARG_REGS)))
_RETURN_ARGS = (ArgInfo("uint64_t", "uint64_t", "offset"), ArgInfo("uint64_t", "uint64_t", "rval"))


def _module_matches(pattern: str, path: str, is_main: bool) -> bool:
    if pattern.startswith("/"):
        return os.path.realpath(pattern) == os.path.realpath(path)
    return (any(glob_match(pattern, name) for name in _elf.module_names(path))
            or (is_main and glob_match(pattern, "a.out")))


class PidProvider:
    name = "pid"
    order = 50
    stability = "Unstable"
    # The provider decides which of its sites a description matches ('a.out', paths).
    filters_sites = True

    def provides(self, provider_field: str) -> bool:
        return bool(_FIELD.match(provider_field))

    def _objects(self, field: str, module: str, ctx: BindContext) -> tuple[int, list[str]]:
        m = _FIELD.match(field)
        pid = int(m.group(1)) if m and m.group(1) else -1
        if pid < 0:
            if not module.startswith("/"):
                raise DProbeError(f"'{field}' needs a process id (pid$target, pid1234) or an "
                                  "absolute path as the module",
                                  hint="e.g. pid$target:libc.so.6:malloc:entry or "
                                       "pid:/usr/bin/python3.11:main:entry")
            return -1, [os.path.realpath(module)]
        return pid, target_objects(pid, ctx)

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        pid, objects = self._objects(pattern.provider, pattern.module, ctx)
        provider = f"pid{pid}" if pid >= 0 else "pid"
        out = []
        for i, path in enumerate(objects):
            if not _module_matches(pattern.module, path, i == 0):
                continue
            try:
                elf = _elf.load(path)
            except (OSError, _elf.ELFError):
                continue
            module = os.path.basename(path)
            for sym in elf.functions():
                if not glob_match(pattern.function, sym.name):
                    continue
                for name, off in self._names(pattern.name, sym):
                    ret = name == "return"
                    out.append(ProbeSite(module, sym.name, name,
                                         _RETURN_ARGS if ret else _ENTRY_ARGS,
                                         data=(path, sym.addr + off, pid, ret,
                                               sym.name + (f"+{off:#x}" if off else "")),
                                         provider=provider))
        return out

    @staticmethod
    def _names(pattern: str, sym: _elf.Symbol) -> list[tuple[str, int]]:
        if is_glob(pattern):
            return [(n, 0) for n in ("entry", "return") if glob_match(pattern, n)]
        if pattern in ("entry", "return"):
            return [(pattern, 0)]
        if re.fullmatch(r"[0-9a-fA-F]+", pattern):
            off = int(pattern, 16)
            if sym.size and off >= sym.size:
                return []
            return [(pattern, off)]
        return []

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        if platform.machine() != "x86_64":
            raise DProbeError(f"the pid provider supports x86_64 only, not {platform.machine()}")
        groups: dict[tuple[str, int, bool], list[Probe]] = {}
        for p in probes:
            path, _vaddr, pid, ret, _label = p.data
            groups.setdefault((path, pid, ret), []).append(p)
        multi = features.uprobe_multi().available
        if not multi:
            _check_fd_budget(len(probes))
        out = []
        for (path, pid, ret), group in groups.items():
            exprs, notes = pt_regs_args(ret, "uretprobe" if ret else "uprobe")
            elf = _elf.load(path)
            if multi and len(group) > 1:
                # one program for the group, the probe told by the offset's cookie
                for start in range(0, len(group), MAX_UPROBE_MULTI_CNT):
                    part = group[start:start + MAX_UPROBE_MULTI_CNT]
                    offsets = tuple(elf.file_offset(p.data[1]) for p in part)
                    attach = UprobeMultiAttach(path, offsets, tuple(range(len(part))), pid, ret,
                                               tuple(p.data[4] for p in part))
                    out.append(Binding(
                        attach=attach, ctx_decl=api.PT_REGS_CTX, probes=tuple(part),
                        selector=Selector(api.ATTACH_COOKIE,
                                          {p.id: i for i, p in enumerate(part)}),
                        arg_exprs=exprs, arg_notes=notes, includes=api.PT_REGS_INCLUDES))
                continue
            for p in group:
                offset = elf.file_offset(p.data[1])
                out.append(Binding(attach=UprobeAttach(path, offset, pid, ret, symbol=p.data[4]),
                                   ctx_decl=api.PT_REGS_CTX, probes=(p,), arg_exprs=exprs,
                                   arg_notes=notes, includes=api.PT_REGS_INCLUDES))
        return out


def _check_fd_budget(nprobes: int) -> None:
    """Without uprobe_multi, refuse up front what RLIMIT_NOFILE would stop half-way,
    raising the soft limit to the hard one when that is enough."""
    need = nprobes * FDS_PER_SINGLE_PROBE + len(os.listdir("/proc/self/fd")) + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if need <= soft:
        return
    if hard != resource.RLIM_INFINITY and need > hard:
        raise DProbeError(f"{nprobes} pid probes need {need} file descriptors (a program and a "
                          f"perf event each: this kernel has no uprobe_multi links), over "
                          f"RLIMIT_NOFILE's hard limit of {hard}",
                          hint="raise it (ulimit -Hn) or narrow the function glob")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard == resource.RLIM_INFINITY
                                                else hard, hard))


def target_pid(field: str) -> Optional[int]:
    m = _FIELD.match(field)
    return int(m.group(1)) if m and m.group(1) else None
