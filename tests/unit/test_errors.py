"""Bad D input: each gives one DError with the line:column and what was expected.

Parse errors come from the parser; the rest from the checker, which needs the probe catalog
(reading tracefs and unistd headers, no BPF).
"""

from __future__ import annotations

import pytest

from dtrace_nb.errors import DError
from dtrace_nb.runtime.compile import compile_program
from dtrace_nb.session import SessionConfig
from tests.fakeprobes import compile_refusal, fake_catalog
from tests.unit.located import assert_located

CASES = [
    # (program, "line:col", substring of the message)
    ("BEGIN { x = 1 y = 2; }", "1:15", "unexpected identifier 'y'"),
    ("BEGIN\n{\n  trace(1)\n  trace(2);\n}", "4:3", "identifier 'trace': expected ';' or '}'"),
    ('BEGIN { printf("x"', "1:19", "missing '}' to close the '{' at 1:7"),
    ("BEGIN { trace((1 + 2); }", "1:22", "expected ')'"),
    ("syscall::read:entry { @a[1 = count(); }", "1:37", "expected ']'"),
    ('BEGIN { printf("\\q"); }', "1:16", "unknown escape sequence '\\q'"),
    ('BEGIN { printf("abc); }', "1:16", "unterminated string literal"),
    ("BEGIN { x = 1 ` 2; }", "1:15", "invalid character '`'"),
    ("BEGIN { trace(99999999999999999999999); }", "1:15", "does not fit in 64 bits"),
    ("BEGIN { trace(08); }", "1:15", "invalid octal constant"),
    ("BEGIN { trace(1 +); }", "1:18", "expected an expression"),
    ("BEGIN { trace(''); }", "1:15", "exactly one character"),
    ("#include <stdio.h>\nBEGIN {}", "1:1", "only '#pragma D"),
    ("BEGIN { trace(1); } }", "1:21", "unexpected '}'"),
    ("BEGIN /pid == 1 { }", "1:17", "unexpected '{': expected '/' closing the predicate"),
    ("syscall::nosuchcall:entry { }", "1:1", "does not match any probes"),
    ("profile:::tick-5parsecs { }", "1:1", "unknown unit 'parsecs'"),
    ("BEGIN { trace(nosuchvar); }", "1:15", "unknown variable 'nosuchvar'"),
    ("BEGIN { @a = count(); }\nEND { @a = sum(1); }", "2:12", "@a is used with sum() here but with count() at 1:9"),
    ("BEGIN { @a[1] = count(); }\nEND { @a[1, 2] = count(); }", "2:7", "@a has 1 key(s)"),
    ("BEGIN { @a = sum(); }", "1:14", "sum() takes 1 argument, 0 given"),
    ("BEGIN { @a = sum(execname); }", "1:18", "needs an integer argument"),
    ('BEGIN { printf("%d %d\\n", 1); }', "1:9", "needs 2 arguments, 1 given"),
    ('BEGIN { printf("%s\\n", 1); }', "1:24", "wants a string"),
    ('BEGIN { printf("%k\\n", 1); }', "1:24", "%k needs stack() or ustack()"),
    ("BEGIN { printf(execname); }", "1:9", "format string literal"),
    ("BEGIN { exit(); }", "1:9", "exit() takes 1 argument, 0 given"),
    ("BEGIN /execname/ { }", "1:8", "predicate must be an integer"),
    ("BEGIN { trace(execname + 1); }", "1:15", "needs integer operands"),
    ("BEGIN { trace(pid == execname); }", "1:15", "cannot compare"),
    ("BEGIN { @a = count(); @a += 1; }", "1:23", "cannot be applied to aggregation"),
    ("BEGIN { trace($3); }", "1:15", "macro argument $3 is not defined"),
    ("#pragma D option nosuchoption\nBEGIN {}", "1:1", "unknown option 'nosuchoption'"),
    ("#pragma D option bufsize=lots\nBEGIN {}", "1:1", "is not a size"),
    ("BEGIN { count(); }", "1:9", "may only be assigned to an aggregation"),
    ("BEGIN { frobnicate(1); }", "1:9", "unknown function 'frobnicate()'"),
]


@pytest.mark.parametrize("source, where, message", CASES, ids=[c[2][:30] for c in CASES])
def test_bad_input(source, where, message):
    with pytest.raises(DError) as info:
        compile_program(SessionConfig(source), fake_catalog())
    assert_located(info.value, source, where, message)


def test_cli_script_that_is_not_utf8(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.d"
    path.write_bytes(b"BEGIN { \xff }")
    done = subprocess.run([sys.executable, "-m", "dtrace_nb.cli", "-s", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "is not UTF-8 text (byte 8" in done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


# -- dtrace(1)'s one-line form, as a tool or the suite parses it -------------------------

DTRACE_LINES = [
    # (program, the line dtrace(1) prints under -x errtags for a script x.d)
    ("BEGIN\n{\n\ttrace(start);\n}",
     "[D_IDENT_UNDEF] line 3: failed to resolve start: Unknown variable name"),
    ("BEGIN { trace(); }", "[D_PROTO_LEN] line 1: trace( ) prototype mismatch: 0 args passed, "
                           "1 expected"),
    ('BEGIN { x = substr("a"); }', "[D_PROTO_LEN] line 1: substr( ) prototype mismatch: 1 arg "
                                   "passed, at least 2 expected"),
    ('BEGIN { x = substr("a", 1, 2, 3); }', "[D_PROTO_LEN] line 1: substr( ) prototype "
                                            "mismatch: 4 args passed, at most 3 expected"),
    ('BEGIN { exit("a"); }', "[D_PROTO_ARG] line 1: exit( ) argument #1 is incompatible with "
                             "prototype:\n\tprototype: int\n\t argument: string"),
    ("BEGIN { x = 1 +; }", '[D_SYNTAX] line 1: syntax error near ";"'),
    ("\n\nsyscall::nosuchcall:entry { }", "[D_PDESC_ZERO] line 3: probe description "
                                          "syscall::nosuchcall:entry does not match any probes"),
    ('BEGIN { printf("%d %s\\n", 1); }', "[D_PRINTF_ARG_PROTO] line 1: printf( ) prototype "
     "mismatch: conversion #2 (%s) is missing a corresponding value argument"),
    ('BEGIN { printf("%d\\n", 1, 2); }', "[D_PRINTF_ARG_EXTRA] line 1: printf( ) prototype "
     "mismatch: only 1 arguments required by this format string"),
    ('BEGIN { printf("%*d\\n"); }', '[D_PRINTF_DYN_PROTO] line 1: printf( ) prototype '
     'mismatch: conversion #1 (%d) is missing a corresponding "*" argument'),
    ('BEGIN { printf("%d\\n", "a"); }', "[D_PRINTF_ARG_TYPE] line 1: printf( ) argument #2 is "
     "incompatible with conversion #1 prototype:\n\tconversion: %d\n\t prototype: char, short, "
     "int, long, or long long\n\t  argument: string"),
    ("BEGIN { trace($3); }", "[D_MACRO_UNDEF] line 1: macro argument $3 is not defined"),
    ("BEGIN { speculate(1); exit(0); }", "[D_EXIT_SPEC] line 1: exit( ) may not follow "
                                         "speculate( )"),
    ("#pragma D option bufsize=lots\nBEGIN {}", "[D_PRAGMA_OPTSET] line 1: failed to set "
     "option 'bufsize' to 'lots': Invalid value for specified option"),
    ("BEGIN\n{\n\tc = 123 / ((7 - 7) * 999);\n}",
     "[D_DIV_ZERO] line 3: expression contains division by zero"),
    ("BEGIN { c = 123 % 0; }", "[D_DIV_ZERO] line 1: expression contains division by zero"),
    ("BEGIN { @ = sum(execname); }", "[D_AGG_SCALAR] line 1: sum( ) argument #1 must be of "
                                     "scalar type"),
    ("BEGIN { @ = lquantize(1, 10, 0, 1); }", "[D_LQUANT_MISMATCH] line 1: lquantize( ) base "
     "(argument #1) must be less than limit (argument #2)"),
    ("BEGIN { @ = llquantize(1, 10, 0, 6, 30); }", "[D_LLQUANT_STEPVAL] line 1: llquantize() "
     "argument #4 (steps) must evenly divide the square of argument #1 (factor) when "
     "steps>factor and lmag==0"),
    ('BEGIN { printf("%**d"); }', "[D_SYNTAX] line 1: format conversion #1 has more than one "
                                  "'*' specified for the output width"),
    ('BEGIN { @[stack()] = count(); printa("%p\\n", @); }', "[D_PRINTF_ARG_TYPE] line 1: "
     "printa( ) argument #2 is incompatible with conversion #1 prototype:\n\tconversion: %p\n"
     "\t prototype: pointer or integer\n\t  argument: stack"),
    ("#pragma D option nosuch\nBEGIN {}", "[D_PRAGMA_OPTSET] line 1: failed to set option "
                                          "'nosuch': Invalid option name"),
]


@pytest.mark.parametrize("source, expected", DTRACE_LINES, ids=[c[1][:32] for c in DTRACE_LINES])
def test_dtrace_line(source, expected):
    err = compile_refusal(source)
    line = err.dtrace_line("failed to compile script x.d", True, source)
    assert line == "dtrace: failed to compile script x.d: " + expected
    # without -x errtags, the same line without the tag; a -n program has no line number
    assert err.dtrace_line("c", False, source) == \
        "dtrace: c: " + expected.split("] ", 1)[1]
    assert err.dtrace_line("c", False, source, line_numbers=False) == \
        "dtrace: c: " + expected.split("] ", 1)[1].split(": ", 1)[1]


def cli_run(*args, env_extra=None):
    import os
    import subprocess
    import sys

    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "dtrace_nb.cli", *args], capture_output=True,
                          text=True, env=env)


def test_cli_compile_error_is_dtrace_line_then_caret_view(tmp_path):
    path = tmp_path / "x.d"
    path.write_text("BEGIN\n{\n\ttrace(start);\n}\n")
    done = cli_run("-x", "errtags", "-s", str(path))
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and done.stdout == ""
    assert lines[0] == (f"dtrace: failed to compile script {path}: [D_IDENT_UNDEF] line 3: "
                        "failed to resolve start: Unknown variable name")
    assert "3:8: unknown variable 'start'" in lines[1] and "^^^^^" in done.stderr
    # _DTRACE_TESTING (dtrace's testing mode) quiesces the part for people; no errtags, no tag
    done = cli_run("-s", str(path), env_extra={"_DTRACE_TESTING": "1"})
    assert done.stderr == (f"dtrace: failed to compile script {path}: line 3: failed to "
                           "resolve start: Unknown variable name\n")


def test_cli_probe_specifier_error_names_the_whole_description():
    done = cli_run("-n", "BEGIN { trace(x); }", env_extra={"_DTRACE_TESTING": "1"})
    assert done.returncode == 1
    assert done.stderr == ("dtrace: invalid probe specifier BEGIN { trace(x); }: failed to "
                           "resolve x: Unknown variable name\n")


@pytest.mark.parametrize("option, why", [
    ("bufsize=-1", "Invalid value for specified option"),
    ("strsize=1", "Invalid value for specified option"),
    ("nosuchoption", "Invalid option name"),
])
def test_cli_refused_option_is_dtrace_fatal(option, why):
    done = cli_run("-x", option, "-e", "-n", "BEGIN", env_extra={"_DTRACE_TESTING": "1"})
    name = option.partition("=")[0]
    assert (done.returncode, done.stderr) == (1, f"dtrace: failed to set -x {name}: {why}\n")


def test_cli_version_line():
    done = cli_run("-V")
    assert (done.returncode, done.stdout) == (0, "dtrace: Oracle D 2.0\n")


def test_cli_usage_error_is_status_2():
    done = cli_run("--no-such-flag")
    assert done.returncode == 2


def test_drop_messages_with_droptags():
    from dtrace_nb.text.messages import drop_messages

    drops = {("aggregation", 0): 3, ("dynamic variable", 1): 1, ("ring buffer", 1): 2}
    assert drop_messages(drops, droptags=True) == [
        "dtrace: [DTRACEDROP_AGGREGATION] 3 aggregation drops on CPU 0",
        "dtrace: [DTRACEDROP_PRINCIPAL] 2 drops on CPU 1",
        "dtrace: [DTRACEDROP_DYNAMIC] 1 dynamic variable drop"]
    assert drop_messages(drops)[0] == "dtrace: 3 aggregation drops on CPU 0"
