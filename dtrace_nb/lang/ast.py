"""The D abstract syntax tree.

Every node carries the source span it came from, so any later stage (checker, code
generator, runtime) can point an error at the user's text. The tree covers the whole D
language; stages that do not support a construct yet say so with a located error rather
than by the parser refusing it.

The checker annotates expression nodes in place (`ty`); everything else is set once by
the parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


NOWHERE = Span(0, 0, 0, 0)


@dataclass(eq=False)
class Node:
    span: Span = field(default=NOWHERE, kw_only=True, repr=False)


# --------------------------------------------------------------------------- expressions


@dataclass(eq=False)
class Expr(Node):
    # Set by the checker: a dtrace_nb.lang.types.DType.
    ty: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(eq=False)
class IntLit(Expr):
    value: int
    unsigned: bool = False
    long: bool = False


@dataclass(eq=False)
class StrLit(Expr):
    value: str


@dataclass(eq=False)
class CharLit(Expr):
    value: int


@dataclass(eq=False)
class Ident(Expr):
    """A bare name: a builtin variable (pid, arg0, ...), a global variable, or an inline."""

    name: str


@dataclass(eq=False)
class MacroVar(Expr):
    """`$target`, `$pid`, `$1`; `$$1` (quoted) has quoted=True."""

    name: str
    quoted: bool = False


@dataclass(eq=False)
class AggRef(Expr):
    """`@name` (name is "" for the anonymous `@`)."""

    name: str


@dataclass(eq=False)
class ScopedVar(Expr):
    """`self->x` (scope 'self') or `this->x` (scope 'this')."""

    scope: str
    name: str


@dataclass(eq=False)
class Index(Expr):
    """`base[i, j]`: associative array, aggregation key, or `args[N]`."""

    base: Expr
    indexes: list[Expr]


@dataclass(eq=False)
class Call(Expr):
    """A subroutine, action or aggregating function call: `name(args)`."""

    name: str
    args: list[Expr]
    name_span: Span = field(default=NOWHERE, kw_only=True, repr=False)


@dataclass(eq=False)
class Member(Expr):
    """`base.name` or `base->name` (arrow=True)."""

    base: Expr
    name: str
    arrow: bool = False


@dataclass(eq=False)
class Unary(Expr):
    """Prefix operators: - + ! ~ * & and prefix ++/-- (op '++pre'/'--pre')."""

    op: str
    operand: Expr


@dataclass(eq=False)
class Postfix(Expr):
    op: str  # '++' or '--'
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(eq=False)
class Ternary(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass(eq=False)
class Assign(Expr):
    """`target op value` where op is '=' or a compound operator ('+=', ...)."""

    op: str
    target: Expr
    value: Expr


@dataclass(eq=False)
class TypeName(Node):
    """A C/D type as written: base words plus pointer depth, e.g. ('unsigned', 'int'), 1.

    A struct, union or enum type defined where it is written (`struct s { int a; } x;`,
    `typedef enum { A, B } e_t;`) has words ('struct', 's') and its `definition`; an
    anonymous one is named by where it starts. A typedef name is one word, `typedef`
    True. `dims` are array sizes written after the declarator (`int a[4]` in a struct)."""

    words: tuple[str, ...]
    pointer: int = 0
    definition: Optional["Node"] = None
    typedef: bool = False
    dims: list = field(default_factory=list)

    def __str__(self) -> str:
        return " ".join(self.words) + " " * bool(self.pointer) + "*" * self.pointer


@dataclass(eq=False)
class Cast(Expr):
    to: TypeName
    operand: Expr


@dataclass(eq=False)
class SizeOf(Expr):
    """`sizeof(type)` (of_type set) or `sizeof expr`."""

    of_type: Optional[TypeName] = None
    operand: Optional[Expr] = None


@dataclass(eq=False)
class OffsetOf(Expr):
    """`offsetof(type, member)`: the member's byte offset in a struct or union."""

    of_type: TypeName
    member: str


@dataclass(eq=False)
class Xlate(Expr):
    """`xlate <type> (operand)`: the operand translated by the translator to `type`."""

    to: TypeName
    operand: Expr


@dataclass(eq=False)
class ArrayElem(Expr):
    """`a[i]` of a fixed-size array variable (`int a[5];`): the checker's rewrite of an
    Index whose base is declared so, bounds-checked at run time."""

    array: Expr
    index: Expr


@dataclass(eq=False)
class AddressOf(Expr):
    """The address of a struct or array variable's bytes: the checker's rewrite of
    `trace(v)` into `tracemem(&v, sizeof (v))` (D itself refuses `&v`)."""

    operand: Expr


@dataclass(eq=False)
class KernelSym(Expr):
    """A backquoted kernel symbol: `` `max_pfn `` (module '') or `` vmlinux`max_pfn ``."""

    module: str
    name: str


@dataclass(eq=False)
class StringOf(Expr):
    """`stringof expr` (an operator in D, not a function)."""

    operand: Expr


# --------------------------------------------------------------------------- statements


@dataclass(eq=False)
class Stmt(Node):
    pass


@dataclass(eq=False)
class ExprStmt(Stmt):
    expr: Expr


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    other: list[Stmt] = field(default_factory=list)


@dataclass(eq=False)
class Block(Stmt):
    body: list[Stmt]


# --------------------------------------------------------------------------- top level


@dataclass(eq=False)
class ProbeSpec(Node):
    """One probe description as written, e.g. 'syscall::read:entry' or 'BEGIN'."""

    text: str


@dataclass(eq=False)
class Clause(Node):
    probes: list[ProbeSpec]
    predicate: Optional[Expr]
    body: list[Stmt]
    # True when the clause was written without braces: DTrace's default action applies.
    default_action: bool = False


@dataclass(eq=False)
class Pragma(Node):
    """`#pragma D option name=value` (and other `#pragma D` forms, kept as words)."""

    words: list[str]


@dataclass(eq=False)
class VarDecl(Node):
    """A declaration such as `int x;`, `self int y;`, `this string s;`, `int a[int];`."""

    scope: str  # 'global', 'self' or 'this'
    type: TypeName
    name: str
    key_types: Optional[list[TypeName]] = None
    # `int a[5]`: a fixed-size array (its sizes, as written), not an associative array
    dims: list = field(default_factory=list)


@dataclass(eq=False)
class MemberDecl(Node):
    """One member of a struct or union: its type (with array sizes), name, and bit-field
    width (an anonymous bit-field has name "")."""

    type: TypeName
    name: str
    bits: Optional[Expr] = None


@dataclass(eq=False)
class StructDef(Node):
    """The body of `struct name { ... }` or `union name { ... }` (kind 'struct'/'union')."""

    kind: str
    name: str
    members: list[MemberDecl]


@dataclass(eq=False)
class Enumerator(Node):
    name: str
    value: Optional[Expr] = None


@dataclass(eq=False)
class EnumDef(Node):
    """`enum name { A, B = 5, C }` (name "" when anonymous)."""

    name: str
    enumerators: list[Enumerator]


@dataclass(eq=False)
class TypeDecl(Node):
    """A declaration that only defines a type: `struct s { ... };`, `enum e { ... };`,
    or declares a tag: `struct s;`. (A type defined in a declaration that also declares
    names is defined by its first declarator's TypeName, `definition` set.)"""

    type: TypeName


@dataclass(eq=False)
class TypedefDecl(Node):
    """`typedef type name;` (the declarator's pointers and array sizes are in `type`)."""

    type: TypeName
    name: str


@dataclass(eq=False)
class InlineDecl(Node):
    """`inline type name = expression;`: a typed name for a constant expression."""

    type: TypeName
    name: str
    value: Expr


@dataclass(eq=False)
class ExternDecl(Node):
    """`extern type name;`: a kernel symbol's type, declared for `` `name `` uses."""

    type: TypeName
    name: str


@dataclass(eq=False)
class TranslatorMember(Node):
    name: str
    value: Expr


@dataclass(eq=False)
class TranslatorDecl(Node):
    """`translator output < input name > { member = expression; ... };`: how to make an
    `output` from an `input` value called `name` in the members' expressions."""

    output: TypeName
    input: TypeName
    input_name: str
    members: list[TranslatorMember]


@dataclass(eq=False)
class Program(Node):
    items: list[Node]
    source: str = ""

    @property
    def clauses(self) -> list[Clause]:
        return [i for i in self.items if isinstance(i, Clause)]

    @property
    def pragmas(self) -> list[Pragma]:
        return [i for i in self.items if isinstance(i, Pragma)]

    @property
    def decls(self) -> list[VarDecl]:
        return [i for i in self.items if isinstance(i, VarDecl)]

    @property
    def type_decls(self) -> list[Node]:
        """Declarations of types and names, in source order: struct/union/enum
        definitions, typedefs, inlines, externs and translators."""
        return [i for i in self.items if isinstance(i, (TypeDecl, TypedefDecl, InlineDecl,
                                                        ExternDecl, TranslatorDecl))]


def children(node) -> list:
    """The nodes directly below `node`, in source order."""
    from dataclasses import fields as _fields

    out = []
    for f in _fields(node):
        if f.name in ("span", "ty", "name_span"):
            continue
        v = getattr(node, f.name)
        if isinstance(v, Node):
            out.append(v)
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, Node))
    return out


def walk(node):
    """Every node below (and including) `node`, depth first, in source order."""
    from dataclasses import fields as _fields

    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Node):
            yield n
            children = []
            for f in _fields(n):
                if f.name in ("span", "ty", "name_span"):
                    continue
                v = getattr(n, f.name)
                if isinstance(v, Node):
                    children.append(v)
                elif isinstance(v, list):
                    children.extend(x for x in v if isinstance(x, Node))
            stack.extend(reversed(children))
