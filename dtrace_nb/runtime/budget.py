"""What tracing costs, measured by the kernel (`--budget`): while run-time statistics are
enabled (BPF_ENABLE_STATS) the kernel counts each program's runs and the time spent in
them; per attachment that is the probes it serves, how often it ran (every run counts,
also those its predicate or the attachment's own filter turned away: a `syscall::read:entry`
served from the raw tracepoint sys_enter runs on every system call) and how much CPU it
took. Enabling the statistics adds two clock reads to every BPF program's run on the
system, so they are on only when asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dtrace_nb.probes import TriggerAttach
from dtrace_nb.runtime.kernel.bpf import enable_run_time_stats, prog_run_stats


@dataclass(frozen=True)
class AttachmentCost:
    probes: str         # the probes served: one description, or the first and a count
    attachment: str     # how it is attached (the kernel's event)
    runs: int
    ns: int             # time spent running, all CPUs
    seconds: float      # the traced time the counts cover

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds > 0 else 0.0

    @property
    def ns_per_run(self) -> float:
        return self.ns / self.runs if self.runs else 0.0

    @property
    def cpu_share(self) -> float:
        """Of one CPU's time: 0.02 is 2% of a CPU."""
        return self.ns / (self.seconds * 1e9) if self.seconds > 0 else 0.0


class RunTimeStats:
    """Kernel run-time statistics, on from construction until close()."""

    def __init__(self):
        self._fd = enable_run_time_stats()

    def costs(self, functions, prog_fds: dict[str, int],
              seconds: float) -> list[AttachmentCost]:
        """One row per attached function (codegen's FunctionSpec: name and binding), the
        costliest first; consumer triggers (BEGIN, END, ERROR) are not attachments."""
        rows = []
        for fn in functions:
            if fn.name not in prog_fds or isinstance(fn.binding.attach, TriggerAttach):
                continue
            _id, runs, ns = prog_run_stats(prog_fds[fn.name])
            probes = fn.binding.probes
            label = probes[0].description if probes else fn.name
            if len(probes) > 1:
                label += f" and {len(probes) - 1:,} more"
            rows.append(AttachmentCost(label, fn.binding.attach.describe(), runs, ns, seconds))
        return sorted(rows, key=lambda r: -r.ns)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def budget_lines(rows: list[AttachmentCost]) -> list[str]:
    """The report in dtrace-nb's words, a line per attachment and the total."""
    if not rows:
        return ["dtrace-nb: budget: no probe fired"]
    seconds = rows[0].seconds
    total_ns = sum(r.ns for r in rows)
    out = [f"dtrace-nb: budget over {seconds:.2f} s: {sum(r.runs for r in rows):,} runs, "
           f"{total_ns / 1e6:,.1f} ms of CPU ({100 * total_ns / (seconds * 1e9):.2f}% of "
           f"one CPU)" if seconds > 0 else "dtrace-nb: budget: no traced time"]
    width = max(len(r.probes) for r in rows)
    for r in rows:
        out.append(f"dtrace-nb:   {r.probes:<{width}}  {r.runs_per_second:>12,.0f} runs/s  "
                   f"{r.ns_per_run:>7,.0f} ns/run  {100 * r.cpu_share:6.2f}% CPU  "
                   f"({r.attachment})")
    return out
