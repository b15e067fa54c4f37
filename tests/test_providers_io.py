"""io:::start and io:::done name a request alike (arg0), so the book's latency idiom
`start[arg0] = timestamp` finds it again at done: a known number of O_DIRECT reads, each
one block request, are all matched and their latency is printed."""

from __future__ import annotations

import os
import sys

import pytest

from tests.test_language import run_d
from tests.test_providers import agg_rows, ok

pytestmark = pytest.mark.kernel
READS = 24
BLOCK = 4096

READER = f"""
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, {BLOCK})  # page-aligned, as O_DIRECT wants
for i in range({READS}):
    os.preadv(fd, [buf], i * 2 * {BLOCK})  # every other block: no two requests merge
"""

LATENCY = r"""
io:::start /pid == $target && args[0]->b_flags & 0x40/  /* B_READ */
{
	start[arg0] = timestamp;
	@n["started"] = count();
}
io:::done /start[arg0]/
{
	@n["done"] = count();
	@lat = quantize(timestamp - start[arg0]);
	@bytes["bytes"] = sum(args[0]->b_bcount);
	start[arg0] = 0;
}
"""


def test_start_and_done_match_by_arg0(tmp_path):
    data = tmp_path / "direct.dat"
    with open(data, "wb") as f:
        f.write(os.urandom(READS * 2 * BLOCK))
        f.flush()
        os.fsync(f.fileno())
    script = tmp_path / "reader.py"
    script.write_text(READER)
    out = ok(run_d(tmp_path, LATENCY, extra=("-c", f"{sys.executable} {script} {data}")))
    rows = agg_rows(out)
    assert rows["started"] == READS, out
    assert rows["done"] == READS, out
    assert rows["bytes"] == READS * BLOCK, out
    assert "value  ------------- Distribution ------------- count" in out
