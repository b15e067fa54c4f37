"""Just enough ELF for the user-space providers: function symbols, USDT notes, and the
mapping from virtual addresses to file offsets (what a uprobe is attached at).

64-bit little-endian only (x86-64, aarch64), which is what the uprobe providers support.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache

SHT_SYMTAB, SHT_DYNSYM, SHT_NOTE, SHT_DYNAMIC = 2, 11, 7, 6
DT_NEEDED, DT_RPATH, DT_RUNPATH = 1, 15, 29
# where the dynamic loader looks after RPATH/RUNPATH (Debian's multiarch first)
_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64",
             "/lib", "/usr/lib", "/usr/local/lib")
STT_FUNC, STT_GNU_IFUNC = 2, 10
PT_LOAD = 1
NT_STAPSDT = 3


class ELFError(Exception):
    pass


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    addr: int
    offset: int
    size: int
    link: int
    entsize: int


@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int
    size: int


@dataclass(frozen=True)
class Note:
    """A SystemTap SDT (USDT) probe: where it is, its semaphore, its argument specs."""

    provider: str
    name: str
    pc: int
    semaphore: int
    args: tuple[str, ...]  # e.g. ("-4@%edi", "8@-16(%rbp)", "4@$5")


class ELF:
    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF":
            raise ELFError(f"{path} is not an ELF file")
        if d[4] != 2 or d[5] != 1:
            raise ELFError(f"{path} is not a 64-bit little-endian ELF file")
        (self.type, _machine, _v, self.entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
         shentsize, shnum, shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", d, 16)
        self.segments = []
        for i in range(phnum):
            p_type, _fl, off, vaddr, _pa, filesz, _memsz, _al = struct.unpack_from(
                "<IIQQQQQQ", d, phoff + i * phentsize)
            if p_type == PT_LOAD:
                self.segments.append((vaddr, off, filesz))
        raw = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
        names = raw[shstrndx] if shstrndx < len(raw) else None
        self.sections = []
        for (name, typ, _fl, addr, off, size, link, _info, _al, entsize) in raw:
            label = self._cstr(names[4] + name) if names else ""
            self.sections.append(Section(label, typ, addr, off, size, link, entsize))

    def _cstr(self, off: int) -> str:
        end = self.data.index(b"\0", off)
        return self.data[off:end].decode(errors="replace")

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def functions(self) -> list[Symbol]:
        """Defined function symbols from .symtab and .dynsym (deduplicated by name)."""
        seen: dict[str, Symbol] = {}
        for sec in self.sections:
            if sec.type not in (SHT_SYMTAB, SHT_DYNSYM) or not sec.entsize:
                continue
            strtab = self.sections[sec.link]
            for pos in range(sec.offset, sec.offset + sec.size, sec.entsize):
                name, info, _other, shndx, value, size = struct.unpack_from(
                    "<IBBHQQ", self.data, pos)
                if info & 0xF not in (STT_FUNC, STT_GNU_IFUNC) or shndx == 0 or value == 0:
                    continue
                sym = self._cstr(strtab.offset + name).split("@")[0]
                if sym and sym not in seen:
                    seen[sym] = Symbol(sym, value, size)
        return sorted(seen.values(), key=lambda s: s.name)

    def dynamic_strings(self, tag: int) -> list[str]:
        """The string values of the .dynamic entries with `tag` (DT_NEEDED: the libraries
        the object links against)."""
        out = []
        for sec in self.sections:
            if sec.type != SHT_DYNAMIC:
                continue
            strtab = self.sections[sec.link]
            for pos in range(sec.offset, sec.offset + sec.size, 16):
                d_tag, d_val = struct.unpack_from("<qQ", self.data, pos)
                if d_tag == 0:
                    break
                if d_tag == tag:
                    out.append(self._cstr(strtab.offset + d_val))
        return out

    def file_offset(self, vaddr: int) -> int:
        """The file offset of a virtual address (what the kernel's uprobe API takes)."""
        for start, off, size in self.segments:
            if start <= vaddr < start + size:
                return vaddr - start + off
        raise ELFError(f"address {vaddr:#x} is in no loadable segment of {self.path}")

    def usdt_notes(self) -> list[Note]:
        sec = self.section(".note.stapsdt")
        if sec is None:
            return []
        base_sec = self.section(".stapsdt.base")
        out = []
        pos, end = sec.offset, sec.offset + sec.size
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", self.data, pos)
            pos += 12
            owner = self.data[pos:pos + namesz].rstrip(b"\0")
            pos += (namesz + 3) & ~3
            desc = self.data[pos:pos + descsz]
            pos += (descsz + 3) & ~3
            if owner != b"stapsdt" or ntype != NT_STAPSDT or len(desc) < 24:
                continue
            pc, base, sem = struct.unpack_from("<QQQ", desc)
            provider, name, args = (desc[24:].split(b"\0") + [b"", b"", b""])[:3]
            if base_sec is not None and base:
                # prelinked or relocated: shift by how far .stapsdt.base moved
                pc += base_sec.addr - base
                if sem:
                    sem += base_sec.addr - base
            out.append(Note(provider.decode(), name.decode(), pc, sem,
                            tuple(a for a in args.decode().split() if a)))
        return out


def load(path: str) -> ELF:
    """The parsed ELF file at path (cached while the file is unchanged)."""
    st = os.stat(path)
    return _load(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _load(path: str, _mtime: int, _size: int) -> ELF:
    return ELF(path)


def has_usdt_notes(path: str) -> bool:
    """Whether the ELF file at path has a .note.stapsdt section, from its section headers
    only (scanning every process's objects must not read each library whole)."""
    try:
        st = os.stat(path)
        return _has_notes(path, st.st_mtime_ns, st.st_size)
    except OSError:
        return False


@lru_cache(maxsize=4096)
def _has_notes(path: str, _mtime: int, _size: int) -> bool:
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return False
        shoff, = struct.unpack_from("<Q", head, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", head, 58)
        if not shnum or shstrndx >= shnum or shentsize < 64:
            return False
        f.seek(shoff)
        table = f.read(shnum * shentsize)
        if len(table) < shnum * shentsize:
            return False
        _n, _t, _fl, _a, str_off, str_size = struct.unpack_from("<IIQQQQ", table,
                                                                  shstrndx * shentsize)
        f.seek(str_off)
        names = f.read(min(str_size, 1 << 20))
    return b".note.stapsdt\0" in names


def module_names(path: str) -> tuple[str, ...]:
    """The names a probe description's MODULE may give an object by: its basename and, for
    a shared library, the basename without its version and without `.so`
    (libc.so.6 -> libc.so.6, libc.so, libc), as DTrace accepts `libc`."""
    base = os.path.basename(path)
    names = [base]
    stem, so, _version = base.partition(".so")
    if so and stem:
        names += [stem + so, stem]
    return tuple(dict.fromkeys(names))


def running_pids() -> list[int]:
    """Every process id in /proc, ascending."""
    return sorted(int(d) for d in os.listdir("/proc") if d.isdigit())


def is_ours(pid: int) -> bool:
    """This process or one it started other than the target (a compiler child: it exits
    before probes attach, and tracing ourselves would trace every firing's consumer)."""
    me = os.getpid()
    if pid == me:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return True  # gone already
    return ppid == me


def process_objects(pid: int, target_exe: str = "") -> list[str]:
    """Paths of the executable ELF objects mapped in a process, main executable first."""
    paths: list[str] = []
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
                    path = parts[5].strip()
                    if path not in paths and not path.endswith(" (deleted)"):
                        paths.append(path)
    except OSError:
        raise ProcessLookupError(f"process {pid} does not exist (or is not readable)") from None
    main = target_exe or exe
    if target_exe and exe != target_exe and exe in paths:
        paths.remove(exe)  # the -c gate's /bin/sh, which is about to exec the command
    return [main] + [p for p in paths if p != main]


def needed_libraries(exe: str, limit: int = 256) -> list[str]:
    """The shared libraries `exe` links against, transitively (DT_NEEDED, searched in its
    RUNPATH/RPATH, then the system's directories): what a -c target held before its exec
    will map, so its libraries' probes can be named (uprobes are placed on the file and
    fire once the process maps it)."""
    found: list[str] = []
    todo = [exe]
    while todo and len(found) < limit:
        path = todo.pop(0)
        try:
            elf = load(path)
        except (OSError, ELFError):
            continue
        origin = os.path.dirname(path)
        dirs = [d.replace("$ORIGIN", origin) for tag in (DT_RUNPATH, DT_RPATH)
                for entry in elf.dynamic_strings(tag) for d in entry.split(":") if d]
        for name in elf.dynamic_strings(DT_NEEDED):
            lib = next((os.path.realpath(os.path.join(d, name)) for d in (*dirs, *_LIB_DIRS)
                        if os.path.exists(os.path.join(d, name))), None)
            if lib and lib not in found:
                found.append(lib)
                todo.append(lib)
    return found


def target_objects(pid: int, ctx) -> list[str]:
    """process_objects for the pid of a probe description: the -c target's executable is
    the one it will exec (BindContext.target_exe) and the libraries it links against are
    included though not mapped yet; a missing process is a DProbeError."""
    from dtrace_nb.errors import DProbeError

    exe = ctx.target_exe if pid == ctx.target_pid else ""
    try:
        objects = process_objects(pid, exe)
    except ProcessLookupError as err:
        raise DProbeError(str(err)) from None
    if exe:
        mapped = {os.path.realpath(o) for o in objects}
        objects += [lib for lib in needed_libraries(exe) if lib not in mapped]
    return objects
