"""The live view in a real browser: JupyterLab on localhost, Debian's Chromium driven
headless by Playwright (pointed at /usr/bin/chromium; no browser is ever downloaded).

A `%%dtrace --bg` cell is run from the keyboard; the count in its live table must grow
between two reads, and its Stop button must stop it (the count then stays put and the
status line says so). Screenshots go to out/ (test-browser-*.png) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.notebook]
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
OUT = ROOT / "out"

CELLS = [
    "%load_ext dtrace_nb",
    '%%dtrace --bg -q -x aggrate=300ms -o r\nprofile:::tick-20ms { @ticks["tick"] = count(); }',
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook(path: Path) -> None:
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {},
                     "outputs": [], "source": src} for src in CELLS],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.fixture
def lab(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    jupyter = shutil.which("jupyter", path=os.path.dirname(sys.executable))
    port, token = _free_port(), "dtnb-test-token"
    _notebook(tmp_path / "live.ipynb")
    proc = subprocess.Popen(
        [jupyter, "lab", "--no-browser", "--allow-root", f"--ServerApp.port={port}",
         "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("JupyterLab did not start") from None
                time.sleep(0.5)
        yield f"{base}/lab/tree/live.ipynb?token={token}"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _count(page) -> int:
    cell = page.locator(".jp-OutputArea-output table tbody td").last
    return int(cell.inner_text().strip())


def _run_cells(page, attempts: int = 4) -> None:
    """Shift+Enter through the cells. JupyterLab shows the kernel idle a moment before its
    connection takes requests; a request sent in that window is lost, so try again until
    the first cell has an execution count."""
    prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    for _ in range(attempts):
        page.locator(".jp-Cell .jp-InputArea-editor").first.click()
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if re.search(r"\[\d+\]", prompt.inner_text()):
                return
            time.sleep(0.3)
    raise AssertionError("JupyterLab never ran the cells")


def test_live_table_grows_and_stop_button_stops(lab):
    from playwright.sync_api import sync_playwright

    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(lab)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            # the kernel must be idle before we type
            page.get_by_text("Kernel status: Idle").first.wait_for(state="attached",
                                                                   timeout=60_000)
            _run_cells(page)
            table = page.locator(".jp-OutputArea-output table tbody td").last
            try:
                table.wait_for(timeout=60_000)
            finally:
                page.screenshot(path=str(OUT / "test-browser-live.png"))
            first = _count(page)
            time.sleep(1.5)
            second = _count(page)
            page.screenshot(path=str(OUT / "test-browser-live.png"))
            assert second > first, (first, second)

            page.get_by_role("button", name="Stop").click()
            page.locator(".widget-label", has_text=re.compile("^stopped$")).wait_for(
                timeout=60_000)
            page.get_by_text(re.compile(r"done \(stopped\)")).first.wait_for(timeout=30_000)
            stopped = _count(page)
            time.sleep(1.0)
            assert _count(page) == stopped
            page.screenshot(path=str(OUT / "test-browser-stopped.png"))
        finally:
            browser.close()
