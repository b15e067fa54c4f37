"""Resource analysis: which maps a program needs and the byte layout of everything the
kernel hands to user space (aggregation keys and values, trace records) or keeps for the
program (variables).

Separate from emission (as bpftrace separates its resource analyser from codegen): the
emitter writes C from these layouts and the runtime decodes kernel bytes with the same
layouts, so the two can never disagree. Every field is 8-byte aligned and sized, so C
struct layout and these offsets coincide without packing attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import RECORDING_ACTIONS
from dtrace_nb.lang.check import (
    AggInfo,
    Annotations,
    CheckedProgram,
    Variable,
    const_value,
    flat_statements,
)
from dtrace_nb.lang.decltypes import ArrayType, StructType, size_of
from dtrace_nb.lang.types import DType, IntType, StackType, StringType
from dtrace_nb.aggregate import buckets  # the one model of the buckets (imports nothing)

QUANTIZE_BUCKETS = buckets.QUANTIZE_NBUCKETS
# Record header: u32 epid, u32 cpu, u32 probe index, u32 speculation id, u64 mask of the
# actions that ran (actions under an `if` may not).
REC_HEADER = 24
HEADER_FIELDS = ("u32 epid;", "u32 cpu;", "u32 pidx;", "u32 spec;", "u64 mask;")
# An error record (epid 0) reports a fault: the faulting clause's epid, fault kind,
# address and action number, for DTrace's message and the ERROR probe.
ERROR_EPID = 0
MAX_ACTIONS = 64


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def lquantize_levels(params: tuple[int, ...]) -> int:
    base, limit, step = params
    return (limit - base) // step


def llquantize_nbuckets(params: tuple[int, ...]) -> int:
    """Buckets of llquantize(factor, low, high, nsteps), underflow and overflow included:
    DTrace's count (the bucket of INT64_MAX plus one), from the one model of its bucket
    function (aggregate/buckets.py), which the kernel-side C in aggregate.h mirrors."""
    return buckets.llquantize_nbuckets(*params)


def agg_value_fields(info: AggInfo) -> tuple[tuple[str, str, int], ...]:
    """Value fields per aggregating function (all u64/s64, zero-initialised)."""
    f = info.func
    if f == "count":
        return (("v", "u64", 1),)
    if f == "sum":
        return (("v", "s64", 1),)
    if f in ("min", "max", "avg"):
        return (("n", "u64", 1), ("v", "s64", 1))
    if f == "stddev":
        # count, sum, and the 128-bit sum of squares as (low, high) words
        return (("n", "u64", 1), ("v", "s64", 1), ("sq", "u64", 2))
    if f == "quantize":
        # 128 slots (127 used) so the index can be bounded with a mask the verifier accepts.
        return (("b", "u64", 128),)
    if f == "lquantize":
        return (("b", "u64", next_pow2(lquantize_levels(info.params) + 2)),)
    if f == "llquantize":
        return (("b", "u64", next_pow2(llquantize_nbuckets(info.params))),)
    raise ValueError(f)


@dataclass(frozen=True)
class Field:
    """One field of a key or record: an integer (8 bytes) or a string/byte buffer."""

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
        if isinstance(self.dtype, (StructType, ArrayType)):  # a struct's or array's bytes
            return f"u8 {self.name}[{self.size}];"
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

    @property
    def nbuckets(self) -> int:
        f = self.info.func
        if f == "quantize":
            return QUANTIZE_BUCKETS
        if f == "lquantize":
            return lquantize_levels(self.info.params) + 2
        if f == "llquantize":
            return llquantize_nbuckets(self.info.params)
        return 0


@dataclass
class VarLayout:
    """Where a variable lives: a field of the global or clause-local struct, or its own
    hash map (thread-local: keyed by thread; associative: keyed by its key tuple)."""

    var: Variable
    storage: str  # 'global', 'this', 'self', 'assoc'
    field: Field  # the value (in the struct, or the map value's only field `v`)
    map_name: str = ""
    key_fields: list[Field] = field(default_factory=list)
    max_entries: int = 0

    @property
    def key_struct(self) -> str:
        return f"{self.map_name}_key"

    @property
    def value_struct(self) -> str:
        return f"{self.map_name}_val"


@dataclass
class RecordAction:
    """What the consumer does with a record's fields. Kinds: 'printf' (fmt), 'trace',
    'tracemem', 'stack'/'ustack', 'printa' (fmt, aggs), 'exit', 'clear', 'trunc',
    'normalize', 'denormalize', 'setopt' (args), 'commit', 'discard', 'system' (fmt), or
    'default' (DTrace's default action: the probe line only)."""

    kind: str
    fields: list[int]
    fmt: Optional[str] = None
    aggs: list[str] = field(default_factory=list)
    args: list = field(default_factory=list)
    bit: int = 0


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
    record_slots: dict = field(default_factory=dict)
    # the RecordAction of each action call, keyed by id() of the call node
    action_of: dict[int, RecordAction] = field(default_factory=dict)
    vars: dict[tuple[str, str], VarLayout] = field(default_factory=dict)
    strsize: int = 256
    strbuf: int = 256
    nspec: int = 1
    stack_entries: int = 0  # BPF_STACK_TRACE map entries (0: no stack() in the program)
    stackframes: int = 127
    ustackframes: int = 127

    @property
    def globals(self) -> list[VarLayout]:
        return [v for v in self.vars.values() if v.storage == "global"]

    @property
    def locals(self) -> list[VarLayout]:
        return [v for v in self.vars.values() if v.storage == "this"]


def analyse(checked: CheckedProgram) -> Resources:
    opts = checked.options
    aggs: dict[str, AggLayout] = {}
    max_entries = int(opts["aggkeys"])
    for info in checked.aggregations.values():
        keys, _ = _fields(info.key_types, "k")
        vfields = agg_value_fields(info)
        vsize = sum(8 * n for _, _, n in vfields)
        aggs[info.name] = AggLayout(info, f"dtnb_agg{info.index}", keys, vfields, vsize,
                                    max_entries)
    strsize = int(opts["strsize"])
    strbuf = next_pow2(max(strsize, 16))
    res = Resources(aggs, {}, 1, 0, strsize=strsize, strbuf=strbuf,
                    nspec=max(1, int(opts["nspec"])),
                    stackframes=min(127, int(opts["stackframes"])),
                    ustackframes=min(127, int(opts["ustackframes"])))
    _variables(checked, res)
    for c in checked.clauses:
        if not c.has_data:
            continue
        rec = RecordLayout(epid=c.index + 1, clause=c.index, struct_name=f"dtnb_rec{c.index}")
        _record_actions(c.clause, rec, res, checked.annotations, c.records_default)
        res.records[c.index] = rec
    if any(a.kind in ("stack", "ustack") for r in res.records.values() for a in r.actions) \
            or any(getattr(f.dtype, "name", "") in ("stack", "ustack")  # printf's %k
                   for r in res.records.values() for f in r.fields) \
            or any(isinstance(f.dtype, StackType) for a in aggs.values() for f in a.key_fields):
        res.stack_entries = 4096
    bufsize = int(opts["bufsize"])
    pages = 1
    while pages * 4096 < bufsize:
        pages *= 2
    res.ringbuf_pages = pages
    res.zero_size = max((a.value_size for a in aggs.values() if a.value_size > 128), default=0)
    return res


def _var_value_field(t: DType, strbuf: int, name: str) -> Field:
    if isinstance(t, StringType):
        return Field(name, 0, strbuf, StringType(strbuf))
    if isinstance(t, (StructType, ArrayType)):
        return Field(name, 0, _round8(max(1, size_of(t) or 1)), t)
    return Field(name, 0, 8, t)


def _variables(checked: CheckedProgram, res: Resources) -> None:
    # DTrace's dynvarsize is the space of all dynamic variables (thread-local and
    # associative) together; here each has a map of its own, so each gets an equal share
    dynamic = sum(1 for v in checked.variables.values()
                  if v.scope == "self" or (v.scope == "global" and v.is_assoc))
    dynvarsize = int(checked.options["dynvarsize"]) // max(1, dynamic)
    for key, var in checked.variables.items():
        fname = f"v{var.index}_{var.name}"
        in_struct = var.scope == "this" or (var.scope == "global" and not var.is_assoc)
        value = _var_value_field(var.type, res.strbuf, fname if in_struct else "v")
        if var.scope == "global" and not var.is_assoc:
            res.vars[key] = VarLayout(var, "global", value)
        elif var.scope == "this":
            res.vars[key] = VarLayout(var, "this", value)
        else:
            storage = "self" if var.scope == "self" else "assoc"
            keys, start = [], 0
            if storage == "self":  # a thread-local array: the thread, then its keys
                keys, start = [Field("tid", 0, 8, IntType(8, False, "u64"))], 8
            if var.is_assoc:
                more, _ = _fields([StringType(res.strbuf) if t.is_string else t
                                   for t in var.key_types], "k", start)
                keys += more
            entry = sum(f.size for f in keys) + value.size + 64  # + kernel overhead
            entries = max(1, min(65536, dynvarsize // entry))
            res.vars[key] = VarLayout(var, storage, value,
                                      f"dtnb_{storage}{var.index}_{var.name}", keys, entries)


def _record_actions(clause: ast.Clause, rec: RecordLayout, res: Resources,
                    ann: Annotations, records_default: bool) -> None:
    if records_default:
        rec.actions.append(RecordAction("default", []))
        return

    def add(e: ast.Expr, t: Optional[DType] = None, size: int = 0, key=None) -> int:
        idx = len(rec.fields)
        t = t or ann.type(e)
        if not size:
            size = _round8(t.size) if isinstance(t, StringType) else 8
        rec.fields.append(Field(f"f{idx}", rec.size, size, t))
        rec.size += size
        res.record_slots[key if key is not None else id(e)] = idx
        return idx

    for stmt in flat_statements(clause.body):
        if not (isinstance(stmt, ast.ExprStmt) and isinstance(stmt.expr, ast.Call)):
            continue
        call = stmt.expr
        if call.name not in RECORDING_ACTIONS:
            continue
        bit = len(rec.actions)
        if bit >= MAX_ACTIONS:
            raise DCompileError(f"a clause may have at most {MAX_ACTIONS} actions", call.span)
        action = _record_action(call, add, ann)
        action.bit = bit
        rec.actions.append(action)
        res.action_of[id(call)] = action


def _record_action(call: ast.Call, add, ann: Annotations) -> RecordAction:
    name = call.name
    if name in ("printf", "system"):
        fmt = call.args[0]
        fields = []
        for a in call.args[1:]:
            if isinstance(a, ast.Call) and a.name in ("stack", "ustack"):
                fields.append(add(a, IntType(8, False, a.name)))
                fields.append(add(a, IntType(8, False, "pid"), key=("pid", id(a))))
            else:
                fields.append(add(a))
        return RecordAction(name, fields, fmt.value)
    if name == "printa":
        fmt = call.args[0].value if isinstance(call.args[0], ast.StrLit) else None
        aggs = [a.name for a in call.args if isinstance(a, ast.AggRef)]
        return RecordAction("printa", [], fmt, aggs)
    if name == "trace":
        return RecordAction("trace", [add(call.args[0])])
    if name == "tracemem":
        size = const_value(call.args[1], ann) or 0
        fields = [add(call.args[1], StringType(_round8(max(size, 1))), _round8(max(size, 1)))]
        if len(call.args) == 3:
            fields.append(add(call.args[2]))
        return RecordAction("tracemem", fields, args=[size])
    if name in ("stack", "ustack"):
        args = [const_value(a, ann) for a in call.args]
        fields = [add(call, IntType(8, False, name)),
                  add(call, IntType(8, False, "pid"), key=("pid", id(call)))]
        return RecordAction(name, fields, args=args)
    if name == "exit":
        return RecordAction("exit", [add(call.args[0])])
    if name in ("clear", "denormalize"):
        return RecordAction(name, [], aggs=[call.args[0].name])
    if name == "trunc":
        fields = [add(call.args[1])] if len(call.args) == 2 else []
        return RecordAction("trunc", fields, aggs=[call.args[0].name])
    if name == "normalize":
        return RecordAction("normalize", [add(call.args[1])], aggs=[call.args[0].name])
    if name == "setopt":
        return RecordAction("setopt", [], args=[a.value for a in call.args])
    if name in ("commit", "discard"):
        return RecordAction(name, [add(call.args[0])])
    raise ValueError(name)


def pid_slot(res: Resources, e: ast.Expr) -> Optional[int]:
    """The record field holding the pid that goes with a stack id (for ustack symbols)."""
    return res.record_slots.get(("pid", id(e)))


def record_slot(res: Resources, e: ast.Expr) -> Optional[int]:
    return res.record_slots.get(id(e))
