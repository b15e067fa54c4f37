"""D source text -> ast.Program, with every node's span; errors as DSyntaxError.

The grammar is grammar.lark (LALR, contextual lexer). The parser is built once per process.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import (LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken,
                             VisitError)

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang import ast
from dtrace_nb.lang.ast import Span

UINT64_MAX = (1 << 64) - 1


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = resources.files("dtrace_nb.lang").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False)


def parse(source: str) -> ast.Program:
    """Parse D source text. Raises DSyntaxError (with a span) on any malformed input."""
    try:
        tree = _parser().parse(source)
    except UnexpectedCharacters as err:
        raise _bad_character(source, err) from None
    except UnexpectedEOF as err:
        raise DSyntaxError("unexpected end of input" + _expected(err.expected),
                           _end_span(source)) from None
    except UnexpectedToken as err:
        raise _unexpected_token(source, err) from None
    except LarkError as err:  # anything else lark can raise: still a located D error
        raise DSyntaxError(f"cannot parse the program: {err}", _end_span(source)) from None
    try:
        program = _ToAST().transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, DSyntaxError):
            raise err.orig_exc from None
        raise DSyntaxError(f"cannot parse the program: {err.orig_exc}",
                           _end_span(source)) from None
    except Exception as err:  # a transformer bug must still not show a traceback
        raise DSyntaxError(f"cannot parse the program: {err}", _end_span(source)) from None
    program.source = source
    return program


# ------------------------------------------------------------------------- error text

_NAMES = {
    "SEMICOLON": "';'", "RBRACE": "'}'", "LBRACE": "'{'", "RPAR": "')'", "LPAR": "'('",
    "RSQB": "']'", "LSQB": "'['", "COMMA": "','", "COLON": "':'", "QMARK": "'?'",
    "SLASH": "'/'", "PRED_END": "'/' closing the predicate", "PROBE_DESC": "a probe description",
    "IDENT": "an identifier", "INT": "an integer", "STRING": "a string", "CHAR": "a character",
    "AGG": "an aggregation", "MACRO": "a macro variable", "ASSIGN_OP": "'='",
    "EQ_OP": "'=='", "REL_OP": "'<'", "ADD_OP": "'+'", "MUL_OP": "'*'", "PRAGMA": "#pragma",
    "$END": "end of input", "DOT": "'.'", "ARROW": "'->'", "BASE_TYPE": "a type name",
}
_EXPR_START = {"INT", "STRING", "CHAR", "IDENT", "AGG", "MACRO", "LPAR", "UNARY_OP", "ADD_OP",
               "INCDEC", "SIZEOF", "STRINGOF", "SCOPE", "BAND", "MUL_OP_STAR"}
_PREFERRED = ["SEMICOLON", "RBRACE", "RPAR", "RSQB", "COMMA", "COLON", "PRED_END", "LBRACE",
              "PROBE_DESC", "IDENT", "SLASH", "$END"]


_OPERATORS = {"ADD_OP", "AND", "ARROW", "ASSIGN_OP", "BAND", "BOR", "BXOR", "DOT", "EQ_OP",
              "INCDEC", "LSQB", "MUL_OP", "OR", "QMARK", "REL_OP", "SHIFT_OP", "XOR"}


def _context(source: str, pos: int) -> tuple[int, int, int, bool]:
    """(open parens, open brackets, open '?', inside a clause body) at pos, ignoring
    strings and comments; a rough scan that only decides what to mention as expected."""
    text = re.sub(r'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|//[^\n]*', "", source[:pos], flags=re.S)
    depth = text.count("{") - text.count("}")
    stmt = re.split(r"[;{}]", text)[-1]
    return (stmt.count("(") - stmt.count(")"), stmt.count("[") - stmt.count("]"),
            stmt.count("?") - stmt.count(":"), depth > 0)


def _expected(expected, source: str = "", pos: int = -1) -> str:
    names = set(expected or ())
    if source and pos >= 0:
        parens, brackets, ternary, in_body = _context(source, pos)
        if parens <= 0:
            names.discard("RPAR")
        if brackets <= 0:
            names.discard("RSQB")
        if parens <= 0 and brackets <= 0:
            names.discard("COMMA")
        if ternary <= 0:
            names.discard("COLON")
        names.discard("PRED_END" if in_body else "SEMICOLON")
        if not in_body:
            names.discard("RBRACE")
    if names - _OPERATORS and names & {"SEMICOLON", "RBRACE", "PRED_END", "RPAR", "RSQB"}:
        names -= _OPERATORS  # after an operand any operator may follow; not worth listing
        names.discard("LPAR")
    if not names:
        return ""
    parts = []
    if len(names & _EXPR_START) >= 4:
        parts.append("an expression")
        names -= _EXPR_START
    for n in _PREFERRED:
        if n in names:
            parts.append(_NAMES[n])
    if not parts:
        parts = sorted(_NAMES.get(n, n.lower()) for n in names)[:4]
    parts = parts[:4]
    return ": expected " + (", ".join(parts[:-1]) + " or " + parts[-1] if len(parts) > 1
                            else parts[0])


def _describe(tok: Token) -> str:
    if tok.type == "$END":
        return "end of input"
    kind = {"IDENT": "identifier", "INT": "integer", "STRING": "string", "PROBE_DESC": "",
            "BASE_TYPE": "type name"}.get(tok.type, "")
    if tok.type == "PROBE_DESC" and re.fullmatch(r"[A-Za-z_]\w*", str(tok)):
        kind = "identifier"
    return f"{kind} '{tok}'".strip()


def _token_span(tok: Token) -> Span:
    end_line = getattr(tok, "end_line", None) or tok.line
    end_col = getattr(tok, "end_column", None) or (tok.column + max(1, len(str(tok))))
    return Span(tok.line, tok.column, end_line, end_col)


def _end_span(source: str) -> Span:
    lines = source.split("\n")
    line = len(lines)
    while line > 1 and not lines[line - 1].strip():
        line -= 1
    col = len(lines[line - 1]) + 1
    return Span(line, col, line, col + 1)


def _unexpected_token(source: str, err: UnexpectedToken) -> DSyntaxError:
    tok = err.token
    if tok.type == "$END":
        return DSyntaxError("unexpected end of input" + _expected(err.expected, source, len(source))
                            + _unclosed(source), _end_span(source))
    msg = f"unexpected {_describe(tok)}" + _expected(err.expected, source, tok.start_pos or 0)
    hint = ""
    if tok.type in ("IDENT", "AGG", "SCOPE", "MACRO", "INT") and "SEMICOLON" in (err.expected or ()):
        hint = "statements are separated by ';'"
    return DSyntaxError(msg, _token_span(tok), hint=hint)


def _bad_character(source: str, err: UnexpectedCharacters) -> DSyntaxError:
    ch = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
    span = Span(err.line, err.column, err.line, err.column + 1)
    rest = source[err.pos_in_stream:]
    if ch == '"':
        return DSyntaxError("unterminated string literal", span,
                            hint="a string must close on the line it starts")
    if ch == "'":
        return DSyntaxError("unterminated or empty character literal", span)
    if rest.startswith("/*"):
        return DSyntaxError("unterminated comment", span)
    if ch == "#":
        return DSyntaxError("only '#pragma D ...' lines are supported", span,
                            hint="the C preprocessor (dtrace -C) is not run")
    allowed = _expected(err.allowed, source, err.pos_in_stream)
    if ch == "/" and "PRED_END" in (err.allowed or ()):
        return DSyntaxError("the predicate's closing '/' must be followed by '{'", span)
    shown = repr(ch) if ch.strip() else repr(ch)
    return DSyntaxError(f"invalid character {shown}{allowed if allowed else ''}", span)


def _unclosed(source: str) -> str:
    depth = 0
    opened = None
    for m in re.finditer(r'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|[{}]', source, re.S):
        if m.group() == "{":
            depth += 1
            if depth == 1:
                line = source.count("\n", 0, m.start()) + 1
                col = m.start() - (source.rfind("\n", 0, m.start()) + 1) + 1
                opened = (line, col)
        elif m.group() == "}":
            depth -= 1
    if depth > 0 and opened:
        return f" (missing '}}' to close the '{{' at {opened[0]}:{opened[1]})"
    return ""


# ------------------------------------------------------------------------- literals

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0",
            "a": "\a", "b": "\b", "f": "\f", "v": "\v", "?": "?"}


def unescape(text: str, span: Span) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(text):
            raise DSyntaxError("a string cannot end with a lone backslash", span)
        n = text[i + 1]
        if n in "01234567":
            m = re.match(r"[0-7]{1,3}", text[i + 1:])
            out.append(chr(int(m.group(), 8) & 0xFF))
            i += 1 + len(m.group())
        elif n == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:])
            if not m:
                raise DSyntaxError("\\x must be followed by hex digits", span)
            out.append(chr(int(m.group(), 16)))
            i += 2 + len(m.group())
        elif n in _ESCAPES:
            out.append(_ESCAPES[n])
            i += 2
        else:
            raise DSyntaxError(f"unknown escape sequence '\\{n}'", span,
                               hint="valid escapes: \\n \\t \\r \\\\ \\\" \\' \\0 \\xHH \\ooo")
    return "".join(out)


def _span(meta) -> Span:
    if getattr(meta, "empty", True):
        return ast.NOWHERE
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


# ------------------------------------------------------------------------- tree -> AST


@v_args(meta=True)
class _ToAST(Transformer):
    def start(self, meta, items):
        return ast.Program(list(items), span=_span(meta))

    def pragma(self, meta, children):
        tok = children[0]
        words = str(tok).split()[2:]  # drop '#pragma' and 'D'
        return ast.Pragma(words, span=_token_span(tok))

    def decl(self, meta, children):
        scope = "global"
        if isinstance(children[0], Token) and children[0].type == "SCOPE":
            scope = str(children[0])
            children = children[1:]
        type_name, name = children[0], children[1]
        keys = children[2] if len(children) > 2 else None
        return ast.VarDecl(scope, type_name, str(name), keys, span=_span(meta))

    def type_list(self, meta, children):
        return list(children)

    def type_name(self, meta, children):
        words = children[0]
        stars = sum(1 for c in children[1:] if isinstance(c, Token) and c.type == "STAR")
        return ast.TypeName(tuple(words), stars, span=_span(meta))

    def type_words(self, meta, children):
        return [str(c) for c in children]

    # -- clauses

    def clause(self, meta, children):
        probes = children[0]
        pred = children[1] if len(children) == 3 else None
        body = children[-1]
        return ast.Clause(probes, pred, body, span=_span(meta))

    def clause_default(self, meta, children):
        probes = children[0]
        pred = children[1] if len(children) == 2 else None
        return ast.Clause(probes, pred, [], default_action=True, span=_span(meta))

    def probe_list(self, meta, children):
        return [ast.ProbeSpec(str(t), span=_token_span(t)) for t in children]

    def predicate(self, meta, children):
        return children[0]

    def body(self, meta, children):
        return [c for c in children if c is not None]

    def block(self, meta, children):
        return ast.Block([c for c in children if c is not None], span=_span(meta))

    def empty_stmt(self, meta, children):
        return None

    def simple_stmt(self, meta, children):
        return ast.ExprStmt(children[0], span=_span(meta))

    def if_stmt(self, meta, children):
        cond, then = children[0], children[1]
        other = children[2] if len(children) > 2 else None

        def stmts(s):
            if s is None:
                return []
            return s.body if isinstance(s, ast.Block) else [s]
        return ast.If(cond, stmts(then), stmts(other), span=_span(meta))

    # -- expressions

    def assign(self, meta, children):
        target, op, value = children
        return ast.Assign(str(op), target, value, span=_span(meta))

    def ternary(self, meta, children):
        return ast.Ternary(*children, span=_span(meta))

    def binary(self, meta, children):
        left, op, right = children
        return ast.Binary(str(op), left, right, span=_span(meta))

    def cast(self, meta, children):
        return ast.Cast(children[0], children[1], span=_span(meta))

    def unary(self, meta, children):
        op, operand = children
        return ast.Unary(str(op), operand, span=_span(meta))

    def pre_incdec(self, meta, children):
        op, operand = children
        return ast.Unary(str(op) + "pre", operand, span=_span(meta))

    def post_incdec(self, meta, children):
        operand, op = children
        return ast.Postfix(str(op), operand, span=_span(meta))

    def sizeof_expr(self, meta, children):
        return ast.SizeOf(operand=children[0], span=_span(meta))

    def sizeof_type(self, meta, children):
        return ast.SizeOf(of_type=children[0], span=_span(meta))

    def stringof(self, meta, children):
        return ast.StringOf(children[0], span=_span(meta))

    def index(self, meta, children):
        return ast.Index(children[0], children[1], span=_span(meta))

    def call(self, meta, children):
        callee = children[0]
        args = children[1] if len(children) > 1 else []
        if not isinstance(callee, ast.Ident):
            raise DSyntaxError("only named functions can be called", callee.span)
        return ast.Call(callee.name, args, name_span=callee.span, span=_span(meta))

    def member(self, meta, children):
        base = children[0]
        arrow = len(children) == 3
        name = children[-1]
        return ast.Member(base, str(name), arrow, span=_span(meta))

    def arg_list(self, meta, children):
        return list(children)

    def int_lit(self, meta, children):
        tok = children[0]
        text = str(tok)
        m = re.match(r"(0[xX][0-9a-fA-F]+|[0-9]+)([uUlL]*)$", text)
        digits, suffix = m.group(1), m.group(2).lower()
        if suffix.count("u") > 1 or suffix.replace("u", "") not in ("", "l", "ll"):
            raise DSyntaxError(f"invalid integer suffix '{m.group(2)}'", _token_span(tok))
        if digits.lower().startswith("0x"):
            value = int(digits, 16)
        elif len(digits) > 1 and digits.startswith("0"):
            if re.search(r"[89]", digits):
                raise DSyntaxError(f"invalid octal constant '{text}'", _token_span(tok))
            value = int(digits, 8)
        else:
            value = int(digits)
        if value > UINT64_MAX:
            raise DSyntaxError(f"integer constant '{text}' does not fit in 64 bits",
                               _token_span(tok))
        return ast.IntLit(value, "u" in suffix, "l" in suffix, span=_token_span(tok))

    def str_lit(self, meta, children):
        tok = children[0]
        return ast.StrLit(unescape(str(tok)[1:-1], _token_span(tok)), span=_token_span(tok))

    def char_lit(self, meta, children):
        tok = children[0]
        text = unescape(str(tok)[1:-1], _token_span(tok))
        if len(text) != 1:
            raise DSyntaxError("a character constant must hold exactly one character",
                               _token_span(tok))
        return ast.CharLit(ord(text), span=_token_span(tok))

    def ident(self, meta, children):
        return ast.Ident(str(children[0]), span=_token_span(children[0]))

    def agg(self, meta, children):
        return ast.AggRef(str(children[0])[1:], span=_token_span(children[0]))

    def macro(self, meta, children):
        text = str(children[0])
        quoted = text.startswith("$$")
        return ast.MacroVar(text[2:] if quoted else text[1:], quoted,
                            span=_token_span(children[0]))

    def scoped(self, meta, children):
        scope, _arrow, name = children
        return ast.ScopedVar(str(scope), str(name), span=_span(meta))
