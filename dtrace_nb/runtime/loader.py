"""Compile and load generated C through bcc, with clang's and the verifier's log captured.

libbcc writes diagnostics to the C-level fd 2, which a notebook never shows; we point fd 2
at a temporary file around the BPF() constructor and around each program load, and turn a
failure into a DLoadError naming the D clause the failing code came from.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from typing import Iterator, Optional

from dtrace_nb.errors import DLoadError
from dtrace_nb.lang.ast import Span

# fd 2 is process-wide: two sessions loading at once must not interleave redirections.
_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Redirect the process's fd 2 to a temporary file; yields a list that receives the text."""
    out: list[str] = []
    with _FD2_LOCK, tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


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


_BPF_CLASSES: dict = {}


def _bpf_class(bcc):
    """bcc.BPF without its constructor's auto-attach: bcc attaches functions named
    kfunc__*, kprobe__*, tracepoint__*... as soon as it compiles them, outside our
    bookkeeping (and a failure there would leave the module's maps behind). dtrace-nb
    attaches every function itself (runtime/attach.py)."""
    cls = _BPF_CLASSES.get(id(bcc))
    if cls is None:
        class BPF(bcc.BPF):
            def _trace_autoload(self):
                pass

        cls = _BPF_CLASSES[id(bcc)] = BPF
    return cls


def compile_program(bcc, c_source: str, cflags: list[str]):
    """bcc.BPF(text=...) with errors translated; returns the BPF object."""
    with captured_stderr() as log:
        try:
            bpf = _bpf_class(bcc)(text=c_source.encode(), cflags=cflags)
        except Exception as exc:  # bcc raises bare Exception for compile failures
            err = exc
        else:
            err = None
    text = "".join(log)
    if err is None:
        return bpf
    m = re.search(r"/virtual/main\.c:(\d+):(\d+): error: (.*)", text)
    if m:
        clause = _clause_of_line(c_source, int(m.group(1)))
        where = f" in {clause}" if clause else ""
        raise DLoadError(f"the generated C did not compile{where}: {m.group(3)}",
                         _clause_span(clause),
                         hint="this is a dtrace-nb bug; the raw log is in the error's .detail",
                         detail=text)
    raise DLoadError(f"bcc could not compile the program: {err}", detail=text,
                     hint=_env_hint(text))


def load_function(bpf, name: str, prog_type: int, c_source: str):
    """bpf.load_func with the verifier log captured; a rejection names the D clause."""
    with captured_stderr() as log:
        try:
            fn = bpf.load_func(name.encode(), prog_type)
        except Exception as exc:
            err = exc
        else:
            err = None
    if err is None:
        return fn
    text = "".join(log)
    clause = _function_clauses(c_source, name)
    where = f" for {clause}" if clause else ""
    refused = re.search(r"Failed to load program: (.*)", text)
    if not text.strip() or (refused and not re.search(r"^\d+: \(", text, re.M)):
        # no verifier log: the kernel refused the program before verifying it (EPERM for
        # a program type it does not allow, EINVAL for an unknown attach target...)
        why = refused.group(1).strip() if refused else str(err)
        raise DLoadError(f"the kernel refused to load the program{where}: {why}",
                         _clause_span(clause), detail=str(err),
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
