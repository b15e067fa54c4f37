"""D source text -> ast.Program, every node with its span; malformed input -> DSyntaxError.

The grammar is grammar.lark (lark LALR(1), contextual lexer), built once per process.
Literals are checked as they are lexed, so the first problem in source order is the one
reported. Every failure, including one of this module's own, reaches the caller as a
DSyntaxError with a span: nothing else escapes `parse`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Optional

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr
from lark.lark import PostLex

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang import ast
from dtrace_nb.lang.ast import Span

__all__ = ["int_literal", "parse", "unescape"]

UINT64_MAX = (1 << 64) - 1
PROBE_CHARS = frozenset("-$:_.?*\\[]!0123456789abcdefghijklmnopqrstuvwxyz"
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse(source: str) -> ast.Program:
    """Parse a D program. Raises DSyntaxError (always with a span) on malformed input."""
    if not isinstance(source, str):
        raise DSyntaxError(f"a D program must be text, not {type(source).__name__}",
                           Span(1, 1, 1, 2))
    _check_encodable(source)
    try:
        tree = _parser().parse(source)
        program = _ToAST().build(tree)
    except DSyntaxError:
        raise
    except UnexpectedInput as err:
        try:
            located = _syntax_error(source, err)
        except Exception as inner:  # noqa: BLE001 - describing the error must not fail either
            located = _internal(source, inner)
        raise located from None
    except RecursionError:
        raise DSyntaxError("the program is nested too deeply", _end_span(source)) from None
    except Exception as err:  # noqa: BLE001 - even a bug here must reach the user as a D error
        raise _internal(source, err) from None
    program.source = source
    if program.span.line == 0:  # nothing but blanks and comments
        program.span = Span(1, 1, *_line_col(source, len(source)))
    return program


def _check_encodable(source: str) -> None:
    """Text that has no UTF-8 form (a lone surrogate, as from a bad decode) cannot be
    compiled or printed: say where it is."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as err:
        raise DSyntaxError(f"invalid character U+{ord(source[err.start]):04X} (a lone "
                           "surrogate, not text)",
                           _offset_span(source, err.start, err.start + 1)) from None


@lru_cache(maxsize=1)
def _parser() -> Lark:
    # The LALR tables take ~0.1 s to build; lark can cache them, but its default cache is a
    # pickle in the shared temp directory, which a root process must not unpickle. So the
    # cache lives in a private directory of the user's (0700, owned by us), or is not used.
    grammar = resources.files("dtrace_nb.lang").joinpath("grammar.lark").read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", keep_all_tokens=True,
                maybe_placeholders=True, lexer_callbacks=_LEXER_CHECKS,
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


# ---------------------------------------------------------------------------- literals

_INT_SUFFIXES = {"": (False, False), "u": (True, False), "l": (False, True),
                 "ll": (False, True), "ul": (True, True), "lu": (True, True),
                 "ull": (True, True), "llu": (True, True)}


def int_literal(text: str) -> tuple[int, bool, bool]:
    """(value, unsigned, long) of a D integer constant; ValueError says what is wrong."""
    m = re.fullmatch(r"(0[xX][0-9a-fA-F]*|[0-9]+)(.*)", text)
    if not m:
        raise ValueError(f"invalid integer constant '{text}'")
    digits, suffix = m.groups()
    if suffix.lower() not in _INT_SUFFIXES:
        if re.fullmatch(r"[eE][-+]?[0-9]*", suffix) and not digits[:2].lower() == "0x":
            raise ValueError("floating-point constants are not supported in D")
        raise ValueError(f"invalid suffix '{suffix}' on integer constant '{text}'")
    unsigned, long_ = _INT_SUFFIXES[suffix.lower()]
    if digits[:2].lower() == "0x":
        if len(digits) == 2:
            raise ValueError(f"invalid hexadecimal constant '{text}': no digits after 0x")
        value = int(digits, 16)
    elif len(digits) > 1 and digits[0] == "0":
        if re.search(r"[89]", digits):
            raise ValueError(f"invalid octal constant '{text}': 8 and 9 are not octal digits")
        value = int(digits, 8)
    else:
        value = int(digits)
    if value > UINT64_MAX:
        raise ValueError(f"integer constant '{text}' does not fit in 64 bits")
    return value, unsigned, long_


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "?": "?"}


def unescape(body: str) -> str:
    """The characters a string or character literal's body (quotes removed) stands for."""
    out, i = [], 0
    while i < len(body):
        j = body.find("\\", i)
        if j < 0:
            out.append(body[i:])
            break
        out.append(body[i:j])
        if j + 1 >= len(body):
            raise ValueError("a literal cannot end with a lone backslash")
        c = body[j + 1]
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
            i = j + 2
            continue
        if c in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[j + 1:]).group()
            base, start = 8, j + 1
        elif c == "x":
            m = re.match(r"[0-9a-fA-F]+", body[j + 2:])
            if not m:
                raise ValueError("escape sequence '\\x' has no hexadecimal digits")
            digits, base, start = m.group(), 16, j + 2
        else:
            raise ValueError(f"unknown escape sequence '\\{c}'")
        value = int(digits, base)
        if value > 0xFF:
            raise ValueError(f"escape sequence '{body[j:start + len(digits)]}' is out of range")
        out.append(chr(value))
        i = start + len(digits)
    return "".join(out)


def _char_value(text: str) -> int:
    chars = unescape(text[1:-1])
    if not chars:
        raise ValueError("empty character constant: a character constant holds exactly one "
                         "character")
    if len(chars) > 1:
        raise ValueError(f"character constant {text} is too long: a character constant holds "
                         "exactly one character")
    if ord(chars) > 0xFF:
        raise ValueError(f"character {text} does not fit in a char")
    return ord(chars)


def _checked(check):
    """A lexer callback: run `check` on the token's text, turning ValueError into a located
    DSyntaxError at the token, so literal errors come in source order."""
    def callback(tok: Token) -> Token:
        try:
            check(str(tok))
        except ValueError as err:
            raise DSyntaxError(str(err), _token_span(tok)) from None
        return tok
    return callback


def _no_float(text: str) -> None:
    raise ValueError("floating-point constants are not supported in D")


def _empty_predicate(text: str) -> None:
    raise ValueError("empty predicate '//': write a condition between the slashes, or leave "
                     "the predicate out")


_LEXER_CHECKS = {
    "NUMBER": _checked(int_literal),
    "FLOAT": _checked(_no_float),
    "STRING": _checked(lambda t: unescape(t[1:-1])),
    "CHAR": _checked(_char_value),
    "EMPTY_PRED": _checked(_empty_predicate),
}

# D's reserved words that start constructs dtrace-nb does not implement (the AST has no
# node for them). They are reported by name rather than as a confusing parse error.
_RESERVED = {
    "provider": "provider definitions (USDT) are not supported",
    "probe": "'probe' is reserved in D",
    "import": "'import' is reserved in D",
    **{w: f"'{w}' is reserved in D: D has no loops, jumps or switch"
       for w in ("for", "while", "do", "break", "continue", "goto", "switch", "case",
                 "default", "return")},
    **{w: f"'{w}' is reserved in D and not supported"
       for w in ("auto", "static", "register", "restrict", "counter", "userland")},
}


# ---------------------------------------------------------------------------- tree -> AST


def _token_span(tok: Token) -> Span:
    line = tok.line or 1
    col = tok.column or 1
    return Span(line, col, tok.end_line or line, tok.end_column or col + max(1, len(tok)))


def _reserved(tok: Token) -> None:
    if str(tok) in _RESERVED:
        raise DSyntaxError(_RESERVED[str(tok)], _token_span(tok))


def _tokens(children, kind: str) -> list[Token]:
    return [c for c in children if isinstance(c, Token) and c.type == kind]


def _values(children) -> list:
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


# C's binary operators by binding strength (all left-associative); ',' is D's comma operator.
_PRECEDENCE = {",": 1, "||": 4, "^^": 5, "&&": 6, "|": 7, "^": 8, "&": 9, "==": 10, "!=": 10,
               "<": 11, "<=": 11, ">": 11, ">=": 11, "<<": 12, ">>": 12, "+": 13, "-": 13,
               "*": 14, "/": 14, "%": 14}


class _ToAST:
    """Parse tree -> AST, bottom-up and without recursion (deep nesting is fine).

    The parser keeps every token (keep_all_tokens) and does not propagate positions, which
    costs a third of the parse time; instead `build` works out each node's extent, first
    token to last, as it goes. The method named after a rule (or alias) gets the rule's
    converted children, tokens included; `self.here` is the rule's extent and `self.extents`
    its children's. An extent includes the parentheses around an expression; a node's span
    does not."""

    def __init__(self) -> None:
        self.here: tuple = (0, 0, 0, 0)
        self.extents: list = []

    def build(self, tree: Tree):
        values: list = []
        extents: list = []
        todo: list = [(tree, False)]
        while todo:
            node, ready = todo.pop()
            if not isinstance(node, Tree):
                values.append(node)
                extents.append((node.line, node.column, node.end_line, node.end_column)
                               if isinstance(node, Token) else None)
            elif not ready:
                todo.append((node, True))
                todo.extend((child, False) for child in reversed(node.children))
            else:
                n = len(node.children)
                args, exts = (values[-n:], extents[-n:]) if n else ([], [])
                if n:
                    del values[-n:], extents[-n:]
                known = [x for x in exts if x is not None]
                here = (known[0][0], known[0][1], known[-1][2], known[-1][3]) if known else None
                self.here, self.extents = here or (0, 0, 0, 0), exts
                values.append(getattr(self, node.data)(args))
                extents.append(here)
        return values[0]

    def _span(self) -> Span:
        return Span(*self.here)

    # -- top level

    def start(self, items):
        flat: list[ast.Node] = []
        for item in items:
            flat.extend(item if isinstance(item, list) else [item])
        return ast.Program(flat, span=self._span())

    def pragma(self, c):
        text = re.sub(r"/\*.*?\*/|(?:^|\s)//.*$", " ", str(c[0]))
        return ast.Pragma(text.split()[2:], span=_token_span(c[0]))  # words after '#pragma D'

    def clause(self, c):
        probes, pred, body = c
        return ast.Clause(probes, pred, body, span=self._span())

    def clause_default(self, c):
        probes, pred = c
        return ast.Clause(probes, pred, [], default_action=True, span=self._span())

    def probe_list(self, c):
        tokens = _tokens(c, "PROBE_DESC")
        for tok in tokens:
            _reserved(tok)
        return [ast.ProbeSpec(str(t), span=_token_span(t)) for t in tokens]

    def predicate(self, c):
        return c[1]

    def empty_predicate(self, c):
        _checked(_empty_predicate)(c[0])

    # -- statements

    def body(self, c):
        *stmts, last = c[1:-1]
        out = _values(stmts)
        if last is not None:
            out.append(ast.ExprStmt(last, span=last.span))
        return out

    def block(self, c):
        return ast.Block(self.body(c), span=self._span())

    def expr_stmt(self, c):
        return ast.ExprStmt(c[0], span=self._span())

    def empty_stmt(self, c):
        return None

    def if_stmt(self, c):
        def stmts(s):
            if s is None:
                return []
            return s.body if isinstance(s, ast.Block) else [s]
        return ast.If(c[2], stmts(c[4]), stmts(c[-1]), span=self._span())

    # -- declarations

    def decl(self, c):
        spec, declarators = c[0], _values(c[1:])
        if not declarators:
            if spec.definition is None and spec.words[0] not in ("struct", "union", "enum"):
                raise DSyntaxError("this declaration declares nothing: give it a name",
                                   self._span())
            return ast.TypeDecl(spec, span=self._span())
        return self._decls("global", spec, declarators)

    def scoped_decl(self, c):
        return self._decls(str(c[0]), _declared(c[1]), _values(c[2:]))

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
                for stars, name, dims, _span in _values(c[2:])]

    def typedef_decl(self, c):
        spec, out = c[1], []
        for i, (stars, name, dims, span) in enumerate(_values(c[2:])):
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
        stars = _tokens(c, "STAR")
        name = _tokens(c, "IDENT")[0]
        dims = [c[i + 1] for i, x in enumerate(c) if isinstance(x, Token) and x.type == "LSQB"]
        return stars, name, dims, self._span()

    def function_pointer(self, c):
        return _tokens(c, "STAR"), _tokens(c, "IDENT")[0], [], self._span()

    def parameters(self, c):
        return None

    def parameter(self, c):
        return None

    def member_decl(self, c):
        spec, out = c[0], []
        for i, (stars, name, dims, bits, span) in enumerate(_values(c[1:])):
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
        return _tokens(c, "STAR"), _tokens(c, "IDENT")[0], c[-1], self._span()

    def key_list(self, c):
        return _values(c)

    def array_size(self, c):
        return self.int_lit(c)

    def key_type(self, c):
        return self._pointer_to(c[0], _tokens(c[1:], "STAR"))

    type_name = key_type

    def type_spec(self, words):
        return ast.TypeName(tuple(words), span=self._span())

    def tagged_type(self, c):
        # `struct D`s` is the program's own struct s (module D); other modules' the same tag
        return ast.TypeName((str(c[0]), str(c[1]).rpartition("`")[2]), span=self._span())

    def typedef_name(self, c):
        return ast.TypeName((str(c[0]),), typedef=True, span=self._span())

    def named_type(self, c):
        _reserved(c[0])
        return ast.TypeName((str(c[0]),), typedef=True, span=self._span())

    def type_word(self, c):
        return str(c[0])

    tag = type_word
    assign_op = type_word

    # -- expressions

    def binary(self, c):
        """Operands and operators alternate; arrange them by precedence (shunting-yard)."""
        operands = [(e, x) for e, x in zip(c[::2], self.extents[::2])]
        out, ops = [operands[0]], []

        def reduce():
            (right, rx), (left, lx), op = out.pop(), out.pop(), ops.pop()
            extent = (lx[0], lx[1], rx[2], rx[3])
            out.append((ast.Binary(op, left, right, span=Span(*extent)), extent))
        for op, operand in zip(c[1::2], operands[1:]):
            op = str(op)
            while ops and _PRECEDENCE[ops[-1]] >= _PRECEDENCE[op]:
                reduce()
            ops.append(op)
            out.append(operand)
        while ops:
            reduce()
        return out[0][0]

    def primary(self, c):  # ( expr ): the extent keeps the parentheses, the node does not
        return c[1]

    def assign(self, c):
        target, op, value = c
        return ast.Assign(op, target, value, span=self._span())

    def ternary(self, c):
        return ast.Ternary(c[0], c[2], c[4], span=self._span())

    def cast(self, c):
        return ast.Cast(c[1], c[3], span=self._span())

    def unary(self, c):
        return ast.Unary(str(c[0]), c[1], span=self._span())

    def pre_incdec(self, c):
        return ast.Unary(str(c[0]) + "pre", c[1], span=self._span())

    def post_incdec(self, c):
        return ast.Postfix(str(c[1]), c[0], span=self._span())

    def sizeof_expr(self, c):
        return ast.SizeOf(operand=c[1], span=self._span())

    def sizeof_type(self, c):
        return ast.SizeOf(of_type=c[2], span=self._span())

    def stringof(self, c):
        return ast.StringOf(c[1], span=self._span())

    def xlate(self, c):
        return ast.Xlate(c[2], c[5], span=self._span())

    def offsetof(self, c):
        return ast.OffsetOf(c[2], str(c[4]), span=self._span())

    def kernel_symbol(self, c):
        module, _, name = str(c[0]).partition("`")
        return ast.KernelSym(module, name, span=_token_span(c[0]))

    def index(self, c):
        return ast.Index(c[0], c[2], span=self._span())

    def call(self, c):
        callee, args = c[0], c[2]
        if not isinstance(callee, ast.Ident):
            raise DSyntaxError("only a named function can be called", callee.span,
                               hint="D has no function pointers: write name(arguments)")
        return ast.Call(callee.name, args or [], name_span=callee.span, span=self._span())

    def member(self, c):
        base, op, name = c
        return ast.Member(base, str(name), op.type == "ARROW", span=self._span())

    def args(self, c):
        return _values(c)

    def int_lit(self, c):
        value, unsigned, long_ = int_literal(str(c[0]))
        return ast.IntLit(value, unsigned, long_, span=_token_span(c[0]))

    def float_lit(self, c):
        _checked(_no_float)(c[0])

    def str_lit(self, c):
        return ast.StrLit(unescape(str(c[0])[1:-1]), span=_token_span(c[0]))

    def char_lit(self, c):
        return ast.CharLit(_char_value(str(c[0])), span=_token_span(c[0]))

    def ident(self, c):
        _reserved(c[0])
        return ast.Ident(str(c[0]), span=_token_span(c[0]))

    def agg(self, c):
        return ast.AggRef(str(c[0])[1:], span=_token_span(c[0]))

    def macro(self, c):
        text = str(c[0])
        quoted = text.startswith("$$")
        return ast.MacroVar(text[1 + quoted:], quoted, span=_token_span(c[0]))

    def scoped(self, c):
        return ast.ScopedVar(str(c[0]), str(c[2]), span=self._span())


# ---------------------------------------------------------------------------- error text

_PUNCT = {
    "LBRACE": "{", "RBRACE": "}", "LPAR": "(", "RPAR": ")", "LSQB": "[", "RSQB": "]",
    "SEMI": ";", "COMMA": ",", "DOT": ".", "ARROW": "->", "QMARK": "?", "COLON": ":",
    "LOR": "||", "LXOR": "^^", "LAND": "&&", "BAR": "|", "CARET": "^", "AMP": "&",
    "EQ": "==", "NE": "!=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">=", "SHL": "<<",
    "SHR": ">>", "PLUS": "+", "MINUS": "-", "STAR": "*", "SLASH": "/", "PERCENT": "%",
    "BANG": "!", "TILDE": "~", "INC": "++", "DEC": "--", "ASSIGN": "=", "ADD_ASSIGN": "+=",
    "SUB_ASSIGN": "-=", "MUL_ASSIGN": "*=", "DIV_ASSIGN": "/=", "MOD_ASSIGN": "%=",
    "AND_ASSIGN": "&=", "OR_ASSIGN": "|=", "XOR_ASSIGN": "^=", "SHL_ASSIGN": "<<=",
    "SHR_ASSIGN": ">>=",
}
_NAMED = {
    "PRED_END": "'/' closing the predicate", "PROBE_DESC": "a probe description",
    "IDENT": "an identifier", "NUMBER": "a number", "STRING": "a string", "CHAR":
    "a character constant", "AGG": "an aggregation", "MACRO": "a macro variable",
    "PRAGMA": "a #pragma line", "$END": "end of input", "KSYM": "a kernel symbol",
    "TYPEDEF_NAME": "a type name",
}
# Tokens that can follow a complete operand: not worth listing when something else fits.
_AFTER_OPERAND = set(_PUNCT) - {"LBRACE", "RBRACE", "RPAR", "RSQB", "SEMI", "COMMA", "COLON",
                                "BANG", "TILDE"}
_BINARY_ONLY = {"PERCENT", "EQ", "NE", "LOR", "LAND", "LXOR", "QMARK"}
_EXPR_START = {"NUMBER", "FLOAT", "STRING", "CHAR", "IDENT", "KSYM", "AGG", "MACRO", "LPAR", "PLUS",
               "MINUS", "BANG", "TILDE", "STAR", "AMP", "INC", "DEC"}
_ORDER = ["SEMI", "RBRACE", "RPAR", "RSQB", "COLON", "COMMA", "PRED_END", "SLASH", "LBRACE",
          "an expression", "a type name", "IDENT", "STAR", "PROBE_DESC", "a declaration"]
_CLOSERS = {"LBRACE": "}", "LPAR": ")", "LSQB": "]"}


@lru_cache(maxsize=1)
def _vocabulary() -> tuple[dict[str, str], frozenset[str], frozenset[str]]:
    """(terminal -> keyword text, type-word terminals, declaration-start terminals),
    read from the grammar so the two never disagree."""
    lark = _parser()
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


def _line_col(source: str, pos: int) -> tuple[int, int]:
    pos = max(0, min(pos, len(source)))
    line = source.count("\n", 0, pos) + 1
    return line, pos - (source.rfind("\n", 0, pos) + 1) + 1


def _offset_span(source: str, start: int, end: int) -> Span:
    line, col = _line_col(source, start)
    end_line, end_col = _line_col(source, max(end, start + 1))
    if end >= len(source) and end <= start:
        end_line, end_col = line, col + 1
    return Span(line, col, end_line, end_col)


def _end_span(source: str) -> Span:
    end = len(source.rstrip())
    line, col = _line_col(source, end)
    return Span(line, col, line, col + 1)


def _internal(source: str, err: BaseException) -> DSyntaxError:
    return DSyntaxError(f"internal parser error ({type(err).__name__}: {err})",
                        _end_span(source) if source.strip() else Span(1, 1, 1, 2),
                        hint="this is a bug in dtrace-nb; please report it with the program")


def _quote(text: str, limit: int = 24) -> str:
    text = text if len(text) <= limit else text[:limit - 3] + "..."
    return "'" + text.replace("\n", "\\n") + "'"


def _char_name(ch: str) -> str:
    if ch.isprintable() and ch != "'":
        return f"'{ch}'"
    return f"'\\x{ord(ch):02x}'" if ord(ch) < 0x100 else f"U+{ord(ch):04X}"


_C_TOKEN = re.compile(r"[A-Za-z_]\w*|[0-9]\w*|@\w*|\$\$?\w+|"
                      + "|".join(re.escape(p) for p in sorted(_PUNCT.values(), key=len,
                                                               reverse=True)))


def _found(source: str, tok: Token, accepted: set[str]) -> tuple[str, int, int]:
    """(description, start, end) of what the parser tripped over."""
    start = tok.start_pos if tok.start_pos is not None else len(source)
    text = str(tok)
    if tok.type == "PROBE_DESC" and "PROBE_DESC" not in accepted:
        # The global lexer reads most characters as a probe description; outside a clause
        # head, describe the C token that is really there.
        m = _C_TOKEN.match(source, start)
        text = m.group() if m else source[start]
    # A keyword matched as the prefix of a longer word (`integer`): report the word.
    while start > 0 and (source[start - 1].isalnum() or source[start - 1] == "_") \
            and (text[:1].isalnum() or text[:1] == "_"):
        start -= 1
        text = source[start] + text
    if text[:1].isalpha() or text[:1] == "_":
        m = re.match(r"\w+", source[start:])
        text = m.group() if m else text
        kind = "keyword" if text in _vocabulary()[0].values() else "identifier"
    elif text[:1].isdigit():
        kind = "number"
    elif text[:1] == '"':
        kind = "string"
    elif text[:1] == "'":
        kind = "character constant"
    elif text[:1] == "@":
        kind = "aggregation"
    elif re.match(r"\$\$?\w", text):
        kind = "macro variable"
    elif text.startswith("#"):
        return "'#pragma' line", start, start + len(text)
    else:
        kind = ""
    return f"{kind} {_quote(text)}".strip(), start, start + len(text)


def _expected(names: set[str], in_clause: bool = False) -> str:
    """The few expected things worth naming, in plain words."""
    keywords, types, decl_start = _vocabulary()
    names = set(names) - {"EMPTY_PRED", "FLOAT"}
    if names & _BINARY_ONLY:  # after a complete operand any operator may follow
        names -= _AFTER_OPERAND
    if (in_clause or names & _BINARY_ONLY) and not names & {"RPAR", "RSQB"}:
        names.discard("COMMA")  # D's comma operator: not what anyone is missing
    if "PROBE_DESC" in names:
        names -= {"PRAGMA", "$END"}
        if names & {"COMMA", "LBRACE", "SLASH"}:  # right after a probe description
            names -= decl_start | {"PROBE_DESC"}
    groups = []
    expr_start = _EXPR_START | {k for k, v in keywords.items()
                                if v in ("sizeof", "stringof", "self", "this", "offsetof",
                                         "xlate")}
    if len(names & expr_start) >= 4:
        statement = {k for k, v in keywords.items() if v == "if"} | {"SEMI", "LBRACE"}
        if statement <= names:  # where a statement may start
            groups.append("a statement")
            names -= statement
        groups.append("an expression")
        names -= expr_start
    if "PROBE_DESC" in names and names & decl_start:
        groups.append("a declaration")
        names -= decl_start
    elif len(names & types) >= 3:
        groups.append("a type name")
        names -= decl_start
    words: list[str] = []
    if "a statement" in groups:  # "a statement or '}'", not "an expression or ..."
        groups.remove("an expression")
        words.append("a statement")
    for key in _ORDER:
        if key in groups:
            words.append(key)
        elif key in names:
            words.append(_describe_terminal(key))
            names.discard(key)
    words += sorted(_describe_terminal(n) for n in names if n != "$END")
    if not words and "$END" in names:
        words = ["end of input"]
    words = words[:4]
    if not words:
        return ""
    text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    if words == ["';'", "'}'"]:
        text += " after a statement"
    return text


def _describe_terminal(name: str) -> str:
    if name in _PUNCT:
        return f"'{_PUNCT[name]}'"
    if name in _NAMED:
        return _NAMED[name]
    word = _vocabulary()[0].get(name)
    return f"'{word}'" if word else name.lower()


def _accepted(err: UnexpectedInput) -> set[str]:
    ip = getattr(err, "interactive_parser", None)
    if ip is not None:
        try:
            return set(ip.accepts())
        except Exception:  # noqa: BLE001 - then the parser table's own list will do
            return set(getattr(err, "expected", None) or ())
    return set(getattr(err, "expected", None) or getattr(err, "allowed", None) or ())


def _stack(err: UnexpectedInput) -> list:
    ip = getattr(err, "interactive_parser", None)
    return list(ip.parser_state.value_stack) if ip is not None else []


def _in_clause(err: UnexpectedInput) -> bool:
    return any(isinstance(v, Token) and v.type == "LBRACE" or
               isinstance(v, Tree) and v.data == "probe_list" for v in _stack(err))


def _syntax_error(source: str, err: UnexpectedInput) -> DSyntaxError:
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream
    elif isinstance(err, UnexpectedToken) and err.token.type != "$END":
        pos = err.token.start_pos or 0
    else:
        return _end_of_input(source, err)
    code = _code_only(source)
    return (_lexical(source, pos, code) or _reserved_word(source, pos, code)
            or _in_probe_description(source, pos, err)
            or (_bad_character(source, pos) if isinstance(err, UnexpectedCharacters)
                else _unexpected_token(source, err)))


def _lexical(source: str, pos: int, code: str) -> DSyntaxError | None:
    """Problems visible from the characters at pos alone."""
    here = source[pos:pos + 2]
    if here == "/*":
        return DSyntaxError("unterminated comment: '/*' has no matching '*/'",
                            _offset_span(source, pos, pos + 2))
    if here[:1] == '"' and not re.match(r'"(?:[^"\\\n]|\\.)*"', source[pos:]):
        return DSyntaxError("unterminated string literal", _offset_span(source, pos, pos + 1),
                            hint="a string must end with '\"' on the line where it starts")
    if here[:1] == "'" and not re.match(r"'(?:[^'\\\n]|\\.)*'", source[pos:]):
        return DSyntaxError("unterminated character constant",
                            _offset_span(source, pos, pos + 1))
    if here[:1] == "#" and not source[source.rfind("\n", 0, pos) + 1:pos].strip():
        line = source[pos:].split("\n", 1)[0]
        span = _offset_span(source, pos, pos + len(line.rstrip()))
        if re.match(r"#[ \t]*pragma[ \t]+D(?![^ \t\r\n])", line):
            return DSyntaxError("a #pragma line must be outside clauses", span)
        word = re.match(r"#[ \t]*\w*", line).group()
        return DSyntaxError(f"only '#pragma D ...' lines are supported, not '{word}'", span,
                            hint="dtrace-nb does not run the C preprocessor (dtrace -C)")
    return None


def _code_only(source: str) -> str:
    """source with comments, strings, character constants and pragma lines blanked out,
    offsets unchanged: for scanning code without tripping over text."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group())
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*',
                  blank, source, flags=re.DOTALL)


_RESERVED_RE = re.compile(r"(?<![-$:\w.?*\\\[\]!@])(" + "|".join(_RESERVED)
                          + r")(?![-$:\w.?*\\\[\]!])")


def _reserved_word(source: str, pos: int, code: str) -> DSyntaxError | None:
    """A reserved word at or before the error is almost surely its cause (`while (x) {`,
    `inline int x = 1;`): say so instead of describing the confused parse."""
    for m in _RESERVED_RE.finditer(code, 0, pos + 1):
        if m.start() > pos:
            break
        before = code[:m.start()].rstrip()
        if before.endswith(("->", ".")):
            continue  # a member name
        return DSyntaxError(_RESERVED[m.group()], _offset_span(source, m.start(), m.end()))
    return None


def _in_probe_description(source: str, pos: int, err) -> DSyntaxError | None:
    """A bad character inside a probe description (probe characters on both sides)."""
    if not 0 < pos < len(source) - 1 or source[pos - 1] not in PROBE_CHARS \
            or source[pos + 1] not in PROBE_CHARS:
        return None
    accepted = _accepted(err)
    if not {"PROBE_DESC", "LBRACE"} <= accepted:
        return None
    start = pos
    while start > 0 and source[start - 1] in PROBE_CHARS:
        start -= 1
    return DSyntaxError(f"invalid character {_char_name(source[pos])} in probe description "
                        f"{_quote(source[start:pos], 40)}", _offset_span(source, pos, pos + 1),
                        hint="a probe description is provider:module:function:name, made of "
                             "letters, digits and - _ . : $ * ? ! [ ] \\")


def _bad_character(source: str, pos: int) -> DSyntaxError:
    ch = source[pos] if pos < len(source) else ""
    hint = ""
    if ch == "`":
        hint = "D's `symbol syntax for kernel variables is not supported"
    return DSyntaxError(f"invalid character {_char_name(ch)}", _offset_span(source, pos, pos + 1),
                        hint=hint)


def _unexpected_token(source: str, err: UnexpectedToken) -> DSyntaxError:
    accepted = _accepted(err)
    found, start, end = _found(source, err.token, accepted)
    span = _offset_span(source, start, end)
    if err.token.type == "RBRACE" and "PROBE_DESC" in accepted:
        return DSyntaxError("unexpected '}' outside a clause", span,
                            hint="this '}' has no matching '{'")
    expected = _expected(accepted, _in_clause(err))
    message = f"unexpected {found}" + (f": expected {expected}" if expected else "")
    hint = ""
    if "SEMI" in accepted and _in_clause(err) and found.split(" ")[0] in (
            "identifier", "number", "string", "aggregation", "macro", "keyword"):
        hint = "statements are separated by ';'"
    return DSyntaxError(message, span, hint=hint)


def _end_of_input(source: str, err: UnexpectedInput) -> DSyntaxError:
    tok = getattr(err, "token", None)
    if tok is not None and tok.end_line:
        span = Span(tok.end_line, tok.end_column, tok.end_line, tok.end_column + 1)
    else:
        span = _end_span(source)
    accepted = _accepted(err)
    missing = []
    stack = _stack(err)
    for i in range(len(stack) - 1, -1, -1):
        item = stack[i]
        if not isinstance(item, Token):
            continue
        where = f"{item.line}:{item.column}"
        if item.type in _CLOSERS:
            closer = _CLOSERS[item.type]
            missing.append((closer, f"missing '{closer}' to close the '{item}' at {where}"))
        elif item.type == "SLASH" and i > 0 and isinstance(stack[i - 1], Tree) \
                and stack[i - 1].data == "probe_list":
            missing.append(("/", f"missing '/' to close the predicate opened at {where}"))
    parts = [text for _, text in missing[:3]]
    closer_terminal = {"/": "PRED_END", "}": "RBRACE", ")": "RPAR", "]": "RSQB"}
    if not missing or closer_terminal[missing[0][0]] not in accepted:
        expected = _expected(accepted, _in_clause(err))
        if expected:
            parts.insert(0, f"expected {expected}")
    return DSyntaxError("unexpected end of input" + (": " + "; ".join(parts) if parts else ""),
                        span)
