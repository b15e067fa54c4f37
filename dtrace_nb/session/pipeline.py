"""The program in the kernel wired to what reads it: the ring buffer's records go to the
consumer, the aggregations are read through an AggregationReader, and the consumer's
triggers (BEGIN, END, ERROR) run on request. Session (core.py) decides when; this module
knows how, and frees all of it in close().
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from dtrace_nb.codegen import BpfProgram
from dtrace_nb.consumer import Consumer, sort_options
from dtrace_nb.lang.check import CheckedProgram
from dtrace_nb.runtime.budget import AttachmentCost, RunTimeStats
from dtrace_nb.runtime.program import LoadedProgram
from dtrace_nb.runtime.signals import deferred_interrupts
from dtrace_nb.runtime.symbols import StackSymbols, kernel_symbol
from dtrace_nb.text.stacks import format_stack


class Pipeline:
    def __init__(self, bcc, checked: CheckedProgram, program: BpfProgram,
                 emit: Callable[[str], None], message: Callable[[str], None],
                 fleet_member: bool = False, record_frames: bool = False,
                 testing: bool = False):
        self.checked, self.program = checked, program
        self._emit, self._message = emit, message
        self._fleet_member, self._record_frames, self._testing = \
            fleet_member, record_frames, testing
        # made before it holds anything, so that close() frees what load() made
        self.loaded: Optional[LoadedProgram] = LoadedProgram(bcc, program,
                                                             critical=deferred_interrupts)
        self.consumer: Optional[Consumer] = None
        self._reader = self._ring = None
        self._stats: Optional[RunTimeStats] = None
        self.last_drops: dict[tuple[str, int], int] = {}
        self._next_status = 0.0

    def load(self, target_pid: int) -> None:
        """clang (or the object cache), the maps, the verifier; then the reader, the
        consumer and the ring buffer's reader over them."""
        from dtrace_nb.runtime.aggregations import AggregationReader
        from dtrace_nb.runtime.records import RecordDecoder, RingConsumer

        assert self.loaded is not None
        self.loaded.load(target_pid)
        symbols = _KernelSymbols(self.loaded.stack_symbols())
        self._reader = AggregationReader(self.loaded.maps, self.program.resources.aggs,
                                         sort_options(self.checked.options),
                                         stack_text=symbols.stack_text)
        self._reader.apply_normal = not self._fleet_member
        self.consumer = Consumer(self.checked, self.program, self._reader, symbols,
                                 self._emit, self._message,
                                 lambda args: self.fire("ERROR", args, consume=False),
                                 record_frames=self._record_frames, testing=self._testing)
        ring = self.loaded.ring
        if ring is not None:
            decoder = RecordDecoder(self.program.resources.records, self.program.probes)
            with deferred_interrupts():  # the ring buffer's mmaps and epoll fd
                self._ring = RingConsumer(ring, decoder, self.consumer.on_record,
                                          columnar=self.consumer.columnar,
                                          on_columns=self.consumer.on_columns,
                                          text_batch=self.consumer.text_batch,
                                          on_text=self.consumer.on_text)

    @property
    def compiled_from_cache(self) -> bool:
        return self.loaded is not None and self.loaded.compiled_from_cache

    def attach_all(self, budget: bool = False) -> None:
        """Attach every probe; with `budget`, the kernel counts their runs from now."""
        assert self.loaded is not None
        if budget:
            self._stats = RunTimeStats()
        self.loaded.attach_all()

    def activate(self) -> None:
        """Open the probes' gate once BEGIN has run (DTrace's active state)."""
        assert self.loaded is not None
        self.loaded.activate()

    def costs(self, seconds: float) -> list[AttachmentCost]:
        """Each attachment's runs and time so far (attach_all(budget=True)), costliest
        first; [] without the statistics or once the programs are freed."""
        if self._stats is None or self.loaded is None:
            return []
        return self._stats.costs(self.program.functions, self.loaded.prog_fds, seconds)

    def fire(self, event: str, args: tuple[int, ...] = (), consume: bool = True) -> None:
        """Run a consumer trigger's programs ('BEGIN', 'END', 'ERROR'), then (unless
        the consumer itself asked, for ERROR) hand what they recorded to the consumer."""
        assert self.loaded is not None
        self.loaded.fire(event, args)
        if consume:
            self.drain()

    def poll(self, timeout_ms: int) -> None:
        """Consume records for up to timeout_ms."""
        if self._ring is not None:
            self._ring.poll(timeout_ms)
        else:
            time.sleep(timeout_ms / 1000)

    def drain(self) -> None:
        if self._ring is not None:
            self._ring.drain()

    def snapshot(self) -> dict:
        """Every aggregation's current merged contents (name -> AggSnapshot)."""
        if self._reader is None:
            return {}
        return {name: self._reader.snapshot(name) for name in self.program.resources.aggs}

    def normalize_factors(self) -> dict[str, int]:
        return dict(self._reader.normal) if self._reader is not None else {}

    def drops(self) -> dict[tuple[str, int], int]:
        """(kind, cpu) -> count of data lost so far (the last count once closed)."""
        if self.loaded is not None:
            self.last_drops = self.loaded.drops()
        return self.last_drops

    def check_status(self, now: bool = False) -> None:
        """DTrace's status check, every `statusrate` (or `now`): data lost since the last
        check is reported then, in dtrace(1)'s words, not only at the end."""
        if not now and time.monotonic() < self._next_status:
            return
        rate = int(self.checked.options["statusrate"])
        self._next_status = time.monotonic() + max(rate, 10**6) / 1e9
        drops = self.drops()
        if self.consumer is not None:
            self.consumer.report_drops(drops)

    def detach_all(self) -> None:
        if self.loaded is not None:
            self.loaded.detach_all()

    def close(self) -> None:
        """Detach, close the ring buffer's reader, free the programs and maps (idempotent);
        the reader and the consumer stay, for what was read."""
        with deferred_interrupts():  # a cleanup cut short leaks what it had not freed yet
            if self.loaded is not None:
                try:
                    self.loaded.detach_all()
                    try:
                        if self._ring is not None:
                            self._ring.close()
                    finally:
                        self.loaded.close()
                finally:
                    self.loaded = None
                    self._ring = None
                    if self._stats is not None:
                        self._stats.close()
                        self._stats = None


class _KernelSymbols:
    """Stacks and kernel addresses symbolised in user space (consumer.Symbols), from the
    loaded program's stack map (runtime/symbols.py), laid out as DTrace prints them."""

    def __init__(self, stacks: StackSymbols):
        self.stacks = stacks

    def stack_text(self, kind: str, stackid: int, pid: int, args: list) -> str:
        return format_stack(self.stacks, kind, stackid, pid, args)

    def kernel_symbol(self, addr: int) -> Optional[str]:
        return kernel_symbol(addr)
