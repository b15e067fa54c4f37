"""The program cache: a D program compiled before goes straight to loading its object.

compile_program (compile.py) parses, checks, binds and generates C: 50-100 ms of a
command's start, and the parser's import besides. What it makes depends only on inputs
that can be named before parsing, so the pair it returns is kept, pickled, in the user's
private cache directory (cachedir.py, next to the compiled objects) under a key of:

- the program text (after cpp), the -x options, -q and the macro arguments;
- whether a target process was given (with -c/-p the bindings may depend on it);
- the kernel the probe catalog and BTF describe: release, build, boot (tracepoint ids,
  kernel addresses), the loaded modules (their tracepoints and BTF) and vmlinux's BTF;
- the providers registered (entry points) and the project's own code, version included
  (every source file's size and time: an edited checker or code generator is another
  compiler), Python's version (the pickle's classes).

Two inputs are only known once the program is checked: which macro variables it read
($pid is this process's id, $target the target's, $ppid, $uid...). The entry keeps the
values it was compiled with and is used only while each is still the same.

Only programs whose probes are all the kernel's own (tracepoints, raw tracepoints, perf
events such as profile-997, BEGIN/END/ERROR) are kept: a user-space probe's binding
depends on the files of a process (addresses in an executable, USDT notes), which this key
does not name. A session given a catalog of its own (tests, tools) does not use the cache.
DTRACE_NB_PROGRAM_CACHE=off turns it off.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from typing import Optional

from dtrace_nb.cachedir import private_cache_subdir, put_entry
from dtrace_nb.lang.check.macros import MacroEnv

FORMAT = 1  # bump when an entry's shape changes
_DISK_ENTRIES = 256
_CODE_SUFFIXES = (".py", ".h", ".lark", ".c")


def enabled() -> bool:
    return os.environ.get("DTRACE_NB_PROGRAM_CACHE", "on").lower() not in ("off", "0", "no")


class RecordingMacros(MacroEnv):
    """A MacroEnv that remembers each macro variable the checker asked for, and its value."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used: dict[str, str] = {}

    def value(self, name, span):
        found = super().value(name, span)
        self.used[name] = found
        return found


def still_valid(used: dict[str, str], macros: MacroEnv) -> bool:
    """Whether every macro variable an entry was compiled with has the same value now."""
    try:
        return all(macros.value(name, None) == value for name, value in used.items())
    except Exception:  # noqa: BLE001 - a macro that no longer resolves: compile afresh
        return False


# -- the key -------------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return f"no {path}"


def kernel_identity() -> str:
    """The kernel the catalog and BTF describe (see the module's docstring)."""
    u = os.uname()
    modules = " ".join(sorted(line.split(" ", 1)[0]
                              for line in _read("/proc/modules").splitlines()))
    try:
        st = os.stat("/sys/kernel/btf/vmlinux")
        btf = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        btf = "no btf"
    return "\n".join([u.release, u.version, u.machine,
                      _read("/proc/sys/kernel/random/boot_id").strip(), modules, btf])


def _package_dirs() -> list[str]:
    """This package's directory and the bundled providers' (found, not imported: they
    are entry points, and only their files are wanted here)."""
    import importlib.util

    dirs = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]  # dtrace_nb/
    try:
        spec = importlib.util.find_spec("dtrace_nb_providers")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        dirs += [os.path.abspath(d) for d in spec.submodule_search_locations]
    return dirs


_code: dict[tuple[str, ...], str] = {}


def code_identity(dirs: Optional[list[str]] = None) -> str:
    """Every source file's path, size and mtime (the version is in __init__.py's text),
    and Python's version. Taken once per process: the code that compiles is the code
    imported, not what the files say later."""
    dirs = dirs if dirs is not None else _package_dirs()
    found = _code.get(tuple(dirs))
    if found is None:
        found = _code[tuple(dirs)] = _code_identity(dirs)
    return found


def _code_identity(dirs: list[str]) -> str:
    parts = [sys.version]
    for top in dirs:
        for where, subdirs, files in os.walk(top):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(_CODE_SUFFIXES):
                    path = os.path.join(where, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def providers_identity() -> str:
    """The providers registered: entry points' names and objects."""
    from importlib import metadata

    from dtrace_nb.probes import ENTRY_POINT_GROUP

    eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return "\n".join(sorted(f"{e.name}={e.value}" for e in eps))


def program_key(cfg, has_target: bool) -> str:
    """The cache key of a compile of `cfg` (a ProgramRequest), without its macro values."""
    h = hashlib.sha256()
    options = sorted((k, "" if v is None else "=" + v) for k, v in cfg.options.items())
    for part in (str(FORMAT), cfg.source, repr(options), repr(bool(cfg.quiet)),
                 repr(list(cfg.macro_args)), repr(has_target), kernel_identity(),
                 providers_identity(), code_identity()):
        h.update(part.encode(errors="surrogateescape"))
        h.update(b"\0\1")
    return h.hexdigest()


# -- what may be kept ----------------------------------------------------------------

def cacheable(program) -> bool:
    """Whether every function of the program attaches to the kernel's own probes."""
    from dtrace_nb.probes import (PerfEventAttach, RawTracepointAttach, TracepointAttach,
                                  TriggerAttach)

    kinds = (TracepointAttach, RawTracepointAttach, PerfEventAttach, TriggerAttach)
    return all(isinstance(f.binding.attach, kinds) for f in program.functions)


# -- the store -----------------------------------------------------------------------

def _programs_dir() -> Optional[str]:
    return private_cache_subdir("programs")


def load(key: str, macros: MacroEnv):
    """(checked, program) from the entry `key`, or None (absent, damaged, or compiled with
    macro values that differ from `macros`')."""
    where = _programs_dir()
    if where is None:
        return None
    path = os.path.join(where, key + ".pickle")
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f)
        if entry.get("format") != FORMAT or not still_valid(entry["macros"], macros):
            return None
        found = entry["checked"], entry["program"]
    except Exception:  # noqa: BLE001 - a damaged or foreign entry: compile afresh
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return found


def store(key: str, used: dict[str, str], checked, program) -> None:
    """Keep (checked, program) under `key`; quietly nothing when it cannot be."""
    if not cacheable(program):
        return
    where = _programs_dir()
    if where is None:
        return
    try:
        data = pickle.dumps({"format": FORMAT, "macros": dict(used), "checked": checked,
                             "program": program}, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - something in it does not pickle: not kept
        return
    put_entry(where, key + ".pickle", data, _DISK_ENTRIES)
