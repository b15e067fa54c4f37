"""No C injection: what a user writes (identifiers, string literals, printf formats, probe
descriptions, -x option values) never reaches the generated C unescaped.

Each hostile string (quotes, backslashes, comment delimiters, line breaks, #include, NUL,
% sequences) in each place either is refused with a located DError (a -x value: a usage
error naming the option) or compiles to C in which it appears only inside the header
comments, harmlessly; a few run on the real kernel through `python -m dtrace_nb.cli -q`
and print the hostile string back byte for byte.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dtrace_nb.errors import DError, DUsageError
from dtrace_nb.runtime.compile import compile_program
from dtrace_nb.session import SessionConfig
from tests.dfuzz import assert_c_header_safe, catalog

REPO = Path(__file__).resolve().parents[1]
MARK = "PWNED"  # in every payload: must never be found in the C outside the header comments

HOSTILE = [
    f'" {MARK}', f"\\ {MARK}", f"*/ {MARK} /*", f"*/ }} int {MARK}(void) {{ return 0; }} /*",
    f"\n#include <linux/{MARK}.h>\n", f"\0{MARK}", f"%n%s%p%% {MARK}", f"\r{MARK}\\",
    f"??/ {MARK}", f"\\\n{MARK}", f"' {MARK} '", f"$(reboot) {MARK}", f"\u2028{MARK}",
]


def d_escape(text: str) -> str:
    """`text` as the body of a D string literal."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


def body_of(source: str, c: str) -> str:
    """The generated C without its header comments (the D source, one line each)."""
    n = 1 + min(200, len(source.splitlines()))
    return "\n".join(c.split("\n")[n:])


def outcome(source: str, **cfg) -> str:
    try:
        _, program = compile_program(SessionConfig(source, **cfg), catalog())
    except DUsageError as err:
        assert cfg.get("options"), f"a usage error without -x: {err}"
        assert any(name in err.message for name in cfg["options"]), str(err)
        return "refused"
    except DError as err:
        assert err.span is not None and f"{err.span.line}:{err.span.col}: " in str(err), \
            f"unlocated error for {source!r}: {err}"
        return "refused"
    assert_c_header_safe(source, program.c_source)
    assert MARK not in body_of(source, program.c_source), \
        f"user text reached the C for {source!r}"
    return "compiled"


PLACES = {
    "identifier": lambda h: f"BEGIN {{ ab{h}cd = 1; trace(ab); }}",
    "string literal (escaped)": lambda h: f'BEGIN {{ printf("%s", "{d_escape(h)}"); }}',
    "string literal (raw)": lambda h: f'BEGIN {{ trace("{h}"); }}',
    "printf format": lambda h: f'BEGIN {{ printf("{d_escape(h)}"); }}',
    "printf format (raw)": lambda h: f'BEGIN {{ printf("{h}"); }}',
    "probe description": lambda h: f"syscall::read{h}:entry {{ }}",
    "probe description (start)": lambda h: f"{h}BEGIN {{ }}",
    "comment": lambda h: f"BEGIN {{ trace(1); }} /* {h.replace('*/', '')} */ // {h}",
    "aggregation key": lambda h: f'BEGIN {{ @["{d_escape(h)}"] = count(); }}',
    "macro argument": lambda h: "BEGIN { trace($$1); }",
}


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_is_refused_or_stays_out_of_the_c(place, hostile):
    source = PLACES[place](hostile)
    outcome(source, macro_args=[hostile])


def test_escaped_strings_compile_and_raw_newlines_do_not():
    assert outcome(PLACES["string literal (escaped)"](HOSTILE[4])) == "compiled"
    assert outcome(PLACES["string literal (raw)"](HOSTILE[4])) == "refused"


@pytest.mark.parametrize("name", ["strsize", "bufsize", "aggkeys", "nspec", "bufpolicy",
                                  "dynvarsize", "switchrate", "quiet"])
@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_option_values(name, hostile):
    outcome("BEGIN { @[1] = count(); trace(1); }", options={name: hostile})


# --- on the kernel, through the command --------------------------------------------------

def cli(*args: str, source_file: Path | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "dtrace_nb.cli", "-q", *args]
    if source_file is not None:
        argv += ["-s", str(source_file)]
    return subprocess.run(argv, cwd=REPO, capture_output=True, timeout=120)


STRING = 'q"b\\s*/ /* #include <x.h>\n%d%%%s\t\'??/' + MARK


@pytest.mark.kernel
def test_hostile_string_literal_prints_back_byte_for_byte():
    program = (f'BEGIN {{ printf("%s|", "{d_escape(STRING)}"); trace("{d_escape(STRING)}"); '
               'exit(0); }')
    done = cli("-n", program)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == (STRING + "|" + STRING + "\n").encode()


@pytest.mark.kernel
def test_hostile_printf_format_prints_back_byte_for_byte():
    fmt = '*/ " \\ #include <stdio.h> %% %s \' ??/ */\n'
    done = cli("-n", f'BEGIN {{ printf("{d_escape(fmt)}", "x"); exit(0); }}')
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b'*/ " \\ #include <stdio.h> % x \' ??/ */\n\n'


@pytest.mark.kernel
def test_c_names_as_d_identifiers():
    names = ["NULL", "DT_STRSIZE", "__LINE__", "asm", "ctx", "dt_s", "main", "dtnb_rb",
             "bpf_probe_read", "BPF_HASH", "__attribute__", "_Pragma", "defined"]
    sets = " ".join(f"{n} = {i};" for i, n in enumerate(names, 1))
    fmt = " ".join("%d" for _ in names)
    done = cli("-n", f'BEGIN {{ {sets} this->asm = 20; self->ctx = 30; a[1] = 40; '
                     f'printf("{fmt} %d %d %d\\n", {", ".join(names)}, this->asm, self->ctx, '
                     'a[1]); exit(0); }')
    assert done.returncode == 0, done.stderr.decode()
    expected = " ".join(str(i) for i in range(1, len(names) + 1)) + " 20 30 40\n\n"
    assert done.stdout.decode() == expected


@pytest.mark.kernel
def test_nul_and_comment_closers_in_the_source_file(tmp_path):
    """A NUL in the D source used to end the C text bcc compiled (its header comments show
    the D source), leaving an unterminated comment."""
    script = tmp_path / "nul.d"
    script.write_bytes(b'BEGIN { printf("%s|", "ab\0cd"); printf("after\\n"); exit(0); }\n'
                       b"/* \0 ** \\\n*/ // */ #include <x.h>\n")
    done = cli(source_file=script)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"ab|after\n\n"


@pytest.mark.kernel
def test_hostile_probe_description_is_a_located_one_line_error():
    done = cli("-n", 'syscall::read"*/:entry { trace(1); }')
    err = done.stderr.decode()
    assert done.returncode == 1 and done.stdout == b""
    # dtrace(1)'s line first, then ours with the line:column
    assert err.startswith("dtrace: invalid probe specifier ")
    assert "1:14: " in err.splitlines()[1] and "Traceback" not in err


@pytest.mark.kernel
def test_hostile_option_value_is_a_usage_error_or_harmless():
    done = cli("-x", f"strsize=1 */ #include <{MARK}.h>", "-n", "BEGIN { exit(0); }")
    assert done.returncode != 0 and done.stdout == b""
    assert done.stderr.decode().startswith("dtrace: failed to set -x strsize: Invalid value")
    assert "dtrace: usage error: option strsize: " in done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
    done = cli("-x", f'bufpolicy=*/ "{MARK}\\', "-n", 'BEGIN { printf("ok\\n"); exit(0); }')
    assert done.returncode == 0 and done.stdout == b"ok\n\n", done.stderr.decode()
