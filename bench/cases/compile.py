"""Case 6: compile time of a 20-clause script, phase by phase (parse, check + codegen,
clang inside bcc's BPF() in a child process, creating the maps and loading with the
verifier): the first time in a process with an empty object cache, when the same cell runs
again (the memory cache), and from the disk cache (a new process with the same script).
Each round is a fresh child process with a cache directory of its own."""

from __future__ import annotations

import json
import os
import tempfile
import time

from bench.common import PY, child_json, median

SYSCALLS = ["read", "write", "openat", "close", "getppid", "mmap", "munmap", "brk", "ioctl",
            "pread64", "pwrite64", "readv", "writev", "access", "pipe", "select",
            "sched_yield", "mremap", "msync", "mincore"]
SCRIPT = "\n".join(f"syscall::{name}:entry /pid != {i}/ {{ @c{i}[execname, arg0] = count(); "
                   f"@s{i} = sum(arg1); }}" for i, name in enumerate(SYSCALLS))
PHASES = ("parse", "check+codegen", "compile (clang in a child, or the cache)",
          "maps + load (verifier)", "total")
COLUMNS = (("first", "first run, empty cache"), ("again", "same cell again (memory cache)"),
           ("disk", "new process (disk cache)"))


def child() -> dict:
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="dtnb-bench-cache-")
    from dtrace_nb.lang.parser import parse
    from dtrace_nb.probes import ProbeCatalog
    from dtrace_nb.runtime import compiler
    from dtrace_nb.runtime.attach import load_attributes
    from dtrace_nb.runtime.btf import task_offsets
    from dtrace_nb.runtime.environment import import_bcc
    from dtrace_nb.runtime.loader import compile_c, create_maps, load_function
    from dtrace_nb.runtime.compile import compile_program
    from dtrace_nb.session import SessionConfig

    bcc = import_bcc()
    catalog = ProbeCatalog()
    runs = []
    for i in range(4):
        if i == 3:
            compiler.clear_memory_cache()  # as a new process would: from the disk cache
        t0 = time.perf_counter()
        parse(SCRIPT)  # the first time in a process this builds lark's LALR tables
        t1 = time.perf_counter()
        parse(SCRIPT)
        t1b = time.perf_counter()
        _checked, prog = compile_program(SessionConfig(SCRIPT), catalog)
        t2 = time.perf_counter()
        front = max(0.0, (t2 - t1b) - (t1b - t1))  # compile_program parses again
        cflags = [f"-D{k}={v}" for k, v in task_offsets().items()] if prog.reads_task else []
        compiled = compile_c(bcc, prog.c_source, cflags, [fn.name for fn in prog.functions])
        assert compiled.cached == (i > 0)
        t3 = time.perf_counter()
        obj = create_maps(bcc, compiled)
        for fn in prog.functions:
            a = load_attributes(fn.binding.attach)
            load_function(obj, fn.name, a.prog_type, prog.c_source, a.expected_attach_type,
                          a.attach_btf_id)
        t4 = time.perf_counter()
        obj.cleanup()
        runs.append({"parse": t1 - t0, "check+codegen": front,
                     "compile (clang in a child, or the cache)": t3 - t2,
                     "maps + load (verifier)": t4 - t3,
                     "total": (t1 - t0) + front + (t4 - t2)})
    return {"first": runs[0], "again": runs[1:3], "disk": [runs[3]]}


def run_case(rounds: int, quick: bool) -> dict:
    res = [child_json([PY, "-m", "bench.cases.compile"]) for _ in range(rounds)]
    out = {"rounds": rounds, "clauses": len(SYSCALLS), "first": {}, "again": {}, "disk": {}}
    for p in PHASES:
        out["first"][p] = median([r["first"][p] for r in res])
        for col in ("again", "disk"):
            out[col][p] = median([a[p] for r in res for a in r[col]])
    return out


def table(res: dict) -> list[str]:
    lines = [f"### 6. Compile time, {res['clauses']}-clause script (median seconds, "
             f"{res['rounds']} processes)", "",
             "| phase | " + " | ".join(title for _, title in COLUMNS) + " |",
             "|---|---|---|---|"]
    for p in PHASES:
        lines.append(f"| {p} | " + " | ".join(f"{res[col].get(p, 0):.3f}" for col, _ in COLUMNS)
                     + " |")
    return lines


if __name__ == "__main__":
    print(json.dumps(child()))
