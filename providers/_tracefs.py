"""Reading tracefs, shared by the providers built on kernel tracepoints."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def tracefs_root() -> str | None:
    for d in TRACEFS_DIRS:
        if os.path.isdir(os.path.join(d, "events")):
            return d
    return None


@dataclass(frozen=True)
class FormatField:
    ctype: str  # as written, without the field name, e.g. "char *", "unsigned int"
    name: str
    offset: int
    size: int
    signed: bool
    array: int = 0  # element count for "char comm[16]"-style fields


_FIELD = re.compile(r"field:(?P<decl>[^;]+);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                    r"\s*signed:(?P<signed>\d)")


@lru_cache(maxsize=None)
def event_format(category: str, event: str) -> tuple[FormatField, ...]:
    """The fields of a tracepoint after the common_* header, from its format file."""
    root = tracefs_root()
    if root is None:
        return ()
    try:
        with open(os.path.join(root, "events", category, event, "format")) as f:
            text = f.read()
    except OSError:
        return ()
    fields = []
    for m in _FIELD.finditer(text):
        decl = m.group("decl").strip()
        array = 0
        am = re.match(r"(.*?)\s*\[(\d*)\]$", decl)
        if am:
            decl, array = am.group(1), int(am.group(2) or 0)
        tm = re.match(r"(.*?)([A-Za-z_]\w*)$", decl)
        if not tm:
            continue
        ctype, name = tm.group(1).strip(), tm.group(2)
        if name.startswith("common_"):
            continue
        fields.append(FormatField(ctype, name, int(m.group("off")), int(m.group("size")),
                                  m.group("signed") == "1", array))
    return tuple(fields)


def events(category: str) -> list[str]:
    root = tracefs_root()
    if root is None:
        return []
    try:
        return sorted(e for e in os.listdir(os.path.join(root, "events", category))
                      if os.path.isdir(os.path.join(root, "events", category, e)))
    except OSError:
        return []
