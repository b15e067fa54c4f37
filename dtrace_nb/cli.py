"""`dtrace-nb`: the dtrace(1)-style command, a thin shell over the front end and Session.

    dtrace-nb -n 'syscall::read:entry { @[execname] = count(); }'
    dtrace-nb -s script.d -c 'ls -l' arg1 arg2
    dtrace-nb -l -n 'syscall::*read*:'
    dtrace-nb --doctor
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Optional

from dtrace_nb import frontend
from dtrace_nb.display.explain import explain as explain_program
from dtrace_nb.errors import (DCompileError, DError, DOptionError, DPreprocessorError,
                              DProbeError, DSyntaxError, DUsageError)
from dtrace_nb.fleet import shell as fleet_shell
from dtrace_nb.runtime.environment import doctor, format_doctor
from dtrace_nb.session import Session
from dtrace_nb.text.messages import is_chatter


# dtrace(1) -V: the D language and API version this implements, in dtrace-utils' form
# (the version `#pragma D version` and scripts compare with)
D_VERSION = "Oracle D 2.0"


def build_parser() -> argparse.ArgumentParser:
    p = frontend.build_parser(
        frontend.CLI, description="DTrace's D language on Linux eBPF.",
        epilog="Ctrl-C stops tracing and prints what was aggregated, as dtrace(1) does.")
    p.add_argument("-o", dest="outfile", metavar="FILE", help="write trace output to FILE")
    p.add_argument("-S", dest="explain", action="store_true",
                   help="show how the program is served: probes, kernel mechanisms, argument "
                        "fetching, maps and the generated C")
    p.add_argument("-e", dest="compile_only", action="store_true",
                   help="exit after compiling (with -S: explain without tracing; needs no "
                        "privileges)")
    p.add_argument("--doctor", action="store_true",
                   help="check privileges, bcc, kernel headers and tracefs, and say how to fix")
    frontend.add_macro_args(p)
    return p


def main(argv: Optional[list[str]] = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        if ns.api_version:
            print(f"dtrace: {D_VERSION}")
            return 0
        if ns.doctor:
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
        try:  # (not again through cpp when cpp refused it: its messages are out once)
            if not isinstance(err, DPreprocessorError):
                source = frontend.program_text(ns)
        except DError:
            pass
        report_error(err, ns, source)
        return 2 if isinstance(err, DUsageError) and not isinstance(err, DOptionError) else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug of ours: one line, never a traceback
        print(f"dtrace-nb: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("  hint: this is a dtrace-nb bug; rerun with DTRACE_NB_DEBUG=1 for the traceback",
              file=sys.stderr)
        if os.environ.get("DTRACE_NB_DEBUG"):
            raise
        return 3


# the errors dtrace(1) reports as a program that failed to compile
_COMPILE_ERRORS = (DCompileError, DSyntaxError, DProbeError)


def report_error(err: DError, ns: argparse.Namespace, source: str, stream=None) -> None:
    """A D error as dtrace(1) prints it (`dtrace: failed to compile script x.d: [D_XXX]
    line N: ...`: the first line, the one a tool parses), then our view for people: the
    line:column, the caret under the source and the hint. Under dtrace(1)'s
    _DTRACE_TESTING, which quiesces what only people read, the first line alone. Errors
    that are not the program's (privileges, the verifier) keep our own form."""
    stream = stream if stream is not None else sys.stderr
    people = "_DTRACE_TESTING" not in os.environ
    cmd = None
    if isinstance(err, _COMPILE_ERRORS) and (source or isinstance(err, DPreprocessorError)):
        cmd = frontend.command_for(frontend.commands(ns),
                                   err.span.line if err.span is not None else 1)
    if cmd is not None:
        errtags = "errtags" in frontend.options(ns)
        print(err.dtrace_line(cmd.failed(), errtags, source, cmd.from_file), file=stream)
    elif isinstance(err, DOptionError):
        print(f"dtrace: {err.dtrace}", file=stream)
    else:
        people = True  # our own form is the only one
    if people:
        print(err.render(source), file=stream)


def list_probes(ns: argparse.Namespace, out=sys.stdout) -> int:
    # here, not at the top: the listing builds on pandas, which tracing never needs
    from dtrace_nb.display.listing import probe_table

    with frontend.listing_context(ns, ns.programs) as (patterns, ctx):
        out.write(probe_table(patterns, verbose=ns.verbose, ctx=ctx))
    return 0


def explain(ns: argparse.Namespace, out=sys.stdout) -> int:
    """-S / -e: compile (parse, check, bind, generate C) without loading anything."""
    cfg = frontend.session_config(ns, frontend.program_text(ns))
    result = explain_program(cfg, target_pid=frontend.explain_target(ns))
    if ns.explain:
        out.write(result.text())
    return 0


def trace(ns: argparse.Namespace) -> int:
    source = frontend.program_text(ns)
    cfg = frontend.session_config(ns, source)
    out = open(ns.outfile, "w") if ns.outfile else sys.stdout

    def emit(text: str) -> None:
        out.write(text)
        out.flush()

    def message(text: str) -> None:
        # -q hides the probe-matching chatter, never errors (as dtrace(1) -q)
        if not (ns.quiet and is_chatter(text)):
            print(text, file=sys.stderr)

    cfg.testing = "_DTRACE_TESTING" in os.environ
    caught = [signal.SIGINT]

    def terminate(signo, _frame):
        caught[0] = signo
        raise KeyboardInterrupt

    # SIGTERM ends tracing like Ctrl-C does: detach, run END, print, exit.
    signal.signal(signal.SIGTERM, terminate)
    if ns.cluster:
        return fleet_shell.trace_command(ns, cfg, out, message)
    session = Session(cfg, on_output=emit, on_message=message)
    # drops were reported as they happened; the command needs no Result (nor pandas)
    outcome = session.run(duration=ns.duration)
    if out is not sys.stdout:
        out.close()
    if outcome.error is not None:
        report_error(outcome.error, ns, source)
        return 1
    if outcome.interrupted and not session.started_at:
        # stopped before any probe was live: nothing was traced, and the caller must be
        # able to tell (the shell's 128 + signal number)
        return 128 + caught[0]
    return session.exit_status or 0


if __name__ == "__main__":
    sys.exit(main())
