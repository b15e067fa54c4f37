"""What a %%dtrace cell shows, without a kernel: tables, histogram buckets and labels, the
cell's mimebundle, and compile errors in notebook terms (against the fixed fake catalog)."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

from dtrace_nb.display.cell import CellContent, CellView
from dtrace_nb.display.controlbar import BarState
from dtrace_nb.display.plots import _label, fill_buckets, histogram_figure, histogram_png, \
    unit_of
from dtrace_nb.display.suggest import render_in_cell
from dtrace_nb.display.tables import column_name, table_html, table_text
from dtrace_nb.errors import DError
from tests.fakeprobes import fake_catalog


def test_tables_are_largest_first_with_separators_and_unquoted_key_names():
    df = pd.DataFrame({'"pread64"': ["a", "b", "c"], "count": [5, 1234567, 80]})
    html = table_html("@n", "count", df)
    assert html.index("1,234,567") < html.index(">80<") < html.index(">5<")
    assert '"pread64"' not in html and ">pread64</th>" in html
    assert html.count("background:#4c78a8") == 3  # a bar per row
    assert "3 keys" in html
    text = table_text("@n", "count", df, max_rows=2)
    assert text.splitlines()[0] == "@n (1 more rows)" and "1,234,567" in text
    assert column_name('"x"') == "x" and column_name("execname") == "execname"


def test_a_histograms_table_is_its_keys_totals():
    df = pd.DataFrame({"execname": ["a", "a", "b"], "value": [1, 2, 4], "count": [1, 2, 30]})
    html = table_html("@h", "quantize", df)
    assert html.index(">30<") < html.index(">3<")
    assert table_html("@h", "quantize", df[["value", "count"]]) == ""  # keyless: the picture


def test_every_bucket_between_the_lowest_and_the_highest():
    frame = pd.DataFrame({"value": [1, 64], "count": [3, 4]})
    filled = fill_buckets("quantize", frame)
    assert filled["value"].tolist() == [1, 2, 4, 8, 16, 32, 64]
    assert filled["count"].tolist() == [3, 0, 0, 0, 0, 0, 4]
    lin = pd.DataFrame({"value": [0, 10, 40, 50], "count": [1, 2, 3, 4]})
    assert fill_buckets("lquantize", lin)["value"].tolist() == [0, 10, 20, 30, 40, 50]


def test_labels_know_their_units():
    assert _label(4096, "bytes") == "4 KiB" and _label(1 << 20, "bytes") == "1 MiB"
    assert _label(1500, "ns") == "1.5 µs" and _label(2_000_000, "ns") == "2 ms"
    assert _label(524288) == "524,288" and _label(67108864) == "67,108,864"
    assert unit_of("@lat", "timestamp - self->ts") == "ns"
    assert unit_of("@bytes", "arg2") == "bytes" and unit_of("@n", "arg0") == ""


def test_histogram_figure_says_how_many_keys_it_shows_and_goes_log_when_wide():
    rows = [(f"k{i}", 1 << j, 10 ** (j % 4) + i) for i in range(9) for j in range(4)]
    df = pd.DataFrame(rows, columns=["key", "value", "count"])
    fig = histogram_figure({"@q": ("quantize", df)})
    assert len(fig.axes) == 6 and fig._suptitle.get_text() == "6 of 9 keys shown"
    assert fig.axes[0].get_xscale() == "log"
    assert len(histogram_figure({"@q": ("quantize", df)}, keys=2, log=False).axes) == 2


def test_a_finished_cell_stores_its_picture_once_and_folds_dtraces_text():
    df = pd.DataFrame({"value": [1, 2], "count": [3, 4]})
    png = histogram_png({"@q": ("quantize", df)})
    content = CellContent(frames={"@q": df}, funcs={"@q": "quantize"}, png=png,
                          lines=[f"line {i}\n" for i in range(3000)],
                          final_text="\n  value  count\n      1  3\n", errors=12,
                          first_error="dtrace: error on enabled probe ID 1 (...): invalid "
                                      "address (0x0) in action #1", live=False)
    bar = BarState(stage="done (duration)", elapsed=3.0, duration=3.0, errors=12)
    bundle = CellView(bar.html(), bar.text(), content)._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    html = bundle["text/html"]
    assert len(re.findall("data:image/png;base64,", html)) == 1
    assert base64.b64encode(png).decode() in html
    assert html.count("<details>") == 1
    assert "3,000 lines of output (the first and last 500; r.output has them all)" in html
    assert "12 errors; the first: dtrace: error on enabled probe ID 1" in html
    assert "#c62828" in bar.html()  # red: there were errors
    assert bundle["text/plain"].startswith("dtrace-nb: done (duration) · 3.0 s of 3 s")


@pytest.mark.parametrize("source, meant", [
    ("syscall::raed:entry { }", "syscall::read:entry"),
    ("sycall::read:entry { }", "syscall::read:entry"),
    ("profile:::tick-1s { @ = sum(argg2); }", "arg2"),
])
def test_did_you_mean(source, meant):
    from dtrace_nb.runtime.compile import compile_program
    from dtrace_nb.session import SessionConfig

    catalog = fake_catalog()
    with pytest.raises(DError) as info:
        compile_program(SessionConfig(source), catalog, None)
    text = render_in_cell(info.value, source, line_offset=1, catalog=catalog)
    assert f"did you mean: {meant}" in text
    assert re.search(r": 2:\d+: ", text) and "   2 | " in text  # the cell's line
    assert "dtrace-nb -l" not in text
