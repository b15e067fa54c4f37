"""The statements of a clause that are actions: data-recording actions (fields of the
clause's record), actions the kernel carries out (speculate, raise, stop, copyout), and
aggregating statements (`@name[keys] = func(x)`: a per-CPU map update).
"""

from __future__ import annotations

from dtrace_nb.codegen.cwriter import CWriter, if_stmt, stmt_expr
from dtrace_nb.codegen.expressions import ExprEmitter
from dtrace_nb.codegen.function import FunctionState
from dtrace_nb.codegen.layout import AggLayout, pid_slot, record_slot
from dtrace_nb.errors import DCompileError
from dtrace_nb.faults import FLT_BADADDR
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import AGG_INCREMENT
from dtrace_nb.lang.check import const_value
from dtrace_nb.lang.check.aggregations import increment
from dtrace_nb.lang.types import StackType

# actions whose arguments are all recorded as fields (printf and system after the format,
# trunc and normalize after the aggregation)
_FIELD_ACTIONS = ("printf", "system", "trace", "exit", "trunc", "normalize", "commit",
                  "discard")
KERNEL_ACTIONS = ("speculate", "raise", "stop", "copyout", "copyoutstr")
SIGSTOP = 19


class ActionEmitter:
    def __init__(self, w: CWriter, fs: FunctionState, x: ExprEmitter):
        self.w = w
        self.fs = fs
        self.x = x

    # -- recording actions ---------------------------------------------------------------

    def record_action(self, call: ast.Call) -> None:
        w, fs = self.w, self.fs
        rec, r = fs.rec, fs.rec_var
        assert rec is not None
        action = fs.res.action_of[id(call)]
        w.line(f"{r}->mask |= {1 << action.bit}ULL;")
        name = call.name
        if name in _FIELD_ACTIONS:
            args = call.args[1:] if name in ("printf", "system", "trunc", "normalize") \
                else call.args
            for a in args:
                if isinstance(a, ast.Call) and a.name in ("stack", "ustack"):
                    self.store_stack(a)
                else:
                    self.store_field(a)
            if name == "exit":
                w.line("dt_set_exiting();")
            if name in ("commit", "discard"):
                fs.uses.add("spec")
                v = f"{r}->{rec.fields[record_slot(fs.res, call.args[0])].name}"
                w.line(f"dt_spec_release((u32){v});")
        elif name == "tracemem":
            f = rec.fields[record_slot(fs.res, call.args[1])]
            addr = self.x.int_expr(call.args[0])
            w.line(if_stmt(f"bpf_probe_read_kernel(&{r}->{f.name}, {f.size}, "
                           f"(void *)({addr})) < 0", [fs.fault(FLT_BADADDR, addr)]))
            if len(call.args) == 3:
                self.store_field(call.args[2])
        elif name in ("stack", "ustack"):
            self.store_stack(call)

    def store_field(self, a: ast.Expr) -> None:
        fs = self.fs
        assert fs.rec is not None
        f = fs.rec.fields[record_slot(fs.res, a)]
        dst = f"{fs.rec_var}->{f.name}"
        if f.is_string:
            self.w.lines(self.x.store_string(self.x.str_val(a), dst, f.size))
        else:
            self.w.line(f"{dst} = ({'s64' if f.signed else 'u64'})({self.x.int_expr(a)});")

    def store_stack(self, call: ast.Call) -> None:
        fs = self.fs
        if fs.binding.thread is not None:
            fs.refuse_foreign_stack(f"{call.name}()", call.span)
        assert fs.rec is not None
        f = fs.rec.fields[record_slot(fs.res, call)]
        pf = fs.rec.fields[pid_slot(fs.res, call)]
        flags = kernel_stack_flags(fs, call.name == "ustack")
        r = fs.rec_var
        self.w.line(f"{r}->{f.name} = (u64)(s64)dtnb_stacks.get_stackid(ctx, {flags});")
        self.w.line(f"{r}->{pf.name} = bpf_get_current_pid_tgid() >> 32;")

    # -- actions the kernel carries out ----------------------------------------------------

    def kernel_action(self, call: ast.Call) -> None:
        w, x = self.w, self.x
        if call.name == "speculate":
            self.fs.uses.add("spec")
            w.line(f"{self.fs.rec_var}->spec = (u32)({x.int_expr(call.args[0])});")
        elif call.name == "raise":
            w.line(f"bpf_send_signal((u32)({x.int_expr(call.args[0])}));")
        elif call.name == "stop":
            w.line(f"bpf_send_signal({SIGSTOP}); /* SIGSTOP */")
        elif call.name == "copyout":
            buf = x.int_expr(call.args[0])
            addr = x.int_expr(call.args[1])
            size = const_value(call.args[2], self.fs.ann)
            if size is None or not 0 < size <= 4096:
                raise DCompileError("copyout() size must be a constant between 1 and 4096",
                                    call.args[2].span)
            w.line(f"bpf_probe_write_user((void *)({addr}), (void *)({buf}), {size});")
        elif call.name == "copyoutstr":
            v = x.materialize(x.str_val(call.args[0]))
            addr = x.int_expr(call.args[1])
            w.line(f"bpf_probe_write_user((void *)({addr}), {v}, "
                   f"{min(self.fs.res.strsize, 256)});")

    # -- aggregations ----------------------------------------------------------------------

    def aggregate(self, agg: AggLayout, keys: list[ast.Expr], call: ast.Call) -> None:
        w, x = self.w, self.x
        with w.block():
            key = "&dt_zero" if agg.keyless else self.agg_key(agg, keys)
            if call.args:
                w.line(f"s64 dt_x = (s64)({x.int_expr(call.args[0])});")
            if call.name in AGG_INCREMENT:
                incr = increment(call)
                value = "1" if incr is None else f"(s64)({x.int_expr(incr)})"
                w.line(f"s64 dt_incr = {value};")
            w.line(f"struct {agg.value_struct} *dt_v = {agg.map_name}.lookup({key});")
            if not agg.keyless:
                with w.block("if (!dt_v)"):
                    if agg.value_size > 128:
                        w.line("void *dt_zv = dtnb_zero.lookup(&dt_zero);")
                        w.line(if_stmt("dt_zv", [f"{agg.map_name}.insert({key}, dt_zv);"]))
                    else:
                        w.line(f"struct {agg.value_struct} dt_init = {{}};")
                        w.line(f"{agg.map_name}.insert({key}, &dt_init);")
                    w.line(f"dt_v = {agg.map_name}.lookup({key});")
            w.line(if_stmt("!dt_v", ["dt_drop(DT_DROP_AGG);"], agg_update(agg)))

    def agg_key(self, agg: AggLayout, keys: list[ast.Expr]) -> str:
        """Fill the key struct (on the stack, or in scratch when large); its address."""
        w, x = self.w, self.x
        size = sum(f.size for f in agg.key_fields)
        if size > 64:
            w.line(f"struct {agg.key_struct} *dt_k = (void *){self.fs.alloc(size)};")
            w.line("__builtin_memset(dt_k, 0, sizeof(*dt_k));")
            kref, key = "dt_k->", "dt_k"
        else:
            w.line(f"struct {agg.key_struct} dt_kv;")
            w.line("__builtin_memset(&dt_kv, 0, sizeof(dt_kv));")
            kref, key = "dt_kv.", "&dt_kv"
        for f, k in zip(agg.key_fields, keys):
            if f.is_string:
                w.lines(x.store_string(x.str_val(k), f"{kref}{f.name}", f.size))
            elif isinstance(f.dtype, StackType):
                self.fs.refuse_foreign_stack(f"{f.dtype.kind}()", k.span)
                w.line(f"{kref}{f.name} = {stack_key(f.dtype, self.fs)};")
            else:
                w.line(f"{kref}{f.name} = ({'s64' if f.signed else 'u64'})({x.int_expr(k)});")
        return key


def agg_update(agg: AggLayout) -> list[str]:
    """Statements folding dt_x into the value dt_v points to."""
    f = agg.info.func
    if f == "count":
        return ["dt_v->v += 1;"]
    if f == "sum":
        return ["dt_v->v += dt_x;"]
    if f in ("min", "max"):
        better = "<" if f == "min" else ">"
        return [if_stmt(f"dt_v->n == 0 || dt_x {better} dt_v->v", ["dt_v->v = dt_x;"]),
                "dt_v->n += 1;"]
    if f == "avg":
        return ["dt_v->n += 1;", "dt_v->v += dt_x;"]
    if f == "stddev":
        return ["dt_v->n += 1;", "dt_v->v += dt_x;", "dt_add_square(dt_v->sq, dt_x);"]
    if f == "quantize":
        return ["dt_v->b[dt_quantize_bucket(dt_x) & 127] += dt_incr;"]
    mask = agg.value_fields[0][2] - 1
    if f == "lquantize":
        base, limit, step = agg.info.params
        levels = (limit - base) // step
        return [f"dt_v->b[dt_lquantize_bucket(dt_x, {base}LL, {levels}, {step}LL) & {mask}] "
                "+= dt_incr;"]
    if f == "llquantize":
        factor, low, high, nsteps = agg.info.params
        return [f"dt_v->b[dt_llquantize_bucket(dt_x, {factor}, {low}, {high}, {nsteps}) & "
                f"{mask}] += dt_incr;"]
    raise ValueError(f)


def kernel_stack_flags(fs: FunctionState, user: bool) -> str:
    """bpf_get_stackid()/bpf_get_stack() flags: the user stack, or the kernel stack
    without the binding's mechanism frames (Binding.kernel_stack_skip)."""
    if user:
        return "BPF_F_USER_STACK"
    return str(fs.binding.kernel_stack_skip & 0xff)  # BPF_F_SKIP_FIELD_MASK


def stack_key(t: StackType, fs: FunctionState) -> str:
    """C for a stack()/ustack() aggregation key: the stack id in the low 32 bits (all ones
    when the stack could not be taken), and for ustack the process id above it, which the
    consumer needs to find the process's symbols."""
    flags = kernel_stack_flags(fs, t.kind == "ustack")
    sid = stmt_expr([f"int dt_sid = dtnb_stacks.get_stackid(ctx, {flags});"],
                    "dt_sid < 0 ? 0xffffffffULL : (u64)dt_sid")
    if t.kind == "ustack":
        return f"((bpf_get_current_pid_tgid() >> 32) << 32 | {sid})"
    return sid
