"""The explain view (`%%dtrace --explain`, `dtrace-nb -e -S`): probes, the kernel mechanism
serving each, how each argument a clause reads is fetched, the maps, and C that compiles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dtrace_nb.display.explain import explain
from dtrace_nb.session import SessionConfig

ROOT = Path(__file__).resolve().parent.parent
FIXED = """syscall::read:entry, syscall::write:entry /arg2 > 0/ { @io[probefunc] = quantize(arg2); }
sdt:syscalls::sys_enter_openat { printf("%s\\n", copyinstr(args[2])); }
proc:::exec-success { self->t = timestamp; }
profile:::tick-1s { exit(0); }
"""


def test_explain_names_probes_mechanisms_and_argument_fetching():
    e = explain(SessionConfig(FIXED))
    c1, c2, c3, c4 = e.clauses
    assert [(p.description, p.provider, p.mechanism) for p in c1.probes] == [
        ("syscall::read:entry", "syscall", "raw tracepoint sys_enter"),
        ("syscall::write:entry", "syscall", "raw tracepoint sys_enter")]
    assert [(a.name, a.how) for a in c1.args] == [
        ("arg2", ["raw tracepoint sys_enter: register dx of the saved user pt_regs "
                  "(ctx->args[0])"])]
    assert c2.probes[0].mechanism == "tracepoint syscalls:sys_enter_openat"
    assert c2.args[0].name == "args[2]" and "field filename" in c2.args[0].how[0]
    assert c3.probes[0].mechanism == "tracepoint sched:sched_process_exec"
    assert c4.probes[0].mechanism.startswith("perf event type 1 config 0, period 1000000000")
    maps = {m.name: m for m in e.maps}
    assert "@io = quantize()" in maps["dtnb_agg0"].detail
    assert maps["dtnb_agg0"].kind == "per-CPU hash"
    assert any("thread-local" in m.detail for m in e.maps)
    text = e.text()
    assert "generated C" in text and "int dtnb_b0(" in text
    html = e._repr_html_()
    assert "<table>" in html and "style=" in html  # pygments inline-styled C


@pytest.mark.kernel
def test_explained_c_compiles():
    from dtrace_nb.runtime.btf import task_offsets
    from dtrace_nb.runtime.environment import import_bcc

    e = explain(SessionConfig(FIXED))
    bpf = import_bcc().BPF(text=e.c_source.encode(),
                           cflags=[f"-D{k}={v}" for k, v in task_offsets().items()])
    bpf.cleanup()


def test_cli_explains_without_privileges(tmp_path):
    # as user nobody: no BPF, no tracefs; explaining needs neither
    cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
           "-m", "dtrace_nb.cli", "-e", "-S", "-n",
           "syscall::getppid:entry /pid == 1/ { @[execname] = count(); }"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "syscall::getppid:entry" in done.stdout and "raw tracepoint sys_enter" in done.stdout
    assert "generated C" in done.stdout


def test_magic_explain_returns_the_view():
    from tests.conftest import ipython_shell

    ip = ipython_shell()
    ip.run_line_magic("load_ext", "dtrace_nb")
    e = ip.run_cell_magic("dtrace", "--explain", "syscall::getppid:entry { @ = count(); }")
    assert e.clauses[0].probes[0].mechanism == "raw tracepoint sys_enter"
