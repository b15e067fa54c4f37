"""`dtrace-nb`: the dtrace(1)-style command, a thin shell over Session.

    dtrace-nb -n 'syscall::read:entry { @[execname] = count(); }'
    dtrace-nb -s script.d -c 'ls -l' arg1 arg2
    dtrace-nb -l -n 'syscall::*read*:'
    dtrace-nb --doctor
"""

from __future__ import annotations

import argparse
import signal
import os
import sys
from typing import Optional

from dtrace_nb.errors import DError, DUsageError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dtrace-nb", description="DTrace's D language on Linux eBPF.",
        epilog="Ctrl-C stops tracing and prints what was aggregated, as dtrace(1) does.")
    p.add_argument("-n", dest="probes", action="append", default=[], metavar="PROGRAM",
                   help="a D program or probe description given on the command line")
    p.add_argument("-s", dest="script", metavar="FILE", help="read the D program from FILE")
    p.add_argument("-q", dest="quiet", action="store_true",
                   help="quiet: print only what the program prints (no probe lines)")
    p.add_argument("-c", dest="command", metavar="CMD",
                   help="run CMD as the target ($target); tracing ends when it exits")
    p.add_argument("-p", dest="pid", type=int, metavar="PID",
                   help="trace process PID as the target ($target)")
    p.add_argument("-x", dest="options", action="append", default=[], metavar="OPT[=VAL]",
                   help="set a DTrace option, e.g. -x bufsize=8m -x quiet")
    p.add_argument("-w", dest="destructive", action="store_true",
                   help="allow destructive actions (system, raise, stop, copyout)")
    p.add_argument("-l", dest="list", action="store_true",
                   help="list probes (matching -n descriptions) instead of tracing")
    p.add_argument("-T", "--duration", type=float, metavar="SECONDS",
                   help="stop after SECONDS (dtrace-nb addition)")
    p.add_argument("-o", dest="outfile", metavar="FILE", help="write trace output to FILE")
    p.add_argument("-v", dest="verbose", action="store_true", help="with -l: argument types")
    p.add_argument("-S", dest="explain", action="store_true",
                   help="show how the program is served: probes, kernel mechanisms, argument "
                        "fetching, maps and the generated C")
    p.add_argument("-e", dest="compile_only", action="store_true",
                   help="exit after compiling (with -S: explain without tracing; needs no "
                        "privileges)")
    p.add_argument("--doctor", action="store_true",
                   help="check privileges, bcc, kernel headers and tracefs, and say how to fix")
    p.add_argument("args", nargs="*", help="macro arguments $1 .. $9")
    return p


def _program_text(ns: argparse.Namespace) -> str:
    if ns.script and ns.probes:
        raise DUsageError("use either -s FILE or -n PROGRAM, not both")
    if ns.script:
        try:
            with open(ns.script, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise DUsageError(f"cannot read {ns.script}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise DUsageError(f"{ns.script} is not UTF-8 text (byte {exc.start}: "
                              f"{exc.object[exc.start:exc.start + 1]!r})") from None
        if text.startswith("#!"):
            text = "\n" + text.split("\n", 1)[1] if "\n" in text else ""
        return text
    if ns.probes:
        # dtrace -n takes a probe description alone too: "-n BEGIN" enables it with the
        # default action.
        return "\n".join(ns.probes)
    raise DUsageError("no program given", hint="use -n 'PROGRAM' or -s FILE (or -l to list)")


def list_probes(ns: argparse.Namespace, out=sys.stdout) -> int:
    from dtrace_nb.display.listing import probe_table
    from dtrace_nb.probes import BindContext

    from dtrace_nb.runtime.target import Target

    # -c: the command is started (held before its exec) so pid$target/usdt probes of it
    # can be listed, then killed, as dtrace -l -c does.
    proc = Target.spawn(ns.command) if ns.command else None
    try:
        target = proc.pid if proc else ns.pid if ns.pid is not None else -1
        patterns = [p.replace("$target", str(target)) if target >= 0 else p
                    for p in ns.probes]
        ctx = BindContext(target_pid=target, target_exe=proc.exe if proc else "")
        out.write(probe_table(patterns, verbose=ns.verbose, ctx=ctx))
    finally:
        if proc is not None:
            proc.kill()
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        if ns.doctor:
            from dtrace_nb.runtime.environment import doctor, format_doctor

            checks = doctor()
            print(format_doctor(checks))
            return 0 if all(c.ok for c in checks if c.fatal) else 1
        if ns.list:
            return list_probes(ns)
        if ns.explain or ns.compile_only:
            code = explain(ns)
            if ns.compile_only:
                return code
        return trace(ns)
    except DError as err:
        source = ""
        try:
            source = _program_text(ns)
        except DError:
            pass
        print(err.render(source), file=sys.stderr)
        return 1 if not isinstance(err, DUsageError) else 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, never a traceback
        print(f"dtrace-nb: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  hint: this is a dtrace-nb bug; rerun with DTRACE_NB_DEBUG=1 for the traceback",
              file=sys.stderr)
        if os.environ.get("DTRACE_NB_DEBUG"):
            raise
        return 3


def _options(ns: argparse.Namespace) -> dict[str, Optional[str]]:
    """-x name[=value] options, and -w as the destructive option."""
    options: dict[str, Optional[str]] = {}
    for opt in ns.options:
        name, eq, value = opt.partition("=")
        options[name] = value if eq else None
    if ns.destructive:
        options["destructive"] = None
    return options


def explain(ns: argparse.Namespace, out=sys.stdout) -> int:
    """-S / -e: compile (parse, check, bind, generate C) without loading anything."""
    from dtrace_nb.display.explain import explain as build
    from dtrace_nb.runtime.session import SessionConfig

    cfg = SessionConfig(_program_text(ns), macro_args=list(ns.args), options=_options(ns),
                        quiet=ns.quiet)
    # $target needs a process: -p names one; -c's does not exist before tracing, so the
    # explanation uses this process's id in its place
    target = ns.pid if ns.pid is not None else (os.getpid() if ns.command else None)
    result = build(cfg, target_pid=target)
    if ns.explain:
        out.write(result.text())
    return 0


def trace(ns: argparse.Namespace) -> int:
    from dtrace_nb.runtime.session import Session, SessionConfig

    source = _program_text(ns)
    options = _options(ns)
    out = open(ns.outfile, "w") if ns.outfile else sys.stdout
    cfg = SessionConfig(source, target_command=ns.command, target_pid=ns.pid,
                        macro_args=list(ns.args), options=options, quiet=ns.quiet)

    def emit(text: str) -> None:
        out.write(text)
        out.flush()

    def message(text: str) -> None:
        # -q hides the probe-matching chatter, never errors (as dtrace(1) -q)
        if ns.quiet and (text.startswith("dtrace: description") or "has exited" in text):
            return
        print(text, file=sys.stderr)

    session = Session(cfg, on_output=emit, on_message=message)
    # SIGTERM ends tracing like Ctrl-C does: detach, print, exit.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    result = session.run(duration=ns.duration)  # drops were reported as they happened
    if out is not sys.stdout:
        out.close()
    if result.error is not None:
        print(result.error.render(source), file=sys.stderr)
        return 1
    return result.exit_status or 0


if __name__ == "__main__":
    sys.exit(main())
