"""Golden files of generated C: each D program in tests/golden/NAME.d compiles, against
the fixed fake catalog (tests/fakeprobes.py), to exactly tests/golden/NAME.c.golden.

The fixed helper headers (prelude.h, strings.h, ...) are shown by name, not copied into
every file. When code generation changes on purpose, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py -q
    git diff tests/golden/

(see tests/golden/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dtrace_nb.codegen import header
from tests.fakeprobes import compile_c

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
PROGRAMS = sorted(GOLDEN.glob("*.d"))
MACRO_ARGS = ("41", "hello")
HEADERS = ("prelude.h", "strings.h", "aggregate.h", "addresses.h", "fault.h", "speculation.h",
           "translated.h")


def golden_text(source: str) -> str:
    _checked, program = compile_c(source, macro_args=MACRO_ARGS)
    text = program.c_source
    for name in HEADERS:
        body = header(name)
        assert text.count(body) <= 1, name
        text = text.replace(body, f"/* [{name}: dtrace_nb/codegen/{name}] */\n")
    return text


def test_there_are_golden_programs():
    assert len(PROGRAMS) >= 20


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_generated_c_is_the_golden_file(path):
    text = golden_text(path.read_text())
    expected = path.with_suffix(".c.golden")
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected.write_text(text)
        return
    assert expected.exists(), f"no golden file {expected.name}: run with UPDATE_GOLDEN=1"
    want = expected.read_text()
    if text != want:
        import difflib

        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True),
                                            expected.name, "generated", n=2))
        pytest.fail(f"generated C differs from {expected.name} (UPDATE_GOLDEN=1 to accept, "
                    f"then review git diff):\n{diff[:6000]}")
