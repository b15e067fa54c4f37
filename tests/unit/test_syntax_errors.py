"""Malformed D: each program gives one DSyntaxError at an exact line:column, saying in plain
words what was found and what was expected."""

from __future__ import annotations

import pytest

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang.parser import parse
from tests.unit.located import assert_located

CASES = [
    # (program, "line:col", substring of the message)
    # -- statements
    ("BEGIN { x = 1 y = 2; }", "1:15",
     "unexpected identifier 'y': expected ';' or '}' after a statement"),
    ("BEGIN\n{\n  trace(1)\n  trace(2);\n}", "4:3", "identifier 'trace': expected ';' or '}'"),
    ("BEGIN { x = ; }", "1:13", "unexpected ';': expected an expression"),
    ("BEGIN { trace(1 +); }", "1:18", "unexpected ')': expected an expression"),
    ("BEGIN { = 1; }", "1:9", "unexpected '=': expected a statement or '}'"),
    ("BEGIN { if x { } }", "1:12", "unexpected identifier 'x': expected '('"),
    ("BEGIN { if (x) y = 1 }", "1:22", "unexpected '}': expected ';'"),
    ("BEGIN { a.b(1); }", "1:9", "only a named function can be called"),
    # -- brackets
    ("BEGIN { x = 1;", "1:15", "unexpected end of input: missing '}' to close the '{' at 1:7"),
    ('BEGIN { printf("x"', "1:19",
     "missing ')' to close the '(' at 1:15; missing '}' to close the '{' at 1:7"),
    ("BEGIN { trace((1 + 2); }", "1:22", "unexpected ';': expected ')'"),
    ("BEGIN { trace(1)); }", "1:17", "unexpected ')'"),
    ("BEGIN { trace(1); } }", "1:21", "unexpected '}' outside a clause"),
    ("syscall::read:entry { @a[probefunc = count(); }", "1:45", "expected ']' or ','"),
    ("syscall::read:entry { @a[", "1:26", "missing ']' to close the '[' at 1:25"),
    ("BEGIN { @a[ }", "1:13", "unexpected '}': expected an expression"),
    # -- clause heads and predicates
    ("syscall::read@:entry { }", "1:14", "invalid character '@' in probe description"),
    ("BEGIN, { }", "1:8", "unexpected '{': expected a probe description"),
    ("BEGIN x = 1;", "1:9", "unexpected '=': expected ',', '/' or '{'"),
    ("BEGIN /pid == 1 { }", "1:17", "unexpected '{': expected '/' closing the predicate"),
    ("BEGIN /pid == 1", "1:16", "missing '/' to close the predicate opened at 1:7"),
    ("BEGIN //{ }", "1:7", "empty predicate"),
    ("BEGIN / / { }", "1:9", "unexpected '/': expected an expression"),
    # -- literals
    ('BEGIN { printf("\\q"); }', "1:16", "unknown escape sequence '\\q'"),
    ('BEGIN { printf("\\x"); }', "1:16", "'\\x' has no hexadecimal digits"),
    ('BEGIN { printf("\\777"); }', "1:16", "'\\777' is out of range"),
    ('BEGIN { printf("abc); }', "1:16", "unterminated string literal"),
    ("BEGIN { x = 'a; }", "1:13", "unterminated character constant"),
    ("BEGIN { trace(''); }", "1:15", "empty character constant"),
    ("BEGIN { trace('ab'); }", "1:15", "is too long"),
    ("BEGIN { trace(18446744073709551616); }", "1:15", "does not fit in 64 bits"),
    ("BEGIN { trace(0x10000000000000000); }", "1:15", "does not fit in 64 bits"),
    ("BEGIN { trace(08); }", "1:15", "invalid octal constant '08'"),
    ("BEGIN { trace(0x); }", "1:15", "invalid hexadecimal constant"),
    ("BEGIN { trace(12abc); }", "1:15", "invalid suffix 'abc' on integer constant"),
    ("BEGIN { trace(1.5); }", "1:15", "floating-point constants are not supported"),
    # -- characters and lines that are not D
    ("BEGIN { x = 1 ` 2; }", "1:15", "invalid character '`'"),
    ("BEGIN { x = 1 # 2; }", "1:15", "invalid character '#'"),
    ("BEGIN { x = 1; /* never closed", "1:16", "unterminated comment"),
    ("#include <stdio.h>\nBEGIN {}", "1:1", "only '#pragma D ...' lines are supported"),
    ("BEGIN {\n#pragma D option quiet\n}", "2:1", "#pragma line must be outside clauses"),
    # -- declarations and reserved words
    ("int x", "1:6", "unexpected end of input: expected ';'"),
    ("self foo;", "1:9", "unexpected ';'"),
    ("BEGIN { while (x) { y; } }", "1:9", "'while' is reserved in D"),
    ("BEGIN { return; }", "1:9", "'return' is reserved in D"),
    ("inline int one = ;", "1:18", "unexpected ';': expected an expression"),
    ("BEGIN { x = xlate<int *>curthread; }", "1:25", "unexpected identifier 'curthread': "
     "expected '('"),
    ("struct s { int a; int; };", "1:22", "unexpected ';'"),
    ("enum e { A, B = };", "1:17", "unexpected '}': expected an expression"),
    ("typedef int;", "1:12", "unexpected ';'"),
]


@pytest.mark.parametrize("source, where, message", CASES, ids=[c[2][:40] for c in CASES])
def test_syntax_error(source, where, message):
    with pytest.raises(DSyntaxError) as info:
        parse(source)
    assert_located(info.value, source, where, message)


@pytest.mark.parametrize("source", [
    "BEGIN /x = 1/ { }",          # '=' in a predicate is an assignment, as in C
    "BEGIN / a / b /{ }",         # division inside a predicate
    "syscall::read:entry",        # no body: the default action
    "",                           # nothing at all
    "/* only a comment */",
])
def test_not_errors(source):
    parse(source)


def test_missing_semicolon_has_a_hint():
    with pytest.raises(DSyntaxError) as info:
        parse("BEGIN { x = 1 y = 2; }")
    assert info.value.hint == "statements are separated by ';'"


def test_the_first_error_in_the_source_is_reported():
    with pytest.raises(DSyntaxError) as info:
        parse('BEGIN { trace(08); trace("\\q"); x = ; }')
    assert "octal" in info.value.message
