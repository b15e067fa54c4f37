"""lockstat over lock:contention_begin/end: a workload of ours contends the kernel's
mmap_lock (an rw_semaphore: threads mmap and munmap in one address space), and every wait
the kernel traces is served by exactly one lockstat probe, with its lock and its time.

(A contended pthread_mutex makes the kernel wait on nothing but futexes, whose hash-bucket
spinlocks were contended 0-5 times per run here: too few to count; mmap_lock gives ~100
waits.)"""

from __future__ import annotations


import pytest

from tests.test_language import run_d
from tests.test_providers import build_c, agg_rows, ok

pytestmark = pytest.mark.kernel

MMAP_C = r"""
#include <pthread.h>
#include <sys/mman.h>
static void *w(void *a)
{
	for (int i = 0; i < 20000; i++) {
		char *p = mmap(0, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		p[0] = 1;
		p[4096] = 1;
		munmap(p, 1 << 16);
	}
	return a;
}
int main(void)
{
	pthread_t t[6];
	for (int i = 0; i < 6; i++)
		pthread_create(&t[i], 0, w, 0);
	for (int i = 0; i < 6; i++)
		pthread_join(t[i], 0);
	return 0;
}
"""

# the kernel's own record of each wait's kind, next to the probes serving it; the book's
# contention histogram by probe
PROG = r"""
sdt:lock::contention_begin /pid == $target && (args[1] & 0x21) == 0 && (args[1] & 6)/ { @["begin rw-block"] = count(); }
sdt:lock::contention_begin /pid == $target && args[1] == 1/ { @["begin spin-spin"] = count(); }
lockstat:::rw-block, lockstat:::spin-spin, lockstat:::adaptive-block, lockstat:::adaptive-spin, lockstat:::rw-spin
/pid == $target/
{
	@[probename] = count();
	@ok["waited>0"] = sum(arg1 > 0);
	@ok["lock>0"] = sum(arg0 != 0);
	@hist[probename] = quantize(arg1);
}
"""


@pytest.fixture(scope="module")
def contender(tmp_path_factory):
    return build_c(tmp_path_factory, "mmapc", MMAP_C, "-pthread")


def test_every_wait_is_served_once_with_its_time(tmp_path, contender):
    out = ok(run_d(tmp_path, PROG, extra=("-c", str(contender))))
    rows = agg_rows(out)
    assert rows.get("begin rw-block", 0) >= 5, out  # the workload does contend
    assert rows["rw-block"] == rows["begin rw-block"]
    assert rows.get("spin-spin", 0) == rows.get("begin spin-spin", 0)
    served = sum(rows.get(k, 0) for k in ("rw-block", "spin-spin", "adaptive-block",
                                          "adaptive-spin", "rw-spin"))
    assert rows["waited>0"] == served and rows["lock>0"] == served
    assert "value  ------------- Distribution ------------- count" in out


@pytest.mark.parametrize("probe", ["adaptive-acquire", "spin-release", "rw-acquire"])
def test_acquire_and_release_are_refused_with_the_reason(tmp_path, probe):
    done = run_d(tmp_path, f"lockstat:::{probe} {{ @ = count(); }}")
    assert done.returncode != 0
    assert "uncontended acquisitions and releases are not traced" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
