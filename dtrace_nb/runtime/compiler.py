"""Generated C -> BPF instructions and map declarations, compiled in a child process and
cached.

bcc compiles with clang and LLVM inside the calling process, and LLVM ends the process on a
fatal error ("LLVM ERROR: ..."): in a notebook that would be the kernel, with every result
in it. So the compile runs in a forked child, which hands back what it produced (each
function's instructions with their map references, and each map's declaration) through a
pipe and exits; if it dies, the caller gets an error and lives. The child's maps vanish
with it: this process creates its own (runtime/maps.py) and patches the map references.

What the child produces depends only on the C text, the flags and the toolchain, so it is
cached: in memory for the process, and in a private directory on disk (0700, owned by the
user, like the parser's tables) for the next process. An unchanged cell or script loads
without running clang at all. DTRACE_NB_OBJECT_CACHE=off turns the cache off.

A fleet run (dtrace_nb/fleet) also shares objects between hosts: under `sharing(exchange)`
a missing object is asked of the exchange by its flavour key (what makes the object valid
on another host, without this host's file times), which hands back another host's or has
this one compile it.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import ctypes
import hashlib
import json
import os
import signal
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional, Protocol

from dtrace_nb.cachedir import private_cache_subdir, put_entry
from dtrace_nb.runtime.kernel import libbcc
from dtrace_nb.runtime.maps import MapSpec

FORMAT = 1  # bump when the cached object's shape changes
_MEMORY_ENTRIES = 64
_DISK_ENTRIES = 512

# One compile at a time per process: the child is forked from whichever thread asks, and
# must not inherit another thread's half-finished compile (LLVM's locks) or fd 2 redirection.
_COMPILE_LOCK = threading.Lock()
_memory: "OrderedDict[str, CompiledObject]" = OrderedDict()


class ObjectExchange(Protocol):
    """Where hosts of one flavour share compiled objects (fleet/objects.py)."""

    def share(self, key: str, build: Callable[[], "CompiledObject"]) -> "CompiledObject":
        """Another host's object for `key`, or build() (and offer it to the others)."""
        ...


# per thread (a Dask worker runs each task in a thread of its own): the exchange in use
_exchange: contextvars.ContextVar[Optional[ObjectExchange]] = \
    contextvars.ContextVar("dtrace_nb_object_exchange", default=None)


@contextlib.contextmanager
def sharing(exchange: Optional[ObjectExchange]) -> Iterator[None]:
    """Compiles in this block ask `exchange` before running clang."""
    token = _exchange.set(exchange)
    try:
        yield
    finally:
        _exchange.reset(token)


@dataclass(frozen=True)
class CompiledObject:
    """What clang made of one program: functions' instructions, whose map references
    (LD_IMM64 with a map-fd source) hold the child's fd numbers in `map_fds`."""

    functions: dict[str, bytes]
    maps: tuple[MapSpec, ...]
    map_fds: dict[int, str]      # the child's fd -> map name
    license: bytes
    kern_version: int
    cached: bool = False         # loaded from the cache rather than compiled now

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT,
            "functions": {k: base64.b64encode(v).decode() for k, v in self.functions.items()},
            "maps": [m.__dict__ for m in self.maps],
            "map_fds": {str(k): v for k, v in self.map_fds.items()},
            "license": self.license.decode(), "kern_version": self.kern_version})

    @classmethod
    def from_json(cls, text: str, cached: bool = False) -> "CompiledObject":
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ValueError("cached object of another format")
        return cls({k: base64.b64decode(v) for k, v in d["functions"].items()},
                   tuple(MapSpec(**m) for m in d["maps"]),
                   {int(k): v for k, v in d["map_fds"].items()},
                   d["license"].encode(), int(d["kern_version"]), cached)


class CompileFailure(Exception):
    """The compile did not produce an object. `log` is what clang and bcc wrote; `crashed`
    says the compiler process died (an LLVM fatal error, a signal) instead of reporting."""

    def __init__(self, message: str, log: str, crashed: bool = False):
        super().__init__(message)
        self.log = log
        self.crashed = crashed


def compile_object(bcc, c_source: str, cflags: list[str], functions: list[str]) -> CompiledObject:
    """The compiled object for `c_source`, from the cache or from a child process."""
    key = _cache_key(bcc, c_source, cflags, functions)
    use_cache = os.environ.get("DTRACE_NB_OBJECT_CACHE", "on").lower() not in ("off", "0", "no")
    if use_cache:
        found = _memory.get(key) or _disk_get(key)
        if found is not None:
            _remember(key, found)
            return replace(found, cached=True)
    def build() -> CompiledObject:
        with _COMPILE_LOCK:
            return _compile_in_child(bcc, c_source, cflags, functions)

    exchange = _exchange.get()
    if exchange is not None:
        obj = exchange.share(flavour_key(bcc, c_source, cflags, functions), build)
    else:
        obj = build()
    if use_cache:
        _remember(key, obj)
        _disk_put(key, obj)
    return obj


# -- the child ---------------------------------------------------------------------------

def _compile_in_child(bcc, c_source, cflags, functions) -> CompiledObject:
    with tempfile.TemporaryFile(mode="w+b") as log:
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: compile, report, exit without running the parent's atexit
            status = 3
            try:
                os.close(rfd)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.dup2(log.fileno(), 2)
                # anything printed goes to the log, never to the parent's streams (in a
                # notebook kernel those are sockets the parent's threads own)
                sys.stdout = sys.stderr = open(2, "w", closefd=False)
                reply = _compile_here(bcc, c_source, cflags, functions)
                data = reply.encode()
                while data:
                    data = data[os.write(wfd, data):]
                status = 0
            finally:
                os._exit(status)
        os.close(wfd)
        chunks = []
        try:
            with os.fdopen(rfd, "rb") as r:
                while True:
                    chunk = r.read(1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
            _, status = os.waitpid(pid, 0)
            pid = 0
        finally:
            if pid:  # interrupted while the child works: it must not outlive us
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                os.waitpid(pid, 0)
        log.seek(0)
        text = log.read().decode(errors="replace")
    reply = b"".join(chunks)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and reply:
        d = json.loads(reply)
        if "error" in d:
            raise CompileFailure(d["error"], text)
        return CompiledObject.from_json(reply.decode())
    if os.WIFSIGNALED(status):
        why = f"the compiler was killed by signal {os.WTERMSIG(status)}"
    else:
        why = f"the compiler exited with status {os.WEXITSTATUS(status)}"
    fatal = [ln for ln in text.splitlines() if "LLVM ERROR" in ln or "fatal" in ln.lower()]
    if fatal:
        why += f" ({fatal[-1].strip()})"
    raise CompileFailure(why, text, crashed=True)


_BPF_CLASSES: dict = {}


def _bpf_class(bcc):
    """bcc.BPF without its constructor's auto-attach: bcc attaches functions named
    kfunc__*, kprobe__*, tracepoint__*... as soon as it compiles them, outside our
    bookkeeping (and a failure there would leave the module's maps behind). dtrace-nb
    attaches every function itself (runtime/attach/)."""
    cls = _BPF_CLASSES.get(id(bcc))
    if cls is None:
        class BPF(bcc.BPF):
            def _trace_autoload(self):
                pass

        cls = _BPF_CLASSES[id(bcc)] = BPF
    return cls


def _compile_here(bcc, c_source, cflags, functions) -> str:
    """In the child: compile with bcc, describe the result as JSON (or the error)."""
    try:
        bpf = _bpf_class(bcc)(text=c_source.encode(), cflags=cflags)
    except Exception as exc:  # bcc raises bare Exception for compile failures
        return json.dumps({"error": str(exc)})
    lib = libbcc.declared(bcc)
    mod = bpf.module
    maps, fds = [], {}
    for i in range(lib.bpf_num_tables(mod)):
        name = lib.bpf_table_name(mod, i).decode()
        maps.append(MapSpec(name=name, map_type=lib.bpf_table_type_id(mod, i),
                            key_size=lib.bpf_table_key_size_id(mod, i),
                            value_size=lib.bpf_table_leaf_size_id(mod, i),
                            max_entries=lib.bpf_table_max_entries_id(mod, i),
                            flags=lib.bpf_table_flags_id(mod, i),
                            key_desc=(lib.bpf_table_key_desc_id(mod, i) or b"").decode(),
                            leaf_desc=(lib.bpf_table_leaf_desc_id(mod, i) or b"").decode()))
        fds[lib.bpf_table_fd_id(mod, i)] = name
    code = {}
    for fname in functions:
        start = lib.bpf_function_start(mod, fname.encode())
        if not start:
            return json.dumps({"error": f"the compiled module has no function {fname}"})
        code[fname] = ctypes.string_at(start, lib.bpf_function_size(mod, fname.encode()))
    return CompiledObject(code, tuple(maps), fds, lib.bpf_module_license(mod) or b"GPL",
                          int(lib.bpf_module_kern_version(mod))).to_json()


# -- the cache ---------------------------------------------------------------------------

def _loaded_libbcc() -> str:
    """The path of the libbcc this process mapped (bcc loads it by soname)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(None, 5)[-1].strip()
                if os.path.basename(path).startswith("libbcc.so"):
                    return path
    except OSError:
        pass
    return "libbcc.so"


def _toolchain() -> str:
    """What else decides the instructions: bcc and its LLVM, the kernel and its headers."""
    parts = [os.uname().release, os.uname().version]
    for path in (_loaded_libbcc(), f"/lib/modules/{os.uname().release}/build"):
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
            parts.append(f"{real}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(path)
    return "\n".join(parts)


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode(errors="surrogateescape"))
        h.update(b"\0\1")
    return h.hexdigest()


def _cache_key(bcc, c_source, cflags, functions) -> str:
    return _digest(str(FORMAT), getattr(bcc, "__version__", ""), _toolchain(), c_source,
                   "\0".join(cflags), "\0".join(functions))


_flavour: dict[int, str] = {}


def kernel_flavour(bcc) -> str:
    """What decides, besides the C text and flags, whether an object compiled on one host
    is the object another host would compile: bcc's version and its LLVM (the libbcc
    file's name and size: a package's file is the same on every host that installed it,
    its mtime need not be), the kernel's release and build (uname -r, uname -v) and the
    headers clang compiled against (their generated config and version files, by content).
    BTF needs no place of its own: the struct offsets read from it are in the flags
    (runtime/translated.py), and the verifier checks the object on each host anyway."""
    found = _flavour.get(id(bcc))
    if found is not None:
        return found
    parts = [getattr(bcc, "__version__", "")]
    lib = os.path.realpath(_loaded_libbcc())
    try:
        parts.append(f"{os.path.basename(lib)}:{os.stat(lib).st_size}")
    except OSError:
        parts.append(os.path.basename(lib))
    parts += [os.uname().release, os.uname().version]
    build = f"/lib/modules/{os.uname().release}/build"
    for rel in ("include/generated/autoconf.h", "include/generated/utsrelease.h",
                "include/generated/uapi/linux/version.h"):
        try:
            with open(os.path.join(build, rel), "rb") as f:
                parts.append(hashlib.sha256(f.read()).hexdigest())
        except OSError:
            parts.append(f"no {rel}")
    found = _flavour[id(bcc)] = _digest(*parts)
    return found


def flavour_key(bcc, c_source, cflags, functions) -> str:
    """The object's identity across hosts (ObjectExchange's key): its inputs and the host's
    kernel flavour."""
    return _digest(str(FORMAT), kernel_flavour(bcc), c_source, "\0".join(cflags),
                   "\0".join(functions))


def _remember(key: str, obj: CompiledObject) -> None:
    _memory[key] = obj
    _memory.move_to_end(key)
    while len(_memory) > _MEMORY_ENTRIES:
        _memory.popitem(last=False)


def _objects_dir() -> Optional[str]:
    return private_cache_subdir("objects")


def _disk_get(key: str) -> Optional[CompiledObject]:
    where = _objects_dir()
    if where is None:
        return None
    try:
        with open(os.path.join(where, key + ".json")) as f:
            obj = CompiledObject.from_json(f.read(), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.utime(os.path.join(where, key + ".json"))  # recently used: pruned last
    except OSError:
        pass
    return obj


def _disk_put(key: str, obj: CompiledObject) -> None:
    where = _objects_dir()
    if where is None:
        return
    put_entry(where, key + ".json", obj.to_json().encode(), _DISK_ENTRIES)


def clear_memory_cache() -> None:
    _memory.clear()
