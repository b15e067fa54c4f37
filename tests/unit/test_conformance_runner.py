"""bench/conformance judges a dtrace-utils-style suite as runtest.sh would.

Each test builds a tiny suite of its own in a temporary folder (the real suite never enters
the project): option inheritance, .x programs, the comparison rules, the tag rule, and one run
through the real dtrace-nb command on the kernel (tests/test_conformance_runner.py).
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from bench.conformance.capabilities import Capabilities
from bench.conformance.execute import Outcome, command
from bench.conformance.judge import judge
from bench.conformance.suite import discover
from bench.conformance.triggers import Triggers

def write(path: Path, text: str, executable: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def make_suite(tmp_path: Path) -> Path:
    """A suite of a few tests, in the shapes dtrace-utils' tests come in."""
    unit = tmp_path / "test" / "unittest"
    write(unit / "test.options", "@@runtest-opts: -q\n")
    write(unit / "cat" / "tst.hello.d", 'BEGIN { printf("b\\na\\n"); exit(0); }\n')
    write(unit / "cat" / "tst.hello.r", "a\nb\n\n")
    write(unit / "cat" / "tst.order.d", "/* @@nosort */\nBEGIN { exit(0); }\n")
    write(unit / "cat" / "tst.order.r", "a\nb\n")
    write(unit / "cat" / "err.D_IDENT_UNDEF.x.d", "BEGIN { x = y; }\n")
    write(unit / "cat" / "err.D_IDENT_UNDEF.x.r", "-- @@stderr --\nfailed: [D_IDENT_UNDEF] y\n")
    write(unit / "cat" / "tst.later.d", "/* @@skip: not today */\nBEGIN { exit(0); }\n")
    write(unit / "cat" / "tst.flaky.d", "BEGIN { exit(0); }\n")
    write(unit / "cat" / "tst.flaky.x", "#!/bin/sh\necho why not\nexit 1\n", executable=True)
    write(unit / "cat" / "tst.ptr.d", "BEGIN { exit(0); }\n")
    write(unit / "cat" / "tst.ptr.r", "at {ptr}\n")
    write(unit / "cat" / "tst.ptr.r.p", "#!/bin/sh\ntr A-Z a-z\n", executable=True)
    write(unit / "other" / "tst.fbt.d", "/* fbt::x:entry in a comment */\nfbt::vfs_read:entry {}\n")
    write(unit / "other" / "test.options", "@@runtest-opts: -w\n")
    write(unit / "other" / "tst.w.d", "BEGIN { exit(0); }\n")
    return tmp_path


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    return make_suite(tmp_path)


def by_name(tests):
    return {t.name: t for t in tests}


def test_discovery_and_options(suite):
    tests = by_name(discover(suite))
    assert set(tests) == {"tst.hello.d", "tst.order.d", "err.D_IDENT_UNDEF.x.d", "tst.later.d",
                          "tst.flaky.d", "tst.ptr.d", "tst.fbt.d", "tst.w.d"}
    assert tests["tst.hello.d"].option("runtest-opts") == "-q"      # from test/unittest
    assert tests["tst.w.d"].option("runtest-opts") == "-w"          # the nearer file wins
    assert tests["tst.order.d"].option("nosort") == ""
    assert tests["tst.order.d"].option("sort") is None
    assert tests["err.D_IDENT_UNDEF.x.d"].expected_tag == "D_IDENT_UNDEF"
    assert tests["err.D_IDENT_UNDEF.x.d"].expected_exit == 1
    assert tests["tst.later.d"].expectation() == ("skip", "not today")
    assert tests["tst.flaky.d"].expectation() == ("xfail", "why not")
    assert tests["tst.hello.d"].expectation() == ("run", "")
    assert [t.name for t in discover(suite, only=["other"])] == ["tst.fbt.d", "tst.w.d"]


def test_command_line_as_runtest_builds_it(suite):
    tests = by_name(discover(suite))
    argv, background, _ = command(tests["err.D_IDENT_UNDEF.x.d"], "DT", Triggers(suite), [])
    assert argv == ["DT", "-xerrtags", "-s", "test/unittest/cat/err.D_IDENT_UNDEF.x.d", "-q"]
    assert background is None


def outcome(stdout="", stderr="", status=0):
    return Outcome(["dt"], stdout, stderr, status, 0.1)


def test_comparison_rules(suite):
    tests = by_name(discover(suite))
    # sorted by line unless @@nosort
    assert judge(tests["tst.hello.d"], outcome("b\na\n\n"), False).verdict == "PASS"
    assert judge(tests["tst.order.d"], outcome("b\na\n"), False).verdict == "FAIL"
    assert judge(tests["tst.order.d"], outcome("a\nb\n"), False).verdict == "PASS"
    # stderr joins the output after a marker; a wrong status fails even with equal output
    assert judge(tests["tst.hello.d"], outcome("a\nb\n\n", "note\n"), False).verdict == "FAIL"
    assert "exitcode (2)" in judge(tests["tst.hello.d"], outcome("a\nb\n\n", status=2),
                                   False).reason
    # the post-processor runs, then addresses become {ptr}
    assert judge(tests["tst.ptr.d"], outcome("AT 0xffff8\n"), False).verdict == "PASS"
    # XFAIL when the suite expects the failure, XPASS when it passes anyway
    assert judge(tests["tst.flaky.d"], outcome(status=1), True).verdict == "XFAIL"
    assert judge(tests["tst.flaky.d"], outcome(), True).verdict == "XPASS"


def test_err_tests_need_the_tag(suite):
    t = by_name(discover(suite))["err.D_IDENT_UNDEF.x.d"]
    untagged = judge(t, outcome(stderr="failed: y\n", status=1), False)
    assert untagged.verdict == "FAIL" and "expected tag D_IDENT_UNDEF" in untagged.reason
    assert judge(t, outcome(stderr="failed: [D_IDENT_UNDEF] y\n", status=1),
                 False).verdict == "PASS"
    accepted = judge(t, outcome(stderr="failed: [D_IDENT_UNDEF] y\n", status=0), False)
    assert "exitcode (0)" in accepted.reason


def test_capabilities_read_probe_descriptions_not_comments(suite, tmp_path):
    tests = by_name(discover(suite))
    without = Capabilities(tracefs=tmp_path / "no-tracefs")
    assert "kprobes" in without.missing(tests["tst.fbt.d"])
    assert without.missing(tests["tst.w.d"]) is None
    write(tmp_path / "tracefs" / "kprobe_events", "")
    assert Capabilities(tracefs=tmp_path / "tracefs").missing(tests["tst.fbt.d"]) is None


def test_kernel_variable_refusals_skip_only_where_kallsyms_lacks_data_symbols(tmp_path):
    refused = ("dtrace: failed to compile script t.d: line 3: `max_pfn: kernel variables "
               "cannot be read here: this kernel's /proc/kallsyms lists no data symbols\n")
    sparse = write(tmp_path / "sparse", "ffffffff81000000 T _text\n"
                   "ffffffff82000000 D jiffies\n")
    full = write(tmp_path / "full", "".join(f"ffffffff8{i:07x} D v{i}\n" for i in range(1000)))
    lacking = Capabilities(tracefs=tmp_path, kallsyms=sparse)
    assert not lacking.kernel_data_symbols
    reason = lacking.refused_for_lack(refused)
    assert "`max_pfn" in reason and "CONFIG_KALLSYMS_ALL" in reason
    assert lacking.refused_for_lack("dtrace: failed to compile script t.d: line 3: x\n") is None
    # where kallsyms lists data symbols the refusal is dtrace-nb's failure, not a skip
    assert Capabilities(tracefs=tmp_path, kallsyms=full).refused_for_lack(refused) is None
    assert not Capabilities(tracefs=tmp_path, kallsyms=tmp_path / "absent").kernel_data_symbols


def test_triggers_built_with_the_build_files_flags(tmp_path):
    folder = tmp_path / "test" / "triggers"
    write(folder / "Build", "spin_CFLAGS := -DMESSAGE=42\n")
    write(folder / "spin.c", "int main(void) { return MESSAGE - 42; }\n")
    write(folder / "usdt-x.c", "int main(void) { return 0; }\n")
    write(folder / "usdt-x-prov.d", "provider x { probe y(); };\n")
    triggers = Triggers(tmp_path)
    assert triggers.why_not("spin") is None
    assert subprocess.run([str(folder / "spin")]).returncode == 0
    assert "dtrace -h/-G" in triggers.why_not("usdt-x")
    assert "not found" in triggers.why_not("nothing")
