"""vminfo and sysinfo: arg0 is the increment. A program of ours touches a known number of
fresh pages at a fixed address and reads /dev/zero a known number of times; a vmstat-like
script of the book's shape prints a line a second."""

from __future__ import annotations

import re

import pytest

from tests.test_language import run_d
from tests.test_providers import build_c, agg_rows, ok

pytestmark = pytest.mark.kernel
PAGES, READS, SIZE = 300, 41, 777
BASE = 0x7E0000000000

FAULTER_C = r"""
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#define BASE ((char *)0x7e0000000000UL)
int main(int argc, char **argv)
{
	long pages = atol(argv[1]), reads = atol(argv[2]);
	char *p = mmap(BASE, pages * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != BASE)
		return 1;
	madvise(p, pages * 4096, MADV_NOHUGEPAGE); /* one fault per page */
	for (long i = 0; i < pages; i++)
		p[i * 4096] = 1;
	char buf[777];
	int fd = open("/dev/zero", O_RDONLY);
	for (long i = 0; i < reads; i++)
		read(fd, buf, sizeof buf);
	return 0;
}
"""


@pytest.fixture(scope="module")
def faulter(tmp_path_factory):
    return build_c(tmp_path_factory, "faulter", FAULTER_C)


def test_page_faults_and_reads_counted_exactly(tmp_path, faulter):
    inside = f"arg1 >= {BASE:#x} && arg1 < {BASE + PAGES * 4096:#x}"
    prog = f"""
vminfo:::as_fault /pid == $target && {inside}/ {{ @["faults"] = sum(arg0); }}
vminfo:::min_fault /pid == $target && {inside}/ {{ @["minor"] = sum(arg0); }}
vminfo:::maj_fault /pid == $target && {inside}/ {{ @["major"] = sum(arg0); }}
sysinfo:::readch /pid == $target && arg0 == {SIZE}/ {{ @["readch"] = sum(arg0); }}
sysinfo:::sysread /pid == $target/ {{ @["sysread"] = sum(arg0); }}
sysinfo:::sysexec /pid == $target/ {{ @["exec"] = sum(arg0); }}
"""
    rows = agg_rows(ok(run_d(tmp_path, prog, extra=("-c", f"{faulter} {PAGES} {READS}"))))
    assert rows["faults"] == PAGES and rows["minor"] == PAGES
    assert "major" not in rows  # anonymous memory never waits for I/O
    assert rows["readch"] == READS * SIZE
    assert rows["sysread"] >= READS  # and the dynamic loader's few
    assert rows["exec"] == 1


VMSTAT = r"""
vminfo:::as_fault { @flt = sum(arg0); }
vminfo:::maj_fault { @mf = sum(arg0); }
sysinfo:::pswitch { @cs = sum(arg0); }
sysinfo:::syscall { @sy = sum(arg0); }
sysinfo:::sysfork { @fk = sum(arg0); }
tick-1s
{
	printa("flt %@d mf %@d cs %@d sy %@d fork %@d\n", @flt, @mf, @cs, @sy, @fk);
	clear(@flt); clear(@mf); clear(@cs); clear(@sy); clear(@fk);
}
tick-3s { exit(0); }
"""


def test_vmstat_like_script_prints_a_line_a_second(tmp_path):
    out = ok(run_d(tmp_path, VMSTAT))
    lines = re.findall(r"^flt (\d+) mf (\d+) cs (\d+) sy (\d+) fork (\d+)$", out, re.M)
    assert len(lines) >= 2, out
    assert all(int(cs) > 0 and int(sy) > 0 for _f, _m, cs, sy, _k in lines), out
