"""D's semantics where a C-minded compiler goes wrong, end to end on the real kernel: each D
program runs through `dtrace-nb -s` and its output is compared byte for byte with what
DTrace prints. Each expected value is worked out by hand in the comment next to it.
"""

from __future__ import annotations

import pytest

from tests.test_language import run_d

pytestmark = pytest.mark.kernel

# (id, program, expected stdout)
CASES = [
    # the first use of x++, x += n, self->x, this->x or a[k] declares an int64_t, 0
    ("implicit-declaration",
     'BEGIN { n++; x += 2; self->n++; ++this->x; a[1]++; a[1]++; b["k", 2] += 5;'
     ' printf("%d %d %d %d %d %d\\n", n, x, self->n, this->x, a[1], b["k", 2] - 1);'
     ' exit(0); }', "1 2 1 1 2 4\n\n"),
    # reading a thread-local, clause-local or array element nothing ever assigned gives 0
    ("never-assigned-reads-zero",
     'BEGIN { printf("%d %d %d\\n", self->never, this->never, arr[7]); exit(0); }',
     "0 0 0\n\n"),
    # thread-local associative arrays: keyed by the thread, then by their keys
    ("thread-local-arrays",
     'self int last[int]; BEGIN { self->last[3] = 30; self->a["x"] = 1; self->a["x"]++;'
     ' self->a["y"] += 7; printf("%d %d %d %d %d\\n", self->last[3], self->last[4],'
     ' self->a["x"], self->a["y"], self->a["z"]); exit(0); }', "30 0 2 7 0\n\n"),
    # i is an int (its first value, 0, is an int): each store narrows to 32 bits, but the
    # operators work in 64: 5*25920*25920 = 3359232000, 25920 - that = -3359206080, stored as
    # int: 935761216; then i*(i-3)/i*6 = 935761213*6 = 5614567278, as int: 1319599982
    ("arithmetic-in-64-bits",
     'BEGIN { i = 0; i = 25920; i = i - (i + (i * 3) + i) * i / i * i; printf("%d\\n", i);'
     ' i = i * (i - 3 + 5 / i * i) / i * 6; printf("%d\\n", i); exit(0); }',
     "935761216\n1319599982\n\n"),
    # 1 << 40 of an int is 2^40 in the register (> 0), 0 once cast to int; 2^31 * 2 of ints
    # compares as 2^32
    ("no-32-bit-intermediates",
     'BEGIN { x = 65536; printf("%d %d %d %d\\n", 1 << 40 > 0, (int)(1 << 40),'
     ' x * x == 4294967296, (x * x) / x); exit(0); }', "1 0 1 65536\n\n"),
    # hex constants that fit are unsigned int: ~0xdeadbeef stored in an unsigned int var
    # prints 8 digits; 0x...ull is 64-bit
    ("hex-constants-unsigned",
     'BEGIN { i = 0xdeadbeef; j = ~i; x = 0x00000000deadbeefull; y = ~x;'
     ' printf("%x %x %x\\n", i, j, y); exit(0); }', "deadbeef 21524110 ffffffff21524110\n\n"),
    # decimal constants stay signed: 4294967295 is a long, so -4294967295 < 0
    ("decimal-constants-signed",
     'BEGIN { printf("%d %d\\n", -4294967295 < 0, 2147483648 > 0); exit(0); }', "1 1\n\n"),
    # signed 64-bit division truncates toward zero; mixed signedness divides the registers
    ("signed-division",
     'BEGIN { a = -7; b = 2; printf("%d %d %d\\n", a / b, a % b, -9223372036854775807 / 3);'
     ' exit(0); }', "-3 -1 -3074457345618258602\n\n"),
    # one firing, one timestamp: every read in every clause of the firing agrees (but
    # walltimestamp advances, as dtrace-utils reads it afresh)
    ("timestamp-cached-per-firing",
     'BEGIN { t = timestamp; w = walltimestamp; printf("%d %d\\n", timestamp - t,'
     ' walltimestamp - w > 0); } BEGIN { printf("%d\\n", timestamp - t); exit(0); }',
     "0 1\n0\n\n"),
    # NULL is (void *)0; a string compares with it and takes it (as an absent string)
    ("string-and-null",
     'BEGIN { s = "abc"; t = strchr("abc", 122); printf("%d %d %d\\n", s != NULL, t == NULL,'
     ' NULL < s); s = NULL; self->str = "x"; self->str = 0; printf("%d [%s] [%s]\\n", s == NULL,'
     ' s, self->str); exit(0); }', "1 1 1\n1 [] []\n\n"),
    # a string's chars: 'b' is 98; past the end and out of the buffer give 0
    ("string-index",
     'BEGIN { s = "abc"; printf("%d %d %d %c\\n", s[1], s[3], s[-1], "xyz"[2]); exit(0); }',
     "98 0 0 z\n\n"),
    # a long literal on one side of ?: and a short one on the other, as a key and a value
    ("long-strings-in-ternary",
     'BEGIN { @[pid == 0 ? "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" : "b"] = count();'
     ' x = pid > 0 ? "a long string literal, longer than eight" : "s"; printf("%s\\n", x);'
     ' exit(0); }', "a long string literal, longer than eight\n\n  b"
     "                                                                 1\n"),
    # an expression statement is evaluated for nothing but its faults
    ("expression-statements",
     'BEGIN { probeprov; 1 + 2; x = 3; x; printf("ok %d\\n", x); exit(0); }', "ok 3\n\n"),
    # quantize's last bucket holds 2^62 .. 2^63-1
    ("quantize-top-bucket",
     'BEGIN { @ = quantize(9223372036854775807); exit(0); }',
     "\n\n           value  ------------- Distribution ------------- count    \n"
     "2305843009213693952 |                                         0        \n"
     "4611686018427387904 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@ 1        \n\n"),
    # $target is 0 without -c or -p, as in DTrace
    ("target-without-process",
     'BEGIN { printf("%d %d\\n", $target, pid == $target); exit(0); }', "0 0\n\n"),
    # a speculative clause whose only action is speculate() records the probe line: not
    # seen when discarded, seen when committed
    ("speculate-only-clause",
     'BEGIN { self->s = speculation(); self->d = speculation(); }'
     ' BEGIN { speculate(self->d); } BEGIN { discard(self->d); }'
     ' BEGIN { speculate(self->s); } BEGIN { commit(self->s); } BEGIN { exit(0); }',
     "\n"),
]


@pytest.mark.parametrize("name, program, expected", CASES, ids=[c[0] for c in CASES])
def test_d_semantics(tmp_path, name, program, expected):
    done = run_d(tmp_path, program, extra=("-x", "nspec=2"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected


# (program, line:col, DTrace's message)
ERRORS = [
    ("BEGIN { c = 123 / (7 - 7); }", "1:20", "expression contains division by zero"),
    ("BEGIN { c = 123 % 0; }", "1:19", "expression contains division by zero"),
    ("BEGIN { x = 9223372036854775808; }", "1:13",
     "integer constant 0x8000000000000000 cannot be represented in any built-in integral type"),
    ("BEGIN { trace(nosuch); }", "1:15", "unknown variable 'nosuch'"),
    ("BEGIN { s = speculation(); speculate(s); @c = count(); }", "1:42",
     "aggregating actions may not follow speculate( )"),
    ("BEGIN { s = speculation(); printf(\"x\"); commit(s); }", "1:41",
     "commit( ) may not follow data-recording action(s)"),
    ("BEGIN { s = speculation(); commit(s); exit(0); }", "1:39",
     "data-recording actions may not follow commit( )"),
    ("BEGIN { this->a[1] = 2; }", "1:9",
     "clause-local (this->) variables cannot be associative arrays"),
    # a pointer variable takes a pointer or NULL, not an integer (dt_node_is_argcompat)
    ("BEGIN { self->x[1] = curthread; self->x[2] = pid; }", "1:33",
     'operands have incompatible types: "struct task_struct *" = "pid_t"'),
    # faster than 200 us is no profile probe (dt_prov_profile's limit)
    ("profile-1ns { exit(0); }", "1:1", "probe description profile-1ns does not match"),
    ("tick-199us { exit(0); }", "1:1", "probe description tick-199us does not match"),
    ("BEGIN { @ = llquantize(1, 10, 0, 6); }", "1:13", "llquantize() takes 5 or 6 arguments, 4 given"),
]


@pytest.mark.parametrize("program, where, message", ERRORS)
def test_d_semantics_errors(tmp_path, program, where, message):
    done = run_d(tmp_path, program)
    assert done.returncode == 1
    assert f"{where}: {message}" in done.stderr, done.stderr


def test_string_keys_compare_as_d_strings(tmp_path):
    """Keys built from strings read into reused buffers (copyinstr of execve's path, small
    enough for a short copy under strsize=32) are one row per D string: the bytes after a
    shorter path's NUL are not the previous longer path's."""
    script = tmp_path / "work.sh"
    script.write_text("#!/bin/sh\nfor i in 1 2 3; do /usr/bin/true; /bin/true; done\n")
    script.chmod(0o755)
    done = run_d(tmp_path, 'syscall::execve:entry /ppid == $target/ '
                           '{ @[copyinstr(arg0)] = count(); }',
                 extra=("-x", "strsize=32", "-c", str(script)))
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    assert sorted(rows) == [["/bin/true", "3"], ["/usr/bin/true", "3"]], done.stdout


def test_trace_widths_are_dtrace_utils(tmp_path):
    """trace() of integers as dt_print_trace lays them out: a space, then 10 columns for
    32-bit values, 19 for signed and 20 for unsigned 64-bit ones."""
    done = run_d(tmp_path, 'BEGIN { trace((int32_t)-1); trace((int64_t)-1); trace((uint64_t)-1);'
                           ' trace((uint8_t)7); exit(0); }', quiet=False)
    assert done.returncode == 0, done.stderr
    line = done.stdout.splitlines()[1]
    assert line.endswith(":BEGIN " + " %10d" % -1 + " %19d" % -1 + " %20d" % (2**64 - 1)
                         + " %3d" % 7), repr(line)
