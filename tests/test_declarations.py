"""D's declarations end to end: struct/union/enum types and their layout, typedefs, inline
names, translators with xlate, offsetof and sizeof, and -C (the C preprocessor). Each
program runs through `dtrace-nb -s` on the real kernel; expected values are worked out by
hand from C's layout rules in the comment next to each case."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

CLI = [sys.executable, "-m", "dtrace_nb.cli"]
ROOT = os.path.dirname(os.path.dirname(__file__))


def run_d(tmp_path, program: str, *options: str) -> subprocess.CompletedProcess:
    path = tmp_path / "prog.d"
    path.write_text(program)
    return subprocess.run([*CLI, "-q", *options, "-s", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


# (id, program, expected stdout)
CASES = [
    # enumerators count on from the last value; they may use earlier ones; 5/4 is 1
    ("enum-values",
     "enum colors { RED, ORANGE = 5 + 5, YELLOW = 2, GREEN, BLUE = GREEN + ORANGE,\n"
     "  PINK = 5 / 4, INDIGO = -2, VIOLET };\n"
     'BEGIN { printf("%d %d %d %d %d %d %d\\n", RED, ORANGE, GREEN, BLUE, PINK, INDIGO,'
     " VIOLET); exit(0); }",
     "0 10 3 13 1 -2 -1\n\n"),
    # DTrace lays declarations out as libctf does: each member at its alignment after the
    # previous one, the size the end of the last member (not padded to the alignment).
    # int x (0), char c (4), pad to 8, long l (8): 16; char[3] then int: 4 + 4 = 8
    ("struct-layout",
     "struct s { int x; char c; long l; };\nstruct t { char b[3]; int i; };\n"
     'BEGIN { printf("%d %d %d %d %d\\n", sizeof(struct s), offsetof(struct s, c),'
     " offsetof(struct s, l), sizeof(struct t), offsetof(struct t, i)); exit(0); }",
     "16 4 8 8 4\n\n"),
    # a union is as big as its largest member (short[7]: 14); every member is at 0
    ("union-layout",
     "union u { char c; int i; long l; short s[7]; };\n"
     'BEGIN { printf("%d %d %d\\n", sizeof(union u), offsetof(union u, l),'
     " offsetof(union u, s)); exit(0); }",
     "14 0 0\n\n"),
    # a bit-field is an integer of its width, as big as the next power of two bytes and
    # aligned to that: a:3 at 0 (1 byte), b:5 at 1, c:20 at 4 (4 bytes), d:10 at 8
    # (2 bytes, its bits end in byte 9), char e at 10: size 11
    ("bit-fields",
     "struct b { int a : 3; int b : 5; int c : 20; int d : 10; char e; };\n"
     'BEGIN { printf("%d %d\\n", sizeof(struct b), offsetof(struct b, e)); exit(0); }',
     "11 10\n\n"),
    # a typedef names a struct, a pointer, an integer; a struct may point to itself (and
    # is 8 + 4 bytes: no padding at the end)
    ("typedefs",
     "typedef struct node { struct node *next; int v; } node_t;\ntypedef node_t *nodep_t;\n"
     "typedef unsigned char byte_t;\nbyte_t b;\n"
     'BEGIN { b = 300; printf("%d %d %d %d\\n", sizeof(node_t), sizeof(nodep_t), b,'
     " offsetof(node_t, v)); exit(0); }",
     "12 8 44 8\n\n"),
    # a struct variable has the struct's size; nested anonymous union (12 bytes, aligned
    # to 4) at 8, after the long: 20
    ("struct-variable",
     "struct r { long id; union { int i; char c[12]; } u; } rec;\n"
     'BEGIN { printf("%d %d\\n", sizeof(rec), offsetof(struct r, u)); exit(0); }',
     "20 8\n\n"),
    # inlines: constants, expressions of builtins, strings; cast to their type
    ("inlines",
     "inline int N = 100 + 23;\ninline string WHO = probename;\ninline int ON = pid != 0;\n"
     "inline char SMALL = 300;\ninline int TWICE = N * 2;\n"
     'BEGIN { printf("%d %s %d %d %d\\n", N, WHO, ON, SMALL, TWICE); exit(0); }',
     "123 BEGIN 1 44 246\n\n"),
    # an inline in a predicate; an enum constant in an inline
    ("inline-in-predicate",
     "enum e { A = 7 };\ninline int LIMIT = A + 1;\n"
     'BEGIN /LIMIT == 8/ { printf("yes %d\\n", LIMIT); }\nBEGIN { exit(0); }',
     "yes 8\n\n"),
    # a translator's member expression with its input bound to xlate's operand
    ("translator",
     "struct info { int doubled; int plus; };\n"
     "translator struct info < int X > { doubled = X * 2; plus = X + 1; };\n"
     "inline int SEVEN = 7;\n"
     'BEGIN { printf("%d %d\\n", xlate<struct info>(SEVEN).doubled,'
     " xlate<struct info *>(20)->plus); exit(0); }",
     "14 21\n\n"),
    # members of a global and a clause-local struct variable written and read back; a
    # nested anonymous struct's member; += and ++ on members; a union's members overlap:
    # 0x01020304's low byte is 4 (little-endian)
    ("struct-members",
     "struct c { int x; char ch; long y; struct { short s; } in; } P;\n"
     "this struct c Q;\nunion u { int i; char b; } U;\n"
     "BEGIN { P.x = 5; P.ch = 'a'; P.y = -3; P.x += 2; P.in.s = 9; P.y++; this->Q.x = 11;\n"
     "  U.i = 0x01020304;\n"
     '  printf("%d %c %d %d %d %d\\n", P.x, P.ch, P.y, P.in.s, this->Q.x, U.b); exit(0); }',
     "7 a -2 9 11 4\n\n"),
    # a whole struct assigned from another of its type, nested struct included; later
    # writes to the source do not show in the copy
    ("struct-copy",
     "struct in { int a; long b; };\nstruct out { char c; struct in i; } A, B;\n"
     "this struct out T;\n"
     "BEGIN { A.c = 'x'; A.i.a = 3; A.i.b = 4; B = A; this->T = B; A.i.a = 9;\n"
     '  printf("%c %d %d %d %d\\n", B.c, B.i.a, B.i.b, this->T.i.b, A.i.a); exit(0); }',
     "x 3 4 4 9\n\n"),
    # bit-fields written and read back: truncated to their width, sign-extended when
    # signed (7 in a signed 3-bit field is -1; 13 in an unsigned 3-bit one is 5)
    ("bit-field-values",
     "struct b { int s : 3; unsigned u : 3; int w : 12; } B;\n"
     "BEGIN { B.s = 7; B.u = 13; B.w = 2047; B.w++;\n"
     '  printf("%d %d %d %d\\n", B.s, B.u, B.w, sizeof(B)); exit(0); }',
     "-1 5 -2048 4\n\n"),
    # an inline of struct type names a struct variable or a translation
    ("struct-inlines",
     "struct s { int x; char c; } V;\ninline struct s ALIAS = V;\n"
     "translator struct s < int T > { x = T + 1; c = 'k'; };\n"
     "inline int I = 123;\ninline struct s XL = xlate<struct s>(I);\n"
     "BEGIN { V.x = 4; V.c = 'q';\n"
     '  printf("%d %c %d %c\\n", ALIAS.x, ALIAS.c, XL.x, XL.c); exit(0); }',
     "4 q 124 k\n\n"),
    # a translator from a struct value; a struct assigned a whole translation (each member
    # the translator defines); a member translated twice takes the last definition
    ("translator-from-struct",
     "struct in { int a; char c; } I;\nstruct out { int twice; char up; } O;\n"
     "translator struct out < struct in v > { twice = 0; twice = ((struct in)v).a * 2;"
     " up = v.c - 32; };\n"
     "BEGIN { I.a = 21; I.c = 'q'; O = xlate<struct out>(I);\n"
     '  printf("%d %c %d\\n", O.twice, O.up, xlate<struct out>(I).twice); exit(0); }',
     "42 Q 42\n\n"),
    # fixed-size array variables: elements written, incremented, truncated to their type
    # (300 in a char is 44), read back; an element never written is 0; 5 ints: 20 bytes
    ("fixed-arrays",
     "int a[5];\nchar c[3];\n"
     "BEGIN { a[0] = 7; a[4] = a[0] * 2; i = 2; a[i]++; a[i] += 5; c[1] = 300;\n"
     '  printf("%d %d %d %d %d %d\\n", a[0], a[4], a[2], a[1], c[1], sizeof(a));'
     " exit(0); }",
     "7 14 6 0 44 20\n\n"),
    # an index out of bounds at run time is DTrace's fault: the clause's output is
    # dropped and ERROR fires
    ("fixed-array-bounds",
     "int a[5];\nBEGIN { i = 8; a[i] = 1; printf(\"not reached\\n\"); exit(1); }\n"
     'ERROR { printf("fault %d\\n", arg4); exit(0); }',
     "fault 11\n\n"),
    # D's predefined names: NULL, the signal numbers and errno values (Linux's)
    ("predefined-names",
     'BEGIN { printf("%d %d %d %d %d\\n", NULL, SIGKILL, SIGUSR1, EPERM, ENOENT); exit(0); }',
     "0 9 10 1 2\n\n"),
    # `struct D`s` is the program's own struct s
    ("scoped-tag",
     "struct s { int x; int y; };\n"
     'BEGIN { printf("%d\\n", offsetof(struct D`s, y)); exit(0); }',
     "4\n\n"),
]


@pytest.mark.parametrize("program, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_declarations(tmp_path, program, expected):
    r = run_d(tmp_path, program)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected


# (id, program, where, message): refused with a located D error
ERRORS = [
    ("struct-twice", "struct s { int a; };\nstruct s { int b; };\nBEGIN { exit(0); }",
     "2:1", "struct s is already defined"),
    ("no-member", "struct s { int a; };\nBEGIN { trace(offsetof(struct s, b)); }",
     "2:15", "b is not a member of struct s"),
    ("offsetof-bit-field", "struct s { int a : 2; };\nBEGIN { trace(offsetof(struct s, a)); }",
     "2:15", "cannot take offset of a bit-field: a"),
    ("bit-field-too-wide", "struct s { char a : 9; };\nBEGIN { exit(0); }",
     "1:21", "bit-field too big for type: a"),
    ("enumerator-twice", "enum e { A, B };\nenum f { B };\nBEGIN { exit(0); }",
     "2:10", "identifier redeclared: B"),
    ("inline-twice", "inline int x = 1;\ninline int x = 2;\nBEGIN { exit(0); }",
     "2:1", "identifier redefined: x"),
    ("inline-later", "BEGIN { trace(LATER); }\ninline int LATER = 1;",
     "1:15", "LATER"),
    ("unknown-typedef", "BEGIN { trace(sizeof(struct nosuch)); }",
     "1:15", "sizeof cannot be applied to incomplete struct nosuch"),
    ("kernel-symbol", "BEGIN { trace(`max_pfn); }", "1:15", "CONFIG_KALLSYMS_ALL"),
    # extern declarations alone are accepted (whatever kernel type they name); a use is not
    ("extern-function", "extern int f(int, ...);\nextern int *(*fp)(void);\n"
     "BEGIN { trace(fp); }", "3:15", "fp: kernel variables cannot be read here"),
    ("extern-used", "extern int a[4][2], *b;\nextern x;\nextern struct inode i;\n"
     "BEGIN { trace(x); }", "4:15", "x: kernel variables cannot be read here"),
    ("struct-as-value", "struct s { int a; } v;\nBEGIN { trace(v + 1); }", "2:15",
     "a struct variable is used through its members"),
    ("struct-copy-other-type", "struct s { int a; } v;\nstruct t { int a; } w;\n"
     "BEGIN { v = w; }", "3:9", "cannot assign a struct t to v, a struct s"),
    ("write-through-pointer", "struct s { int a; };\nBEGIN { ((struct s *)0)->a = 1; }",
     "2:9", "memory behind a pointer cannot be written"),
    ("array-index-constant", "int a[5];\nBEGIN { a[5] = 1; }", "2:11",
     "index 5 is out of bounds: the array has 5 elements"),
    ("translator-member", "struct i { int a; };\ntranslator struct i < int X > { b = X; };\n"
     "BEGIN { exit(0); }",
     "2:33", "struct i has no member 'b'"),
    ("translator-twice", "struct i { int a; };\ntranslator struct i < int X > { a = X; };\n"
     "translator struct i < int Y > { a = Y; };\nBEGIN { exit(0); }", "3:40",
     "translator from int to struct i has already been declared"),
    ("translator-forward", "struct o { int a; };\n"
     "translator struct o < struct in *p > { a = p->x; };\nBEGIN { exit(0); }", "2:44",
     "operator -> cannot be applied to a forward declaration: no struct in definition"),
    ("translator-types", "struct o { char *p; };\n"
     "translator struct o < int X > { p = (char)X; };\nBEGIN { exit(0); }", "2:46",
     'translator member p definition uses incompatible types: "char *" = "char"'),
]


@pytest.mark.parametrize("program, where, message", [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_declaration_errors(tmp_path, program, where, message):
    r = run_d(tmp_path, program, "-e")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{where}: " in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_cpp_define_and_include(tmp_path):
    """-C: a #define, an #include of a file found through -I, -D from the command line,
    and #ifdef of what libdtrace predefines; an error after the #include keeps its line."""
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "limits.h").write_text("#define LIMIT 42\n#define WHO \"cpp\"\n")
    program = ('#include "limits.h"\n#define TWICE(x) ((x) * 2)\nBEGIN\n{\n#ifdef __linux\n'
               '\tprintf("%s %d %d %d\\n", WHO, LIMIT, TWICE(LIMIT), EXTRA);\n#endif\n'
               "\texit(0);\n}\n")
    r = run_d(tmp_path, program, "-C", f"-I{tmp_path / 'inc'}", "-DEXTRA=5")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "cpp 42 84 5\n\n"
    r = run_d(tmp_path, program.replace("\texit(0);", "\tnosuch(1);"), "-C",
              f"-I{tmp_path / 'inc'}", "-DEXTRA=5")
    assert r.returncode == 1 and "8:2: unknown function 'nosuch()'" in r.stderr, r.stderr


def test_cpp_undefine_and_list_includes(tmp_path):
    (tmp_path / "a.h").write_text("#define A 1\n")
    program = '#include "a.h"\nBEGIN {\n#ifdef __linux\n\texit(1);\n#endif\n\texit(A - 1);\n}\n'
    r = run_d(tmp_path, program, "-C", "-H", f"-I{tmp_path}", "-U__linux")
    assert r.returncode == 0, r.stderr
    assert f"{tmp_path}/a.h" in r.stderr  # -H: each included file on stderr
    r = run_d(tmp_path, '#include "missing.h"\nBEGIN { exit(0); }\n', "-C")
    assert r.returncode == 1 and "Preprocessor failed" in r.stderr, r.stderr
    # cpp's complaint once, then dtrace(1)'s line for the script
    assert r.stderr.count("missing.h") == 1, r.stderr
    assert ": failed to compile script " in r.stderr and \
        "prog.d: Preprocessor failed to process input program" in r.stderr, r.stderr


def test_c_indexing_of_copied_in_data(tmp_path):
    """C's indexing and array members of copied-in bytes: the first path under /e that
    dd opens is in /etc, so index 1 is 'e', and a struct laid over it has c[2] == 't'.
    (dd writes to /dev/null: a target printing to our stdout could race our last line.)"""
    program = ("struct path { char c[4]; int w; };\n"
               "syscall::openat:entry /pid == $target && ((char *)copyin(arg1, 4))[0] == '/'"
               " && ((char *)copyin(arg1, 4))[1] == 'e'/ {\n"
               "  this->p = (struct path *)copyin(arg1, 8);\n"
               '  printf("%c %c %c\\n", ((char *)copyin(arg1, 8))[1], this->p->c[2],'
               " (*this->p).c[3]);\n  exit(0);\n}\n")
    r = run_d(tmp_path, program, "-c", "dd if=/etc/hostname of=/dev/null status=none")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("e t c\n\n"), r.stdout


def test_cpp_x_options(tmp_path):
    """-x cpp, -x define=, -x undef= and -x incdir= act as -C, -D, -U and -I do; a bad
    -x stdc= value is refused as dtrace refuses it."""
    (tmp_path / "d.h").write_text("typedef char foo;\n")
    program = ('#include "d.h"\nBEGIN {\n#ifdef __linux\n\texit(1);\n#endif\n'
               '\tprintf("%c%d\\n", (foo)0x67, sizeof(foo) + V);\n\texit(0);\n}\n')
    r = run_d(tmp_path, program, "-xcpp", f"-xincdir={tmp_path}", "-xundef=__linux",
              "-xdefine=V=2", "-xstdc=a")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "g3\n\n"
    r = run_d(tmp_path, program, "-C", "-xstdc=X")
    assert r.returncode == 1
    assert "failed to set -x stdc: Invalid value for specified option" in r.stderr


def test_trace_of_a_struct(tmp_path):
    """trace() of a struct records its bytes, shown as tracemem() shows them: the struct's
    12 bytes (int 0x1234, char 0 and its padding, int 0x9876), not the 16 of the record."""
    program = ("struct { int a; char b; int c; } st;\n"
               "BEGIN { st.a = 0x1234; st.b = 0; st.c = 0x9876; trace(st); exit(0); }\n")
    r = run_d(tmp_path, program)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.strip().startswith("0:"))
    assert row.split(":", 1)[1].split() == ["34", "12", "00", "00", "00", "00", "00", "00",
                                             "76", "98", "00", "00", "4.......v..."], row
