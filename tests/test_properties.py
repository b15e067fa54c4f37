"""Property tests: what the kernel computes equals a Python model of DTrace's semantics.

Each hypothesis example is one D program run by `dtrace-nb -s` on the real kernel. Its
inputs are stored in global variables first, so clang cannot fold the arithmetic at
compile time: the BPF program computes every result at run time. The models are written
here, from C's rules (integer promotions, usual arithmetic conversions, wrap-around,
truncating division) and from DTrace's bucket definitions (dtrace.c's
dtrace_aggregate_quantize / _lquantize; llquantize is checked against the model in
aggregate/buckets.py, written separately from the kernel-side C in codegen/aggregate.h).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dtrace_nb.aggregate import buckets as agg_buckets
from dtrace_nb.aggregate import values as agg_values
from dtrace_nb.text import aggregations as text
from tests.test_language import run_d

pytestmark = pytest.mark.kernel
SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

TYPES = {"int32_t": (32, True), "uint32_t": (32, False), "int64_t": (64, True),
         "uint64_t": (64, False), "int16_t": (16, True), "uint8_t": (8, False)}


def wrap(value: int, bits: int, signed: bool) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >> (bits - 1) else value


def promote(bits: int, signed: bool) -> tuple[int, bool]:
    return (32, True) if bits < 32 else (bits, signed)


def common(a: tuple[int, bool], b: tuple[int, bool]) -> tuple[int, bool]:
    a, b = promote(*a), promote(*b)
    if a[0] != b[0]:
        return a if a[0] > b[0] else b
    return a if not a[1] else b if not b[1] else a


def c_div(x: int, y: int) -> int:
    q = abs(x) // abs(y)
    return q if (x < 0) == (y < 0) else -q


def model(op: str, x: int, tx: str, y: int, ty: str) -> tuple[int, bool]:
    """DTrace's result (value, signed) of `(tx)x op (ty)y`: the result type is C's (integer
    promotions, usual arithmetic conversions), but each operand keeps its own value in a
    64-bit register (sign- or zero-extended from its type) and the operator works on the
    registers, signed or not as the result type is; printing narrows to the result type.
    (So `(int32_t)-1 / (uint32_t)7` divides 2^64-1, not 2^32-1, as DTrace does.)"""
    a, b = TYPES[tx], TYPES[ty]
    x, y = wrap(x, *a), wrap(y, *b)
    if op in ("<<", ">>"):
        bits, signed = promote(*a)
        r = x << y if op == "<<" else wrap(x, 64, signed) >> y
        return wrap(r, bits, signed), signed
    bits, signed = common(a, b)
    xv, yv = wrap(x, 64, signed), wrap(y, 64, signed)
    r = {"+": xv + yv, "-": xv - yv, "*": xv * yv, "&": xv & yv, "|": xv | yv,
         "^": xv ^ yv}.get(op)
    if op == "/":
        r = c_div(xv, yv)
    elif op == "%":
        r = xv - c_div(xv, yv) * yv
    return wrap(r, bits, signed), signed


INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
EDGES = st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, -(2**31), 2**32 - 1, 2**63 - 1, -(2**63),
                         2**64 - 1, 255, 256, -128, 65535, 7, -7])
OPERAND = st.one_of(INT64, EDGES)


def d_constant(v: int) -> str:
    """`v` as D constant text: -2^63 is no decimal constant (9223372036854775808 fits no
    signed type, D_INT_OFLOW), so it is written as an expression."""
    if v == -(2**63):
        return "(-9223372036854775807LL - 1)"
    return f"{v}ULL" if v >= 2**63 else f"{v}LL"


@st.composite
def expressions(draw):
    op = draw(st.sampled_from(["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"]))
    tx, ty = draw(st.sampled_from(sorted(TYPES))), draw(st.sampled_from(sorted(TYPES)))
    x, y = draw(OPERAND), draw(OPERAND)
    if op in ("<<", ">>"):
        ty = "int32_t"
        y = draw(st.integers(min_value=0, max_value=promote(*TYPES[tx])[0] - 1))
    if op in ("/", "%") and wrap(y, *TYPES[ty]) == 0:
        y = 3
    return op, x, tx, y, ty


@SETTINGS
@given(st.lists(expressions(), min_size=25, max_size=25))
def test_integer_arithmetic_matches_c(tmp_path, exprs):
    lines, expected = [], []
    for i, (op, x, tx, y, ty) in enumerate(exprs):
        value, signed = model(op, x, tx, y, ty)
        lines.append(f"x{i} = ({tx}){d_constant(x)}; y{i} = ({ty}){d_constant(y)};")
        # %d prints signed, %u unsigned results; both use the result's own size
        lines.append(f'printf("%{"d" if signed else "u"}\\n", x{i} {op} y{i});')
        expected.append(str(value))
    prog = "BEGIN {\n" + "\n".join(lines) + "\nexit(0);\n}\n"
    done = run_d(tmp_path, prog)
    assert done.returncode == 0, done.stderr
    got = done.stdout.split()
    for i, (e, g) in enumerate(zip(expected, got)):
        assert g == e, (exprs[i], e, g)
    assert len(got) == len(expected)


# -- aggregating functions -------------------------------------------------------------

def quantize_model(v: int) -> int:
    if v == 0:
        return 63
    if v > 0:
        return min(63 + v.bit_length(), 126)
    return max(0, 63 - (-v).bit_length())


def lquantize_model(v: int, base: int, limit: int, step: int) -> int:
    levels = (limit - base) // step
    if v < base:
        return 0
    return min((v - base) // step, levels) + 1 if v < limit else levels + 1


VALUES = st.lists(st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1),
                            st.sampled_from([0, 1, -1, 2, 3, 4, 7, 8, 1023, 1024, 2**62, -2**62,
                                             2**63 - 1, -(2**63)]),
                            st.integers(min_value=-50, max_value=1100)),
                  min_size=1, max_size=40)


def _aggregate_program(values: list[int], agg: str) -> str:
    body = "".join(f"v = {d_constant(v)}; @q = {agg.replace('V', 'v')};\n" for v in values)
    return "BEGIN {\n" + body + "exit(0);\n}\n"


@SETTINGS
@given(VALUES)
def test_quantize_buckets_match_dtrace(tmp_path, values):
    buckets = [0] * agg_buckets.QUANTIZE_NBUCKETS
    for v in values:
        buckets[quantize_model(v)] += 1
    done = run_d(tmp_path, _aggregate_program(values, "quantize(V)"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n" + text.format_quantize(buckets) + "\n"


@SETTINGS
@given(VALUES, st.integers(min_value=-100, max_value=100), st.integers(min_value=1, max_value=30),
       st.integers(min_value=1, max_value=40))
def test_lquantize_buckets_match_dtrace(tmp_path, values, base, step, levels):
    limit = base + step * levels
    buckets = [0] * (levels + 2)
    for v in values:
        buckets[lquantize_model(v, base, limit, step)] += 1
    done = run_d(tmp_path, _aggregate_program(values, f"lquantize(V, {base}, {limit}, {step})"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n" + text.format_lquantize(buckets, (base, limit, step)) + "\n"


LLQ_PARAMS = st.sampled_from([(10, 0, 6, 20), (2, 0, 4, 4), (10, 1, 3, 10), (4, 0, 5, 16),
                              (10, 0, 2, 100)])


@SETTINGS
@given(VALUES, LLQ_PARAMS)
def test_llquantize_buckets_match_the_model(tmp_path, values, params):
    buckets = [0] * agg_buckets.llquantize_nbuckets(*params)
    for v in values:
        buckets[agg_buckets.llquantize_bucket(v, *params)] += 1
    args = ", ".join(map(str, params))
    done = run_d(tmp_path, _aggregate_program(values, f"llquantize(V, {args})"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "\n" + text.format_llquantize(buckets, params) + "\n"


@SETTINGS
@given(VALUES)
def test_scalar_aggregations_match_c(tmp_path, values):
    body = "".join(f"v = {d_constant(v)}; @c = count(); @s = sum(v); @mn = min(v); @mx = max(v); "
                   f"@a = avg(v); @sd = stddev(v);\n" for v in values)
    done = run_d(tmp_path, "BEGIN {\n" + body + "printa(\"%@d %@d %@d %@d %@d %@d\\n\", @c, @s, "
                 "@mn, @mx, @a, @sd); exit(0);\n}\n")
    assert done.returncode == 0, done.stderr
    n, total = len(values), sum(values)
    s64 = wrap(total, 64, True)  # sum() wraps in 64 bits
    got = [int(x) for x in done.stdout.split()[:6]]
    assert got[:4] == [n, s64, min(values), max(values)], done.stdout
    assert got[4] == c_div(s64, n)
    # stddev: DTrace's integer formula on the (64-bit) sum and 128-bit sum of squares
    sq = sum(v * v for v in values) % (1 << 128)
    assert got[5] == agg_values.stddev_value(n, s64, sq)
