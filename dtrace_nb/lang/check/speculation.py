"""Pass: DTrace's order rules for speculation within a clause. speculate() comes at most
once and before any data-recording action; after it, no commit()/discard(), no
aggregation and none of the actions that act on the session (exit, printa, clear, ...).
commit() comes before any data-recording action or aggregation of its clause, and none
follows it (dtrace-utils' dt_cg_clsflags: there every action but speculate, commit,
discard and the aggregating ones records data). Marks the clauses whose records are
speculative."""

from __future__ import annotations

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import ACTIONS, DESTRUCTIVE, RECORDING_ACTIONS
from dtrace_nb.lang.check.results import flat_statements
from dtrace_nb.lang.check.state import CheckState, is_agg_target

_SPECULATION = ("speculate", "commit", "discard")
_NOT_AFTER_SPECULATE = ("exit", "printa", "clear", "trunc", "normalize", "denormalize",
                        "setopt") + DESTRUCTIVE


# dt_cg_clsflags' tags and words for what may not follow speculate()
_AFTER_SPECULATE_WORDS = {
    "exit": ("D_EXIT_SPEC", "exit( ) may not follow speculate( )"),
    **{name: ("D_ACT_SPEC", "destructive actions may not follow speculate( )")
       for name in DESTRUCTIVE},
    "speculate": ("D_SPEC_SPEC", "speculate( ) may not follow speculate( )"),
}


def check_speculation(st: CheckState) -> None:
    for c in st.clauses:
        c.speculative = _ClauseOrder().check(c.clause)


class _ClauseOrder:
    """The speculation-related actions met so far in one clause."""

    def __init__(self) -> None:
        self.speculated = self.recorded = self.committed = False
        self.acted = False  # any action but speculate/commit/discard, or an aggregation

    def check(self, clause: ast.Clause) -> bool:
        for s in flat_statements(clause.body):
            if not isinstance(s, ast.ExprStmt):
                continue
            if isinstance(s.expr, ast.Assign) and is_agg_target(s.expr.target):
                self.aggregation(s.expr)
            elif isinstance(s.expr, ast.Call) and s.expr.name in ACTIONS:
                self.action(s.expr)
        return self.speculated

    def aggregation(self, e: ast.Assign) -> None:
        if self.committed:
            raise DCompileError("aggregating actions may not follow commit( )", e.span,
                                tag="D_AGG_COMM", dtrace="aggregating actions may not follow "
                                                         "commit( )")
        if self.speculated:
            raise DCompileError("aggregating actions may not follow speculate( )", e.span,
                                tag="D_AGG_SPEC", dtrace="aggregating actions may not follow "
                                                         "speculate( )")
        self.acted = True

    def action(self, call: ast.Call) -> None:
        name = call.name
        if name == "speculate":
            if self.speculated:
                raise DCompileError("a clause may speculate() only once", call.span,
                                    tag="D_SPEC_SPEC",
                                    dtrace="speculate( ) may not follow speculate( )")
            if self.committed:
                raise DCompileError("speculate( ) may not follow commit( )", call.span,
                                    tag="D_SPEC_COMM",
                                    dtrace="speculate( ) may not follow commit( )")
            if self.recorded:
                raise DCompileError("speculate() must come before any data-recording "
                                    "action in its clause", call.span, tag="D_SPEC_DREC",
                                    dtrace="speculate( ) may not follow data-recording "
                                           "action(s)")
            self.speculated = True
        elif self.speculated and (name in _SPECULATION or name in _NOT_AFTER_SPECULATE):
            tag, words = _AFTER_SPECULATE_WORDS.get(name, ("", ""))
            raise DCompileError(f"{name}() may not follow speculate() in a clause",
                                call.span, tag=tag, dtrace=words)
        elif name == "commit":
            if self.acted:
                raise DCompileError("commit( ) may not follow data-recording action(s)",
                                    call.span, tag="D_COMM_DREC",
                                    dtrace="commit( ) may not follow data-recording action(s)")
            self.committed = True
        elif name != "discard":
            if self.committed:
                raise DCompileError("data-recording actions may not follow commit( )",
                                    call.span, tag="D_DREC_COMM",
                                    dtrace="data-recording actions may not follow commit( )")
            self.acted = True
        if name in RECORDING_ACTIONS and name not in _SPECULATION:
            self.recorded = True
