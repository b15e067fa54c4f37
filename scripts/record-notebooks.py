#!/usr/bin/env python3
"""Re-record the tutorial notebooks' sessions on a real kernel, for replay where BPF cannot
load (Binder, containers, no root).

    sudo .venv/bin/python scripts/record-notebooks.py [NOTEBOOK ...]

Executes each notebook (default: every notebooks/*.ipynb) with DTRACE_NB_RECORD set, so
every %%dtrace cell saves its Result to notebooks/recordings/<cell key>.json; recordings no
cell uses any more are removed. Commit the recordings with the notebooks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORDINGS = ROOT / "notebooks" / "recordings"


def main(argv: list[str]) -> int:
    notebooks = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    RECORDINGS.mkdir(exist_ok=True)
    before = set(RECORDINGS.glob("*.json"))
    env = dict(os.environ, DTRACE_NB_RECORD=str(RECORDINGS))
    started = {p: p.stat().st_mtime for p in before}
    for nb in notebooks:
        out = ROOT / "out" / (nb.stem + ".recorded.ipynb")
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "run-notebook.py"),
                               str(nb), str(out)], env=env)
        if done.returncode != 0:
            print(f"record-notebooks: {nb.name} failed; recordings left as they were",
                  file=sys.stderr)
            return 1
    if not argv:  # a full run: drop recordings of cells that no longer exist
        for p in before:
            if p.exists() and p.stat().st_mtime == started[p]:
                p.unlink()
    print(f"record-notebooks: {len(list(RECORDINGS.glob('*.json')))} recordings in {RECORDINGS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
