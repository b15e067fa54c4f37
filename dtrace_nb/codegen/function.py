"""What the code of one generated BPF function shares while it is written: the binding it
serves, the clause and action being emitted, scratch space, faults, and the resources the
body turns out to use (which decide the function's preamble). The statement emitter
(emit.py) owns one; the expression emitter (expressions.py) writes into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.codegen.layout import RecordLayout, Resources
from dtrace_nb.errors import DCompileError
from dtrace_nb.lang.check import Annotations, CheckedClause, CheckedProgram
from dtrace_nb.probes import Binding, Probe

SCRATCH_LIMIT = 32 << 10  # per-CPU array values are limited to 32 KiB


@dataclass
class FunctionState:
    checked: CheckedProgram
    res: Resources
    binding: Binding
    # the binding's only probe, when it serves one: probe strings and `id` are constants
    single: Optional[Probe]
    clause: Optional[CheckedClause] = None
    rec: Optional[RecordLayout] = None  # the current clause's record, if it has one
    action_no: int = 0  # DTrace's action number of the statement being emitted
    in_predicate: bool = False
    # scratch bytes 0..strbuf-1 stay zero: the empty string for absent variables
    scratch_top: int = 0
    # what the body needs from the preamble: 'globals', 'this', 'scratch', 'fault',
    # 'spec', 'task', 'addresses' (the header addresses.h), 'ts' (the firing's timestamp)
    uses: set[str] = field(default_factory=set)
    args_used: set[int] = field(default_factory=set)  # N of every argN read
    faulted: set[int] = field(default_factory=set)  # clauses with a fault handler
    shared: dict[str, str] = field(default_factory=dict)  # buffers by name (shared_buffer)
    _tmp: int = 0

    def __post_init__(self) -> None:
        self.scratch_top = self.res.strbuf

    @property
    def ann(self) -> Annotations:
        return self.checked.annotations

    @property
    def rec_var(self) -> str:
        assert self.clause is not None
        return f"dt_r{self.clause.index}"

    def tmp(self, prefix: str = "t") -> str:
        """A fresh C local name."""
        self._tmp += 1
        return f"dt_{prefix}{self._tmp}"

    def alloc(self, size: int) -> str:
        """A fresh scratch buffer of `size` bytes (8-aligned), as a `char *` C expression."""
        off = self.scratch_top
        self.scratch_top += (size + 7) // 8 * 8
        if self.scratch_top > SCRATCH_LIMIT:
            raise DCompileError(f"the clauses on {self.binding.attach.describe()} need more "
                                f"than {SCRATCH_LIMIT} bytes of string and key space",
                                self.clause.clause.span if self.clause else None,
                                hint="lower strsize (-x strsize=128) or split the clauses")
        self.uses.add("scratch")
        return f"(dt_s + {off})"

    def refuse_foreign_stack(self, what: str, span) -> None:
        """stack(), ustack() and the depths read the current thread's stacks: refused
        where the probe describes another thread (Binding.thread) that cannot have its
        stacks taken."""
        thread = self.binding.thread
        if thread is not None and thread.stacks:
            raise DCompileError(f"{what} is not available at {self.binding.probes[0].description}: "
                                f"{thread.stacks}", span)

    def shared_buffer(self, name: str, size: int) -> str:
        """The scratch buffer `name`, the same for every clause of this function: state a
        subroutine keeps from one call to the next (strtok's string and position). The
        scratch map is per CPU and outlives a firing, as DTrace's per-CPU state does."""
        if name not in self.shared:
            self.shared[name] = self.alloc(size)
        self.uses.add("scratch")
        return self.shared[name]

    def fault(self, kind: int, addr: str) -> str:
        """C statement reporting a fault at the current action and leaving the clause."""
        assert self.clause is not None
        self.uses.add("fault")
        self.faulted.add(self.clause.index)
        act = 0 if self.in_predicate else self.action_no
        return f"DT_FAULT({kind}, {addr}, {act}, dt_fault_{self.clause.index});"
