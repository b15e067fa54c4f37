"""Every printf() conversion with its flags, as libdtrace's dt_printf.c prints it: the flag
parser of dt_printf_create, the C format dt_printf_format rebuilds, and C printf(3C)'s
rules for that format. Each expected string is worked out by hand; the comment says why."""

from __future__ import annotations

import time

import pytest

from dtrace_nb.text.printf import escape_string, format_printf
from dtrace_nb.lang.printf_format import parse_format
from dtrace_nb.errors import DCompileError

I4, U4, I8, U8, I1 = (4, True), (4, False), (8, True), (8, False), (1, True)


def pf(fmt, *args, types=None, **kw):
    return format_printf(fmt, list(args), types, **kw)


@pytest.mark.parametrize("fmt, args, types, want", [
    # %d/%i: C's signed conversion
    ("[%d]", [-42], None, "[-42]"),
    ("[%i]", [42], None, "[42]"),
    ("[%+d|%+d]", [5, -5], None, "[+5|-5]"),            # + forces a sign
    ("[% d|% d]", [5, -5], None, "[ 5|-5]"),            # space: a blank for positives
    ("[%+ d]", [5], None, "[+5]"),                      # + wins over space (C)
    ("[%6d|%-6d|%06d]", [-42, -42, -42], None, "[   -42|-42   |-00042]"),  # zeros after sign
    ("[%.4d]", [7], None, "[0007]"),                    # precision: minimum digits
    ("[%08.3d]", [42], None, "[     042]"),             # C ignores 0 with a precision
    ("[%.0d|%.d]", [0, 0], None, "[0|0]"),              # .0 is dropped (prec > 0 only)
    ("[%d]", [0x80000000], [I4], "[-2147483648]"),      # an int argument wraps at 32 bits
    ("[%d]", [200], [I1], "[-56]"),                     # a char argument at 8 bits
    # %u: the argument's bits as unsigned; + and space have no effect (C)
    ("[%u|%+u|% u]", [-1, 5, 5], [U4, U4, U4], "[4294967295|5|5]"),
    ("[%u]", [-1], [I8], "[18446744073709551615]"),
    # %x %X %o with #: 0x/0X only for non-zero values; # makes octal start with 0
    ("[%x|%X|%#x|%#X|%#x]", [255, 255, 255, 255, 0], None, "[ff|FF|0xff|0XFF|0]"),
    ("[%#010x|%-#8x|]", [255, 255], None, "[0x000000ff|0xff    |]"),
    ("[%o|%#o|%#o|%#.3o]", [8, 8, 0, 8], None, "[10|010|0|010]"),
    ("[%x]", [-1], [I4], "[ffffffff]"),
    # %c: the low byte as a character; width pads with spaces (0 too, as glibc does)
    ("[%c|%3c|%-3c|%03c]", [65, 66, 67, 68], None, "[A|  B|C  |  D]"),
    ("[%c]", [0x141], None, "[A]"),
    # %s: precision is the most characters; width pads; 0 pads with spaces
    ("[%s|%5s|%-5s|%.2s|%5.1s|%05s]", ["ab"] * 6, None,
     "[ab|   ab|ab   |ab|    a|   ab]"),
    ("[%.0s]", ["abc"], None, "[abc]"),                 # .0 dropped: the whole string
    # %% takes no argument
    ("[100%%]", [], None, "[100%]"),
    # ? is a 16-column width (LP64)
    ("[%?x]", [255], None, "[              ff]"),
    # flags after the width (dt_printf_create loops over flags and digits alike)
    ("[%5-d]", [3], None, "[3    ]"),
    # 0 before - : '-' cancels zero padding; - before 0: '0' (seen before any digit)
    # cancels '-', so %-05d zero-pads in DTrace
    ("[%0-5d|%-05d]", [42, 42], None, "[42   |00042]"),
    # ' groups thousands by the locale; dtrace(1) runs in the C locale: no grouping
    ("[%'d]", [1234567], None, "[1234567]"),
])
def test_integer_string_and_char_conversions(fmt, args, types, want):
    assert pf(fmt, *args, types=types) == want


@pytest.mark.parametrize("fmt, args, want", [
    ("[%*d]", [5, 42], "[   42]"),                # * width from the argument list
    ("[%*d]", [-5, 42], "[42   ]"),               # negative: left-justified, |width|
    ("[%-*d]", [5, 42], "[42   ]"),
    ("[%.*d]", [4, 42], "[0042]"),                # * precision
    ("[%.*d]", [-1, 42], "[42]"),                 # <= 0: no precision (prec > 0 only)
    ("[%*.*s]", [6, 2, "abcdef"], "[    ab]"),    # width first, then precision
    ("[%*d]", [2**32 + 3, 7], "[  7]"),           # the width is a C int: 2**32 + 3 -> 3
])
def test_star_width_and_precision(fmt, args, want):
    assert pf(fmt, *args) == want


@pytest.mark.parametrize("fmt, arg, want", [
    # D has no floating-point values: an integer argument is converted to double and
    # printed with C's %e/%f/%g (DTrace itself would reject the integer at compile time)
    ("[%f]", 3, "[3.000000]"),
    ("[%.2f|%8.1f|%-8.1f|%08.2f]", 3, "[3.00|     3.0|3.0     |00003.00]"),
    ("[%+f]", 3, "[+3.000000]"),
    ("[%e|%E]", 12345, "[1.234500e+04|1.234500E+04]"),
    ("[%g|%G]", 1234567, "[1.23457e+06|1.23457E+06]"),
    ("[%g|%#g]", 100, "[100|100.000]"),           # # keeps the trailing zeros
    ("[%.0f]", 2, "[2.000000]"),                  # .0 is dropped: default precision 6
])
def test_floating_conversions_of_integers(fmt, arg, want):
    assert pf(fmt, *([arg] * fmt.count("%"))) == want


def test_float_conversion_of_an_unsigned_argument_uses_its_type():
    # an unsigned int 0xffffffff is 4294967295, not -1
    assert pf("%.0e", 0xFFFFFFFF, types=[U4]) == "4.294967e+09"


def test_p_is_hex_of_the_pointer():
    # dt_printf.c's %p is %llx of the 64-bit address: no prefix; '#' adds 0x as for %x;
    # a negative value is its 64-bit pattern
    assert pf("[%p|%12p|%-12p]", 4096, 4096, 4096) == "[1000|        1000|1000        ]"
    assert pf("%#p", 4096) == "0x1000"
    assert pf("%p", -1) == "ffffffffffffffff"


def test_a_is_a_kernel_symbol_or_hex():
    # pfprint_addr: dtrace_addr2str's text printed with %s (so width and precision apply)
    syms = {0xffffffff81000010: "vmlinux`do_sys_open+0x10"}
    assert pf("[%a]", 0xffffffff81000010, ksym=syms.get) == "[vmlinux`do_sys_open+0x10]"
    # the text is 24 characters: 6 blanks make 30
    assert pf("[%-30a]", 0xffffffff81000010, ksym=syms.get) == \
        "[vmlinux`do_sys_open+0x10" + " " * 6 + "]"
    assert pf("[%.7a]", 0xffffffff81000010, ksym=syms.get) == "[vmlinux]"
    # no symbol: "0x%llx"
    assert pf("[%a]", 0x1234, ksym=syms.get) == "[0x1234]"
    assert pf("[%a]", 0x1234, ksym=None) == "[0x1234]"


def test_A_is_a_user_symbol_or_hex():
    assert pf("[%A]", 0x400000, usym={0x400000: "a.out`main"}.get) == "[a.out`main]"
    assert pf("[%A]", 0x400000) == "[0x400000]"  # no process to look in


@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_Y_is_ctime_rearranged(utc):
    # pfprint_time: ctime(3C) "Sat Mar  3 09:46:40 1973" -> year first, then month, the
    # space-padded day and the time: "1973 Mar  3 09:46:40" (100000000 s after the epoch)
    ns = 100_000_000 * 10**9 + 999_999_999  # the fraction of a second is dropped
    assert pf("%Y", ns) == "1973 Mar  3 09:46:40"
    assert pf("[%-22Y]", ns) == "[1973 Mar  3 09:46:40  ]"
    assert pf("[%.4Y]", ns) == "[1973]"
    assert pf("%Y", 0) == "1970 Jan  1 00:00:00"


def test_S_escapes_like_strchr2esc():
    # C escapes for the named control characters, " and \; octal for other bytes
    # outside '!'..'~' except space
    assert escape_string('a b\n\t"\\\x01\x7f') == 'a b\\n\\t\\"\\\\\\001\\177'
    assert pf("[%S]", "x\ny") == "[x\\ny]"
    assert pf("[%6S]", "\n") == "[    \\n]"


def test_length_modifiers_print_by_the_argument_type():
    # dt_printf.c's %hd %ld %lld %lu %llx print the argument's own size
    assert pf("%hd %ld %lld %lu %llx", 1, -2, 3, 4, 255) == "1 -2 3 4 ff"


@pytest.mark.parametrize("bad", [
    "%", "abc %5",      # name expected before end of format string
    "%q", "%j", "%-+q",  # undefined conversions
    "%5%",             # %% cannot be combined with other format flags
    "%1$d",            # positional formats are unsupported
    "%**d",            # more than one '*' for the width
    "%.1.2d",          # more than one '.'
    "%Lx",             # L goes only with e E f g G
    "%\u00b2d", "%.\u0663d",  # non-ASCII digits are not widths (the fuzzer found "%²")
])
def test_bad_formats(bad):
    with pytest.raises(DCompileError):
        parse_format(bad)


def test_at_flag_marks_an_aggregation_conversion():
    (c,) = parse_format("%-@10d")
    assert c.is_agg and c.kind == "agg" and c.conv == "d" and c.width == "10"
    assert "-" in c.flags
    (c,) = parse_format("%8@u")  # @ may follow the width
    assert c.is_agg and c.width == "8" and c.conv == "u"
    (c,) = parse_format("%d")
    assert not c.is_agg and c.kind == "int"


def test_k_prints_the_symbolised_stack_text():
    # %k takes a stack() or ustack(): the consumer hands over its frames' text
    frames = "\n              vmlinux`a+0x1\n              vmlinux`b+0x2\n"
    assert pf("[%k]", frames) == f"[{frames}]"
    assert [p.kind for p in parse_format("%k %@d") if not isinstance(p, str)] == ["stack", "agg"]
