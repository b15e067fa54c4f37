"""The ground truth checked without BPF, and the leak check checked against real leaks.

Workloads: each mode of tests/workloads/sysload.c runs under strace twice, with N and with
0; the difference between the two traces must be exactly the calls the mode promises
(everything else, libc and loader start-up included, cancels out), with the right
arguments, order and results.

Leak check: a perf event, a BPF program and a BPF map are created through the raw system
calls (ctypes, no bcc), and tests/leakcheck.py must see each appear and disappear, must
attribute a program held by a child to us, must not blame us for one held by an unrelated
process, and the suite must fail when a test leaks.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from tests import leakcheck
from tests.leakcheck import OWNER_ENV, bpf_state, diff_state, settled_diff
from tests.workloads import build

ROOT = Path(__file__).resolve().parent.parent
ENOENT_PATH = "/nonexistent/dtrace-nb-test"
N = 64  # a multiple of 8: each read size 1..128 N/8 times


# --- strace ------------------------------------------------------------------------------

_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(.*)$")


@pytest.fixture(scope="module")
def strace() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.fail("strace is not installed: run `make setup` (scripts/setup-system.sh "
                    "installs it); the workloads' ground truth is checked with it")
    return path


def run_traced(strace: str, argv: list, tmp_path: Path) -> list[tuple[str, list[str], str]]:
    """(name, args, result) for each system call of `argv`, in order."""
    out = tmp_path / f"trace-{len(list(tmp_path.iterdir()))}"
    proc = subprocess.run([strace, "-qq", "-e", "signal=none", "-s", "0", "-o", str(out),
                           *map(str, argv)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    calls = []
    for line in out.read_text().splitlines():
        m = _CALL.match(line)
        assert m, f"unparsed strace line: {line!r}"
        calls.append((m.group(1), [a.strip() for a in m.group(2).split(",")], m.group(3)))
    return calls


def key(call) -> tuple:
    """What identifies a call across runs (addresses and pids vary; these do not)."""
    name, args, result = call
    if name in ("read", "write"):
        return (name, int(args[-1]), result)
    if name == "openat":
        return (name, args[1].strip('"'), result.split(" (")[0])
    return (name,)


def extra_calls(strace, sysload, mode, n, tmp_path) -> tuple[Counter, list]:
    """Calls of `sysload MODE n` beyond those of `sysload MODE 0`; also the full trace."""
    base = Counter(map(key, run_traced(strace, [sysload, mode, 0], tmp_path)))
    calls = run_traced(strace, [sysload, mode, n], tmp_path)
    got = Counter(map(key, calls))
    missing = base - got
    assert not missing, f"calls of `{mode} 0` absent from `{mode} {n}`: {missing}"
    return got - base, calls


def reads(n: int) -> Counter:
    """n reads, call i of 1 << (i % 8) bytes, each returning what it asked for."""
    return Counter(("read", 1 << (i % 8), str(1 << (i % 8))) for i in range(n))


EXPECTED = {
    "getppid": lambda n: Counter({("getppid",): n}),
    "read": reads,
    "mixed": lambda n: Counter({("getppid",): n}) + reads(n),
    "enoent": lambda n: Counter({("openat", ENOENT_PATH, "-1 ENOENT"): n}),
    "write": lambda n: Counter({("write", 1, "1"): n}),
}


@pytest.fixture(scope="module")
def sysload(workloads) -> Path:
    return workloads["sysload"]


# --- workloads ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_mode_makes_exactly_its_calls(strace, sysload, mode, tmp_path):
    extra, _ = extra_calls(strace, sysload, mode, N, tmp_path)
    assert extra == EXPECTED[mode](N)


def test_read_sizes_in_order_on_one_descriptor_opened_before(strace, sysload, tmp_path):
    n = 21  # not a multiple of 8: the cycle restarts mid-way
    calls = run_traced(strace, [sysload, "mixed", n], tmp_path)
    names = [c[0] for c in calls]
    opens = [i for i, c in enumerate(calls) if c[0] == "openat" and c[1][1] == '"/dev/zero"']
    assert len(opens) == 1
    op = opens[0]
    fd = calls[op][2]
    assert int(fd) >= 0
    first_getppid = names.index("getppid")
    assert op < first_getppid, "/dev/zero must be opened before the measured phase"
    phase = calls[first_getppid:first_getppid + 2 * n]
    assert [c[0] for c in phase[:n]] == ["getppid"] * n
    assert [(c[0], c[1][0], int(c[1][2]), c[2]) for c in phase[n:]] == \
        [("read", fd, 1 << (i % 8), str(1 << (i % 8))) for i in range(n)]
    after = calls[first_getppid + 2 * n:]
    assert [(c[0], c[1]) for c in after] == [("close", [fd]), ("exit_group", ["0"])]


def test_loader_reads_are_told_apart_by_size(strace, sysload, tmp_path):
    """The kernel tests filter reads with arg2 <= 128: the loader's reads are larger."""
    calls = run_traced(strace, [sysload, "getppid", 0], tmp_path)
    assert all(int(c[1][-1]) > 128 for c in calls if c[0] == "read")
    assert "getppid" not in [c[0] for c in calls]
    assert not [c for c in calls if c[0] == "openat" and ENOENT_PATH in c[1][1]]


def test_sleep_is_one_nanosleep(strace, sysload, tmp_path):
    t0 = time.monotonic()
    extra, calls = extra_calls(strace, sysload, "sleep", 1250, tmp_path)
    assert time.monotonic() - t0 >= 1.25
    assert extra == Counter()  # `sleep 0` makes the same calls: one nanosleep of 0 ms
    sleeps = [c for c in calls if "sleep" in c[0]]
    assert [(name, args[:2], result) for name, args, result in sleeps] == \
        [("nanosleep", ["{tv_sec=1", "tv_nsec=250000000}"], "0")]


def test_spin_burns_cpu_without_system_calls(strace, sysload, tmp_path):
    extra, _ = extra_calls(strace, sysload, "spin", 200, tmp_path)
    assert extra == Counter()
    t0 = time.monotonic()
    proc = subprocess.Popen([sysload, "spin", "400"])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped here
    assert os.waitstatus_to_exitcode(status) == 0
    assert time.monotonic() - t0 >= 0.4
    assert usage.ru_utime >= 0.1, "spin must run on the CPU, not sleep"


@pytest.mark.parametrize("mode", ["getppid", "read", "mixed", "enoent", "write", "sleep",
                                  "spin"])
def test_silent_and_successful(sysload, mode):
    proc = subprocess.run([sysload, mode, "8"], check=False, capture_output=True, text=True,
                          timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_verbose_line_goes_to_stderr(sysload):
    proc = subprocess.run([sysload, "-v", "getppid", "3"], check=False, capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stdout == ""
    assert re.fullmatch(r"sysload: pid \d+ mode getppid n 3 done\n", proc.stderr)


@pytest.mark.parametrize("argv", [[], ["getppid"], ["nosuch", "1"], ["read", "-1"],
                                  ["read", "x"], ["getppid", "1", "2"]])
def test_usage_errors(sysload, argv):
    proc = subprocess.run([sysload, *argv], check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and proc.stderr


def test_build_reuses_fresh_binaries_and_reports_compiler_errors(tmp_path, monkeypatch):
    dest = tmp_path / "bin"
    first = build.build_workloads(dest)
    assert set(first) >= {"sysload"} and all(p.is_file() for p in first.values())
    mtime = first["sysload"].stat().st_mtime_ns
    assert build.build_workloads(dest) == first
    assert first["sysload"].stat().st_mtime_ns == mtime

    src = tmp_path / "src"
    src.mkdir()
    (src / "broken.c").write_text("int main(void) { return undeclared_name; }\n")
    monkeypatch.setattr(build, "HERE", src)
    with pytest.raises(build.WorkloadBuildError, match="undeclared_name"):
        build.build_workloads(dest)
    assert not (dest / "broken").exists()
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]  # no temporary left


# --- raw system calls that create what the leak check must see ---------------------------

_NR = {"x86_64": {"bpf": 321, "perf_event_open": 298},
       "aarch64": {"bpf": 280, "perf_event_open": 241}}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(name: str, *args) -> int:
    nr = _NR.get(platform.machine(), {}).get(name)
    if nr is None:
        pytest.skip(f"{name} syscall number unknown on {platform.machine()}")
    ret = _libc.syscall(ctypes.c_long(nr), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}: {os.strerror(err)}")
    return ret


def open_perf_event() -> int:
    """A disabled software cpu-clock counter on this process (perf_event_attr VER0)."""
    attr = (ctypes.c_uint64 * 8)()  # 64 bytes
    attr[0] = 1 | (64 << 32)  # type PERF_TYPE_SOFTWARE, size 64; config 0 = SW_CPU_CLOCK
    attr[6] = 1 | 1 << 5 | 1 << 6  # disabled, exclude_kernel, exclude_hv
    return _syscall("perf_event_open", ctypes.byref(attr), ctypes.c_int(0), ctypes.c_int(-1),
                    ctypes.c_int(-1), ctypes.c_ulong(8))  # self, any cpu, CLOEXEC


def _bpf(cmd: int, attr: ctypes.Array) -> int:
    return _syscall("bpf", ctypes.c_int(cmd), ctypes.byref(attr), ctypes.c_uint(len(attr)))


def load_program(name: str) -> int:
    """A socket filter `r0 = 0; exit` named `name` (BPF_PROG_LOAD): its fd."""
    insns = (ctypes.c_uint64 * 2)(0xB7, 0x95)  # BPF_MOV64_IMM r0, 0; BPF_EXIT
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = (ctypes.c_ubyte * 128)()
    ctypes.c_uint32.from_buffer(attr, 0).value = 1  # BPF_PROG_TYPE_SOCKET_FILTER
    ctypes.c_uint32.from_buffer(attr, 4).value = 2  # insn_cnt
    ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(insns)
    ctypes.c_uint64.from_buffer(attr, 16).value = ctypes.addressof(license_)
    ctypes.memmove(ctypes.addressof(attr) + 48, name.encode()[:15], len(name.encode()[:15]))
    return _bpf(5, attr)


def create_map(name: str) -> int:
    """A one-entry array map named `name` (BPF_MAP_CREATE): its fd."""
    attr = (ctypes.c_ubyte * 128)()
    for offset, value in ((0, 2), (4, 4), (8, 8), (12, 1)):  # ARRAY, key 4, value 8, 1 entry
        ctypes.c_uint32.from_buffer(attr, offset).value = value
    ctypes.memmove(ctypes.addressof(attr) + 28, name.encode()[:15], len(name.encode()[:15]))
    return _bpf(0, attr)


def _prog_id(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("prog_id:"):
            return int(line.split(":")[1])
    raise AssertionError("no prog_id in fdinfo")


# Names unique to this run: other people's test runs may load programs at the same time.
PROG_NAME, MAP_NAME, CHILD_PROG_NAME = (f"dtnb_{c}{os.getpid() % 10**9}" for c in "pmc")


@pytest.fixture
def can_load_bpf():
    if os.geteuid() != 0:
        pytest.skip("loading BPF programs needs root")


# --- leak check --------------------------------------------------------------------------

def test_leakcheck_sees_a_perf_event_fd():
    before = bpf_state()
    fd = open_perf_event()
    try:
        problems = diff_state(before, bpf_state())
        expected = (f"1 more perf_event file descriptor(s) open in pid {os.getpid()} "
                    f"than at the start ({before.fds.perf_event} -> {before.fds.perf_event + 1})")
        assert expected in problems
    finally:
        os.close(fd)
    assert bpf_state().fds == before.fds
    assert settled_diff(before) == []


@pytest.mark.kernel
def test_leakcheck_sees_a_program_and_a_map(can_load_bpf):
    before = bpf_state()
    prog, mp = load_program(PROG_NAME), create_map(MAP_NAME)
    try:
        during = bpf_state()
        assert (_prog_id(prog), PROG_NAME) in during.programs - before.programs
        assert MAP_NAME in {n for _, n in during.maps - before.maps}
        text = "\n".join(diff_state(before, during))
        assert (f"program {_prog_id(prog)} {PROG_NAME} [socket_filter] held by pid "
                f"{os.getpid()} (") in text
        assert f"{MAP_NAME} [array] held by pid {os.getpid()} (" in text
        assert "1 more prog file descriptor(s)" in text
        assert "1 more map file descriptor(s)" in text
    finally:
        os.close(prog)
        os.close(mp)
    assert settled_diff(before) == []


@pytest.mark.kernel
def test_leakcheck_sees_a_program_nobody_holds(can_load_bpf):
    """A program kept alive by an attachment after its fd is closed is still a leak."""
    import socket

    before = bpf_state()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        prog = load_program(PROG_NAME)
        pid = _prog_id(prog)
        sock.setsockopt(socket.SOL_SOCKET, 50, prog)  # SO_ATTACH_BPF
        os.close(prog)
        during = bpf_state()
        assert (pid, PROG_NAME) in during.unheld_programs
        assert (pid, PROG_NAME) not in during.programs
        assert any(f"program {pid} {PROG_NAME} [socket_filter] held by no process" in p
                   for p in diff_state(before, during))
    finally:
        sock.close()
    assert settled_diff(before) == []


_HOLDER = textwrap.dedent("""
    import os, sys
    from tests.test_workloads import load_program
    if sys.argv[1] == "orphan":          # leave our parent's tree: double fork, new session
        if os.fork():
            os._exit(0)
        os.setsid()
    fd = load_program(sys.argv[2])
    print(os.getpid(), flush=True)
    sys.stdin.read()                     # hold the program until stdin closes
""")


def _hold_in_process(how: str, env: dict):
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, how, CHILD_PROG_NAME], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    holder = int(proc.stdout.readline())
    if how == "orphan":
        proc.wait(timeout=10)  # the middle process is gone: the holder is reparented
    return proc, holder


def _release(proc, holder: int) -> None:
    proc.stdin.close()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{holder}") and time.monotonic() < deadline:
        time.sleep(0.02)


def _leaked_names(before) -> set:
    return {n for _, n in bpf_state().programs - before.programs}


@pytest.mark.kernel
@pytest.mark.parametrize("how, marked, ours", [
    ("child", False, True),    # a descendant is ours
    ("orphan", True, True),    # reparented away, but carries our environment marker
    ("orphan", False, False),  # an unrelated process: not ours, not our leak
])
def test_leakcheck_ownership(can_load_bpf, how, marked, ours):
    env = {k: v for k, v in os.environ.items() if k != OWNER_ENV}
    if marked:
        env[OWNER_ENV] = str(os.getpid())
    env["PYTHONPATH"] = str(ROOT)
    before = bpf_state()
    proc, holder = _hold_in_process(how, env)
    try:
        if how == "orphan":
            assert holder != proc.pid and leakcheck._ppid(holder) != os.getpid()
        if ours:
            assert CHILD_PROG_NAME in _leaked_names(before)
            assert any(f"held by pid {holder}" in p for p in diff_state(before, bpf_state()))
        else:
            assert CHILD_PROG_NAME not in _leaked_names(before)
            assert not [p for p in diff_state(before, bpf_state()) if CHILD_PROG_NAME in p]
    finally:
        _release(proc, holder)
    assert settled_diff(before) == []


# --- the suite fails on a leak, and on a skipped kernel test where kernels are required --

def _inner_pytest(tmp_path: Path, body: str, **env) -> subprocess.CompletedProcess:
    test = tmp_path / "test_inner.py"
    test.write_text(textwrap.dedent(body))
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("CI", "DTRACE_NB_REQUIRE_KERNEL", OWNER_ENV)}
    full_env.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(test)],
        check=False, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)


LEAKY = """
    from tests.test_workloads import open_perf_event
    KEPT = []
    def test_leaks():
        KEPT.append(open_perf_event())
"""


def test_suite_fails_on_a_leak(tmp_path):
    proc = _inner_pytest(tmp_path, LEAKY)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout
    assert "LEAK CHECK FAILED: 1 more perf_event file descriptor(s)" in proc.stdout


def test_suite_passes_without_a_leak(tmp_path):
    proc = _inner_pytest(tmp_path, LEAKY.replace("KEPT.append(open_perf_event())",
                                                 "import os; os.close(open_perf_event())"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "LEAK CHECK" not in proc.stdout


SKIPPING = """
    import pytest
    @pytest.mark.kernel
    def test_needs_kernel():
        pytest.skip("no bcc here")
    @pytest.mark.kernel
    @pytest.mark.xfail(reason="known")
    def test_expected_to_fail():
        assert False
    def test_plain_skip():
        pytest.skip("fine")
"""


@pytest.mark.parametrize("env, fails", [({}, False), ({"DTRACE_NB_REQUIRE_KERNEL": "1"}, True),
                                        ({"CI": "true"}, True)])
def test_skipped_kernel_test_fails_where_required(tmp_path, env, fails):
    proc = _inner_pytest(tmp_path, SKIPPING, **env)
    out = proc.stdout + proc.stderr
    if fails:
        assert proc.returncode == 1, out
        assert "1 failed, 1 skipped, 1 xfailed" in out
        assert "kernel test skipped on a machine that must run it" in out
        assert "no bcc here" in out
    else:
        assert proc.returncode == 0, out
        assert "2 skipped, 1 xfailed" in out
