"""The D parser: programs from the DTrace Guide and their trees, spans, and the printer.

Trees are compared by shape (node types and fields, spans left out), written with the AST
constructors so each test reads as "this D means this tree".
"""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang.ast import (
    AggRef,
    Assign,
    Binary,
    Block,
    Call,
    Cast,
    CharLit,
    Clause,
    ExprStmt,
    Ident,
    If,
    Index,
    IntLit,
    MacroVar,
    Member,
    Node,
    Postfix,
    Pragma,
    ProbeSpec,
    Program,
    ScopedVar,
    SizeOf,
    Span,
    StringOf,
    StrLit,
    Ternary,
    TypeName,
    Unary,
    VarDecl,
    walk,
)
from dtrace_nb.lang.parser import parse
from dtrace_nb.lang.printer import to_source


def shape(x):
    """A node as nested tuples of its fields, without spans, checker annotations or source."""
    if isinstance(x, Node):
        return (type(x).__name__,) + tuple(
            (f.name, shape(getattr(x, f.name))) for f in fields(x)
            if f.name not in ("span", "ty", "name_span", "source"))
    if isinstance(x, (list, tuple)):
        return tuple(shape(i) for i in x)
    return x


def body_of(source: str) -> list:
    (clause,) = parse(source).clauses
    return clause.body


def expr_of(source: str):
    """The expression of `BEGIN { <source>; }`."""
    (stmt,) = body_of(f"BEGIN {{ {source}; }}")
    return stmt.expr


def same(a, b) -> bool:
    return shape(a) == shape(b)


# ---------------------------------------------------------------------------- Guide programs


def test_count_system_calls_by_process():
    (clause,) = parse("syscall:::entry\n{\n    @[execname] = count();\n}\n").clauses
    assert [p.text for p in clause.probes] == ["syscall:::entry"]
    assert clause.predicate is None and not clause.default_action
    assert same(clause.body, [ExprStmt(Assign("=", Index(AggRef(""), [Ident("execname")]),
                                              Call("count", [])))])


def test_read_latency_with_self_and_quantize():
    program = parse("""
syscall::read:entry
{
    self->ts = timestamp;
}

syscall::read:return
/self->ts/
{
    @lat[execname] = quantize(timestamp - self->ts);
    self->ts = 0;
}
""")
    entry, ret = program.clauses
    assert same(entry.body, [ExprStmt(Assign("=", ScopedVar("self", "ts"), Ident("timestamp")))])
    assert same(ret.predicate, ScopedVar("self", "ts"))
    assert same(ret.body, [
        ExprStmt(Assign("=", Index(AggRef("lat"), [Ident("execname")]),
                        Call("quantize", [Binary("-", Ident("timestamp"),
                                                 ScopedVar("self", "ts"))]))),
        ExprStmt(Assign("=", ScopedVar("self", "ts"), IntLit(0))),
    ])


def test_printf_with_formats_and_escapes():
    (stmt,) = body_of(r'''BEGIN { printf("%-16s %5d\t\"%s\"\\ \x41\101\0\n", execname, pid,
                                 "a"); }''')
    assert same(stmt.expr, Call("printf", [StrLit('%-16s %5d\t"%s"\\ AA\0\n'), Ident("execname"),
                                           Ident("pid"), StrLit("a")]))


def test_probe_func_and_execname_keys():
    assert same(expr_of("@[probefunc, execname] = count()"),
                Assign("=", Index(AggRef(""), [Ident("probefunc"), Ident("execname")]),
                       Call("count", [])))
    assert same(expr_of("@a = count()"), Assign("=", AggRef("a"), Call("count", [])))


def test_target_and_macro_arguments():
    (clause,) = parse("pid$target:libc.so.6:malloc:entry /pid == $target && $1 > $$2/ "
                      "{ @[ustack()] = sum(arg0); }").clauses
    assert clause.probes[0].text == "pid$target:libc.so.6:malloc:entry"
    assert same(clause.predicate, Binary("&&", Binary("==", Ident("pid"), MacroVar("target")),
                                         Binary(">", MacroVar("1"), MacroVar("2", quoted=True))))


@pytest.mark.parametrize("text", [
    "syscall::read:entry", "BEGIN", "END", "profile:::tick-1s", "tick-10ms",
    "pid$target:libc.so.6:malloc:entry", "syscall::*read*:entry", "sched:::on-cpu",
    "fbt::vfs_[rw]rite:entry", "syscall::?etpid:return", "proc:::exec-success",
])
def test_probe_descriptions(text):
    (clause,) = parse(text + " { }").clauses
    assert [p.text for p in clause.probes] == [text]
    (clause,) = parse(text + "/pid == 1/{}").clauses  # no blanks around the predicate
    assert same(clause.predicate, Binary("==", Ident("pid"), IntLit(1)))


def test_several_probes_per_clause():
    (clause,) = parse("syscall::read:entry,\nsyscall::write:entry, BEGIN { trace(1); }").clauses
    assert [p.text for p in clause.probes] == ["syscall::read:entry", "syscall::write:entry",
                                               "BEGIN"]


def test_division_inside_a_predicate():
    (clause,) = parse("BEGIN / a / b /{ }").clauses
    assert same(clause.predicate, Binary("/", Ident("a"), Ident("b")))
    (clause,) = parse("BEGIN /a/b/c/ /* comment */ // another\n { }").clauses
    assert same(clause.predicate, Binary("/", Binary("/", Ident("a"), Ident("b")), Ident("c")))
    assert same(expr_of("x = a / b / c"),
                Assign("=", Ident("x"), Binary("/", Binary("/", Ident("a"), Ident("b")),
                                                Ident("c"))))


def test_assignment_in_a_predicate_parses():
    (clause,) = parse("BEGIN /x = 1/ { }").clauses
    assert same(clause.predicate, Assign("=", Ident("x"), IntLit(1)))


def test_clauses_without_body_take_the_default_action():
    program = parse("BEGIN\nsyscall::read:entry /pid == 1/\nsyscall::write:entry /x/\n"
                    "END { exit(0); }")
    begin, read, write, end = program.clauses
    assert begin.default_action and begin.body == [] and begin.predicate is None
    assert read.default_action and same(read.predicate, Binary("==", Ident("pid"), IntLit(1)))
    assert write.default_action and same(write.predicate, Ident("x"))
    assert not end.default_action and len(end.body) == 1
    (clause,) = parse("syscall::read:entry /pid == 1/").clauses  # dtrace -n '...'
    assert clause.default_action


def test_pragmas_and_shebang():
    program = parse("#!/usr/sbin/dtrace -s\n#pragma D option quiet\n"
                    "#pragma D option bufsize=4m /* big */\n#pragma D depends_on module x\n"
                    "BEGIN {}")
    assert same(program.pragmas, [Pragma(["option", "quiet"]), Pragma(["option", "bufsize=4m"]),
                                  Pragma(["depends_on", "module", "x"])])
    assert program.pragmas[1].span == Span(3, 1, 3, 38)


def test_declarations():
    program = parse("int x; self int y; this string s;\nuint64_t a[int, string], *p;\n"
                    "self struct task_struct *t; unsigned long long big; self pid_t q[uint32_t];")
    assert same(program.decls, [
        VarDecl("global", TypeName(("int",)), "x"),
        VarDecl("self", TypeName(("int",)), "y"),
        VarDecl("this", TypeName(("string",)), "s"),
        VarDecl("global", TypeName(("uint64_t",)), "a",
                [TypeName(("int",)), TypeName(("string",))]),
        VarDecl("global", TypeName(("uint64_t",), 1), "p"),
        VarDecl("self", TypeName(("struct", "task_struct"), 1), "t"),
        VarDecl("global", TypeName(("unsigned", "long", "long")), "big"),
        VarDecl("self", TypeName(("pid_t",)), "q", [TypeName(("uint32_t",))]),
    ])


def test_a_declaration_word_can_still_start_a_probe_description():
    program = parse("int x;\nint:foo:bar:baz { }")
    assert len(program.decls) == 1 and program.clauses[0].probes[0].text == "int:foo:bar:baz"


def test_casts_sizeof_stringof():
    assert same(expr_of("(unsigned long)arg0 + (char *)p"),
                Binary("+", Cast(TypeName(("unsigned", "long")), Ident("arg0")),
                       Cast(TypeName(("char",), 1), Ident("p"))))
    assert same(expr_of("(struct foo **)-x"),
                Cast(TypeName(("struct", "foo"), 2), Unary("-", Ident("x"))))
    assert same(expr_of("sizeof(int) + sizeof x + sizeof (x)"),
                Binary("+", Binary("+", SizeOf(of_type=TypeName(("int",))),
                                   SizeOf(operand=Ident("x"))), SizeOf(operand=Ident("x"))))
    assert same(expr_of("stringof(arg0)"), StringOf(Ident("arg0")))


def test_precedence_and_associativity():
    a, b, c, d = (Ident(n) for n in "abcd")
    assert same(expr_of("a + b * c"), Binary("+", a, Binary("*", b, c)))
    assert same(expr_of("a - b - c"), Binary("-", Binary("-", a, b), c))
    assert same(expr_of("a || b ^^ c && d"),
                Binary("||", a, Binary("^^", b, Binary("&&", c, d))))
    assert same(expr_of("a | b ^ c & d"), Binary("|", a, Binary("^", b, Binary("&", c, d))))
    assert same(expr_of("a == b < c << d"),
                Binary("==", a, Binary("<", b, Binary("<<", c, d))))
    assert same(expr_of("a = b += c"), Assign("=", a, Assign("+=", b, c)))
    assert same(expr_of("a ? b : c ? d : a"), Ternary(a, b, Ternary(c, d, a)))
    assert same(expr_of("a = b ? c : d"), Assign("=", a, Ternary(b, c, d)))
    assert same(expr_of("a, b = c"), Binary(",", a, Assign("=", b, c)))


def test_unary_and_postfix_operators():
    x = Ident("x")
    assert same(expr_of("-x + !x + ~x + *x + &x"),
                Binary("+", Binary("+", Binary("+", Binary("+", Unary("-", x), Unary("!", x)),
                                               Unary("~", x)), Unary("*", x)), Unary("&", x)))
    assert same(expr_of("++x"), Unary("++pre", x))
    assert same(expr_of("--x"), Unary("--pre", x))
    assert same(expr_of("x++"), Postfix("++", x))
    assert same(expr_of("- -x"), Unary("-", Unary("-", x)))
    assert same(expr_of("a.b->c[1, 2]"),
                Index(Member(Member(Ident("a"), "b"), "c", arrow=True), [IntLit(1), IntLit(2)]))
    assert same(expr_of("args[0]->pr_fname"),
                Member(Index(Ident("args"), [IntLit(0)]), "pr_fname", arrow=True))
    assert same(expr_of("this->x->sizeof"),  # a member name may be any word
                Member(ScopedVar("this", "x"), "sizeof", arrow=True))


@pytest.mark.parametrize("text, value, unsigned, long_", [
    ("0", 0, False, False), ("42", 42, False, False), ("0x1F", 31, False, False),
    ("017", 15, False, False), ("10u", 10, True, False), ("10UL", 10, True, True),
    ("10ll", 10, False, True), ("7LLU", 7, True, True),
    ("18446744073709551615", 2 ** 64 - 1, False, False), ("0xffffffffffffffff", 2 ** 64 - 1,
                                                          False, False),
])
def test_integer_literals(text, value, unsigned, long_):
    assert same(expr_of(text), IntLit(value, unsigned, long_))


@pytest.mark.parametrize("text, value", [
    ("'a'", 97), (r"'\n'", 10), (r"'\0'", 0), (r"'\x41'", 65), (r"'\''", 39), (r"'\\'", 92),
    (r"'\101'", 65), ('\'"\'', 34),
])
def test_character_literals(text, value):
    assert same(expr_of(text), CharLit(value))


def test_if_else_and_blocks():
    (stmt, block) = body_of("BEGIN { if (x) trace(1); else if (y) { trace(2); } else ; { z = 1 } }")
    one, two = (ExprStmt(Call("trace", [IntLit(n)])) for n in (1, 2))
    assert same(stmt, If(Ident("x"), [one], [If(Ident("y"), [two], [])]))
    assert same(block, Block([ExprStmt(Assign("=", Ident("z"), IntLit(1)))]))


def test_statement_separators():
    assert len(body_of("BEGIN { ;; a; ; b;; c }")) == 3
    assert len(body_of("BEGIN { a; b; }")) == 2
    assert body_of("BEGIN { }") == [] and body_of("BEGIN {;}") == []


def test_comments_are_ignored():
    program = parse("/* head */ BEGIN // tail\n{ /* in\n body */ x = 1; // done\n}")
    assert len(program.clauses[0].body) == 1


# ---------------------------------------------------------------------------- spans


def test_spans():
    source = "int x;\nsyscall::read:entry /(a + b) * c > 1/ { @[probefunc] = count(); }\n"
    program = parse(source)
    decl, clause = program.items
    assert decl.span == Span(1, 1, 1, 6)
    assert clause.span == Span(2, 1, 2, 66)
    assert clause.probes[0].span == Span(2, 1, 2, 20)
    pred = clause.predicate
    assert pred.span == Span(2, 22, 2, 37)            # the whole comparison
    assert pred.left.span == Span(2, 22, 2, 33)       # (a + b) * c, parentheses included
    assert pred.left.left.span == Span(2, 23, 2, 28)  # a + b
    (stmt,) = clause.body
    assert stmt.span == Span(2, 41, 2, 64)            # the ';' included
    call = stmt.expr.value
    assert call.span == Span(2, 56, 2, 63) and call.name_span == Span(2, 56, 2, 61)
    for node in walk(program):
        s = node.span
        assert s.line >= 1 and (s.end_line, s.end_col) > (s.line, s.col), node


def test_spans_point_into_the_source():
    source = 'BEGIN\n{\n    printf("%d\\n", x + 1);\n}\n'
    lines = source.splitlines()
    for node in walk(parse(source)):
        s = node.span
        if isinstance(node, (Program, Clause)) or s.line != s.end_line:
            continue
        text = lines[s.line - 1][s.col - 1:s.end_col - 1]
        if isinstance(node, Ident):
            assert text == node.name
        if isinstance(node, Binary):
            assert text == "x + 1"
        if isinstance(node, StrLit):
            assert text == '"%d\\n"'


# ---------------------------------------------------------------------------- printer


GUIDE = r"""#pragma D option quiet
int x; self int y[int, string];

syscall::read:entry, syscall::write:entry
/pid == $target && arg2 / 2 > 10/
{
    self->ts = timestamp;
    @bytes[probefunc, execname] = quantize(arg2);
    printf("%s %d\n\t\"q\" \\ %c\0", execname, (int)arg0, 'a');
    x = a ? b : c ? d : e;
    y = -(-z) - -1 + ~w + !v;
    if (x) { trace(1); } else if (y) trace(2); else { trace(3) }
    z = sizeof(uint64_t) + sizeof x + *p->q[1, 2].r++;
    a = b = c += d <<= 2;
    i = (1, 2);
}

tick-1s { printa(@bytes); trunc(@bytes, 10); exit(0); }
END
"""


def test_printer_round_trip_of_a_program():
    program = parse(GUIDE)
    text = to_source(program)
    assert same(parse(text), program)
    assert to_source(parse(text)) == text


def test_printer_output_reads_like_d():
    assert to_source(expr_of("(a + b) * c")) == "(a + b) * c"
    assert to_source(expr_of("a - (b - c)")) == "a - (b - c)"
    assert to_source(expr_of("- -x")) == "-(-x)"
    assert to_source(expr_of("(int)x")) == "(int)x"
    assert to_source(expr_of('"a\\"b\\n"')) == '"a\\"b\\n"'
    assert to_source(parse("BEGIN /x/ { y = 1; }").clauses[0]) == "BEGIN\n/x/\n{\n    y = 1;\n}"


_NAMES = st.one_of(st.from_regex(r"q[a-z0-9_]{0,5}", fullmatch=True),
                   st.sampled_from(["pid", "execname", "arg0", "timestamp", "probefunc"]))
_TYPES = st.builds(TypeName, st.sampled_from([
    ("int",), ("unsigned", "long", "long"), ("char",), ("uint64_t",), ("string",),
    ("struct", "task_struct"), ("const", "char"), ("pid_t",)]), st.integers(0, 2))
_LEAVES = st.one_of(
    st.builds(IntLit, st.integers(0, 2 ** 64 - 1), st.booleans(), st.booleans()),
    st.builds(StrLit, st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)),
    st.builds(CharLit, st.integers(0, 255)),
    st.builds(Ident, _NAMES),
    st.builds(MacroVar, st.sampled_from(["target", "pid", "1", "2"]), st.booleans()),
    st.builds(AggRef, st.one_of(st.just(""), _NAMES)),
    st.builds(ScopedVar, st.sampled_from(["self", "this"]), _NAMES),
)
_BINARY_OPS = ["||", "^^", "&&", "|", "^", "&", "==", "!=", "<", "<=", ">", ">=", "<<", ">>",
               "+", "-", "*", "/", "%", ","]
_ASSIGN_OPS = ["=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="]


def _compound(sub):
    return st.one_of(
        st.builds(Binary, st.sampled_from(_BINARY_OPS), sub, sub),
        st.builds(Unary, st.sampled_from(["-", "+", "!", "~", "*", "&", "++pre", "--pre"]), sub),
        st.builds(Postfix, st.sampled_from(["++", "--"]), sub),
        st.builds(Ternary, sub, sub, sub),
        st.builds(Assign, st.sampled_from(_ASSIGN_OPS), sub, sub),
        st.builds(Cast, _TYPES, sub),
        st.builds(lambda t: SizeOf(of_type=t), _TYPES),
        st.builds(lambda e: SizeOf(operand=e), sub),
        st.builds(StringOf, sub),
        st.builds(Index, sub, st.lists(sub, min_size=1, max_size=3)),
        st.builds(Call, _NAMES, st.lists(sub, max_size=3)),
        st.builds(Member, sub, _NAMES, st.booleans()),
    )


EXPRESSIONS = st.recursive(_LEAVES, _compound, max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_printed_expressions_parse_back_to_the_same_tree(expr):
    text = to_source(expr)
    assert same(expr_of(text), expr), text
    (clause,) = parse(f"BEGIN /{text}/ {{ }}").clauses  # and as a predicate
    assert same(clause.predicate, expr), text


_STATEMENTS = st.recursive(
    st.builds(ExprStmt, EXPRESSIONS),
    lambda sub: st.one_of(
        st.builds(If, EXPRESSIONS, st.lists(sub, max_size=2), st.lists(sub, max_size=2)),
        st.builds(Block, st.lists(sub, max_size=2))),
    max_leaves=4)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STATEMENTS, max_size=4))
def test_printed_statements_parse_back_to_the_same_tree(body):
    text = to_source(Program([Clause([ProbeSpec("BEGIN")], None, body)]))
    assert same(body_of(text), body), text


# ---------------------------------------------------------------------------- robustness


def test_deep_nesting_is_not_a_recursion_error():
    depth = 5000
    expr = expr_of("(" * depth + "1" + ")" * depth)
    assert same(expr, IntLit(1))
    program = parse("BEGIN { x = " + "-" * 3000 + "1; }")
    assert program.clauses[0].body


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_is_a_located_syntax_error(text):
    try:
        parse(text)
    except DSyntaxError as err:
        assert err.span is not None and err.span.line >= 1 and err.span.col >= 1


_D_PIECES = ["BEGIN", "syscall::read:entry", "{", "}", "/", "(", ")", "[", "]", ";", ",",
             "x", "@a", "self->ts", "=", "==", "+", "-", "*", "?", ":", "1", "0x", "'a'",
             '"s"', '"\\q"', "if", "else", "int", "sizeof", "\n", " ", "/*", "*/", "//", "#",
             "$1", "->", ".", "!", "&&", "`"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_D_PIECES), max_size=25))
def test_d_like_token_soup_never_escapes_as_another_exception(pieces):
    source = " ".join(pieces)
    try:
        parse(source)
    except DSyntaxError as err:
        assert err.span is not None and err.span.line >= 1, source
        assert "internal parser error" not in err.message, (source, err.message)
