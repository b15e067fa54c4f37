"""The -D flags a program reading DTrace's translated structures compiles with: the
kernel struct offsets codegen/translated.py names (from the running kernel's BTF), the
task offsets of the prelude, and the CPUs' physical packages (cpuinfo_t.cpu_chip, from
sysfs as dtrace-utils reads them)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from dtrace_nb.codegen.translated import KERNEL_OFFSETS
from dtrace_nb.runtime import btf

_CPUS = Path("/sys/devices/system/cpu")


@lru_cache(maxsize=1)
def kernel_offsets() -> dict[str, int]:
    """DT_OFF_* -> byte offset, for every member this kernel's BTF describes (a member it
    lacks stays undefined, and a program reading it fails to compile, naming the macro)."""
    out = {}
    for macro, (struct_name, path) in KERNEL_OFFSETS.items():
        off = btf.path_offset(struct_name, path)
        if off is not None:
            out[macro] = off
    return out


@lru_cache(maxsize=1)
def cpu_chip_expression() -> str:
    """C of the physical package of CPU `c`: a ?: chain over the CPUs sysfs lists."""
    chips = {}
    for d in _CPUS.glob("cpu[0-9]*"):
        try:
            chips[int(d.name[3:])] = int((d / "topology/physical_package_id").read_text())
        except (OSError, ValueError):
            continue
    expr = "0"
    for cpu, chip in sorted(chips.items(), reverse=True):
        if chip:
            expr = f"((c) == {cpu} ? {chip} : {expr})"
    return expr


def cflags() -> list[str]:
    """Every -D flag for a program that reads the task (FunctionSpec.uses 'task')."""
    defs: dict[str, object] = {**btf.task_offsets(), **kernel_offsets()}
    flags = [f"-D{k}={v}" for k, v in defs.items()]
    return flags + [f"-DDT_CPU_CHIP(c)={cpu_chip_expression()}"]
