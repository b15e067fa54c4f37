"""Whether a test passed, by runtest.sh's rules.

The output compared is stdout, then `-- @@stderr --` and stderr when stderr is not empty
(debug lines left out), through the test's `.r.p` when it has one, then every `0x...` made
`{ptr}` and `at BPF pc N` made `at BPF pc NNN`; it is compared with the `.r` file sorted by
line (C collation) unless @@nosort. A failure is, in runtest.sh's order: an expected
`[D_XXX]` tag missing from stderr, a timeout (unless @@timeout-success), an exit status other
than the expected one (0 for tst./drp., 1 for err.), or output that differs. A test the suite
expects to fail (@@xfail, a .x program) is XFAIL when it fails and XPASS when it passes.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import subprocess

from bench.conformance.execute import TIMED_OUT, Outcome
from bench.conformance.suite import Test

DEBUG_LINE = re.compile(r"^[a-z_]+ DEBUG [0-9]+: ")
VALGRIND_LINE = re.compile(r"^==[0-9]+== ")


@dataclasses.dataclass
class Verdict:
    verdict: str                 # PASS FAIL XFAIL XPASS
    reason: str = ""
    diff: str = ""
    tag_found: bool = False
    output_matches: bool | None = None


def _stderr(text: str) -> str:
    kept = [line for line in text.splitlines(keepends=True) if not DEBUG_LINE.match(line)]
    return "".join(kept).replace("Invalid member name", "Member name not found")


def _pointers(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        if not VALGRIND_LINE.match(line):
            line = re.sub(r"0x[0-9a-f]+", "{ptr}", line)
        lines.append(re.sub(r"at BPF pc [1-9][0-9]*", "at BPF pc NNN", line))
    return "".join(lines)


def compared_output(test: Test, outcome: Outcome) -> tuple[str, str | None]:
    """(the text runtest.sh compares, an error of the post-processor or None)."""
    text = outcome.stdout
    stderr = _stderr(outcome.stderr)
    if stderr:
        text += "-- @@stderr --\n" + stderr
    problem = None
    post = test.postprocessor
    if post is not None:
        done = subprocess.run([str(post)], input=text, cwd=test.root, capture_output=True,
                              text=True)
        if done.returncode == 0:
            text = done.stdout
        else:
            problem = f"results postprocessor failed with exitcode {done.returncode}"
    return _pointers(text), problem


def _lines(text: str, nosort: bool) -> list[str]:
    lines = text.splitlines()
    return lines if nosort else sorted(lines, key=lambda s: s.encode())


def judge(test: Test, outcome: Outcome, expect_failure: bool) -> Verdict:
    text, problem = compared_output(test, outcome)
    reasons = []
    diff = ""
    matches = None
    expected = test.expected_file
    if expected is not None:
        nosort = test.option("nosort") is not None
        want = _lines(expected.read_text(errors="replace"), nosort)
        got = _lines(text, nosort)
        matches = want == got
        if not matches:
            reasons.append("expected results differ")
            diff = "\n".join(list(difflib.unified_diff(want, got, "expected", "output",
                                                      lineterm="", n=1))[:60])
    if problem:
        reasons.append(problem)
    tag = test.expected_tag
    tag_found = bool(tag) and f"[{tag}]" in _stderr(outcome.stderr)
    if tag and not tag_found:
        reasons.append(f"expected tag {tag}")
    if outcome.status == TIMED_OUT and test.option("timeout-success") is None:
        reasons.append("timed out")
    elif outcome.status != test.expected_exit and outcome.status != TIMED_OUT:
        reasons.append(f"erroneous exitcode ({outcome.status})")
    failed = bool(reasons)
    if expect_failure:
        unstable = "unstable" in (test.option("tags") or "")
        verdict = "XFAIL" if failed or unstable else "XPASS"
    else:
        verdict = "FAIL" if failed else "PASS"
    return Verdict(verdict, "; ".join(reasons), diff, tag_found, matches)
