"""`%%dtrace` and `%dtrace`: IPython magics, a thin shell over the front end and Session
(the options and program text are frontend.py's, shared with the command).

    %%dtrace -c "python3 work.py"
    syscall::read:entry /pid == $target/ { @bytes[probefunc] = quantize(arg2); }
"""

from __future__ import annotations

import atexit
import os
import shlex
import sys
from typing import Optional

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import MagicArgumentParser
from traitlets import Bool, Enum, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from dtrace_nb import frontend
from dtrace_nb.display.explain import explain
from dtrace_nb.errors import DEnvironmentError, DError
from dtrace_nb.fleet import shell as fleet_shell
from dtrace_nb.lang.options import parse_rate_ns
from dtrace_nb.result.recording import cell_key, load_explanation, save_explanation
from dtrace_nb.result.recording import extras as recording_extras
from dtrace_nb.runtime.environment import require_tracing
from dtrace_nb.session import RunOutcome, Session

# Imported where they are used, not here: the live view (its plots), the listing and the
# Result build on pandas, which `%load_ext dtrace_nb` should not have to import.


class DTraceError(Exception):
    """A D error as the cell shows it: the message alone, no traceback and no
    `UsageError:` prefix (IPython shows what _render_traceback_ returns); the cell still
    fails, so Run All stops there."""

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def _render_traceback_(self) -> list[str]:
        return self.text.splitlines()


def _cell_error(err: DError, source: str, cell: Optional[str]) -> DTraceError:
    """The error with the cell's line numbers (D line 1 is the cell's line 2, after
    `%%dtrace`), a did-you-mean and notebook hints."""
    from dtrace_nb.display.suggest import render_in_cell

    offset = 1 if cell is not None and source == cell else 0
    return DTraceError(render_in_cell(err, source, offset))


def _parser(doc: str) -> MagicArgumentParser:
    """The front end's options, then the magic's own."""
    p = frontend.build_parser("dtrace", MagicArgumentParser, description=doc)
    p.add_argument("-o", dest="var", metavar="VAR", help="also store the Result in VAR")
    p.add_argument("--explain", action="store_true",
                   help="show the probes, kernel mechanisms, argument fetching, maps and C "
                        "(loads nothing; needs no privileges)")
    p.add_argument("--replay", metavar="FILE",
                   help="play back a recorded session (Result.save) instead of tracing")
    p.add_argument("--frames", action="store_true",
                   help="keep trace()/printf() records as DataFrame columns "
                        "(r.records_frame()) instead of printing them: for millions of records")
    p.add_argument("--bg", action="store_true",
                   help="trace in the background: return a handle at once (.stop(), .result)")
    frontend.add_macro_args(p)
    return p


def _with_options(magic):
    """The magic's help (`%dtrace?`): its docstring, then every option."""
    magic.parser = _parser(magic.__doc__)
    magic.__doc__ = magic.parser.format_help()
    return magic


@magics_class
class DTraceMagics(Magics, Configurable):
    refresh_interval = Float(1.0, help="seconds between live refreshes (aggrate overrides)",
                             config=True)
    max_rows = Int(20, help="rows of each aggregation shown while tracing", config=True)
    interrupt = Enum(["stop", "raise"], default_value="stop", config=True,
                     help="on Ctrl-C: 'stop' keeps the results and continues; 'raise' keeps "
                          "them and re-raises so queued cells stop")
    plots = Bool(True, help="draw quantize/lquantize/llquantize histograms (PNG) live",
                 config=True)
    widgets = Bool(True, help="show the control bar (stage, progress, Stop) as ipywidgets; "
                              "off: the same line as plain display data", config=True)
    plot_style = Unicode("default", help="matplotlib style for the histograms "
                                         "(e.g. 'ggplot', 'seaborn-v0_8')", config=True)

    @validate("plot_style")
    def _known_style(self, proposal):
        """A style matplotlib does not know would fail only when the first histogram is
        drawn, mid-trace: refuse it when it is set."""
        name = proposal["value"]
        if name == "default" or os.path.isfile(name):
            return name
        from dtrace_nb.display.plots import available_styles

        known = available_styles()
        if name not in known:
            raise TraitError(f"unknown matplotlib style '{name}'; known: "
                             + ", ".join(sorted(known)))
        return name

    def __init__(self, shell):
        Configurable.__init__(self, config=shell.config)
        Magics.__init__(self, shell=shell)
        shell.configurables.append(self)
        self.background: list = []  # running --bg sessions, stopped at exit
        self.live = None
        atexit.register(self.stop_background)

    def stop_background(self) -> None:
        """Stop every background session (kernel shutdown, %reload_ext)."""
        for bg in list(self.background):
            bg.stop()

    @no_var_expand
    @line_cell_magic
    @_with_options
    def dtrace(self, line: str = "", cell: Optional[str] = None):
        """Trace with a D program; `-o NAME` stores the Result (`_dtrace` holds the last).

        Examples::

            %%dtrace -T 5
            syscall:::entry { @[execname] = count(); }

            %%dtrace -c "python3 work.py" -o r
            syscall::read:entry /pid == $target/ { @bytes[probefunc] = quantize(arg2); }

            %dtrace -l -n 'syscall::*read*:entry'

            %%dtrace --bg -o r
            profile:::profile-99 { @[execname] = count(); }

            # later: r.stop() returns the Result (r holds it once the session ended)

        One output area per cell: a control bar (stage, time since the probes went live,
        progress toward -T, records, drops, errors, a Stop button) and, refreshed every
        second (-x aggrate=500ms to change), each aggregation as a table (largest first), a
        histogram of each quantize(), printf output in a scrolling region. At the end the
        area becomes the result; the Result converts to DataFrames (r['name'], r.df), plots
        (r.figure()) and time series (r.timeline('name', rate=True)). Defaults: %config
        DTraceMagics.refresh_interval, .max_rows, .plots, .plot_style, .interrupt, .widgets.

        Ctrl-C (interrupt the kernel) or Stop ends tracing and keeps everything aggregated.
        """
        # shlex, not IPython's arg_split, so -c "cmd args" loses its quotes as in a shell
        try:
            args = self.dtrace.parser.parse_args(shlex.split(line))
        except ValueError as exc:
            raise UsageError(f"%dtrace: {exc}") from None
        try:
            if args.list:
                return self._list(args, cell)
            source = "" if args.replay and not (cell or args.programs) else \
                frontend.program_text(args, cell)
            if args.explain:
                return self._explain_cell(args, source, line, cell)
        except DError as err:
            raise _cell_error(err, cell or "", cell) from None
        recording = self._replay_file(args, line, cell)
        if recording is not None:
            result = self._replay(recording)
        elif args.bg:
            return self._background(args, source)
        else:
            result = self._trace(args, source)
            record_dir = os.environ.get("DTRACE_NB_RECORD")
            if record_dir and result.error is None:
                result.save(os.path.join(record_dir, cell_key(line, cell) + ".json"))
        # the cell's output is the live area turned result: return nothing unless -o NAME
        # asks for a name; `_dtrace` holds the last Result, as `_` holds the last value
        self.shell.user_ns["_dtrace"] = result
        if args.var:
            self.shell.user_ns[args.var] = result
        if result.error is not None:
            raise _cell_error(result.error, source, cell)
        if result.interrupted and self.interrupt == "raise":
            self.shell.user_ns["_dtrace_last"] = result
            raise KeyboardInterrupt
        return None

    def _list(self, args, cell: Optional[str]):
        """-l: the matching probes as a DataFrame (-n descriptions and the cell's words)."""
        from dtrace_nb.display.listing import probe_frame  # pandas: not before probes live

        with frontend.listing_context(args, [*args.programs, *(cell or "").split()]) \
                as (patterns, ctx):
            return probe_frame(patterns or None, verbose=args.verbose, ctx=ctx)

    def _replay_file(self, args, line: str, cell: Optional[str]) -> Optional[str]:
        """The recording to play back: --replay FILE, or, where BPF cannot load, this cell's
        recording in $DTRACE_NB_REPLAY (default: ./recordings) if there is one."""
        if args.replay:
            if not os.path.exists(args.replay):
                raise DTraceError(f"dtrace-nb: no recording {args.replay}")
            return args.replay
        problem = _tracing_problem()
        if problem is None:
            return None
        path = os.path.join(os.environ.get("DTRACE_NB_REPLAY", "recordings"),
                            cell_key(line, cell) + ".json")
        if not os.path.exists(path):
            raise DTraceError(f"dtrace-nb: cannot trace here: {problem.message}"
                              + (f" ({problem.hint})" if problem.hint else "")
                              + "; no recording of this cell to replay either")
        print(f"dtrace-nb: BPF cannot load here ({problem.message}); replaying the recorded "
              f"session {path}")
        assert isinstance(problem, DEnvironmentError)
        return path

    def _replay(self, path: str):
        from IPython.display import display

        from dtrace_nb.result.replay import replay  # pandas: only when there is a recording

        def stream(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        load = None
        if "fleet" in recording_extras(path):
            from dtrace_nb.fleet.report import FleetResult  # a --cluster cell's recording

            load = FleetResult.load
        return replay(path, display, max_rows=self.max_rows, plot_style=self.plot_style,
                      plots=self.plots, on_output=stream, **({"load": load} if load else {}))

    def _explain_cell(self, args, source: str, line: str, cell: Optional[str]):
        """--explain; recorded like a trace (an explanation needs the kernel's probe lists
        and tracepoint formats, which a Binder container may not have)."""
        key = cell_key(line, cell)
        try:
            explanation = self._explain(args, source)
        except DError:
            path = os.path.join(os.environ.get("DTRACE_NB_REPLAY", "recordings"), key + ".json")
            if _tracing_problem() is None or not os.path.exists(path):
                raise
            print(f"dtrace-nb: this machine cannot resolve these probes; showing the "
                  f"explanation recorded in {path}")
            return load_explanation(path)
        record_dir = os.environ.get("DTRACE_NB_RECORD")
        if record_dir:
            save_explanation(explanation, os.path.join(record_dir, key + ".json"))
        return explanation

    def _explain(self, args, source: str):
        return explain(frontend.session_config(args, source),
                       target_pid=frontend.explain_target(args))

    def _session(self, args, source: str, on_output) -> Session:
        return Session(frontend.session_config(args, source, capture_target_output=True,
                                               record_frames=args.frames),
                       on_output=on_output)

    def _view(self, record: bool = False):
        from dtrace_nb.display.live import LiveView  # pandas (its plots): when tracing

        return LiveView(self._display(), max_rows=self.max_rows, plot_style=self.plot_style,
                        plots=self.plots, record=record, widgets=self.widgets)

    @staticmethod
    def _display():
        from IPython.display import display  # the kernel's display, looked up when tracing

        return display

    @staticmethod
    def _result(view):
        """Result.from_session, with what the live view showed."""
        from dtrace_nb.result.result import Result  # pandas: after the probes went live

        def build(session: Session, outcome: RunOutcome):
            result = Result.from_session(session, outcome)
            result.plot_style = view.plot_style
            result.refreshes = view.refreshes
            return result
        return build

    def _trace(self, args, source: str):
        if args.cluster:  # many hosts: the merged aggregations refresh as one host's do
            view = self._fleet_view(source, args.by_host)
            return self._fleet_trace(args, source, view)
        view = self._view(record=bool(os.environ.get("DTRACE_NB_RECORD")))
        self.live = view  # the running cell's view (its control bar): for a test's Stop
        session = self._session(args, source, view.on_output)
        outcome = view.run(session, duration=args.duration, tick=self._tick(session.cfg))
        return self._result(view)(session, outcome)

    def _fleet_view(self, source: str, by_host: bool = False):
        from dtrace_nb.fleet.liveview import FleetLiveView  # pandas: when tracing

        view = FleetLiveView(self._display(), source, max_rows=self.max_rows,
                             plot_style=self.plot_style, plots=self.plots,
                             widgets=self.widgets,
                             record=bool(os.environ.get("DTRACE_NB_RECORD")),
                             by_host=by_host)
        self.live = view
        return view

    def _fleet_trace(self, args, source: str, view, should_stop=None, open_view=True):
        try:
            return fleet_shell.trace_cell(args, frontend.session_config(args, source),
                                          source, view, self.refresh_interval,
                                          should_stop=should_stop, open_view=open_view)
        except DError as err:
            raise DTraceError(err.render(source)) from None

    def _background(self, args, source: str):
        from dtrace_nb.display.live import BackgroundTrace  # pandas: when tracing

        def done(bg) -> None:
            if bg in self.background:
                self.background.remove(bg)
            if bg.result is not None:
                for name in ([args.var] if args.var else []) + ["_dtrace"]:
                    if self.shell.user_ns.get(name) is bg:
                        self.shell.user_ns[name] = bg.result

        if args.cluster:
            from dtrace_nb.fleet.liveview import FleetBackgroundTrace

            fleet_view = self._fleet_view(source, args.by_host)
            bg = FleetBackgroundTrace(
                lambda should_stop: self._fleet_trace(args, source, fleet_view, should_stop,
                                                      open_view=False),
                fleet_view, duration=args.duration, on_done=done)
        else:
            view = self._view()
            session = self._session(args, source, view.on_output)
            bg = BackgroundTrace(session, view, self._result(view), duration=args.duration,
                                 tick=self._tick(session.cfg), on_done=done)
        self.background.append(bg)
        # -o NAME (and _dtrace): the handle while tracing, the Result once it ended; the
        # cell returns nothing, so no Out[] keeps saying "running" after Stop
        self.shell.user_ns["_dtrace"] = bg
        if args.var:
            self.shell.user_ns[args.var] = bg
        bg.start()
        return None

    def _tick(self, cfg) -> float:
        rate = cfg.options.get("aggrate")
        if rate:
            return max(0.05, parse_rate_ns(rate) / 1e9)
        return self.refresh_interval


def _tracing_problem():
    """Why this kernel/process cannot trace (a DEnvironmentError), or None."""
    if os.environ.get("DTRACE_NB_NO_BPF"):
        return DEnvironmentError("BPF is switched off (DTRACE_NB_NO_BPF is set)")
    try:
        require_tracing()
    except DEnvironmentError as err:
        return err
    return None


def _figure_png(fig):
    from dtrace_nb.display.plots import figure_png

    return figure_png(fig)


def register(ip) -> None:
    ip.register_magics(DTraceMagics(ip))
    # r.figure() shows its picture whether or not pyplot was imported: a PNG formatter
    # for matplotlib's Figure, by name (matplotlib need not be imported yet); the inline
    # backend, once loaded, registers its own for the same type
    png = ip.display_formatter.formatters.get("image/png")
    if png is not None:
        try:
            png.lookup_by_type("matplotlib.figure.Figure")
        except KeyError:
            png.for_type_by_name("matplotlib.figure", "Figure", _figure_png)


def unregister(ip) -> None:
    magics = ip.magics_manager.registry.get("DTraceMagics")
    if magics is not None:
        magics.stop_background()
    if magics is not None and magics in ip.configurables:
        ip.configurables.remove(magics)

