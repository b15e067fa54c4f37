"""dtrace(1)'s tag and words for each class of D error, as tools and dtrace-utils' own
suite read them (`dtrace: failed to compile script x.d: [D_XXX] line N: TEXT`).

One row per rule of the compiler (not per suite test): an operator given an operand of
the wrong kind, an action or an aggregation used as a value, an aggregation's function,
parameters and keys, declarations of types and inlines, translators, pragmas,
speculation's order. The programs are written here; the words are libdtrace's
(dt_parser.c, dt_cg.c, dt_decl.c, dt_pragma.c, dt_ident.c).
"""

from __future__ import annotations

import pytest

from tests.fakeprobes import compile_refusal

OPERATORS = [
    ('BEGIN { x = "s"; y = -x; }', "[D_OP_ARITH] line 1: operator - requires an operand of "
                                    "arithmetic type"),
    ('BEGIN { x = "s"; y = ~x; }', "[D_OP_INT] line 1: operator ~ requires an operand of "
                                    "integral type"),
    ('BEGIN { x = "s"; y = !x; }', "[D_OP_SCALAR] line 1: operator ! requires an operand of "
                                    "scalar type"),
    ('BEGIN { x = "a" & "b"; }', "[D_OP_INT] line 1: operator & requires operands of "
                                 "integral type"),
    ('BEGIN { x = 2 << "b"; }', "[D_OP_INT] line 1: operator << requires operands of "
                                "integral type"),
    ('BEGIN { x = "a" * 2; }', "[D_OP_ARITH] line 1: operator * requires operands of "
                               "arithmetic type"),
    ('BEGIN { x = "a" && 1; }', "[D_OP_SCALAR] line 1: operator && requires operands of "
                                "scalar type"),
    ('BEGIN { x = 1 + "a"; }', '[D_OP_INCOMPAT] line 1: operands have incompatible types: '
                               '"int" + "string"'),
    ('BEGIN { x = pid == "a"; }', '[D_OP_INCOMPAT] line 1: operands have incompatible types: '
                                  '"pid_t" == "string"'),
    ("BEGIN { x = (void *)0; y = x + 1; }", '[D_OP_INCOMPAT] line 1: operands have '
                                            'incompatible types: "void *" + "int"'),
    ('BEGIN { x = "s" ? 1 : 2; }', "[D_OP_SCALAR] line 1: operator ?: expression must be of "
                                   "scalar type"),
    ('BEGIN { x = pid ? 1 : "a"; }', "[D_OP_INCOMPAT] line 1: operator ?: operands must have "
                                     "compatible types"),
    ("BEGIN { x = *pid; }", "[D_DEREF_NONPTR] line 1: cannot dereference non-pointer type"),
    ("BEGIN { x = (void *)0; y = *x; }", "[D_DEREF_VOID] line 1: cannot dereference pointer "
                                         "to void"),
    ("BEGIN { x = 1; y = &x; }", "[D_ADDROF_VAR] line 1: cannot take address of dynamic "
                                 "variable"),
    ('BEGIN { s = "a"; s++; }', "[D_OP_SCALAR] line 1: operator ++ requires operand of "
                                "scalar type"),
    ('BEGIN { i = 1; i += "a"; }', '[D_OP_INCOMPAT] line 1: operands have incompatible '
                                   'types: "int" += "string"'),
]

NO_VALUE = [
    # an action is void in D, an aggregation is not a value: each rule says so its way
    ("BEGIN { x = -trace(1); }", "[D_OP_ARITH] line 1: operator - requires an operand of "
                                 "arithmetic type"),
    ("BEGIN { x = pid ? trace(1) : trace(2); }", "[D_OP_ACT] line 1: action cannot be used "
                                                 "in a conditional context"),
    ("BEGIN { x = pid ? printf(\"a\") : trace(); }", "[D_PROTO_LEN] line 1: trace( ) "
     "prototype mismatch: 0 args passed, 1 expected"),
    ("BEGIN { x = stringof(trace(1)); }", "[D_STRINGOF_TYPE] line 1: cannot apply stringof "
                                          "to a value of type void"),
    ("BEGIN { x = progenyof(trace(1)); }", "[D_PROTO_ARG] line 1: progenyof( ) argument #1 "
     "is incompatible with prototype:\n\tprototype: pid_t\n\t argument: void"),
    ('BEGIN { printf("%s", printf("a")); }', "[D_PRINTF_ARG_TYPE] line 1: printf( ) argument "
     "#2 is incompatible with conversion #1 prototype:\n\tconversion: %s\n\t prototype: "
     "char [] or string (or use stringof)\n\t  argument: void"),
    ("BEGIN { @a = count(); trace(@a + 3); }", '[D_OP_INCOMPAT] line 1: operands have '
                                               'incompatible types: "aggregation" + "int"'),
    ('BEGIN { @a = count(); printf("%d", @a); }', "[D_PRINTF_ARG_TYPE] line 1: printf( ) "
     "argument #2 is incompatible with conversion #1 prototype:\n\tconversion: %d\n\t "
     "prototype: char, short, int, long, or long long\n\t  argument: aggregation"),
    ("BEGIN { @a = count(); trunc(@a, @a); }", "[D_PROTO_ARG] line 1: trunc( ) argument #2 "
     "is incompatible with prototype:\n\tprototype: int\n\t argument: aggregation"),
    ("BEGIN { @[trace(0)] = count(); }", "[D_KEY_TYPE] line 1: void expression may not be "
                                         "used as aggregation index: key #1"),
    ("BEGIN { printf(execname); }", "[D_PRINTF_ARG_FMT] line 1: printf( ) argument #1 is "
     "incompatible with prototype:\n\tprototype: string constant\n\t argument: string"),
    ('BEGIN { printf(""); }', "[D_PRINTF_FMT_EMPTY] line 1: printf( ) format string is empty"),
    ('BEGIN { printf("%zu", 1); }', "[D_SYNTAX] line 1: format conversion #1 is undefined: %z"),
    ("BEGIN { printf(1); }", "[D_PROTO_ARG] line 1: printf( ) argument #1 is incompatible "
                             "with prototype:\n\tprototype: string\n\t argument: int"),
]

AGGREGATIONS = [
    ("BEGIN { @ = trace(0); }", "[D_AGG_FUNC] line 1: @ must be assigned the result of an "
                                "aggregating function"),
    ("BEGIN { @ = nosuchfunc(); }", "[D_FUNC_UNDEF] line 1: undefined function name: "
                                    "nosuchfunc"),
    ("BEGIN { x = nosuchfunc(); }", "[D_FUNC_UNDEF] line 1: undefined function name: "
                                    "nosuchfunc"),
    ("BEGIN { @a[0][1] = count(); }", "[D_AGG_MDIM] line 1: improper attempt to reference "
                                      "@a as a multi-dimensional array"),
    ("BEGIN\n{\n\t@a = count();\n\t@a = max(1);\n}", "[D_AGG_REDEF] line 4: aggregation "
     "redefined: @a\n\t current: @a = max( )\n\tprevious: @a = count( ) : line 3"),
    ("BEGIN { @a = count(); @a; }", "[D_AGG_NULL] line 1: expression has null effect: @a"),
    ("BEGIN { @a[1]; }", "[D_AGG_NULL] line 1: expression has null effect: @a"),
    ("BEGIN { @a; }", "[D_IDENT_UNDEF] line 1: failed to resolve @a: Unknown variable name"),
    ("BEGIN { x = 1; @ = lquantize(1, x, 10); }", "[D_LQUANT_BASETYPE] line 1: lquantize( ) "
     "argument #1 must be an integer constant"),
    ("BEGIN { x = 1; @ = lquantize(1, 0, x); }", "[D_LQUANT_LIMTYPE] line 1: lquantize( ) "
     "argument #2 must be an integer constant"),
    ("BEGIN { x = 1; @ = lquantize(1, 0, 10, x); }", "[D_LQUANT_STEPTYPE] line 1: lquantize( ) "
     "argument #3 must be a non-zero positive integer constant"),
    ("BEGIN { x = 1; @ = llquantize(1, x, 0, 6, 20); }", "[D_LLQUANT_FACTORTYPE] line 1: "
     "llquantize( ) argument #1 must be an integer constant"),
    ("BEGIN { x = 1; @ = llquantize(1, 10, 0, 6, x); }", "[D_LLQUANT_STEPTYPE] line 1: "
     "llquantize( ) argument #4 must be a non-zero positive integer constant"),
    ("BEGIN\n{\n\t@ = lquantize(1, 0, 10, 1);\n\t@ = lquantize(1, 5, 10, 1);\n}",
     "[D_LQUANT_MATCHBASE] line 4: lquantize( ) base (argument #1) doesn't match previous "
     "declaration: expected 0, found 5"),
    ("BEGIN\n{\n\t@ = llquantize(1, 10, 0, 6, 20);\n\t@ = llquantize(1, 10, 0, 5, 20);\n}",
     "[D_LLQUANT_MATCHHMAG] line 4: llquantize() hmag (argument #3) doesn't match previous "
     "declaration: expected 6, found 5"),
    ("BEGIN { @ = lquantize(1, 0, 1000000, 1); }", "[D_LQUANT_STEPSMALL] line 1: lquantize( ) "
     "step (argument #3) too small: number of quantization levels must be a 16-bit quantity"),
    ('BEGIN { @ = quantize(1, "a"); }', "[D_PROTO_ARG] line 1: quantize( ) argument #2 is "
     "incompatible with prototype:\n\tprototype: int\n\t argument: string"),
    ("BEGIN { clear(1); }", "[D_CLEAR_AGGARG] line 1: clear( ) argument #1 is incompatible "
                            "with prototype:\n\tprototype: aggregation\n\t argument: int"),
    ("BEGIN { trunc(1); }", "[D_TRUNC_AGGARG] line 1: trunc( ) argument #1 is incompatible "
                            "with prototype:\n\tprototype: aggregation\n\t argument: int"),
    ("BEGIN { normalize(1, 2); }", "[D_NORMALIZE_AGGARG] line 1: normalize( ) argument #1 is "
     "incompatible with prototype:\n\tprototype: aggregation\n\t argument: int"),
    ("BEGIN { avg(1); }", "[D_CG_EXPR] line 1: aggregating function avg( ) may not be called "
                          "from a D expression (D program context required)"),
]

PRINTING = [
    ("BEGIN { @a = count(); @b[1] = count(); printa(@a, @b); }", "[D_PRINTA_AGGKEY] line 1: "
     "printa( ): @a and @b do not have matching key signatures: @a has 0 keys, @b has 1 key"),
    ('BEGIN { @a[1] = count(); @b["x"] = count(); printa("%d %@d %@d", @a, @b); }',
     "[D_PRINTA_AGGPROTO] line 1: printa( ): @b[ ] key #1 is incompatible with @a:\n"
     "        a key #1: int\n        b key #1: string"),
    ("BEGIN { @a = count(); trace(@a); }", "[D_TRACE_DYN] line 1: trace( ) may not be applied "
                                           "to a dynamic expression"),
    ("BEGIN { trace(trace(1)); }", "[D_TRACE_VOID] line 1: trace( ) may not be applied to a "
                                   "void expression"),
    ("BEGIN { trace(&1); }", "[D_ADDROF_LVAL] line 1: unacceptable operand for unary & "
                             "operator"),
    ("BEGIN:tick-1 { }", "[D_PDESC_ZERO] line 1: probe description ::BEGIN:tick-1 does not "
                         "match any probes"),
]

ARRAYS = [
    ("BEGIN\n{\n\tx[1, 2] = 1;\n\ty = x[1];\n}", "[D_PROTO_LEN] line 4: x[ ] prototype "
     "mismatch: 1 key passed, 2 expected"),
    ('BEGIN\n{\n\tx[1, "a"] = 1;\n\ty = x[1, 2];\n}', "[D_PROTO_ARG] line 4: x[ ] key #2 is "
     "incompatible with prototype:\n\tprototype: string\n\t      key: int"),
    ("int a[void];\nBEGIN {}", "[D_DECL_PROTO_TYPE] line 1: array prototype may not use "
                              "parameter of type void: (anonymous), parameter #1"),
    ("this int a[int];\nBEGIN {}", "[D_DECL_LOCASSC] line 1: associative arrays may not be "
                                   "declared as local variables: a"),
]

DECLARATIONS = [
    ("struct s { struct t m; };\nBEGIN {}", "[D_DECL_INCOMPLETE] line 1: incomplete "
                                            "struct/union/enum struct t: m"),
    ("union u { union t m; };\nBEGIN {}", "[D_DECL_INCOMPLETE] line 1: incomplete "
                                          "struct/union/enum struct t: m"),
    ("struct s { int a : 0; };\nBEGIN {}", "[D_DECL_BFCONST] line 1: positive integral "
                                           "constant expression expected as bit-field size"),
    ("struct s { char a : 9; };\nBEGIN {}", "[D_DECL_BFSIZE] line 1: bit-field too big for "
                                            "type: a"),
    ("struct s { int x; int x; };\nBEGIN {}", "[D_UNKNOWN] line 1: failed to define member "
     "'x': Duplicate member or variable name"),
    ("struct s { int x; };\nstruct s { int y; };\nBEGIN {}", "[D_DECL_TYPERED] line 2: type "
                                                             "redeclared: struct s"),
    ("enum e { A, A };\nBEGIN {}", "[D_UNKNOWN] line 1: failed to define enumerator 'A': "
                                   "Duplicate member or variable name"),
    ("enum e { A };\nenum f { A };\nBEGIN {}", "[D_DECL_IDRED] line 2: identifier "
                                               "redeclared: A"),
    ("enum e { A = 2147483648 };\nBEGIN {}", "[D_DECL_ENOFLOW] line 1: enumerator 'A' value "
                                             "overflows INT_MAX (2147483647)"),
    ("enum e { A = pid };\nBEGIN {}", "[D_DECL_ENCONST] line 1: enumerator 'A' must be "
                                      "assigned to an integral constant expression"),
    # a program of declarations only: the declaration's error comes first, D_EMPTY after
    ("enum e { A, A };", "[D_UNKNOWN] line 1: failed to define enumerator 'A': Duplicate "
                         "member or variable name"),
    ("inline int x = 1;\ninline int x = 2;", "[D_DECL_IDRED] line 2: identifier redefined: "
     "x\n\t current: inline definition\n\tprevious: scalar inline"),
    ("inline int rand = 1;", "[D_DECL_IDRED] line 1: identifier redefined: rand\n\t current: "
                             "inline definition\n\tprevious: function "),
    ("int x[88294967295];\nBEGIN {}", "[D_DECL_ARRBIG] line 1: array dimension too big"),
    ("BEGIN { x = (char int)0; }", "[D_DECL_COMBO] line 1: invalid type combination"),
    ("BEGIN { x = (char long)0; }", "[D_DECL_CHARATTR] line 1: invalid type declaration: "
                                    "short and long may not be used with char type"),
    ("BEGIN { x = sizeof (short void); }", "[D_DECL_VOIDATTR] line 1: invalid type "
     "declaration: attributes may not be used with void type"),
    ("BEGIN { x = (long short)0; }", "[D_UNKNOWN] line 1: failed to resolve type short long "
                                     ": Unknown type name"),
    ("struct s { int a : 2; };\nBEGIN { x = offsetof(struct s, a); }", "[D_OFFSETOF_BITFIELD] "
     "line 2: cannot take offset of a bit-field: a"),
    ("struct s { int a; };\nBEGIN { x = offsetof(struct s, b); }", "[D_UNKNOWN] line 2: "
     "failed to determine offset of b: Member name not found"),
    ("BEGIN { x = offsetof(int, a); }", "[D_OFFSETOF_TYPE] line 1: offsetof operand must be "
                                        "a struct or union type"),
    ("union u { int a; union u m; };\nBEGIN {}", "[D_DECL_INCOMPLETE] line 1: incomplete "
     "struct/union/enum union u: m"),
    ("enum e {\n\tA = 2147483648\n};\nBEGIN {}", "[D_DECL_ENOFLOW] line 3: enumerator 'A' "
     "value overflows INT_MAX (2147483647)"),
    ("struct s { int a; };\nstruct s v;\nBEGIN { x = &v; }", "[D_ADDROF_VAR] line 3: cannot "
     "take address of dynamic variable"),
    ("struct s { int a; };\nstruct s v;\nBEGIN { x = v->a; }", "[D_OP_PTR] line 3: operator "
     "-> must be applied to a pointer"),
    ("BEGIN { x = (int *)0; y = x->a; }", '[D_OP_SOU] line 1: operator -> cannot be applied '
     'to pointer to type "int"; must be applied to a struct or union pointer'),
    ("BEGIN { x = pid.a; }", '[D_OP_SOU] line 1: operator . cannot be applied to type '
                             '"pid_t"; must be applied to a struct or union'),
    ("int a[3];\nint b[3];\nBEGIN { a = b; }", '[D_OP_ARRFUN] line 3: operator = may not be '
     'applied to operand of type "int [3]"'),
    ("BEGIN { x[1] = 1; y = x; }", "[D_IDENT_BADREF] line 1: associative array 'x' may not "
                                   "be referenced as scalar"),
    ("BEGIN /execname/ { }", "[D_PRED_SCALAR] line 1: predicate result must be of scalar "
                             "type"),
    ("struct s;\nBEGIN { x = sizeof (struct s); }", "[D_SIZEOF_TYPE] line 2: cannot apply "
     "sizeof to an operand of unknown size"),
]

TRANSLATORS = [
    ("struct o { int a; };\ntranslator struct o < int X >\n{\n\tb = X;\n};\nBEGIN {}",
     "[D_XLATE_MEMB] line 5: translator member b is not a member of struct o"),
    ("translator int < int X >\n{\n\ta = X;\n};\nBEGIN {}",
     "[D_XLATE_SOU] line 4: translator output type must be a struct or union"),
    ("struct o;\ntranslator struct o < int X >\n{\n\ta = X;\n};\nBEGIN {}",
     "[D_XLATE_SOU] line 5: incomplete struct/union/enum struct o"),
]

PRAGMAS = [
    ('#pragma D error "stop here"\nBEGIN {}', "[D_PRAGERR] line 1: #error: stop here "),
    ("#pragma D depends_on library net.d\nBEGIN {}", "[D_PRAGMA_DEPEND] line 1: main program "
     "may not explicitly depend on a library"),
    ("#pragma D attributes Stable\nBEGIN {}", "[D_PRAGMA_MALFORM] line 1: malformed #pragma "
                                              "attributes <attributes> <ident>"),
    ("#pragma D option nspec=2 * 3\nBEGIN {}", "[D_PRAGMA_MALFORM] line 1: superfluous "
     "arguments specified for #pragma option"),
]

ACTIONS = [
    ("BEGIN { stack(0); }", "[D_STACK_SIZE] line 1: stack( ) argument #1 must be a non-zero "
                            "positive integer constant"),
    ("BEGIN { ustack(0); }", "[D_USTACK_FRAMES] line 1: ustack( ) argument #1 must be a "
                             "non-zero positive integer constant"),
    ("BEGIN { ustack(5, -1); }", "[D_USTACK_STRSIZE] line 1: ustack( ) argument #2 must be a "
                                 "positive integer constant"),
    ('BEGIN { stack("a"); }', "[D_PROTO_ARG] line 1: stack( ) argument #1 is incompatible "
                              "with prototype:\n\tprototype: uint32_t\n\t argument: string"),
    ("BEGIN { tracemem(0, 0); }", "[D_TRACEMEM_SIZE] line 1: tracemem( ) argument #2 must be "
                                  "a non-zero positive integral constant expression"),
    ('BEGIN { tracemem(0, "a"); }', "[D_PROTO_ARG] line 1: tracemem( ) argument #2 is "
     "incompatible with prototype:\n\tprototype: size_t\n\t argument: string"),
    ('BEGIN { tracemem("a", 8); }', "[D_TRACEMEM_ADDR] line 1: tracemem( ) argument #1 is "
     "incompatible with prototype:\n\tprototype: pointer or integer\n\t argument: string"),
    ('BEGIN { printa("%d"); }', "[D_PRINTA_PROTO] line 1: printa( ) prototype mismatch: 1 "
                                "args passed, 2 expected"),
    ("BEGIN { pid = 1; }", "[D_OP_WRITE] line 1: operator = can only be applied to a writable "
                           "variable"),
    ("BEGIN { $pid++; }", "[D_OP_LVAL] line 1: operator ++ requires modifiable lvalue as an "
                          "operand"),
    ("BEGIN { trace(args[10]); }", "[D_ARGS_IDX] line 1: args[10] is out of range (0..9)"),
    ("BEGIN { trace(args); }", "[D_IDENT_BADREF] line 1: args must be indexed: args[N]"),
    # a subroutine dtrace-nb lacks is still held to its prototype's argument count first
    ("BEGIN { x = alloca(); }", "[D_PROTO_LEN] line 1: alloca( ) prototype mismatch: 0 args "
                                "passed, 1 expected"),
    ("BEGIN { copyinto(1, 2); }", "[D_PROTO_LEN] line 1: copyinto( ) prototype mismatch: 2 "
                                  "args passed, 3 expected"),
    # $N are expanded as the program is read: an undefined one before any other error
    ("BEGIN { nosuchfunc($1); }", "[D_MACRO_UNDEF] line 1: macro argument $1 is not defined"),
    ("#pragma D option ldpath=/x\nBEGIN {}", "[D_PRAGMA_OPTSET] line 1: failed to set option "
     "'ldpath' to '/x': Option cannot be used from within a D program"),
]

SPECULATION = [
    # dtrace(1) refuses the order before it looks at what the action may do here
    ("BEGIN { speculate(1); chill(1); }", "[D_ACT_SPEC] line 1: destructive actions may not "
                                          "follow speculate( )"),
    ("BEGIN { speculate(1); raise(9); }", "[D_ACT_SPEC] line 1: destructive actions may not "
                                          "follow speculate( )"),
    ('BEGIN { chill("a"); }', "[D_PROTO_ARG] line 1: chill( ) argument #1 is incompatible "
                              "with prototype:\n\tprototype: int\n\t argument: string"),
]

CASES = (OPERATORS + NO_VALUE + AGGREGATIONS + PRINTING + ARRAYS + DECLARATIONS + TRANSLATORS
         + PRAGMAS + ACTIONS + SPECULATION)


@pytest.mark.parametrize("source, expected", CASES, ids=[c[1][:40] for c in CASES])
def test_dtrace_words(source, expected):
    err = compile_refusal(source)
    line = err.dtrace_line("failed to compile script x.d", True, source)
    assert line == "dtrace: failed to compile script x.d: " + expected
    # the part for people keeps the project's own words, located
    assert err.span is not None and str(err).startswith("dtrace: ")
