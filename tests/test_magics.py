"""The %%dtrace magic in an in-process IPython shell, against the real kernel."""

from __future__ import annotations

import os
import sys
import time

import pytest
from tests.conftest import ipython_shell
from IPython.utils.capture import capture_output

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def ip():
    shell = ipython_shell()
    shell.run_line_magic("load_ext", "dtrace_nb")
    yield shell
    shell.run_line_magic("reset", "-f")


def _final(cap):
    """The cell's one output area: the first display, as its last update left it."""
    opened = [o for o in cap.outputs if not o.update]
    assert len(opened) == 1, [list(o.data) for o in cap.outputs]
    return cap.outputs[-1].data


def test_cell_magic_counts_and_stores_result(ip, workloads):
    with capture_output() as cap:
        returned = ip.run_cell_magic(
            "dtrace", f'-q -c "{workloads["sysload"]} getppid 4321" -o r',
            "syscall::getppid:entry /pid == $target/ { @n[probefunc] = count(); }")
    r = ip.user_ns["r"]
    assert returned is None and ip.user_ns["_dtrace"] is r  # no Out[] repeating the table
    assert r.aggregations["n"].to_dict("list") == {"probefunc": ["getppid"], "count": [4321]}
    final = _final(cap)
    assert "image/png" not in final  # an image would be stored twice (in the HTML too)
    # the table once, with thousands separators; DTrace's text once, folded
    html = final["text/html"]
    assert html.count("4,321") == 1 and html.count("<details>") == 1
    assert "getppid 4,321" in final["text/plain"]  # the fallback for a frontend without HTML
    assert "getppid" in html.split("<details>")[1] and "4321" in html.split("<details>")[1]
    assert "done (target exited)" in final["text/plain"]
    assert cap.stdout == ""  # nothing printed beside the area


def test_without_o_the_cell_returns_nothing_and_dtrace_holds_the_result(ip):
    with capture_output():
        returned = ip.run_cell_magic("dtrace", "-q -T 0.3", "profile:::tick-100ms { @ = count(); }")
    assert returned is None and ip.user_ns["_dtrace"].stop_reason == "duration"


def test_printf_output_is_a_bounded_region_with_its_line_count(ip, workloads):
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f'-q -c "{workloads["sysload"]} getppid 3000"',
                          'syscall::getppid:entry /pid == $target/ { printf("call %d\\n", 7); }')
    html = _final(cap)["text/html"]
    assert "3,000 lines of output (the first and last 500; r.output has them all)" in html
    assert "max-height:20em;overflow:auto" in html and html.count("call 7") == 1000
    assert ip.user_ns["_dtrace"].output.count("call 7") == 3000


def test_run_time_errors_are_counted_in_the_area_in_dtraces_words(ip):
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", "-q -T 1", "profile:::tick-50ms { trace(copyinstr(0)); }")
    r = ip.user_ns["_dtrace"]
    errors = sum(m.startswith("dtrace: error in dt_clause_") for m in r.messages)
    assert 10 <= errors <= 25
    final = _final(cap)
    assert f"{errors:,} errors" in final["text/plain"]  # the bar's counter
    assert (f"{errors:,} errors; the first: dtrace: error in dt_clause_0 for probe ID "
            in final["text/html"]) and "invalid address (0x0)" in final["text/html"]
    assert "every message in r.messages" in final["text/html"]


def test_control_bar_stages_and_the_clock_of_the_result(ip):
    magics = ip.magics_manager.registry["DTraceMagics"]
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", "-q -T 1.5", "profile:::tick-100ms { @t = count(); }")
    assert magics.live.bar.stages == ["starting", "compiling", "attaching 1 probe", "tracing",
                                      "done (duration)"]
    r = ip.user_ns["_dtrace"]
    # the bar's elapsed time is Result.duration: both from probes-live
    assert f"{r.duration:.1f} s of 1.5 s" in _final(cap)["text/plain"]


def test_stop_button_in_the_foreground(ip):
    import threading

    magics = ip.magics_manager.registry["DTraceMagics"]
    magics.live = None

    def click_once_tracing():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            view = magics.live
            if view is not None and view.bar is not None and view.bar.state.stage == "tracing":
                time.sleep(1.0)
                view.bar.button.click()  # what a click in the browser calls
                return
            time.sleep(0.02)

    clicker = threading.Thread(target=click_once_tracing)
    clicker.start()
    t0 = time.monotonic()
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", "-q -o st", "profile:::tick-100ms { @t = count(); }")
    clicker.join()
    r = ip.user_ns["st"]
    assert r.stop_reason == "stopped" and not r.interrupted and time.monotonic() - t0 < 30
    assert 0.9 <= r.duration <= 1.6 and 7 <= int(r["t"]["count"][0]) <= 17
    assert _final(cap)["text/plain"].startswith("dtrace-nb: stopped · ")


def test_T_is_exact_under_load_with_slow_refreshes(ip):
    """Two CPU hogs on two CPUs and a histogram redrawn every 100 ms: the trace still lasts
    -T (the loop checks the deadline at every poll; a refresh is drawn off the loop)."""
    import subprocess
    import sys

    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        errors = []
        for _ in range(3):
            with capture_output():
                ip.run_cell_magic("dtrace", "-q -T 2 -x aggrate=100ms",
                                  "profile:::profile-997 { @[cpu] = quantize(timestamp % 100000); }"
                                  " profile:::tick-10ms { @ticks = count(); }")
            r = ip.user_ns["_dtrace"]
            errors.append((round(r.duration - 2.0, 3), int(r["ticks"]["count"][0])))
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    print("T errors", errors)
    assert max(abs(e) for e, _ in errors) < 0.1, errors
    # tick-10ms counts the time the probes were live: 2 s, give or take the attach
    assert all(185 <= n <= 210 for _, n in errors), errors


def test_line_magic_and_dollar_signs_survive(ip):
    """$target, $pid and braces reach D untouched (no IPython variable expansion)."""
    ip.user_ns["pid"] = 99999  # must not be substituted
    with capture_output():
        ip.run_line_magic("dtrace", "-q -n 'BEGIN { printf(\"%d\", $pid); exit(0); }'")
    result = ip.user_ns["_dtrace"]
    assert result.output == f"{os.getpid()}\n"


def _cell_error(ip, cell: str) -> str:
    shown = []

    def keep(etype, evalue, stb):
        shown.append("\n".join(stb))
    ip._showtraceback = keep  # what a kernel sends as the error's traceback
    try:
        with capture_output() as cap:
            res = ip.run_cell(cell)
    finally:
        del ip._showtraceback
    assert res.error_in_exec is not None
    # no status line above the error: the area the cell opened is emptied
    assert all(not o.data.get("text/plain") for o in cap.outputs[-1:])
    return "\n".join(shown)


def test_syntax_error_is_one_caret_pointed_message_at_the_cells_line(ip):
    text = _cell_error(ip, "%%dtrace\nBEGIN { x = 1 y = 2; }")
    assert "UsageError" not in text and "Traceback" not in text
    assert text.startswith("dtrace: syntax error: 2:15:") and "   2 | BEGIN" in text


@pytest.mark.parametrize("cell, meant", [
    ("syscall::raed:entry { @ = count(); }", "did you mean: syscall::read:entry"),
    ("sycall::read:entry { @ = count(); }", "did you mean: syscall::read:entry"),
    ("syscall::read:entry { @ = sum(argg2); }", "did you mean: arg2"),
    ("syscall::read:entry { @ = cuont(); }", "did you mean: count()"),
])
def test_compile_errors_say_what_was_meant(ip, cell, meant):
    text = _cell_error(ip, "%%dtrace\n" + cell)
    assert meant in text and "UsageError" not in text
    if "probe error" in text:
        assert "%dtrace -l -n" in text and "dtrace-nb -l" not in text


def test_list_probes_as_dataframe(ip):
    df = ip.run_line_magic("dtrace", "-l -n syscall::getppid:")
    assert df[["PROVIDER", "FUNCTION", "NAME"]].values.tolist() == [
        ["syscall", "getppid", "entry"], ["syscall", "getppid", "return"]]


# -- the live view ----------------------------------------------------------------------

def test_live_area_updates_while_tracing(ip):
    magics = ip.magics_manager.registry["DTraceMagics"]
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", "-q -T 3", "profile:::tick-100ms { @ticks = count(); }")
    r = ip.user_ns["_dtrace"]
    # the first refresh when the probes go live, then one a second: 3 or 4, and the end
    assert magics.live.updates >= 4, magics.live.updates
    assert "done (duration)" in _final(cap)["text/plain"]
    assert 28 <= int(r["ticks"]["count"][0]) <= 31  # -T counts from probes-live


def test_histograms_are_plotted_live_and_on_the_result(ip, workloads):
    import base64
    import re

    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f'-q -c "{workloads["sysload"]} read 800" -o r',
                          "syscall::read:entry /pid == $target && arg2 <= 128/ "
                          "{ @sizes = quantize(arg2); }")
    r = ip.user_ns["r"]
    html = _final(cap)["text/html"]
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pngs) == 1 and base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    # 800 reads of 1 << (i % 8) bytes: 100 in each power-of-two bucket 1..128
    assert r["sizes"].to_dict("list") == {"value": [1, 2, 4, 8, 16, 32, 64, 128],
                                          "count": [100] * 8}
    # the Result's own repr is a summary, not the tables and the picture again
    summary = r._repr_html_()
    assert "<table" not in summary and "<img" not in summary and "@sizes" in summary
    assert "records" not in summary  # an aggregation-only trace has none to count
    assert r.figure() is not None and len(r.figure().axes) == 1
    # a notebook shows r.figure() as a PNG without pyplot (a kernel enables this formatter;
    # the terminal shell here does not, so ask it for its printer)
    printer = ip.display_formatter.formatters["image/png"].lookup(r.figure())
    assert printer(r.figure())[:4] == b"\x89PNG"


def test_timeline_samples_every_refresh(ip):
    with capture_output():
        ip.run_cell_magic("dtrace", "-q -T 2.6 -x aggrate=500ms",
                          "profile:::tick-100ms { @t[\"tick\"] = count(); }")
    r = ip.user_ns["_dtrace"]
    tl = r.timeline("t")
    assert list(tl.columns) == ["tick"] and len(tl) >= 4
    assert tl["tick"].is_monotonic_increasing and tl["tick"].iloc[-1] == r["t"]["count"][0]
    rate = r.timeline("@t", rate=True)["tick"]
    assert 6 <= rate.median() <= 14  # tick-100ms: about 10 per second


def _holds_perf_event() -> bool:
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]":
                return True
        except OSError:
            pass
    return False


def test_ctrl_c_from_a_thread_stops_and_keeps_results(ip):
    import _thread
    import threading

    def interrupt_once_live():
        # the profile probe is live once this process holds a perf event; compiling first
        # takes from 0.2 s (cached) to several seconds (a cold cache on a loaded machine)
        deadline = time.monotonic() + 60
        while not _holds_perf_event() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)
        _thread.interrupt_main()

    timer = threading.Thread(target=interrupt_once_live)
    timer.start()
    with capture_output():
        ip.run_cell_magic("dtrace", "-q -o stopped", "profile:::tick-100ms { @t = count(); }")
    timer.join()
    r = ip.user_ns["stopped"]
    assert r.interrupted and r.stop_reason == "interrupted"
    assert ip.user_ns["stopped"] is r and 3 <= int(r["t"]["count"][0]) <= 25


def test_background_sessions_refresh_and_stop(ip):
    import time

    with capture_output():
        assert ip.run_cell_magic("dtrace", "--bg -q -x aggrate=300ms -o bga",
                                 "profile:::tick-50ms { @a = count(); }") is None
        a = ip.user_ns["bga"]
        ip.run_line_magic("dtrace", "--bg -q -n 'profile:::tick-100ms { @b = count(); }'")
        b = ip.user_ns["_dtrace"]
        assert a.running and b.running and a.result is None and "bga_bg" not in ip.user_ns
        deadline = time.monotonic() + 15  # both compile first (one at a time)
        while min(a.view.updates, b.view.updates) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # both live (b compiles after a, one compile at a time)
        first = a.view.updates
        time.sleep(1.0)
        assert first >= 3 and a.view.updates > first  # refreshing while other cells run
        ra, rb = a.stop(), b.stop()
    assert not a.running and not b.running
    assert int(ra["a"]["count"][0]) >= 20 and int(rb["b"]["count"][0]) >= 10
    assert ip.user_ns["bga"] is ra and "stopped;" in repr(a)  # not "stopped: stopped"
    assert a.session._loaded is None and b.session._loaded is None  # everything freed


def test_help_shows_examples(ip):
    with capture_output() as cap:
        ip.run_cell("%dtrace?")
    text = cap.stdout
    assert "%%dtrace -c" in text and "--bg" in text and "timeline" in text


# -- recordings and replay ----------------------------------------------------------------

def test_record_then_replay_where_bpf_cannot_load(ip, workloads, tmp_path, monkeypatch):
    from dtrace_nb.result.recording import cell_key

    line = f'-q -c "{workloads["sysload"]} read 400" -x aggrate=300ms -o rec'
    cell = "syscall::read:entry /pid == $target && arg2 <= 128/ { @sizes = quantize(arg2); }"
    monkeypatch.setenv("DTRACE_NB_RECORD", str(tmp_path))
    with capture_output():
        ip.run_cell_magic("dtrace", line, cell)
    recorded = ip.user_ns["rec"]
    path = tmp_path / (cell_key(line, cell) + ".json")
    assert path.exists()
    monkeypatch.delenv("DTRACE_NB_RECORD")

    # the kernel path switched off: the same cell says why in one line and plays back
    monkeypatch.setenv("DTRACE_NB_NO_BPF", "1")
    monkeypatch.setenv("DTRACE_NB_REPLAY", str(tmp_path))
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", line, cell)
    replayed = ip.user_ns["rec"]
    notes = [ln for ln in cap.stdout.splitlines() if ln.startswith("dtrace-nb:")]
    assert notes == [f"dtrace-nb: BPF cannot load here (BPF is switched off "
                     f"(DTRACE_NB_NO_BPF is set)); replaying the recorded session {path}"]
    assert replayed.replayed_from == str(path)
    assert replayed["sizes"].equals(recorded["sizes"]) and replayed.output == recorded.output
    assert "data:image/png;base64," in cap.outputs[-1].data["text/html"]
    assert "replayed" in cap.outputs[-1].data["text/plain"]
    # --replay FILE plays any recording explicitly
    with capture_output():
        ip.run_line_magic("dtrace", f"--replay {path}")
    again = ip.user_ns["_dtrace"]
    assert again["sizes"]["count"].tolist() == [50] * 8

    # no recording for a cell: one line saying why tracing is impossible, no traceback
    text = _cell_error(ip, "%%dtrace\nBEGIN { exit(0); }")
    assert "cannot trace here: BPF is switched off" in text and "Traceback" not in text


def test_explain_falls_back_to_its_recording(ip, tmp_path, monkeypatch):
    """On Binder the kernel's probe lists and tracepoint formats may be missing: --explain
    then shows the explanation recorded on a real kernel."""
    from dtrace_nb import magics
    from dtrace_nb.errors import DProbeError

    cell = "sdt:syscalls::sys_enter_openat { @ = count(); }"
    monkeypatch.setenv("DTRACE_NB_RECORD", str(tmp_path))
    live = ip.run_cell_magic("dtrace", "--explain", cell)
    monkeypatch.delenv("DTRACE_NB_RECORD")
    monkeypatch.setenv("DTRACE_NB_NO_BPF", "1")
    monkeypatch.setenv("DTRACE_NB_REPLAY", str(tmp_path))

    def unresolvable(self, args, source):
        raise DProbeError("probe description sdt:syscalls::sys_enter_openat does not match "
                          "any probes")

    monkeypatch.setattr(magics.DTraceMagics, "_explain", unresolvable)
    with capture_output() as cap:
        recorded = ip.run_cell_magic("dtrace", "--explain", cell)
    assert "showing the explanation recorded in" in cap.stdout
    assert recorded.text() == live.text(with_c=False)
    assert recorded._repr_html_() == live._repr_html_()


def test_frames_keeps_records_as_columns(ip, workloads):
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f'-q --frames -c "{workloads["sysload"]} getppid 5000"',
                          "syscall::getppid:entry /pid == $target/ { trace(arg0); }")
    r = ip.user_ns["_dtrace"]
    df = r.records_frame()
    dropped = sum(r.drops.values())
    assert len(df) + dropped == 5000 and "trace" in df.columns
    assert "getppid" not in cap.outputs[-1].data["text/plain"]  # nothing formatted as text


def test_an_unknown_plot_style_is_refused_when_set(ip, caplog):
    # IPython's %config reports the refusal with logging.error (in a notebook: the cell's
    # stderr, which tests/test_soak_kernel.py checks; here pytest captures the log)
    magics = next(c for c in ip.configurables if type(c).__name__ == "DTraceMagics")
    before = magics.plot_style
    with capture_output() as cap:
        ip.run_line_magic("config", "DTraceMagics.plot_style = 'no-such-style'")
    assert "unknown matplotlib style 'no-such-style'" in cap.stderr + cap.stdout + caplog.text
    assert magics.plot_style == before
    with capture_output():
        ip.run_line_magic("config", "DTraceMagics.plot_style = 'ggplot'")
    assert magics.plot_style == "ggplot"
    magics.plot_style = before


def test_without_ipywidgets_the_bar_is_plain_display(ip, monkeypatch):
    """As tqdm.notebook degrades: no ipywidgets, the same line as display data, updated
    (by display id) at each stage and refresh; Ctrl-C is the way to stop."""
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` fails
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", "-q -T 1.2 -x aggrate=300ms",
                          "profile:::tick-100ms { @t = count(); }")
    first = cap.outputs[0].data["text/plain"]
    assert first.startswith("dtrace-nb: starting") and "widget" not in str(cap.outputs[0].data)
    texts = [o.data["text/plain"] for o in cap.outputs]
    assert any(t.startswith("dtrace-nb: tracing") and "@t" in t for t in texts)
    assert _final(cap)["text/plain"].startswith("dtrace-nb: done (duration)")


def test_a_probe_the_kernel_cannot_enable_is_said_once_in_the_cell(ip, workloads):
    # libc's pthread_spin_lock starts with a lock prefix, which uprobes cannot step: the
    # cell says so once among its problems, and syscall(SYS_getppid) (110) counts exactly
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f'-q -c "{workloads["sysload"]} getppid 321" -o r',
                          "pid$target:libc.so.6:pthread_spin_lock:entry,\n"
                          "pid$target:libc.so.6:syscall:entry /arg0 == 110/ "
                          "{ @n[probefunc] = count(); }")
    r = ip.user_ns["r"]
    assert r.aggregations["n"].to_dict("list") == {"probefunc": ["syscall"], "count": [321]}
    said = [m for m in r.messages if "Failed to enable" in m]
    pid = said[0].split("pid")[1].split(":")[0] if said else ""
    assert said == [f"dtrace: Failed to enable pid{pid}:libc.so.6:pthread_spin_lock:entry "
                    "(the kernel cannot instrument this instruction)"]
    html = _final(cap)["text/html"]
    assert html.count("Failed to enable") == 1
