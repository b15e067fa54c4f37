"""Abstract probes and the provider protocol.

The compiler sees only `Probe` (an id, a four-part description, argument types) and
`Binding` (how one BPF function receives a set of probes: its C context, a C expression
per argument, how to tell which probe fired). Everything about how a probe type fires and
attaches lives in a provider module under `providers/`, found through the
`dtrace_nb.providers` entry-point group; nothing in `dtrace_nb.lang` or `dtrace_nb.codegen`
names a provider.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from importlib import metadata
from collections.abc import Sequence
from typing import Any, Callable, Iterable, Optional, Protocol, runtime_checkable

from dtrace_nb.errors import DProbeError

ENTRY_POINT_GROUP = "dtrace_nb.providers"


@dataclass(frozen=True)
class AddressText:
    """A string member that is the text of an internet address, formatted by the
    compiler as dtrace-utils' translators do (inet_ntoa() for AF_INET, inet_ntoa6() for
    AF_INET6, "<null>" for a missing header, "<unknown>" for another family). Each is C
    of the raw argument's C expression: the family, the IPv4 address (a u32 in network
    order, as it lies in memory) and the kernel address of the 16-byte IPv6 address."""

    family: Callable[[str], str]
    v4: Callable[[str], str]
    v6: Callable[[str], str]


@dataclass(frozen=True)
class MemberInfo:
    """One member of a translated argument (DTrace's translators: `args[0]->pr_pid`).

    `read(arg)` is the C computing the member from `arg`, the C expression of the raw
    argument value (a u64). For `dtrace_type == "string"`, it is instead the kernel address
    of a NUL-terminated string of at most `string_size` bytes (the compiler copies it out).
    Providers build members with dtrace_nb.codegen.provider_api.member().
    """

    name: str
    dtrace_type: str
    read: Callable[[str], str]
    string_size: int = 0
    # why the kernel cannot supply this member here: a script reading it is refused at
    # compile time with this reason ("" for a member that is served)
    refused: str = ""
    # a string member the compiler formats from an address (then `read` is unused)
    address: Optional[AddressText] = None


@dataclass(frozen=True)
class ArgInfo:
    """One probe argument: the type the kernel hands over and the D type scripts see.

    `dtrace_type == "string"`: `args[N]` is a string and the binding's `arg_exprs[N]` is the
    kernel address of a NUL-terminated string of at most `string_size` bytes (e.g. a
    tracepoint's `__data_loc char[]` or `char comm[16]` field); `argN` stays that address.
    `user_string`: that address is in the traced process's memory, not the kernel's (a
    syscall's path argument).
    `members`: `args[N]` is a translated struct (e.g. psinfo_t *), read as `args[N]->member`.
    """

    native_type: str
    dtrace_type: str
    name: str = ""
    members: tuple[MemberInfo, ...] = ()
    string_size: int = 0
    user_string: bool = False


class LazyArgs(Sequence):
    """Probe arguments computed on first use: listing 100k kernel functions must not type
    every one of their arguments (fbt reads them from BTF only when a script uses them)."""

    def __init__(self, compute: Callable[[], tuple[ArgInfo, ...]]):
        self._compute: Optional[Callable[[], tuple[ArgInfo, ...]]] = compute
        self._args: tuple[ArgInfo, ...] = ()

    def _get(self) -> tuple[ArgInfo, ...]:
        if self._compute is not None:
            self._args, self._compute = tuple(self._compute()), None
        return self._args

    def __getitem__(self, i):  # type: ignore[override]
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


@dataclass(frozen=True)
class Probe:
    id: int
    provider: str
    module: str
    function: str
    name: str
    # a tuple, or LazyArgs; not part of a probe's identity (the id is)
    args: Sequence[ArgInfo] = field(default=(), compare=False)
    # Provider-private facts (a syscall number, a tracepoint path); opaque to the compiler.
    data: Any = field(default=None, compare=False, hash=False)

    @property
    def description(self) -> str:
        return f"{self.provider}:{self.module}:{self.function}:{self.name}"


# --------------------------------------------------------------------------- mechanisms
# How a Binding is attached. Providers pick one; the runtime knows how to attach each
# through bcc. Codegen never looks inside them.


@dataclass(frozen=True)
class Attach:
    mechanism = "abstract"

    def describe(self) -> str:
        return self.mechanism


@dataclass(frozen=True)
class TracepointAttach(Attach):
    category: str
    event: str
    mechanism = "tracepoint"

    def describe(self) -> str:
        return f"tracepoint {self.category}:{self.event}"


@dataclass(frozen=True)
class RawTracepointAttach(Attach):
    name: str
    mechanism = "raw tracepoint"

    def describe(self) -> str:
        return f"raw tracepoint {self.name}"


@dataclass(frozen=True)
class PerfEventAttach(Attach):
    """A perf event per CPU (cpu=-1: every online CPU), sampling by period or frequency."""

    ev_type: int
    ev_config: int
    sample_period: int = 0
    sample_freq: int = 0
    cpu: int = -1
    mechanism = "perf event"

    def describe(self) -> str:
        rate = f"freq {self.sample_freq} Hz" if self.sample_freq else f"period {self.sample_period}"
        where = "every CPU" if self.cpu < 0 else f"CPU {self.cpu}"
        return f"perf event type {self.ev_type} config {self.ev_config}, {rate}, {where}"


@dataclass(frozen=True)
class TriggerAttach(Attach):
    """Run by the consumer itself at a point of the session ('BEGIN', 'END', 'ERROR')."""

    event: str
    mechanism = "consumer trigger"

    def describe(self) -> str:
        return f"run by dtrace-nb at {self.event} (BPF_PROG_TEST_RUN)"


@dataclass(frozen=True)
class UprobeAttach(Attach):
    """A uprobe (or uretprobe) at a file offset of an ELF object, for one process (pid >= 0)
    or every process mapping it; `ref_ctr_offset` is a USDT semaphore's file offset, which
    the kernel increments while the probe is attached."""

    path: str
    offset: int
    pid: int = -1
    ret: bool = False
    ref_ctr_offset: int = 0
    symbol: str = ""  # for people: "malloc", "malloc+0x10", "python:function__entry"
    # the process was found by a glob over running processes (python*:::): if it has
    # exited by the time probes attach, its probes are skipped, not an error
    may_vanish: bool = False
    mechanism = "uprobe"

    def describe(self) -> str:
        kind = "uretprobe" if self.ret else "uprobe"
        at = f"{self.symbol} (offset {self.offset:#x})" if self.symbol else hex(self.offset)
        sem = f", semaphore at {self.ref_ctr_offset:#x}" if self.ref_ctr_offset else ""
        return f"{kind} {self.path}:{at}{sem}" + (f" pid {self.pid}" if self.pid >= 0 else "")


@dataclass(frozen=True)
class UprobeMultiAttach(Attach):
    """Uprobes (or uretprobes) at many file offsets of one ELF object, for one process
    (pid >= 0) or every process, through one uprobe_multi link: one program serves them
    all, and the probe that fired is the attach cookie given with its offset (the
    Binding's selector: `bpf_get_attach_cookie(ctx)`)."""

    path: str
    offsets: tuple[int, ...]
    cookies: tuple[int, ...]
    pid: int = -1
    ret: bool = False
    symbols: tuple[str, ...] = ()  # for people, one an offset: "malloc", "malloc+0x10"
    mechanism = "uprobe_multi"

    def describe(self) -> str:
        kind = "uretprobes" if self.ret else "uprobes"
        return (f"{len(self.offsets)} {kind} of {self.path} through one uprobe_multi link"
                + (f" pid {self.pid}" if self.pid >= 0 else ""))


@dataclass(frozen=True)
class FentryAttach(Attach):
    """A BPF trampoline on a kernel function (fentry, or fexit with ret): the program's
    context is the function's arguments as u64s (then its return value, for fexit)."""

    function: str
    ret: bool = False
    mechanism = "fentry"

    def describe(self) -> str:
        return f"{'fexit' if self.ret else 'fentry'} {self.function} (BPF trampoline)"


@dataclass(frozen=True)
class KprobeAttach(Attach):
    function: str
    ret: bool = False
    mechanism = "kprobe"

    def describe(self) -> str:
        return f"{'kretprobe' if self.ret else 'kprobe'} {self.function}"


# --------------------------------------------------------------------------- bindings


@dataclass(frozen=True)
class Selector:
    """Which probe fired, when one attachment serves several: `expr` (a C expression of the
    binding's context) takes the value `values[probe.id]` when that probe fires."""

    expr: str
    values: dict[int, int]


@dataclass(frozen=True)
class ThreadContext:
    """The thread a probe's built-ins describe, when the kernel runs the probe's program
    in another one (sched:::on-cpu is served from sched_switch, which runs in the outgoing
    thread; DTrace fires it in the incoming one). Each member is a C expression of the
    binding's context: integers for pid, tid, ppid, uid, gid and curthread (the
    task_struct's address), the kernel address of the 16-byte comm for execname.
    Thread-local variables (self->) are keyed on this pid and tid. `stacks` says why
    stack(), ustack() and the stack depths cannot describe that thread ("" if they can).
    """

    pid: str
    tid: str
    ppid: str
    uid: str
    gid: str
    execname: str
    curthread: str
    stacks: str = ""

    def integer(self, name: str) -> Optional[str]:
        """The C of integer built-in `name` for this thread, None if it is not one."""
        if name in ("pid", "tid", "ppid", "uid", "gid", "curthread"):
            return getattr(self, name)
        return None

    def thread_key(self) -> str:
        """The u64 key of this thread's self-> variables, laid out as
        bpf_get_current_pid_tgid() gives the current thread's (tgid << 32 | tid)."""
        return f"((((u64)(u32)({self.pid})) << 32) | (u64)(u32)({self.tid}))"


@dataclass(frozen=True)
class Binding:
    """One BPF function and its attachment, serving one or more abstract probes.

    `ctx_decl` is the C parameter declaration (it must name the parameter `ctx`);
    `prologue` C statements run first and may declare locals that `arg_exprs` use;
    `arg_exprs[i]` is a C expression of type u64 giving argI for every probe served;
    `builtins` gives C expressions for context-dependent builtins (e.g. 'errno');
    `thread`, when set, is the thread every thread built-in (pid, tid, execname, self->...)
    describes instead of the one the program runs in (see ThreadContext).
    Providers write this C with dtrace_nb.codegen.provider_api (providers/README.md).
    """

    attach: Attach
    ctx_decl: str
    probes: tuple[Probe, ...]
    arg_exprs: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()
    selector: Optional[Selector] = None
    builtins: dict[str, str] = field(default_factory=dict)
    includes: tuple[str, ...] = ()
    # How each argN is fetched, in words, for the explain view.
    arg_notes: tuple[str, ...] = ()
    # Still fires once exit() has been called (DTrace's END and ERROR while draining).
    runs_after_exit: bool = False
    # Fires while the probes are being enabled, before BEGIN is through (BEGIN itself, and
    # ERROR for a fault in BEGIN); every other probe's clauses wait for BEGIN, as in DTrace.
    runs_before_begin: bool = False
    # C declarations at file scope that ctx_decl/prologue/arg_exprs need (e.g. a context
    # struct generated from a tracepoint's format file); identical ones are emitted once.
    declarations: tuple[str, ...] = ()
    thread: Optional[ThreadContext] = None
    # Innermost kernel stack frames that are the attach mechanism's, not the probe site's
    # (a raw tracepoint's program and bpf_trace_runN): stack() and stackdepth skip them,
    # as DTrace's stacks start at the probe site.
    kernel_stack_skip: int = 0


@dataclass(frozen=True)
class BindContext:
    """What a provider may need from the session to bind: the target process, options."""

    target_pid: int = -1
    options: dict[str, str] = field(default_factory=dict)
    # The executable the target runs (or will run, for -c, whose process is held before
    # its exec): user-space providers resolve the module 'a.out' and libraries from it.
    target_exe: str = ""


# --------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class ProbePattern:
    """A probe description split into four glob fields; an empty field matches anything."""

    provider: str
    module: str
    function: str
    name: str

    @classmethod
    def parse(cls, text: str) -> "ProbePattern":
        parts = text.split(":")
        if len(parts) > 4:
            raise ValueError(f"probe description '{text}' has more than four fields")
        parts = [""] * (4 - len(parts)) + parts
        return cls(*parts)

    def matches(self, probe: Probe) -> bool:
        return (glob_match(self.provider, probe.provider) and glob_match(self.module, probe.module)
                and glob_match(self.function, probe.function) and glob_match(self.name, probe.name))

    def __str__(self) -> str:
        return f"{self.provider}:{self.module}:{self.function}:{self.name}"


def glob_match(pattern: str, value: str) -> bool:
    return pattern == "" or pattern == "*" or fnmatch.fnmatchcase(value, pattern)


def is_glob(pattern: str) -> bool:
    return pattern == "" or bool(re.search(r"[*?\[]", pattern))


@dataclass(frozen=True)
class ProbeSite:
    """A probe as a provider describes it before the catalog numbers it."""

    module: str
    function: str
    name: str
    args: Sequence[ArgInfo] = ()  # a tuple, or LazyArgs when typing them is costly
    data: Any = None
    provider: str = ""  # defaults to the provider's own name


@runtime_checkable
class Provider(Protocol):
    """What every provider module implements (see providers/README.md)."""

    name: str

    def provides(self, provider_field: str) -> bool:
        """Whether the provider field of a probe description (maybe a glob, maybe with a
        process suffix such as 'pid123') may name this provider."""

    def sites(self, pattern: ProbePattern, ctx: BindContext) -> Iterable[ProbeSite]:
        """The probes matching `pattern` (all of them when every field is a wildcard)."""

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        """Bindings serving exactly `probes` (all of this provider)."""


# --------------------------------------------------------------------------- catalog


class ProbeCatalog:
    """All providers, and a stable numbering of the probes they describe."""

    def __init__(self, providers: Optional[list[Provider]] = None):
        self.providers: list[Provider] = providers if providers is not None else load_providers()
        self._ids: dict[str, int] = {}
        self._probes: dict[int, Probe] = {}
        self._owner: dict[int, Provider] = {}

    def provider(self, name: str) -> Optional[Provider]:
        return next((p for p in self.providers if p.name == name), None)

    def _number(self, prov: Provider, site: ProbeSite) -> Probe:
        desc = f"{site.provider or prov.name}:{site.module}:{site.function}:{site.name}"
        pid = self._ids.get(desc)
        if pid is None:
            pid = len(self._ids) + 1
            self._ids[desc] = pid
            args = site.args if isinstance(site.args, LazyArgs) else tuple(site.args)
            probe = Probe(pid, site.provider or prov.name, site.module, site.function, site.name,
                          args, site.data)
            self._probes[pid] = probe
            self._owner[pid] = prov
        return self._probes[pid]

    def match(self, text: str, ctx: BindContext = BindContext()) -> list[Probe]:
        """Every probe a description matches, in catalog order."""
        try:
            pattern = ProbePattern.parse(text)
        except ValueError as err:
            raise DProbeError(str(err)) from None
        found: list[Probe] = []
        for prov in self.providers:
            if not prov.provides(pattern.provider):
                continue
            for site in prov.sites(pattern, ctx):
                probe = self._number(prov, site)
                # a provider that resolves aliases itself (pid's 'a.out', module paths)
                # has already decided which of its sites match
                if getattr(prov, "filters_sites", False) or pattern.matches(probe):
                    found.append(probe)
        return sorted(set(found), key=lambda p: p.id)

    def owner(self, probe: Probe) -> Provider:
        return self._owner[probe.id]

    def bind(self, probes: list[Probe], ctx: BindContext) -> list[Binding]:
        """Group probes by provider and let each provider bind its own."""
        by_provider: dict[int, list[Probe]] = {}
        order: list[Provider] = []
        for probe in probes:
            prov = self._owner[probe.id]
            if id(prov) not in by_provider:
                by_provider[id(prov)] = []
                order.append(prov)
            by_provider[id(prov)].append(probe)
        bindings: list[Binding] = []
        for prov in order:
            bindings.extend(prov.bind(by_provider[id(prov)], ctx))
        return bindings

    def list(self, text: str = ":::", ctx: BindContext = BindContext()) -> list[Probe]:
        return self.match(text, ctx)


def load_providers() -> list[Provider]:
    """Instantiate every provider registered under the entry-point group."""
    found: list[Provider] = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        factory = ep.load()
        prov = factory() if callable(factory) else factory
        found.append(prov)
    # BEGIN/END/ERROR get the first ids, as in DTrace; otherwise registration name order.
    found.sort(key=lambda p: (getattr(p, "order", 100), p.name))
    if not found:
        raise DProbeError(
            "no providers are registered",
            hint="install the package (pip install -e .) so its entry points exist")
    return found
