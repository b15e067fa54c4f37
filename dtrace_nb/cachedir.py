"""The user's private cache directory for dtrace-nb (the parser's tables, compiled objects).

Whatever is read back from here is trusted (tables are unpickled, instructions are loaded
into the kernel), so the directory must be the user's own and writable by nobody else; if
it is not, nothing is cached.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import Optional


def private_cache_dir() -> Optional[str]:
    """$XDG_CACHE_HOME/dtrace-nb (or ~/.cache/dtrace-nb), 0700 and owned by us; None if it
    cannot be made so."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "dtrace-nb")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return path


def private_cache_subdir(name: str) -> Optional[str]:
    """A folder of the private cache directory (made 0700 if absent); None if it cannot be."""
    base = private_cache_dir()
    if base is None:
        return None
    path = os.path.join(base, name)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return None
    return path


def put_entry(where: str, name: str, data: bytes, keep: int) -> None:
    """Write `data` as `where/name` (written aside and renamed in, so a reader never sees
    half of it), then keep at most `keep` entries of its suffix, dropping the least
    recently used half when over; quietly nothing when the disk refuses."""
    suffix = os.path.splitext(name)[1]
    try:
        fd, tmp = tempfile.mkstemp(dir=where, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(where, name))
        entries = [e for e in os.scandir(where) if e.name.endswith(suffix)]
        if len(entries) <= keep:
            return
        entries.sort(key=lambda e: e.stat().st_mtime)
        for e in entries[: len(entries) - keep // 2]:
            with contextlib.suppress(OSError):  # another process may have pruned it
                os.unlink(e.path)
    except OSError:
        pass
