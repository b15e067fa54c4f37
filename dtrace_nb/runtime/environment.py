"""What tracing needs from the host, how to check it, and how to say what to fix.

`require_tracing()` is called before anything is loaded and raises a DEnvironmentError
naming the first missing prerequisite; `doctor()` reports all of them. `import_bcc()`
finds the distribution's bcc (python3-bpfcc) even from a virtualenv or pyenv interpreter
that does not see the system dist-packages.

Run as `python -m dtrace_nb.runtime.environment` (or `dtrace-nb --doctor`).
"""

from __future__ import annotations

import glob
import importlib
import os
import platform
import sys
from dataclasses import dataclass
from typing import Optional

from dtrace_nb.errors import DEnvironmentError

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
_SYSTEM_SITES = ("/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
                 "/usr/lib/python3*/dist-packages", "/usr/local/lib/python3*/dist-packages")
_bcc = None
_ready = False


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = True  # tracing cannot work without it


def import_bcc():
    """The bcc module, from this interpreter's path or the distribution's site-packages.

    Only bcc's own directory is borrowed: the system path entry is removed again after the
    import so no other system package can shadow the virtualenv's."""
    global _bcc
    if _bcc is not None:
        return _bcc
    try:
        _bcc = importlib.import_module("bcc")
        return _bcc
    except ImportError:
        pass
    for pattern in _SYSTEM_SITES:
        for site in sorted(glob.glob(pattern)):
            if not os.path.isfile(os.path.join(site, "bcc", "__init__.py")):
                continue
            sys.path.append(site)
            try:
                _bcc = importlib.import_module("bcc")
                return _bcc
            except ImportError:
                continue
            finally:
                if site in sys.path:
                    sys.path.remove(site)
    raise DEnvironmentError(
        "bcc's Python bindings are not installed",
        hint="run 'make setup' (or: apt-get install python3-bpfcc); the PyPI package "
             "named 'bcc' is unrelated and must not be installed")


def _cap_eff(status_text: Optional[str] = None) -> int:
    if status_text is None:
        try:
            with open("/proc/self/status") as f:
                status_text = f.read()
        except OSError:
            return 0
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_privileges(status_text: Optional[str] = None) -> Check:
    """From the effective capabilities (root normally holds them all)."""
    caps = _cap_eff(status_text)
    if caps >> CAP_SYS_ADMIN & 1 or (caps >> CAP_BPF & 1 and caps >> CAP_PERFMON & 1):
        who = "root" if os.geteuid() == 0 and status_text is None else "capabilities"
        return Check("privileges", True, f"{who}: CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN) held")
    return Check("privileges", False, "tracing needs root or CAP_BPF+CAP_PERFMON",
                 "run as root (sudo dtrace-nb ...); for notebooks start Jupyter as root "
                 "('make lab') or give the kernel's python CAP_BPF,CAP_PERFMON")


def check_bcc() -> Check:
    try:
        bcc = import_bcc()
    except DEnvironmentError as err:
        return Check("bcc", False, err.message, err.hint)
    version = getattr(bcc, "__version__", "unknown version")
    return Check("bcc", True, f"bcc {version} from {os.path.dirname(bcc.__file__)}")


def check_headers() -> Check:
    build = f"/lib/modules/{platform.release()}/build"
    if not os.path.isdir(os.path.join(build, "include")):
        return Check("kernel headers", False, f"{build} is missing",
                     "run 'make setup' (installs linux-headers and links them there)")
    target = os.path.realpath(build)
    note = ""
    if platform.release().split("-")[0] not in target:
        note = f" (headers of another kernel version: {os.path.basename(target)}; this works)"
    return Check("kernel headers", True, f"{build} -> {target}{note}")


def check_tracefs() -> Check:
    for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.isdir(os.path.join(d, "events")):
            return Check("tracefs", True, f"mounted at {d}")
    return Check("tracefs", False, "tracefs is not mounted",
                 "mount -t tracefs nodev /sys/kernel/tracing (or run 'make setup')")


def check_btf() -> Check:
    ok = os.path.exists("/sys/kernel/btf/vmlinux")
    return Check("BTF", ok, "/sys/kernel/btf/vmlinux present" if ok else "no kernel BTF",
                 "" if ok else "ppid and fbt's typed arguments need CONFIG_DEBUG_INFO_BTF",
                 fatal=False)


def check_kprobes() -> Check:
    ok = any(os.path.exists(f"{d}/kprobe_events")
             for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))
    return Check("kprobes", ok, "kprobe_events present" if ok else
                 "kernel built without kprobes: the fbt provider cannot attach; "
                 "syscall/sdt/profile/pid/usdt still work", fatal=False)


def check_kernel_version() -> Check:
    rel = platform.release()
    try:
        major, minor = (int(x) for x in rel.split(".")[:2])
    except ValueError:
        return Check("kernel", True, rel, fatal=False)
    ok = (major, minor) >= (5, 10)
    return Check("kernel", ok, f"Linux {rel}" + ("" if ok else ": older than 5.10"),
                 "" if ok else "ring buffers need 5.8, test-run of BEGIN/END needs 5.10")


def _sysctl(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def check_sysctls() -> Check:
    paranoid = _sysctl("/proc/sys/kernel/perf_event_paranoid")
    unpriv = _sysctl("/proc/sys/kernel/unprivileged_bpf_disabled")
    return Check("sysctls", True, f"perf_event_paranoid={paranoid}, "
                 f"unprivileged_bpf_disabled={unpriv}", fatal=False)


def doctor() -> list[Check]:
    return [check_privileges(), check_bcc(), check_headers(), check_tracefs(),
            check_kernel_version(), check_btf(), check_kprobes(), check_sysctls()]


def format_doctor(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok " if c.ok else ("FAIL" if c.fatal else "note")
        lines.append(f"  [{mark:>4}] {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"         {'':<{width}}  fix: {c.fix}")
    bad = [c for c in checks if c.fatal and not c.ok]
    lines.append("ready to trace" if not bad else
                 "cannot trace yet: fix " + ", ".join(c.name for c in bad))
    return "\n".join(lines)


def is_kernel_available() -> tuple[bool, str]:
    try:
        require_tracing()
        return True, "ready"
    except DEnvironmentError as err:
        return False, f"{err.message} ({err.hint})" if err.hint else err.message


def require_tracing() -> None:
    """Raise DEnvironmentError for the first thing that stops tracing; cached once ready."""
    global _ready
    if _ready:
        return
    for check in (check_privileges, check_bcc, check_headers, check_tracefs):
        c = check()
        if not c.ok:
            raise DEnvironmentError(c.detail, hint=c.fix)
    _ready = True


if __name__ == "__main__":
    results = doctor()
    print(format_doctor(results))
    sys.exit(0 if all(c.ok for c in results if c.fatal) else 1)
