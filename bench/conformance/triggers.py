"""The suite's trigger programs (test/triggers), built with gcc as its Build file says.

Build lists the triggers and per-trigger flags as `NAME_CFLAGS := ...`, `NAME_LDFLAGS`,
`NAME_LIBS`; those lines are read from the checkout, so a newer suite brings its own flags.
Triggers that link libdtrace/libproc or need `dtrace -G` (DOF USDT providers) cannot be built
by a tool that is not dtrace-utils: they are reported as such, per trigger.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

BASE_CFLAGS = ["-O2", "-std=gnu99", "-D_GNU_SOURCE", "-D_FILE_OFFSET_BITS=64",
               "-Iinclude", "-Iuts/common"]


def _flags(build_text: str) -> dict[tuple[str, str], list[str]]:
    flags: dict[tuple[str, str], list[str]] = {}
    for m in re.finditer(r"^([A-Za-z0-9_-]+?)_(CFLAGS|LDFLAGS|LIBS)\s*:?=\s*(.*)$",
                         build_text, re.M):
        flags[(m.group(1), m.group(2))] = m.group(3).split()
    return flags


class Triggers:
    def __init__(self, root: Path):
        self.root = root
        self.folder = root / "test" / "triggers"
        build = self.folder / "Build"
        self.flags = _flags(build.read_text()) if build.exists() else {}
        self.unbuildable: dict[str, str] = {}

    def why_not(self, name: str) -> str | None:
        """None when the trigger can be used, else the reason it cannot be built here."""
        if name in self.unbuildable:
            return self.unbuildable[name]
        program = self.folder / name
        if program.exists() and program.stat().st_mode & 0o111 and not program.suffix == ".c":
            return None
        source = self.folder / f"{name}.c"
        if not source.exists():
            return self._refuse(name, f"trigger {name} not found in test/triggers")
        if (self.folder / f"{name}-prov.d").exists():
            return self._refuse(name, f"trigger {name} needs dtrace -h/-G (a DOF USDT provider)")
        if name.startswith("libproc-"):
            return self._refuse(name, f"trigger {name} links dtrace-utils' libproc")
        f = self.flags
        command = (["gcc", *BASE_CFLAGS, *f.get((name, "CFLAGS"), []), "-o", str(program),
                    str(source)] + f.get((name, "LDFLAGS"), []) + f.get((name, "LIBS"), []))
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        if done.returncode != 0:
            return self._refuse(name, f"trigger {name} did not build: "
                                      f"{done.stderr.strip().splitlines()[-1:]}")
        return None

    def _refuse(self, name: str, why: str) -> str:
        self.unbuildable[name] = why
        return why
