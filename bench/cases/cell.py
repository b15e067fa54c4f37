"""Case 7: a notebook cell as a person feels it, through a real kernel client.

A Jupyter kernel (ipykernel, the venv's python) is started with jupyter_client and driven
as JupyterLab drives it: an execute_request is sent (the moment of Ctrl+Enter) and the
IOPub messages are read as they come. Two moments are taken from them:

- 'tracing': the control bar says the probes are live (its stage widget's value);
- 'first update': the first live content with data in it (a table, or the histogram's
  PNG for a quantize cell), i.e. the first refresh a person sees.

Three cells: a program this kernel compiled before (its second run), a new program (a
constant no earlier cell used, so parse, check, codegen and clang all run), and the first
quantize cell of a fresh kernel (pandas and matplotlib not imported yet).
"""

from __future__ import annotations

import os
import queue
import random
import sys
import time

from bench.common import ROOT, median, spread

COUNT_CELL = "%%dtrace -q -T 1.5\nprofile:::tick-10ms /cpu >= {n}/ {{ @ticks[cpu] = count(); }}"
QUANTIZE_CELL = ("%%dtrace -q -T 1.5\nprofile:::profile-997 /cpu >= {n}/ "
                 "{{ @lat[cpu] = quantize(timestamp % 100000); }}")


def _kernel():
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_cmd=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                   "{connection_file}"])
    km.start_kernel(cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT)})
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    return km, kc


def _run(kc, code: str, timeout: float = 120) -> dict:
    """Send a cell, read IOPub until it is idle; seconds from the send to each moment."""
    t0 = time.monotonic()
    msg_id = kc.execute(code)
    seen: dict = {}
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer to {code!r}") from None
        if msg["parent_header"].get("msg_id") != msg_id and msg["msg_type"] != "comm_msg":
            continue
        now = time.monotonic() - t0
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_msg":
            value = str(content.get("data", {}).get("state", {}).get("value", ""))
            if "tracing" in value and ">tracing<" in value:
                seen.setdefault("tracing", now)
            if "<table" in value or "<img" in value:
                seen.setdefault("first_update", now)
        elif kind in ("display_data", "update_display_data"):
            html = content.get("data", {}).get("text/html", "")
            if "<table" in html or "<img" in html:
                seen.setdefault("first_update", now)
        elif kind == "error":
            raise RuntimeError("\n".join(content.get("traceback", [])))
        elif kind == "status" and content.get("execution_state") == "idle":
            seen["done"] = now
            return seen


def _in_a_fresh_kernel(cells: list[tuple[str, str]], samples: dict) -> None:
    km, kc = _kernel()
    try:
        _run(kc, "%load_ext dtrace_nb")
        for name, code in cells:
            sample = _run(kc, code)
            if name:
                samples.setdefault(name, []).append(sample)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run_case(rounds: int, quick: bool) -> dict:
    samples: dict[str, list[dict]] = {}
    # the quantize program compiled once, in another kernel (its object in the disk cache)
    _in_a_fresh_kernel([("", QUANTIZE_CELL.format(n=0))], samples)
    for _ in range(rounds):
        n = random.randrange(10**6, 10**7)  # a program no cache has seen
        _in_a_fresh_kernel([
            # a fresh kernel: pandas and matplotlib not imported, the program compiled before
            ("first quantize, fresh kernel (compiled in an earlier kernel)",
             QUANTIZE_CELL.format(n=0)),
            ("new program (parse, check, codegen, clang)", COUNT_CELL.format(n=-n)),
            ("compiled before (same kernel)", COUNT_CELL.format(n=-n)),
            ("new quantize program", QUANTIZE_CELL.format(n=-n)),
        ], samples)
    rows = []
    for cell, xs in samples.items():
        live = [x.get("tracing") for x in xs]
        first = [x.get("first_update") for x in xs]
        rows.append({"cell": cell, "tracing_s": median(live), "first_update_s": median(first),
                     "spread_first": spread(first), "n": len(xs)})
    return {"rounds": rounds, "rows": rows}


def table(res: dict) -> list[str]:
    lines = ["### 7. A notebook cell: Ctrl+Enter to probes live and to the first live update "
             "(median seconds, through a kernel client)", "",
             "| cell | probes live (bar says tracing) | first live update | rounds |",
             "|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['cell']} | {r['tracing_s']:.3f} | {r['first_update_s']:.3f} | "
                     f"{r['n']} |")
    return lines
