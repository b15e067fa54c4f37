"""The D grammar (grammar.lark) built into a lark LALR(1) parser once per process, the
lexer's typedef-name feedback, and the grammar's vocabulary as error messages name it."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Optional

from lark import Lark, Token
from lark.lark import PostLex
from lark.lexer import PatternStr

from dtrace_nb.lang.lexical import LEXER_CHECKS


@lru_cache(maxsize=1)
def lark_parser() -> Lark:
    # The LALR tables take ~0.1 s to build; lark can cache them, but its default cache is a
    # pickle in the shared temp directory, which a root process must not unpickle. So the
    # cache lives in a private directory of the user's (0700, owned by us), or is not used.
    grammar = resources.files("dtrace_nb.lang").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", keep_all_tokens=True,
                maybe_placeholders=True, lexer_callbacks=LEXER_CHECKS,
                postlex=_TypedefNames(), cache=_private_cache(grammar) or False)


class _TypedefNames(PostLex):
    """Names declared by `typedef` become TYPEDEF_NAME tokens from there on, as DTrace's
    lexer looks every identifier up in its type tables: `foo_t x;` then declares x. The
    declared name is the last identifier outside brackets before a ',' or ';' that ends
    a declarator of the typedef."""

    always_accept = ("IDENT",)  # where only a type can start, a name may be a typedef

    def process(self, stream):
        from dtrace_nb.lang.types import builtin_typedef_names

        names = set(builtin_typedef_names())
        in_typedef, depth, last = False, 0, None
        for tok in stream:
            kind = tok.type
            if kind in ("IDENT", "PROBE_DESC") and str(tok) in names:
                tok = Token.new_borrow_pos("TYPEDEF_NAME", str(tok), tok)
            elif in_typedef:
                if kind in ("LBRACE", "LPAR", "LSQB"):
                    depth += 1
                elif kind in ("RBRACE", "RPAR", "RSQB"):
                    depth -= 1
                elif depth == 0 and kind in ("IDENT", "PROBE_DESC"):
                    last = str(tok)
                elif depth == 0 and kind in ("COMMA", "SEMI"):
                    if last:
                        names.add(last)
                    last = None
                    in_typedef = kind == "COMMA"
            elif str(tok) == "typedef":
                in_typedef, depth, last = True, 0, None
            yield tok


def _private_cache(grammar: str) -> Optional[str]:
    import hashlib
    import os

    from dtrace_nb.cachedir import private_cache_dir

    path = private_cache_dir()
    if path is None:
        return None
    digest = hashlib.sha256(grammar.encode()).hexdigest()[:16]
    return os.path.join(path, f"grammar-{digest}.lark")


@lru_cache(maxsize=1)
def vocabulary() -> tuple[dict[str, str], frozenset[str], frozenset[str]]:
    """(terminal -> keyword text, type-word terminals, declaration-start terminals),
    read from the grammar so the two never disagree."""
    lark = lark_parser()
    keywords = {t.name: t.pattern.value for t in lark.terminals
                if isinstance(t.pattern, PatternStr) and re.match(r"[A-Za-z_]", t.pattern.value)}
    by_rule: dict[str, set[str]] = {}
    for rule in lark.rules:
        if len(rule.expansion) == 1 and rule.expansion[0].is_term:
            by_rule.setdefault(rule.origin.name, set()).add(rule.expansion[0].name)
    types = frozenset(by_rule.get("type_word", ()))
    decl_start = (types | by_rule.get("tag", set()) | by_rule.get("scope", set())
                  | {k for k, v in keywords.items()
                     if v in ("extern", "typedef", "inline", "translator")} | {"TYPEDEF_NAME"})
    return keywords, types, frozenset(decl_start)
