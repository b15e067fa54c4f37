"""dtrace(1)'s own messages (what it writes to stderr), in its words: matched probes,
run-time errors, lost data, a target that exited, refused action arguments."""

from __future__ import annotations

from dtrace_nb.faults import fault_details, fault_words


def matched_message(descriptions, nprobes: int, desc: str = "") -> str:
    """dtrace(1)'s notice for a program enabled: `dtrace: script 'x.d' matched 3 probes`,
    `dtrace: description 'BEGIN ' matched 1 probe` (the -n text up to its first '{', '/'
    or ';'). A list of probe descriptions (a clause of a cell) is named as that clause."""
    if not isinstance(descriptions, str):
        descriptions, desc = ", ".join(descriptions) + " ", "description"
    return (f"dtrace: {desc} '{descriptions}' matched {nprobes} "
            f"probe{'s' * (nprobes != 1)}")


def matched_messages(clauses, commands) -> list[str]:
    """The notices of a program enabled (lang.check's CheckedClauses): one per program
    given on the command line (frontend.Command, which knows its lines), as dtrace(1);
    without them (a cell), one per clause."""
    if not commands:
        return [matched_message([p.text for p in c.clause.probes], len(c.probes))
                for c in clauses]
    return [matched_message(cmd.name, sum(len(c.probes) for c in clauses
                                          if c.clause.probes
                                          and cmd.holds(c.clause.probes[0].span.line)),
                            cmd.desc)
            for cmd in commands]


def not_enabled_message(description: str) -> str:
    """dtrace-utils' words for a probe whose attach the kernel refused as not possible
    (ENOTSUPP: a uprobe on an instruction it cannot step), said once as tracing begins
    with the other probes."""
    return (f"dtrace: Failed to enable {description} (the kernel cannot instrument this "
            "instruction)")


def is_not_enabled_message(text: str) -> bool:
    return text.startswith("dtrace: Failed to enable ")


def is_problem_message(text: str) -> bool:
    """What a cell and a Result's text show among their problems: data lost, or a probe
    the kernel could not enable."""
    return is_loss_message(text) or is_not_enabled_message(text)


def target_exited_message(pid: int) -> str:
    return f"dtrace: pid {pid} has exited"


def is_chatter(text: str) -> bool:
    """The messages dtrace(1) -q leaves out (probes matched, the target exited); errors
    and lost data are always said."""
    return text.startswith("dtrace: description") or "has exited" in text


def is_fault_message(text: str) -> bool:
    """A run-time error line as error_message() words it (dt_handle_err's form)."""
    return text.startswith("dtrace: error in dt_clause_")


def error_message(rec, desc: str, clause: int) -> str:
    """dtrace-utils' dt_handle_err wording: `dtrace: error in dt_clause_4 for probe ID 1
    (dtrace:::BEGIN): divide-by-zero`, the clause numbered from 0 in program order.
    dtrace-utils ends it with ` at BPF pc N`, the faulting instruction of its own BPF
    code; ours does not know which instruction of clang's output faulted, so the line
    ends after the fault (ERROR's arg2 still says which action)."""
    return (f"dtrace: error in dt_clause_{clause} for probe ID {rec.probe.id} ({desc}): "
            f"{fault_words(rec.fault)}{fault_details(rec.fault, rec.addr)}")


def liberr_message(clause: int, probe, desc: str, text: str) -> str:
    """A consumer-side failure of an action (dt_handle_liberr), e.g. a setopt() refused."""
    return f"dtrace: error in dt_clause_{clause} for probe ID {probe.id} ({desc}): {text}"


def normalization_message(factor: int) -> str:
    return f"dtrace: normalization factor must be positive, not {factor}"


def setopt_message(name: str, value: str, why: str) -> str:
    """dt_setopt's words (without the clause and probe dt_handle_liberr puts first)."""
    return f"couldn't set option \"{name}\" to \"{value}\": {why}"


# How dtrace(1) words each kind of loss (libdtrace's dt_handle_cpudrop and
# dt_handle_status): buffer and aggregation drops per CPU, the others as one total.
_PER_CPU_DROPS = {"ring buffer": "", "aggregation": "aggregation "}
# kind -> (what, said after the plural): speculation() finding every buffer in use is
# DTrace's DTRACEDROP_SPECUNAVAIL
_TOTAL_DROPS = {"dynamic variable": ("dynamic variable drop", ""),
                "speculation": ("failed speculation", " (no speculative buffer available)")}


# -x droptags: each message names its kind of loss (dtrace's DTRACEDROP_* names)
_DROP_TAGS = {"ring buffer": "DTRACEDROP_PRINCIPAL", "aggregation": "DTRACEDROP_AGGREGATION",
              "dynamic variable": "DTRACEDROP_DYNAMIC", "speculation": "DTRACEDROP_SPECUNAVAIL"}


def is_loss_message(text: str) -> bool:
    """Whether a consumer message reports lost data (one of drop_messages' lines)."""
    return text.startswith("dtrace: ") and ("drop" in text or "failed speculation" in text)


def drop_messages(drops: dict, droptags: bool = False) -> list[str]:
    """DTrace's words for (kind, cpu) -> count: 'dtrace: 12 aggregation drops on CPU 0',
    'dtrace: 3 drops on CPU 1' (the principal buffer: our ring buffer), 'dtrace: 5 dynamic
    variable drops', 'dtrace: 2 failed speculations (no speculative buffer available)'."""
    out = []

    def tag(kind: str) -> str:
        return f"[{_DROP_TAGS[kind]}] " if droptags and kind in _DROP_TAGS else ""

    for (kind, cpu), n in sorted(drops.items()):
        if n and kind in _PER_CPU_DROPS:
            out.append(f"dtrace: {tag(kind)}{n} {_PER_CPU_DROPS[kind]}drop{'s' * (n > 1)} "
                       f"on CPU {cpu}")
    totals: dict[str, int] = {}
    for (kind, _cpu), n in drops.items():
        if kind not in _PER_CPU_DROPS:
            totals[kind] = totals.get(kind, 0) + n
    for kind, n in sorted(totals.items()):
        if n:
            what, after = _TOTAL_DROPS.get(kind, (f"{kind} drop", ""))
            out.append(f"dtrace: {tag(kind)}{n} {what}{'s' * (n > 1)}{after}")
    return out
