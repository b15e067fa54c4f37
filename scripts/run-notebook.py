#!/usr/bin/env python3
"""Execute a notebook headless in the venv's kernel and save the executed copy.

    python scripts/run-notebook.py IN.ipynb OUT.ipynb

Exits non-zero, printing the failing cell and its error, if any cell raised.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main(src: str, dest: str) -> int:
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(src).parent)}})
    failed = None
    try:
        client.execute()
    except CellExecutionError as err:
        failed = err
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    if failed is not None:
        print(f"{src}: a cell failed; partial notebook saved to {dest}\n{failed}", file=sys.stderr)
        return 1
    print(f"executed notebook: {Path(dest).resolve()}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
