"""Parse tree -> AST: the program, clauses, statements and expressions (declarations are
to_ast_decls.py's), every node with its span."""

from __future__ import annotations

import re

from lark import Token, Tree

from dtrace_nb.errors import DSyntaxError
from dtrace_nb.lang import ast
from dtrace_nb.lang.ast import Span
from dtrace_nb.lang.lexical import (char_value, checked, empty_predicate, int_literal,
                                    no_float, refuse_reserved, token_span, unescape)
from dtrace_nb.lang.to_ast_decls import DeclRules, converted, tokens_of

# C's binary operators by binding strength (all left-associative); ',' is D's comma operator.
_PRECEDENCE = {",": 1, "||": 4, "^^": 5, "&&": 6, "|": 7, "^": 8, "&": 9, "==": 10, "!=": 10,
               "<": 11, "<=": 11, ">": 11, ">=": 11, "<<": 12, ">>": 12, "+": 13, "-": 13,
               "*": 14, "/": 14, "%": 14}


class ToAST(DeclRules):
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
        return ast.Pragma(text.split()[2:], span=token_span(c[0]))  # words after '#pragma D'

    def clause(self, c):
        probes, pred, body = c
        return ast.Clause(probes, pred, body, span=self._span())

    def clause_default(self, c):
        probes, pred = c
        return ast.Clause(probes, pred, [], default_action=True, span=self._span())

    def probe_list(self, c):
        tokens = tokens_of(c, "PROBE_DESC")
        for tok in tokens:
            refuse_reserved(tok)
        return [ast.ProbeSpec(str(t), span=token_span(t)) for t in tokens]

    def predicate(self, c):
        return c[1]

    def empty_predicate(self, c):
        checked(empty_predicate)(c[0])

    # -- statements

    def body(self, c):
        *stmts, last = c[1:-1]
        out = converted(stmts)
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

    # -- expressions

    def assign_op(self, c):
        return str(c[0])

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
        return ast.KernelSym(module, name, span=token_span(c[0]))

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
        return converted(c)

    def int_lit(self, c):
        value, unsigned, long_ = int_literal(str(c[0]))
        return ast.IntLit(value, unsigned, long_, span=token_span(c[0]))

    def float_lit(self, c):
        checked(no_float)(c[0])

    def str_lit(self, c):
        return ast.StrLit(unescape(str(c[0])[1:-1]), span=token_span(c[0]))

    def char_lit(self, c):
        return ast.CharLit(char_value(str(c[0])), span=token_span(c[0]))

    def ident(self, c):
        refuse_reserved(c[0])
        return ast.Ident(str(c[0]), span=token_span(c[0]))

    def agg(self, c):
        return ast.AggRef(str(c[0])[1:], span=token_span(c[0]))

    def macro(self, c):
        text = str(c[0])
        quoted = text.startswith("$$")
        return ast.MacroVar(text[1 + quoted:], quoted, span=token_span(c[0]))

    def scoped(self, c):
        return ast.ScopedVar(str(c[0]), str(c[2]), span=self._span())
