"""The notebooks, executed headless by nbclient against the real kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.notebook]
ROOT = Path(__file__).resolve().parent.parent


def test_first_trace_notebook(tmp_path):
    out = tmp_path / "01.ipynb"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run-notebook.py"),
                           str(ROOT / "notebooks" / "01-first-trace.ipynb"), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    # the syscall counts as a table, the read-size histogram as DTrace text and as a PNG plot
    assert any("<table" in h and "pread64" in h for h in html)
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert "------------- Distribution ------------- count" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not [o for o in outputs if o["output_type"] == "error"]
