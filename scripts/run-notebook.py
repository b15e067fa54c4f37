#!/usr/bin/env python3
"""Execute a notebook headless in this venv's `python3` kernel and save the executed copy.

    .venv/bin/python scripts/run-notebook.py [NOTEBOOK [OUTPUT]] [--timeout SECONDS]

NOTEBOOK defaults to notebooks/01-first-trace.ipynb, OUTPUT to out/<name>.executed.ipynb.
The kernel starts in the notebook's folder. The executed copy is saved even when a cell
fails, and its path is printed. Exit status: 0 when every cell ran, 1 when a cell raised
(that cell and its error are printed), timed out, or the kernel died; 2 for a kernelspec
that would run some other interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _prefer_venv_kernels() -> None:
    """Put this interpreter's share/jupyter first, so its `python3` kernelspec wins over one
    in ~/.local/share/jupyter that would start another Python (without dtrace_nb)."""
    share = os.path.join(sys.prefix, "share", "jupyter")
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if share not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([share, *paths])


def _check_kernel(name: str) -> str | None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return f"no Jupyter kernel named {name!r}: run 'make setup'"
    exe = spec.argv[0] if spec.argv else ""
    if exe in ("python", "python3", "{python}"):
        return None  # ipykernel's built-in spec: runs sys.executable
    if os.path.abspath(exe) != os.path.abspath(sys.executable):
        return (f"kernel {name!r} ({spec.resource_dir}) runs {exe}, not this venv's "
                f"{sys.executable}: run 'make setup' or remove that kernelspec")
    return None


def _cell_error(nb, index: int) -> str:
    cell = nb.cells[index]
    source = cell.source if len(cell.source) <= 2000 else cell.source[:2000] + "\n..."
    parts = [f"--- cell {index} (execution count {cell.get('execution_count')}) ---", source,
             "--- error ---"]
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            parts.append(_ANSI.sub("", "\n".join(out.get("traceback", [])))
                         or f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


def _errored_cells(nb) -> list[int]:
    """Code cells with an error output, except those tagged raises-exception (intended)."""
    bad = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            bad.append(i)
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", nargs="?", default=str(ROOT / "notebooks/01-first-trace.ipynb"))
    ap.add_argument("output", nargs="?")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    ap.add_argument("--kernel", default="python3", help="kernelspec name (default python3)")
    args = ap.parse_args(argv)

    src = Path(args.notebook)
    dest = Path(args.output) if args.output else ROOT / "out" / f"{src.stem}.executed.ipynb"

    _prefer_venv_kernels()
    problem = _check_kernel(args.kernel)
    if problem:
        print(f"run-notebook: {problem}", file=sys.stderr)
        return 2

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=args.timeout, startup_timeout=120,
                            kernel_name=args.kernel,
                            resources={"metadata": {"path": str(src.resolve().parent)}})
    failure = None
    try:
        client.execute()
    except CellTimeoutError as err:
        failure = f"a cell ran longer than {args.timeout} s: {err}"
    except DeadKernelError as err:
        failure = f"the kernel died: {err}"
    except CellExecutionError:
        failure = ""  # described from the saved outputs below
    finally:
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dest)

    errored = _errored_cells(nb)
    print(f"executed notebook: {dest.resolve()}")
    if failure is None and not errored:
        return 0
    if failure:
        print(f"run-notebook: {src}: {failure}", file=sys.stderr)
    for i in errored:
        print(f"run-notebook: {src}: cell {i} raised\n{_cell_error(nb, i)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
