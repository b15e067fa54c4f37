"""One front end for the `dtrace-nb` command and the `%%dtrace` magic, so the two cannot
drift apart: the options both take (dtrace(1)'s -n -s -q -c -p -x -w -l -v, -T, and the
macro arguments $1..$9), reading the program text, and the `$target` rules. cli.py and
magics.py add their own few options and are thin shells over this.

Nothing here imports pandas or IPython: the command must start fast and the magic must
go live before pandas is imported (README's benchmark notes).
"""

from __future__ import annotations

import argparse
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from dtrace_nb import cpp
from dtrace_nb.errors import DUsageError
from dtrace_nb.fleet import shell as fleet_shell
from dtrace_nb.probes import BindContext
from dtrace_nb.runtime.target import Target
from dtrace_nb.session import SessionConfig

CLI, MAGIC = "dtrace-nb", "%dtrace"


def build_parser(prog: str = CLI,
                 parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
                 **parser_args) -> argparse.ArgumentParser:
    """The options of dtrace(1) both shells take; each shell adds its own after these."""
    p = parser_class(prog=prog, **parser_args)
    p.add_argument("-n", dest="programs", action="append", default=[], metavar="PROGRAM",
                   help="a D program or probe description (several are joined)")
    p.add_argument("-s", dest="script", metavar="FILE", help="read the D program from FILE")
    p.add_argument("-q", dest="quiet", action="store_true",
                   help="quiet: print only what the program prints (no probe lines)")
    p.add_argument("-c", dest="command", metavar="CMD",
                   help="run CMD as the target ($target); tracing ends when it exits")
    p.add_argument("-p", dest="pid", type=fleet_shell.pid_argument, metavar="PID",
                   help="trace process PID as the target ($target); with --cluster, a pid "
                        "per host: -p web1=1234,web2=5678")
    p.add_argument("-x", dest="options", action="append", default=[], metavar="OPT[=VAL]",
                   help="set a DTrace option, e.g. -x bufsize=8m -x quiet")
    p.add_argument("-w", dest="destructive", action="store_true",
                   help="allow destructive actions (system, raise, stop, copyout)")
    p.add_argument("-l", dest="list", action="store_true",
                   help="list probes (matching -n descriptions) instead of tracing")
    p.add_argument("-v", dest="verbose", action="store_true", help="with -l: argument types")
    p.add_argument("-b", dest="bufsize", metavar="SIZE", help="the buffer size (-x bufsize)")
    p.add_argument("-V", dest="api_version", action="store_true",
                   help="print the version of the D language implemented, and exit")
    p.add_argument("-Z", dest="zdefs", action="store_true",
                   help="permit probe descriptions that match no probes (-x zdefs)")
    p.add_argument("-T", "--duration", type=float, metavar="SECONDS",
                   help="stop after SECONDS (dtrace-nb addition)")
    p.add_argument("--budget", action="store_true",
                   help="report what tracing costs: each attachment's runs/s, ns a run and "
                        "share of a CPU, as the kernel counts them (dtrace-nb addition)")
    fleet_shell.add_arguments(p)  # --cluster, --hosts, --workers
    cpp.add_options(p)
    return p


def add_macro_args(p: argparse.ArgumentParser) -> None:
    """The positional macro arguments, added last (after each shell's own options)."""
    p.add_argument("args", nargs="*", help="macro arguments $1 .. $9")


def options(ns: argparse.Namespace) -> dict[str, Optional[str]]:
    """-x name[=value] options, and -w as the destructive option."""
    out: dict[str, Optional[str]] = {}
    for opt in ns.options or []:
        name, eq, value = opt.partition("=")
        out[name] = value if eq else None
    if ns.destructive:
        out["destructive"] = None
    # dtrace(1)'s short forms of options (its main() sets these the same way)
    if getattr(ns, "zdefs", False):
        out["zdefs"] = None
    if getattr(ns, "bufsize", None) is not None:
        out["bufsize"] = ns.bufsize
    return out


# -- program text ----------------------------------------------------------------------

def read_script(path: str) -> str:
    """A D script file, as dtrace -s reads it: a first line starting with `#!` (the
    interpreter line of an executable script) is skipped, its newline kept so that line
    numbers stay right; the text must be UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DUsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DUsageError(f"{path} is not UTF-8 text (byte {exc.start}: "
                          f"{data[exc.start:exc.start + 1]!r}, line {line} column {col})",
                          hint="D programs are read as UTF-8") from None
    if text.startswith("#!"):
        text = "\n" + text.split("\n", 1)[1] if "\n" in text else ""
    return text


def program_text(ns: argparse.Namespace, cell: Optional[str] = None) -> str:
    """The program: -s FILE, the -n programs (joined, as dtrace -n takes a probe
    description alone too: "-n BEGIN" enables it with the default action), or the magic's
    cell body; exactly one of them."""
    body = cell if cell is not None and cell.strip() else None
    given = [what for what, there in (("-s FILE", ns.script), ("-n PROGRAM", ns.programs),
                                      ("the cell", body)) if there]
    if len(given) > 1:
        raise DUsageError(f"use either {given[0]} or {given[1]}, not both")
    if ns.script:
        return cpp.maybe_preprocess(ns, read_script(ns.script))
    if ns.programs:
        return cpp.maybe_preprocess(ns, "\n".join(ns.programs))
    if body is not None:
        return cpp.maybe_preprocess(ns, body)
    where = "write it in the cell body, or use" if cell is not None else "use"
    raise DUsageError("no program given",
                      hint=f"{where} -n 'PROGRAM' or -s FILE (or -l to list)")


@dataclass(frozen=True)
class Command:
    """One program given on the command line, as dtrace(1) keeps it (its dtrace_cmd_t):
    each -s and each -n is compiled and enabled on its own and named in the notices and
    errors about it. Here they are joined into one program; lines first..last are this
    one's."""

    desc: str  # 'script' or 'description'
    name: str  # the script's path, or the -n text cropped at its first '{', '/' or ';'
    arg: str  # the path or the whole -n text
    first: int
    last: int

    @property
    def from_file(self) -> bool:
        return self.desc == "script"

    def failed(self) -> str:
        """What dtrace(1) says failed when this program does not compile."""
        if self.from_file:
            return f"failed to compile script {self.arg}"
        return f"invalid probe specifier {self.arg}"

    def holds(self, line: int) -> bool:
        return self.first <= line <= self.last


def commands(ns: argparse.Namespace) -> list[Command]:
    """The -s script or the -n programs, with the lines each has in program_text()."""
    if ns.script:
        return [Command("script", ns.script, ns.script, 1, 1 << 30)]
    out, line = [], 1
    for text in ns.programs or []:
        last = line + text.count("\n")
        out.append(Command("description", re.split(r"[{/;]", text, maxsplit=1)[0], text,
                           line, last))
        line = last + 1
    return out


def command_for(cmds: list[Command], line: int) -> Optional[Command]:
    for c in cmds:
        if c.holds(line):
            return c
    return cmds[0] if cmds else None


def session_config(ns: argparse.Namespace, source: str, **extra) -> SessionConfig:
    """What the session is asked to do, from the options both shells take."""
    extra.setdefault("commands", commands(ns))
    if not getattr(ns, "cluster", None):
        for opt, given in (("--hosts", ns.hosts), ("--workers", ns.nworkers),
                           ("--by-host", ns.by_host)):
            if given:
                raise DUsageError(f"{opt} needs --cluster ADDR (the Dask scheduler)")
    extra.setdefault("budget", bool(getattr(ns, "budget", False)))
    return SessionConfig(source, target_command=ns.command, target_pid=single_pid(ns),
                         macro_args=list(ns.args), options=options(ns), quiet=ns.quiet,
                         **extra)


# -- $target ---------------------------------------------------------------------------

def single_pid(ns: argparse.Namespace) -> Optional[int]:
    """-p PID; None for a per-host map (-p web1=1234,...), which only a cluster takes
    (fleet/shell.py hands it to the fleet, host by host)."""
    if isinstance(ns.pid, dict):
        if not getattr(ns, "cluster", None):
            raise DUsageError(f"-p {fleet_shell.pid_map_text(ns.pid)}: a pid per host "
                              "needs --cluster", hint="on one host: -p PID")
        return None
    return ns.pid


def explain_target(ns: argparse.Namespace) -> Optional[int]:
    """$target for an explanation, which loads nothing: -p names the process; -c's does
    not exist before tracing, so this process's id stands in for it."""
    if ns.pid is not None and not isinstance(ns.pid, dict):
        return ns.pid
    # -c's process, or a host's -p of a cluster: this process stands in
    return os.getpid() if ns.command or ns.pid is not None else None


@contextmanager
def listing_context(ns: argparse.Namespace,
                    patterns: list[str]) -> Iterator[tuple[list[str], BindContext]]:
    """(patterns with $target replaced, the BindContext) for -l. With -c the command is
    started (held before its exec) so pid$target/usdt probes of it can be listed, then
    killed, as dtrace -l -c does."""
    proc = Target.spawn(ns.command) if ns.command else None
    try:
        pid = single_pid(ns)
        target = proc.pid if proc else pid if pid is not None else -1
        shown = [p.replace("$target", str(target)) if target >= 0 else p for p in patterns]
        yield shown, BindContext(target_pid=target, target_exe=proc.exe if proc else "")
    finally:
        if proc is not None:
            proc.kill()
