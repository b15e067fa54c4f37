"""The D language, end to end: each D program runs through `dtrace-nb -s` on the real
kernel and its output is compared byte for byte with what DTrace prints.

BEGIN-only programs where the values are fixed (each expected value worked out by hand
from D's C semantics in the comment next to it); a ground-truth workload where counts
matter. Error cases check DTrace's message and the located compile errors.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel  # every program runs through dtrace-nb on the real kernel

CLI = [sys.executable, "-m", "dtrace_nb.cli"]


def run_d(tmp_path, program: str, *args: str, quiet: bool = True, timeout: float = 60,
          extra: tuple = ()) -> subprocess.CompletedProcess:
    path = tmp_path / "prog.d"
    path.write_text(program)
    cmd = [*CLI, *(["-q"] if quiet else []), *extra, "-s", str(path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          cwd=os.path.dirname(os.path.dirname(__file__)))


def traced(tmp_path, program: str, command: str, *args: str) -> str:
    """The output of `program` tracing `command` (-c); the run must succeed."""
    done = run_d(tmp_path, program, *args, extra=("-c", command))
    assert done.returncode == 0, done.stderr
    return done.stdout


def refused(tmp_path, program: str, *args: str) -> str:
    """What dtrace-nb says as it refuses `program` (it must exit non-zero)."""
    done = run_d(tmp_path, program, *args)
    assert done.returncode != 0, done.stdout
    return done.stderr


# (id, program, macro args, expected stdout)
CASES = [
    # 5*3-1=14, /2=7, %4=3, <<3=24, |1=25, ^3=26, &0xff=26
    ("compound-assignment",
     'BEGIN { x = 5; x *= 3; x -= 1; x /= 2; x %= 4; x <<= 3; x |= 1; x ^= 3; x &= 0xff;'
     ' printf("%d\\n", x); exit(0); }', (), "26\n\n"),
    # C truncating division, arithmetic shift, unsigned conversion of -7 (0xfffffff9 >> 28)
    ("signed-arithmetic",
     'BEGIN { y = -7; printf("%d %d %d %d\\n", y / 2, y % 2, y >> 1, (unsigned)y >> 28);'
     ' exit(0); }', (), "-3 -1 -4 15\n\n"),
    # arguments are evaluated left to right: x++ gives 1 (x becomes 2), ++x gives 3
    ("increment-order", 'BEGIN { x = 1; printf("%d %d %d\\n", x++, ++x, x--); exit(0); }', (),
     "1 3 3\n\n"),
    # (char)300 = 44; (int16_t)0x18000 = -32768; %d of an unsigned argument prints as %u
    # (dt_printf.c pfcheck_dint), so (uint8_t)-1 prints 255 as in DTrace
    ("casts", 'BEGIN { printf("%d %d %d\\n", (char)300, (uint8_t)-1, (int16_t)0x18000); exit(0); }',
     (), "44 255 -32768\n\n"),
    ("sizeof-ternary",
     'BEGIN { x = 1 ? "yes" : "no"; y = 0 ? 3 : 4; printf("%s %d %d %d\\n", x, y, sizeof(int),'
     ' sizeof(uint64_t)); exit(0); }', (), "yes 4 4 8\n\n"),
    ("logical",
     'BEGIN { printf("%d %d %d %d %d\\n", 2 && 3, 0 || 0, 1 ^^ 1, !5, ~0 & 0xf); exit(0); }', (),
     "1 0 0 0 15\n\n"),
    # assigning 0 deletes an associative element / thread-local; reads of absent ones give 0
    ("assoc-and-thread-local",
     'BEGIN { a[1] = 10; a[2] = 20; a[1] = 0; printf("%d %d\\n", a[1], a[2]); self->t = 3;'
     ' self->t = 0; printf("%d\\n", self->t); exit(0); }', (), "0 20\n0\n\n"),
    ("assoc-mixed-keys",
     'BEGIN { n["a", 1] = 5; n["a", 2] = 6; n["b", 1] = 7;'
     ' printf("%d %d %d %d\\n", n["a", 1], n["a", 2], n["b", 1], n["b", 2]); exit(0); }', (),
     "5 6 7 0\n\n"),
    # clause-local variables are shared by the clauses of one probe firing
    ("clause-local",
     'BEGIN { this->s = "abc"; this->n = 41; } BEGIN { printf("%s %d\\n", this->s, this->n + 1);'
     ' exit(0); }', (), "abc 42\n\n"),
    ("string-variables",
     'BEGIN { s = "hello"; t = strjoin(s, " world"); u[s] = t; printf("%s|%d|%s\\n", t,'
     ' strlen(t), u["hello"]); exit(0); }', (), "hello world|11|hello world\n\n"),
    ("if-else",
     'BEGIN { x = 3; if (x > 2) { printf("big\\n"); } else { printf("small\\n"); }'
     ' if (x > 5) printf("huge\\n"); else if (x == 3) printf("three\\n"); exit(0); }', (),
     "big\nthree\n\n"),
    ("macro-arguments",
     'BEGIN { printf("%s|%d|%s\\n", $$1, $2 + 1, strjoin($$1, "!")); exit(0); }', ("hello", "41"),
     "hello|42|hello!\n\n"),
    ("string-compare",
     'BEGIN { a = "abc"; b = "abd"; printf("%d %d %d %d\\n", a < b, a == "abc", b != "abd",'
     ' a >= b); exit(0); }', (), "1 1 0 0\n\n"),
    # substr: from 1; 2 from 1; from -3 (len 2); past the end is ""
    ("substr",
     'BEGIN { printf("%s %s %s [%s]\\n", substr("hello", 1), substr("hello", 1, 2),'
     ' substr("hello", -3, 2), substr("hello", 10)); exit(0); }', (), "ello el ll []\n\n"),
    ("basename-dirname",
     'BEGIN { s = "/usr/lib/x86_64/libc.so.6"; printf("%s %s [%s][%s][%s]\\n", basename(s),'
     ' dirname(s), dirname("/"), basename("/"), dirname("foo")); exit(0); }', (),
     "libc.so.6 /usr/lib/x86_64 [/][/][.]\n\n"),
    ("index-strstr",
     'BEGIN { s = "/usr/lib/libc"; printf("%d %s\\n", index(s, "lib"), strstr(s, "lib/"));'
     ' exit(0); }', (), "5 lib/libc\n\n"),
    ("rindex", 'BEGIN { s = "/usr/lib/libc"; printf("%d\\n", rindex(s, "lib")); exit(0); }', (),
     "9\n\n"),
    ("index-missing", 'BEGIN { printf("%d\\n", index("/usr/lib", "zz")); exit(0); }', (),
     "-1\n\n"),
    ("strchr",
     'BEGIN { s = "a/b/c"; printf("%s|%s|%s\\n", strchr(s, 0x2f), strrchr(s, 0x2f),'
     ' strchr(s, 0x7a)); exit(0); }', (), "/b/c|/c|\n\n"),
    ("case-and-numbers",
     'BEGIN { printf("%s %s %d %s %s\\n", toupper("abC"), tolower("ABc"), strtoll("-77"),'
     ' lltostr(-1234), lltostr(255, 16)); exit(0); }', (), "ABC abc -77 -1234 ff\n\n"),
    ("byte-order",
     'BEGIN { printf("%x %x %x\\n", ntohs(0x1234), htonl(0x11223344), ntohll(1)); exit(0); }',
     (), "3412 44332211 100000000000000\n\n"),
    # rows by value then key; string keys "  %-50s", int keys by size (4 bytes: " %8d"),
    # values " %16d"; a blank line when tracing ends, then the aggregations' rows one after
    # another (dtrace-utils' dtrace_aggregate_print puts nothing between two aggregations)
    ("count-sum-min-max-avg",
     'BEGIN { @c["a", 1] = count(); @c["a", 1] = count(); @c["b", 2] = count(); @s = sum(10);'
     ' @s = sum(-3); @m = min(4); @m = min(-2); @x = max(7); @x = max(3); @av = avg(3);'
     ' @av = avg(4); exit(0); }', (),
     "\n" + "  %-50s %8d %16d\n" % ("b", 2, 1) + "  %-50s %8d %16d\n" % ("a", 1, 2)
     + "                7\n               -2\n                7\n                3\n"),
    # printa with a format: keys then one %@ per aggregation, rows ordered by the first
    # aggregation's value (aggsortpos 0); then dtrace(1)'s end-of-run printing of both
    ("printa-format",
     'BEGIN { @c["x", 1] = count(); @c["y", 2] = count(); @c["y", 2] = count();'
     ' @s["x", 1] = sum(10); @s["y", 2] = sum(5); printa("%-4s %d %@u %@d\\n", @c, @s);'
     ' exit(0); }', (),
     # printed by printa(), so not again at the end (libdtrace's DTRACE_AGD_PRINTED)
     "x    1 1 10\ny    2 2 5\n\n"),
    # printf conversions D users write: integers converted for %e/%f/%g, # and + flags
    ("printf-conversions",
     'BEGIN { printf("%e|%10.3f|%g|%x|%X|%#o|%c|%5s|%-5d|%+d|%p|%%\\n", 12345, 3, 100000000,'
     ' 255, 255, 8, 65, "ab", 7, 7, 4096); exit(0); }', (),
     "1.234500e+04|     3.000|1e+08|ff|FF|010|A|   ab|7    |+7|1000|%\n\n"),
    # llquantize(v, 10, 0, 2, 10): < 1, then 1..9 by 1, 10..90 by 10, then >= 1000? no:
    # high 2 means magnitudes 1, 10, 100; the last bucket is >= 1000
    ("llquantize",
     'BEGIN { v = 0; @ = llquantize(v, 10, 0, 2, 10); v = 3; @ = llquantize(v, 10, 0, 2, 10);'
     ' v = 3; @ = llquantize(v, 10, 0, 2, 10); v = 5000; @ = llquantize(v, 10, 0, 2, 10); exit(0); }',
     (), "\n\n" + "%16s %41s %-9s\n" % ("value", "------------- Distribution -------------", "count")
     + "%16s |%-40s %-9d\n" % ("< 1", "@" * 10, 1) + "%16s |%-40s %-9d\n" % ("1", "", 0)
     + "%16s |%-40s %-9d\n" % ("2", "", 0) + "%16s |%-40s %-9d\n" % ("3", "@" * 20, 2)
     + "%16s |%-40s %-9d\n" % ("4", "", 0) + "".join("%16s |%-40s %-9d\n" % (str(v), "", 0)
                                                    for v in [5, 6, 7, 8, 9] + list(range(10, 100, 10))
                                                    + list(range(100, 1000, 100)))
     + "%16s |%-40s %-9d\n" % (">= 1000", "@" * 10, 1) + "\n"),
    ("trace-widths",
     'BEGIN { trace((char)1); trace((short)2); trace(3); trace(4LL); trace("s"); exit(0); }', (),
     "1234s\n"),
]


@pytest.mark.parametrize("name, program, args, expected", CASES, ids=[c[0] for c in CASES])
def test_program_output(tmp_path, name, program, args, expected):
    done = run_d(tmp_path, program, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected


def test_default_output_is_dtrace_layout(tmp_path):
    # trace() of an int in 10 columns after a space, as dtrace-utils' dt_print_trace
    done = run_d(tmp_path, 'BEGIN { trace(7); trace("x"); exit(0); }', quiet=False)
    assert done.stdout == ("CPU     ID                    FUNCTION:NAME\n"
                           + "%3d %6d %32s " % (int(done.stdout.splitlines()[1].split()[0]), 1,
                                                ":BEGIN")
                           + " %10d" % 7 + "  %-33s" % "x" + "\n\n")


# -- run-time faults -------------------------------------------------------------------

def test_bad_address_fires_error_and_continues(tmp_path):
    done = run_d(tmp_path, 'BEGIN { trace(*(int *)0); }\n'
                           'ERROR { printf("epid %d action %d fault %d addr %x\\n",'
                           ' arg1, arg2, arg4, arg5); exit(1); }')
    assert done.returncode == 1
    assert done.stdout == "epid 1 action 1 fault 1 addr 0\n\n"
    assert ("dtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address "
            "(0x0)\n") in done.stderr


def test_divide_by_zero_skips_the_rest_of_the_clause(tmp_path):
    done = run_d(tmp_path, 'BEGIN { x = 0; y = 10 / x; printf("not reached\\n"); }\n'
                           'BEGIN { printf("next clause\\n"); exit(0); }')
    assert done.returncode == 0
    assert done.stdout == "next clause\n\n"
    assert "dtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): divide-by-zero\n" \
        in done.stderr


def test_copyinstr_of_bad_user_address(tmp_path):
    done = run_d(tmp_path, 'BEGIN { trace(copyinstr(16)); } BEGIN { exit(0); }')
    assert "(dtrace:::BEGIN): invalid address (0x10)\n" in done.stderr


# -- consumer actions ----------------------------------------------------------------------

def test_printa_clear_trunc(tmp_path):
    done = run_d(tmp_path, 'BEGIN { @a["x"] = sum(5); @a["y"] = sum(7); @a["z"] = sum(1);'
                           ' printa(@a); trunc(@a, 1); printa(@a); clear(@a); printa(@a); exit(0); }')
    row = "  %-50s %16d\n"
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("\n" + row % ("z", 1) + row % ("x", 5) + row % ("y", 7)
                           + "\n" + row % ("y", 7) + "\n" + row % ("y", 0)
                           + "\n")  # printa() printed @a: not again at the end


def test_normalize(tmp_path):
    done = run_d(tmp_path, 'BEGIN { @a = sum(1000); normalize(@a, 10); exit(0); }')
    assert done.stdout == "\n              100\n"


def test_setopt_quiet(tmp_path):
    # the first record's heading and probe prefix are printed before its setopt() runs
    # (and, now quiet, no newline ends it); the next record is quiet
    done = run_d(tmp_path, 'BEGIN { setopt("quiet"); } BEGIN { printf("hi\\n"); exit(0); }',
                 quiet=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CPU ") and done.stdout.endswith(":BEGIN hi\n\n")


def test_speculation_commit_and_discard(tmp_path):
    done = run_d(tmp_path, '''
BEGIN { self->a = speculation(); self->b = speculation(); }
BEGIN { speculate(self->a); printf("kept\\n"); }
BEGIN { speculate(self->b); printf("dropped\\n"); }
BEGIN { printf("first\\n"); }
BEGIN { commit(self->a); discard(self->b); }
BEGIN { exit(0); }
''', extra=("-x", "nspec=2"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "first\nkept\n\n"


def test_commit_only_clause_prints_no_probe_line(tmp_path):
    """Not quiet: the speculated clause's line comes out when committed; the clauses of
    commit() and discard() alone record nothing to show (dt_consume_one)."""
    done = run_d(tmp_path, '''
BEGIN { self->a = speculation(); self->b = speculation(); }
BEGIN { speculate(self->a); }
BEGIN { commit(self->a); }
BEGIN { discard(self->b); }
BEGIN { exit(0); }
''', quiet=False, extra=("-x", "nspec=2"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CPU ") and len([x for x in lines if ":BEGIN" in x]) == 2, \
        done.stdout


# -- errors before anything runs ---------------------------------------------------------

@pytest.mark.parametrize("program, where, message", [
    ('BEGIN { system("true"); }', "1:9", "system() is a destructive action"),
    ('BEGIN { x = "a"; x = 1; }', "1:18", "cannot assign int to x"),
    ('BEGIN { trace(y); }', "1:15", "unknown variable 'y'"),
    ('BEGIN { trace(strlen(1)); }', "1:22", "strlen() argument 1 must be a string"),
    ('BEGIN { trace(args[0]); }', "1:15", "args[0] does not exist"),
    ('BEGIN { @a = lquantize(1, 10, 0, 1); }', "1:31",
     "lquantize( ) base (argument #1) must be less than limit (argument #2)"),
])
def test_compile_errors(tmp_path, program, where, message):
    done = run_d(tmp_path, program)
    assert done.returncode == 1
    assert f"{where}: {message}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_destructive_allowed_with_w(tmp_path):
    done = run_d(tmp_path, 'BEGIN { system("echo from-system"); exit(0); }', extra=("-w",))
    assert done.returncode == 0, done.stderr
    assert "from-system\n" in done.stdout


# -- ground truth: thread-local timestamps across entry and return ---------------------------

def test_self_variables_pair_entry_and_return(tmp_path, workloads):
    done = run_d(tmp_path, '''
syscall::getppid:entry /pid == $target/ { self->ts = timestamp; }
syscall::getppid:return /self->ts/ { @n = count(); @ok = sum(timestamp > self->ts); self->ts = 0; }
''', extra=("-c", f"{workloads['sysload']} getppid 300"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n              300\n              300\n"


def test_aggsortpos_orders_printa_by_another_aggregation(tmp_path):
    # -x aggsortpos=1: rows of a joined printa follow the second aggregation's values
    prog = ('BEGIN { @c["x"] = count(); @c["y"] = count(); @c["y"] = count(); @s["x"] = sum(10);'
            ' @s["y"] = sum(5); printa("%s %@d %@d\\n", @c, @s); trunc(@c); trunc(@s); exit(0); }')
    first = run_d(tmp_path, prog)
    assert first.stdout.startswith("x 1 10\ny 2 5\n"), first.stdout
    done = run_d(tmp_path, prog, extra=("-x", "aggsortpos=1"))
    assert done.stdout.startswith("y 2 5\nx 1 10\n"), done.stdout


def test_stack_keys_count_and_symbolise(tmp_path, workloads):
    # kernel stacks of 300 getppid calls: every sample lands in some stack key
    done = run_d(tmp_path, "syscall::getppid:entry /pid == $target/ { @[stack()] = count(); }",
                 extra=("-c", f"{workloads['sysload']} getppid 300"))
    assert done.returncode == 0, done.stderr
    counts = [int(ln) for ln in done.stdout.splitlines() if ln.strip().isdigit()]
    assert sum(counts) == 300 and "vmlinux`" in done.stdout
    # user stacks while the target still runs (-T stops tracing first): do_spin under main
    done = run_d(tmp_path, "profile-997 /pid == $target/ { @[ustack()] = count(); }",
                 extra=("-T", "1.5", "-c", f"{workloads['sysload']} spin 4000"))
    assert done.returncode == 0, done.stderr
    assert "sysload`do_spin" in done.stdout and "sysload`main" in done.stdout


def test_user_stacks_symbolised_after_the_target_exited(tmp_path, workloads):
    # the session reads the target's mappings while it runs, so frames printed at the end,
    # after it exited on its own, still have names
    done = run_d(tmp_path, "profile-997 /pid == $target/ { @[ustack()] = count(); }",
                 extra=("-c", f"{workloads['sysload']} spin 800"))
    assert done.returncode == 0, done.stderr
    assert "sysload`do_spin" in done.stdout and "sysload`main" in done.stdout
