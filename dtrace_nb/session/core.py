"""Session: one tracing run, start -> poll -> stop, shared by the magic and the command.

Ordering follows DTrace: the target process (-c) is created first but held, the program is
compiled with its pid as $target, loaded, every probe attached (their clauses wait in the
kernel), BEGIN runs, the clauses are let run, and the target released. On stop (exit(),
duration, target exit, Ctrl-C or an error) all probes are detached first, then END runs, the ring buffer is drained and the aggregations
are read one last time; the BPF object is always cleaned up. Session only orders these
steps: the program in the kernel and its readers are the Pipeline's (pipeline.py), what
each record means the consumer's (consumer.py), the target runtime/target.py's, the whole
run with its Ctrl-C run.py's; the caller builds the Result (result/).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from dtrace_nb.aggregate.timeline import Timeline
from dtrace_nb.codegen import BpfProgram
from dtrace_nb.consumer import Consumer
from dtrace_nb.lang.check import CheckedProgram
from dtrace_nb.probes import ProbeCatalog
from dtrace_nb.runtime.budget import budget_lines
from dtrace_nb.runtime.compile import compile_cached
from dtrace_nb.runtime.environment import import_bcc, require_tracing
from dtrace_nb.runtime.program import LoadedProgram
from dtrace_nb.runtime.signals import deferred_interrupts
from dtrace_nb.runtime.target import Target
from dtrace_nb.session.config import RunOutcome, SessionConfig
from dtrace_nb.session.pipeline import Pipeline
from dtrace_nb.session.run import run as run_session
from dtrace_nb.text.messages import (matched_messages, not_enabled_message,
                                     target_exited_message)


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
        self.stop_reason = ""
        self.started_at = self.ended_at = 0.0
        self.ending = False  # set once the records of the traced time are all read
        self.budget: list = []  # --budget: runtime.budget.AttachmentCost rows, at stop()
        self._pipe: Optional[Pipeline] = None
        self._final: Optional[dict] = None  # the last snapshot, taken at stop()
        # aggregations over time: the live view samples at each refresh, stop() last
        self.timeline = Timeline()
        self.compiled_from_cache = False  # the object: clang did not run
        self.program_from_cache = False  # the program: parse, check, codegen did not run
        self.running = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        require_tracing()
        bcc = import_bcc()
        try:
            cfg = self.cfg
            with deferred_interrupts():  # recorded before a Ctrl-C can land (_abandon kills it)
                self.target = Target.open(cfg.target_command, cfg.target_pid,
                                          capture=cfg.capture_target_output)
            self._stage("compiling")
            self.checked, self.program, self.program_from_cache = compile_cached(
                cfg, self.catalog, self.target.pid if self.target else None,
                self.target.exe if self.target else "")
            if not self.checked.options["quiet"]:  # -q, or `#pragma D option quiet`
                for text in matched_messages(self.checked.clauses, cfg.commands):
                    self._message(text)
            # recorded before it loads anything, so that _teardown() frees what it made
            self._pipe = Pipeline(bcc, self.checked, self.program, self._emit,
                                  self._message, fleet_member=cfg.fleet_member,
                                  record_frames=cfg.record_frames, testing=cfg.testing)
            self._pipe.load(self.target.pid if self.target else 0)
            self.compiled_from_cache = self._pipe.compiled_from_cache
            self._stage(f"attaching {self.probes_enabled} probe"
                        + "s" * (self.probes_enabled != 1))
            self.started_at = time.monotonic()
            self.running = True
            self._pipe.attach_all(budget=cfg.budget)
            for p in self._loaded.refused_probes():
                self._message(not_enabled_message(p.description))
            self._pipe.fire("BEGIN")
            self._pipe.activate()
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

    def _stage(self, text: str) -> None:
        if self.on_stage is not None:
            self.on_stage(text)

    # -- while running -----------------------------------------------------------------

    @property
    def consumer(self) -> Optional[Consumer]:
        return self._pipe.consumer if self._pipe else None

    @property
    def _loaded(self) -> Optional[LoadedProgram]:
        """The program in the kernel; None once everything is freed."""
        return self._pipe.loaded if self._pipe else None

    @property
    def _drops(self) -> dict[tuple[str, int], int]:
        """The data lost, as the last status check counted it."""
        return self._pipe.last_drops if self._pipe else {}

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
        if not self.running or self._pipe is None:
            return False
        self._pipe.poll(timeout_ms)
        if self.target is not None and self.program.uses_user_stacks:
            self.target.warm_symbols()
        self._pipe.check_status()
        if self.exit_status is not None:
            self.stop_reason = self.stop_reason or "exit"
            return False
        if self.target is not None and self.target.exited():
            self.stop_reason = "target exited"
            self._message(target_exited_message(self.target.pid))
            return False
        return True

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
        return self._pipe.snapshot() if self._pipe else {}

    def normalize_factors(self) -> dict[str, int]:
        """name -> the factor normalize() gave it (only the aggregations it was called on)."""
        return self._pipe.normalize_factors() if self._pipe else {}

    def records_frames(self) -> dict:
        """(clause index, probe text) -> DataFrame of the records kept as columns
        (SessionConfig.record_frames), in arrival order."""
        return self.consumer.records_frames() if self.consumer else {}

    def costs_now(self) -> list:
        """--budget: each attachment's cost so far (the live view's lines)."""
        if not self.started_at or self._pipe is None:
            return self.budget
        return self._pipe.costs(time.monotonic() - self.started_at) or self.budget

    def drops(self) -> dict[tuple[str, int], int]:
        """(kind, cpu) -> count of data lost so far."""
        return dict(self._pipe.drops()) if self._pipe else {}

    def stop(self, reason: str = "") -> None:
        """Detach, run END, drain, final snapshot; always leaves nothing loaded."""
        if not self.running and self._loaded is None:
            return
        self.stop_reason = self.stop_reason or reason
        try:
            if self._loaded is not None:
                self._pipe.detach_all()
                # the probes are no longer live: where Result.duration ends
                self.ended_at = time.monotonic()
                if self.cfg.budget and self.started_at:
                    self.budget = self._pipe.costs(self.ended_at - self.started_at)
                    for line in budget_lines(self.budget):
                        self._message(line)
            if self.running:
                self._pipe.drain()
                # what follows is END's text and the exit's printa, not the trace's output
                self.ending = True
                self._pipe.fire("END")
                self._pipe.drain()
                self._pipe.check_status(now=True)
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
                    self.target.close()

    def _teardown(self) -> None:
        if self._pipe is not None:
            self._pipe.close()

    # -- the whole run -----------------------------------------------------------------

    def run(self, duration: Optional[float] = None, on_tick: Optional[Callable] = None,
            tick: float = 1.0, should_stop: Optional[Callable[[], bool]] = None) -> RunOutcome:
        """Trace until exit(), the target exits, `duration` passes, should_stop() or Ctrl-C.
        Ctrl-C stops tracing and keeps everything aggregated, as in DTrace."""
        return run_session(self, duration, on_tick, tick, should_stop)
