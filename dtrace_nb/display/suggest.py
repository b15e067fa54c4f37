"""A compile error as a notebook shows it: line numbers of the cell, a "did you mean"
(difflib over probe names, built-ins, variables, options, functions) and hints in notebook
terms (`%dtrace -l`, not the command line)."""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Optional

from dtrace_nb.errors import DError


def closest(word: str, candidates: Iterable[str]) -> Optional[str]:
    found = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return found[0] if found and found[0] != word else None


def _probe_suggestion(desc: str, catalog) -> Optional[str]:
    """The description with its misspelt part corrected: 'syscall::read:entry'."""
    parts = desc.split(":")
    if len(parts) != 4 or any(c in desc for c in "*?[$"):
        return None
    prov, mod, func, name = parts
    names = [p.name for p in catalog.providers]
    if prov and prov not in names:
        # a name close to a provider's is a typo (usdt would take any name: it is not
        # asked); otherwise the name may be a USDT provider's
        better = closest(prov, names)
        return f"{better}:{mod}:{func}:{name}" if better else None
    try:
        probes = catalog.match(f"{prov}:::")
    except DError:
        return None
    if len(probes) > 200_000:
        return None
    if func and not any(p.function == func for p in probes):
        better = closest(func, (p.function for p in probes))
        return f"{prov}:{mod}:{better}:{name}" if better else None
    if name and not any(p.name == name for p in probes):
        better = closest(name, (p.name for p in probes if not func or p.function == func))
        return f"{prov}:{mod}:{func}:{better}" if better else None
    return None


def _builtin_words(variables: Iterable[str] = ()) -> list[str]:
    from dtrace_nb.lang import builtins

    words = [*builtins.INT_BUILTINS, *builtins.STRING_BUILTINS, *variables]
    words += [f"arg{i}" for i in range(10)] + ["args", "curthread", "stackdepth"]
    return words


def _functions() -> list[str]:
    from dtrace_nb.lang import builtins

    return [*builtins.AGG_FUNCS, *builtins.SUBROUTINES, *builtins.ACTIONS]


def did_you_mean(err: DError, source: str, catalog=None) -> Optional[str]:
    """What the user probably meant, or None."""
    msg = err.message
    try:
        m = re.search(r"probe description (\S+) does not match any probes", msg)
        if m:
            if catalog is None:
                from dtrace_nb.probes import ProbeCatalog
                catalog = ProbeCatalog()
            return _probe_suggestion(m.group(1), catalog)
        m = re.search(r"unknown variable '([^']+)'", msg)
        if m:
            names = re.findall(r"\b(?:self->|this->)?([A-Za-z_]\w*)\s*=[^=]", source)
            return closest(m.group(1), _builtin_words(names))
        m = re.search(r"unknown option '([^']+)'", msg)
        if m:
            known = err.hint.split(":", 1)[1].split(",") if ":" in err.hint else []
            return closest(m.group(1), [k.strip() for k in known])
        if err.span is not None and ("function" in msg or "must be assigned" in msg):
            lines = source.splitlines()
            if 1 <= err.span.line <= len(lines):
                word = re.match(r"\s*([A-Za-z_]\w*)",
                                lines[err.span.line - 1][err.span.col - 1:])
                if word:
                    better = closest(word.group(1), _functions())
                    return f"{better}()" if better else None
    except Exception:  # noqa: BLE001 - a suggestion must never hide the error itself
        return None
    return None


def notebook_hint(hint: str) -> str:
    """The command line's words in the notebook's: `%dtrace -l`, `%%dtrace -x`."""
    hint = hint.replace("dtrace-nb -l", "%dtrace -l")
    return re.sub(r"\bdtrace-nb -x\b", "%%dtrace -x", hint)


def render_in_cell(err: DError, source: str, line_offset: int = 0, catalog=None) -> str:
    """DError.render with the cell's line numbers (the `%%dtrace` line is line 1), the
    hint in notebook terms and a did-you-mean line."""
    where = ""
    span = err.span
    if span is not None:
        where = f"{span.line + line_offset}:{span.col}: "
    text = f"dtrace: {err.kind}: {where}{err.message}"
    suggestion = did_you_mean(err, source, catalog)
    if suggestion:
        text += f"\n  did you mean: {suggestion}"
    if err.hint:
        text += f"\n  hint: {notebook_hint(err.hint)}"
    lines = source.splitlines()
    if span is not None and 1 <= span.line <= len(lines):
        width = 1
        if span.end_line == span.line and span.end_col > span.col:
            width = span.end_col - span.col
        prefix = f"{span.line + line_offset:4d} | "
        text += f"\n{prefix}{lines[span.line - 1]}\n" + " " * (len(prefix) + span.col - 1) \
            + "^" * max(1, width)
    return text
