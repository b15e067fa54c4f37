"""Ctrl-C during the first matplotlib import (the live view's first histogram, while
tracing) must not leave matplotlib half imported for the rest of the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter: SIGINT arrives while matplotlib/__init__.py runs (a finder sends it
# when matplotlib.rcsetup is looked up). Unguarded, the KeyboardInterrupt leaves submodules
# bound to a half-initialised matplotlib: every later plot fails with "module 'matplotlib'
# has no attribute 'get_data_path'", as the kernel soak (test_soak_kernel) found.
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import pandas as pd
    from dtrace_nb.display.plots import histogram_png

    assert "matplotlib" not in sys.modules

    class InterruptOnce:
        fired = False
        def find_spec(self, name, path=None, target=None):
            if name == "matplotlib.rcsetup" and not self.fired:
                self.fired = True
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, InterruptOnce())
    aggs = {"@q": ("quantize", pd.DataFrame({"value": [1, 2, 4], "count": [3, 5, 1]}))}
    try:
        histogram_png(aggs)
        print("no interrupt")
    except KeyboardInterrupt:
        print("interrupted")
    png = histogram_png(aggs)
    assert png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    print("plots still work")
""")


def test_ctrl_c_during_the_matplotlib_import_leaves_it_usable():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the interrupt is delivered (after the import), and the next plot works
    assert proc.stdout.split() == ["interrupted", "plots", "still", "work"], proc.stdout
