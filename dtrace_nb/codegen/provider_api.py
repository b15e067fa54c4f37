"""The code-generation API for providers.

A provider's `Binding` (dtrace_nb.probes) is C that the compiler places in the BPF
function it generates: the function's parameter, prologue statements, one expression per
argument, and for a translated argument (psinfo_t *, bufinfo_t *...) how each member is
read. Providers write that C with the functions here, each of which returns a C
expression or statement (a str) and says what it means; the compiler keeps the right to
change its prelude and the shape of the function, and only this module follows it.

- Expressions are u64 unless a `ctype` is given.
- Reads of kernel or user memory are safe: a bad address reads as 0, never an unchecked
  dereference. Offsets of kernel structures come from the running kernel's BTF
  (dtrace_nb.runtime.btf); providers look them up and pass them in.
- Locals a provider declares are named through `local()`, which keeps them apart from the
  compiler's own.
- A prologue statement runs before any clause, in declaration order; `skip_if()` ends the
  firing there (the probe's event did not happen: a filter).

See providers/README.md for how a provider is written with it.
"""

from __future__ import annotations

from typing import Callable, Iterable

from dtrace_nb.codegen.cwriter import if_stmt, stmt_expr
from dtrace_nb.probes import AddressText, ArgInfo, MemberInfo, ThreadContext

# -- the function's parameter (Binding.ctx_decl), by attach mechanism ------------------------

RAW_TRACEPOINT_CTX = "struct bpf_raw_tracepoint_args *ctx"
PT_REGS_CTX = "struct pt_regs *ctx"  # kprobes, uprobes
PERF_EVENT_CTX = "struct bpf_perf_event_data *ctx"
TRAMPOLINE_CTX = "unsigned long long *ctx"  # fentry / fexit
PT_REGS_INCLUDES = ("uapi/linux/ptrace.h",)


def _perf_event_context() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A perf event program's context: (includes, declarations).

    <uapi/linux/bpf_perf_event.h> pulls the kernel's own <asm/ptrace.h> and what it
    includes: 2-3 s of every compile of a profile or vminfo program here, where a whole
    syscall program takes under 1 s. Where the uapi's bpf_user_pt_regs_t is known, the
    struct is declared after <uapi/linux/ptrace.h> instead (its layout is the uapi's, which
    the verifier checks every access against); elsewhere the header is included."""
    import platform

    regs = {"x86_64": "struct pt_regs", "aarch64": "struct user_pt_regs"}.get(
        platform.machine())
    if regs is None:
        return ("uapi/linux/bpf_perf_event.h",), ()
    return PT_REGS_INCLUDES, (
        "struct bpf_perf_event_data {\n"
        f"\t{regs} regs;  /* bpf_user_pt_regs_t */\n"
        "\t__u64 sample_period;\n"
        "\t__u64 addr;\n"
        "};",)


PERF_EVENT_INCLUDES, PERF_EVENT_DECLARATIONS = _perf_event_context()


def tracepoint_ctx(struct_name: str) -> str:
    """A tracepoint program's parameter: its record, as the struct the provider declares."""
    return f"struct {struct_name} *ctx"


# -- fetching arguments from the context --------------------------------------------------

def raw_tracepoint_arg(i: int) -> str:
    """Argument `i` of a raw tracepoint (the tracepoint's C prototype, in order)."""
    return f"ctx->args[{i}]"


def register(reg: str) -> str:
    """A register of a pt_regs context (kprobe, uprobe): 'di', 'si', 'ax', 'r8'..."""
    return f"ctx->{reg}"


def trampoline_arg(i: int) -> str:
    """Argument `i` of an fentry/fexit program (fexit: the return value follows the
    function's arguments)."""
    return f"ctx[{i}]"


def perf_event_register(reg: str) -> str:
    """A register of the interrupted context of a perf event ('ip', 'cs'...)."""
    return f"ctx->regs.{reg}"


def tracepoint_record() -> str:
    """The address of a tracepoint program's record (its context)."""
    return "((u64)ctx)"


def tracepoint_field(member: str) -> str:
    """A member of a tracepoint program's record struct, as declared by the provider."""
    return f"ctx->{member}"


def tracepoint_field_address(member: str) -> str:
    """The address of a member of the record (arrays: strings, buffers)."""
    return f"((u64){tracepoint_field(member)})"


def tracepoint_data_loc(member: str) -> str:
    """The address of a `__data_loc` field's data (the member holds its offset from the
    record's start in its low 16 bits)."""
    return f"((u64)ctx + ({tracepoint_field(member)} & 0xffff))"


def saved_user_regs() -> str:
    """Prologue statement of a raw syscall tracepoint (sys_enter, sys_exit): the task's
    saved user registers (its argument 0), read with `saved_register()`."""
    return declare("struct pt_regs *", "regs", f"(struct pt_regs *){raw_tracepoint_arg(0)}")


def saved_register(reg: str) -> str:
    """A register of the saved user registers (needs `saved_user_regs()` first)."""
    return kernel_read(f"&{local('regs')}->{reg}")


# -- memory ------------------------------------------------------------------------------

def kernel_read(addr: str, ctype: str = "") -> str:
    """The 8 bytes of kernel memory at `addr` (0 if unreadable), as `ctype` if given (the
    low bytes: a u32/s32 member is read this way)."""
    value = f"dt_kread_u64((void *)({addr}))"
    return f"(({ctype}){value})" if ctype else value


def struct_member(ptr: str, offset: int, ctype: str = "") -> str:
    """A member at byte `offset` of the kernel struct at `ptr`, read safely."""
    return kernel_read(member_address(ptr, offset), ctype)


def member_address(ptr: str, offset: int) -> str:
    """The address of the member at byte `offset` of the struct at `ptr` (for an array
    member, such as task_struct.comm, whose bytes the compiler copies itself)."""
    return f"(({ptr}) + {offset})"


def user_read(addr: str, ctype: str) -> str:
    """A `ctype` (u8..u64, s8..s64) of the traced process's memory at `addr` (0 if
    unreadable)."""
    v = local("v")
    return stmt_expr([f"{ctype} {v} = 0;",
                      f"bpf_probe_read_user(&{v}, sizeof({v}), (void *)({addr}));"], v)


# -- the current thread -------------------------------------------------------------------

CURRENT_TASK = "bpf_get_current_task()"
# the cookie the attachment gave this firing (a uprobe_multi offset's): a Selector's expr
ATTACH_COOKIE = "bpf_get_attach_cookie(ctx)"
CURRENT_TGID = "(bpf_get_current_pid_tgid() >> 32)"
CURRENT_TID = "((u32)bpf_get_current_pid_tgid())"


# -- values --------------------------------------------------------------------------------

def widen(expr: str, ctype: str) -> str:
    """`expr` truncated to the integer type `ctype` ('s32', 'u16'...) and extended to 64
    bits as its signedness says."""
    return f"(u64)(s64)({ctype})({expr})" if ctype.startswith("s") else f"(u64)({ctype})({expr})"


def let(ctype: str, name: str, value: str, result: str) -> str:
    """An expression that computes `value` once into the local `name` (see `local()`) and
    gives `result`, which may use it several times."""
    return stmt_expr([f"{ctype} {local(name)} = {value};"], result)


# -- prologue statements ------------------------------------------------------------------

def local(name: str) -> str:
    """The C name of a provider's local `name` (declared by `declare()` or `let()`), or of
    a helper function it declares at file scope (Binding.declarations)."""
    return f"dtp_{name}"


def declare(ctype: str, name: str, value: str) -> str:
    """Prologue statement declaring the local `name`, for arguments and filters to use."""
    sep = "" if ctype.endswith("*") else " "
    return f"{ctype}{sep}{local(name)} = {value};"


def skip_if(cond: str) -> str:
    """Prologue statement ending the firing when `cond` holds: no clause runs."""
    return if_stmt(cond, ["return 0;"])


def skip_unless(cond: str) -> str:
    return skip_if(f"!({cond})")


# -- translated arguments ----------------------------------------------------------------

def member(name: str, dtrace_type: str, read: Callable[[str], str],
           string_size: int = 0) -> MemberInfo:
    """A member of a translated argument: `read(arg)` is its C from the raw argument's C
    expression `arg` (a u64); for a "string" member, the kernel address of a
    NUL-terminated string of at most `string_size` bytes."""
    return MemberInfo(name, dtrace_type, read, string_size)


# address families of address_member(); NO_HEADER: the packet has no header of this
# kind (ipv4info_t of an IPv6 packet), "<null>" as the translator of a NULL header gives
AF_INET, AF_INET6, NO_HEADER = 2, 10, 0xFFFF
# the longest address text is 39 characters (eight groups of four hex digits)
ADDRESS_STRING_SIZE = 48


def address_member(name: str, family: str, v4: str = "0", v6: str = "0") -> MemberInfo:
    """A string member that is the text of an internet address (ipinfo_t's ip_saddr),
    formatted by the compiler's inet_ntoa()/inet_ntoa6(): `family` (AF_INET, AF_INET6,
    NO_HEADER, or another: "<unknown>"), `v4` the IPv4 address as a u32 in network order,
    `v6` the kernel address of the 16 bytes of an IPv6 address (read only for AF_INET6;
    IPv4-mapped and -compatible ones print as their dotted quad, inet_ntoa6's default).
    Each is C of the binding's context."""
    return MemberInfo(name, "string", lambda _arg: "0", ADDRESS_STRING_SIZE,
                      address=AddressText(lambda _arg: family, lambda _arg: v4,
                                          lambda _arg: v6))


def translated_arg(native_type: str, dtrace_type: str, members: Iterable[MemberInfo],
                   name: str = "") -> ArgInfo:
    """A probe argument scripts read through its members (`args[0]->pr_pid`)."""
    return ArgInfo(native_type, dtrace_type, name, members=tuple(members))


# -- the providers' block (engineer p): contexts, ... -------------------------------------

def thread_context(*, pid: str, tid: str, ppid: str, uid: str, gid: str, execname: str,
                   curthread: str, stacks: str = "") -> ThreadContext:
    """Binding.thread: the thread a probe's built-ins describe when the program runs in
    another (each a C expression; execname the kernel address of a 16-byte comm; `stacks`
    the reason stack()/ustack() cannot be taken for it, refused at compile time)."""
    return ThreadContext(pid=pid, tid=tid, ppid=ppid, uid=uid, gid=gid, execname=execname,
                         curthread=curthread, stacks=stacks)


def refused_member(name: str, dtrace_type: str, reason: str) -> MemberInfo:
    """A member of DTrace's translated type that this kernel's hook cannot supply: listed
    with its type, and a script reading it is refused at compile time with `reason`."""
    return MemberInfo(name, dtrace_type, lambda _arg: "0", 0, reason)


# Binding.kernel_stack_skip of a raw tracepoint program: the kernel stack taken in it
# starts with the program and bpf_trace_runN, then the traced site
RAW_TRACEPOINT_STACK_SKIP = 2
