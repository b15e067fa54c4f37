"""D source text -> ast.Program, every node with its span; malformed input -> DSyntaxError.

The grammar is grammar.lark (lark LALR(1), contextual lexer), built once per process
(grammar.py). Literals are checked as they are lexed (lexical.py), so the first problem in
source order is the one reported; the tree becomes the AST in to_ast.py, and a parse error
is described in syntax_errors.py. Every failure, including one of these modules' own,
reaches the caller as a DSyntaxError with a span: nothing else escapes `parse`.
"""

from __future__ import annotations

from lark.exceptions import UnexpectedInput

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang import ast
from dtrace_nb.lang.ast import Span
from dtrace_nb.lang.grammar import lark_parser
from dtrace_nb.lang.lexical import int_literal, unescape
from dtrace_nb.lang.syntax_errors import (end_span, internal_error, line_col, offset_span,
                                          syntax_error)
from dtrace_nb.lang.to_ast import ToAST

__all__ = ["int_literal", "parse", "unescape"]


def parse(source: str) -> ast.Program:
    """Parse a D program. Raises DSyntaxError (always with a span) on malformed input."""
    if not isinstance(source, str):
        raise DSyntaxError(f"a D program must be text, not {type(source).__name__}",
                           Span(1, 1, 1, 2))
    _check_encodable(source)
    try:
        tree = lark_parser().parse(source)
        program = ToAST().build(tree)
    except DSyntaxError:
        raise
    except UnexpectedInput as err:
        try:
            located = syntax_error(source, err)
        except Exception as inner:  # noqa: BLE001 - describing the error must not fail either
            located = internal_error(source, inner)
        raise located from None
    except RecursionError:
        raise DSyntaxError("the program is nested too deeply", end_span(source)) from None
    except Exception as err:  # noqa: BLE001 - even a bug here must reach the user as a D error
        raise internal_error(source, err) from None
    program.source = source
    if program.span.line == 0:  # nothing but blanks and comments
        program.span = Span(1, 1, *line_col(source, len(source)))
    return program


def _check_encodable(source: str) -> None:
    """Text that has no UTF-8 form (a lone surrogate, as from a bad decode) cannot be
    compiled or printed: say where it is."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DSyntaxError(f"invalid character U+{ord(source[err.start]):04X} (a lone "
                           "surrogate, not text)",
                           offset_span(source, err.start, err.start + 1)) from None
