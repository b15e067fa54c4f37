"""The notebooks, executed headless by nbclient: against the real kernel, and again with the
kernel path switched off (DTRACE_NB_NO_BPF), where every %%dtrace cell must replay its
recording from notebooks/recordings (scripts/record-notebooks.py makes them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.notebook]
ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execute(notebook: Path, out: Path, **env) -> nbformat.NotebookNode:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "run-notebook.py"),
                           str(notebook), str(out)], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, **env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return nbformat.read(out, as_version=4)


def outputs(nb) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def test_there_are_six_tutorials():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_the_kernel(tmp_path, notebook):
    nb = execute(notebook, tmp_path / notebook.name)
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    html = [o["data"]["text/html"] for o in outs if "text/html" in o.get("data", {})]
    pngs = [o for o in outs if "image/png" in o.get("data", {})] + \
        [h for h in html if "data:image/png;base64," in h]
    if notebook.name.startswith("01"):
        # the syscall counts as a table, the read-size histogram as DTrace text (folded)
        # and a PNG
        assert any("<table" in h and "pread64" in h for h in html)
        assert any("<details>" in h and "------------- Distribution ------------- count" in h
                   for h in html)
    if notebook.name.startswith(("01", "02", "03", "05", "06")):
        assert pngs, "a histogram, flame graph or chart as PNG"
    if notebook.name.startswith("06"):
        # two hosts traced at once: the merged count, then each host's row
        text = [o["data"]["text/plain"] for o in outs if "text/plain" in o.get("data", {})]
        assert any("web1" in t and "web2" in t and "host" in t for t in text)
    if notebook.name.startswith("04"):
        assert any("raw tracepoint sys_enter" in h for h in html)  # the explain view
    # each %%dtrace cell: one output (the live area turned result), no "tracing" left
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("%%dtrace") \
                and "--explain" not in cell.source:
            assert len(cell.outputs) == 1, cell.source
            final = cell.outputs[0]["data"]["text/html"]
            assert re.search(r">(done|stopped)\b", final), cell.source
            # about a 3-second cell's worth: under 150 KB as saved (JupyterLab keeps no
            # widget state by default; nbclient's, in the metadata, is not counted)
            alone = nbformat.from_dict({**nb, "metadata": {}, "cells": [cell]})
            assert len(nbformat.writes(alone)) < 150 * 1024, cell.source


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_replays_where_bpf_cannot_load(tmp_path, notebook):
    nb = execute(notebook, tmp_path / notebook.name, DTRACE_NB_NO_BPF="1")
    outs = outputs(nb)
    assert not [o for o in outs if o["output_type"] == "error"]
    text = "".join(o.get("text", "") for o in outs if o["output_type"] == "stream")
    tracing = sum(1 for c in nb.cells if c.cell_type == "code"
                  and c.source.startswith("%%dtrace") and "--explain" not in c.source)
    assert text.count("dtrace-nb: BPF cannot load here") == tracing
    html = [o["data"]["text/html"] for o in outs if "text/html" in o.get("data", {})]
    assert any("replayed" in h for h in html)
