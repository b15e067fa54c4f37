"""Parse tree -> AST for declarations: variables, externs, typedefs, inlines, translators,
struct/union/enum definitions and members, type names. A mixin of to_ast.ToAST, whose
`here`, `_span()` and `int_lit()` it uses."""

from __future__ import annotations

from lark import Token

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang import ast
from dtrace_nb.lang.ast import Span
from dtrace_nb.lang.lexical import refuse_reserved


def tokens_of(children, kind: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type == kind]


def converted(children) -> list:
    """The converted children, punctuation and keywords left out."""
    return [c for c in children if c is not None and not isinstance(c, Token)]


def _declared(spec: ast.TypeName) -> ast.TypeName:
    """The type the second and later declarators after `spec` get: a struct defined in
    place is defined by the first, and named by its tag after that."""
    if spec.definition is None:
        return spec
    return ast.TypeName(spec.words, span=spec.span)


def _anonymous(here: tuple) -> str:
    return f"<anon@{here[0]}:{here[1]}>"


class DeclRules:
    here: tuple  # the rule's extent (ToAST.build sets it)

    def decl(self, c):
        spec, declarators = c[0], converted(c[1:])
        if not declarators:
            if spec.definition is None and spec.words[0] not in ("struct", "union", "enum"):
                raise DSyntaxError("this declaration declares nothing: give it a name",
                                   self._span())
            return ast.TypeDecl(spec, span=self._span())
        return self._decls("global", spec, declarators)

    def scoped_decl(self, c):
        return self._decls(str(c[0]), _declared(c[1]), converted(c[2:]))

    def _decls(self, scope, spec, declarators):
        """One VarDecl per declarator; a struct defined here is defined by the first."""
        out = []
        for i, (stars, name, keys, dspan) in enumerate(declarators):
            spec = _declared(spec) if i else spec
            dims = []
            if keys and all(isinstance(k, ast.IntLit) for k in keys):
                dims, keys = keys, None
            elif keys and any(isinstance(k, ast.IntLit) for k in keys):
                raise DSyntaxError("an array's size and an associative array's key types "
                                   "cannot be mixed", dspan)
            out.append(ast.VarDecl(scope, self._pointer_to(spec, stars), str(name), keys,
                                   dims, span=Span(self.here[0], self.here[1],
                                                   dspan.end_line, dspan.end_col)))
        return out

    @staticmethod
    def _pointer_to(spec: ast.TypeName, stars, dims=()) -> ast.TypeName:
        span = spec.span
        if stars:
            span = Span(span.line, span.col, stars[-1].end_line, stars[-1].end_column)
        return ast.TypeName(spec.words, len(stars), spec.definition, spec.typedef,
                            list(dims), span=span)

    def extern_decl(self, c):
        # `extern x;` is an int, as in C
        spec = _declared(c[1]) if c[1] is not None else ast.TypeName(("int",),
                                                                     span=self._span())
        return [ast.ExternDecl(self._pointer_to(spec, stars, dims), str(name),
                               span=self._span())
                for stars, name, dims, _span in converted(c[2:])]

    def typedef_decl(self, c):
        spec, out = c[1], []
        for i, (stars, name, dims, span) in enumerate(converted(c[2:])):
            spec = _declared(spec) if i else spec
            out.append(ast.TypedefDecl(self._pointer_to(spec, stars, dims), str(name),
                                       span=self._span()))
        return out

    def inline_decl(self, c):
        return ast.InlineDecl(c[1], str(c[2]), c[4], span=self._span())

    def translator_decl(self, c):
        members = [m for m in c[7:] if isinstance(m, ast.TranslatorMember)]
        return ast.TranslatorDecl(c[1], c[3], str(c[4]), members, span=self._span())

    def xlate_member(self, c):
        return ast.TranslatorMember(str(c[0]), c[2], span=self._span())

    def c_declarator(self, c):
        stars = tokens_of(c, "STAR")
        name = tokens_of(c, "IDENT")[0]
        dims = [c[i + 1] for i, x in enumerate(c) if isinstance(x, Token) and x.type == "LSQB"]
        return stars, name, dims, self._span()

    def function_pointer(self, c):
        return tokens_of(c, "STAR"), tokens_of(c, "IDENT")[0], [], self._span()

    def parameters(self, c):
        return None

    def parameter(self, c):
        return None

    def member_decl(self, c):
        spec, out = c[0], []
        for i, (stars, name, dims, bits, span) in enumerate(converted(c[1:])):
            spec = _declared(spec) if i else spec
            out.append(ast.MemberDecl(self._pointer_to(spec, stars, dims),
                                      str(name) if name else "", bits, span=span))
        return out

    def member_declarator(self, c):
        stars, name, dims, span = c[0]
        bits = c[-1] if len(c) > 1 and isinstance(c[-1], ast.Expr) else None
        return stars, name, dims, bits, self._span()

    def anonymous_bits(self, c):
        return [], None, [], c[1], self._span()

    def sou_def(self, c):
        kind, name = str(c[0]), c[1]
        if kind == "enum" and len(c) > 4:
            raise DSyntaxError("an enum's body lists names (A, B = 2, ...), not members",
                               self._span())
        members = [m for group in c[3:-1] if isinstance(group, list) for m in group]
        tag = str(name) if name is not None else _anonymous(self.here)
        span = self._span()
        return ast.TypeName((kind, tag), definition=ast.StructDef(kind, tag, members, span=span),
                            span=span)

    def enum_def(self, c):
        name = c[1]
        if str(c[0]) != "enum":
            raise DSyntaxError(f"a {c[0]}'s body declares members (type name;), not a list "
                               "of names", self._span())
        tag = str(name) if name is not None else _anonymous(self.here)
        span = self._span()
        enumerators = [e for e in c if isinstance(e, ast.Enumerator)]
        return ast.TypeName(("enum", tag), definition=ast.EnumDef(tag, enumerators, span=span),
                            span=span)

    def enumerator(self, c):
        return ast.Enumerator(str(c[0]), c[2] if len(c) > 2 else None, span=self._span())

    def scope(self, c):
        return c[0]

    def declarator(self, c):
        return tokens_of(c, "STAR"), tokens_of(c, "IDENT")[0], c[-1], self._span()

    def key_list(self, c):
        return converted(c)

    def array_size(self, c):
        return self.int_lit(c)

    def key_type(self, c):
        return self._pointer_to(c[0], tokens_of(c[1:], "STAR"))

    type_name = key_type

    def type_spec(self, words):
        return ast.TypeName(tuple(words), span=self._span())

    def tagged_type(self, c):
        # `struct D`s` is the program's own struct s (module D); other modules' the same tag
        return ast.TypeName((str(c[0]), str(c[1]).rpartition("`")[2]), span=self._span())

    def typedef_name(self, c):
        return ast.TypeName((str(c[0]),), typedef=True, span=self._span())

    def named_type(self, c):
        refuse_reserved(c[0])
        return ast.TypeName((str(c[0]),), typedef=True, span=self._span())

    def type_word(self, c):
        return str(c[0])

    tag = type_word
    assign_op = type_word
