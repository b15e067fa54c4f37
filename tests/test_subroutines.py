"""Subroutines, the optional arguments of aggregating functions and the predefined
constants, end to end on the real kernel: each D program runs through `dtrace-nb -s` and its
output is compared byte for byte with what DTrace prints for it (each expected value worked
out by hand in the comment next to it).
"""

from __future__ import annotations

import sys

import pytest

from tests.test_language import refused, run_d, traced

pytestmark = pytest.mark.kernel  # every program runs through dtrace-nb on the real kernel

HIST_HEAD = "           value  ------------- Distribution ------------- count    \n"


def bar(n: int, total: int) -> str:
    return "@" * (40 * n // total) + " " * (40 - 40 * n // total)


def row(value: str, n: int, total: int) -> str:
    return f"{value:>16} |{bar(n, total)} {n:<9}\n" if n else f"{value:>16} |{' ' * 40} 0        \n"


# (id, program, expected stdout)
CASES = [
    # quantize(3, 5): the 2 bucket (2..3) gains the increment 5, not 1
    ("quantize-increment",
     'BEGIN { @ = quantize(3, 5); exit(0); }',
     "\n\n" + HIST_HEAD + row("1", 0, 5) + row("2", 5, 5) + row("4", 0, 5) + "\n"),
    # lquantize(v, 0, 5): the step defaults to 1; 3 and 4 land in their own buckets
    ("lquantize-default-step",
     'BEGIN { @ = lquantize(3, 0, 5); @ = lquantize(4, 0, 5); exit(0); }',
     "\n\n" + HIST_HEAD + row("2", 0, 2) + row("3", 1, 2) + row("4", 1, 2)
     + row(">= 5", 0, 2) + "\n"),
    # lquantize(2, 0, 10, 2, 3): bucket 2..3 gains 3
    ("lquantize-increment",
     'BEGIN { @ = lquantize(2, 0, 10, 2, 3); exit(0); }',
     "\n\n" + HIST_HEAD + row("0", 0, 3) + row("2", 3, 3) + row("4", 0, 3) + "\n"),
    # llquantize(15, 10, 0, 3, 10, 7): 15 is in the 10..19 bucket, which gains 7; the
    # increment is an expression evaluated when the clause fires (i is 7 there)
    ("llquantize-increment",
     'BEGIN { i = 7; @ = llquantize(15, 10, 0, 3, 10, i); exit(0); }',
     "\n\n" + HIST_HEAD + row("9", 0, 7) + row("10", 7, 7) + row("20", 0, 7) + "\n"),
    # Linux's signal numbers and errno values, DTrace's fault kinds, NULL
    ("constants",
     'BEGIN { printf("%d %d %d %d %d %d %d\\n", SIGHUP, SIGINT, SIGUSR1, SIGKILL, EPERM, ENOENT,'
     ' NULL); exit(0); }',
     "1 2 10 9 1 2 0\n\n"),
    # a constant is a constant expression: an lquantize() bound
    ("constant-as-parameter",
     'BEGIN { @ = lquantize(9, 0, SIGUSR1); exit(0); }',
     "\n\n" + HIST_HEAD + row("8", 0, 1) + row("9", 1, 1) + row(">= 10", 0, 1) + "\n"),
]


@pytest.mark.parametrize("name, program, expected", CASES, ids=[c[0] for c in CASES])
def test_program_output(tmp_path, name, program, expected):
    r = run_d(tmp_path, program)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected


def test_error_clause_compares_arg4_with_fault_constants(tmp_path):
    # the divide-by-zero ends BEGIN's clause; ERROR's arg4 is DTRACEFLT_DIVZERO (4)
    r = run_d(tmp_path, 'BEGIN { x = 0; y = 1 / x; }\n'
                        'ERROR /arg4 == DTRACEFLT_DIVZERO/ { printf("%d\\n", arg4); exit(0); }')
    assert r.stdout == "4\n\n", r.stderr


@pytest.mark.parametrize("program, message", [
    ('BEGIN { @ = quantize(1, ""); }', 'quantize() increment must be an integer, not'),
    ('BEGIN { @ = lquantize(1, 0); }', 'lquantize() takes 3 to 5 arguments, 2 given'),
    ('BEGIN { @ = lquantize(10, 0, 100, 1, 10, 20); }',
     'lquantize() takes 3 to 5 arguments, 6 given'),
    ('BEGIN { @ = llquantize(50000, 10, 2, 4); }',
     'llquantize() takes 5 or 6 arguments, 4 given'),
    ('BEGIN { @ = count(1); }', 'count() takes 0 arguments, 1 given'),
])
def test_aggregating_function_arguments_refused(tmp_path, program, message):
    err = refused(tmp_path, program)
    assert message in err, err


@pytest.mark.parametrize("paths", [
    ("/foo/bar/../../baz/.//", "foo/bar/./././././baz/"),
    ("/foo/bar/baz/../../../../../../", "a/../.."),
    ("z/a/b/../../././c///d/e", ""),
    ("./", "../../.."),
    ("/a/..", "//"),
])
def test_cleanpath(tmp_path, paths):
    # the lexical clean DTrace's cleanpath() does ("" stays "", "." for a relative path
    # that cleans to nothing, ".." at the root stays there, leading ".." stay)
    want = {"/foo/bar/../../baz/.//": "/baz", "foo/bar/./././././baz/": "foo/bar/baz",
            "/foo/bar/baz/../../../../../../": "/", "a/../..": "..",
            "z/a/b/../../././c///d/e": "z/c/d/e", "": "", "./": ".",
            "../../..": "../../..", "/a/..": "/", "//": "/"}
    calls = ", ".join(f'cleanpath("{p}")' for p in paths)
    r = run_d(tmp_path, f'BEGIN {{ printf("[%s] [%s]\\n", {calls}); exit(0); }}')
    assert r.stdout == f"[{want[paths[0]]}] [{want[paths[1]]}]\n\n", r.stderr


def test_getmajor_getminor(tmp_path):
    # Linux's kernel dev_t: the minor in the low 20 bits, the major in the 12 above them
    # (the upper 32 bits are not part of it); 8:1 is /dev/sda1's number, (8 << 20) | 1
    r = run_d(tmp_path, 'BEGIN { printf("%x %x %d:%d\\n", getmajor(0xabcdef0123456789ll),'
                        ' getminor(0xabcdef0123456789ll), getmajor(0x800001), getminor(0x800001));'
                        ' exit(0); }')
    assert r.stdout == "234 56789 8:1\n\n", r.stderr


# 96 bytes the target writes once: five IPv6 addresses, then an IPv4 address and a MAC
ADDRESSES = ("fe800000000000000214" "4fff" "fe0b" "76c8"
             "10800000000000000000" "0808" "000c" "417a"
             + "00" * 15 + "01" + "00" * 12 + "7f000001" + "00" * 10 + "ffff" + "7f000001"
             + "c0a80117" + "000102030405" + "00" * 6)
WRITER = ("import os; fd = os.open('/dev/null', os.O_WRONLY); "
          f"os.write(fd, bytes.fromhex('{ADDRESSES}'))")


def test_network_and_link_addresses(tmp_path):
    # the addresses are copied in from the target's write() buffer; each clause keeps
    # to three formatters (the verifier walks each one's loops)
    # (copyin() gives a void *, which D does not add to: the cast makes it a char *)
    program = """
syscall::write:entry /pid == $target && arg2 == 96/ {
  this->p = (char *)copyin(arg1, 96);
  printf("%s\\n%s\\n%s\\n", inet_ntop(AF_INET6, this->p), inet_ntop(AF_INET6, this->p + 16),
         inet_ntop(AF_INET6, this->p + 32));
}
syscall::write:entry /pid == $target && arg2 == 96/ {
  this->p = (char *)copyin(arg1, 96);
  printf("%s\\n%s\\n", inet_ntop(AF_INET6, this->p + 48), inet_ntop(AF_INET6, this->p + 64));
}
syscall::write:entry /pid == $target && arg2 == 96/ {
  this->p = (char *)copyin(arg1, 96);
  printf("%s %s %s\\n", inet_ntoa6(this->p + 48), inet_ntoa6(this->p + 64),
         inet_ntoa6(this->p + 64, 1));
}
syscall::write:entry /pid == $target && arg2 == 96/ {
  this->p = (char *)copyin(arg1, 96);
  printf("%s %s %s\\n", inet_ntop(AF_INET, this->p + 80), inet_ntoa(this->p + 80),
         link_ntop(ARPHRD_ETHER, this->p + 84));
}
"""
    out = traced(tmp_path, program, f'{sys.executable} -c "{WRITER}"')
    # RFC 5952 text: the longest run of zero groups as ::, IPv4-compatible and -mapped
    # addresses end in a dotted quad (inet_ntoa6 prints the quad alone unless asked)
    assert out == ("fe80::214:4fff:fe0b:76c8\n1080::808:c:417a\n::1\n"
                   "::127.0.0.1\n::ffff:127.0.0.1\n"
                   "127.0.0.1 127.0.0.1 ::ffff:127.0.0.1\n"
                   "192.168.1.23 192.168.1.23 00:01:02:03:04:05\n\n")


@pytest.mark.parametrize("call", ["inet_ntop(-1, 0)", "link_ntop(-1, 0)"])
def test_unknown_address_family_is_an_illegal_operation(tmp_path, call):
    # the family is checked before the address is read: arg4 is DTRACEFLT_ILLOP (3)
    r = run_d(tmp_path, f'BEGIN {{ trace({call}); }}\n'
                        'ERROR { printf("%d %d\\n", arg4, arg4 == DTRACEFLT_ILLOP); exit(0); }')
    assert r.stdout == "3 1\n\n", r.stderr


def test_bad_address_faults(tmp_path):
    r = run_d(tmp_path, 'BEGIN { trace(inet_ntoa6(0)); }\n'
                        'ERROR { printf("%d\\n", arg4); exit(0); }')
    assert r.stdout == "1\n\n", r.stderr


def test_strtok_continues_with_null(tmp_path):
    # strtok(NULL, d) goes on where the last call stopped, across the clauses of a firing;
    # runs of delimiters are skipped; no token left gives the empty string
    r = run_d(tmp_path, 'BEGIN { this->s = ",,,Carrots,,Barley,Oatmeal,,,Beans,";'
                        ' printf("[%s]\\n", strtok(this->s, ",")); }\n'
                        'BEGIN { printf("[%s] [%s]\\n", strtok(NULL, ","), strtok(NULL, ",")); }\n'
                        'BEGIN { printf("[%s] [%s]\\n", strtok(NULL, ","), strtok(NULL, ",")); }\n'
                        'BEGIN { printf("[%s] [%s] [%s] [%s]\\n", strtok("foobar", "o"),'
                        ' strtok("oobar", "o"), strtok("foo", "bar"), strtok("a/b:c", ":/"));'
                        ' printf("[%s]\\n", strtok(NULL, ":/")); exit(0); }')
    assert r.stdout == ("[Carrots]\n[Barley] [Oatmeal]\n[Beans] []\n"
                        "[f] [bar] [foo] [a]\n[b]\n\n"), r.stderr


@pytest.mark.parametrize("program, lines", [
    # dt_printf_validate's words: the key a conversion takes must fit its prototype
    ('BEGIN { @[stack()] = count(); printa("%p\\n", @); }',
     ["printa( ) argument #2 is incompatible with conversion #1 prototype:",
      "\tconversion: %p", "\t prototype: pointer or integer", "\t  argument: stack"]),
    ('BEGIN { @["a", 1] = count(); printa("%s %s %@d\\n", @); }',
     ["printa( ) argument #3 is incompatible with conversion #2 prototype:",
      "\t prototype: char [] or string (or use stringof)"]),
    ('BEGIN { @[1] = count(); printa("%k %@d\\n", @); }',
     ["\tconversion: %k", "\t prototype: stack"]),
])
def test_printa_conversions_fit_the_keys(tmp_path, program, lines):
    err = refused(tmp_path, program)
    for line in lines:
        assert line in err, err


def test_printa_k_of_a_stack_key(tmp_path):
    # %k prints the key's frames (a newline, then one indented frame a line), %@d its count
    r = run_d(tmp_path, 'BEGIN { @[stack()] = sum(5); printa("%k|%@d\\n", @); exit(0); }')
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert text.startswith("\n              vmlinux`"), text
    assert "|5\n" in text and text.count("|") == 1, text


@pytest.mark.parametrize("call, message", [
    # dt_cg_agg_llquantize's rules on factor, magnitudes and steps
    ("llquantize(1, 10, 2, 6, 80)", "must evenly divide pow(argument #1 (factor), lmag "
                                    "(argument #2) + 1) when steps>factor and lmag>0"),
    ("llquantize(1, 10, 0, 6, 30)", "must evenly divide the square of argument #1 (factor)"),
    ("llquantize(1, 10, 0, 6, 3)", "must evenly divide argument #1 (factor) when steps<factor"),
    ("llquantize(1, 10, 0, 6, 15)", "must be a multiple of argument #1 (factor)"),
    ("llquantize(1, 10, 0, 6, 65536)", "argument #4 must be an unsigned 16-bit quantity"),
    ("llquantize(1, 1, 0, 6, 20)", "argument #1 must be an unsigned 16-bit quantity greater"),
    ("llquantize(1, 10, 4, 2, 20)", "(high magnitude) must be at least argument #2"),
])
def test_llquantize_parameters_refused(tmp_path, call, message):
    err = refused(tmp_path, f"BEGIN {{ @ = {call}; }}")
    assert message in err, err


def test_lquantize_range_need_not_be_a_multiple_of_the_step(tmp_path):
    # lquantize(v, 0, 10, 3): levels 0, 3, 6 (10 // 3 = 3); 9 and above overflow
    r = run_d(tmp_path, 'BEGIN { @ = lquantize(7, 0, 10, 3); @ = lquantize(9, 0, 10, 3);'
                        ' exit(0); }')
    assert r.stdout == ("\n\n" + HIST_HEAD + row("3", 0, 2) + row("6", 1, 2) + row(">= 9", 1, 2)
                        + "\n"), r.stderr


# the lock subroutines read the lock at its address, and NULL is a char * D accepts where
# a string goes: an unmapped address is a bad-address fault (arg4 1, arg5 the address)
@pytest.mark.parametrize("call, address", [
    ("mutex_owned(0)", 0), ("mutex_owner(8)", 8), ("rw_read_held(0)", 0),
    ("rw_write_held(16)", 16), ("rw_iswriter(0)", 0), ("mutex_type_adaptive(0)", 0),
    ("strlen(0)", 0), ('strtok("abc", NULL)', 0), ('strjoin(NULL, "a")', 0),
    ("cleanpath(NULL)", 0),
])
def test_reading_an_unmapped_address_faults(tmp_path, call, address):
    r = run_d(tmp_path, f'BEGIN {{ trace({call}); }}\n'
                        'ERROR { printf("%d %d\\n", arg4, arg5); exit(0); }')
    assert r.stdout == f"1 {address}\n\n", r.stderr


@pytest.mark.parametrize("call, message", [
    ("d_path(0)", "only fentry/LSM programs may call"),
    ("usym(0)", "needs the address recorded with its process"),
    ("jstack()", "ustack helpers"),
])
def test_left_out_subroutines_say_why(tmp_path, call, message):
    err = refused(tmp_path, f"BEGIN {{ trace({call}); }}")
    assert message in err, err


@pytest.mark.parametrize("program, message", [
    ('BEGIN { strtok(1234, "abc"); }', "strtok() argument 1 must be a string, not int"),
    ('BEGIN { strtok("abc", 1234); }', "strtok() argument 2 must be a string, not int"),
    ("BEGIN { strlen(12); }", "strlen() argument 1 must be a string, not int"),
])
def test_integers_other_than_null_are_not_strings(tmp_path, program, message):
    err = refused(tmp_path, program)
    assert message in err, err


def test_each_stack_is_symbolised_once_however_often_it_is_read(workloads):
    """A live view reads the aggregations every second: a stack already named is not
    named again (its id names the same stack for the map's life)."""
    from dtrace_nb.session import Session, SessionConfig

    n = 200_000  # a target that lives long enough for its mappings to be read
    s = Session(SessionConfig("pid$target::dtnb_work:entry { @[ustack()] = count(); }",
                              target_command=f"{workloads['userprobes']} {n}", quiet=True))
    s.start()
    try:
        while s.poll(50):  # polling reads the target's mappings while it lives
            pass
        named = []
        reader = s._pipe._reader
        symbolise = reader.stack_text
        reader.stack_text = lambda *a: named.append(a) or symbolise(*a)
        texts = [s.snapshot()[""].to_frame() for _ in range(3)]
    finally:
        s.stop()
    assert len(named) == 1  # one stack (dtnb_work's entry), named at the first read
    for df in texts:
        assert df["count"].tolist() == [n]
        assert "userprobes`dtnb_work+0x0" in df.iloc[0, 0] and "libc.so.6`" in df.iloc[0, 0]
