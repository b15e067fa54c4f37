"""The folder tree is the data path (ARCHITECTURE.md): every import inside dtrace_nb points
to its own layer or a lower one, the package never imports a provider by name, and there
is no import circle. Read from the source with `ast`, so a lazy import inside a function
counts as much as one at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "dtrace_nb"

# bottom to top; a module may import its own layer and the ones before it
LAYERS = (
    ("errors", "cachedir", "faults"),
    ("aggregate",),  # pure semantics of the values: codegen sizes its maps from buckets.py
    ("probes",),
    ("lang",),
    ("codegen",),
    ("runtime",),
    ("text",),
    ("consumer",),
    ("session",),
    ("display",),
    ("result",),
    ("fleet",),  # many hosts' sessions through Dask, merged; the shells use it
    ("frontend", "cpp"),  # cpp: -C, the preprocessor run over the program text
    ("cli", "magics", "__init__", "__main__"),
)
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

# the one upward import left, ARCHITECTURE.md's "known exceptions"
EXCEPTIONS = {("errors", "lang.ast")}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"] or ["__init__"]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """dtrace_nb.* and dtrace_nb_providers.* modules imported anywhere in the file."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            # `from dtrace_nb.lang import ast` names a module as well
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in ("dtrace_nb", "dtrace_nb_providers")}


def _sources():
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _existing(module: str) -> str:
    """The dtrace_nb module a dotted import names (a name imported from a module is the
    module itself), without the dtrace_nb prefix."""
    parts = module.split(".")[1:]
    while parts:
        base = ROOT.joinpath(*parts)
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return ".".join(parts)
        parts = parts[:-1]
    return "__init__"


def test_every_module_has_a_layer():
    top = {_module_name(p).split(".")[0] for p in _sources()}
    assert top <= set(RANK), f"modules without a layer: {sorted(top - set(RANK))}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    me = _module_name(path)
    upward = []
    for imported in _imports(path):
        assert not imported.startswith("dtrace_nb_providers"), \
            f"{me} imports the provider {imported} by name (providers are entry points)"
        target = _existing(imported)
        if target == "__init__" and imported == "dtrace_nb":
            continue
        if RANK[target.split(".")[0]] > RANK[me.split(".")[0]] \
                and (me, target) not in EXCEPTIONS:
            upward.append(target)
    assert not upward, f"{me} imports upward: {sorted(upward)}"


def test_no_import_circles_between_modules():
    graph = {}
    for path in _sources():
        me = _module_name(path)
        graph[me] = {t for t in (_existing(i) for i in _imports(path))
                     if t != me and t != "__init__"}
    # a package's __init__ re-exporting its submodules is not a circle with them
    for me, deps in graph.items():
        graph[me] = {d for d in deps if not (me.startswith(d + ".") or d.startswith(me + "."))}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if seen.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in seen:
                visit(dep)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


PROVIDERS = ROOT.parent / "providers"


@pytest.mark.parametrize("path", sorted(PROVIDERS.glob("*.py")), ids=lambda p: p.name)
def test_providers_import_their_siblings_by_the_installed_name(path):
    """The folder installs as dtrace_nb_providers; `providers` resolves only where the
    current directory is the checkout (the tests'), so a notebook elsewhere would fail."""
    tree = ast.parse(path.read_text(), str(path))
    wrong = [n.lineno for n in ast.walk(tree)
             if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
             and n.module.split(".")[0] == "providers"
             or isinstance(n, ast.Import) and any(a.name.split(".")[0] == "providers"
                                                 for a in n.names)]
    assert not wrong, f"{path.name} imports `providers` at lines {wrong}"
