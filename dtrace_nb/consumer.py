"""The consumer: what happens to each record the kernel hands over (libdtrace's
dt_consume).

Records arrive decoded (runtime/records.py). The consumer routes them: an error record
becomes dtrace(1)'s message and fires the ERROR probe; a speculative record waits in its
speculation's buffer until a commit() prints it or a discard() drops it; a record of a
clause that only records data may stay columns (SessionConfig.record_frames); every
other record is printed as dtrace(1) prints it (text/) and its actions are carried out:
exit() sets the exit status, printa() prints aggregations, clear() trunc() normalize()
denormalize() change them, setopt() sets an option, system() runs a command.

What it needs of the session running it is typed below: the aggregations (read and
changed in the kernel's maps), the symbols of stacks and kernel addresses, and three
callbacks (output, messages, the ERROR probe).
"""

from __future__ import annotations

import subprocess
from typing import Callable, Optional, Protocol

from dtrace_nb.aggregate.snapshot import AggSnapshot
from dtrace_nb.codegen import BpfProgram
from dtrace_nb.codegen.layout import RecordAction
from dtrace_nb.errors import DError
from dtrace_nb.lang.check import CheckedProgram
from dtrace_nb.lang.options import KNOWN, RUNTIME_OPTIONS, Options
from dtrace_nb.probes import TriggerAttach
from dtrace_nb.runtime.records import ErrorRecord, Record, RecordDecoder, records_frame
from dtrace_nb.text import batch, messages, records
from dtrace_nb.text.aggregations import format_aggregation, format_all
from dtrace_nb.text.printa import format_printa
from dtrace_nb.text.printf import format_printf


class AggregationStore(Protocol):
    """The program's aggregations as the kernel holds them (runtime/aggregations.py's
    AggregationReader)."""

    sort_options: dict  # the aggsort* options, as sort_options() gives them
    normal: dict[str, int]  # normalize() factors by aggregation name

    def snapshot(self, name: str) -> AggSnapshot: ...

    def clear(self, name: str) -> None: ...

    def trunc(self, name: str, keep: Optional[int]) -> None: ...


class Symbols(Protocol):
    """Symbolisation, done in user space when a record is printed."""

    def stack_text(self, kind: str, stackid: int, pid: int, args: list) -> str:
        """stack()/ustack() as DTrace prints it (a newline, then one frame a line)."""

    def kernel_symbol(self, addr: int) -> Optional[str]:
        """printf's %a: a kernel address as `module`symbol+0xoff, or None."""


def sort_options(options: Options) -> dict:
    """The aggsort* options, as the aggregation order takes them (aggregate/order.py)."""
    return {"aggsortkey": bool(options["aggsortkey"]), "aggsortrev": bool(options["aggsortrev"]),
            "aggsortkeypos": int(options["aggsortkeypos"]),
            "aggsortpos": int(options["aggsortpos"])}


# the actions of clauses whose records may stay columns (SessionConfig.record_frames)
_COLUMNAR_ACTIONS = frozenset(("trace", "printf", "tracemem", "default"))


class Consumer:
    # records of clauses that only print are formatted a batch at a time (text/batch.py);
    # False: each record on its own, through _print_record (the same text)
    batch_text = True

    def __init__(self, checked: CheckedProgram, program: BpfProgram, aggs: AggregationStore,
                 symbols: Symbols, emit: Callable[[str], None],
                 message: Callable[[str], None],
                 fire_error: Callable[[tuple[int, ...]], None], record_frames: bool = False,
                 testing: bool = False):
        self.checked, self.program = checked, program
        self.aggs, self.symbols = aggs, symbols
        self.emit, self.message, self.fire_error = emit, message, fire_error
        self.record_frames = record_frames
        self.testing = testing  # dtrace(1)'s _DTRACE_TESTING: no CPU and ID columns
        self.layouts = {r.epid: r for r in program.resources.records.values()}
        self.quiet = bool(checked.options["quiet"])
        self.heading = False
        self.exit_status: Optional[int] = None  # the last exit()'s, as dtrace(1)'s g_status
        # aggregations printa() has printed rows of: not printed again at the end
        # (libdtrace's DTRACE_AGD_PRINTED)
        self.printed: set[str] = set()
        self.record_count = 0
        self.errors = 0
        self.record_columns: dict[int, list] = {}  # epid -> decoded row arrays (frames)
        self._columnar_epids: dict[int, bool] = {}
        self._speculations: dict[int, list[Record]] = {}
        self._current: Optional[Record] = None
        self._drops_reported: dict[tuple[str, int], int] = {}
        self._batchers: dict[int, Optional[batch.BatchFormatter]] = {}
        # setopt() may change quiet between two records of a batch: no batches then
        self._batching = self.batch_text and not any(
            a.kind == "setopt" for r in self.layouts.values() for a in r.actions)
        self._decoder: Optional[RecordDecoder] = None

    # -- routing ---------------------------------------------------------------------

    def on_record(self, rec) -> None:
        self.record_count += 1
        if isinstance(rec, ErrorRecord):
            self._on_error(rec)
            return
        if rec.spec:
            # speculative data waits for commit() or discard()
            self._speculations.setdefault(rec.spec, []).append(rec)
            return
        self._print_record(rec)

    def text_batch(self, epid: int) -> Optional[batch.BatchFormatter]:
        """A formatter of many records of a clause at once (RingConsumer), or None: the
        clause's records come to on_record one by one."""
        if epid in self._batchers:
            return self._batchers[epid]
        got = None
        layout = self.layouts.get(epid)
        if self._batching and layout is not None:
            if self._decoder is None:
                self._decoder = RecordDecoder(self.program.resources.records,
                                              self.program.probes)
            got = batch.formatter(layout, self._decoder, self.quiet, self.testing,
                                  self.symbols.kernel_symbol)
        self._batchers[epid] = got
        return got

    def on_text(self, text: str, count: int) -> None:
        """The text of `count` records formatted by a batch formatter, in commit order."""
        self.record_count += count
        if not self.quiet and not self.heading:
            text = records.heading(self.testing) + text
            self.heading = True
        if text:
            self.emit(text)

    def columnar(self, epid: int) -> bool:
        """Whether a clause's records stay columns (SessionConfig.record_frames): only
        clauses whose actions just record data, with no stack to symbolise, and not served
        by a consumer trigger (BEGIN/END/ERROR output stays text)."""
        if not self.record_frames:
            return False
        got = self._columnar_epids.get(epid)
        if got is None:
            layout = self.layouts.get(epid)
            got = layout is not None and \
                all(a.kind in _COLUMNAR_ACTIONS for a in layout.actions) and \
                not any(records.is_stack(f.dtype) for f in layout.fields) and \
                not any(isinstance(fn.binding.attach, TriggerAttach)
                        for fn in self.program.functions if layout.clause in fn.clauses)
            self._columnar_epids[epid] = got
        return got

    def on_columns(self, epid: int, rows) -> None:
        self.record_count += len(rows)
        self.record_columns.setdefault(epid, []).append(rows)

    def records_frames(self) -> dict:
        """(clause index, probe text) -> DataFrame of the records kept as columns, in
        arrival order."""
        if not self.record_columns:
            return {}
        decoder = RecordDecoder(self.program.resources.records, self.program.probes)
        out = {}
        for epid, arrays in sorted(self.record_columns.items()):
            clause = decoder.by_epid[epid].clause
            text = ", ".join(p.text for p in self.checked.clauses[clause].clause.probes)
            out[(clause, text)] = records_frame(decoder, epid, arrays)
        return out

    def _on_error(self, rec: ErrorRecord) -> None:
        """A fault: DTrace's message, then the ERROR probe with DTrace's arguments."""
        layout = self.layouts.get(rec.epid)
        clause = layout.clause if layout is not None else 0
        self.message(messages.error_message(rec, rec.probe.description, clause))
        self.errors += 1
        self.fire_error((0, rec.epid, rec.action if rec.action else -1, -1, rec.fault,
                         rec.addr))

    def _print_record(self, rec: Record) -> None:
        self._current = rec  # whose actions run (named in setopt()'s messages)
        layout = self.layouts[rec.epid]
        out = []
        # a clause whose only actions are commit()/discard() records nothing the user
        # sees: no probe line (dt_consume_one: not data-recording)
        recording = not (layout.actions
                         and all(a.kind in ("commit", "discard") for a in layout.actions))
        if recording and not self.quiet:
            if not self.heading:
                out.append(records.heading(self.testing))
                self.heading = True
            out.append(records.probe_prefix(rec.cpu, rec.probe, self.testing))
        status = None
        for action in layout.actions:
            if not (rec.mask >> action.bit) & 1 and action.kind != "default":
                continue
            values = [rec.values[i] for i in action.fields]
            if action.kind == "exit":
                status = records.exit_status(values[0])
                continue
            text = self._action(action, [layout.fields[i] for i in action.fields], values)
            if text:
                out.append(text)
        if recording and not self.quiet:  # (setopt("quiet") in this record ends the line)
            out.append("\n")
        if out:
            self.emit("".join(out))
        if status is not None:
            self.exit_status = status
        for action in layout.actions:
            if action.kind in ("commit", "discard") and (rec.mask >> action.bit) & 1:
                held = self._speculations.pop(rec.values[action.fields[0]], [])
                if action.kind == "commit":
                    for r in held:
                        self._print_record(r)

    # -- actions ---------------------------------------------------------------------

    def _action(self, action: RecordAction, fields: list, values: list) -> str:
        """The text of one action that ran, after doing what it does."""
        kind = action.kind
        if kind == "printf":
            return format_printf(action.fmt, self._printf_values(fields, values),
                                 [records.arg_type(f.dtype) for f in fields
                                  if not records.is_pid(f.dtype)],
                                 ksym=self.symbols.kernel_symbol)
        if kind == "trace":
            return records.trace_text(fields[0].dtype, values[0], self.quiet)
        if kind == "tracemem":
            # the buffer is the size rounded up to 8 bytes: show the size asked for (and
            # no more than the dynamic size, tracemem's third argument)
            count = min(values[1], action.args[0]) if len(values) > 1 else action.args[0]
            return records.tracemem_text(values[0], count)
        if kind in ("stack", "ustack"):
            return self.symbols.stack_text(kind, values[0], values[1], action.args)
        if kind == "printa":
            return self._printa(action.fmt, action.aggs)
        if kind == "clear":
            self.aggs.clear(action.aggs[0])
        elif kind == "trunc":
            self.aggs.trunc(action.aggs[0], values[0] if values else None)
        elif kind == "normalize":
            self._normalize(action.aggs[0], values[0])
        elif kind == "denormalize":
            self._normalize(action.aggs[0], 1)
        elif kind == "setopt":
            self._setopt(*action.args)
        elif kind == "system":
            self._system(format_printf(action.fmt, self._printf_values(fields, values),
                                       [records.arg_type(f.dtype) for f in fields],
                                       ksym=self.symbols.kernel_symbol))
        return ""

    def _printf_values(self, fields: list, values: list) -> list:
        """printf arguments: a stack()'s (id, pid) pair becomes its symbolised text."""
        out = []
        i = 0
        while i < len(fields):
            f = fields[i]
            if records.is_stack(f.dtype):
                out.append(self.symbols.stack_text(f.dtype.name, values[i], values[i + 1], []))
                i += 2
                continue
            out.append(values[i])
            i += 1
        return out

    def _printa(self, fmt: Optional[str], names: list[str]) -> str:
        snaps = [self.aggs.snapshot(n) for n in names]
        self.printed.update(n for n, s in zip(names, snaps) if len(s))
        if fmt is None:
            s = snaps[0]
            return "\n" + format_aggregation(s.func, s.keys, s.values, s.key_kinds, s.params)
        return format_printa(fmt, [(s.func, s.params, s.key_kinds,
                                    dict(zip(s.keys, s.values))) for s in snaps],
                             **self.aggs.sort_options, ksym=self.symbols.kernel_symbol)

    def _normalize(self, name: str, factor: int) -> None:
        if factor <= 0:
            self.message(messages.normalization_message(factor))
            return
        self.aggs.normal[name] = factor

    def _setopt(self, name: str, value: str = "") -> None:
        opts = self.checked.options
        why = ""
        if name not in KNOWN:
            why = "Invalid option name"
        elif name not in RUNTIME_OPTIONS:
            why = "Operation illegal when tracing is active"
        else:
            try:
                opts.set(name, value if value != "" else None)
            except DError:
                why = "Invalid value for specified option"
        if why:
            rec = self._current
            # dtrace(1) prints these with a blank line after (the message ends in \n)
            self.message(messages.liberr_message(
                rec.epid - 1, rec.probe, rec.probe.description,
                messages.setopt_message(name, value if value != "" else "1", why)) + "\n")
            return
        if name == "quiet":
            self.quiet = bool(opts["quiet"])
        if name.startswith("aggsort"):
            self.aggs.sort_options = sort_options(opts)

    def _system(self, command: str) -> None:
        done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True)
        if done.stdout:
            self.emit(done.stdout)
        if done.stderr:
            self.message(done.stderr.rstrip("\n"))

    # -- status and the end ----------------------------------------------------------

    def report_drops(self, now: dict[tuple[str, int], int]) -> None:
        """DTrace's status check: the data lost since the last check, in dtrace(1)'s words."""
        fresh = {k: v - self._drops_reported.get(k, 0) for k, v in now.items()
                 if v > self._drops_reported.get(k, 0)}
        if fresh:
            self._drops_reported = dict(now)
            for msg in messages.drop_messages(fresh, bool(self.checked.options["droptags"])):
                self.message(msg)

    def end(self, snapshot: dict[str, AggSnapshot]) -> None:
        """dtrace(1) at the end: a newline, then every aggregation (in program order) that
        printa() has not printed."""
        self.emit(format_all([(s.func, s.keys, s.values, s.key_kinds, s.params)
                              for name in self.program.resources.aggs
                              if name not in self.printed
                              and (s := snapshot.get(name)) is not None and len(s)]))
