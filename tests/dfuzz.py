"""Generators of near-valid and broken D programs for fuzzing the compiler (lexer, parser,
checker, code generator), and the one property every input must have:

    compile_program(...) returns generated C, or raises a DError located at line:col.

`programs()` builds D from a small grammar whose variables keep one type each (so most
programs get through the checker and into code generation), then perhaps mutates it at the
token level (drop, repeat, swap in a stray token). `mutated_sources()` starts from known
programs and mutates characters and bytes (inserted, deleted, duplicated, bit-flipped,
decoded as UTF-8 or Latin-1). Used by tests/unit/test_fuzz.py (short, in `make test`) and
its `long` variant (`make test-long`).
"""

from __future__ import annotations

import random
import re
from typing import Optional

from hypothesis import strategies as st

from dtrace_nb.errors import DError
from dtrace_nb.probes import ProbeCatalog
from dtrace_nb.runtime.compile import compile_program
from dtrace_nb.session import SessionConfig
from tests.fakeprobes import fake_catalog

# -- the property ---------------------------------------------------------------------

_CATALOG: Optional[ProbeCatalog] = None


def catalog() -> ProbeCatalog:
    """The fixed fake catalog (tests/fakeprobes.py): fuzzing reads nothing of the host."""
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = fake_catalog()
    return _CATALOG


def compile_or_located_error(source: str, options: Optional[dict] = None,
                             macro_args: Optional[list[str]] = None) -> str:
    """'ok' or the DError's class name; anything else (a Python exception, an error with no
    line:col, an internal error) fails the caller with the input in the message."""
    cfg = SessionConfig(source, options=dict(options or {}),
                        macro_args=list(macro_args if macro_args is not None else ["1", "two"]))
    try:
        _checked, program = compile_program(cfg, catalog())
    except DError as err:
        text = str(err)
        assert err.span is not None, f"error without line:col for {source!r}: {text}"
        where = f"{err.span.line}:{err.span.col}"
        assert err.span.line >= 1 and err.span.col >= 1, f"bad span {where} for {source!r}"
        assert f": {where}: " in text, f"message does not name {where} for {source!r}: {text}"
        assert not re.search(r"^internal\b|\binternal (parser )?error\b", err.message), \
            f"internal error for {source!r}: {text}"
        assert len(err.message) < 2000, f"a message of {len(err.message)} characters"
        err.render(source)  # the caret-pointed excerpt must not fail either
        return type(err).__name__
    assert_c_header_safe(source, program.c_source)
    return "ok"


def assert_c_header_safe(source: str, c_source: str) -> None:
    """The D source shown at the top of the C as comments stays comments: one `/* ... */`
    per line, closed once at its end, and no NUL anywhere (bcc reads the C as a C string)."""
    assert "\0" not in c_source, f"NUL in the generated C for {source!r}"
    lines = c_source.split("\n")
    n = 1 + min(200, len(source.splitlines()))
    for line in lines[:n]:
        assert line.startswith("/* ") and line.endswith(" */") and line.count("*/") == 1, \
            f"D source escapes its C comment for {source!r}: {line!r}"
    assert not lines[n].startswith("/*"), f"comment lines miscounted for {source!r}"


# -- grammar-aware generation -----------------------------------------------------------

# Fully qualified: a bare name (BEGIN) makes every provider search its probes, fbt's 56k
# kernel functions included (0.1 s each), which would slow the fuzzing tenfold.
PROBES = ["dtrace:::BEGIN", "dtrace:::END", "dtrace:::ERROR", "profile:::tick-1s",
          "profile:::profile-97", "syscall::read:entry",
          "syscall::read:return", "syscall::openat:entry", "syscall::getppid:entry",
          "syscall::write:return", "proc:::exec-success", "sched:::on-cpu",
          "sdt:sched::sched_switch", "syscall::*stat*:entry"]

INT_LITERALS = ["0", "1", "-1", "7", "42", "077", "0x10", "0xffffffffffffffff",
                "0x7fffffffffffffff", "9223372036854775808", "4294967296", "100u", "1ll",
                "'a'", "'\\n'", "'\\0'", "'\\377'", "$1", "sizeof(int)", "sizeof (x)",
                "sizeof(char)", "(1 << 63)", "-9223372036854775807"]
INT_BUILTINS = ["pid", "tid", "ppid", "uid", "cpu", "timestamp", "vtimestamp",
                "walltimestamp", "arg0", "arg1", "arg2", "id", "stackdepth", "curthread",
                "errno", "args[0]", "args[1]"]
INT_VARS = ["x", "y", "self->t", "this->n", "a[1]", "a[pid]", "m[\"k\", 2]", "m[execname, cpu]"]
STR_LITERALS = ['""', '"a"', '"hello"', '"%d%s"', '"*/"', '"/*"', '"\\"quoted\\""',
                '"back\\\\slash"', '"\\n\\t\\r"', '"\\0"', '"\\x41\\101"', '"#include <x.h>"',
                '"%%"', '"??/"', '"%n%s%p"', '"\\377\\200"', "$$2", "$$1"]
STR_BUILTINS = ["execname", "probefunc", "probeprov", "probemod", "probename"]
STR_VARS = ["s", "self->name", "this->str", "b[1]", "b[pid]"]
FORMATS = [("%d", "i"), ("%s", "s"), ("%u", "i"), ("%x", "i"), ("%5d", "i"), ("%-8s", "s"),
           ("%c", "i"), ("%%", ""), ("%lld", "i"), ("%p", "i"), ("%.3s", "s"),
           ("%*d", "ii"), ("%o", "i"), ("%Y", "i"), ("%a", "i"), ("%S", "s"),
           ("\\n", ""), ("*/", ""), ("#include", ""), ("\\\\", ""), ("\\0", "")]
AGGS = {  # name -> (function, extra parameters, key kinds)
    "@c": ("count", "", ("s",)), "@n": ("count", "", ()), "@sum": ("sum", "", ("i", "s")),
    "@q": ("quantize", "", ()), "@l": ("lquantize", ", 0, 100, 10", ("s",)),
    "@ll": ("llquantize", ", 10, 0, 6, 20", ()), "@avg": ("avg", "", ("i",)),
    "@mn": ("min", "", ()), "@mx": ("max", "", ("s", "i")), "@sd": ("stddev", "", ()),
    "@": ("count", "", ()),
}
BINOPS = ["+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "&&", "||", "^^", "==", "!=",
          "<", "<=", ">", ">="]
INT_SUBS = ["strlen({s})", "index({s}, {s})", "rindex({s}, {s}, {i})", "strtoll({s})",
            "strtoll({s}, 16)", "ntohs({i})", "htonl({i})", "ntohll({i})", "rand()",
            "progenyof({i})", "speculation()"]
STR_SUBS = ["strjoin({s}, {s})", "substr({s}, {i})", "substr({s}, {i}, {i})",
            "strchr({s}, {i})", "strrchr({s}, 'a')", "strstr({s}, {s})", "basename({s})",
            "dirname({s})", "lltostr({i})", "lltostr({i}, 16)", "toupper({s})", "tolower({s})",
            "copyinstr({i})", "copyinstr({i}, 8)", "stringof({i})", "stringof({s})",
            "inet_ntoa({i})", "({i}) ? {s} : {s}"]
# Tokens the mutator inserts: punctuation, keywords, things D does not have.
STRAY = ["{", "}", "(", ")", "[", "]", ";", ",", "/", "*", "@", "$", "$0", "$10", "$target",
         "->", ".", "?", ":", "=", "++", "--", "&", "!", "~", "#", "#pragma D option quiet\n",
         "`", "\\", '"', "'", "/*", "*/", "//", "\n", "int", "string", "char", "self", "this",
         "sizeof", "stringof", "struct", "union", "enum", "if", "else", "while", "inline",
         "xlate", "typedef", "args", "args[9]", "arg9", "curpsinfo", "@", "@x", "0", "1.5",
         "0x", "08", "123abc", "999999999999999999999", "count()", "exit", "printa",
         "x", "s", "self->t", "BEGIN", "syscall::read:entry", "pid$target:a.out:main:entry",
         "::", ":::", "fbt::vfs_read:entry", "\x00", "\x7f", "\u00e9", "\u2028", "\r"]
OPTIONS = [None, {"strsize": "16"}, {"strsize": "8"}, {"strsize": "1024"},
           {"aggkeys": "2"}, {"dynvarsize": "1"}, {"nspec": "4"}, {"quiet": None},
           {"bufsize": "4k"}, {"stackframes": "1"}, {"aggsortkey": None, "aggsortrev": None},
           {"defaultargs": None}, {"destructive": None}]


class Gen:
    """Grammar-aware generation of D from one random stream. (Drawing every choice from
    hypothesis costs 12 ms a program, ten times the compile; hypothesis draws the seed.)"""

    def __init__(self, rnd: random.Random):
        self.r = rnd

    def pick(self, items):
        return self.r.choice(items)

    def int_expr(self, depth: int = 0) -> str:
        r = self.r
        if depth >= 3 or r.randint(0, 3) == 0:
            return self.pick(INT_LITERALS + INT_BUILTINS + INT_VARS)
        kind = r.randint(0, 9)
        sub = lambda: self.int_expr(depth + 1)  # noqa: E731
        if kind <= 2:
            return f"({sub()} {self.pick(BINOPS)} {sub()})"
        if kind == 3:
            return f"{self.pick(['-', '~', '!', '+'])}{sub()}"
        if kind == 4:
            t = self.pick(["int", "char", "unsigned char", "short", "uint64_t", "int32_t",
                           "long long", "unsigned int"])
            return f"(({t}){sub()})"
        if kind == 5:
            return f"({sub()} ? {sub()} : {sub()})"
        if kind == 6:
            return self.pick(INT_SUBS).format(i=sub(), s=self.str_expr(depth + 1))
        if kind == 7:
            op = self.pick(["=", "+=", "-=", "*=", "/=", "%=", "|=", "<<=", ">>="])
            return f"({self.pick(INT_VARS)} {op} {sub()})"
        if kind == 8:
            return self.pick(["x++", "++x", "self->t--", "--a[1]", "this->n++"])
        return f"(({sub()}) , {sub()})"

    def str_expr(self, depth: int = 0) -> str:
        if depth >= 3 or self.r.randint(0, 2) == 0:
            return self.pick(STR_LITERALS + STR_BUILTINS + STR_VARS)
        return self.pick(STR_SUBS).format(i=self.int_expr(depth + 1),
                                          s=self.str_expr(depth + 1))

    def expr(self, kind: str) -> str:
        return self.str_expr() if kind == "s" else self.int_expr()

    def printf_call(self, name: str = "printf") -> str:
        parts = [self.pick(FORMATS) for _ in range(self.r.randint(0, 4))]
        fmt = "".join(p[0] + self.pick(["", " ", "|", "\\n"]) for p in parts)
        args = ["stack()" if k == "k" else self.expr(k) for _, kinds in parts for k in kinds]
        return f'{name}("{fmt}"' + "".join(", " + a for a in args) + ")"

    def aggregation(self) -> str:
        name = self.pick(sorted(AGGS))
        func, params, keys = AGGS[name]
        value = "" if func == "count" else self.int_expr()
        key = "[" + ", ".join(self.expr(k) for k in keys) + "]" if keys else ""
        return f"{name}{key} = {func}({value}{params})"

    def statement(self, depth: int = 0) -> str:
        r = self.r
        kind = r.randint(0, 15 if depth < 2 else 13)
        if kind <= 1:
            return f"{self.pick(INT_VARS)} = {self.int_expr()};"
        if kind == 2:
            return f"{self.pick(STR_VARS)} = {self.str_expr()};"
        if kind <= 4:
            return self.aggregation() + ";"
        if kind == 5:
            return f"trace({self.int_expr() if r.random() < 0.5 else self.str_expr()});"
        if kind <= 7:
            return self.printf_call() + ";"
        if kind == 8:
            agg = self.pick(["@c", "@n", "@q", "@sum", "@mx"])
            return self.pick([
                f"printa({agg});", f'printa("%s %@d\\n", {agg});', f"clear({agg});",
                f"trunc({agg}, 2);", f"trunc({agg});", f"normalize({agg}, 2);",
                f"denormalize({agg});", 'printa("%@d %@d\\n", @n, @mn);'])
        if kind == 9:
            return self.pick([
                "exit(0);", f"exit({self.int_expr()});", "stack();", "ustack(3);", "stack(5);",
                f"tracemem(arg0, {self.pick(['1', '16', '64', '0', '-1', '4097'])});",
                'setopt("quiet");', 'setopt("aggsortkey", "1");', "self->t = 0;",
                'system("echo %d", pid);', "raise(0);", "stop();",
                'copyoutstr("x", arg1, 2);'])
        if kind == 10:
            return self.pick(["self->spec = speculation();", "commit(self->spec);",
                              "discard(self->spec);", "speculate(1);",
                              "speculate(self->spec);"])
        if kind == 11:
            return f"if ({self.int_expr()}) {self.statement(depth + 1)}"
        if kind == 12:
            return ";"
        if kind == 13:
            return f"{self.pick(['x++', '--y', 'this->n++', 'self->t++'])};"
        if kind == 14:
            return (f"if ({self.int_expr()}) {{ {self.statement(depth + 1)} }} "
                    f"else {{ {self.statement(depth + 1)} }}")
        return "{ " + " ".join(self.statement(depth + 1) for _ in range(r.randint(0, 3))) + " }"

    def clause(self) -> str:
        r = self.r
        head = ",\n".join(r.sample(PROBES, r.randint(1, 3)))
        if r.random() < 0.5:
            head += f"\n/{self.int_expr()}/"
        if r.randint(0, 9) == 0:
            return head  # DTrace's default action
        body = [self.statement() for _ in range(r.randint(0, 6))]
        return head + "\n{\n\t" + "\n\t".join(body) + "\n}"

    def program(self) -> str:
        r = self.r
        parts = [self.pick(PRAGMAS) for _ in range(r.randint(0, 2))] if r.randint(0, 3) == 0 \
            else []
        # declared variables keep their types from the first clause on: more programs check
        parts += DECLS if r.randint(0, 4) else r.sample(DECLS, r.randint(0, 2))
        parts += [self.clause() for _ in range(r.randint(1, 4))]
        return "\n".join(parts) + "\n"


DECLS = ["int x;", "int y;", "self int spec;", "string s;", "self int t;", "this int n;",
         "int a[int];", "string b[int];", "int m[string, int];", "self string name;", "uint64_t z;"]
PRAGMAS = ["#pragma D option quiet", "#pragma D option strsize=32",
           "#pragma D option aggkeys=3", "#pragma D option nspec=2",
           "#pragma D option dynvarsize=1k", "#pragma D option bufsize=8k",
           "#pragma D option switchrate=10hz", "#pragma D option nosuch",
           "#pragma D option strsize=0", "#pragma D option aggsortpos=1"]


def _tokens(source: str) -> list[str]:
    return re.findall(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|\w+|\s+|->|\+\+|--|'
                      r'[<>=!&|^]=|<<=?|>>=?|&&|\|\||\^\^|.', source, flags=re.S)


def token_mutation(r: random.Random, source: str) -> str:
    toks = _tokens(source)
    for _ in range(r.randint(1, 3)):
        if not toks:
            toks = [r.choice(STRAY)]
            continue
        i = r.randrange(len(toks))
        op = r.randint(0, 3)
        if op == 0:
            del toks[i]
        elif op == 1:
            toks.insert(i, r.choice(STRAY))
        elif op == 2:
            toks[i] = r.choice(STRAY)
        else:
            j = r.randint(i, min(len(toks), i + 6))
            toks[i:i] = toks[i:j]
    return "".join(toks)


@st.composite
def programs(draw):
    """(source, options): a generated program, mutated at the token level a third of the
    time. The choices come from a truly random stream: hypothesis' own draws cost ten times
    the compile, and its integers favour small and boundary values, which would generate
    the same few programs again and again. A failure's message carries the program."""
    r = draw(st.randoms(use_true_random=True))
    source = Gen(r).program()
    if r.random() < 1 / 3:
        source = token_mutation(r, source)
    return source, r.choice(OPTIONS)


# -- byte-level mutation of known programs ----------------------------------------------

SEEDS = [
    'BEGIN { x = 1; printf("%d\\n", x); exit(0); }',
    "syscall::read:entry /pid == $1/ { @a[execname, probefunc] = count(); "
    "self->t = timestamp; }\nsyscall::read:return /self->t/ { @q = quantize(timestamp - "
    "self->t); self->t = 0; }",
    "profile-97 { @[cpu] = lquantize(arg0, 0, 100, 10); this->x = (int)arg1; trace(this->x); }",
    'BEGIN { s = strjoin("a", "b"); printf("%s %d\\n", substr(s, 1), strlen(s)); }\n'
    "END { printa(@x); }\ntick-1s { @x = count(); }",
    'tick-1s { a["x", 1] = 2; trace(a["x", 1]); printf("%5.3s|%-10d\\n", "abc", -3); exit(0); }',
    "BEGIN { x = y ? 1 : 2; x += 3; x++; --x; if (x > 2) { trace(x); } else { trace(-x); } }",
    '#pragma D option quiet\nBEGIN { @c = llquantize(1, 10, 0, 6, 20); printa("%@d\\n", @c); }',
    "syscall::openat:entry { printf(\"%s\\n\", copyinstr(arg1)); trace(sizeof(int)); }",
    "/* comment */ BEGIN // line\n{ trace(\"*/\"); }",
    "syscall::read:entry { self->spec = speculation(); speculate(self->spec); "
    "printf(\"%d\", arg2); }\nsyscall::read:return /self->spec/ { commit(self->spec); "
    "self->spec = 0; }",
    "sched:::on-cpu { @[args[1]->pr_fname] = count(); }\n"
    "proc:::exec-success { trace(args[0]->pr_pid); stack(); ustack(2); }",
    "int x; string s; self int t;\nBEGIN { x = 2; s = $$2; t = x; tracemem(arg0, 32); }",
]


@st.composite
def mutated_sources(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)).encode())
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 5))
        if op == 0 and data:
            del data[i:i + draw(st.integers(1, 8))]
        elif op == 1:
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == 2:
            j = draw(st.integers(i, min(len(data), i + 16)))
            data[i:i] = data[i:j]
        elif op == 3 and i < len(data):
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == 4:
            data[i:i] = draw(st.sampled_from(STRAY)).encode()
        else:
            j = draw(st.integers(0, len(data)))
            data[i:i] = data[j:j + draw(st.integers(1, 12))]
    codec = draw(st.sampled_from(["utf-8", "latin-1"]))
    return bytes(data).decode(codec, errors="replace")
