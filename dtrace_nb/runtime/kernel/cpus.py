"""The CPUs the kernel knows: possible ones (per-CPU maps hold a value for each) and
online ones (a perf event is opened on each)."""

from __future__ import annotations

from functools import lru_cache


def parse_cpu_list(text: str) -> list[int]:
    """A sysfs CPU list ("0-3,5,8-9") as CPU numbers."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


@lru_cache(maxsize=1)
def possible_cpus() -> int:
    """The number of possible CPUs (the highest possible CPU + 1)."""
    with open("/sys/devices/system/cpu/possible") as f:
        return max(parse_cpu_list(f.read()), default=0) + 1


def online_cpus() -> list[int]:
    """The CPUs online now (read each time: CPUs may come and go)."""
    with open("/sys/devices/system/cpu/online") as f:
        return parse_cpu_list(f.read())
