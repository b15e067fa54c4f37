"""Pass: DTrace's order rules for speculation within a clause. speculate() comes at most
once and before any data-recording action; after it, no commit()/discard() and none of
the actions that act on the session (exit, printa, clear, ...). Marks the clauses whose
records are speculative."""

from __future__ import annotations

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang.builtins import RECORDING_ACTIONS
from dtrace_nb.lang.check.results import clause_calls
from dtrace_nb.lang.check.state import CheckState

_SPECULATION = ("speculate", "commit", "discard")
_NOT_AFTER_SPECULATE = ("exit", "printa", "clear", "trunc", "normalize", "denormalize",
                        "setopt", "system")


# dt_cg_clsflags' tags and words for what may not follow speculate()
_AFTER_SPECULATE_WORDS = {
    "exit": ("D_EXIT_SPEC", "exit( ) may not follow speculate( )"),
    "system": ("D_ACT_SPEC", "destructive actions may not follow speculate( )"),
    "speculate": ("D_SPEC_SPEC", "speculate( ) may not follow speculate( )"),
}


def check_speculation(st: CheckState) -> None:
    for c in st.clauses:
        speculated = recorded = False
        for call in clause_calls(c.clause):
            if call.name == "speculate":
                if speculated:
                    raise DCompileError("a clause may speculate() only once", call.span,
                                        tag="D_SPEC_SPEC",
                                        dtrace="speculate( ) may not follow speculate( )")
                if recorded:
                    raise DCompileError("speculate() must come before any data-recording "
                                        "action in its clause", call.span, tag="D_SPEC_DREC",
                                        dtrace="speculate( ) may not follow data-recording "
                                               "action(s)")
                speculated = True
            elif speculated and (call.name in _SPECULATION
                                 or call.name in _NOT_AFTER_SPECULATE):
                tag, words = _AFTER_SPECULATE_WORDS.get(call.name, ("", ""))
                raise DCompileError(f"{call.name}() may not follow speculate() in a clause",
                                    call.span, tag=tag, dtrace=words)
            if call.name in RECORDING_ACTIONS and call.name not in _SPECULATION:
                recorded = True
        c.speculative = speculated
