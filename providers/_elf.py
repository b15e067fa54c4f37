"""Just enough ELF for the user-space providers: function symbols, USDT notes, and the
mapping from virtual addresses to file offsets (what a uprobe is attached at).

64-bit little-endian only (x86-64, aarch64), which is what the uprobe providers support.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from functools import lru_cache

SHT_SYMTAB, SHT_DYNSYM, SHT_NOTE = 2, 11, 7
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


def target_objects(pid: int, ctx) -> list[str]:
    """process_objects for the pid of a probe description: the -c target's executable is
    the one it will exec (BindContext.target_exe), and a missing process is a DProbeError."""
    from dtrace_nb.errors import DProbeError

    exe = ctx.target_exe if pid == ctx.target_pid else ""
    try:
        return process_objects(pid, exe)
    except ProcessLookupError as err:
        raise DProbeError(str(err)) from None
