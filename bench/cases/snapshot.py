"""Case 3 (and the memory half of case 5): an aggregation of N distinct keys read into a
DataFrame. benchload makes N getppid(i) calls, so arg0 takes N values.
dtrace-nb also: one refresh of a notebook cell's live view at that size (the maps read,
the timeline sampled, the table of the top rows built as HTML), what every refresh
interval costs while such a trace runs.

dtrace-nb: Session.snapshot() (batched per-CPU map reads decoded with numpy, merged,
sorted in DTrace's order) then AggSnapshot.to_frame(). bcc (hand-written): the idiom of
bcc's tools, `table.items()` into a DataFrame. Each size runs in a fresh child process
so that its peak RSS is its own; kernel-side map memory is the kernel's memlock charge
of the maps the child holds.
"""

from __future__ import annotations

import json
import sys
import time

from bench.common import PY, benchload, child_json, map_memlock, median, peak_rss

SIZES = (1_000, 10_000, 100_000, 1_000_000)
D_KEYS = "syscall::getppid:entry /pid == $target/ { @[arg0] = count(); }"
BCC_KEYS = """
#include <uapi/linux/ptrace.h>
BPF_HASH(counts, u64, u64, MAXKEYS);
RAW_TRACEPOINT_PROBE(sys_enter)
{
	if (ctx->args[1] != 110 || (bpf_get_current_pid_tgid() >> 32) != TARGET)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	u64 k = 0;
	bpf_probe_read_kernel(&k, sizeof(k), &regs->di);
	counts.increment(k);
	return 0;
}
"""


def _capacity(n: int) -> int:
    return max(10240, int(n * 1.25))


def child_dtrace(n: int) -> dict:
    import pandas  # noqa: F401 - imported before the baseline RSS, as in a notebook

    from dtrace_nb.session import Session, SessionConfig

    s = Session(SessionConfig(D_KEYS, target_command=benchload("keys", n, -1), quiet=True,
                              options={"aggkeys": str(_capacity(n))}),
                on_output=lambda _t: None)
    s.start()
    while s.poll(50):
        pass
    memlock = map_memlock()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        frames = {name: snap.to_frame() for name, snap in s.snapshot().items()}
        times.append(time.perf_counter() - t0)
    rows = len(frames["_"]) if "_" in frames else len(next(iter(frames.values())))
    refresh = _live_refreshes(s)
    s.stop()
    return {"seconds": median(times), "rows": rows, "maps_bytes": memlock,
            "peak_rss": peak_rss(), "refresh": refresh}


def _live_refreshes(s, times: int = 5) -> float:
    """The median time of a live view refresh, from the maps read to the HTML drawn."""
    from dtrace_nb.display.live import LiveView

    view = LiveView(display=lambda *a, **k: None, widgets=False)
    view.open()
    out = []
    for _ in range(times):
        t0 = time.perf_counter()
        view.refresh(s)
        view._render.join()  # the drawing thread: its table and HTML are part of the cost
        out.append(time.perf_counter() - t0)
    assert view.render_error is None, view.render_error
    return median(out)


def child_bcc(n: int) -> dict:
    import subprocess

    import pandas as pd

    from dtrace_nb.runtime.environment import import_bcc

    bcc = import_bcc()
    b = bcc.BPF(text=_bcc_text(n).encode())
    subprocess.run(benchload("keys", n, -1).split(), check=True)
    memlock = map_memlock()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        items = b["counts"].items()
        df = pd.DataFrame({"arg0": [k.value for k, _ in items], "count": [v.value for _, v in items]})
        df = df.sort_values(["count", "arg0"])
        times.append(time.perf_counter() - t0)
    b.cleanup()
    return {"seconds": median(times), "rows": len(df), "maps_bytes": memlock,
            "peak_rss": peak_rss()}


def _bcc_text(n: int) -> str:
    # the workload is not started yet: match it by name instead of pid
    return (BCC_KEYS.replace("MAXKEYS", str(_capacity(n)))
            .replace("(bpf_get_current_pid_tgid() >> 32) != TARGET", "!is_benchload()")
            .replace("RAW_TRACEPOINT_PROBE", _IS_BENCHLOAD + "RAW_TRACEPOINT_PROBE"))


_IS_BENCHLOAD = """
static __always_inline int is_benchload(void)
{
	char c[16] = {};
	bpf_get_current_comm(c, sizeof(c));
	return c[0] == 'b' && c[1] == 'e' && c[2] == 'n' && c[5] == 'l' && c[8] == 'd' && c[9] == 0;
}
"""


def run_case(rounds: int, quick: bool) -> dict:
    rows = []
    for n in SIZES:
        for tool in ("dtrace-nb", "bcc (hand-written)"):
            kind = "dtrace" if tool == "dtrace-nb" else "bcc"
            res = [child_json([PY, "-m", "bench.cases.snapshot", kind, str(n)])
                   for _ in range(rounds)]
            rows.append({"keys": n, "tool": tool,
                         "seconds": median([r["seconds"] for r in res]),
                         "rows": res[0]["rows"],
                         "maps_bytes": median([r["maps_bytes"] for r in res]),
                         "refresh": median([r["refresh"] for r in res])
                         if "refresh" in res[0] else None,
                         "peak_rss": median([r["peak_rss"] for r in res])})
    return {"rounds": rounds, "rows": rows}


def table(res: dict) -> list[str]:
    lines = ["### 3. Aggregation snapshot into a DataFrame, and memory (case 5)", "",
             "| keys | tool | snapshot + DataFrame | live refresh | rows | kernel maps | "
             "peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        refresh = f"{1000 * r['refresh']:.1f} ms" if r.get("refresh") is not None else "-"
        lines.append(f"| {r['keys']:,} | {r['tool']} | {1000 * r['seconds']:.1f} ms | "
                     f"{refresh} | {r['rows']:,} | {r['maps_bytes'] / 2**20:.1f} MiB | "
                     f"{r['peak_rss'] / 2**20:.0f} MiB |")
    return lines


if __name__ == "__main__":
    fn = child_dtrace if sys.argv[1] == "dtrace" else child_bcc
    print(json.dumps(fn(int(sys.argv[2]))))
