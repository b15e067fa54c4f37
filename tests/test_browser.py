"""The live view in a real browser: JupyterLab on localhost, Debian's Chromium driven
headless by Playwright (pointed at /usr/bin/chromium; no browser is ever downloaded).

A foreground `%%dtrace` cell is run from the keyboard: its control bar's stage must change
(compiling / attaching -> tracing), the count in its table must grow, and its Stop button
must stop it while the cell holds the kernel (JupyterLab sends widget messages to a kernel
subshell); the cell then has one output area. A 3-second quantize cell must end in one
area about two screens tall and the saved notebook stay under 150 KB. Screenshots go to
out/ (test-browser-*.png) for a person to look at.
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
    '%%dtrace -q -x aggrate=300ms -o r\nprofile:::tick-20ms { @ticks["tick"] = count(); }',
    '%%dtrace -T 3 -o sizes\nsyscall::read:entry { @bytes[execname] = quantize(arg2); }',
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
    cell = page.locator(".jp-Cell").nth(1).locator("td.dtnb-value").first
    return int(cell.inner_text().strip().replace(",", ""))


def _run_cells(page, attempts: int = 4) -> None:
    """Shift+Enter through the first two cells. JupyterLab shows the kernel idle a moment
    before its connection takes requests; a request sent in that window is lost, so try
    again until the first cell has an execution count."""
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


# Every stage text the second cell's bar shows, as the page changes it: a stage the kernel
# sends and replaces within a few milliseconds (a cached program compiles at once) is
# still seen, as a person's screen showed it for a frame, where polling could miss it.
_WATCH_STAGES = """() => {
  window.__dtnbStages = [];
  const note = () => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[1];
    const b = cell && cell.querySelector('.jp-OutputArea-output .widget-html b');
    const t = b ? b.textContent.trim() : '';
    const seen = window.__dtnbStages;
    if (t && seen[seen.length - 1] !== t) seen.push(t);
  };
  new MutationObserver(note).observe(document.body,
      {subtree: true, childList: true, characterData: true});
}"""


def _stages(page, until: str, timeout: float = 90) -> list[str]:
    """The control bar's stage texts seen until one starts with `until`."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = page.evaluate("() => window.__dtnbStages.slice()")
        if seen and seen[-1].startswith(until):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the stage never became {until!r}: {seen}")


def test_control_bar_stop_in_the_foreground_and_one_output(lab, tmp_path):
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
            page.evaluate(_WATCH_STAGES)
            _run_cells(page)
            cell = page.locator(".jp-Cell").nth(1)
            try:
                stages = _stages(page, "tracing")
                cell.locator("td.dtnb-value").first.wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(OUT / "test-browser-live.png"))
            assert len(stages) >= 2 and stages[-1] == "tracing", stages
            assert any(s.startswith(("compiling", "attaching")) for s in stages), stages
            first = _count(page)
            time.sleep(1.5)
            second = _count(page)
            page.screenshot(path=str(OUT / "test-browser-live.png"))
            assert second > first, (first, second)

            # Stop while the cell still runs (the kernel is busy with it)
            cell.get_by_role("button", name="Stop").click()
            try:
                cell.get_by_text(re.compile(r"^stopped$")).first.wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(OUT / "test-browser-stopped.png"))
            stopped = _count(page)
            time.sleep(1.0)
            assert _count(page) == stopped
            assert cell.locator(".jp-OutputArea-child").count() == 1
            page.screenshot(path=str(OUT / "test-browser-stopped.png"))

            # the quantize cell, from its editor
            third = page.locator(".jp-Cell").nth(2)
            third.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Shift+Enter")
            try:
                third.get_by_text(re.compile(r"^done \(duration\)$")).first.wait_for(
                    timeout=90_000)
                # the cell finished: its area is the static result, not the widgets
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not re.search(
                        r"\[\d+\]", third.locator(".jp-InputPrompt").inner_text()):
                    time.sleep(0.2)
                third.locator(".widget-html").first.wait_for(state="detached", timeout=30_000)
            finally:
                page.screenshot(path=str(OUT / "test-browser-quantize.png"), full_page=True)
            assert third.locator(".jp-OutputArea-child").count() == 1
            area = third.locator(".jp-OutputArea").first
            height = area.bounding_box()["height"]
            area.scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / "test-browser-quantize.png"), full_page=True)
            third.screenshot(path=str(OUT / "test-browser-quantize-cell.png"))

            saved = tmp_path / "live.ipynb"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                page.keyboard.press("Control+s")
                time.sleep(2.0)
                if "done (duration)" in saved.read_text():
                    break  # saved with the quantize cell's result
            else:
                raise AssertionError("the notebook was never saved with the result")
            size = saved.stat().st_size
            print(f"browser: quantize cell {height:.0f} px tall; saved notebook "
                  f"{size / 1024:.1f} KB")
            (OUT / "test-browser-measures.txt").write_text(
                f"quantize cell output height: {height:.0f} px\n"
                f"saved notebook: {size / 1024:.1f} KB\n")
            assert size < 150 * 1024, size
            assert height < 2 * 1000, height  # about two screens of 1000 px at most
        finally:
            browser.close()
