"""Macro variables: `$target`, `$pid`, `$1..$9` and the process ids DTrace predefines."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast

_MACRO_IN_DESC = re.compile(r"\$(\$?)(\w+)")
_PROCESS_IDS = {"ppid": os.getppid, "uid": os.getuid, "gid": os.getgid, "pgid": os.getpgrp,
                "sid": lambda: os.getsid(0)}


@dataclass
class MacroEnv:
    """Values for `$target`, `$pid` and `$1..$9` (strings as given on the command line)."""

    target: Optional[int] = None
    pid: int = 0
    args: list[str] = field(default_factory=list)
    defaultargs: bool = False

    def value(self, name: str, span: ast.Span) -> str:
        if name == "target":  # 0 without -c or -p, as in DTrace
            return str(self.target if self.target is not None else 0)
        if name == "pid":
            return str(self.pid)
        if name in ("ppid", "uid", "gid", "pgid", "sid", "projid", "taskid"):
            return str(_PROCESS_IDS.get(name, lambda: 0)())
        if name.isdigit():
            n = int(name)
            if n == 0:
                return "dtrace-nb"
            if n <= len(self.args):
                return self.args[n - 1]
            if self.defaultargs:
                return ""
            raise DCompileError(f"macro argument ${n} is not defined", span, tag="D_MACRO_UNDEF",
                                hint=f"pass {n} argument(s) after the script "
                                     "(or -x defaultargs to use 0 / \"\")")
        raise DCompileError(f"unknown macro variable ${name}", span)

    def expand(self, spec: ast.ProbeSpec) -> str:
        """A probe description with its macro variables replaced by their values."""
        return _MACRO_IN_DESC.sub(lambda m: self.value(m.group(2), spec.span), spec.text)
