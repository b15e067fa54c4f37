"""Any AST node back to D source text.

Expressions get the parentheses C's precedence needs and no more, so the output reads like
what a person would write (the explain view shows it). Parsing the output gives the same
tree: `parse(to_source(parse(x)))` equals `parse(x)` up to spans, with one exception D's own
syntax imposes: a body-less clause with a predicate is only closed by a following probe
description if that one has a ':' or is BEGIN, END, ERROR, tick-N or profile-N.
"""

from __future__ import annotations

from dtrace_nb.lang import ast

__all__ = ["to_source"]

INDENT = "    "

# Binding strength, loosest first; casts, prefix operators, postfix operators and
# primaries come after the binary operators.
_BINARY = {",": 1, "||": 4, "^^": 5, "&&": 6, "|": 7, "^": 8, "&": 9, "==": 10, "!=": 10,
           "<": 11, "<=": 11, ">": 11, ">=": 11, "<<": 12, ">>": 12, "+": 13, "-": 13,
           "*": 14, "/": 14, "%": 14}
ASSIGN, TERNARY, LOR, CAST, UNARY, POSTFIX, PRIMARY = 2, 3, 4, 15, 16, 17, 18

_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "\a": "\\a", "\b": "\\b",
            "\f": "\\f", "\v": "\\v"}


def to_source(node: ast.Node) -> str:
    """D text for `node`: a Program, a top-level item, a statement or an expression."""
    if isinstance(node, ast.Expr):
        return _expr(node)[0]
    if isinstance(node, ast.Program):
        return _program(node)
    if isinstance(node, ast.Clause):
        return _clause(node)
    if isinstance(node, ast.Stmt):
        return "\n".join(_stmt(node, ""))
    if isinstance(node, ast.Pragma):
        return " ".join(["#pragma", "D", *node.words])
    if isinstance(node, ast.VarDecl):
        return _decl(node)
    if isinstance(node, _DECLARATIONS):
        return _type_decl(node)
    if isinstance(node, ast.TypeName):
        return _type(node)
    if isinstance(node, ast.ProbeSpec):
        return node.text
    raise TypeError(f"cannot print {type(node).__name__}")


# ---------------------------------------------------------------------------- top level


def _program(p: ast.Program) -> str:
    out = []
    for i, item in enumerate(p.items):
        if i and (isinstance(item, ast.Clause) or isinstance(p.items[i - 1], ast.Clause)):
            out.append("")  # a blank line around each clause; pragmas and declarations packed
        out.append(to_source(item))
    return "\n".join(out) + ("\n" if out else "")


def _clause(c: ast.Clause) -> str:
    lines = [",\n".join(p.text for p in c.probes)]
    if c.predicate is not None:
        lines.append(f"/{_expr(c.predicate)[0]}/")
    if not c.default_action or c.body:
        lines.append("{")
        for s in c.body:
            lines.extend(_stmt(s, INDENT))
        lines.append("}")
    return "\n".join(lines)


def _decl(d: ast.VarDecl) -> str:
    scope = "" if d.scope == "global" else d.scope + " "
    keys = f"[{', '.join(_type(k) for k in d.key_types)}]" if d.key_types else ""
    keys += "".join(f"[{_expr(n)[0]}]" for n in d.dims)
    stars = "*" * d.type.pointer
    return f"{scope}{_spec(d.type)} {stars}{d.name}{keys};"


def _type(t: ast.TypeName) -> str:
    return _spec(t) + (" " + "*" * t.pointer if t.pointer else "")


_DECLARATIONS = (ast.TypeDecl, ast.TypedefDecl, ast.InlineDecl, ast.ExternDecl,
                 ast.TranslatorDecl)


def _spec(t: ast.TypeName) -> str:
    """A type specifier, with the struct, union or enum body when it is defined here."""
    d = t.definition
    name = "" if t.words[1:2] and t.words[1].startswith("<anon") else " " + t.words[-1]
    if isinstance(d, ast.StructDef):
        body = " ".join(_declarator(m.type, m.name, m.bits) + ";" for m in d.members)
        return f"{d.kind}{name} {{ {body} }}".replace("{  }", "{ }")
    if isinstance(d, ast.EnumDef):
        items = ", ".join(e.name + (f" = {_expr(e.value)[0]}" if e.value else "")
                          for e in d.enumerators)
        return f"enum{name} {{ {items} }}"
    return " ".join(t.words)


def _declarator(t: ast.TypeName, name: str, bits=None) -> str:
    dims = "".join(f"[{_expr(n)[0] if n is not None else ''}]" for n in t.dims)
    width = f" : {_expr(bits)[0]}" if bits is not None else ""
    return f"{_spec(t)} {'*' * t.pointer}{name}{dims}{width}".rstrip()


def _type_decl(d) -> str:
    if isinstance(d, ast.TypeDecl):
        return _spec(d.type) + ";"
    if isinstance(d, ast.TypedefDecl):
        return f"typedef {_declarator(d.type, d.name)};"
    if isinstance(d, ast.InlineDecl):
        return f"inline {_type(d.type)} {d.name} = {_sub(d.value, ASSIGN)};"
    if isinstance(d, ast.ExternDecl):
        return f"extern {_declarator(d.type, d.name)};"
    members = " ".join(f"{m.name} = {_sub(m.value, ASSIGN)};" for m in d.members)
    return (f"translator {_type(d.output)} < {_type(d.input)} {d.input_name} > "
            f"{{ {members} }};")


# ---------------------------------------------------------------------------- statements


def _stmt(s: ast.Stmt, indent: str) -> list[str]:
    if isinstance(s, ast.ExprStmt):
        return [f"{indent}{_expr(s.expr)[0]};"]
    if isinstance(s, ast.Block):
        return [f"{indent}{{", *_body(s.body, indent), f"{indent}}}"]
    if isinstance(s, ast.If):
        lines = [f"{indent}if ({_expr(s.cond)[0]}) {{", *_body(s.then, indent)]
        other = s.other
        while len(other) == 1 and isinstance(other[0], ast.If):  # else if ... chains
            lines += [f"{indent}}} else if ({_expr(other[0].cond)[0]}) {{",
                      *_body(other[0].then, indent)]
            other = other[0].other
        if other:
            lines += [f"{indent}}} else {{", *_body(other, indent)]
        return lines + [f"{indent}}}"]
    raise TypeError(f"cannot print {type(s).__name__}")


def _body(stmts: list[ast.Stmt], indent: str) -> list[str]:
    return [line for s in stmts for line in _stmt(s, indent + INDENT)]


# ---------------------------------------------------------------------------- expressions


def _sub(e: ast.Expr, at_least: int) -> str:
    """e's text, parenthesised when it binds looser than its place needs."""
    text, strength = _expr(e)
    return text if strength >= at_least else f"({text})"


def _expr(e: ast.Expr) -> tuple[str, int]:
    """(text, binding strength) of an expression."""
    if isinstance(e, ast.IntLit):
        return str(e.value) + "u" * e.unsigned + "l" * e.long, PRIMARY
    if isinstance(e, ast.StrLit):
        return '"' + "".join(_char(ch, '"') for ch in e.value) + '"', PRIMARY
    if isinstance(e, ast.CharLit):
        return "'" + _char(chr(e.value), "'") + "'", PRIMARY
    if isinstance(e, ast.Ident):
        return e.name, PRIMARY
    if isinstance(e, ast.MacroVar):
        return ("$$" if e.quoted else "$") + e.name, PRIMARY
    if isinstance(e, ast.AggRef):
        return "@" + e.name, PRIMARY
    if isinstance(e, ast.ScopedVar):
        return f"{e.scope}->{e.name}", PRIMARY
    if isinstance(e, ast.Index):
        keys = ", ".join(_sub(i, ASSIGN) for i in e.indexes)
        return f"{_sub(e.base, POSTFIX)}[{keys}]", POSTFIX
    if isinstance(e, ast.Call):
        return f"{e.name}({', '.join(_sub(a, ASSIGN) for a in e.args)})", POSTFIX
    if isinstance(e, ast.Member):
        base = _sub(e.base, POSTFIX)
        if isinstance(e.base, ast.IntLit) and not e.arrow:
            base = f"({base})"  # `1.x` would read as a floating-point constant
        return f"{base}{'->' if e.arrow else '.'}{e.name}", POSTFIX
    if isinstance(e, ast.Postfix):
        return _sub(e.operand, POSTFIX) + e.op, POSTFIX
    if isinstance(e, ast.Unary):
        return _unary(e), UNARY
    if isinstance(e, ast.SizeOf):
        inner = _type(e.of_type) if e.of_type is not None else _expr(e.operand)[0]
        return f"sizeof({inner})", UNARY
    if isinstance(e, ast.StringOf):
        return f"stringof({_expr(e.operand)[0]})", UNARY
    if isinstance(e, ast.OffsetOf):
        return f"offsetof({_type(e.of_type)}, {e.member})", PRIMARY
    if isinstance(e, ast.Xlate):
        return f"xlate < {_type(e.to)} > ({_expr(e.operand)[0]})", PRIMARY
    if isinstance(e, ast.KernelSym):
        return f"{e.module}`{e.name}", PRIMARY
    if isinstance(e, ast.Cast):
        return f"({_type(e.to)}){_sub(e.operand, CAST)}", CAST
    if isinstance(e, ast.Binary):
        strength = _BINARY[e.op]
        left, right = _sub(e.left, strength), _sub(e.right, strength + 1)
        return (f"{left}, {right}" if e.op == "," else f"{left} {e.op} {right}"), strength
    if isinstance(e, ast.Ternary):
        return (f"{_sub(e.cond, LOR)} ? {_sub(e.then, 1)} : {_sub(e.other, TERNARY)}",
                TERNARY)
    if isinstance(e, ast.Assign):
        return f"{_sub(e.target, UNARY)} {e.op} {_sub(e.value, ASSIGN)}", ASSIGN
    raise TypeError(f"cannot print {type(e).__name__}")


def _unary(e: ast.Unary) -> str:
    if e.op in ("++pre", "--pre"):
        return e.op[:2] + _sub(e.operand, UNARY)
    operand = _sub(e.operand, CAST)
    if e.op in "-+&" and operand.startswith(e.op):
        operand = f"({operand})"  # `- -x` must not become `--x`
    return e.op + operand


def _char(ch: str, quote: str) -> str:
    if ch == quote:
        return "\\" + ch
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\{ord(ch):03o}"  # three octal digits: never runs into a following digit
    return ch
