"""What every case shares: the workload binary, the three tracers' command lines, running a
command and reading what it measured, medians."""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = BENCH / "bin"
PY = sys.executable                   # the venv's python: dtrace-nb
SYSPY = "/usr/bin/python3"            # the distribution's python: bcc as its users run it
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror"]


def build() -> Path:
    """Compile bench/workloads/benchload.c into bench/bin/ (when the source is newer)."""
    BIN.mkdir(exist_ok=True)
    src, out = BENCH / "workloads" / "benchload.c", BIN / "benchload"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        fd, tmp = tempfile.mkstemp(prefix=".benchload.", dir=BIN)
        os.close(fd)
        subprocess.run(["gcc", *CFLAGS, "-o", tmp, str(src)], check=True)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    return out


def benchload(*args) -> str:
    return " ".join([str(BIN / "benchload"), *map(str, args)])


def dtrace_cmd(program: str, target: str, *opts: str) -> list[str]:
    return [PY, "-m", "dtrace_nb.cli", "-q", *opts, "-n", program, "-c", target]


def bpftrace_cmd(program: str, target: str) -> list[str]:
    return ["bpftrace", "-e", program, "-c", target]


def bcc_cmd(name: str, target: str) -> list[str]:
    return [SYSPY, str(BENCH / "bcc_run.py"), name, "--", *target.split()]


def have_bpftrace() -> bool:
    return shutil.which("bpftrace") is not None


def run(cmd: list[str], timeout: float = 300) -> tuple[str, str, float]:
    """Run to completion; (stdout, stderr, wall seconds). A failure raises with its output."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    return p.stdout, p.stderr, wall


def field(text: str, name: str) -> float:
    m = re.search(rf"benchload {name}=([0-9.]+)", text)
    if not m:
        raise RuntimeError(f"no '{name}' in the workload's output:\n{text[-2000:]}")
    return float(m.group(1))


def child_json(cmd: list[str], timeout: float = 300) -> dict:
    """Run a measuring child that prints one JSON object as its last stdout line."""
    out, _err, _wall = run(cmd, timeout)
    return json.loads(out.strip().splitlines()[-1])


def median(xs) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def spread(xs) -> float:
    """(max - min) / median: how noisy the rounds were."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return 0.0
    m = statistics.median(xs)
    return (max(xs) - min(xs)) / m if m else 0.0


def map_memlock() -> int:
    """Bytes the kernel charges for every BPF map this process holds (fdinfo 'memlock'),
    each map once however many fds refer to it (an mmap of a map holds a dup of its fd)."""
    seen: dict[str, int] = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:bpf-map":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
            seen[info.get("map_id", fd).strip()] = int(info.get("memlock", "0").split()[0])
        except (OSError, ValueError):
            continue
    return sum(seen.values())


def peak_rss() -> int:
    """Peak resident set of this process, bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
