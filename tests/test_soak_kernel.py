"""Cleanup in a real Jupyter kernel: cells through `%%dtrace` mixing successes, syntax,
compile and probe errors, verifier rejections, Ctrl-C (the kernel interrupted) at random
moments, exceptions in display code, `--bg` sessions stopped from a later cell or abandoned,
and kernel restarts (killed, or shut down gracefully) with and without a background session
running; afterwards no BPF program, map, perf event, bpf fd, tracefs probe or process of
ours remains.

The kernel is the `python3` kernelspec of the venv, started by jupyter_client with this
worktree first on PYTHONPATH and tests/leakcheck's owner marker in its environment, so the
leak check counts it (and anything it leaves behind) as ours. Every cell's outcome is
checked: a success shows its table and count; a D error shows its message with line:col and
no traceback; an interrupted cell says so and keeps what it aggregated. The leak check runs
after every quiet cell (no background session alive), after every restart and after the
final shutdown.

The short version (in `make test`) runs about 40 cells in 4 kernels with every kind of cell
at least once; the `long` one runs 1,000 cells.
"""

from __future__ import annotations

import os
import queue
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from tests.leakcheck import OWNER_ENV, _fd_counts, bpf_state, claim_children, settled_diff

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT = 120.0
STARTING = "dtrace-nb: starting"

# A program the BPF verifier refuses, written in plain D: index() of a 4 KiB string in
# itself is a loop of more jumps than the verifier follows ("The sequence of 8193 jumps is
# too complex").
VERIFIER_REJECTED = 'BEGIN { s = "abc"; trace(index(s, s)); exit(0); }'

# (text, column of the error in it, message): the errors the parser and checker report
SYNTAX_ERRORS = [
    ("BEGIN { x = ; }", 13, "syntax error", "unexpected ';'"),
    ("BEGIN { x = 1 y = 2; }", 15, "syntax error", ""),
    ("BEGIN { trace(nosuchvar); }", 15, "compile error", "unknown variable 'nosuchvar'"),
]


# --- one cell, executed -------------------------------------------------------------------

@dataclass
class Cell:
    index: int
    kind: str
    code: str
    reply: dict
    msgs: list          # (msg_type, content) published with this cell as parent
    seconds: float
    interrupted_at: Optional[float] = None  # seconds after the request

    @property
    def status(self) -> str:
        return self.reply["status"]

    def stream(self, name: str) -> str:
        return "".join(c["text"] for t, c in self.msgs if t == "stream" and c["name"] == name)

    @property
    def errors(self) -> list:
        return [c for t, c in self.msgs if t == "error"]

    @property
    def live_areas(self) -> list[tuple[str, str]]:
        """(display id, text) of the dtrace-nb areas this cell opened."""
        return [(c.get("transient", {}).get("display_id", ""), c["data"].get("text/plain", ""))
                for t, c in self.msgs
                if t == "display_data" and c["data"].get("text/plain", "").startswith("dtrace-nb")]

    def updates(self, display_id: str, mime: str = "text/plain") -> list[str]:
        return [c["data"].get(mime, "") for t, c in self.msgs
                if t == "update_display_data"
                and c.get("transient", {}).get("display_id") == display_id]

    def final_html(self) -> str:
        areas = self.live_areas
        return self.updates(areas[0][0], "text/html")[-1] if areas else ""

    @property
    def result_text(self) -> Optional[str]:
        texts = [c["data"].get("text/plain", "") for t, c in self.msgs if t == "execute_result"]
        return texts[-1] if texts else None

    def value(self, name: str) -> str:
        ue = self.reply.get("user_expressions", {}).get(name)
        assert ue is not None and ue["status"] == "ok", f"user expression {name}: {ue}\n{self}"
        return ue["data"]["text/plain"]

    def everything(self) -> str:
        """All text the cell produced (for 'no Traceback anywhere')."""
        parts = [self.stream("stdout"), self.stream("stderr")]
        for t, c in self.msgs:
            if t == "error":
                parts.append("\n".join(c["traceback"]))
            elif t in ("display_data", "update_display_data", "execute_result"):
                parts.append(c["data"].get("text/plain", ""))
        parts.append("\n".join(self.reply.get("traceback", []) or []))
        return "\n".join(parts)

    def __str__(self) -> str:
        lines = [f"cell {self.index} ({self.kind}), {self.seconds:.2f} s, "
                 f"status {self.status} {self.reply.get('ename', '')}"
                 + (f", interrupted at {self.interrupted_at:.2f} s"
                    if self.interrupted_at is not None else ""),
                 "code: " + self.code.replace("\n", "\n      ")]
        for t, c in self.msgs:
            if t == "stream":
                lines.append(f"  {c['name']}: {c['text'][-2000:]!r}")
            elif t in ("display_data", "update_display_data", "execute_result"):
                lines.append(f"  {t}: {c['data'].get('text/plain', '')[:300]!r}")
            elif t == "error":
                lines.append(f"  error: {c['ename']}: {c['evalue'][:500]}")
        return "\n".join(lines)


# --- the kernel -----------------------------------------------------------------------------

def _proc_stat(pid: int) -> Optional[list[str]]:
    """Fields of /proc/PID/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _live(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie holds no fds: it is only a pid)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def session_members(sid: int) -> list[str]:
    """Live processes of the session a kernel led (jupyter_client starts each kernel in a
    session of its own, so anything it started that outlived it is still in there)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _proc_stat(int(name))
            if stat is not None and int(stat[3]) == sid and stat[0] not in ("Z", "X"):
                out.append(f"{name} ({_comm(int(name))}, state {stat[0]})")
    return out


def stray_processes(kernel: Optional[int]) -> list[str]:
    """Live processes carrying this test's owner marker (every process a kernel starts
    inherits it) that are neither this process nor in the session of `kernel`, the one
    running now: what a dead kernel left, even if it left its session."""
    me = os.getpid()
    marker = f"{OWNER_ENV}={me}".encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        stat = _proc_stat(int(name))
        if (marker in env and stat is not None and stat[0] not in ("Z", "X")
                and int(stat[3]) != kernel):
            out.append(f"{name} ({_comm(int(name))}, session {stat[3]})")
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


class Kernel:
    """A `python3` kernel with dtrace_nb loaded, driven through jupyter_client."""

    def __init__(self, env: dict):
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.env = env
        self.kc = None
        self.pid = 0
        self.fd_baseline = None
        self.pids: list[int] = []  # every kernel process started, in order

    def start(self) -> None:
        self.km.start_kernel(env=self.env, cwd=str(ROOT))
        self._connect()

    def _connect(self) -> None:
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        cell = self.execute(-1, "setup", "import os, time\n%load_ext dtrace_nb\n%config DTraceMagics.widgets = False",
                            {"pid": "os.getpid()",
                             "module": "__import__('dtrace_nb').__file__"})
        assert cell.status == "ok", str(cell)
        self.pid = int(cell.value("pid"))
        assert self.pid == self.km.provisioner.pid
        # the worktree's code is what runs in the kernel
        assert cell.value("module").strip("'") == str(ROOT / "dtrace_nb" / "__init__.py")
        self.pids.append(self.pid)
        self.fd_baseline = _fd_counts(self.pid)

    def execute(self, index: int, kind: str, code: str,
                user_expressions: Optional[dict] = None,
                interrupt: Optional[tuple[str, float]] = None) -> Cell:
        """Run `code`; with interrupt=(text, delay), interrupt the kernel `delay` seconds
        after this cell published a display whose text starts with `text`."""
        t0 = time.monotonic()
        msg_id = self.kc.execute(code, user_expressions=user_expressions or {},
                                 allow_stdin=False)
        msgs: list = []
        fire_at = interrupted_at = None
        deadline = t0 + CELL_TIMEOUT
        while True:
            now = time.monotonic()
            if fire_at is not None and interrupted_at is None and now >= fire_at:
                self.km.interrupt_kernel()
                interrupted_at = now - t0
            if now > deadline:
                partial = Cell(index, kind, code, {"status": "timeout"}, msgs, now - t0,
                               interrupted_at)
                raise AssertionError(f"cell hung (no idle after {CELL_TIMEOUT} s)\n{partial}")
            try:
                msg = self.kc.get_iopub_msg(timeout=0.02)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            mtype, content = msg["msg_type"], msg["content"]
            if mtype == "status":
                if content["execution_state"] == "idle":
                    break
                continue
            if mtype == "execute_input":
                continue
            msgs.append((mtype, content))
            if (interrupt is not None and fire_at is None
                    and mtype in ("display_data", "update_display_data")
                    and content["data"].get("text/plain", "").startswith(interrupt[0])):
                fire_at = time.monotonic() + interrupt[1]
        while True:
            reply = self.kc.get_shell_msg(timeout=CELL_TIMEOUT)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        return Cell(index, kind, code, reply["content"], msgs, time.monotonic() - t0,
                    interrupted_at)

    def restart(self, now: bool) -> int:
        old = self.pid
        self.kc.stop_channels()
        self.km.restart_kernel(now=now)
        self._connect()
        return old

    def shutdown(self) -> int:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)
        return self.pid


# --- the soak -------------------------------------------------------------------------------

KINDS = {  # kind: weight in the random mix
    "ok-exit": 3,
    "ok-count": 3,
    "syntax": 2,
    "probe": 2,
    "verifier": 1,
    "interrupt": 3,
    "display-error": 1,
    "bg-start": 2,
}


class Soak:
    def __init__(self, rnd: random.Random, kernel: Kernel, before, check_every: int):
        self.rnd = rnd
        self.k = kernel
        self.before = before
        self.check_every = check_every
        self.cells = 0                     # soak cells executed (setup cells not counted)
        self.outcomes: Counter = Counter()  # (kind, outcome)
        self.restarts: Counter = Counter()  # ("killed"|"graceful", "bg"|"idle")
        self.checks = 0
        self.pending: list[tuple[str, int]] = []  # (variable, stop at cell) of --bg sessions
        self.abandoned = 0
        self.seconds: Counter = Counter()   # kind -> seconds spent
        self._since_check = 0
        self.machine = None                 # bpf_state() before the first kernel, after the last

    # -- plumbing --

    def run(self, kind: str, code: str, **kw) -> Cell:
        cell = self.k.execute(self.cells, kind, code, **kw)
        self.cells += 1
        self.seconds[kind] += cell.seconds
        assert self.k.km.is_alive(), f"the kernel died\n{cell}"
        assert "Exception in thread" not in cell.stream("stderr"), str(cell)
        return cell

    def check(self, where: str) -> None:
        """Nothing of ours loaded or open (only called when no --bg session is alive)."""
        problems = settled_diff(self.before)
        assert problems == [], f"{where}: {problems}"
        fds = _fd_counts(self.k.pid)
        assert fds == self.k.fd_baseline, f"{where}: kernel fds {fds} != {self.k.fd_baseline}"
        self.checks += 1
        self._since_check = 0

    def maybe_check(self, where: str) -> None:
        self._since_check += 1
        if not self.pending and self._since_check >= self.check_every:
            self.check(where)

    def foreground_area(self, cell: Cell) -> tuple[str, str]:
        """The one live area a foreground %%dtrace cell opens: (display id, final text)."""
        areas = cell.live_areas
        assert len(areas) == 1 and areas[0][1].startswith(STARTING), f"live areas {areas}\n{cell}"
        display_id = areas[0][0]
        updates = cell.updates(display_id)
        return display_id, (updates[-1] if updates else STARTING)

    def assert_quiet_cell(self, cell: Cell) -> None:
        """A cell that is not a %%dtrace opens no live area (a background session's area
        must not land in whichever cell runs when its thread gets to display it)."""
        assert cell.live_areas == [], f"unexpected live area\n{cell}"

    def assert_d_error(self, cell: Cell, kind: str, line: int, col: int, text: str) -> None:
        """The cell fails with the message alone: no `UsageError:`, no Python traceback,
        the cell's line numbers (D line 1 is the cell's line 2), and no status line above
        it (the area it opened is emptied)."""
        assert cell.status == "error" and cell.reply.get("ename") == "DTraceError", str(cell)
        assert "Traceback" not in cell.everything(), str(cell)
        shown = "\n".join("\n".join(e["traceback"]) for e in cell.errors)
        assert "UsageError" not in shown, str(cell)
        m = re.search(rf"^dtrace: {kind}: (\d+):(\d+): (.*)", shown, re.M)
        assert m, f"no '{kind}: line:col:' message\n{cell}"
        assert (int(m.group(1)), int(m.group(2))) == (line + 1, col), \
            f"want {line + 1}:{col}\n{cell}"
        assert text in m.group(3), f"want {text!r}\n{cell}"
        assert "^" in shown, f"no caret under the source line\n{cell}"
        _, final = self.foreground_area(cell)
        assert final == "", str(cell)

    # -- the kinds of cell --

    def ok_exit(self) -> str:
        k = self.rnd.randint(2, 8)
        var = f"r{self.cells}"
        code = (f"%%dtrace -q -o {var}\n"
                f"BEGIN {{ n = 0; printf(\"soak cell %d\\n\", {self.cells}); }}\n"
                "profile:::tick-10ms { n++; @ticks = count(); }\n"
                f"profile:::tick-10ms /n >= {k}/ {{ exit(0); }}")
        cell = self.run("ok-exit", code, user_expressions={
            "r": f"({var}.stop_reason, {var}.interrupted, {var}.error is None, "
                 f"int({var}['ticks']['count'][0]))"})
        assert cell.status == "ok" and not cell.errors, str(cell)
        assert "Traceback" not in cell.everything(), str(cell)
        reason, interrupted, ok, count = eval(cell.value("r"))
        assert (reason, interrupted, ok) == ("exit", False, True) and count >= k, str(cell)
        _, final = self.foreground_area(cell)
        assert f"soak cell {cell.index}\n" in final, str(cell)  # printf, in the area
        assert final.startswith("dtrace-nb: done (exit)"), str(cell)
        assert re.search(rf"@ticks\n\s*count\n\s*{count:,}\b", final), str(cell)
        assert cell.result_text is None, str(cell)  # no Out[] repeating the area
        return "ok"

    def ok_count(self) -> str:
        secs = round(self.rnd.uniform(0.2, 0.8), 2)
        var = f"r{self.cells}"
        code = (f"%%dtrace -q -T {secs} -o {var}\n"
                "syscall:::entry /pid == $pid/ { @calls[probefunc] = count(); }")
        cell = self.run("ok-count", code, user_expressions={
            "r": f"({var}.stop_reason, {var}.error is None, "
                 f"{var}['calls'].to_dict('list'))"})
        assert cell.status == "ok" and not cell.errors, str(cell)
        assert "Traceback" not in cell.everything(), str(cell)
        reason, ok, calls = eval(cell.value("r"))
        assert (reason, ok) == ("duration", True), str(cell)
        # the kernel makes system calls while it polls: at least one row
        assert calls["probefunc"] and min(calls["count"]) >= 1, str(cell)
        _, final = self.foreground_area(cell)
        assert final.startswith("dtrace-nb: done (duration)"), str(cell)
        assert "@calls" in final and calls["probefunc"][-1] in final, str(cell)
        text = cell.final_html()  # DTrace's text, folded in the area
        for func, n in zip(calls["probefunc"], calls["count"]):
            assert re.search(rf"^\s*{func}\s+{n}$", text, re.M), str(cell)
        return "ok"

    def syntax(self) -> str:
        text, col, kind, message = self.rnd.choice(SYNTAX_ERRORS)
        before = self.rnd.randint(0, 3)
        indent = self.rnd.randint(0, 4)
        body = "\n".join(["BEGIN { }"] * before + [" " * indent + text])
        cell = self.run("syntax", "%%dtrace\n" + body)
        self.assert_d_error(cell, kind, before + 1, indent + col, message)
        return kind

    def probe(self) -> str:
        before = self.rnd.randint(0, 3)
        indent = self.rnd.randint(0, 4)
        desc = self.rnd.choice(["syscall::nosuch_{n}:entry", "syscall::read:nosuch_{n}",
                                "sched:::nosuch-{n}"]).format(n=self.cells)
        body = "\n".join(["BEGIN { }"] * before + [" " * indent + desc + " { }"])
        cell = self.run("probe", "%%dtrace\n" + body)
        self.assert_d_error(cell, "probe error", before + 1, indent + 1,
                            f"probe description {desc} does not match any probes")
        return "error"

    def verifier(self) -> str:
        before = self.rnd.randint(0, 3)
        body = "\n" * before + VERIFIER_REJECTED
        cell = self.run("verifier", "%%dtrace -q -x strsize=4096\n" + body)
        self.assert_d_error(cell, "load error", before + 1, 1,
                            f"the BPF verifier rejected the program for clause 1 (BEGIN) "
                            f"at line {before + 1}")
        return "rejected"

    def interrupt(self) -> str:
        var = f"r{self.cells}"
        if self.rnd.random() < 0.5:
            # anywhere from compiling and loading to tracing
            when = (STARTING, self.rnd.uniform(0.05, 2.5))
        else:
            when = ("dtrace-nb: tracing", self.rnd.uniform(0.0, 0.6))
        # with a histogram, the first refresh in a kernel imports matplotlib: a Ctrl-C in
        # the middle of that import must not break plotting for the rest of the kernel
        histogram = " @q = quantize(timestamp % 1000);" if self.rnd.random() < 0.5 else ""
        code = (f"%%dtrace -q -x aggrate=100ms -o {var}\n"
                f"profile:::tick-10ms {{ @ticks = count();{histogram} }}")
        cell = self.run("interrupt", code, interrupt=when, user_expressions={
            "r": f"({var}.interrupted, {var}.stop_reason, {var}.error is None, "
                 f"{var}['ticks']['count'].tolist() if '@ticks' in {var}.aggregations "
                 f"else [])"})
        assert cell.interrupted_at is not None, f"never interrupted\n{cell}"
        # Ctrl-C stops tracing and keeps the results: no error, no traceback
        assert cell.status == "ok" and not cell.errors, str(cell)
        assert "Traceback" not in cell.everything(), str(cell)
        interrupted, reason, ok, counts = eval(cell.value("r"))
        assert (interrupted, reason, ok) == (True, "interrupted", True), str(cell)
        display_id, final = self.foreground_area(cell)
        assert final.startswith("dtrace-nb: interrupted"), str(cell)
        seen = [int(m.group(1)) for u in cell.updates(display_id)
                if u.startswith("dtrace-nb: tracing")
                for m in [re.search(r"count\n\s*(\d+)", u)] if m]
        if seen:  # it was counting when interrupted: the counts are kept
            assert counts and counts[0] >= seen[-1] >= 1, str(cell)
        if counts:
            assert re.search(rf"@ticks\n\s*count\n\s*{counts[0]:,}\b", final), str(cell)
            if histogram:
                assert "@q" in final, str(cell)
            return "interrupted-tracing" + (" (histogram)" if histogram else "")
        assert cell.result_text is None, str(cell)
        return "interrupted-early" + (" (histogram)" if histogram else "")

    def display_error(self) -> str:
        """Both ways display code fails, in two cells (so even the short run has both)."""
        # a plot style matplotlib does not know is refused when it is set (the cell says
        # why; the style stays as it was)...
        cell = self.run("display-error", "%config DTraceMagics.plot_style = 'no-such-style'")
        assert cell.status == "ok", str(cell)
        assert "unknown matplotlib style 'no-such-style'" in cell.stream("stderr"), str(cell)
        self.assert_quiet_cell(cell)
        # ... so matplotlib is made to fail while it draws the histogram of a refresh
        self.broken_display("histogram_png",
                            "def _broken(*args, **kw):\n"
                            "    raise OSError('matplotlib failed (soak)')\n",
                            "profile:::tick-10ms { @q = quantize(timestamp % 1000); }",
                            "OSError", "matplotlib failed (soak)",
                            module="dtrace_nb.display.plots")
        # the live view's content raises at the k-th refresh (drawn in the view's render
        # thread: the error still ends the cell)
        k = self.rnd.randint(1, 4)
        self.broken_display("LiveView.content",
                            "_calls = []\n"
                            "def _broken(self, *args, **kw):\n"
                            "    _calls.append(1)\n"
                            f"    if len(_calls) >= {k}:\n"
                            "        raise RuntimeError('display code failed (soak)')\n"
                            "    return _saved(self, *args, **kw)\n",
                            "profile:::tick-10ms { @t = count(); }",
                            "RuntimeError", "display code failed (soak)")
        return "plot-error, render"

    def broken_display(self, name: str, broken: str, program: str, ename: str,
                       evalue: str, module: str = "dtrace_nb.display.live") -> None:
        """A %%dtrace cell run with dtrace_nb.display.live's `name` replaced by `_broken`
        (defined by `broken`, which may call the original as `_saved`): the cell ends in
        that exception, with its live area opened and nothing left loaded."""
        code = (f"import {module} as _live\n"
                f"_saved = _live.{name}\n" + broken +
                f"_live.{name} = _broken\n"
                "try:\n"
                "    get_ipython().run_cell_magic('dtrace', '-q -x aggrate=100ms',\n"
                f"                                 {program!r})\n"
                "finally:\n"
                f"    _live.{name} = _saved\n")
        cell = self.run("display-error", code)
        assert cell.status == "error" and cell.reply["ename"] == ename, str(cell)
        assert cell.reply["evalue"] == evalue, str(cell)
        self.foreground_area(cell)

    def bg_start(self, target: bool = False, stop_later: bool = True) -> str:
        var = f"bg{self.cells}"
        duration = ""
        if stop_later and self.rnd.random() < 0.3:
            duration = f" -T {round(self.rnd.uniform(0.3, 1.0), 2)}"
        if target:
            code = (f"%%dtrace --bg -q -x aggrate=200ms -c 'sleep 300' -o {var}\n"
                    "syscall::clock_nanosleep:entry /pid == $target/ { @sleeps = count(); }\n"
                    "profile:::tick-10ms { @ticks = count(); }")
        else:
            code = (f"%%dtrace --bg -q -x aggrate=200ms{duration} -o {var}\n"
                    "profile:::tick-10ms { @ticks = count(); }")
        cell = self.run("bg-start" if stop_later else "bg-abandon", code)
        assert cell.status == "ok" and not cell.errors, str(cell)
        assert "Traceback" not in cell.everything(), str(cell)
        assert cell.result_text is None, str(cell)  # the handle is in -o NAME, no Out[]
        # NAME holds the handle until the session ends, then its Result: keep the handle
        alias = self.k.execute(-1, "bg-alias", f"{var}_bg = {var}")
        assert alias.status == "ok", str(alias)
        areas = cell.live_areas
        assert [t.startswith(STARTING) for _, t in areas] == [True], \
            f"live areas {areas}\n{cell}"
        if stop_later:
            self.pending.append((var, self.cells + self.rnd.randint(0, 3), bool(duration)))
        else:
            self.abandoned += 1
        return "started" if stop_later else ("abandoned-target" if target else "abandoned")

    def bg_stop(self, var: str, has_duration: bool) -> str:
        code = ("_bg = {v}_bg\n"
                "_deadline = time.monotonic() + 60\n"
                "while _bg.running and _bg.view.updates < 2 and time.monotonic() < _deadline:\n"
                "    time.sleep(0.05)\n"
                "_bg.stop()").format(v=var)
        background = "get_ipython().magics_manager.registry['DTraceMagics'].background"
        cell = self.run("bg-stop", code, user_expressions={
            "r": f"({var}.stop_reason, {var}.interrupted, {var}.error is None, "
                 f"int({var}['ticks']['count'][0]), {var}_bg.session._loaded is None, "
                 f"{var}_bg.running, {var}_bg.error is None, {var}_bg in {background})"})
        assert cell.status == "ok" and not cell.errors, str(cell)
        assert "Traceback" not in cell.everything(), str(cell)
        reason, interrupted, ok, count, freed, running, no_error, listed = eval(cell.value("r"))
        assert reason in (("stopped", "duration") if has_duration else ("stopped",)), str(cell)
        assert (interrupted, ok, freed, running, no_error, listed) == \
            (False, True, True, False, True, False), str(cell)
        assert count >= 1 and cell.result_text.split()[-1] == str(count), str(cell)
        return reason

    # -- the schedule --

    def step(self, kind: str) -> None:
        outcome = {"ok-exit": self.ok_exit, "ok-count": self.ok_count, "syntax": self.syntax,
                   "probe": self.probe, "verifier": self.verifier, "interrupt": self.interrupt,
                   "display-error": self.display_error, "bg-start": self.bg_start}[kind]()
        self.outcomes[(kind, outcome)] += 1
        self.maybe_check(f"after cell {self.cells - 1} ({kind}, {outcome})")

    def stop_due(self, force: bool = False) -> None:
        for var, at, has_duration in list(self.pending):
            if force or self.cells >= at:
                reason = self.bg_stop(var, has_duration)
                self.pending.remove((var, at, has_duration))
                self.outcomes[("bg-stop", reason)] += 1
                self.maybe_check(f"after cell {self.cells - 1} (bg-stop {var})")

    def segment(self, until: int, forced: list[str]) -> None:
        """Cells in this kernel until `until` cells ran in all (at least the `forced`
        kinds, in a random order, then a random mix)."""
        kinds = list(forced)
        self.rnd.shuffle(kinds)
        while self.cells < until or kinds:
            self.stop_due()
            if self.cells >= until and not kinds:
                break
            if kinds:
                kind = kinds.pop()
            else:
                kind = self.rnd.choices(list(KINDS), weights=list(KINDS.values()))[0]
            if kind == "bg-start" and len(self.pending) >= 2:
                kind = "ok-count"
            self.step(kind)

    def end_segment(self, how: str, with_bg: bool) -> None:
        """Restart ('killed': restart_kernel(now=True); 'graceful': now=False) or shut
        down the kernel, with --bg sessions abandoned in it or with nothing running."""
        if with_bg:
            for _ in range(self.rnd.randint(1, 2)):
                outcome = self.bg_start(target=self.rnd.random() < 0.5, stop_later=False)
                self.outcomes[("bg-abandon", outcome)] += 1
            time.sleep(self.rnd.uniform(0, 2.0))  # compiling, loading or tracing
        else:
            self.stop_due(force=True)
            self.check(f"before the {how} end of kernel {self.k.pid}")
        # sessions still waiting for their stop are abandoned too
        self.abandoned += len(self.pending)
        self.pending.clear()
        if how == "shutdown":
            old = self.k.shutdown()
        else:
            old = self.k.restart(now=how == "killed")
            self.restarts[(how, "bg" if with_bg else "idle")] += 1
        self.assert_gone(old, how)
        if how != "shutdown":
            self.check(f"after the {how} restart of kernel {old}")

    def assert_gone(self, pid: int, how: str) -> None:
        current = None if how == "shutdown" else self.k.pid
        deadline = time.monotonic() + 10
        while ((_live(pid) or session_members(pid) or stray_processes(current))
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert not _live(pid), f"kernel {pid} still running after {how}"
        assert session_members(pid) == [], \
            f"processes of kernel {pid} left after {how}: {session_members(pid)}"
        assert stray_processes(current) == [], \
            f"processes left after the {how} end of kernel {pid}: {stray_processes(current)}"


def soak(n_cells: int, seed: int, restarts: list[tuple[str, bool]], check_every: int,
         cover_all: bool) -> Soak:
    """n_cells cells over len(restarts)+1 kernels; restarts[i] = (how, with_bg) ends kernel
    i; the last one is shut down (with or without a --bg session left running)."""
    claim_children()
    env = dict(os.environ)
    assert env.get(OWNER_ENV) == str(os.getpid())
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in
                                         env.get("PYTHONPATH", "").split(os.pathsep) if p])
    rnd = random.Random(seed)
    before = bpf_state()
    kernel = Kernel(env)
    s = Soak(rnd, kernel, before, check_every)
    try:
        kernel.start()
        s.check("after the kernel started")
        ends = list(restarts) + [("shutdown", rnd.random() < 0.5)]
        # each kernel ends after a random number of cells; the last after n_cells in all
        cuts = sorted(rnd.sample(range(1, n_cells), len(ends) - 1)) + [n_cells]
        for i, ((how, with_bg), until) in enumerate(zip(ends, cuts)):
            s.segment(until, list(KINDS) if cover_all and i == 0 else [])
            s.end_segment(how, with_bg)
    except BaseException:
        try:
            if kernel.kc is not None:
                kernel.kc.stop_channels()
            kernel.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001 - the original failure is what matters
            pass
        raise
    # after the shutdown: nothing of any of the kernels, nothing loaded
    assert not kernel.km.is_alive()
    for pid in kernel.pids:
        assert not _live(pid), f"kernel {pid} still running"
        assert session_members(pid) == [], f"left by kernel {pid}: {session_members(pid)}"
    assert stray_processes(None) == []
    problems = settled_diff(before)
    assert problems == [], f"after the shutdown: {problems}"
    s.checks += 1
    s.machine = (before, bpf_state())
    return s


def report(s: Soak, started: float) -> str:
    elapsed = time.monotonic() - started
    lines = [f"{s.cells} cells in {len(s.k.pids)} kernels, {elapsed:.1f} s "
             f"({elapsed / max(1, s.cells):.2f} s per cell); restarts {dict(s.restarts)}; "
             f"{s.abandoned} --bg sessions abandoned; {s.checks} leak checks, all clean"]
    b, a = s.machine
    lines.append(f"  on the machine before/after: {len(b.all_program_ids)}/"
                 f"{len(a.all_program_ids)} BPF programs, {len(b.all_map_ids)}/"
                 f"{len(a.all_map_ids)} maps, {len(b.uprobe_events | b.kprobe_events)}/"
                 f"{len(a.uprobe_events | a.kprobe_events)} tracefs probes, "
                 f"{len(b.trace_events)}/{len(a.trace_events)} tracefs events; "
                 f"perf/bpf fds here {tuple(b.fds)}/{tuple(a.fds)}")
    lines += [f"  {k}: {n}" for k, n in sorted(s.outcomes.items())]
    lines += [f"  time in {k}: {t:.1f} s" for k, t in sorted(s.seconds.items())]
    return "\n".join(lines)


def test_soak_kernel_short():
    started = time.monotonic()
    s = soak(40, seed=8, restarts=[("killed", True), ("killed", False), ("graceful", True)],
             check_every=1, cover_all=True)
    print(report(s, started))
    kinds = {k for k, _ in s.outcomes}
    assert kinds >= set(KINDS) | {"bg-stop", "bg-abandon"}, s.outcomes
    assert s.cells >= 40 and len(s.k.pids) == 4


@pytest.mark.long
def test_soak_kernel_long():
    started = time.monotonic()
    rnd = random.Random(1000)
    restarts = [(rnd.choice(["killed", "killed", "graceful"]), rnd.random() < 0.5)
                for _ in range(19)]
    s = soak(1000, seed=1000, restarts=restarts, check_every=1, cover_all=True)
    print(report(s, started))
    assert s.cells >= 1000 and len(s.k.pids) == 20
