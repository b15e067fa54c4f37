"""Case 6: compile time of a 20-clause script, phase by phase (parse, check + codegen,
clang inside bcc's BPF(), kernel load with the verifier), the first time in a process
and when the same cell runs again. Each round is a fresh child process."""

from __future__ import annotations

import json
import sys
import time

from bench.common import PY, child_json, median

SYSCALLS = ["read", "write", "openat", "close", "getppid", "mmap", "munmap", "brk", "ioctl",
            "pread64", "pwrite64", "readv", "writev", "access", "pipe", "select",
            "sched_yield", "mremap", "msync", "mincore"]
SCRIPT = "\n".join(f"syscall::{name}:entry /pid != {i}/ {{ @c{i}[execname, arg0] = count(); "
                   f"@s{i} = sum(arg1); }}" for i, name in enumerate(SYSCALLS))
PHASES = ("parse", "check+codegen", "clang (bcc BPF())", "load (verifier)", "total")


def child() -> dict:
    from dtrace_nb.lang.parser import parse
    from dtrace_nb.probes import ProbeCatalog
    from dtrace_nb.runtime.attach import prog_type
    from dtrace_nb.runtime.btf import task_offsets
    from dtrace_nb.runtime.environment import import_bcc
    from dtrace_nb.runtime.loader import compile_program as bcc_compile
    from dtrace_nb.runtime.loader import load_function
    from dtrace_nb.runtime.session import SessionConfig, compile_program

    bcc = import_bcc()
    catalog = ProbeCatalog()
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        parse(SCRIPT)  # the first time in a process this builds lark's LALR tables
        t1 = time.perf_counter()
        parse(SCRIPT)
        t1b = time.perf_counter()
        _checked, prog = compile_program(SessionConfig(SCRIPT), catalog)
        t2 = time.perf_counter()
        front = max(0.0, (t2 - t1b) - (t1b - t1))  # compile_program parses again
        cflags = [f"-D{k}={v}" for k, v in task_offsets().items()]
        bpf = bcc_compile(bcc, prog.c_source, cflags)
        t3 = time.perf_counter()
        for fn in prog.functions:
            load_function(bpf, fn.name, prog_type(bcc, fn.binding.attach), prog.c_source)
        t4 = time.perf_counter()
        bpf.cleanup()
        runs.append({"parse": t1 - t0, "check+codegen": front,
                     "clang (bcc BPF())": t3 - t2, "load (verifier)": t4 - t3,
                     "total": (t1 - t0) + front + (t4 - t2)})
    return {"first": runs[0], "again": runs[1:]}


def run_case(rounds: int, quick: bool) -> dict:
    res = [child_json([PY, "-m", "bench.cases.compile"]) for _ in range(rounds)]
    out = {"rounds": rounds, "clauses": len(SYSCALLS), "first": {}, "again": {}}
    for p in PHASES:
        out["first"][p] = median([r["first"][p] for r in res])
        out["again"][p] = median([a[p] for r in res for a in r["again"]])
    return out


def table(res: dict) -> list[str]:
    lines = [f"### 6. Compile time, {res['clauses']}-clause script (median seconds, "
             f"{res['rounds']} processes)", "",
             "| phase | first run in the process | same cell again |", "|---|---|---|"]
    for p in PHASES:
        lines.append(f"| {p} | {res['first'][p]:.3f} | {res['again'][p]:.3f} |")
    return lines


if __name__ == "__main__":
    print(json.dumps(child()))
