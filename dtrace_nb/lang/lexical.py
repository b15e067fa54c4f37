"""What is checked as the program is lexed: literals' values (integers, strings,
character constants), constructs D refuses, and the reserved words dtrace-nb does not
implement. A lexer callback raises a located DSyntaxError, so errors come in source order."""

from __future__ import annotations

import re

from lark import Token

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang.ast import Span

UINT64_MAX = (1 << 64) - 1


_INT_SUFFIXES = {"": (False, False), "u": (True, False), "l": (False, True),
                 "ll": (False, True), "ul": (True, True), "lu": (True, True),
                 "ull": (True, True), "llu": (True, True)}


def int_literal(text: str) -> tuple[int, bool, bool]:
    """(value, unsigned, long) of a D integer constant; ValueError says what is wrong."""
    m = re.fullmatch(r"(0[xX][0-9a-fA-F]*|[0-9]+)(.*)", text)
    if not m:
        raise ValueError(f"invalid integer constant '{text}'")
    digits, suffix = m.groups()
    if suffix.lower() not in _INT_SUFFIXES:
        if re.fullmatch(r"[eE][-+]?[0-9]*", suffix) and not digits[:2].lower() == "0x":
            raise ValueError("floating-point constants are not supported in D")
        raise ValueError(f"invalid suffix '{suffix}' on integer constant '{text}'")
    unsigned, long_ = _INT_SUFFIXES[suffix.lower()]
    if digits[:2].lower() == "0x":
        if len(digits) == 2:
            raise ValueError(f"invalid hexadecimal constant '{text}': no digits after 0x")
        value = int(digits, 16)
    elif len(digits) > 1 and digits[0] == "0":
        if re.search(r"[89]", digits):
            raise ValueError(f"invalid octal constant '{text}': 8 and 9 are not octal digits")
        value = int(digits, 8)
    else:
        value = int(digits)
    if value > UINT64_MAX:
        raise ValueError(f"integer constant '{text}' does not fit in 64 bits")
    return value, unsigned, long_


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "?": "?"}


def unescape(body: str) -> str:
    """The characters a string or character literal's body (quotes removed) stands for."""
    out, i = [], 0
    while i < len(body):
        j = body.find("\\", i)
        if j < 0:
            out.append(body[i:])
            break
        out.append(body[i:j])
        if j + 1 >= len(body):
            raise ValueError("a literal cannot end with a lone backslash")
        c = body[j + 1]
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
            i = j + 2
            continue
        if c in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[j + 1:]).group()
            base, start = 8, j + 1
        elif c == "x":
            m = re.match(r"[0-9a-fA-F]+", body[j + 2:])
            if not m:
                raise ValueError("escape sequence '\\x' has no hexadecimal digits")
            digits, base, start = m.group(), 16, j + 2
        else:
            raise ValueError(f"unknown escape sequence '\\{c}'")
        value = int(digits, base)
        if value > 0xFF:
            raise ValueError(f"escape sequence '{body[j:start + len(digits)]}' is out of range")
        out.append(chr(value))
        i = start + len(digits)
    return "".join(out)


def char_value(text: str) -> int:
    chars = unescape(text[1:-1])
    if not chars:
        raise ValueError("empty character constant: a character constant holds exactly one "
                         "character")
    if len(chars) > 1:
        raise ValueError(f"character constant {text} is too long: a character constant holds "
                         "exactly one character")
    if ord(chars) > 0xFF:
        raise ValueError(f"character {text} does not fit in a char")
    return ord(chars)


def checked(check):
    """A lexer callback: run `check` on the token's text, turning ValueError into a located
    DSyntaxError at the token, so literal errors come in source order."""
    def callback(tok: Token) -> Token:
        try:
            check(str(tok))
        except ValueError as err:
            raise DSyntaxError(str(err), token_span(tok)) from None
        return tok
    return callback


def no_float(text: str) -> None:
    raise ValueError("floating-point constants are not supported in D")


def empty_predicate(text: str) -> None:
    raise ValueError("empty predicate '//': write a condition between the slashes, or leave "
                     "the predicate out")


LEXER_CHECKS = {
    "NUMBER": checked(int_literal),
    "FLOAT": checked(no_float),
    "STRING": checked(lambda t: unescape(t[1:-1])),
    "CHAR": checked(char_value),
    "EMPTY_PRED": checked(empty_predicate),
}

# D's reserved words that start constructs dtrace-nb does not implement (the AST has no
# node for them). They are reported by name rather than as a confusing parse error.
RESERVED = {
    "provider": "provider definitions (USDT) are not supported",
    "probe": "'probe' is reserved in D",
    "import": "'import' is reserved in D",
    **{w: f"'{w}' is reserved in D: D has no loops, jumps or switch"
       for w in ("for", "while", "do", "break", "continue", "goto", "switch", "case",
                 "default", "return")},
    **{w: f"'{w}' is reserved in D and not supported"
       for w in ("auto", "static", "register", "restrict", "counter", "userland")},
}


def token_span(tok: Token) -> Span:
    line = tok.line or 1
    col = tok.column or 1
    return Span(line, col, tok.end_line or line, tok.end_column or col + max(1, len(tok)))


def refuse_reserved(tok: Token) -> None:
    if str(tok) in RESERVED:
        raise DSyntaxError(RESERVED[str(tok)], token_span(tok))
