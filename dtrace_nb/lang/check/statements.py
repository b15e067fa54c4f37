"""Passes over the clauses' predicates and statements.

`learn_variable_types` walks every clause leniently, in program order, only to give each
variable the type of its first assignment (so a clause may read `self->ts` before the
clause that sets it); `check_statements` then walks strictly, typing every expression
into the annotations and checking aggregations and actions as it meets them (in program
order, so "not defined before this use" means what it says)."""

from __future__ import annotations

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import ACTIONS
from dtrace_nb.lang.check.actions import check_action
from dtrace_nb.lang.check.aggregations import check_aggregation
from dtrace_nb.lang.check.exprs import ExprChecker
from dtrace_nb.lang.check.results import Annotations, CheckedClause
from dtrace_nb.lang.check.state import CheckState, is_agg_target
from dtrace_nb.lang.check.walk import Walk


def learn_variable_types(st: CheckState) -> None:
    _walk(st, Walk(ExprChecker(st, Annotations(), lenient=True)))


def check_statements(st: CheckState) -> None:
    w = _walk(st, Walk(ExprChecker(st, st.ann, lenient=False)))
    st.aggs, st.uses_exit, st.destructive = w.aggs, w.uses_exit, w.destructive


def _walk(st: CheckState, w: Walk) -> Walk:
    for c in st.clauses:
        _clause(w, c)
    return w


def _clause(w: Walk, c: CheckedClause) -> None:
    w.x.clause = c
    pred = c.clause.predicate
    if pred is not None:
        t = w.x.expr(pred)
        if not t.is_int:
            raise DCompileError("a predicate must be an integer or pointer expression, "
                                f"not {t}", pred.span, tag="D_PRED_SCALAR",
                                dtrace="predicate result must be of scalar type")
    _block(w, c.clause.body)


def _block(w: Walk, body: list) -> None:
    for stmt in body:
        _stmt(w, stmt)


def _stmt(w: Walk, stmt: ast.Stmt) -> None:
    if isinstance(stmt, ast.ExprStmt):
        _expr_stmt(w, stmt.expr)
    elif isinstance(stmt, ast.Block):
        _block(w, stmt.body)
    elif isinstance(stmt, ast.If):
        if not w.x.expr(stmt.cond).is_int:
            raise DCompileError("an if condition must be an integer or pointer expression",
                                stmt.cond.span)
        _block(w, stmt.then)
        _block(w, stmt.other)
    else:
        raise DCompileError(f"{type(stmt).__name__.lower()} statements are not supported",
                            stmt.span)


def _expr_stmt(w: Walk, e: ast.Expr) -> None:
    if isinstance(e, ast.Assign) and is_agg_target(e.target):
        check_aggregation(w, e)
    elif isinstance(e, ast.Call) and e.name in ACTIONS:
        check_action(w, e)
    elif is_agg_target(e):
        _null_aggregation(w, e)
    elif isinstance(e, (ast.Assign, ast.Postfix)) or (
            isinstance(e, ast.Unary) and e.op in ("++pre", "--pre")):
        w.x.expr(e)
    else:
        # any other expression is evaluated for nothing but its faults, as DTrace does
        # (`*(char *)NULL;` faults; a bare speculation() or `probeprov;` is legal)
        w.x.expr(e)


def _null_aggregation(w: Walk, e: ast.Expr) -> None:
    """`@a;` or `@a[k];`: an aggregation without a function (dt_cg's D_AGG_NULL), or `@a;`
    of one never defined (an unknown name)."""
    root = e
    while isinstance(root, ast.Index):
        root = root.base
    assert isinstance(root, ast.AggRef)
    if root is e and root.name not in w.aggs:  # (`@a[k]` declares @a, as in dtrace(1))
        raise DCompileError(f"unknown aggregation @{root.name}", root.span, tag="D_IDENT_UNDEF",
                            dtrace=f"failed to resolve @{root.name}: Unknown variable name")
    raise DCompileError(f"@{root.name} is named without an aggregating function: the "
                        "statement does nothing", e.span, tag="D_AGG_NULL",
                        dtrace=f"expression has null effect: @{root.name}",
                        hint=f"@{root.name}[keys] = count() (or another function)")
