"""The kernel's small text files (/proc, /sys, tracefs), read whole."""

from __future__ import annotations

from typing import Optional


def read_text(path: str) -> Optional[str]:
    """The file's text without surrounding white space, or None if it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
