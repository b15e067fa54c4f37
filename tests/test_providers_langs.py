"""The language runtimes' USDT probes through the usdt provider, with the argument
conventions the books' scripts rely on: a program of ours carries probes named like
hotspot's (class and method as pointer + length) and ruby's (class, method, file as C
strings, then the line), and the scripts read them with copyinstr as the books do; the
provider globs (`hotspot*`, `ruby*`) find them in the -c target."""

from __future__ import annotations


import pytest

from tests.test_language import run_d
from tests.test_providers import build_c, agg_rows, ok

pytestmark = pytest.mark.kernel
CALLS = 13

RUNTIME_C = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

/* hotspot: method__entry(tid, class, class_len, method, method_len, sig, sig_len);
   the strings are not NUL-terminated, as in the JVM, and live in memory the runtime has
   touched (an untouched .rodata page cannot be read from probe context) */
/* ruby: method__entry(class, method, file, line) */

int main(int argc, char **argv)
{
	int n = atoi(argv[1]);
	char cls[32], meth[16], sig[8];
	memcpy(cls, "java/lang/StringXX", 19);
	memcpy(meth, "lengthYY", 9);
	memcpy(sig, "()IZZ", 6);
	char klass[8], method[8], file[8];
	strcpy(klass, "Array");
	strcpy(method, "each");
	strcpy(file, "app.rb");
	for (int i = 0; i < n; i++) {
		DTRACE_PROBE7(hotspot, method__entry, 1L, cls, 16L, meth, 6L, sig, 3L);
		DTRACE_PROBE4(ruby, method__entry, klass, method, file, 40 + i % 2);
		DTRACE_PROBE4(ruby, method__return, klass, method, file, 40 + i % 2);
	}
	return 0;
}
"""


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    return build_c(tmp_path_factory, "runtime", RUNTIME_C)


def test_hotspot_method_entry_pointer_and_length(tmp_path, runtime):
    # the book's hotspot idiom: copyinstr(ptr, len) of the class and method names
    prog = r"""
hotspot*:::method-entry /pid == $target/
{ @[strjoin(strjoin(copyinstr(arg1, arg2), "."), copyinstr(arg3, arg4))] = count(); }
"""
    rows = agg_rows(ok(run_d(tmp_path, prog, extra=("-c", f"{runtime} {CALLS}"))))
    assert rows == {"java/lang/String.length": CALLS}


def test_ruby_method_entry_and_return_by_file_and_line(tmp_path, runtime):
    prog = r"""
ruby*:::method-entry { self->in = 1; @[copyinstr(arg0), copyinstr(arg1), copyinstr(arg2), arg3] = count(); }
ruby*:::method-return /self->in/ { self->in = 0; @r["returns"] = count(); }
"""
    rows = agg_rows(ok(run_d(tmp_path, prog, extra=("-c", f"{runtime} {CALLS}"))))
    assert rows == {"Array each app.rb 40": (CALLS + 1) // 2, "Array each app.rb 41": CALLS // 2,
                    "returns": CALLS}
