"""Case 9: stacks. (a) A live profile, `profile-997 { @[stack(), ustack()] = count(); }` over
a busy Python process for a few seconds: the first snapshot names every stack, later ones
only the new stacks (a stack id names one stack for the map's life), so a refresh costs
the map reads plus what is new. (b) The same profile from the command line against
bpftrace's `profile:hz:997 { @[kstack, ustack] = count(); }`, each ending itself after the
same seconds and printing every stack symbolised: the wall time beyond those seconds
(start-up, then reading and naming the stacks and printing them). (c) The flame graph of N
distinct printed stacks (~15 frames each from a few thousand functions and call sites):
Result.flamegraph()'s boxes and its PNG; bpftrace draws none, so no ratio there.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import zlib

from bench.common import PY, child_json, median

PROFILE = "profile-997 { @[stack(), ustack()] = count(); }"
HOG = "import json, random\nwhile True: json.dumps([random.random() for _ in range(1000)])"
FLAME_SIZES = (10_000, 100_000)


def child_profile(seconds: float) -> dict:
    from dtrace_nb.session import Session, SessionConfig

    hog = subprocess.Popen([sys.executable, "-c", HOG])
    s = Session(SessionConfig(PROFILE, quiet=True))
    try:
        s.start()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s.poll(100)
        times, stacks = [], 0
        for _ in range(4):
            t0 = time.perf_counter()
            frames = {n: snap.to_frame() for n, snap in s.snapshot().items()}
            times.append(time.perf_counter() - t0)
            stacks = len(frames[""])
    finally:
        s.stop()
        hog.kill()
    return {"first": times[0], "again": median(times[1:]), "stacks": stacks}


def tools_after(seconds: float) -> dict:
    """Wall seconds beyond `seconds` of the command and of bpftrace, profiling the hog."""
    from bench.common import ROOT, have_bpftrace

    hog = subprocess.Popen([sys.executable, "-c", HOG])
    out = {}
    try:
        cmds = {"dtrace-nb command": [PY, "-m", "dtrace_nb.cli", "-q", "-T", f"{seconds:g}",
                                      "-n", PROFILE]}
        if have_bpftrace():
            cmds["bpftrace"] = ["bpftrace", "-e", "profile:hz:997 { @[kstack, ustack] = "
                                f"count(); }} interval:s:{int(seconds)} {{ exit(); }}"]
        for tool, cmd in cmds.items():
            t0 = time.monotonic()
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
            wall = time.monotonic() - t0
            if done.returncode != 0:
                raise RuntimeError(f"{tool}: {done.stderr[-1500:]}")
            out[tool] = {"after": wall - seconds, "bytes": len(done.stdout)}
    finally:
        hog.kill()
    return out


def synthetic_stacks(n: int, seed: int = 1):
    import pandas as pd

    rnd = random.Random(seed)
    funcs = [f"mod{m}`func_{i}" for m in range(5) for i in range(400)]
    seen, texts = set(), []
    while len(texts) < n:
        frames = tuple(rnd.choice(funcs[:50]) if d < 3 else rnd.choice(funcs)
                       for d in range(rnd.randint(5, 25)))
        if frames in seen:
            continue
        seen.add(frames)
        # a few call sites per function, as return addresses are
        texts.append("\n" + "".join(f"              {f}+0x{(zlib.crc32(f.encode()) % 4) * 16 + 5:x}\n"
                                    for f in reversed(frames)))
    return pd.DataFrame({"stack": texts, "count": [rnd.randint(1, 50) for _ in texts]})


def child_flame(n: int) -> dict:
    from dtrace_nb.display.flame import flame_figure
    from dtrace_nb.display.plots import figure_png

    df = synthetic_stacks(n)
    t0 = time.perf_counter()
    png = figure_png(flame_figure(df))
    return {"seconds": time.perf_counter() - t0, "png_bytes": len(png)}


def run_case(rounds: int, quick: bool) -> dict:
    # a minute of a busy process, as a person profiles one (issue 16); one round of it,
    # the three tools' minutes would otherwise make the bench a quarter of an hour longer
    seconds = 2.0 if quick else 60.0
    profile_rounds = rounds if quick else 1
    prof = [child_json([PY, "-m", "bench.cases.stacks", "profile", str(seconds)])
            for _ in range(profile_rounds)]
    flames = {n: [child_json([PY, "-m", "bench.cases.stacks", "flame", str(n)])
                  for _ in range(rounds)] for n in FLAME_SIZES}
    tools = [tools_after(seconds) for _ in range(profile_rounds)]
    after = {t: median([r[t]["after"] for r in tools]) for t in tools[0]}
    return {"rounds": rounds, "profile_seconds": seconds,
            "first": median([p["first"] for p in prof]),
            "again": median([p["again"] for p in prof]),
            "stacks": median([p["stacks"] for p in prof]),
            "flame": {str(n): median([f["seconds"] for f in fs]) for n, fs in flames.items()},
            "after": after}


def table(res: dict) -> list[str]:
    lines = ["### 9. Stacks: a live profile's refreshes, and flame graphs", "",
             f"Profile of a busy Python process for {res['profile_seconds']:g} s: "
             f"{res['stacks']:,.0f} distinct (stack, ustack) keys.", "",
             "| what | seconds |", "|---|---|",
             f"| first snapshot + DataFrame (every stack named) | {res['first']:.3f} |",
             f"| a later one (only new stacks named) | {res['again']:.3f} |"]
    for tool, s in res.get("after", {}).items():
        lines.append(f"| {tool}: wall time beyond the {res['profile_seconds']:g} s traced "
                     f"(start, then every stack named and printed) | {s:.3f} |")
    after = res.get("after", {})
    if "bpftrace" in after and after["bpftrace"] > 0:
        lines.append(f"| dtrace-nb vs bpftrace (that wall time) | "
                     f"{after['dtrace-nb command'] / after['bpftrace']:.2f}x |")
    for n, s in res["flame"].items():
        lines.append(f"| flame graph of {int(n):,} distinct stacks (boxes + PNG) | {s:.3f} |")
    return lines


if __name__ == "__main__":
    if sys.argv[1] == "profile":
        print(json.dumps(child_profile(float(sys.argv[2]))))
    else:
        print(json.dumps(child_flame(int(sys.argv[2]))))
