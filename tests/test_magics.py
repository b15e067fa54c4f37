"""The %%dtrace magic in an in-process IPython shell, against the real kernel."""

from __future__ import annotations

import os
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


def test_cell_magic_counts_and_stores_result(ip, workloads):
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f'-q -c "{workloads["sysload"]} getppid 321" -o r',
                          "syscall::getppid:entry /pid == $target/ { @n[probefunc] = count(); }")
    r = ip.user_ns["r"]
    assert r.aggregations["n"].to_dict("list") == {"probefunc": ["getppid"], "count": [321]}
    assert "getppid" in cap.stdout and "321" in cap.stdout  # DTrace's text at the end
    # the live area was displayed with a plain-text fallback and updated at the end
    assert cap.outputs and all("text/plain" in o.data for o in cap.outputs)


def test_line_magic_and_dollar_signs_survive(ip):
    """$target, $pid and braces reach D untouched (no IPython variable expansion)."""
    ip.user_ns["pid"] = 99999  # must not be substituted
    with capture_output():
        result = ip.run_line_magic("dtrace", "-q -n 'BEGIN { printf(\"%d\", $pid); exit(0); }'")
    import os

    assert result.output == f"{os.getpid()}\n"


def test_syntax_error_is_one_caret_pointed_message(ip):
    with capture_output() as cap:
        res = ip.run_cell("%%dtrace\nBEGIN { x = 1 y = 2; }")
    assert res.error_in_exec is not None
    text = cap.stderr + cap.stdout
    assert "UsageError" in text and "1:15" in text and "^" in text
    assert "Traceback" not in text


def test_list_probes_as_dataframe(ip):
    df = ip.run_line_magic("dtrace", "-l -n syscall::getppid:")
    assert df[["PROVIDER", "FUNCTION", "NAME"]].values.tolist() == [
        ["syscall", "getppid", "entry"], ["syscall", "getppid", "return"]]


# -- the live view ----------------------------------------------------------------------

def test_live_area_updates_while_tracing(ip):
    with capture_output() as cap:
        r = ip.run_cell_magic("dtrace", "-q -T 3", "profile:::tick-100ms { @ticks = count(); }")
    # one display for "starting", one update per refresh (1 s default: 2 or 3 in 3 s), one
    # for the final state
    assert len(cap.outputs) >= 4, len(cap.outputs)
    assert "tracing:" in cap.outputs[1].data["text/plain"]
    assert "done (duration)" in cap.outputs[-1].data["text/plain"]
    # -T counts from the start; attaching on a loaded machine takes part of the 3 s
    assert 5 <= int(r["ticks"]["count"][0]) <= 31


def test_histograms_are_plotted_live_and_on_the_result(ip, workloads):
    with capture_output() as cap:
        r = ip.run_cell_magic("dtrace", f'-q -c "{workloads["sysload"]} read 800"',
                              "syscall::read:entry /pid == $target && arg2 <= 128/ "
                              "{ @sizes = quantize(arg2); }")
    pngs = [o.data["image/png"] for o in cap.outputs if "image/png" in o.data]
    assert pngs and all(p[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    # 800 reads of 1 << (i % 8) bytes: 100 in each power-of-two bucket 1..128
    assert r["sizes"].to_dict("list") == {"value": [1, 2, 4, 8, 16, 32, 64, 128],
                                          "count": [100] * 8}
    bundle = r._repr_mimebundle_()
    assert bundle["image/png"][:4] == b"\x89PNG" and "<table" in bundle["text/html"]
    assert r.figure() is not None and len(r.figure().axes) == 1


def test_timeline_samples_every_refresh(ip):
    with capture_output():
        r = ip.run_cell_magic("dtrace", "-q -T 2.6 -x aggrate=500ms",
                              "profile:::tick-100ms { @t[\"tick\"] = count(); }")
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
        r = ip.run_cell_magic("dtrace", "-q -o stopped", "profile:::tick-100ms { @t = count(); }")
    timer.join()
    assert r.interrupted and r.stop_reason == "interrupted"
    assert ip.user_ns["stopped"] is r and 3 <= int(r["t"]["count"][0]) <= 25


def test_background_sessions_refresh_and_stop(ip):
    import time

    with capture_output():
        a = ip.run_cell_magic("dtrace", "--bg -q -x aggrate=300ms -o bga",
                              "profile:::tick-50ms { @a = count(); }")
        b = ip.run_line_magic("dtrace", "--bg -q -n 'profile:::tick-100ms { @b = count(); }'")
        assert a.running and b.running and a.result is None
        deadline = time.monotonic() + 15  # both compile first (one at a time)
        while min(a.view.updates, b.view.updates) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # both live (b compiles after a, one compile at a time)
        first = a.view.updates
        time.sleep(1.0)
        assert first >= 3 and a.view.updates > first  # refreshing while other cells run
        ra, rb = a.stop(), b.stop()
    assert not a.running and not b.running
    assert int(ra["a"]["count"][0]) >= 20 and int(rb["b"]["count"][0]) >= 10
    assert ip.user_ns["bga"] is ra and ip.user_ns["bga_bg"] is a
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
        recorded = ip.run_cell_magic("dtrace", line, cell)
    path = tmp_path / (cell_key(line, cell) + ".json")
    assert path.exists()
    monkeypatch.delenv("DTRACE_NB_RECORD")

    # the kernel path switched off: the same cell says why in one line and plays back
    monkeypatch.setenv("DTRACE_NB_NO_BPF", "1")
    monkeypatch.setenv("DTRACE_NB_REPLAY", str(tmp_path))
    with capture_output() as cap:
        replayed = ip.run_cell_magic("dtrace", line, cell)
    notes = [ln for ln in cap.stdout.splitlines() if ln.startswith("dtrace-nb:")]
    assert notes == [f"dtrace-nb: BPF cannot load here (BPF is switched off "
                     f"(DTRACE_NB_NO_BPF is set)); replaying the recorded session {path}"]
    assert replayed.replayed_from == str(path)
    assert replayed["sizes"].equals(recorded["sizes"]) and replayed.output == recorded.output
    assert any("image/png" in o.data for o in cap.outputs)
    assert "replayed" in cap.outputs[-1].data["text/plain"]
    # --replay FILE plays any recording explicitly
    with capture_output():
        again = ip.run_line_magic("dtrace", f"--replay {path}")
    assert again["sizes"]["count"].tolist() == [50] * 8

    # no recording for a cell: one line saying why tracing is impossible, no traceback
    with capture_output() as cap:
        res = ip.run_cell("%%dtrace\nBEGIN { exit(0); }")
    assert res.error_in_exec is not None
    text = cap.stderr + cap.stdout
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
        r = ip.run_cell_magic("dtrace", f'-q --frames -c "{workloads["sysload"]} getppid 5000"',
                              "syscall::getppid:entry /pid == $target/ { trace(arg0); }")
    df = r.records_frame()
    dropped = sum(r.drops.values())
    assert len(df) + dropped == 5000 and "trace" in df.columns
    assert "getppid" not in cap.stdout  # nothing formatted as text


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
