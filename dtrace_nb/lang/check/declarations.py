"""Pass: the program's own settings and declarations. `#pragma D option` lines set
options (before anything reads them); declared variables (`int x;`, `self string s;`,
`int a[int];`) exist, with their types, before any clause is checked."""

from __future__ import annotations

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import INT_BUILTINS, PROBE_STRINGS
from dtrace_nb.lang.check.results import Variable
from dtrace_nb.lang.check.state import CheckState


def apply_pragmas(st: CheckState) -> None:
    for pragma in st.program.pragmas:
        st.options.apply_pragma(pragma)
    st.macros.defaultargs = bool(st.options["defaultargs"])


def check_macro_arguments(st: CheckState) -> None:
    """Every $N and $name of the program has a value, checked in source order before
    anything else (dtrace(1) expands them as it reads the program)."""
    found = []
    todo: list = [st.program]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.MacroVar, ast.ProbeSpec)) and node.span is not None:
            found.append(node)
        todo.extend(ast.children(node))
    for node in sorted(found, key=lambda n: (n.span.line, n.span.col)):
        if isinstance(node, ast.MacroVar):
            st.macros.value(node.name, node.span)
        else:
            st.macros.expand(node)


def declare_variables(st: CheckState) -> None:
    for decl in st.program.decls:
        _declare(st, decl)


def _declare(st: CheckState, decl: ast.VarDecl) -> None:
    t = st.type_of(decl.type)
    keys = None
    if decl.key_types is not None:
        if decl.scope == "this":
            raise DCompileError("clause-local (this->) variables cannot be associative arrays",
                                decl.span, tag="D_DECL_LOCASSC",
                                dtrace="associative arrays may not be declared as local "
                                       f"variables: {decl.name}")
        for i, k in enumerate(decl.key_types, 1):
            if list(k.words) == ["void"] and not k.pointer:
                raise DCompileError("an array key cannot be void", k.span or decl.span,
                                    tag="D_DECL_PROTO_TYPE",
                                    dtrace="array prototype may not use parameter of type "
                                           f"void: (anonymous), parameter #{i}")
        keys = [st.type_of(k) for k in decl.key_types]
    key = (decl.scope, decl.name)
    if key in st.vars:
        raise DCompileError(f"{st.vars[key].label} is declared twice", decl.span)
    if decl.scope == "global" and (decl.name in INT_BUILTINS or decl.name in PROBE_STRINGS
                                   or decl.name in ("execname", "args")):
        raise DCompileError(f"'{decl.name}' is a built-in variable", decl.span)
    st.vars[key] = Variable(decl.scope, decl.name, st.storage_type(t), decl.span, keys)
