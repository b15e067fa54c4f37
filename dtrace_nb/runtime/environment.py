"""What tracing needs from the host, how to check it, and how to say what to fix.

- `import_bcc()` returns the distribution's bcc (python3-bpfcc), even from a virtualenv or
  pyenv interpreter that does not see the system dist-packages, without leaving the system
  directory on `sys.path`.
- `require_tracing()` is called by the runtime before anything is loaded; it raises a
  DEnvironmentError naming the first fatal problem (privileges, bcc, kernel headers,
  tracefs) and costs nothing once it has passed.
- `doctor()` runs every check, fatal or informational; `format_doctor()` renders them.
- `is_kernel_available()` is `require_tracing()` as a (bool, reason) pair.

Run as `python -m dtrace_nb.runtime.environment` (or `dtrace-nb --doctor`): prints the
table, exits 0 when ready to trace and 1 otherwise.
"""

from __future__ import annotations

import glob
import importlib
import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from dtrace_nb.errors import DEnvironmentError
from dtrace_nb.runtime.kernel import features
from dtrace_nb.runtime.kernel.features import kernel_release, kernel_version
from dtrace_nb.runtime.kernel.files import read_text

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39

# Where distributions put python3-bpfcc (Debian/Ubuntu, Fedora/Arch, local builds).
SYSTEM_SITE_PATTERNS = (
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3*/site-packages",
    "/usr/lib64/python3*/site-packages",
    "/usr/local/lib/python3*/dist-packages",
    "/usr/local/lib/python3*/site-packages",
)
TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"

_BCC_HINT = ("run 'make setup' (installs python3-bpfcc), or: apt-get install python3-bpfcc. "
             "The PyPI package named 'bcc' is unrelated: do not pip-install it")
_PRIV_HINT = ("run as root (sudo .venv/bin/dtrace-nb ...); for notebooks start Jupyter as "
              "root ('make lab', i.e. jupyter lab --allow-root); or grant the interpreter the "
              "capabilities: setcap cap_bpf,cap_perfmon,cap_sys_resource+ep <python binary> "
              "(CAP_SYS_ADMIN on kernels older than 5.8)")

_lock = threading.RLock()
_bcc = None
_ready = False


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report.

    `fatal` checks are the ones tracing cannot do without; a failing non-fatal check only
    disables a feature (a provider, ring buffers) and is reported, not raised."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = True


# -- bcc -----------------------------------------------------------------------------------


def system_site_dirs() -> list[str]:
    """Directories outside this interpreter's path that hold a bcc package."""
    found = []
    for pattern in SYSTEM_SITE_PATTERNS:
        for site in sorted(glob.glob(pattern)):
            if os.path.isfile(os.path.join(site, "bcc", "__init__.py")) and site not in found:
                found.append(site)
    return found


def _is_real_bcc(module) -> bool:
    return hasattr(module, "BPF")


def _forget_bcc() -> None:
    for name in [n for n in sys.modules if n == "bcc" or n.startswith("bcc.")]:
        del sys.modules[name]


def import_bcc():
    """The bcc module (cached): this interpreter's own if it has one, else the distribution's.

    Only for the duration of the import is the system directory put on `sys.path` (first,
    so an unrelated PyPI `bcc` cannot win); it is removed again so no other system package
    shadows the virtualenv's. bcc's submodules resolve through the package's `__path__`,
    and bcc itself is pure Python over libbcc.so (ctypes), so nothing else is needed later."""
    global _bcc
    if _bcc is not None:
        return _bcc
    with _lock:
        if _bcc is not None:
            return _bcc
        problems = []
        try:
            module = importlib.import_module("bcc")
            if _is_real_bcc(module):
                _bcc = module
                return _bcc
            where = getattr(module, "__file__", None) or "a namespace package"
            problems.append(f"the 'bcc' importable here ({where}) is not iovisor's bcc "
                            "(is the unrelated PyPI 'bcc' installed? pip uninstall bcc)")
            _forget_bcc()
        except ImportError:
            pass
        except Exception as err:  # noqa: BLE001 - libbcc.so missing or broken (ctypes OSError)
            problems.append(f"importing bcc failed: {err}")
            _forget_bcc()
        for site in system_site_dirs():
            added = site not in sys.path
            if added:
                sys.path.insert(0, site)
            saved_bytecode_flag = sys.dont_write_bytecode
            sys.dont_write_bytecode = True  # never write .pyc files into the system's tree
            try:
                module = importlib.import_module("bcc")
            except Exception as err:  # noqa: BLE001 - any failure: try the next copy
                problems.append(f"{site}/bcc: {err}")
                _forget_bcc()
                continue
            finally:
                sys.dont_write_bytecode = saved_bytecode_flag
                if added:
                    try:
                        sys.path.remove(site)
                    except ValueError:
                        pass
                importlib.invalidate_caches()
            if _is_real_bcc(module):
                _bcc = module
                return _bcc
            _forget_bcc()
        message = "bcc's Python bindings are missing"
        if problems:
            message += ": " + "; ".join(problems)
        raise DEnvironmentError(message, hint=_BCC_HINT)


def check_bcc() -> Check:
    try:
        bcc = import_bcc()
    except DEnvironmentError as err:
        return Check("bcc", False, err.message, err.hint)
    version = getattr(bcc, "__version__", "unknown version")
    where = os.path.dirname(os.path.dirname(os.path.abspath(bcc.__file__)))
    borrowed = "" if where in sys.path else " (borrowed; not on this interpreter's path)"
    return Check("bcc", True, f"bcc {version} from {where}{borrowed}")


# -- privileges ----------------------------------------------------------------------------


def _status_field(status_text: str, field: str) -> Optional[list[str]]:
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            return line.split()[1:]
    return None


def check_privileges(status_text: Optional[str] = None) -> Check:
    """From `/proc/self/status` (or the text given, for tests): the effective uid and the
    effective capability set. The kernel checks capabilities, not the uid: root normally
    holds them all, but root in a container started without them cannot trace."""
    if status_text is None:
        status_text = read_text("/proc/self/status") or ""
    uid = _status_field(status_text, "Uid")
    euid = int(uid[1]) if uid and len(uid) > 1 else os.geteuid()
    cap = _status_field(status_text, "CapEff")
    if not cap:  # no /proc: fall back on the uid alone
        ok = euid == 0
        return Check("privileges", ok,
                     "root (capabilities unknown: no /proc/self/status)" if ok
                     else "tracing needs root or CAP_BPF+CAP_PERFMON", "" if ok else _PRIV_HINT)
    caps = int(cap[0], 16)
    has = {name: bool(caps >> bit & 1) for name, bit in
           (("CAP_BPF", CAP_BPF), ("CAP_PERFMON", CAP_PERFMON), ("CAP_SYS_ADMIN", CAP_SYS_ADMIN))}
    held = ", ".join(name for name, on in has.items() if on) or "none of CAP_BPF/PERFMON/SYS_ADMIN"
    who = "root" if euid == 0 else f"uid {euid}"
    if has["CAP_SYS_ADMIN"] or (has["CAP_BPF"] and has["CAP_PERFMON"]):
        return Check("privileges", True, f"{who}, effective: {held}")
    detail = "tracing needs root or CAP_BPF+CAP_PERFMON"
    if euid == 0:
        detail += f" (running as root but without them, effective: {held}: a container?)"
    else:
        detail += f" (running as {who}, effective: {held})"
    return Check("privileges", False, detail, _PRIV_HINT)


# -- kernel --------------------------------------------------------------------------------


def _headers_release(build: str) -> Optional[str]:
    text = read_text(os.path.join(build, "include", "generated", "utsrelease.h"))
    if text and '"' in text:
        return text.split('"')[1]
    return read_text(os.path.join(build, "include", "config", "kernel.release"))


def check_headers() -> Check:
    rel = kernel_release()
    build = f"/lib/modules/{rel}/build"
    if not os.path.isdir(os.path.join(build, "include")):
        if os.path.exists("/sys/kernel/kheaders.tar.xz"):
            return Check("kernel headers", True, f"{build} missing; bcc will use the kernel's "
                         "built-in headers (/sys/kernel/kheaders.tar.xz)")
        return Check("kernel headers", False, f"no kernel headers at {build} (bcc compiles "
                     "against them)", "run 'make setup' (installs linux-headers and links them "
                     f"there), or: apt-get install linux-headers-{rel}")
    target = os.path.realpath(build)
    hdr = _headers_release(build)
    if hdr is None or hdr == rel:
        return Check("kernel headers", True, f"{build} -> {target}")
    return Check("kernel headers", True, f"{build} -> {target}: headers of {hdr}, running "
                 f"{rel} (allowed; types newer than the headers are unknown to C code)")


def tracefs_dir() -> str:
    """The directory bcc uses: debugfs's tracing/ if it exists, else /sys/kernel/tracing."""
    return DEBUGFS_TRACING if os.path.exists(DEBUGFS_TRACING) else TRACEFS


def check_tracefs() -> Check:
    fix = f"mount -t tracefs nodev {TRACEFS}"
    if os.path.isdir(os.path.join(TRACEFS, "events")):
        bcc_dir = tracefs_dir()
        if not os.path.isdir(os.path.join(bcc_dir, "events")):
            return Check("tracefs", False, f"mounted at {TRACEFS}, but bcc looks in {bcc_dir}, "
                         "which has no events/", "mount -t tracefs nodev " + bcc_dir)
        return Check("tracefs", True, f"mounted at {TRACEFS}"
                     + (f" (bcc reads {bcc_dir})" if bcc_dir != TRACEFS else ""))
    if os.path.isdir(TRACEFS) and not os.access(TRACEFS, os.R_OK | os.X_OK):
        return Check("tracefs", False, f"{TRACEFS} is not readable by this user "
                     "(permission denied; tracing needs root)", _PRIV_HINT)
    return Check("tracefs", False, f"tracefs is not mounted ({TRACEFS}/events is missing)",
                 fix + " (or run 'make setup')")


def check_kernel() -> Check:
    rel = kernel_release()
    ver = kernel_version(rel)
    if ver == (0, 0):
        return Check("kernel", True, f"Linux {rel} (version not parsed)", fatal=False)
    ok = ver >= (4, 18)
    return Check("kernel", ok, f"Linux {rel}" + ("" if ok else ": older than 4.18"),
                 "" if ok else "dtrace-nb needs Linux 4.18 or newer (raw tracepoints, "
                 "bpf_probe_read_*_str)", fatal=False)


def _feature(name: str, f: features.Feature, fix: str, missing: str = "") -> Check:
    """A non-fatal check of what the feature layer found; `missing` words the absence
    for the user instead of the feature's own detail."""
    if f.available:
        return Check(name, True, f.detail, fatal=False)
    return Check(name, False, missing or f.detail, fix, fatal=False)


def check_btf() -> Check:
    return _feature("BTF", features.btf_vmlinux(),
                    "typed kernel arguments need a kernel with CONFIG_DEBUG_INFO_BTF")


def check_raw_tracepoints() -> Check:
    return _feature("raw tracepoints", features.raw_tracepoints(),
                    "the syscall provider needs Linux 4.17 or newer")


def check_perf_events() -> Check:
    f = features.perf_events()
    if f.available:
        return Check("perf events", True, f.detail + " (tracepoints, profile/tick)", fatal=False)
    if not os.path.exists("/proc/sys/kernel/perf_event_paranoid"):
        return _feature("perf events", f, "the profile provider needs CONFIG_PERF_EVENTS")
    return _feature("perf events", f, "perf_event_open is blocked (a seccomp profile? run the "
                    "container with --privileged or a profile allowing it)",
                    f.detail + ": tracepoint and profile probes cannot attach "
                    "(raw-tracepoint ones still can)")


def check_uprobes() -> Check:
    return _feature("uprobes", features.uprobes(),
                    "the pid and usdt providers need CONFIG_UPROBE_EVENTS",
                    "kernel built without uprobes")


def check_kprobes() -> Check:
    return _feature("kprobes", features.kprobes(),
                    "fbt needs a kernel with CONFIG_KPROBE_EVENTS (or fentry)",
                    "kernel built without kprobes: the fbt provider cannot attach them; "
                    "syscall/sdt/profile/pid/usdt still work")


def check_fentry() -> Check:
    return _feature("fentry", features.fentry(),
                    "fbt uses kprobes instead where the kernel has them; trampolines need "
                    "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS and BTF")


def check_ringbuf() -> Check:
    return _feature("ring buffer", features.ring_buffer(),
                    "printf()/trace() records need Linux 5.8 or newer")


def check_perf_event_paranoid() -> Check:
    value = read_text("/proc/sys/kernel/perf_event_paranoid")
    note = {"-1": "no restrictions", "0": "", "1": "", "2": "user-only for unprivileged users",
            "3": "perf events disabled for unprivileged users",
            "4": "perf events disabled for unprivileged users"}.get(value or "", "")
    detail = f"kernel.perf_event_paranoid = {value if value is not None else 'unknown'}"
    if note:
        detail += f" ({note}; irrelevant with CAP_PERFMON)"
    return Check("perf_event_paranoid", True, detail, fatal=False)


def check_unprivileged_bpf() -> Check:
    value = read_text("/proc/sys/kernel/unprivileged_bpf_disabled")
    meaning = {"0": "unprivileged bpf() allowed", "1": "unprivileged bpf() disabled (permanently)",
               "2": "unprivileged bpf() disabled"}.get(value or "", "")
    detail = f"kernel.unprivileged_bpf_disabled = {value if value is not None else 'unknown'}"
    if meaning:
        detail += f" ({meaning}; irrelevant with CAP_BPF)"
    return Check("unprivileged_bpf_disabled", True, detail, fatal=False)


def _fmt_limit(value: int) -> str:
    import resource

    if value == resource.RLIM_INFINITY:
        return "unlimited"
    return f"{value // 1024} KiB"


def check_memlock(status_text: Optional[str] = None) -> Check:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    except (ImportError, OSError, ValueError):
        return Check("locked memory", True, "RLIMIT_MEMLOCK unknown", fatal=False)
    detail = f"RLIMIT_MEMLOCK {_fmt_limit(soft)} (hard {_fmt_limit(hard)})"
    if kernel_version() >= (5, 11):
        detail += "; BPF memory is charged to the cgroup on 5.11+, so the limit does not apply"
    else:
        detail += "; bcc raises it itself (needs CAP_SYS_RESOURCE)"
    return Check("locked memory", True, detail, fatal=False)


# -- the report and the gate ---------------------------------------------------------------

FATAL_CHECKS: tuple[Callable[[], Check], ...] = (
    check_privileges, check_bcc, check_headers, check_tracefs)


def doctor() -> list[Check]:
    """Every check, fatal ones first, in the order a user would fix them."""
    return [check_privileges(), check_bcc(), check_headers(), check_tracefs(), check_kernel(),
            check_btf(), check_raw_tracepoints(), check_perf_events(), check_uprobes(),
            check_kprobes(), check_fentry(), check_ringbuf(), check_perf_event_paranoid(),
            check_unprivileged_bpf(), check_memlock()]


def ready(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.fatal)


def format_doctor(checks: list[Check], ascii_only: bool = False) -> str:
    """A table: one line per check with ✓/✗, the fix under each failure, then a summary."""
    good, bad = ("ok", "NO") if ascii_only else ("✓", "✗")
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        mark = good if c.ok else bad
        lines.append(f" {mark} {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"   {'':<{width}}  fix: {c.fix}")
    blocking = [c for c in checks if c.fatal and not c.ok]
    missing = [c.name for c in checks if not c.fatal and not c.ok]
    if blocking:
        lines.append("not ready to trace: fix " + ", ".join(c.name for c in blocking)
                     + " (see 'fix:' above), or run 'make setup'")
    else:
        lines.append("ready to trace" + (f" (unavailable here: {', '.join(missing)})"
                                         if missing else ""))
    return "\n".join(lines)


def _error(check: Check) -> DEnvironmentError:
    return DEnvironmentError(check.detail, hint=check.fix)


def require_tracing() -> None:
    """Raise DEnvironmentError for the first thing that stops tracing. Once everything has
    passed the result is cached, so the runtime may call this before every load."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        for check in FATAL_CHECKS:
            c = check()
            if not c.ok:
                raise _error(c)
        _ready = True


def is_kernel_available() -> tuple[bool, str]:
    """(True, 'ready to trace') or (False, what is missing and how to fix it)."""
    try:
        require_tracing()
    except DEnvironmentError as err:
        return False, f"{err.message} (hint: {err.hint})" if err.hint else err.message
    return True, "ready to trace"


def main() -> int:
    checks = doctor()
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
        ascii_only = False
    except (UnicodeEncodeError, LookupError):
        ascii_only = True
    print(format_doctor(checks, ascii_only=ascii_only))
    return 0 if ready(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
