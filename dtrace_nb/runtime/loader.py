"""Compile generated C (runtime/compiler.py: bcc in a child process, cached), create the
program's maps and load its functions here, and turn every failure into a DLoadError naming
the D clause the failing code came from, with clang's or the verifier's log as its detail.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from dtrace_nb.errors import DLoadError
from dtrace_nb.lang.ast import Span
from dtrace_nb.runtime.compiler import CompiledObject, CompileFailure, compile_object
from dtrace_nb.runtime.kernel.bpf import prog_load
from dtrace_nb.runtime.kernel.libc import close
from dtrace_nb.runtime.maps import Map, create_map


def _clause_of_line(c_source: str, line: int) -> Optional[str]:
    """The `/* clause N (...) at line L */` comment governing a line of generated C."""
    lines = c_source.splitlines()
    for i in range(min(line, len(lines)) - 1, -1, -1):
        m = re.match(r"\s*/\* clause (\d+) \((.*)\) at line (\d+) \*/", lines[i])
        if m:
            return f"clause {m.group(1)} ({m.group(2)}) at line {m.group(3)}"
    return None


def _clause_span(desc: Optional[str]) -> Optional[Span]:
    if not desc:
        return None
    m = re.search(r"at line (\d+)$", desc)
    return Span(int(m.group(1)), 1, int(m.group(1)), 1) if m else None


class LoadedObject:
    """A compiled program in this process: its maps created (runtime/maps.py, one typed
    class per kind), its functions loaded on request (`load_function`), everything closed
    by `cleanup()`. Indexing by map name gives the map."""

    def __init__(self, bcc, compiled: CompiledObject):
        self.compiled = compiled
        self.maps: dict[str, Map] = {}
        self.prog_fds: list[int] = []
        try:
            for spec in compiled.maps:
                self.maps[spec.name] = create_map(spec, _ctype(bcc, spec.key_desc),
                                                  _ctype(bcc, spec.leaf_desc))
        except BaseException:
            self.cleanup()
            raise

    def __getitem__(self, name: str) -> Map:
        return self.maps[name]

    def instructions(self, name: str) -> bytes:
        """A function's instructions with its map references pointing at our maps."""
        code = np.frombuffer(self.compiled.functions[name], dtype=_INSN).copy()
        ld = (code["code"] == _LD_IMM64) & np.isin(code["regs"] >> 4, _MAP_SOURCES)
        for i in np.flatnonzero(ld):
            child_fd = int(code["imm"][i])
            map_name = self.compiled.map_fds.get(child_fd)
            if map_name is None:
                raise DLoadError(f"the compiled function {name} refers to an unknown map "
                                 f"(fd {child_fd})", hint="this is a dtrace-nb bug")
            code["imm"][i] = self.maps[map_name].fd
        return code.tobytes()

    def load_function(self, name: str, prog_type: int, expected_attach_type: int = 0,
                      attach_btf_id: int = 0, log_size: int = 0) -> tuple[int, str]:
        fd, log = prog_load(prog_type, name, self.instructions(name), self.compiled.license,
                            self.compiled.kern_version, expected_attach_type, attach_btf_id,
                            log_size)
        if fd >= 0:
            self.prog_fds.append(fd)
        return fd, log

    def cleanup(self) -> None:
        for fd in self.prog_fds:
            close(fd)
        self.prog_fds.clear()
        for m in self.maps.values():
            m.close()
        self.maps.clear()


# struct bpf_insn: opcode, dst/src registers (4 bits each), offset, immediate
_INSN = np.dtype([("code", "u1"), ("regs", "u1"), ("off", "<i2"), ("imm", "<i4")])
_LD_IMM64 = 0x18
_MAP_SOURCES = (1, 2)  # BPF_PSEUDO_MAP_FD, BPF_PSEUDO_MAP_VALUE: imm is a map fd


def _ctype(bcc, desc: str):
    """The ctypes type bcc describes in JSON (bcc builds its own tables' types this way)."""
    if not desc:
        return None
    return bcc.BPF._decode_table_type(json.loads(desc))


@dataclass
class LoadedFunction:
    name: str
    fd: int


def compile_c(bcc, c_source: str, cflags: list[str], functions: list[str]) -> CompiledObject:
    """The program's instructions and map declarations (compiled in a child process, or
    from the cache); a failure is a DLoadError."""
    try:
        return compile_object(bcc, c_source, cflags, functions)
    except CompileFailure as failure:
        raise _compile_error(c_source, failure) from None


def create_maps(bcc, compiled: CompiledObject) -> LoadedObject:
    """The program's maps, created in this process (callers defer Ctrl-C around this)."""
    try:
        return LoadedObject(bcc, compiled)
    except OSError as err:
        raise DLoadError(f"the kernel refused a map of the program: {err.strerror}",
                         hint=_env_hint(str(err))) from None


# clang's diagnostics name a line of our C; LLVM's backend errors name the function
# ("error: /virtual/main.c:17:27: in function dtnb_b0 i32 (i8*): A call to built-in
# function 'memcpy' is not supported.", where the line is of bcc's rewritten text).
_C_ERROR = re.compile(r"/virtual/main\.c:(\d+):(\d+): error: (.*)")
_BACKEND_ERROR = re.compile(r"error: \S*: in function (\w+)[^:]*: (.*)")


def _compile_error(c_source: str, failure: CompileFailure) -> DLoadError:
    text = failure.log
    backend = _BACKEND_ERROR.search(text)
    if backend:
        clause = _function_clauses(c_source, backend.group(1))
        reason = backend.group(2).strip()
    elif (m := _C_ERROR.search(text)):
        clause = _clause_of_line(c_source, int(m.group(1)))
        reason = m.group(3).strip()
    else:
        clause, reason = None, ""
    where = f" in {clause}" if clause else ""
    if failure.crashed:
        return DLoadError(f"LLVM gave up on the generated C{where}: {reason or failure}",
                          _clause_span(clause),
                          hint="this is a dtrace-nb bug; the compiler ran in its own process "
                               f"({failure}), so nothing else was lost; the raw log is in "
                               "the error's .detail", detail=text)
    if reason:
        return DLoadError(f"the generated C did not compile{where}: {reason}",
                          _clause_span(clause),
                          hint="this is a dtrace-nb bug; the raw log is in the error's .detail",
                          detail=text)
    return DLoadError(f"bcc could not compile the program: {failure}", detail=text,
                      hint=_env_hint(text))


_VERIFIER_LOG = 16 << 20  # kernels since 6.4 keep the log's tail when it overflows


def load_function(obj: LoadedObject, name: str, prog_type: int, c_source: str,
                  expected_attach_type: int = 0, attach_btf_id: int = 0) -> LoadedFunction:
    """Load one function; a rejection names the D clause, with the verifier's log."""
    fd, _ = obj.load_function(name, prog_type, expected_attach_type, attach_btf_id)
    if fd >= 0:
        return LoadedFunction(name, fd)
    # again, with the verifier's log: the first try skips it because it is costly
    fd, text = obj.load_function(name, prog_type, expected_attach_type, attach_btf_id,
                                 log_size=_VERIFIER_LOG)
    if fd >= 0:  # loads with a log but not without? keep it: it is loaded
        return LoadedFunction(name, fd)
    err = os.strerror(-fd)
    clause = _function_clauses(c_source, name)
    where = f" for {clause}" if clause else ""
    if not re.search(r"^\d+: \(", text, re.M):
        # no verifier log: the kernel refused the program before verifying it (EPERM for
        # a program type it does not allow, EINVAL for an unknown attach target...)
        raise DLoadError(f"the kernel refused to load the program{where}: {err}",
                         _clause_span(clause), detail=text or err,
                         hint="the kernel may not support this kind of program "
                              "(dtrace-nb --doctor lists what it offers)")
    reason = _verifier_reason(text)
    raise DLoadError(f"the BPF verifier rejected the program{where}: {reason}",
                     _clause_span(clause), detail=text,
                     hint="see .detail for the verifier log")


def _function_clauses(c_source: str, fname: str) -> Optional[str]:
    m = re.search(rf"int {re.escape(fname)}\(.*?\n(.*?)\n}}\n", c_source, re.S)
    if not m:
        return None
    found = re.findall(r"/\* clause (\d+) \((.*?)\) at line (\d+) \*/", m.group(1))
    if not found:
        return None
    return "; ".join(f"clause {n} ({d}) at line {ln}" for n, d, ln in found)


def _verifier_reason(log: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith(("processed ", "HINT", "bpf: ", "Failed")):
            continue
        return ln
    return "no reason given (run with -x debug to see the log)"


def _env_hint(log: str) -> str:
    if "chdir(" in log or "kernel headers" in log.lower() or "/lib/modules" in log:
        return "kernel headers are missing: run 'make setup' (or 'dtrace-nb --doctor')"
    if "Operation not permitted" in log or "Permission denied" in log:
        return "loading BPF needs root or CAP_BPF+CAP_PERFMON"
    return "run 'dtrace-nb --doctor' to check the prerequisites"
