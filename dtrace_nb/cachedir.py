"""The user's private cache directory for dtrace-nb (the parser's tables, compiled objects).

Whatever is read back from here is trusted (tables are unpickled, instructions are loaded
into the kernel), so the directory must be the user's own and writable by nobody else; if
it is not, nothing is cached.
"""

from __future__ import annotations

import os
import stat
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
