"""Session: one tracing run, start -> poll -> stop, shared by the magic and the command.

Ordering follows DTrace: the target process (-c) is created first but held, the program is
compiled with its pid as $target, loaded, BEGIN runs, then every other probe is attached
and the target released. On stop (exit(), duration, target exit, Ctrl-C or an error) all
probes are detached first, then END runs, the ring buffer is drained and the aggregations
are read one last time; the BPF object is always cleaned up. What each record means is
the consumer's business (consumer.py); the caller builds the Result (result/).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from dtrace_nb.aggregate.timeline import Timeline
from dtrace_nb.codegen import BpfProgram
from dtrace_nb.consumer import Consumer, sort_options
from dtrace_nb.errors import DError
from dtrace_nb.lang.check import CheckedProgram
from dtrace_nb.probes import ProbeCatalog
from dtrace_nb.runtime.compile import compile_program
from dtrace_nb.runtime.environment import import_bcc, require_tracing
from dtrace_nb.runtime.program import LoadedProgram
from dtrace_nb.runtime.signals import SignalNotice, deferred_interrupts
from dtrace_nb.runtime.symbols import StackSymbols, kernel_symbol, warm_user_symbols
from dtrace_nb.runtime.target import Target
from dtrace_nb.text.messages import matched_message, target_exited_message
from dtrace_nb.text.stacks import format_stack


@dataclass
class SessionConfig:
    source: str
    target_command: Optional[str] = None
    target_pid: Optional[int] = None
    macro_args: list[str] = field(default_factory=list)
    options: dict[str, Optional[str]] = field(default_factory=dict)  # -x name=value
    quiet: bool = False
    capture_target_output: bool = False
    # Keep the records of clauses that only record data (trace, printf, tracemem, the
    # default action) as columns for Result.records_frame() instead of formatting them to
    # text; every other record (exit, printa, speculations, ERROR...) is handled as usual.
    # Clauses of BEGIN/END/ERROR and speculative records stay text.
    record_frames: bool = False
    # One host of a fleet (dtrace_nb/fleet): aggregations are read without normalize()'s
    # factor (Session.normalize_factors() has them) and not printed at the end: the fleet
    # merges every host's, divides once and prints them.
    fleet_member: bool = False
    # the programs as given on the command line (frontend.Command): one 'matched N probes'
    # notice each, as dtrace(1); without them (a cell), one per clause
    commands: list = field(default_factory=list)
    # dtrace(1)'s _DTRACE_TESTING: records without the CPU and ID columns
    testing: bool = False


@dataclass
class RunOutcome:
    """How run() ended, besides what the session holds (Result.from_session takes both)."""

    interrupted: bool = False
    error: Optional[DError] = None


class Session:
    """One tracing run. Use `run()`, or `start()` / `poll()` / `stop()` to drive it."""

    def __init__(self, cfg: SessionConfig, on_output: Optional[Callable[[str], None]] = None,
                 catalog: Optional[ProbeCatalog] = None,
                 on_message: Optional[Callable[[str], None]] = None,
                 on_stage: Optional[Callable[[str], None]] = None):
        self.cfg, self.catalog = cfg, catalog
        # the live view's control bar: "compiling", "attaching N probes", "tracing"
        self.on_stage = on_stage
        self.on_output, self.on_message = on_output, on_message
        self.output: list[str] = []
        self.messages: list[str] = []
        self.checked: Optional[CheckedProgram] = None
        self.program: Optional[BpfProgram] = None
        self.target: Optional[Target] = None
        self.consumer: Optional[Consumer] = None
        self.stop_reason = ""
        self.started_at = self.ended_at = 0.0
        self.ending = False  # set once the records of the traced time are all read
        self._bcc = None
        self._loaded: Optional[LoadedProgram] = None  # the program in the kernel
        self._reader = self._ring = None
        self._final: Optional[dict] = None
        self._drops: dict[tuple[str, int], int] = {}
        self._next_status = 0.0
        # aggregations over time: the live view samples at each refresh, stop() last
        self.timeline = Timeline()
        self._symbols_warm = False
        self.compiled_from_cache = False
        self.running = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        require_tracing()
        self._bcc = import_bcc()
        try:
            if self.cfg.target_command:
                with deferred_interrupts():  # a child and a pipe fd nobody would free
                    self.target = Target.spawn(self.cfg.target_command,
                                               capture=self.cfg.capture_target_output)
            elif self.cfg.target_pid is not None:
                self.target = Target.attach(self.cfg.target_pid)
            self._stage("compiling")
            self.checked, self.program = compile_program(
                self.cfg, self.catalog, self.target.pid if self.target else None,
                self.target.exe if self.target else "")
            self._matched_notices()
            self._load()  # clang (or the object cache), maps, the verifier
            self._stage(f"attaching {self.probes_enabled} probe"
                        + "s" * (self.probes_enabled != 1))
            self.started_at = time.monotonic()
            self.running = True
            self._fire("BEGIN")
            self._attach_all()
            if self.target is not None:
                self.target.release()
            self._stage("tracing")
        except KeyboardInterrupt:
            if self.running:
                # BEGIN has run: tracing began, so stop() runs END and prints what was
                # aggregated, as dtrace(1) does for a signal once it has called go()
                raise
            self._abandon()
            raise
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """start() failed before tracing began: free everything; stop() has nothing left
        to read."""
        self.running = False
        with deferred_interrupts():
            self._teardown()
            if self.target is not None:
                self.target.kill()

    def _matched_notices(self) -> None:
        """dtrace(1)'s notice per program enabled, unless quiet (-q or the quiet option
        set when it was compiled: `#pragma D option quiet`)."""
        assert self.checked is not None
        if self.checked.options["quiet"]:
            return
        clauses = self.checked.clauses
        if not self.cfg.commands:
            for c in clauses:
                self._message(matched_message([p.text for p in c.clause.probes], len(c.probes)))
            return
        for cmd in self.cfg.commands:
            n = sum(len(c.probes) for c in clauses
                    if c.clause.probes and cmd.holds(c.clause.probes[0].span.line))
            self._message(matched_message(cmd.name, n, cmd.desc))

    def _stage(self, text: str) -> None:
        if self.on_stage is not None:
            self.on_stage(text)

    def _load(self) -> None:
        from dtrace_nb.runtime.aggregations import AggregationReader
        from dtrace_nb.runtime.records import RecordDecoder, RingConsumer

        assert self.program is not None
        # recorded before it holds anything, so that _teardown() frees what load() made
        self._loaded = LoadedProgram(self._bcc, self.program, critical=deferred_interrupts)
        self._loaded.load(self.target.pid if self.target else 0)
        self.compiled_from_cache = self._loaded.compiled_from_cache
        symbols = _KernelSymbols(self._loaded.stack_symbols())
        self._reader = AggregationReader(self._loaded.maps, self.program.resources.aggs,
                                         sort_options(self.checked.options),
                                         stack_text=symbols.stack_text)
        self._reader.apply_normal = not self.cfg.fleet_member
        self.consumer = Consumer(self.checked, self.program, self._reader, symbols,
                                 self._emit, self._message,
                                 lambda args: self._fire("ERROR", args, consume=False),
                                 record_frames=self.cfg.record_frames,
                                 testing=self.cfg.testing)
        ring = self._loaded.ring
        if ring is not None:
            decoder = RecordDecoder(self.program.resources.records, self.program.probes)
            with deferred_interrupts():  # the ring buffer's mmaps and epoll fd
                self._ring = RingConsumer(ring, decoder, self.consumer.on_record,
                                          columnar=self.consumer.columnar,
                                          on_columns=self.consumer.on_columns)

    def _attach_all(self) -> None:
        assert self._loaded is not None
        self._loaded.attach_all()

    def _fire(self, event: str, args: tuple[int, ...] = (), consume: bool = True) -> None:
        assert self._loaded is not None
        self._loaded.fire(event, args)
        if consume:
            self._consume()

    # -- while running -----------------------------------------------------------------

    @property
    def probes_enabled(self) -> int:
        return len(self.program.probes) if self.program else 0

    @property
    def records(self) -> int:
        return self.consumer.record_count if self.consumer else 0

    record_count = records

    @property
    def errors(self) -> int:
        return self.consumer.errors if self.consumer else 0

    @property
    def exit_status(self) -> Optional[int]:
        return self.consumer.exit_status if self.consumer else None

    def poll(self, timeout_ms: int = 100) -> bool:
        """Consume records for up to timeout_ms; False once the session should stop."""
        if not self.running:
            return False
        if self._ring is not None:
            self._ring.poll(timeout_ms)
        else:
            time.sleep(timeout_ms / 1000)
        self._warm_user_symbols()
        if time.monotonic() >= self._next_status:
            self._status()
        if self.exit_status is not None:
            self.stop_reason = self.stop_reason or "exit"
            return False
        if self.target is not None and self.target.exited():
            self.stop_reason = "target exited"
            self._message(target_exited_message(self.target.pid))
            return False
        return True

    def _warm_user_symbols(self) -> None:
        """ustack() frames are symbolised when printed, maybe after the target exited; bcc
        can still do it then if it read the process's mappings while the process lived. So
        read them once the target runs its own executable (after the -c gate's exec)."""
        if self._symbols_warm or self.target is None or self.program is None \
                or not self.program.uses_user_stacks:
            return
        try:
            exe = os.readlink(f"/proc/{self.target.pid}/exe")
        except OSError:
            self._symbols_warm = True  # gone: nothing more to learn
            return
        if self.target.exe and os.path.realpath(exe) != os.path.realpath(self.target.exe):
            return  # still the gate's /bin/sh
        warm_user_symbols(self.target.pid)
        self._symbols_warm = True

    def _consume(self) -> None:
        if self._ring is not None:
            self._ring.drain()

    def _message(self, text: str) -> None:
        """Consumer messages (dtrace(1) writes these to stderr)."""
        self.messages.append(text)
        if self.on_message is not None:
            self.on_message(text)

    def _emit(self, text: str) -> None:
        self.output.append(text)
        if self.on_output is not None:
            self.on_output(text)

    def snapshot(self) -> dict:
        """Every aggregation's current merged contents (name -> AggSnapshot)."""
        if self._final is not None:
            return self._final
        if self._reader is None:
            return {}
        return {name: self._reader.snapshot(name) for name in self.program.resources.aggs}

    def normalize_factors(self) -> dict[str, int]:
        """name -> the factor normalize() gave it (only the aggregations it was called on)."""
        return dict(self._reader.normal) if self._reader is not None else {}

    def records_frames(self) -> dict:
        """(clause index, probe text) -> DataFrame of the records kept as columns
        (SessionConfig.record_frames), in arrival order."""
        return self.consumer.records_frames() if self.consumer else {}

    def drops(self) -> dict[tuple[str, int], int]:
        """(kind, cpu) -> count of data lost so far."""
        if self._loaded is None:
            return dict(self._drops)
        self._drops = self._loaded.drops()
        return self._drops

    def _status(self) -> None:
        """DTrace's status check, every `statusrate`: data lost since the last check is
        reported then, in dtrace(1)'s words, not only at the end."""
        rate = int(self.checked.options["statusrate"]) if self.checked else 10**9
        self._next_status = time.monotonic() + max(rate, 10**6) / 1e9
        now = self.drops()
        if self.consumer is not None:
            self.consumer.report_drops(now)

    def stop(self, reason: str = "") -> None:
        """Detach, run END, drain, final snapshot; always leaves nothing loaded."""
        if not self.running and self._loaded is None:
            return
        self.stop_reason = self.stop_reason or reason
        try:
            if self._loaded is not None:
                self._loaded.detach_all()
                # the probes are no longer live: where Result.duration ends
                self.ended_at = time.monotonic()
            if self.running:
                self._consume()
                # what follows is END's text and the exit's printa, not the trace's output
                self.ending = True
                self._fire("END")
                self._consume()
                self._status()
                self._final = self.snapshot()
                self.timeline.add(self._final)
                if not self.cfg.fleet_member:
                    self.consumer.end(self._final)
        finally:
            self.running = False
            self.ended_at = self.ended_at or time.monotonic()
            with deferred_interrupts():
                self._teardown()
                if self.target is not None:
                    if self.target.proc is not None and not self.target.exited():
                        self.target.kill()
                    else:
                        self.target.finish()

    def _teardown(self) -> None:
        with deferred_interrupts():  # a cleanup cut short leaks what it had not freed yet
            if self._loaded is not None:
                try:
                    self._loaded.detach_all()
                    try:
                        if self._ring is not None:
                            self._ring.close()
                    finally:
                        self._loaded.close()
                finally:
                    self._loaded = None
                    self._ring = None

    # -- the whole run -----------------------------------------------------------------

    def run(self, duration: Optional[float] = None, on_tick: Optional[Callable] = None,
            tick: float = 1.0, should_stop: Optional[Callable[[], bool]] = None) -> RunOutcome:
        """Trace until exit(), the target exits, `duration` passes, should_stop() or Ctrl-C.
        Ctrl-C stops tracing and keeps everything aggregated, as in DTrace."""
        outcome = RunOutcome()
        signalled = SignalNotice()
        try:
            signalled.install()
            self.start()
            # -T counts from probes-live (Result.duration's clock), checked at every poll
            # and never later than it: a slow on_tick cannot stretch the trace
            deadline = self.started_at + duration if duration else None
            next_tick = time.monotonic() + tick
            while self.poll(_poll_ms(deadline)):
                if signalled.seen:
                    # a Ctrl-C whose KeyboardInterrupt Python swallowed (raised inside a
                    # weakref callback or __del__: "Exception ignored in ...") still stops us
                    raise KeyboardInterrupt
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    self.stop_reason = "duration"
                    break
                if should_stop is not None and should_stop():
                    self.stop_reason = "stopped"
                    break
                if on_tick is not None and now >= next_tick:
                    next_tick = now + tick
                    on_tick(self)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self.stop_reason = "interrupted"
        except DError as err:
            outcome.error = err
        finally:
            try:
                self.stop()
            except KeyboardInterrupt:
                outcome.interrupted = True
                self.stop()
            finally:
                signalled.uninstall()
        return outcome


def _poll_ms(deadline: Optional[float]) -> int:
    """Wait up to 100 ms for records, less when the deadline is nearer."""
    if deadline is None:
        return 100
    return max(0, min(100, int((deadline - time.monotonic()) * 1000) + 1))


class _KernelSymbols:
    """Stacks and kernel addresses symbolised in user space (consumer.Symbols), from the
    loaded program's stack map (runtime/symbols.py), laid out as DTrace prints them."""

    def __init__(self, stacks: StackSymbols):
        self.stacks = stacks

    def stack_text(self, kind: str, stackid: int, pid: int, args: list) -> str:
        return format_stack(self.stacks, kind, stackid, pid, args)

    def kernel_symbol(self, addr: int) -> Optional[str]:
        return kernel_symbol(addr)
