"""Compile the C workloads the kernel tests count against (tests/workloads/*.c).

`build_workloads(dest)` compiles each source into `dest/<stem>` and returns {stem: path}.
A binary newer than both its source and this file is reused. Each binary is written to a
temporary name and renamed into place, so a concurrent test run never executes a
half-written file, and rebuilding never fails with "Text file busy" on a running one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CC = os.environ.get("CC", "gcc")
CFLAGS = ["-O2", "-g", "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-Werror"]


class WorkloadBuildError(RuntimeError):
    """A workload did not compile; the message carries the compiler's command and output."""


def _up_to_date(binary: Path, src: Path) -> bool:
    try:
        built = binary.stat().st_mtime
    except FileNotFoundError:
        return False
    return built > src.stat().st_mtime and built > Path(__file__).stat().st_mtime


def _compile(src: Path, binary: Path) -> None:
    if shutil.which(CC) is None:
        raise WorkloadBuildError(f"cannot build {src.name}: no C compiler '{CC}' on PATH "
                                 "(scripts/setup-system.sh installs gcc)")
    fd, tmp = tempfile.mkstemp(prefix=f".{binary.name}.", dir=binary.parent)
    os.close(fd)
    cmd = [CC, *CFLAGS, "-o", tmp, str(src)]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            raise WorkloadBuildError(
                f"{' '.join(cmd)} failed (exit {proc.returncode}):\n"
                f"{(proc.stderr + proc.stdout).strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, binary)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def build_workloads(dest: Path) -> dict[str, Path]:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for src in sorted(HERE.glob("*.c")):
        binary = dest / src.stem
        if not _up_to_date(binary, src):
            _compile(src, binary)
        out[src.stem] = binary.resolve()
    return out


if __name__ == "__main__":
    for name, path in build_workloads(HERE / "bin").items():
        print(f"{name}: {path}")
