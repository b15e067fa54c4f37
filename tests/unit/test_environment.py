"""dtrace_nb.runtime.environment on this machine: bcc found from the venv, the doctor's checks,
and the privilege check on given /proc/self/status texts. Nothing is mocked: the host is
expected to be ready to trace (make setup), so a failure here is a real setup problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.runtime import environment as env

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A /proc/self/status excerpt; Uid's second field is the effective uid.
STATUS = """Name:\tpython
Umask:\t0022
State:\tR (running)
Uid:\t{uid}\t{uid}\t{uid}\t{uid}
Gid:\t1000\t1000\t1000\t1000
CapInh:\t0000000000000000
CapPrm:\t{cap:016x}
CapEff:\t{cap:016x}
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
"""


def caps(*bits: int) -> int:
    return sum(1 << b for b in bits)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


# -- import_bcc ------------------------------------------------------------------------------


def test_import_bcc_returns_the_real_bcc_and_caches_it():
    bcc = env.import_bcc()
    assert hasattr(bcc, "BPF") and hasattr(bcc, "USDT")
    assert env.import_bcc() is bcc
    assert sys.modules["bcc"] is bcc


def test_import_bcc_leaves_no_system_directory_on_sys_path():
    env.import_bcc()
    assert not set(env.system_site_dirs()) & set(sys.path)


def test_import_bcc_in_a_fresh_interpreter_restores_sys_path():
    # In a fresh venv interpreter bcc is not importable by itself; import_bcc borrows the
    # system copy, and afterwards sys.path is exactly what it was and nothing but bcc came
    # from the system directory.
    result = run_python("""
        import json, sys
        try:
            import bcc
            plain = True
        except ImportError:
            plain = False
        sys.modules.pop("bcc", None)
        before = list(sys.path)
        from dtrace_nb.runtime.environment import import_bcc, system_site_dirs
        mods_before = set(sys.modules)
        bcc = import_bcc()
        sites = system_site_dirs()
        from_system = sorted(
            name for name, m in sys.modules.items()
            if name not in mods_before and not name.startswith("bcc")
            and any((getattr(m, "__file__", None) or "").startswith(s) for s in sites))
        print(json.dumps({"plain": plain, "same": sys.path == before, "file": bcc.__file__,
                          "has_bpf": hasattr(bcc, "BPF"), "from_system": from_system,
                          "sites": sites}))
    """)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["has_bpf"]
    assert out["same"], "sys.path changed by import_bcc()"
    assert out["from_system"] == []
    if not out["plain"]:
        assert any(out["file"].startswith(s) for s in out["sites"])


def test_an_unrelated_bcc_on_the_path_is_skipped_for_the_real_one(tmp_path):
    # e.g. the PyPI package named bcc: importable as `bcc`, but without BPF
    (tmp_path / "bcc").mkdir()
    (tmp_path / "bcc" / "__init__.py").write_text("LATTICE = True\n")
    result = run_python(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from dtrace_nb.runtime.environment import import_bcc
        bcc = import_bcc()
        assert hasattr(bcc, "BPF"), bcc.__file__
        assert not bcc.__file__.startswith({str(tmp_path)!r})
        print("ok")
    """)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_no_bcc_anywhere_is_a_clear_environment_error():
    result = run_python("""
        import sys
        from dtrace_nb.errors import DEnvironmentError
        from dtrace_nb.runtime import environment as env
        sys.path[:] = [p for p in sys.path if p not in env.system_site_dirs()]
        env.SYSTEM_SITE_PATTERNS = ()
        try:
            env.import_bcc()
        except DEnvironmentError as err:
            print(err)
        print(env.check_bcc().ok, env.is_kernel_available()[0])
    """)
    assert result.returncode == 0, result.stderr
    assert "bcc's Python bindings are missing" in result.stdout
    assert "make setup" in result.stdout and "apt-get install python3-bpfcc" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False False"


# -- the doctor on this machine ----------------------------------------------------------------


@pytest.fixture(scope="module")
def checks() -> dict[str, env.Check]:
    return {c.name: c for c in env.doctor()}


@pytest.mark.parametrize("name", ["privileges", "bcc", "kernel headers", "tracefs"])
def test_fatal_checks_pass_here(checks, name):
    c = checks[name]
    assert c.ok, f"{name}: {c.detail} (fix: {c.fix})"
    assert c.fatal


def test_doctor_reports_every_check(checks):
    assert set(checks) >= {"privileges", "bcc", "kernel headers", "tracefs", "kernel", "BTF",
                           "raw tracepoints", "perf events", "uprobes", "kprobes",
                           "ring buffer", "perf_event_paranoid", "unprivileged_bpf_disabled",
                           "locked memory"}
    assert all(isinstance(c.detail, str) and c.detail for c in checks.values())


def test_bcc_check_names_the_version(checks):
    bcc = env.import_bcc()
    assert bcc.__version__ in checks["bcc"].detail


def test_headers_check_names_the_running_kernel_when_headers_differ(checks):
    detail = checks["kernel headers"].detail
    assert f"/lib/modules/{os.uname().release}/build" in detail
    hdr = env._headers_release(f"/lib/modules/{os.uname().release}/build")
    if hdr and hdr != os.uname().release:
        assert hdr in detail and os.uname().release in detail and "allowed" in detail


def test_kprobes_check_says_which_providers_still_work(checks):
    c = checks["kprobes"]
    assert not c.fatal
    if not c.ok:
        assert "fbt" in c.detail and "syscall" in c.detail


def test_require_tracing_passes_and_is_cached():
    env.require_tracing()
    env.require_tracing()
    assert env._ready
    assert env.is_kernel_available() == (True, "ready to trace")


def test_format_doctor_has_a_line_per_check_and_a_summary(checks):
    text = env.format_doctor(list(checks.values()))
    lines = text.splitlines()
    for name in checks:
        assert any(name in line for line in lines), name
    assert lines[-1].startswith("ready to trace")
    assert "✓" in text


def test_format_doctor_shows_the_fix_of_a_failure():
    failing = env.check_privileges(STATUS.format(uid=1000, cap=0))
    text = env.format_doctor([failing, env.Check("bcc", True, "bcc 0.26.0")])
    assert "✗ privileges" in text
    assert "fix: run as root" in text
    assert text.splitlines()[-1].startswith("not ready to trace: fix privileges")
    ascii_text = env.format_doctor([failing], ascii_only=True)
    assert ascii_text.isascii()


def test_module_runs_as_a_command():
    result = subprocess.run([sys.executable, "-m", "dtrace_nb.runtime.environment"], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ready to trace" in result.stdout.splitlines()[-1]


# -- privileges from a given /proc/self/status ---------------------------------------------------


def test_unprivileged_user_cannot_trace():
    c = env.check_privileges(STATUS.format(uid=1000, cap=0))
    assert not c.ok and c.fatal
    assert "tracing needs root or CAP_BPF+CAP_PERFMON" in c.detail
    assert "root" in c.fix and "setcap" in c.fix and "jupyter" in c.fix.lower()


def test_cap_bpf_alone_is_not_enough():
    c = env.check_privileges(STATUS.format(uid=1000, cap=caps(env.CAP_BPF)))
    assert not c.ok
    assert "CAP_BPF" in c.detail


@pytest.mark.parametrize("bits", [(env.CAP_BPF, env.CAP_PERFMON), (env.CAP_SYS_ADMIN,)])
def test_capabilities_suffice_without_root(bits):
    c = env.check_privileges(STATUS.format(uid=1000, cap=caps(*bits)))
    assert c.ok, c.detail
    assert "uid 1000" in c.detail


def test_root_with_its_capabilities():
    c = env.check_privileges(STATUS.format(uid=0, cap=(1 << 41) - 1))
    assert c.ok and c.detail.startswith("root")


def test_root_without_capabilities_is_refused():
    # e.g. root inside a container started without CAP_BPF/CAP_PERFMON/CAP_SYS_ADMIN
    c = env.check_privileges(STATUS.format(uid=0, cap=caps(0, 1, 2, 3)))
    assert not c.ok
    assert "root" in c.detail


def test_missing_privileges_become_the_documented_error():
    c = env.check_privileges(STATUS.format(uid=1000, cap=0))
    err = env._error(c)
    assert isinstance(err, DEnvironmentError)
    text = str(err)
    assert text.startswith("dtrace: cannot trace: tracing needs root or CAP_BPF+CAP_PERFMON")
    assert "hint: run as root" in text


def test_kernel_version_parsing():
    assert env.kernel_version("6.18.44-fc-v595") == (6, 18)
    assert env.kernel_version("5.4.0-150-generic") == (5, 4)
    assert env.kernel_version("garbage") == (0, 0)
