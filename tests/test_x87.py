"""The 387 against its manual, rule by rule.

The differential suite (test_x87_unicorn.py) compares values, tags, TOP and
condition codes with unicorn; what unicorn does not model, or models wrongly
against the 387 manual (Intel 387 DX Programmer's Reference and the SDM's
x87 chapter), is checked here: every exception flag with its masked
response, stack faults and C1, unmasked exceptions reported as #MF on the
next waiting instruction, the environment's instruction and operand
pointers, the constants under RC, FXAM of unsupported formats, FPREM's
quotient bits on any operands (against exact rational arithmetic), and the
transcendental functions where unicorn's host doubles are too coarse.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import x86env as xe
from asm import assemble
from hypothesis import given
from hypothesis import strategies as st

from lguestsim.x86 import x87_float as F

IE, DE, ZE, OE, UE, PE, SF, ES = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
C0, C1, C2, C3 = 0x100, 0x200, 0x400, 0x4000
FLAGS = 0x7F
DATA = xe.CODE + 0x800
INDEFINITE = F.INDEFINITE


def run(body: str, data: str = "", cw: int = 0x037F, cr0: int = 0, steps: int = 200) -> xe.Env:
    """Assemble ``fninit; fldcw; body; hlt`` (``data`` placed at DATA) and run it."""
    src = f"""
        fninit
        fldcw cwword
        {body}
        hlt
        .org {DATA - xe.CODE:#x}
    cwword: .word {cw:#x}
        .p2align 4
        {data}
    """
    env = xe.Env()
    env.cpu.cr0 = env.cpu.cr0 | cr0
    env.code(assemble(src, xe.CODE))
    env.cpu.run(steps)
    return env


def sw(env: xe.Env) -> int:
    return env.cpu.fpu.status()


def reg(env: xe.Env, i: int = 0) -> int:
    return env.cpu.fpu.reg(i)


def ext(v: float) -> int:
    return F.from_float(v)


# ------------------------------------------------------------ exceptions

def test_inexact_sets_pe_and_c1_says_rounded_up():
    env = run("fld1\n fidivl three", "three: .long 3")
    assert sw(env) & FLAGS == PE
    assert sw(env) & C1                                    # ...AAAB: rounded up
    assert reg(env) == F.pack(0, 0x3FFD, 0xAAAAAAAAAAAAAAAB)
    env = run("fld1\n fidivl three", "three: .long 3", cw=0x0F7F)   # chop
    assert sw(env) & FLAGS == PE and not sw(env) & C1
    assert reg(env) == F.pack(0, 0x3FFD, 0xAAAAAAAAAAAAAAAA)


def test_precision_control_rounds_to_24_and_53_bits():
    for pc, mant in ((0, 0xAAAAAB0000000000), (2, 0xAAAAAAAAAAAAA800), (3, 0xAAAAAAAAAAAAAAAB)):
        env = run("fld1\n fidivl three", "three: .long 3", cw=0x007F | (pc << 8))
        assert reg(env) == F.pack(0, 0x3FFD, mant), pc


def test_divide_by_zero_and_invalid_operations():
    env = run("fld1\n fldz\n fdivrp", "")                  # 1 / 0
    assert sw(env) & FLAGS == ZE and reg(env) == F.INF
    for body in ("fldz\n fldz\n fdivrp",                   # 0 / 0
                 "fld1\n fchs\n fsqrt",                    # sqrt(-1)
                 "fldz\n flds inf\n fmulp",                # 0 * inf
                 "flds inf\n flds inf\n fchs\n faddp"):    # inf - inf
        env = run(body, "inf: .long 0x7f800000")
        assert sw(env) & FLAGS == IE, body
        assert reg(env) == INDEFINITE, body


def test_snan_operand_is_invalid_and_quietened():
    env = run("flds snan", "snan: .long 0x7f800001")
    assert sw(env) & FLAGS == IE
    assert reg(env) == F.pack(0, 0x7FFF, 0xC000010000000000)
    env = run("fldt snan\n fld1\n faddp", "snan: .quad 0x8000000000000001\n .word 0x7fff")
    assert sw(env) & FLAGS == IE and reg(env) == F.pack(0, 0x7FFF, 0xC000000000000001)


def test_overflow_and_underflow_masked_responses():
    big = ".quad 0xffffffffffffffff\n .word 0x7ffe"
    env = run("fldt big\n fld %st\n fmulp", "big: " + big)
    assert sw(env) & FLAGS == OE | PE and sw(env) & C1 and reg(env) == F.INF
    env = run("fldt big\n fld %st\n fmulp", "big: " + big, cw=0x0F7F)     # chop: largest
    assert sw(env) & FLAGS == OE | PE and reg(env) == F.pack(0, 0x7FFE, F.M64)
    env = run("fldt tiny\n fld %st\n fmulp", "tiny: .quad 0x8000000000000001\n .word 0x0010")
    assert sw(env) & FLAGS == UE | PE and reg(env) == 0
    # an exact denormal result is no underflow while UE is masked
    env = run("fldt tiny\n fld1\n fld1\n faddp\n fdivrp",
              "tiny: .quad 0x8000000000000000\n .word 0x0001")
    assert sw(env) & FLAGS == 0 and reg(env) == F.pack(0, 0, 0x4000000000000000)


def test_unmasked_overflow_delivers_the_bias_adjusted_result():
    env = run("fldt big\n fld %st\n fmulp", "big: .quad 0x8000000000000000\n .word 0x7ff0",
              cw=0x0377)
    assert sw(env) & (OE | ES) == OE | ES
    assert reg(env) == F.pack(0, 0x7FF0 * 2 - 0x3FFF - 24576, F.JBIT)


def test_unmasked_underflow_delivers_the_bias_adjusted_result():
    env = run("fldt tiny\n fld %st\n fmulp", "tiny: .quad 0x8000000000000000\n .word 0x0010",
              cw=0x036F)
    assert sw(env) & (UE | PE | ES) == UE | ES                  # exact: no PE
    assert reg(env) == F.pack(0, 2 * (0x10 - 0x3FFF) + 0x3FFF + 24576, F.JBIT)


def test_unmasked_invalid_store_writes_nothing_and_does_not_pop():
    env = run("fldz\n fldz\n fdivrp", cw=0x037E)                 # 0/0, IE unmasked
    assert sw(env) & (IE | ES) == IE | ES and env.cpu.fpu.top == 6   # not popped
    env = run("fstpl out", "out: .double 2.5", cw=0x037E)        # from an empty stack
    assert sw(env) & (IE | SF | ES) == IE | SF | ES and env.cpu.fpu.top == 0
    assert struct.unpack("<d", env.mem.read(DATA + 0x10, 8))[0] == 2.5   # not stored


def test_denormal_operand_flag():
    env = run("flds den", "den: .long 1")
    assert sw(env) & FLAGS == DE
    env = run("fldt den\n fld1\n faddp", "den: .quad 1\n .word 0")
    assert sw(env) & FLAGS == DE | PE


def test_stack_overflow_and_underflow():
    env = run("fld1\n" * 9)
    assert sw(env) & (FLAGS | C1) == IE | SF | C1          # C1 = 1: overflow
    assert reg(env) == INDEFINITE and env.cpu.fpu.top == 7
    env = run("fadd %st(1), %st")
    assert sw(env) & (FLAGS | C1) == IE | SF                 # C1 = 0: underflow
    assert reg(env) == INDEFINITE
    env = run("fstps out", "out: .long 0")
    assert env.mem.read32(DATA + 0x10) == 0xFFC00000        # the single indefinite


def test_unmasked_exception_raises_mf_on_the_next_waiting_instruction():
    src = "fld1\n fldz\n fdivrp\n fnstsw %ax\n fld1"
    env = run(src, cw=0x037B, cr0=xe.CR0_NE)
    cpu = env.cpu
    assert cpu.last_exception == (xe.MF, None)
    assert cpu.eip == env.handler(xe.MF) + 1
    fld1_at = env.stack(1)[0]
    assert env.mem.read(fld1_at, 2) == b"\xd9\xe8"       # the fault points at the fld1
    assert cpu.eax & 0xFFFF & (ZE | ES | 0x8000) == ZE | ES | 0x8000   # fnstsw did not wait
    # the operands are untouched and the stack not popped
    assert cpu.fpu.top == 6 and cpu.fpu.reg(0) == 0 and cpu.fpu.reg(1) == F.ONE
    # fnclex clears it; fwait is then quiet
    env = run("fld1\n fldz\n fdivrp\n fnclex\n fwait\n fld1", cw=0x037B, cr0=xe.CR0_NE)
    assert env.cpu.last_exception is None and env.cpu.fpu.top == 5


def test_without_ne_the_error_goes_to_ferr():
    calls = []
    env = xe.Env()
    env.cpu.fpu.ferr = lambda cpu: calls.append(cpu.eip)
    env.code(assemble("""
        fninit
        fldcw cw
        fld1
        fldz
        fdivrp
        fwait
        hlt
    cw: .word 0x037b
    """, xe.CODE))
    env.cpu.run(50)
    assert env.cpu.last_exception is None and len(calls) == 1


def test_fcom_and_fucom_with_nans():
    q = "qnan: .long 0x7fc00000"
    env = run("flds qnan\n fld1\n fcom %st(1)", q)
    assert sw(env) & (C0 | C2 | C3) == C0 | C2 | C3 and sw(env) & FLAGS == IE
    env = run("flds qnan\n fld1\n fucom %st(1)", q)
    assert sw(env) & (C0 | C2 | C3) == C0 | C2 | C3 and sw(env) & FLAGS == 0
    env = run("fldt snan\n fld1\n fucom %st(1)", "snan: .quad 0x8000000000000001\n .word 0x7fff")
    assert sw(env) & FLAGS == IE
    for a, b, cc in (("one", "two", C0), ("two", "one", 0), ("one", "one", C3)):
        env = run(f"flds {b}\n flds {a}\n fcompp", "one: .float 1.0\n two: .float 2.0")
        assert sw(env) & (C0 | C2 | C3) == cc and env.cpu.fpu.top == 0


def test_fxam_classes():
    cases = {"0x8000000000000000, 0x3fff": C2, "0, 0": C3, "1, 0": C3 | C2,
             "0x8000000000000000, 0x7fff": C2 | C0, "0xc000000000000000, 0x7fff": C0,
             "0x4000000000000000, 0x3fff": 0, "0x4000000000000000, 0x7fff": 0}
    for v, cc in cases.items():
        m, e = v.split(",")
        env = run("fldt val\n fxam", f"val: .quad {m}\n .word {e}")
        assert sw(env) & (C0 | C2 | C3) == cc, v
    env = run("fxam")                                        # empty
    assert sw(env) & (C0 | C2 | C3) == C3 | C0
    env = run("fld1\n fchs\n fxam")
    assert sw(env) & C1                                      # C1 is the sign


def test_constants_round_by_rc():
    for rc, pi in ((0, 0xC90FDAA22168C235), (1, 0xC90FDAA22168C234), (2, 0xC90FDAA22168C235),
                   (3, 0xC90FDAA22168C234)):
        env = run("fldpi\n fldl2t", cw=0x037F | (rc << 10))
        assert reg(env, 1) == F.pack(0, 0x4000, pi)
        assert reg(env, 0) & F.M64 == (0xD49A784BCD1B8AFF if rc == 2 else 0xD49A784BCD1B8AFE)
        assert sw(env) & FLAGS == 0


def test_integer_and_bcd_stores():
    env = run("fldt v\n fistl i32\n fistps i16\n fldt w\n fbstp bcd",
              "v: .quad 0xc000000000000000\n .word 0x4000\n"     # 3.0
              "w: .quad 0x8000000000000000\n .word 0xc03a\n"     # -2**59
              "i32: .long 0\n i16: .word 0\n .p2align 4\n bcd: .fill 10", cw=0x037F)
    base = DATA + 0x10
    assert env.mem.read32(base + 20) == 3 and env.mem.read16(base + 24) == 3
    assert env.mem.read(base + 32, 10) == bytes.fromhex("88 34 42 03 23 75 60 64 57 80")
    # out of range: the integer indefinite, IE
    env = run("fldt big\n fistps out", "big: .quad 0x8000000000000000\n .word 0x4020\n"
              ".p2align 4\n out: .word 0")
    assert sw(env) & FLAGS == IE and env.mem.read16(DATA + 0x20) == 0x8000
    # 2.5 rounds to even, to -inf, to +inf and toward zero
    for rc, want in ((0, 2), (1, 2), (2, 3), (3, 2)):
        env = run("flds h\n fistpl out", "h: .float 2.5\n out: .long 0", cw=0x037F | rc << 10)
        assert env.mem.read32(DATA + 0x14) == want and sw(env) & FLAGS == PE


def test_bcd_round_trip():
    env = run("fbld bcd\n fbstp out", "bcd: .byte 0x21, 0x43, 0x65, 0x87, 9, 0, 0, 0, 0x99, 0x80\n"
              ".p2align 4\n out: .fill 10")
    assert env.cpu.fpu.top == 0
    assert env.mem.read(DATA + 0x20, 10) == bytes.fromhex("2143658709000000 9980")


def test_environment_pointers_and_layouts():
    env = run("fldl val\n fnstenv env32\n data16 fnstenv env16",
              "val: .double 1.5\n .p2align 4\n env32: .fill 28\n .p2align 4\n env16: .fill 14")
    mem = env.mem
    e32 = DATA + 0x20
    fld_at = xe.CODE + len(assemble("fninit\nfldcw 0", xe.CODE))
    words = struct.unpack("<7I", mem.read(e32, 28))
    assert words[0] & 0xFFFF == 0x037F and words[1] & 0x3800 == 0x3800
    assert words[2] & 0xFFFF == 0x3FFF                       # st0 valid, the rest empty
    assert words[3] == fld_at and words[4] & 0xFFFF == xe.CS0
    assert words[4] >> 16 == 0x505                            # DD 05: (5 << 8) | modrm
    assert words[5] == DATA + 0x10 and words[6] & 0xFFFF == xe.DS0
    w16 = struct.unpack("<7H", mem.read(DATA + 0x40, 14))
    assert w16[3] == fld_at & 0xFFFF and w16[4] == xe.CS0 and w16[5] == (DATA + 0x10) & 0xFFFF


def test_fsave_frstor_round_trip_keeps_80_bits():
    env = run("fldt v\n fldpi\n fnsave area\n fld1\n frstor area",
              "v: .quad 0x8000000000000001\n .word 0x3fff\n .p2align 4\n area: .fill 108")
    assert reg(env, 1) == F.pack(0, 0x3FFF, 0x8000000000000001)
    assert reg(env, 0) == F.pack(0, 0x4000, 0xC90FDAA22168C235) and env.cpu.fpu.top == 6


def test_fxtract_fscale_and_frndint():
    env = run("fldt den\n fxtract", "den: .quad 0x0000000000000003\n .word 0")
    assert reg(env, 1) == ext(-16445 + 1) and reg(env, 0) == F.pack(0, 0x3FFF, 0xC000000000000000)
    env = run("fldz\n fxtract")
    assert sw(env) & FLAGS == ZE and reg(env, 1) == F.pack(1, 0x7FFF, F.JBIT)
    env = run("flds inf\n fldz\n fscale", "inf: .long 0x7f800000")         # 0 * 2**inf
    assert sw(env) & FLAGS == IE
    env = run("flds h\n frndint", "h: .float -2.5", cw=0x077F)             # round down
    assert reg(env) == ext(-3.0) and sw(env) & FLAGS == PE


finite = st.builds(lambda s, e, m: F.pack(s, e, m | F.JBIT), st.integers(0, 1),
                   st.integers(0x3FFF - 200, 0x3FFF + 200), st.integers(0, (1 << 63) - 1))


def _value(x: int) -> Fraction:
    s, m, e = F.exact(x)
    v = Fraction(m) * (Fraction(2) ** e)
    return -v if s else v


@given(finite, finite, st.booleans())
def test_fprem_is_an_exact_remainder(a: int, b: int, nearest: bool):
    """FPREM/FPREM1 against rational arithmetic: r = a - q*b exactly, with
    |r| < |b| (or half of it), q's low bits in C0, C3, C1; partial when the
    exponents are 64 or more apart."""
    c = F.Rounding()
    r, q = F.remainder(a, b, c, nearest)
    va, vb, vr = _value(a), _value(b), _value(r)
    k = (va - vr) / vb
    assert k.denominator == 1
    if q is None:
        assert abs(vr) < abs(va)
        return
    assert int(k) & 7 == q if int(k) >= 0 else (-int(k)) & 7 == q
    if nearest:
        assert abs(vr) <= abs(vb) / 2
    else:
        assert abs(vr) < abs(vb) and (vr == 0 or (vr < 0) == (va < 0))
    assert c.flags & ~DE == 0


def test_fprem_condition_codes_and_partial_reduction():
    env = run("fildl b\n fildl a\n fprem", "a: .long 23\n b: .long 4")   # 23 = 5*4 + 3
    assert reg(env) == ext(3.0)
    assert sw(env) & (C0 | C1 | C2 | C3) == C0 | C1              # q = 5 = 101b
    # FPREM1 rounds the quotient to nearest even when |ST0| < |ST1| too
    env = run("fildl b\n fildl a\n fprem1", "a: .long -823\n b: .long 1229")
    assert reg(env) == ext(406.0) and sw(env) & (C0 | C1 | C2 | C3) == C1     # q = -1
    env = run("fld1\n fldt big\n fprem", "big: .quad 0x8000000000000000\n .word 0x4100")
    assert sw(env) & C2                                          # 2**257 mod 1: partial


# ------------------------------------------------------------ transcendental

def close(x: int, want: float, ulps: int = 2) -> bool:
    got = F.to_float(x)
    return abs(got - want) <= ulps * math.ulp(want)


def test_transcendental_values():
    env = run("fldt x\n f2xm1", "x: .quad 0x8000000000000000\n .word 0x3fc3")   # 2**-60
    assert close(reg(env), 2.0 ** -60 * math.log(2))        # unicorn says 0 here
    env = run("fld1\n fldt x\n fyl2xp1", "x: .quad 0x8000000000000000\n .word 0x3fc3")
    assert close(reg(env), 2.0 ** -60 / math.log(2))
    env = run("fld1\n fildl x\n fyl2x", "x: .long 1024")
    assert reg(env) == ext(10.0) and sw(env) & FLAGS == 0     # exact
    env = run("fldpi\n fsincos")
    # FLDPI is pi rounded up, so its sine is pi minus it, a little below zero
    pi = Fraction(0xC90FDAA22168C234C4C6628B80DC1CD1, 1 << 126)
    assert close(reg(env, 1), float(pi - _value(F.pack(0, 0x4000, 0xC90FDAA22168C235))))
    assert reg(env, 0) == ext(-1.0)
    env = run("fldl x\n fptan", "x: .double 0.5")
    assert reg(env) == F.ONE and close(reg(env, 1), math.tan(0.5))
    env = run("fldz\n fld1\n fchs\n fpatan")                  # atan2(0, -1) = pi
    assert reg(env) == F.pack(0, 0x4000, 0xC90FDAA22168C235)
    env = run("fldl x\n fsin", "x: .double 1e300")            # out of range
    assert sw(env) & C2 and F.to_float(reg(env)) == 1e300
    env = run("fld1\n fchs\n fld1\n fyl2x\n fld1\n fchs\n fld1\n fxch\n fyl2x")
    assert sw(env) & FLAGS == IE and reg(env) == INDEFINITE     # log of a negative


def test_tags_and_ffree_fincstp():
    env = run("fld1\n fldz\n flds inf\n fldt den\n ffree %st(3)\n fincstp",
              "inf: .long 0x7f800000\n .p2align 4\n den: .quad 1\n .word 0")
    tw = env.cpu.fpu.tag_word()
    top = env.cpu.fpu.top
    assert top == 5
    tags = [(tw >> (2 * ((top + i) & 7))) & 3 for i in range(8)]
    assert tags[:3] == [2, 1, 3] and tags[-1] == 2             # inf special, zero, freed


def test_pseudo_denormal_is_taken_for_its_value():
    """Exponent 0 with the integer bit set: the 387 reads it as the denormal
    value it stands for, 2**-16382 times its significand (with DE)."""
    env = run("fldt pd\n fadd %st, %st", "pd: .quad 0xa000000000000000\n .word 0")
    assert sw(env) & FLAGS == DE
    assert reg(env) == F.pack(0, 2, 0xA000000000000000)


def test_real_mode_environment_layouts():
    """In real mode the pointers are 20-bit addresses, split as the 387
    manual's real-mode layouts split them, with the opcode beside them."""
    from lguestsim.x86 import CPU, PhysicalMemory, x87
    cpu = CPU(PhysicalMemory(1 << 20))                       # a 386 starts in real mode
    f = cpu.fpu
    f.fip, f.fcs, f.fop, f.fdp = 0x1234, 0xF000, 0x5C3, 0x9ABCD
    f.top, f.tags[7] = 7, 0
    e16 = struct.unpack("<7H", x87.environment(cpu, f, False))
    ip = 0xF000 * 16 + 0x1234
    assert e16[:3] == (0x037F, 0x3800, 0x7FFF)
    assert e16[3] == ip & 0xFFFF and e16[4] == (ip >> 16) << 12 | 0x5C3
    assert e16[5] == 0xABCD and e16[6] == 0x9 << 12
    e32 = struct.unpack("<7I", x87.environment(cpu, f, True))
    assert e32[3] & 0xFFFF == ip & 0xFFFF and e32[4] == (ip >> 16) << 12 | 0x5C3
    x87.load_environment(cpu, f, x87.environment(cpu, f, True), True)
    assert (f.fip, f.fop, f.fdp, f.top) == (ip, 0x5C3, 0x9ABCD, 7)


# ------------------------------------------- the functions, to the last bit

def _dec(v: Fraction):
    from decimal import Decimal
    return Decimal(v.numerator) / Decimal(v.denominator)


def _pi():
    """pi in decimal, the recipe from Python's decimal documentation."""
    from decimal import Decimal, getcontext
    getcontext().prec += 2
    three = Decimal(3)
    lasts, t, s, n, na, d, da = 0, three, 3, 1, 0, 0, 24
    while s != lasts:
        lasts = s
        n, na = n + na, na + 8
        d, da = d + da, da + 32
        t = (t * n) / d
        s += t
    getcontext().prec -= 2
    return +s


def _sin_cos(x):
    """sin and cos in decimal (the documentation's series, after reducing x)."""
    from decimal import getcontext
    two_pi = 2 * _pi()
    x = x - two_pi * (x / two_pi).to_integral_value()
    out = []
    for start in (x, 1):
        getcontext().prec += 2
        i, lasts, s, num, fact, sign = (1 if start is x else 0), 0, +start, +start, 1, 1
        while s != lasts:
            lasts = s
            i += 2
            fact *= i * (i - 1)
            num *= x * x
            sign = -sign
            s += num / fact * sign
        getcontext().prec -= 2
        out.append(+s)
    return out


def _within_half_ulp(got: int, want) -> bool:
    """``got`` (an extended value) is ``want`` (a Decimal) correctly rounded:
    at most half a unit in its last place away (and a hair, for the
    reference's own error)."""
    from decimal import Decimal
    g = _value(got)
    _, m, e = F.exact(got)
    ulp = Fraction(2) ** (m.bit_length() - 1 + e - 63)
    err = abs(_dec(g) - want)
    return err <= _dec(ulp) * Decimal("0.50000001")


moderate = st.builds(lambda s, e, m: F.pack(s, e, m | F.JBIT), st.integers(0, 1),
                     st.integers(0x3FFF - 60, 0x3FFF + 18), st.integers(0, (1 << 63) - 1))


@given(moderate, moderate, st.sampled_from(("f2xm1", "fyl2x", "fyl2xp1", "fsin", "fcos",
                                            "fptan")))
def test_functions_are_correctly_rounded(x: int, y: int, name: str):
    """Against decimal arithmetic at 110 digits: the functions round to
    nearest exactly (a real 387 is within about one unit)."""
    from decimal import localcontext

    from lguestsim.x86 import x87_transcendental as T
    with localcontext() as ctx:
        ctx.prec = 110
        ln2 = ctx.ln(2)
        vx, vy = _dec(_value(x)), _dec(_value(y))
        if name == "f2xm1":
            x = x & ~(0x7FFF << 64) | (min((x >> 64) & 0x7FFF, 0x3FFE) << 64)   # |x| < 1
            want = ctx.exp(_dec(_value(x)) * ln2) - 1
            got = T.f2xm1(x, F.Rounding())[0]
        elif name == "fyl2x":
            x &= ~F.SIGN
            want = vy * ctx.ln(_dec(_value(x))) / ln2
            got = T.fyl2x(x, y, F.Rounding())[0]
        elif name == "fyl2xp1":
            x = x & ~(0x7FFF << 64) | (min((x >> 64) & 0x7FFF, 0x3FFD) << 64)   # |x| < 0.5
            want = vy * ctx.ln(1 + _dec(_value(x))) / ln2
            got = T.fyl2xp1(x, y, F.Rounding())[0]
        else:
            s, c = _sin_cos(vx)
            want = {"fsin": s, "fcos": c, "fptan": s / c}[name]
            got = T.FUNCTIONS[name](x, F.Rounding())[0]
        assert _within_half_ulp(got, want), (name, hex(x), hex(y), got)


@given(moderate, moderate)
def test_fpatan_is_the_angle_of_the_point(x: int, y: int):
    """FPATAN's result r is the angle of the point (ST0, ST1) rounded to
    nearest: rotating the point by -r leaves it on the positive x axis, off
    it by an angle of at most half a unit in r's last place."""
    from decimal import localcontext

    from lguestsim.x86 import x87_transcendental as T
    with localcontext() as ctx:
        ctx.prec = 110
        r = T.fpatan(x, y, F.Rounding())[0]
        vx, vy = _dec(_value(x)), _dec(_value(y))
        s, c = _sin_cos(_dec(_value(r)))
        norm = (vx * vx + vy * vy).sqrt()
        along, across = (vx * c + vy * s) / norm, (vy * c - vx * s) / norm
        _, m, e = F.exact(r)
        ulp = _dec(Fraction(2) ** (m.bit_length() - 1 + e - 63))
        assert along > 0 and abs(across) <= ulp * ctx.create_decimal("0.5000001")
