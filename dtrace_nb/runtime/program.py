"""A generated program in the kernel, the kernel-facing half of a session: compiled
(runtime/compiler.py, in a child process or from the cache), its maps created and filled
(the probe table, the selector maps, the state map), its functions loaded, attached all at
once (runtime/attach/), its BEGIN/END/ERROR programs fired, its drop counters read, and
everything detached and freed by `close()`.

`critical` is a context manager factory under which each kernel object is created or
freed: the session passes one that holds Ctrl-C back (a KeyboardInterrupt between the
kernel making an object and this class recording it would leak it). The compile itself
runs outside it, so that Ctrl-C stops a long compile at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from typing import Callable, ContextManager, Optional

from dtrace_nb.codegen import BpfProgram
from dtrace_nb.runtime.attach import AttachedProbe, TriggerProbe, load_attributes, probe_for
from dtrace_nb.runtime.translated import cflags as translated_cflags
from dtrace_nb.runtime.loader import LoadedObject, compile_c, create_maps, load_function
from dtrace_nb.runtime.maps import Map, PerCpuArrayMap, RingBufferMap, StackTraceMap
from dtrace_nb.runtime.symbols import StackSymbols

# the rows of the dtnb_drops counters (prelude.h: DT_DROP_*)
DROP_KINDS = ("aggregation", "ring buffer", "dynamic variable", "speculation")
# the slots of dtnb_state (prelude.h)
STATE_ACTIVITY, STATE_WALLCLOCK_OFFSET, STATE_TARGET, STATE_PID = 0, 1, 2, 3
INACTIVE, ACTIVE = 0, 1  # (DT_EXITING is 2: set by exit() in the kernel)


class LoadedProgram:
    def __init__(self, bcc, program: BpfProgram,
                 critical: Callable[[], ContextManager] = contextlib.nullcontext):
        self.program = program
        self._bcc = bcc
        self._critical = critical
        self._obj: Optional[LoadedObject] = None
        self.prog_fds: dict[str, int] = {}            # function name -> loaded program
        self.probes: dict[str, AttachedProbe] = {}    # function name -> its attachment
        self._pending: list[str] = []                 # loaded, not attached yet
        self.attached: list[AttachedProbe] = []
        self.triggers: list[TriggerProbe] = []
        self.compiled_from_cache = False

    # -- loading -----------------------------------------------------------------------

    def load(self, target_pid: int = 0) -> None:
        """Compile, create the maps, load every function, fill the tables the generated
        code reads; a failure is a DLoadError or DEnvironmentError (call close() then)."""
        program = self.program
        # the offsets cost a BTF scan; programs that do not read the task need none
        cflags = translated_cflags() if program.reads_task else []
        compiled = compile_c(self._bcc, program.c_source, cflags,
                             [fn.name for fn in program.functions])
        self.compiled_from_cache = compiled.cached
        with self._critical():
            self._obj = create_maps(self._bcc, compiled)
        for fn in program.functions:
            attrs = load_attributes(fn.binding.attach)
            with self._critical():
                loaded = load_function(self._obj, fn.name, attrs.prog_type, program.c_source,
                                       attrs.expected_attach_type, attrs.attach_btf_id)
            self.prog_fds[fn.name] = loaded.fd
            probe = self.probes[fn.name] = probe_for(fn.binding.attach)
            if isinstance(probe, TriggerProbe):
                probe.attach(loaded.fd)  # nothing in the kernel: run by fire()
                self.triggers.append(probe)
            else:
                self._pending.append(fn.name)
        self._fill_tables()
        self.set_state(target_pid)

    @property
    def maps(self) -> dict[str, Map]:
        return self._obj.maps if self._obj is not None else {}

    def _map(self, name: str):
        return self.maps[name]

    @property
    def ring(self) -> Optional[RingBufferMap]:
        m = self.maps.get("dtnb_rb")
        return m if isinstance(m, RingBufferMap) else None

    def stack_symbols(self) -> StackSymbols:
        m = self.maps.get("dtnb_stacks")
        return StackSymbols(m if isinstance(m, StackTraceMap) else None)

    def _fill_tables(self) -> None:
        """Probe descriptions and selector maps, which the generated code reads."""
        program, n = self.program, self.program.probe_string_size
        if program.uses_probe_table:
            table = self._map("dtnb_probes")
            for i, p in enumerate(program.probes):
                v = table.Leaf()
                v.id = p.id
                for fname, text in (("prov", p.provider), ("mod", p.module),
                                    ("func", p.function), ("name", p.name)):
                    setattr(v, fname, text.encode()[: n - 1])
                table[ctypes.c_int(i)] = v
        for fn in program.functions:
            if not fn.selector_map:
                continue
            table = self._map(fn.selector_map)
            for value, (pidx, mask) in fn.selector_entries.items():
                leaf = table.Leaf()
                leaf.pidx, leaf.mask = pidx, mask
                table[value] = leaf

    def set_state(self, target_pid: int) -> None:
        """walltimestamp = bpf_ktime_get_ns() + (wall clock - monotonic clock); $target and
        $pid, which the program reads from here (see the prelude)."""
        offset = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        table = self._map("dtnb_state")
        for slot, value in ((STATE_WALLCLOCK_OFFSET, offset), (STATE_TARGET, target_pid),
                            (STATE_PID, os.getpid())):
            table[ctypes.c_int(slot)] = ctypes.c_uint64(value & (2**64 - 1))

    # -- running -----------------------------------------------------------------------

    def attach_all(self) -> None:
        """Attach every loaded function but the consumer's triggers; each attachment is
        recorded before it is made, so detach_all() frees a half-made one too."""
        while self._pending:
            name = self._pending.pop(0)
            probe = self.probes[name]
            with self._critical():  # perf event fds and tracefs probes
                self.attached.append(probe)
                probe.attach(self.prog_fds[name])

    def activate(self) -> None:
        """BEGIN is through: the other probes' clauses run from now (unless BEGIN called
        exit(): the state stays exiting). Only BEGIN could change the state before this,
        and it has returned."""
        table = self._map("dtnb_state")
        state = table.get(ctypes.c_int(STATE_ACTIVITY))
        if state is not None and int(state.value) == INACTIVE:
            table[ctypes.c_int(STATE_ACTIVITY)] = ctypes.c_uint64(ACTIVE)

    def refused_probes(self) -> list:
        """The probes left out because the kernel cannot instrument their site (an
        attachment's `refused`), in probe order."""
        out = []
        for fn in self.program.functions:
            probe = self.probes.get(fn.name)
            if probe is None or not probe.refused:
                continue
            b = fn.binding
            if None in probe.refused or b.selector is None:
                out += b.probes
                continue
            cookies = set(probe.refused)
            out += [p for p in b.probes if b.selector.values.get(p.id) in cookies]
        return sorted(out, key=lambda p: p.id)

    def fire(self, event: str, args: tuple[int, ...] = ()) -> None:
        """Run the programs of a consumer trigger ('BEGIN', 'END', 'ERROR') now."""
        for probe in self.triggers:
            if probe.event == event:
                probe.fire(args)

    def drops(self) -> dict[tuple[str, int], int]:
        """(kind, cpu) -> count of data lost so far."""
        table = self.maps.get("dtnb_drops")
        if not isinstance(table, PerCpuArrayMap):
            return {}
        out = {}
        for i, kind in enumerate(DROP_KINDS):
            for cpu, v in enumerate(table.values(ctypes.c_int(i))):
                if int(v):
                    out[(kind, cpu)] = int(v)
        return out

    # -- the end -----------------------------------------------------------------------

    def detach_all(self) -> None:
        with self._critical():
            while self.attached:
                self.attached.pop().detach()

    def close(self) -> None:
        """Detach everything, then free the programs and maps (idempotent)."""
        with self._critical():  # a cleanup cut short leaks what it had not freed yet
            try:
                self.detach_all()
            finally:
                self._pending.clear()
                self.triggers.clear()
                self.probes.clear()
                self.prog_fds.clear()
                if self._obj is not None:
                    obj, self._obj = self._obj, None
                    obj.cleanup()
