"""A parse error in words, with the line and column it is at: what was found, what was
expected there, what is missing at the end, and the usual mistakes named (a reserved word,
a bad character in a probe description, a #pragma inside a clause)."""

from __future__ import annotations

import re

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang.ast import Span
from dtrace_nb.lang.grammar import vocabulary
from dtrace_nb.lang.lexical import RESERVED

PROBE_CHARS = frozenset("-$:_.?*\\[]!0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def line_col(source: str, pos: int) -> tuple[int, int]:
    pos = max(0, min(pos, len(source)))
    line = source.count("\n", 0, pos) + 1
    return line, pos - (source.rfind("\n", 0, pos) + 1) + 1


def offset_span(source: str, start: int, end: int) -> Span:
    line, col = line_col(source, start)
    end_line, end_col = line_col(source, max(end, start + 1))
    if end >= len(source) and end <= start:
        end_line, end_col = line, col + 1
    return Span(line, col, end_line, end_col)


def end_span(source: str) -> Span:
    end = len(source.rstrip())
    line, col = line_col(source, end)
    return Span(line, col, line, col + 1)


def internal_error(source: str, err: BaseException) -> DSyntaxError:
    return DSyntaxError(f"internal parser error ({type(err).__name__}: {err})",
                        end_span(source) if source.strip() else Span(1, 1, 1, 2),
                        hint="this is a bug in dtrace-nb; please report it with the program")


_PUNCT = {
    "LBRACE": "{", "RBRACE": "}", "LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]",
    "SEMI": ";", "COMMA": ",", "DOT": ".", "ARROW": "->", "QMARK": "?", "COLON": ":",
    "LOR": "||", "LXOR": "^^", "LAND": "&&", "BAR": "|", "CARET": "^", "AMP": "&",
    "EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">=", "SHL": "<<",
    "SHR": ">>", "PLUS": "+", "MINUS": "-", "STAR": "*", "SLASH": "/", "PERCENT": "%",
    "BANG": "!", "TILDE": "~", "INC": "++", "DEC": "--", "ASSIGN": "=", "ADD_ASSIGN": "+=",
    "SUB_ASSIGN": "-=", "MUL_ASSIGN": "*=", "DIV_ASSIGN": "/=", "MOD_ASSIGN": "%=",
    "AND_ASSIGN": "&=", "OR_ASSIGN": "|=", "XOR_ASSIGN": "^=", "SHL_ASSIGN": "<<=",
    "SHR_ASSIGN": ">>=",
}
_NAMED = {
    "PRED_END": "'/' closing the predicate", "PROBE_DESC": "a probe description",
    "IDENT": "an identifier", "NUMBER": "a number", "STRING": "a string", "CHAR":
    "a character constant", "AGG": "an aggregation", "MACRO": "a macro variable",
    "PRAGMA": "a #pragma line", "$END": "end of input", "KSYM": "a kernel symbol",
    "TYPEDEF_NAME": "a type name",
}
# Tokens that can follow a complete operand: not worth listing when something else fits.
_AFTER_OPERAND = set(_PUNCT) - {"LBRACE", "RBRACE", "RPAR", "RSQB", "SEMI", "COMMA", "COLON",
                                "BANG", "TILDE"}
_BINARY_ONLY = {"PERCENT", "EQ", "NE", "LOR", "LAND", "LXOR", "QMARK"}
_EXPR_START = {"NUMBER", "FLOAT", "STRING", "CHAR", "IDENT", "KSYM", "AGG", "MACRO", "LPAR", "PLUS",
               "MINUS", "BANG", "TILDE", "STAR", "AMP", "INC", "DEC"}
_ORDER = ["SEMI", "RBRACE", "RPAR", "RSQB", "COLON", "COMMA", "PRED_END", "SLASH", "LBRACE",
          "an expression", "a type name", "IDENT", "STAR", "PROBE_DESC", "a declaration"]
_CLOSERS = {"LBRACE": "}", "LPAR": ")", "LSQB": "]"}


def _quote(text: str, limit: int = 24) -> str:
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return "'" + text.replace("\n", "\\n") + "'"


def _char_name(ch: str) -> str:
    if ch.isprintable() and ch != "'":
        return f"'{ch}'"
    return f"'\\x{ord(ch):02x}'" if ord(ch) < 0x100 else f"U+{ord(ch):04X}"


_C_TOKEN = re.compile(r"[A-Za-z_]\w*|[0-9]\w*|@\w*|\$\$?\w+|"
                      + "|".join(re.escape(p) for p in sorted(_PUNCT.values(), key=len,
                                                               reverse=True)))


def _found(source: str, tok: Token, accepted: set[str]) -> tuple[str, int, int]:
    """(description, start, end) of what the parser tripped over."""
    start = tok.start_pos if tok.start_pos is not None else len(source)
    text = str(tok)
    if tok.type == "PROBE_DESC" and "PROBE_DESC" not in accepted:
        # The global lexer reads most characters as a probe description; outside a clause
        # head, describe the C token that is really there.
        m = _C_TOKEN.match(source, start)
        text = m.group() if m else source[start]
    # A keyword matched as the prefix of a longer word (`integer`): report the word.
    while start > 0 and (source[start - 1].isalnum() or source[start - 1] == "_") \
            and (text[:1].isalnum() or text[:1] == "_"):
        start -= 1
        text = source[start] + text
    if text[:1].isalpha() or text[:1] == "_":
        m = re.match(r"\w+", source[start:])
        text = m.group() if m else text
        kind = "keyword" if text in vocabulary()[0].values() else "identifier"
    elif text[:1].isdigit():
        kind = "number"
    elif text[:1] == '"':
        kind = "string"
    elif text[:1] == "'":
        kind = "character constant"
    elif text[:1] == "@":
        kind = "aggregation"
    elif re.match(r"\$\$?\w", text):
        kind = "macro variable"
    elif text.startswith("#"):
        return "'#pragma' line", start, start + len(text)
    else:
        kind = ""
    return f"{kind} {_quote(text)}".strip(), start, start + len(text)


def _expected(names: set[str], in_clause: bool = False) -> str:
    """The few expected things worth naming, in plain words."""
    keywords, types, decl_start = vocabulary()
    names = set(names) - {"EMPTY_PRED", "FLOAT"}
    if names & _BINARY_ONLY:  # after a complete operand any operator may follow
        names -= _AFTER_OPERAND
    if (in_clause or names & _BINARY_ONLY) and not names & {"RPAR", "RSQB"}:
        names.discard("COMMA")  # D's comma operator: not what anyone is missing
    if "PROBE_DESC" in names:
        names -= {"PRAGMA", "$END"}
        if names & {"COMMA", "LBRACE", "SLASH"}:  # right after a probe description
            names -= decl_start | {"PROBE_DESC"}
    groups = []
    expr_start = _EXPR_START | {k for k, v in keywords.items()
                                if v in ("sizeof", "stringof", "self", "this", "offsetof",
                                         "xlate")}
    if len(names & expr_start) >= 4:
        statement = {k for k, v in keywords.items() if v == "if"} | {"SEMI", "LBRACE"}
        if statement <= names:  # where a statement may start
            groups.append("a statement")
            names -= statement
        groups.append("an expression")
        names -= expr_start
    if "PROBE_DESC" in names and names & decl_start:
        groups.append("a declaration")
        names -= decl_start
    elif len(names & types) >= 3:
        groups.append("a type name")
        names -= decl_start
    words: list[str] = []
    if "a statement" in groups:  # "a statement or '}'", not "an expression or ..."
        groups.remove("an expression")
        words.append("a statement")
    for key in _ORDER:
        if key in groups:
            words.append(key)
        elif key in names:
            words.append(_describe_terminal(key))
            names.discard(key)
    words += sorted(_describe_terminal(n) for n in names if n != "$END")
    if not words and "$END" in names:
        words = ["end of input"]
    words = words[:4]
    if not words:
        return ""
    text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    if words == ["';'", "'}'"]:
        text += " after a statement"
    return text


def _describe_terminal(name: str) -> str:
    if name in _PUNCT:
        return f"'{_PUNCT[name]}'"
    if name in _NAMED:
        return _NAMED[name]
    word = vocabulary()[0].get(name)
    return f"'{word}'" if word else name.lower()


def _accepted(err: UnexpectedInput) -> set[str]:
    ip = getattr(err, "interactive_parser", None)
    if ip is not None:
        try:
            return set(ip.accepts())
        except Exception:  # noqa: BLE001 - then the parser table's own list will do
            return set(getattr(err, "expected", None) or ())
    return set(getattr(err, "expected", None) or getattr(err, "allowed", None) or ())


def _stack(err: UnexpectedInput) -> list:
    ip = getattr(err, "interactive_parser", None)
    return list(ip.parser_state.value_stack) if ip is not None else []


def _in_clause(err: UnexpectedInput) -> bool:
    return any(isinstance(v, Token) and v.type == "LBRACE" or
               isinstance(v, Tree) and v.data == "probe_list" for v in _stack(err))


def syntax_error(source: str, err: UnexpectedInput) -> DSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
    elif isinstance(err, UnexpectedToken) and err.token.type != "$END":
        pos = err.token.start_pos or 0
    else:
        return _end_of_input(source, err)
    code = _code_only(source)
    return (_lexical(source, pos, code) or _reserved_word(source, pos, code)
            or _in_probe_description(source, pos, err)
            or (_bad_character(source, pos) if isinstance(err, UnexpectedCharacters)
                else _unexpected_token(source, err)))


def _lexical(source: str, pos: int, code: str) -> DSyntaxError | None:
    """Problems visible from the characters at pos alone."""
    here = source[pos:pos + 2]
    if here == "/*":
        return DSyntaxError("unterminated comment: '/*' has no matching '*/'",
                            offset_span(source, pos, pos + 2))
    if here[:1] == '"' and not re.match(r'"(?:[^"\\\n]|\\.)*"', source[pos:]):
        return DSyntaxError("unterminated string literal", offset_span(source, pos, pos + 1),
                            hint="a string must end with '\"' on the line where it starts")
    if here[:1] == "'" and not re.match(r"'(?:[^'\\\n]|\\.)*'", source[pos:]):
        return DSyntaxError("unterminated character constant",
                            offset_span(source, pos, pos + 1))
    if here[:1] == "#" and not source[source.rfind("\n", 0, pos) + 1:pos].strip():
        line = source[pos:].split("\n", 1)[0]
        span = offset_span(source, pos, pos + len(line.rstrip()))
        if re.match(r"#[ \t]*pragma[ \t]+D(?![^ \t\r\n])", line):
            return DSyntaxError("a #pragma line must be outside clauses", span)
        word = re.match(r"#[ \t]*\w*", line).group()
        return DSyntaxError(f"only '#pragma D ...' lines are supported, not '{word}'", span,
                            hint="dtrace-nb does not run the C preprocessor (dtrace -C)")
    return None


def _code_only(source: str) -> str:
    """source with comments, strings, character constants and pragma lines blanked out,
    offsets unchanged: for scanning code without tripping over text."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group())
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*',
                  blank, source, flags=re.DOTALL)


_RESERVED_RE = re.compile(r"(?<![-$:\w.?*\\\[\]!@])(" + "|".join(RESERVED)
                          + r")(?![-$:\w.?*\\\[\]!])")


def _reserved_word(source: str, pos: int, code: str) -> DSyntaxError | None:
    """A reserved word at or before the error is almost surely its cause (`while (x) {`,
    `inline int x = 1;`): say so instead of describing the confused parse."""
    for m in _RESERVED_RE.finditer(code, 0, pos + 1):
        if m.start() > pos:
            break
        before = code[:m.start()].rstrip()
        if before.endswith(("->", ".")):
            continue  # a member name
        return DSyntaxError(RESERVED[m.group()], offset_span(source, m.start(), m.end()))
    return None


def _in_probe_description(source: str, pos: int, err) -> DSyntaxError | None:
    """A bad character inside a probe description (probe characters on both sides)."""
    if not 0 < pos < len(source) - 1 or source[pos - 1] not in PROBE_CHARS \
            or source[pos + 1] not in PROBE_CHARS:
        return None
    accepted = _accepted(err)
    if not {"PROBE_DESC", "LBRACE"} <= accepted:
        return None
    start = pos
    while start > 0 and source[start - 1] in PROBE_CHARS:
        start -= 1
    return DSyntaxError(f"invalid character {_char_name(source[pos])} in probe description "
                        f"{_quote(source[start:pos], 40)}", offset_span(source, pos, pos + 1),
                        hint="a probe description is provider:module:function:name, made of "
                             "letters, digits and - _ . : $ * ? ! [ ] \\")


def _bad_character(source: str, pos: int) -> DSyntaxError:
    ch = source[pos] if pos < len(source) else ""
    hint = ""
    if ch == "`":
        hint = "D's `symbol syntax for kernel variables is not supported"
    return DSyntaxError(f"invalid character {_char_name(ch)}", offset_span(source, pos, pos + 1),
                        hint=hint)


def _unexpected_token(source: str, err: UnexpectedToken) -> DSyntaxError:
    accepted = _accepted(err)
    found, start, end = _found(source, err.token, accepted)
    span = offset_span(source, start, end)
    if err.token.type == "RBRACE" and "PROBE_DESC" in accepted:
        return DSyntaxError("unexpected '}' outside a clause", span,
                            hint="this '}' has no matching '{'")
    expected = _expected(accepted, _in_clause(err))
    message = f"unexpected {found}" + (f": expected {expected}" if expected else "")
    hint = ""
    if "SEMI" in accepted and _in_clause(err) and found.split(" ")[0] in (
            "identifier", "number", "string", "aggregation", "macro", "keyword"):
        hint = "statements are separated by ';'"
    return DSyntaxError(message, span, hint=hint)


def _end_of_input(source: str, err: UnexpectedInput) -> DSyntaxError:
    tok = getattr(err, "token", None)
    if tok is not None and tok.end_line:
        span = Span(tok.end_line, tok.end_column, tok.end_line, tok.end_column + 1)
    else:
        span = end_span(source)
    accepted = _accepted(err)
    missing = []
    stack = _stack(err)
    for i in range(len(stack) - 1, -1, -1):
        item = stack[i]
        if not isinstance(item, Token):
            continue
        where = f"{item.line}:{item.column}"
        if item.type in _CLOSERS:
            closer = _CLOSERS[item.type]
            missing.append((closer, f"missing '{closer}' to close the '{item}' at {where}"))
        elif item.type == "SLASH" and i > 0 and isinstance(stack[i - 1], Tree) \
                and stack[i - 1].data == "probe_list":
            missing.append(("/", f"missing '/' to close the predicate opened at {where}"))
    parts = [text for _, text in missing[:3]]
    closer_terminal = {"/": "PRED_END", "}": "RBRACE", ")": "RPAR", "]": "RSQB"}
    if not missing or closer_terminal[missing[0][0]] not in accepted:
        expected = _expected(accepted, _in_clause(err))
        if expected:
            parts.insert(0, f"expected {expected}")
    return DSyntaxError("unexpected end of input" + (": " + "; ".join(parts) if parts else ""),
                        span)
