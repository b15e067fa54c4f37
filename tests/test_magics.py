"""The %%dtrace magic in an in-process IPython shell, against the real kernel."""

from __future__ import annotations

import pytest
from IPython.testing.globalipapp import start_ipython
from IPython.utils.capture import capture_output

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def ip():
    shell = start_ipython()
    shell.run_line_magic("load_ext", "dtrace_nb")
    yield shell
    shell.run_line_magic("reset", "-f")


def test_cell_magic_counts_and_stores_result(ip, workloads):
    with capture_output() as cap:
        ip.run_cell_magic("dtrace", f'-q -c "{workloads["sysload"]} getppid 321" -o r',
                          "syscall::getppid:entry /pid == $target/ { @n[probefunc] = count(); }")
    r = ip.user_ns["r"]
    assert r.aggregations["n"].to_dict("list") == {"probefunc": ["getppid"], "count": [321]}
    assert "getppid" in cap.stdout and "321" in cap.stdout  # DTrace's text at the end
    # the live area was displayed with a plain-text fallback and updated at the end
    assert cap.outputs and all("text/plain" in o.data for o in cap.outputs)


def test_line_magic_and_dollar_signs_survive(ip):
    """$target, $pid and braces reach D untouched (no IPython variable expansion)."""
    ip.user_ns["pid"] = 99999  # must not be substituted
    with capture_output():
        result = ip.run_line_magic("dtrace", "-q -n 'BEGIN { printf(\"%d\", $pid); exit(0); }'")
    import os

    assert result.output == f"{os.getpid()}\n"


def test_syntax_error_is_one_caret_pointed_message(ip):
    with capture_output() as cap:
        res = ip.run_cell("%%dtrace\nBEGIN { x = 1 y = 2; }")
    assert res.error_in_exec is not None
    text = cap.stderr + cap.stdout
    assert "UsageError" in text and "1:15" in text and "^" in text
    assert "Traceback" not in text


def test_list_probes_as_dataframe(ip):
    df = ip.run_line_magic("dtrace", "-l -n syscall::getppid:")
    assert df[["PROVIDER", "FUNCTION", "NAME"]].values.tolist() == [
        ["syscall", "getppid", "entry"], ["syscall", "getppid", "return"]]
