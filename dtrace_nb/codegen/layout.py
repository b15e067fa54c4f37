"""Resource analysis: which maps a program needs and the byte layout of everything the
kernel hands to user space (aggregation keys and values, trace records).

Separate from emission (as bpftrace separates its resource analyser from codegen): the
emitter writes C from these layouts and the runtime decodes kernel bytes with the same
layouts, so the two can never disagree. Every field is 8-byte aligned and sized, so C
struct layout and these offsets coincide without packing attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.lang import ast
from dtrace_nb.lang.check import ACTIONS, AggInfo, CheckedProgram, flat_statements
from dtrace_nb.lang.types import DType, IntType, StringType

QUANTIZE_BUCKETS = 127
REC_HEADER = 16  # u32 epid, u32 cpu, u32 probe index, u32 pad

# Value fields per aggregating function (all u64/s64, zero-initialised).
AGG_VALUE_FIELDS: dict[str, tuple[tuple[str, str, int], ...]] = {
    "count": (("v", "u64", 1),),
    "sum": (("v", "s64", 1),),
    "min": (("n", "u64", 1), ("v", "s64", 1)),
    "max": (("n", "u64", 1), ("v", "s64", 1)),
    "avg": (("n", "u64", 1), ("v", "s64", 1)),
    # 128 slots (127 used) so the index can be bounded with a mask the verifier accepts.
    "quantize": (("b", "u64", 128),),
}


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


@dataclass(frozen=True)
class Field:
    """One field of a key or record: an integer (8 bytes) or a string buffer."""

    name: str
    offset: int
    size: int
    dtype: DType

    @property
    def is_string(self) -> bool:
        return isinstance(self.dtype, StringType)

    @property
    def signed(self) -> bool:
        return isinstance(self.dtype, IntType) and self.dtype.signed

    def c_decl(self) -> str:
        if self.is_string:
            return f"char {self.name}[{self.size}];"
        return f"{'s64' if self.signed else 'u64'} {self.name};"


def _fields(types: list[DType], prefix: str, start: int = 0) -> tuple[list[Field], int]:
    out, off = [], start
    for i, t in enumerate(types):
        size = _round8(t.size) if isinstance(t, StringType) else 8
        out.append(Field(f"{prefix}{i}", off, size, t))
        off += size
    return out, off


@dataclass
class AggLayout:
    info: AggInfo
    map_name: str
    key_fields: list[Field]
    value_fields: tuple[tuple[str, str, int], ...]
    value_size: int
    max_entries: int

    @property
    def keyless(self) -> bool:
        return not self.key_fields

    @property
    def key_struct(self) -> str:
        return f"{self.map_name}_key"

    @property
    def value_struct(self) -> str:
        return f"{self.map_name}_val"


@dataclass
class RecordAction:
    """What the consumer does with a record's fields: 'printf' (fmt), 'trace', 'exit',
    or 'default' (DTrace's default action: the probe line only)."""

    kind: str
    fields: list[int]
    fmt: str = ""


@dataclass
class RecordLayout:
    epid: int
    clause: int
    struct_name: str
    fields: list[Field] = field(default_factory=list)
    actions: list[RecordAction] = field(default_factory=list)
    size: int = REC_HEADER


@dataclass
class Resources:
    aggs: dict[str, AggLayout]
    records: dict[int, RecordLayout]  # by clause index
    ringbuf_pages: int
    zero_size: int  # bytes of the shared zero value for large aggregation values
    # the Field each action argument is stored in, keyed by id() of the argument node
    record_slots: dict[int, int] = field(default_factory=dict)


def analyse(checked: CheckedProgram) -> Resources:
    aggs: dict[str, AggLayout] = {}
    max_entries = int(checked.options["aggkeys"])
    for info in checked.aggregations.values():
        keys, _ = _fields(info.key_types, "k")
        vfields = AGG_VALUE_FIELDS[info.func]
        vsize = sum(8 * n for _, _, n in vfields)
        aggs[info.name] = AggLayout(info, f"dtnb_agg{info.index}", keys, vfields, vsize,
                                    max_entries)
    records: dict[int, RecordLayout] = {}
    slots: dict[int, int] = {}
    for c in checked.clauses:
        if not c.has_data:
            continue
        rec = RecordLayout(epid=c.index + 1, clause=c.index, struct_name=f"dtnb_rec{c.index}")
        _record_actions(c.clause, rec, slots)
        records[c.index] = rec
    bufsize = int(checked.options["bufsize"])
    pages = 1
    while pages * 4096 < bufsize:
        pages *= 2
    zero = max((a.value_size for a in aggs.values() if a.value_size > 128), default=0)
    return Resources(aggs, records, pages, zero, slots)


def _record_actions(clause: ast.Clause, rec: RecordLayout, slots: dict[int, int]) -> None:
    if clause.default_action or not clause.body:
        rec.actions.append(RecordAction("default", []))
        return

    def add(e: ast.Expr) -> int:
        idx = len(rec.fields)
        t = e.ty
        size = _round8(t.size) if isinstance(t, StringType) else 8
        rec.fields.append(Field(f"f{idx}", rec.size, size, t))
        rec.size += size
        slots[id(e)] = idx
        return idx

    for stmt in flat_statements(clause.body):
        if not (isinstance(stmt, ast.ExprStmt) and isinstance(stmt.expr, ast.Call)):
            continue
        call = stmt.expr
        if call.name not in ACTIONS:
            continue
        if call.name == "printf":
            fmt = call.args[0]
            rec.actions.append(RecordAction("printf", [add(a) for a in call.args[1:]],
                                            fmt.value if isinstance(fmt, ast.StrLit) else ""))
        else:
            rec.actions.append(RecordAction(call.name, [add(call.args[0])]))


def record_slot(res: Resources, e: ast.Expr) -> Optional[int]:
    return res.record_slots.get(id(e))
