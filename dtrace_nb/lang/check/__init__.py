"""Semantic analysis: from a parsed Program to a CheckedProgram.

`check()` runs an ordered list of passes over one CheckState (as sqlglot's optimizer runs
its RULES), each in its own module:

1. declarations.apply_pragmas: `#pragma D option` lines set options;
1b. declarations.check_macro_arguments: every $N has a value (first, in source order);
2. probes.resolve_probes: every probe description (macros expanded) matched in the
   ProbeCatalog, the only place the compiler meets providers;
2b. typedecls.declare_types: struct/union/enum types, typedefs, inlines, translators;
   their names replaced in the clauses (enumerators, inlines, offsetof, xlate);
3. declarations.declare_variables: declared variables exist with their types;
3b. probes.require_clauses: a program of declarations only is refused (D_EMPTY);
4. speculation.check_speculation: speculate()'s order rules (by the statements' names
   alone: dtrace(1) refuses an action after speculate() whether or not it could run here),
   speculative clauses;
5. statements.learn_variable_types: variables take the type of their first assignment in
   program order (a lenient walk);
6. statements.check_statements: every expression typed (exprs.py, scopes.py), every
   aggregation (aggregations.py) and action (actions.py) checked;
7. check_destructive: destructive actions need -w;
8. number_variables: variables get their index (their maps' and fields' names).

Results go into the CheckedProgram and its Annotations (types, resolved variables,
arguments, members, macro values: a side table), never onto the tree.
"""

from __future__ import annotations

from typing import Callable

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import ACTIONS, AGG_FUNCS, INT_BUILTINS, PROBE_STRINGS
from dtrace_nb.lang.check.actions import check_destructive
from dtrace_nb.lang.check.declarations import (apply_pragmas, check_macro_arguments,
                                             declare_variables)
from dtrace_nb.lang.check.macros import MacroEnv
from dtrace_nb.lang.check.probes import require_clauses, resolve_probes
from dtrace_nb.lang.check.results import (AggInfo, Annotations, ArgRef, CheckedClause,
                                          CheckedProgram, Variable, clause_calls,
                                          flat_statements)
from dtrace_nb.lang.check.speculation import check_speculation
from dtrace_nb.lang.check.state import MAX_NESTING, CheckState, const_value
from dtrace_nb.lang.check.statements import check_statements, learn_variable_types
from dtrace_nb.lang.check.typedecls import declare_types
from dtrace_nb.lang.options import Options
from dtrace_nb.probes import BindContext, ProbeCatalog

__all__ = ["check", "CheckedProgram", "CheckedClause", "AggInfo", "Variable",
           "Annotations", "ArgRef", "MacroEnv", "flat_statements", "clause_calls",
           "const_value", "MAX_NESTING", "PASSES", "ACTIONS", "AGG_FUNCS", "INT_BUILTINS",
           "PROBE_STRINGS"]


def _destructive(st: CheckState) -> None:
    check_destructive(st.destructive, bool(st.options["destructive"]))


def _number_variables(st: CheckState) -> None:
    for i, v in enumerate(st.vars.values()):
        v.index = i


PASSES: tuple[Callable[[CheckState], None], ...] = (
    apply_pragmas, check_macro_arguments, resolve_probes, declare_types, declare_variables,
    require_clauses, check_speculation, learn_variable_types, check_statements, _destructive,
    _number_variables,
)


def check(program: ast.Program, catalog: ProbeCatalog, macros: MacroEnv, options: Options,
          bind_ctx: BindContext) -> CheckedProgram:
    check_nesting(program)
    st = CheckState(program, catalog, macros, options, bind_ctx)
    try:
        for run in PASSES:
            run(st)
    except RecursionError:
        # check_nesting bounds the depth (MAX_NESTING); this is the net under a deep caller stack
        raise DCompileError("the program is nested too deeply to check",
                            program.span) from None
    return CheckedProgram(program.source, program, st.clauses, st.aggs, st.options,
                          st.probe_string_size, st.ann, st.uses_exit, st.probes, st.vars,
                          st.destructive)


def check_nesting(program: ast.Program) -> None:
    """Refuse, at the node that goes too deep, a program nested beyond MAX_NESTING."""
    todo: list = [(program, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_NESTING:
            raise DCompileError(f"the program is nested too deeply (more than {MAX_NESTING} "
                                "levels of expressions and blocks)", node.span)
        todo.extend((child, depth + 1) for child in ast.children(node))
