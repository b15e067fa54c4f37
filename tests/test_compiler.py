"""The compile step: clang and LLVM run in a child process (an LLVM fatal error comes back
as a D error and this process lives), and compiled objects are cached in memory and on disk
(a re-run loads without compiling, and still counts exactly).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from dtrace_nb.errors import DLoadError
from dtrace_nb.runtime import compiler
from dtrace_nb.runtime.environment import import_bcc
from dtrace_nb.runtime.loader import compile_c, create_maps
from dtrace_nb.session import Session, SessionConfig
from dtrace_nb.result.result import run_session
from tests.leakcheck import bpf_state, settled_diff

pytestmark = pytest.mark.kernel

# C that clang accepts and LLVM's BPF backend cannot lower (a memcpy of a size known only at
# run time): LLVM reports it and exits the process it runs in.
LLVM_GIVES_UP = r"""
struct big { char b[256]; };
BPF_PERCPU_ARRAY(dtnb_big, struct big, 2);
int dtnb_b0(void *ctx) {
	/* clause 1 (syscall::read:entry) at line 3 */
	u32 k0 = 0, k1 = 1;
	struct big *x = dtnb_big.lookup(&k0), *y = dtnb_big.lookup(&k1);
	if (!x || !y)
		return 0;
	__builtin_memcpy(x->b, y->b, bpf_ktime_get_ns() & 255);
	return 0;
}
"""


def _children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    out.add(int(pid))
        except (OSError, IndexError):
            pass
    return out


@pytest.fixture
def no_cache(monkeypatch):
    monkeypatch.setenv("DTRACE_NB_OBJECT_CACHE", "off")


@pytest.fixture
def private_cache(monkeypatch, tmp_path):
    """A cache directory of this test's own, and an empty memory cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiler.clear_memory_cache()
    yield tmp_path / "dtrace-nb" / "objects"
    compiler.clear_memory_cache()


def test_in_process_bcc_would_have_died_on_this_c():
    """Why the child exists: bcc compiling this C in the calling process ends it."""
    code = ("from dtrace_nb.runtime.environment import import_bcc\n"
            "import sys\n"
            f"src = {LLVM_GIVES_UP!r}\n"
            "try:\n"
            "    import_bcc().BPF(text=src)\n"
            "except Exception as e:\n"
            "    print('exception', e)\n"
            "print('still alive')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and "still alive" not in p.stdout
    assert "A call to built-in function 'memcpy' is not supported" in p.stderr


def test_llvm_fatal_error_is_a_located_d_error_and_this_process_lives(no_cache):
    bcc = import_bcc()
    before = _children()
    with pytest.raises(DLoadError) as info:
        compile_c(bcc, LLVM_GIVES_UP, [], ["dtnb_b0"])
    err = info.value
    assert err.message == ("LLVM gave up on the generated C in clause 1 (syscall::read:entry) "
                           "at line 3: A call to built-in function 'memcpy' is not supported.")
    assert err.span is not None and err.span.line == 3
    assert "in function dtnb_b0" in err.detail
    assert "own process (the compiler exited with status 1)" in err.hint
    assert _children() == before  # the compiler process was reaped
    # and this process can go on compiling and tracing
    result = run_session(Session(SessionConfig("BEGIN { exit(0); }", quiet=True)), duration=10)
    assert result.error is None and result.exit_status == 0


def test_a_clang_error_still_names_the_clause(no_cache):
    src = ("int dtnb_b0(void *ctx) {\n"
           "\t/* clause 2 (profile:::tick-1s) at line 7 */\n"
           "\treturn nosuch_variable;\n}\n")
    with pytest.raises(DLoadError) as info:
        compile_c(import_bcc(), src, [], ["dtnb_b0"])
    assert info.value.message.startswith(
        "the generated C did not compile in clause 2 (profile:::tick-1s) at line 7: "
        "use of undeclared identifier 'nosuch_variable'")


def test_ctrl_c_during_a_compile_kills_the_compiler_and_leaves_nothing(no_cache):
    bcc = import_bcc()
    before_state, before = bpf_state(), _children()
    main = threading.main_thread().ident
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stop = threading.Event()

    def interrupt_once_the_compiler_runs() -> None:
        # Ctrl-C lands while the compiler's child process is alive (a fixed delay was
        # outrun when clang came back in under 0.15 s)
        while not stop.is_set() and not (_children() - before):
            time.sleep(0.002)
        time.sleep(0.02)  # past the spawn itself, into the compile (see the closing note)
        if not stop.is_set():
            signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_the_compiler_runs, daemon=True)
    started = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            # a fresh text each time, so the compile really runs (0.3 s or more here)
            compile_c(bcc, f"int dtnb_b0(void *ctx) {{ return {time.time_ns() % 1000}; }}",
                      [], ["dtnb_b0"])
    finally:
        stop.set()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 5
    assert _children() == before
    assert settled_diff(before_state) == []


def test_cache_in_memory_and_on_disk(private_cache):
    bcc = import_bcc()
    src = "BPF_ARRAY(dtnb_one, u64, 1);\nint dtnb_b0(void *ctx) { u32 k = 0; " \
          "u64 *v = dtnb_one.lookup(&k); if (v) (*v)++; return 0; }\n"
    first = compile_c(bcc, src, [], ["dtnb_b0"])
    assert not first.cached
    again = compile_c(bcc, src, [], ["dtnb_b0"])
    assert again.cached and again.functions == first.functions
    files = list(private_cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"
    assert oct(private_cache.stat().st_mode & 0o777) == "0o700"
    compiler.clear_memory_cache()
    from_disk = compile_c(bcc, src, [], ["dtnb_b0"])
    assert from_disk.cached and from_disk.functions == first.functions
    assert from_disk.maps == first.maps and from_disk.map_fds == first.map_fds
    # other flags, other object
    assert not compile_c(bcc, src, ["-DX=1"], ["dtnb_b0"]).cached


def test_a_cache_directory_others_can_write_is_not_used(monkeypatch, tmp_path):
    (tmp_path / "dtrace-nb").mkdir(mode=0o777)
    os.chmod(tmp_path / "dtrace-nb", 0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    compiler.clear_memory_cache()
    src = "int dtnb_b0(void *ctx) { return 0; }\n"
    compile_c(import_bcc(), src, [], ["dtnb_b0"])
    assert not (tmp_path / "dtrace-nb" / "objects").exists()
    compiler.clear_memory_cache()


def test_a_damaged_cache_entry_is_compiled_again(private_cache):
    bcc = import_bcc()
    src = "int dtnb_b0(void *ctx) { return 1; }\n"
    compile_c(bcc, src, [], ["dtnb_b0"])
    (entry,) = private_cache.iterdir()
    entry.write_text('{"format": 1, "functions": ')
    compiler.clear_memory_cache()
    obj = compile_c(bcc, src, [], ["dtnb_b0"])
    assert not obj.cached and obj.functions["dtnb_b0"]


def test_map_references_point_at_this_process_maps(private_cache):
    """The child's map fds in the instructions are replaced by the maps made here."""
    bcc = import_bcc()
    src = ("BPF_ARRAY(dtnb_a, u64, 1);\nBPF_HASH(dtnb_h, u32, u64, 4);\n"
           "int dtnb_b0(void *ctx) { u32 k = 0; u64 one = 1; u64 *v = dtnb_a.lookup(&k);"
           " if (v) (*v)++; dtnb_h.update(&k, &one); return 0; }\n")
    obj = create_maps(bcc, compile_c(bcc, src, [], ["dtnb_b0"]))
    try:
        import numpy as np

        from dtrace_nb.runtime.loader import _INSN
        insns = np.frombuffer(obj.instructions("dtnb_b0"), dtype=_INSN)
        refs = insns[(insns["code"] == 0x18) & ((insns["regs"] >> 4) == 1)]["imm"]
        assert sorted(set(refs.tolist())) == sorted((obj["dtnb_a"].fd, obj["dtnb_h"].fd))
    finally:
        obj.cleanup()


def test_rerun_of_a_target_script_hits_the_cache_and_counts_exactly(private_cache, workloads):
    """$target is read from the state map, so a re-run with a new target process has the
    same C text: the second run loads the cached object, and both count exactly."""
    n = 600
    src = "syscall::getppid:entry /pid == $target/ { @ = count(); }"
    runs = []
    for _ in range(2):
        session = Session(SessionConfig(src, quiet=True,
                                        target_command=f"{workloads['sysload']} mixed {n}"))
        result = run_session(session, duration=20)
        assert result.error is None, result.error
        runs.append((session.compiled_from_cache, result.aggregations["@"]["count"].tolist(),
                     result.target_pid))
    assert [r[0] for r in runs] == [False, True]
    assert [r[1] for r in runs] == [[n], [n]]
    assert runs[0][2] != runs[1][2]
    assert len(list(private_cache.iterdir())) == 1


class _Exchange:
    """An ObjectExchange of this test's own: it hands out what it was given, else builds
    (what fleet/objects.py does over Dask for the hosts of one kernel flavour)."""

    def __init__(self, objects=None):
        self.objects, self.keys = dict(objects or {}), []

    def share(self, key, build):
        self.keys.append(key)
        if key not in self.objects:
            self.objects[key] = build()
        return self.objects[key]


def test_a_missing_object_is_asked_of_the_hosts_exchange(private_cache):
    bcc = import_bcc()
    src = "BPF_ARRAY(dtnb_two, u64, 1);\nint dtnb_b0(void *ctx) { u32 k = 0; " \
          "u64 *v = dtnb_two.lookup(&k); if (v) (*v) += 2; return 0; }\n"
    one = _Exchange()
    with compiler.sharing(one):
        built = compile_c(bcc, src, [], ["dtnb_b0"])  # not in any cache: built, offered
    key = compiler.flavour_key(bcc, src, [], ["dtnb_b0"])
    assert one.keys == [key] and one.objects[key] is built and not built.cached
    # another host of the flavour: its caches are empty, the exchange has the object
    compiler.clear_memory_cache()
    for f in private_cache.iterdir():
        f.unlink()
    other = _Exchange({key: built})
    with compiler.sharing(other):
        got = compile_c(bcc, src, [], ["dtnb_b0"])
    assert got.functions == built.functions and other.keys == [key]
    # it was kept in this host's cache: asked again, the exchange is not
    with compiler.sharing(other):
        assert compile_c(bcc, src, [], ["dtnb_b0"]).cached
    assert other.keys == [key]
    # other C or flags: another key; outside sharing() no exchange is asked
    assert compiler.flavour_key(bcc, src, ["-DX=1"], ["dtnb_b0"]) != key
    assert compiler.flavour_key(bcc, src + "\n", [], ["dtnb_b0"]) != key
    compile_c(bcc, src.replace("+= 2", "+= 3"), [], ["dtnb_b0"])
    assert other.keys == [key]
