"""bench/conformance run whole through the real dtrace-nb command, on a suite of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_conformance_runner import make_suite

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.kernel
def test_a_run_through_the_real_command(tmp_path):
    suite = make_suite(tmp_path / "suite")
    out = tmp_path / "out"
    dt = ROOT / ".venv" / "bin" / "dtrace-nb"
    done = subprocess.run([sys.executable, "-m", "bench.conformance", "--suite", str(suite),
                           "--dt", str(dt), "--out", str(out), "--only", "cat",
                           "--timeout", "30"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = {Path(r["path"]).name: r for r in json.loads((out / "results.json").read_text())}
    assert rows["tst.hello.d"]["verdict"] == "PASS", rows["tst.hello.d"]
    assert rows["tst.later.d"]["verdict"] == "SKIP"
    # y is undeclared: refused with status 1 (the tag and text are dtrace(1)'s business)
    assert rows["err.D_IDENT_UNDEF.x.d"]["status"] == 1
    summary = (out / "summary.md").read_text()
    assert "| cat |" in summary and "Alarms" in summary
