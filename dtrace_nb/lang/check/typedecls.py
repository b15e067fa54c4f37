"""Pass: the program's type and name declarations, in source order, before its variables
and clauses are checked: struct/union/enum definitions, typedefs, enumerators, inlines,
externs and translators.

Names declared this way are compile-time names, so they are replaced in the tree before
any expression is typed: an enumerator by its value, an inline by its expression (cast to
its type), `offsetof(T, m)` by the offset, and `xlate<T>(x).m` by translator T's
expression for member m with its input name bound to x. A clause sees only what was
declared above it, as in DTrace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Optional

from dtrace_nb.errors import DCompileError
from dtrace_nb.lang import ast
from dtrace_nb.lang.builtins import (ACTIONS, AGG_FUNCS, INT_BUILTINS, PROBE_STRINGS,
                                     SUBROUTINES)
from dtrace_nb.lang.check.results import Annotations
from dtrace_nb.lang.check.state import CheckState
from dtrace_nb.lang.decltypes import ArrayType, StructType, declared_size
from dtrace_nb.lang.translated import INDEXED_VARIABLES, TRANSLATED_VARIABLES
from dtrace_nb.lang.types import DType, IntType, PtrType, StringType

_KALLSYMS = ("kernel variables cannot be read here: this kernel's /proc/kallsyms lists no "
             "data symbols (CONFIG_KALLSYMS_ALL is off)")


@dataclass
class _Translator:
    decl: ast.TranslatorDecl
    output: DType
    members: dict[str, ast.TranslatorMember]


@dataclass
class _Names:
    """What a name declared so far stands for, as the tree is rewritten."""

    st: CheckState
    inlines: dict[str, tuple[ast.InlineDecl, DType]]
    translators: list[_Translator]
    member_bases: set = field(default_factory=set)  # struct variables used as v.member
    externs: set = field(default_factory=set)  # names of kernel symbols declared extern

    def replacement(self, e: ast.Expr) -> Optional[ast.Expr]:
        struct_var = _struct_var(self.st, e)
        # (the walk meets a parent before its operand: these rules are the parent's)
        if isinstance(e, ast.Unary) and e.op == "&" and _struct_var(self.st, e.operand):
            raise DCompileError("the address of a D variable cannot be taken", e.span,
                                tag="D_ADDROF_VAR",
                                dtrace="cannot take address of dynamic variable")
        if isinstance(e, ast.Member) and e.arrow and _struct_var(self.st, e.base):
            raise DCompileError(f"{_described(e.base)} is a {_struct_var(self.st, e.base)}, "
                                f"not a pointer: use '.{e.name}'", e.span, tag="D_OP_PTR",
                                dtrace="operator -> must be applied to a pointer")
        if isinstance(e, ast.SizeOf) and e.operand is not None \
                and _struct_var(self.st, e.operand):
            t = _struct_var(self.st, e.operand)
            return ast.IntLit(declared_size(t, e.span), True, True, span=e.span)
        if isinstance(e, ast.Member) and not e.arrow:
            e.base = self._without_struct_cast(e.base)
        if isinstance(e, ast.Member) and not e.arrow and isinstance(e.base, ast.Ident) \
                and isinstance(self.inlines.get(e.base.name, (None, None))[1], StructType):
            e.base = copy.deepcopy(self.inlines[e.base.name][0].value)  # v.m of inline v
        if isinstance(e, ast.Member) and not e.arrow and _struct_var(self.st, e.base):
            self.member_bases.add(id(e.base))
        elif isinstance(e, ast.Assign) and e.op == "=" and _struct_var(self.st, e.target) \
                and isinstance(e.value, ast.Xlate):
            return self._translate_into(e)
        elif isinstance(e, ast.Assign) and e.op == "=" and _struct_var(self.st, e.target):
            _struct_copy(self.st, e)  # a whole struct assigned from another of its type
            self.member_bases.update((id(e.target), id(e.value)))
        elif struct_var is not None and id(e) not in self.member_bases:
            how = ("an array variable is used through its elements (a[i]) or sizeof"
                   if isinstance(struct_var, ArrayType) else
                   "a struct variable is used through its members (v.member) or sizeof")
            raise DCompileError(f"{_described(e)} is a {struct_var}: {how}", e.span)
        if isinstance(e, ast.Ident):
            if e.name in self.externs and e.name not in self.inlines:
                raise DCompileError(f"{e.name}: {_KALLSYMS}", e.span)
            if e.name in self.st.types.constants:
                return ast.IntLit(self.st.types.constants[e.name][0], span=e.span)
            if e.name in self.inlines:
                return self._inline(*self.inlines[e.name], e.span)
        if isinstance(e, ast.OffsetOf):
            return ast.IntLit(_offset(self.st, e), True, True, span=e.span)
        if isinstance(e, ast.KernelSym):
            raise DCompileError(f"{e.module}`{e.name}: {_KALLSYMS}", e.span)
        if isinstance(e, ast.Call) and e.name == "trace" and len(e.args) == 1 \
                and _struct_var(self.st, e.args[0]):
            # trace() of a struct or array records its bytes, shown as tracemem shows them
            v = e.args[0]
            self.member_bases.add(id(v))
            size = declared_size(_struct_var(self.st, v), v.span)
            return ast.Call("tracemem", [ast.AddressOf(v, span=v.span),
                                         ast.IntLit(size, span=v.span)],
                            name_span=e.name_span, span=e.span)
        if isinstance(e, ast.Index) and isinstance(struct_var, type(None)) \
                and isinstance(_struct_var(self.st, e.base), ArrayType):
            if len(e.indexes) != 1:
                raise DCompileError(f"{_described(e.base)} has one dimension: index it with "
                                    "one value", e.span)
            self.member_bases.add(id(e.base))
            return ast.ArrayElem(e.base, e.indexes[0], span=e.span)
        if isinstance(e, ast.Index) and len(e.indexes) == 1 and _c_indexable(e.base):
            # C's p[i] is *(p + i): only a global name can be an associative array, so an
            # index of anything else (a cast, a member, this->p) is C's
            return ast.Unary("*", ast.Binary("+", e.base, e.indexes[0], span=e.span),
                             span=e.span)
        if isinstance(e, ast.Member) and isinstance(e.base, ast.Xlate):
            return self._translated(e.base, e.name, e.span)
        if isinstance(e, ast.Xlate):
            raise DCompileError("xlate<T>(x) is only supported with a member: "
                                "xlate<T>(x).member", e.span)
        return None

    def _inline(self, decl: ast.InlineDecl, t: DType, span: ast.Span) -> ast.Expr:
        value = copy.deepcopy(decl.value)
        if isinstance(t, IntType):
            return ast.Cast(decl.type, value, span=span)
        return value

    def _without_struct_cast(self, e: ast.Expr) -> ast.Expr:
        """`(struct s)v` of a struct s variable is v itself (translators write it)."""
        while isinstance(e, ast.Cast) and e.to.pointer == 0 \
                and isinstance(self.st.type_of(e.to), StructType):
            to, source = self.st.type_of(e.to), _struct_var(self.st, e.operand)
            if source is None and not isinstance(e.operand, ast.Cast):
                return e  # a translator's input name, until xlate binds it
            if source is not None and source is not to:
                raise DCompileError(f"cannot cast a {source} to {to}", e.span)
            e = e.operand
        return e

    def _translate_into(self, e: ast.Assign) -> ast.Expr:
        """`v = xlate<T>(x)`: each member the translator defines assigned in turn."""
        x = e.value
        assert isinstance(x, ast.Xlate)
        to = _struct_var(self.st, e.target)
        found = self._translator_to(x)
        if found.output is not to:
            raise DCompileError(f"cannot assign a {found.output} to {_described(e.target)}, "
                                f"a {to}", e.span)
        out: Optional[ast.Expr] = None
        for name in found.members:
            target = ast.Member(copy.deepcopy(e.target), name, span=e.target.span)
            one = ast.Assign("=", target, ast.Member(copy.deepcopy(x), name, span=x.span),
                             span=e.span)
            out = one if out is None else ast.Binary(",", out, one, span=e.span)
            out.split_statement = True  # as a statement: one statement per member
        if out is None:
            raise DCompileError(f"the translator to {to} defines no members to assign",
                                e.span)
        return out

    def _translator_to(self, x: ast.Xlate) -> _Translator:
        to = self.st.type_of(ast.TypeName(x.to.words, 0, None, x.to.typedef, span=x.to.span))
        found = next((t for t in reversed(self.translators) if t.output is to), None)
        if found is None:
            raise DCompileError(f"no translator to {to} is declared", x.span)
        return found

    def _translated(self, x: ast.Xlate, member: str, span: ast.Span) -> ast.Expr:
        found = self._translator_to(x)
        to = found.output
        m = found.members.get(member)
        if m is None:
            raise DCompileError(f"translator to {to} has no member '{member}'", span)
        body = copy.deepcopy(m.value)
        bound = x.operand
        if not isinstance(self.st.type_of(found.decl.input), StructType):
            bound = ast.Cast(found.decl.input, x.operand, span=x.operand.span)
        return _substitute(body, lambda e: bound if isinstance(e, ast.Ident) and
                           e.name == found.decl.input_name else None)


def declare_types(st: CheckState) -> None:
    names = _Names(st, {}, [])
    for item in st.program.items:
        if isinstance(item, ast.TypeDecl):
            st.type_of(item.type)
        elif isinstance(item, ast.TypedefDecl):
            _typedef(st, item)
        elif isinstance(item, ast.InlineDecl):
            _inline(st, names, item)
        elif isinstance(item, ast.ExternDecl):
            # a kernel symbol's type, for uses of it, which are refused (no data symbols);
            # the declaration alone is harmless, whatever kernel type it names
            names.externs.add(item.name)
        elif isinstance(item, ast.TranslatorDecl):
            names.translators.append(_translator(st, names, item))
        elif isinstance(item, ast.VarDecl):
            _variable_type(st, names, item)
        elif isinstance(item, ast.Clause):
            _substitute(item, names.replacement)


def _typedef(st: CheckState, d: ast.TypedefDecl) -> None:
    if d.name in st.types.typedefs:
        raise DCompileError(f"typedef '{d.name}' is already declared", d.span,
                            tag="D_DECL_IDRED", dtrace=f"typedef redeclared: {d.name}")
    st.types.typedefs[d.name] = st.type_of(d.type)


def _declared_twice(st: CheckState, names: _Names, name: str, span: ast.Span) -> None:
    previous = _previous_kind(st, names, name)
    if previous:
        raise DCompileError(f"identifier redefined: {name}", span, tag="D_DECL_IDRED",
                            dtrace=f"identifier redefined: {name}\n\t current: inline "
                                   f"definition\n\tprevious: {previous}")


def _previous_kind(st: CheckState, names: _Names, name: str) -> str:
    """What `name` already is, in dt_idkind_name's words ("" if nothing)."""
    # (dt_parser.c prints the kind, a space, then "inline" for an inline)
    if name in names.inlines:
        return "scalar inline"
    if name in st.types.constants:
        return "enumerator "
    if name in SUBROUTINES:
        return "function "
    if name in ACTIONS:
        return "tracing function "
    if name in AGG_FUNCS:
        return "aggregating function "
    if name in INT_BUILTINS or name in PROBE_STRINGS or name in ("execname", "args"):
        return "scalar "
    if any(key[1] == name for key in st.vars):
        return "scalar "
    return ""


def _inline(st: CheckState, names: _Names, d: ast.InlineDecl) -> None:
    _declared_twice(st, names, d.name, d.span)
    t = st.type_of(d.type)
    if isinstance(t, StructType):
        # a name for a struct variable or a translation: v.member then reads through it
        source = _struct_var(st, d.value)
        if isinstance(d.value, ast.Xlate):
            source = st.type_of(ast.TypeName(d.value.to.words, 0, None, d.value.to.typedef,
                                             span=d.value.to.span))
        if source is not t:
            raise DCompileError(f"inline '{d.name}' is a {t}: its value must be a {t} "
                                "variable or xlate<" + str(t) + ">(...)", d.value.span)
    elif not isinstance(t, (IntType, StringType)):
        raise DCompileError(f"inline '{d.name}' of type {t}: only integer, pointer, string "
                            "and struct inlines are supported", d.span)
    if isinstance(d.value, ast.Xlate):
        d.value.operand = _substitute(d.value.operand, names.replacement)
    elif not isinstance(t, StructType):
        d.value = _substitute(d.value, names.replacement)  # names declared above it only
    names.inlines[d.name] = (d, t)


def _translator(st: CheckState, names: _Names, d: ast.TranslatorDecl) -> _Translator:
    output = st.type_of(d.output)
    given = st.type_of(d.input)
    for other in names.translators:
        if other.output is output and st.type_of(other.decl.input) == given:
            raise DCompileError(f"translator from {given} to {output} has already been "
                                "declared", _closing(d), tag="D_XLATE_REDECL")
    if not isinstance(output, StructType) or not output.complete:
        words = (f"incomplete struct/union/enum {output}" if isinstance(output, StructType)
                 else "translator output type must be a struct or union")
        raise DCompileError(f"a translator's output must be a defined struct or union, not "
                            f"{output}", d.output.span, tag="D_XLATE_SOU", dtrace=words,
                            line=_closing(d).line)
    members: dict[str, ast.TranslatorMember] = {}
    for m in d.members:
        if output.field(m.name) is None:
            raise DCompileError(f"{output} has no member '{m.name}'", m.span,
                                tag="D_XLATE_MEMB", dtrace=f"translator member {m.name} is "
                                                           f"not a member of {output}",
                                line=_closing(d).line)
        m.value = _substitute(m.value, names.replacement)
        _check_member(st, d, given, output.field(m.name).dtype, m)
        members[m.name] = m
    return _Translator(d, output, members)


def _check_member(st: CheckState, d: ast.TranslatorDecl, given: DType, to: DType,
                  m: ast.TranslatorMember) -> None:
    """Type a member's expression with the input bound to a value of the input type (a
    struct input is typed when xlate binds it), as DTrace checks a translator when it is
    declared: members and types must exist, and the value must suit the member."""
    from dtrace_nb.lang.check.exprs import ExprChecker  # exprs needs this pass's module

    if isinstance(given, StructType):
        return
    bound = ast.Cast(d.input, ast.IntLit(0, span=d.span), span=d.span)
    body = _substitute(copy.deepcopy(m.value), lambda e: bound if isinstance(e, ast.Ident)
                       and e.name == d.input_name else None)
    t = ExprChecker(st, Annotations(), lenient=True).expr(body)
    if isinstance(to, PtrType) != isinstance(t, PtrType) or to.is_string != t.is_string:
        raise DCompileError(f"translator member {m.name} definition uses incompatible types: "
                            f'"{to}" = "{t}"', _closing(d), tag="D_XLATE_INCOMPAT")


def _closing(d: ast.Node) -> ast.Span:
    """The end of a declaration: where DTrace finds what is wrong with it as a whole."""
    return ast.Span(d.span.end_line, max(1, d.span.end_col - 2), d.span.end_line,
                    d.span.end_col)


def _variable_type(st: CheckState, names: _Names, d: ast.VarDecl) -> None:
    """Array sizes and key types may use the names declared above; variables of struct
    type or fixed-size arrays are refused here, located, until code generation has them."""
    _substitute(d, names.replacement)
    t = st.type_of(d.type)
    if d.dims:
        t = st.type_of(ast.TypeName(d.type.words, d.type.pointer, d.type.definition,
                                    d.type.typedef, list(d.dims), span=d.type.span))
        d.type.dims = list(d.dims)  # the variable's type is the array
        if d.scope != "global":
            raise DCompileError(f"'{d.name}': only global variables can be fixed-size "
                                "arrays", d.span)
        elem = t
        while isinstance(elem, ArrayType):
            elem = elem.elem
        if not isinstance(elem, IntType) or isinstance(t.elem, ArrayType):
            raise DCompileError(f"'{d.name}': only one-dimensional arrays of integers are "
                                "supported", d.span)
        st.struct_vars[(d.scope, d.name)] = (t, d.span)
    elif isinstance(t, StructType):
        if d.scope == "self" or d.key_types:
            raise DCompileError(f"'{d.name}': thread-local and associative variables of "
                                "struct type are not supported (global and this-> ones are)",
                                d.span)
        st.struct_vars[(d.scope, d.name)] = (t, d.span)


def _struct_var(st: CheckState, e) -> Optional[DType]:
    """The struct type of variable reference `e`, when it names a struct variable."""
    if isinstance(e, ast.Ident):
        found = st.struct_vars.get(("global", e.name))
    elif isinstance(e, ast.ScopedVar):
        found = st.struct_vars.get((e.scope, e.name))
    else:
        return None
    return found[0] if found else None


def _c_indexable(base: ast.Expr) -> bool:
    """Whether `base[i]` is C's *(base + i), decided before types are known: a cast, a
    pointer expression or a member of a declared struct, but not a name (associative
    arrays, strings), a string value ("abc"[1], a[k][1], copyinstr(p)[0]), nor a member of
    the built-in translated structures, curthread's kernel structs or a provider's args[]
    (the checker indexes their strings and arrays by type)."""
    if not isinstance(base, (ast.Cast, ast.Member, ast.Unary, ast.Binary, ast.Ternary)):
        return False
    root = base
    while isinstance(root, (ast.Member, ast.Index)):
        root = root.base
    return not (isinstance(base, ast.Member) and isinstance(root, ast.Ident)
                and (root.name in TRANSLATED_VARIABLES or root.name in INDEXED_VARIABLES
                     or root.name in ("args", "curthread")))


def _struct_copy(st: CheckState, e: ast.Assign) -> None:
    to, source = _struct_var(st, e.target), _struct_var(st, e.value)
    if isinstance(to, ArrayType):  # C arrays are not assigned as a whole
        raise DCompileError(f"{_described(e.target)} is an array, {to}: arrays cannot be "
                            "assigned", e.span, tag="D_OP_ARRFUN",
                            dtrace=f'operator = may not be applied to operand of type "{to}"')
    if source is None:
        raise DCompileError(f"{_described(e.target)} is a {to}: only a {to} variable can be "
                            "assigned to it", e.value.span)
    if source is not to:
        raise DCompileError(f"cannot assign a {source} to {_described(e.target)}, a {to}",
                            e.span)


def _described(e) -> str:
    return e.name if isinstance(e, ast.Ident) else f"{e.scope}->{e.name}"


def _offset(st: CheckState, e: ast.OffsetOf) -> int:
    t = st.type_of(e.of_type)
    if not isinstance(t, StructType) or not t.complete:
        raise DCompileError("offsetof operand must be a struct or union type", e.of_type.span,
                            tag="D_OFFSETOF_TYPE")
    f = t.field(e.member)
    if f is None:
        raise DCompileError(f"{e.member} is not a member of {t}", e.span, tag="D_UNKNOWN",
                            dtrace=f"failed to determine offset of {e.member}: Member name "
                                   "not found")
    if f.bits:
        raise DCompileError(f"cannot take offset of a bit-field: {e.member}", e.span,
                            tag="D_OFFSETOF_BITFIELD")
    return f.offset


def _substitute(node, replace):
    """`node` with every expression below it for which `replace` gives a node replaced
    by that node (the replacement itself is looked into again, so inlines nest); the
    tree is changed in place where it can be, and the new root is returned."""
    if isinstance(node, ast.Expr):
        new = replace(node)
        if new is not None:
            return _substitute(new, replace)
    if isinstance(node, ast.Node):
        for f in fields(node):
            if f.name in ("span", "ty", "name_span"):
                continue
            v = getattr(node, f.name)
            if isinstance(v, ast.Node):
                setattr(node, f.name, _substitute(v, replace))
            elif isinstance(v, list):
                v[:] = [y for x in v for y in _split(_substitute(x, replace)
                                                     if isinstance(x, ast.Node) else x)]
    return node


def _split(item) -> list:
    """A statement `a, b` made of one assignment per member is two statements."""
    if not (isinstance(item, ast.ExprStmt) and getattr(item.expr, "split_statement", False)):
        return [item]
    parts, e = [], item.expr
    while isinstance(e, ast.Binary) and getattr(e, "split_statement", False):
        parts.append(e.right)
        e = e.left
    parts.append(e)
    return [ast.ExprStmt(p, span=item.span) for p in reversed(parts)]
