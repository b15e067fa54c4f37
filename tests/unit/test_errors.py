"""Bad D input: each gives one DError with the line:column and what was expected.

Parse errors come from the parser; the rest from the checker, which needs the probe catalog
(reading tracefs and unistd headers, no BPF).
"""

from __future__ import annotations

import pytest

from dtrace_nb.errors import DError
from dtrace_nb.runtime.compile import compile_program
from dtrace_nb.session import SessionConfig
from tests.fakeprobes import fake_catalog
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
    ("BEGIN { `x; }", "1:9", "invalid character '`'"),
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
    ('BEGIN { printf("%k\\n", 1); }', "1:16", "invalid conversion 'k'"),
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
