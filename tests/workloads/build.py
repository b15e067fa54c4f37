"""Compile the C workloads the kernel tests count against."""

from __future__ import annotations

import subprocess
from pathlib import Path

HERE = Path(__file__).parent
CFLAGS = ["-O2", "-g", "-fno-omit-frame-pointer", "-Wall"]


def build_workloads(dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for src in sorted(HERE.glob("*.c")):
        binary = dest / src.stem
        if not binary.exists() or binary.stat().st_mtime < src.stat().st_mtime:
            proc = subprocess.run(["gcc", *CFLAGS, "-o", str(binary), str(src)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"gcc failed on {src.name}:\n{proc.stderr}")
        out[src.stem] = binary
    return out
