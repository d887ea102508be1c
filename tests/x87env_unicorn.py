"""Differential testing of the 387 against unicorn: random x87 sequences.

Each case is ``fninit; fldcw`` (a random rounding and precision control, all
exceptions masked), then random x87 instructions with memory operands from a
pool of random bit patterns of every class (normals, denormals, zeros,
infinities, QNaNs and SNaNs, and for m80 unnormals, pseudo-infinities and
pseudo-NaNs), and a final ``fnsave`` whose image is
compared field by field: control word, status word, tag word and the eight
registers' 80 bits.  Stores (FST, FIST, FBSTP, FNSTSW, FNSTCW, FNSTENV,
FNSAVE) go to slots in the data area that are compared too.

Know the oracle.  Unicorn is QEMU 5.0's TCG: its x87 does arithmetic with
softfloat's floatx80 (a good oracle: values, RC and PC), but it does not
model the 387's exception flags (it only ever sets ZE, and for 0/0 too), nor
stack faults, nor C1 as the round-up bit, and a few instructions are wrong
against the 387 manual.  So:

* the exception flags, SF, ES and B are not compared here; tests/test_x87.py
  checks them instruction by instruction against the manual's rules;
* a generated sequence never overflows or underflows the stack (the
  generator keeps a model of the tags), and FST st(i) only writes a full
  register (QEMU leaves the tag of an empty one empty);
* C0-C3 are compared wherever QEMU writes them (compares, FXAM, FPREM,
  FINCSTP/FDECSTP, the trigonometric C2) or our core left them unchanged;
* before the comparison a pass over our own core replaces (in both) the
  instructions on operands where QEMU departs from the 387 manual by one
  with the same effect on the stack (fld1, fabs, fld st(0), fstp st(0) or
  fnop), each counted by its reason (``SETTLED``, printed by the corpus)
  and checked by the rule tests in test_x87.py instead:
  FXAM of an unsupported format (QEMU says normal), FSQRT of a negative
  number (QEMU sets C2), FXTRACT of anything but a normal or zero (QEMU uses
  the raw exponent), FSCALE by a NaN or an infinity, FPREM/FPREM1 beyond
  small integers (QEMU divides in doubles) or with a zero remainder of a
  negative dividend (QEMU gives +0), FPREM1 with ST0's exponent below ST1's
  (QEMU returns ST0 unrounded), FBSTP out of range or of a negative value
  that rounds to zero, a constant whose rounding by RC differs from its
  rounding to nearest (QEMU ignores RC there), FSCALE under PC below 64 bits (QEMU
  rounds it to PC, the manual says PC is for the five arithmetic operations
  only), FLD and FST of a single or double SNaN (QEMU does not quieten it);
* pseudo-denormals are left out of the operand pool: QEMU 5.0's softfloat
  computes garbage from them (the 387 takes them as the denormal value they
  stand for, and test_x87.py checks that);
* the transcendental instructions, which QEMU computes through host doubles,
  have their own family (``trans_case``): one instruction on operands exact
  in double (for F2XM1 and FYL2XP1 at least 2**-20, where QEMU's 1 added in
  a double leaves it some precision), the results compared rounded to double
  within 8 units in the last place (of 1.0 for F2XM1, plus QEMU's rounding
  of 1 + x for FYL2XP1); tags, TOP, C0, C2 and C3 exactly;
* unmasked exceptions: QEMU signals only ZE, and only at an explicit FWAIT,
  so the random sequences keep every exception masked, and a family of its
  own (``unmasked_case``) checks that both raise #MF at the same FWAIT after
  an unmasked division by zero (or neither, after FNCLEX);
* the instruction and operand pointers of FNSTENV/FNSAVE are not compared
  (QEMU stores zeros; tests/test_x87.py checks ours).
"""

from __future__ import annotations

import collections
import dataclasses
import random
import struct
import sys
from collections.abc import Callable

import x86env_unicorn as xu

from lguestsim.x86 import x87_float as F

DATA = xu.DATA
POOL = DATA               # 64 operand slots of 16 bytes
OUT = DATA + 0x400        # 32 store slots of 16 bytes
WORDS = DATA + 0x600      # 64 status/control word slots of 2 bytes
ENV = DATA + 0x700        # 4 environment slots of 32 bytes
SAVE = DATA + 0x800       # 2 save slots of 112 bytes
CWS = DATA + 0xA00        # 32 control words for FLDCW
DUMP = DATA + 0xC00       # the final FNSAVE
TOP_MASK, C0, C1, C2, C3 = 0x3800, 0x100, 0x200, 0x400, 0x4000
CCS = C0 | C1 | C2 | C3

SETTLED: collections.Counter[str] = collections.Counter()
FIGURES: collections.Counter[str] = collections.Counter()


class Picker:
    """Random choices from hypothesis (``draw``) or from a seeded Random."""

    def __init__(self, draw: Callable | None = None, rng: random.Random | None = None):
        self.draw, self.rng = draw, rng

    def int(self, lo: int, hi: int) -> int:
        if self.draw is not None:
            from hypothesis import strategies as st
            return self.draw(st.integers(lo, hi))
        return self.rng.randint(lo, hi)

    def choice(self, seq):
        return seq[self.int(0, len(seq) - 1)]


# ------------------------------------------------------------ bit patterns

def real_bits(p: Picker, fmt: tuple) -> int:
    """A random single or double of a random class."""
    prec, _, _, ebits = fmt
    emax = (1 << ebits) - 1
    frac = p.int(0, (1 << (prec - 1)) - 1)
    s = p.int(0, 1)
    k = p.choice(("normal", "normal", "normal", "near1", "int", "denormal", "zero", "inf",
                  "qnan", "snan"))
    if k == "near1":
        e = (emax >> 1) + p.int(-3, 3)
    elif k == "int":
        v = float(p.int(-5000, 5000))
        return struct.unpack("<I", struct.pack("<f", v))[0] if prec == 24 else \
            struct.unpack("<Q", struct.pack("<d", v))[0]
    elif k == "denormal":
        e, frac = 0, frac or 1
    elif k == "zero":
        e, frac = 0, 0
    elif k == "inf":
        e, frac = emax, 0
    elif k == "qnan":
        e, frac = emax, frac | (1 << (prec - 2))
    elif k == "snan":
        e, frac = emax, (frac & ~(1 << (prec - 2))) or 1
    else:
        e = p.int(1, emax - 1)
    return (s << (ebits + prec - 1)) | (e << (prec - 1)) | frac


def ext_bits(p: Picker) -> int:
    """A random extended real, including the encodings the 387 does not support."""
    m = p.int(0, (1 << 63) - 1)
    s = p.int(0, 1)
    # no pseudo-denormals: QEMU mishandles them as operands (see the docstring)
    k = p.choice(("normal", "normal", "normal", "near1", "near1", "denormal",
                  "zero", "inf", "qnan", "snan", "unnormal", "pseudo-nan", "tiny", "huge"))
    if k == "normal":
        return F.pack(s, p.int(1, 0x7FFE), m | F.JBIT)
    if k == "near1":
        return F.pack(s, F.BIAS + p.int(-4, 4), m | F.JBIT)
    if k == "tiny":
        return F.pack(s, p.int(1, 80), m | F.JBIT)
    if k == "huge":
        return F.pack(s, p.int(0x7FFE - 80, 0x7FFE), m | F.JBIT)
    if k == "denormal":
        return F.pack(s, 0, m or 1)
    if k == "zero":
        return F.pack(s, 0, 0)
    if k == "inf":
        return F.pack(s, 0x7FFF, F.JBIT)
    if k == "qnan":
        return F.pack(s, 0x7FFF, F.JBIT | F.QBIT | (m & (F.QBIT - 1)))
    if k == "snan":
        return F.pack(s, 0x7FFF, F.JBIT | ((m & (F.QBIT - 1)) or 1))
    if k == "unnormal":
        return F.pack(s, p.int(1, 0x7FFE), m & ~F.JBIT)
    return F.pack(s, 0x7FFF, m & ~F.JBIT)        # pseudo-infinity or pseudo-NaN


def int_bits(p: Picker, bits: int) -> int:
    k = p.choice(("small", "any", "edge"))
    if k == "small":
        v = p.int(-1000, 1000)
    elif k == "edge":
        v = p.choice((0, -1, 1, (1 << (bits - 1)) - 1, -(1 << (bits - 1))))
    else:
        v = p.int(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return v & ((1 << bits) - 1)


def bcd_bytes(p: Picker) -> bytes:
    digits = p.int(0, 18)
    v = p.int(0, 10 ** digits - 1) if digits else 0
    s = f"{v:018d}"
    return bytes(int(s[16 - 2 * i: 18 - 2 * i], 16) for i in range(9)) + \
        (b"\x80" if p.int(0, 1) else b"\x00")


# ---------------------------------------------------------------- the case

@dataclasses.dataclass
class Item:
    code: bytes
    kind: str
    slot: int | None = None       # the word slot an FNSTSW writes


@dataclasses.dataclass
class X87Case:
    family: str
    items: list[Item]
    data: bytearray = dataclasses.field(repr=False)
    env32: dict[int, bool] = dataclasses.field(default_factory=dict, repr=False)
    save32: dict[int, bool] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def code(self) -> bytes:
        return b"".join(i.code for i in self.items)

    def __repr__(self) -> str:
        return f"X87Case({self.family}: {self.code.hex()})"


def mem(esc: int, reg: int, addr: int, prefix: bytes = b"") -> bytes:
    return prefix + bytes((esc, (reg << 3) | 5)) + addr.to_bytes(4, "little")


def regform(esc: int, reg: int, i: int) -> bytes:
    return bytes((esc, 0xC0 | (reg << 3) | i))


FNINIT = bytes.fromhex("dbe3")


class Model:
    """The generator's view of the stack: which registers are full, and TOP."""

    def __init__(self) -> None:
        self.full = [False] * 8
        self.top = 0

    def has(self, i: int) -> bool:
        return self.full[(self.top + i) & 7]

    def push(self) -> None:
        self.top = (self.top - 1) & 7
        self.full[self.top] = True

    def pop(self) -> None:
        self.full[self.top] = False
        self.top = (self.top + 1) & 7


def control_word(p: Picker) -> int:
    return 0x7F | (p.int(0, 3) << 8) | (p.int(0, 3) << 10) | (p.int(0, 1) << 12)


ARITH_OPS = ("add", "mul", "sub", "subr", "div", "divr")
ARITH_REG = {"add": 0, "mul": 1, "sub": 4, "subr": 5, "div": 6, "divr": 7}


def gen_sequence(p: Picker, n: int) -> X87Case:
    data = bytearray(xu.DATA_SIZE)
    fmts = []
    for s in range(64):
        fmt = p.choice(("m32", "m64", "m80", "m80", "i16", "i32", "i64", "bcd"))
        fmts.append(fmt)
        a = 16 * s
        if fmt == "m32":
            data[a:a + 4] = real_bits(p, F.SINGLE).to_bytes(4, "little")
        elif fmt == "m64":
            data[a:a + 8] = real_bits(p, F.DOUBLE).to_bytes(8, "little")
        elif fmt == "m80":
            data[a:a + 10] = ext_bits(p).to_bytes(10, "little")
        elif fmt == "bcd":
            data[a:a + 10] = bcd_bytes(p)
        else:
            nb = {"i16": 16, "i32": 32, "i64": 64}[fmt]
            data[a:a + nb // 8] = int_bits(p, nb).to_bytes(nb // 8, "little")
    for i in range(32):
        struct.pack_into("<H", data, CWS - DATA + 2 * i, control_word(p))
    items = [Item(FNINIT, "init"), Item(mem(0xD9, 5, CWS), "ldcw")]
    m = Model()
    counters = {"out": 0, "word": 0, "env": 0, "save": 0}
    env32: dict[int, bool] = {}
    save32: dict[int, bool] = {}

    def slot_of(fmt: str) -> int:
        choices = [s for s in range(64) if fmts[s] == fmt]
        return POOL + 16 * p.choice(choices) if choices else POOL

    def out() -> int:
        counters["out"] = (counters["out"] + 1) % 32
        return OUT + 16 * counters["out"]

    def word() -> int:
        counters["word"] = (counters["word"] + 1) % 64
        return counters["word"]

    loads = {"m32": (0xD9, 0), "m64": (0xDD, 0), "m80": (0xDB, 5), "i16": (0xDF, 0),
             "i32": (0xDB, 0), "i64": (0xDF, 5), "bcd": (0xDF, 4)}
    arith_mem = {"m32": 0xD8, "m64": 0xDC, "i32": 0xDA, "i16": 0xDE}
    consts = ("d9e8", "d9e9", "d9ea", "d9eb", "d9ec", "d9ed", "d9ee")
    while len(items) < n + 2:
        full = [i for i in range(8) if m.has(i)]
        can_push = not m.has(-1)
        kind = p.choice(("load", "load", "load", "store", "arith", "arith", "arith", "compare",
                         "unary", "misc", "status"))
        if kind == "load" and can_push:
            how = p.choice(("mem", "mem", "st", "const"))
            if how == "mem":
                fmt = p.choice(tuple(loads))
                esc, reg = loads[fmt]
                items.append(Item(mem(esc, reg, slot_of(fmt)), "ld:" + fmt))
            elif how == "st" and full:
                items.append(Item(regform(0xD9, 0, p.choice(full)), "ld:st"))
            else:
                items.append(Item(bytes.fromhex(p.choice(consts)), "const"))
            m.push()
        elif kind == "store" and m.has(0):
            how = p.choice(("fst", "fstp", "fst80", "fist", "fistp", "fistp64", "fbstp", "st"))
            if how in ("fst", "fstp"):
                esc = p.choice((0xD9, 0xDD))
                items.append(Item(mem(esc, 2 if how == "fst" else 3, out()), how))
            elif how == "fst80":
                items.append(Item(mem(0xDB, 7, out()), "fstp80"))
            elif how in ("fist", "fistp"):
                esc = p.choice((0xDF, 0xDB))
                items.append(Item(mem(esc, 2 if how == "fist" else 3, out()), how))
            elif how == "fistp64":
                items.append(Item(mem(0xDF, 7, out()), "fistp"))
            elif how == "fbstp":
                items.append(Item(mem(0xDF, 6, out()), "fbstp"))
            else:
                i = p.choice(full)
                pop = p.int(0, 1)
                items.append(Item(regform(0xDD, 3 if pop else 2, i), "fst:st"))
                if pop:
                    m.pop()
                continue
            if how in ("fstp", "fst80", "fistp", "fistp64", "fbstp"):
                m.pop()
        elif kind == "arith" and m.has(0):
            op = p.choice(ARITH_OPS)
            how = p.choice(("mem", "st0", "sti", "p"))
            if how == "mem":
                fmt = p.choice(tuple(arith_mem))
                items.append(Item(mem(arith_mem[fmt], ARITH_REG[op], slot_of(fmt)), "arith"))
            elif how == "st0":
                items.append(Item(regform(0xD8, ARITH_REG[op], p.choice(full)), "arith"))
            else:
                # DC/DE name the reversed forms the other way round
                reg = ARITH_REG[{"sub": "subr", "subr": "sub", "div": "divr",
                                 "divr": "div"}.get(op, op)]
                i = p.choice(full)
                items.append(Item(regform(0xDC if how == "sti" else 0xDE, reg, i), "arith"))
                if how == "p":
                    m.pop()
        elif kind == "compare" and m.has(0):
            how = p.choice(("fcom", "fcomp", "fucom", "fucomp", "mem", "imem", "fcompp",
                            "fucompp", "ftst", "fxam"))
            if how in ("fcom", "fcomp"):
                items.append(Item(regform(0xD8, 2 if how == "fcom" else 3, p.choice(full)), "cmp"))
            elif how in ("fucom", "fucomp"):
                items.append(Item(regform(0xDD, 4 if how == "fucom" else 5, p.choice(full)), "cmp"))
            elif how == "mem":
                fmt = p.choice(("m32", "m64"))
                how = p.choice(("fcom", "fcomp"))
                items.append(Item(mem(0xD8 if fmt == "m32" else 0xDC, 2 if how == "fcom" else 3,
                                      slot_of(fmt)), "cmp"))
            elif how == "imem":
                fmt = p.choice(("i16", "i32"))
                how = p.choice(("fcom", "fcomp"))
                items.append(Item(mem(0xDE if fmt == "i16" else 0xDA, 2 if how == "fcom" else 3,
                                      slot_of(fmt)), "cmp"))
            elif how in ("fcompp", "fucompp"):
                if not m.has(1):
                    continue
                items.append(Item(bytes.fromhex("ded9" if how == "fcompp" else "dae9"), "cmp"))
                m.pop()
            elif how == "ftst":
                items.append(Item(bytes.fromhex("d9e4"), "cmp"))
            else:
                items.append(Item(bytes.fromhex("d9e5"), "fxam"))
            if how == "fcomp":
                m.pop()
            elif how in ("fcompp", "fucompp", "fucomp"):
                m.pop()
        elif kind == "unary" and m.has(0):
            how = p.choice(("fchs", "fabs", "fsqrt", "frndint", "fscale", "fxtract", "fprem",
                            "fprem1"))
            code = {"fchs": "d9e0", "fabs": "d9e1", "fsqrt": "d9fa", "frndint": "d9fc",
                    "fscale": "d9fd", "fxtract": "d9f4", "fprem": "d9f8", "fprem1": "d9f5"}[how]
            if how in ("fscale", "fprem", "fprem1") and not m.has(1):
                continue
            if how == "fxtract":
                if not can_push:
                    continue
                m.push()
            items.append(Item(bytes.fromhex(code), how))
        elif kind == "misc":
            how = p.choice(("fxch", "ffree", "fdecstp", "fincstp", "fnop", "fnclex", "fwait"))
            if how == "fxch":
                if not m.has(0) or not full:
                    continue
                i = p.choice(full)
                items.append(Item(regform(0xD9, 1, i), "fxch"))
            elif how == "ffree":
                i = p.int(0, 7)
                items.append(Item(regform(0xDD, 0, i), "ffree"))
                m.full[(m.top + i) & 7] = False
            elif how == "fdecstp":
                items.append(Item(bytes.fromhex("d9f6"), "stack"))
                m.top = (m.top - 1) & 7
            elif how == "fincstp":
                items.append(Item(bytes.fromhex("d9f7"), "stack"))
                m.top = (m.top + 1) & 7
            else:
                items.append(Item(bytes.fromhex({"fnop": "d9d0", "fnclex": "dbe2",
                                                 "fwait": "9b"}[how]), "neutral"))
        elif kind == "status":
            how = p.choice(("stsw", "stswax", "stcw", "ldcw", "env", "save"))
            if how == "stsw":
                w = word()
                items.append(Item(mem(0xDD, 7, WORDS + 2 * w), "stsw", w))
            elif how == "stswax":
                w = word()
                items.append(Item(bytes.fromhex("dfe0") + b"\x66\xa3" +
                                  (WORDS + 2 * w).to_bytes(4, "little"), "stsw", w))
            elif how == "stcw":
                items.append(Item(mem(0xD9, 7, WORDS + 2 * word()), "neutral"))
            elif how == "ldcw":
                items.append(Item(mem(0xD9, 5, CWS + 2 * p.int(0, 31)), "ldcw"))
            elif how == "env":
                counters["env"] = (counters["env"] + 1) % 4
                a = ENV + 32 * counters["env"]
                pre = p.choice((b"", b"\x66"))
                items.append(Item(mem(0xD9, 6, a, pre) + mem(0xD9, 4, a, pre), "env"))
                env32[counters["env"]] = not pre
            else:
                counters["save"] = (counters["save"] + 1) % 2
                a = SAVE + 112 * counters["save"]
                pre = p.choice((b"", b"\x66"))
                items.append(Item(mem(0xDD, 6, a, pre) + mem(0xDD, 4, a, pre), "save"))
                save32[counters["save"]] = not pre
    return X87Case("sequence", items, data, env32, save32)


# ------------------------------------------------------------ running

def _machine(case: X87Case, code: bytes) -> xu.Machine:
    code = code + mem(0xDD, 6, DUMP) + b"\xf4"
    image = xu.system_image() + [(xu.CODE, code), (DATA, bytes(case.data)),
                                 (xu.STACK_LO, bytes(xu.STACK_HI - xu.STACK_LO))]
    return xu.Machine(image=image, regs=[0, 0, 0, 0, xu.STACK_TOP, 0, 0, 0], eflags=2,
                      entry=xu.CODE, stop=xu.CODE + len(code) - 1,
                      regions=[(DATA, xu.DATA_SIZE)])


def _divergence(kind: str, fpu, rc: int, code: bytes, mem_) -> str | None:
    """Why QEMU would depart from the 387 manual on this instruction, or None."""
    def k(i: int) -> int:
        return F.kind(fpu.reg(i))
    if kind in ("ld:m32", "ld:m64"):
        n = 4 if kind == "ld:m32" else 8
        bits = int.from_bytes(mem_.read(int.from_bytes(code[2:6], "little"), n), "little")
        c = F.Rounding()
        F.from_memory(bits, F.SINGLE if n == 4 else F.DOUBLE, c)
        if c.flags & F.IE:
            return "fld of a single or double SNaN (QEMU does not quieten it)"
    if kind in ("fst", "fstp") and k(0) == F.SNAN and code[0] in (0xD9, 0xDD):
        return "fst of an SNaN to a single or double (QEMU does not quieten it)"
    if kind == "fxam" and k(0) == F.UNSUPPORTED:
        return "fxam of an unsupported format"
    if kind == "fsqrt" and fpu.reg(0) >> 79:
        return "fsqrt of a negative number, -0 or a negative NaN (QEMU sets C2)"
    if kind == "fxtract" and k(0) not in (F.NORMAL, F.ZERO):
        return "fxtract of a denormal, infinity, NaN or unsupported format"
    if kind == "fscale" and (k(1) not in (F.NORMAL, F.ZERO, F.DENORMAL)
                             or k(0) == F.UNSUPPORTED):
        return "fscale by a NaN, an infinity or an unsupported format"
    if kind in ("fprem", "fprem1"):
        for i in (0, 1):
            _, m, e = F.exact(fpu.reg(i))
            if k(i) not in (F.NORMAL, F.ZERO) or m.bit_length() + e > 26 or \
                    (e < 0 and m & ((1 << -e) - 1)):
                return "fprem beyond small integers"
        if k(1) == F.ZERO:
            return "fprem beyond small integers"
        if kind == "fprem1" and (fpu.reg(0) >> 64) & 0x7FFF < (fpu.reg(1) >> 64) & 0x7FFF:
            return "fprem1 with ST0's exponent below ST1's (QEMU leaves ST0 as it is)"
        r, _ = F.remainder(fpu.reg(0), fpu.reg(1), F.Rounding(), kind == "fprem1")
        if r == F.SIGN:
            return "fprem with a zero remainder of a negative dividend (QEMU says +0)"
    if kind == "fbstp":
        v = F.to_float(fpu.reg(0))
        if k(0) not in (F.NORMAL, F.ZERO, F.DENORMAL) or abs(v) >= 1e18 - 1 or \
                (fpu.reg(0) >> 79 and abs(v) < 1):
            return "fbstp out of range or of a negative value rounding to zero"
    if kind == "const" and rc != 0 and code[1] in DIRECTED.get(rc, ()):
        return "a constant whose rounding by RC differs from to nearest (QEMU ignores RC)"
    if kind == "fscale" and (fpu.cw >> 8) & 3 in (0, 2):
        return "fscale under a precision control below 64 bits (QEMU applies PC)"
    return None


# the constants (second opcode byte) whose 66-bit value rounds differently
# from round to nearest, by RC: down and chop for pi, log2(e), log10(2) and
# ln(2), up for log2(10)
DIRECTED = {1: (0xEA, 0xEB, 0xEC, 0xED), 3: (0xEA, 0xEB, 0xEC, 0xED), 2: (0xE9,)}

# what stands in for an instruction settled by the rule: fld1 for a constant
# or a load, fabs for fsqrt, fld st(0) for fxtract, fstp st(0) for fbstp,
# else fnop
STAND_IN = {"const": b"\xd9\xe8", "ld:m32": b"\xd9\xe8", "ld:m64": b"\xd9\xe8",
            "fsqrt": b"\xd9\xe1", "fxtract": b"\xd9\xc0", "fbstp": b"\xdd\xd8",
            "fstp": b"\xdd\xd8"}

# C0-C3 that QEMU writes, by kind (the rest it leaves alone)
QEMU_WRITES = {"cmp": C0 | C2 | C3, "fxam": CCS, "fprem": CCS, "fprem1": CCS, "stack": CCS,
               "init": CCS, "env": 0, "save": 0}


def sanitize(case: X87Case) -> tuple[bytes, dict[int, int], int]:
    """Run our core one instruction at a time; replace by NOPs the
    instructions where QEMU is known to depart from the manual, and work out
    which condition codes each status word store may be compared on."""
    from lguestsim.x86 import CPU, PhysicalMemory
    code = bytearray(case.code)
    offsets = []
    off = 0
    for it in case.items:
        offsets.append(off)
        off += len(it.code)
    m = _machine(case, bytes(code))
    mem_ = PhysicalMemory(xu.MEM_SIZE)
    for addr, data in m.image:
        mem_.write(addr, data)
    cpu = CPU(mem_)
    cpu.reset_flat32()
    cpu.gdtr = (xu.GDT_BASE, xu.GDT_LIMIT)
    cpu.idtr = (xu.IDT_BASE, xu.IDT_LIMIT)
    cpu.esp = xu.STACK_TOP
    cpu.eip = xu.CODE
    ok = CCS
    masks = {}
    for it, o in zip(case.items, offsets, strict=True):
        assert cpu.eip == xu.CODE + o, (hex(cpu.eip), o)
        why = _divergence(it.kind, cpu.fpu, (cpu.fpu.cw >> 10) & 3, it.code, mem_)
        if why:
            # an instruction with the same effect on the stack takes its place
            SETTLED[why] += 1
            repl = STAND_IN.get(it.kind, b"\xd9\xd0")
            repl += b"\x90" * (len(it.code) - len(repl))
            code[o:o + len(it.code)] = repl
            mem_.write(xu.CODE + o, repl)
            before = cpu.fpu.status()
            for _ in range(1 + len(it.code) - 2):
                cpu.step()
            ok &= ~((before ^ cpu.fpu.status()) & CCS)
            continue
        before = cpu.fpu.status()
        steps = 2 if it.kind in ("env", "save") or it.code.startswith(b"\xdf\xe0") else 1
        for _ in range(steps):
            cpu.step()
        after = cpu.fpu.status()
        writes = QEMU_WRITES.get(it.kind, 0)
        if it.kind in ("fsin", "fcos", "fsincos", "fptan"):
            writes = C2
        ok = (ok | writes) & ~((before ^ after) & CCS & ~writes)
        if it.kind == "stsw":
            masks[it.slot] = TOP_MASK | ok
    return bytes(code), masks, TOP_MASK | ok


def _fields(image: bytes, op32: bool = True) -> tuple[int, int, int, list[bytes]]:
    w = 4 if op32 else 2
    cw, sw, tw = (int.from_bytes(image[i * w:i * w + 2], "little") for i in range(3))
    n = 7 * w
    return cw, sw, tw, [image[n + 10 * i:n + 10 * i + 10] for i in range(8)]


def compare_fpu(tag: str, ours: bytes, uni: bytes, swmask: int, op32: bool = True,
                regs: bool = True) -> list[str]:
    a, b = _fields(ours, op32), _fields(uni, op32)
    diffs = []
    if a[0] != b[0]:
        diffs.append(f"{tag} control word: ours {a[0]:#06x} unicorn {b[0]:#06x}")
    if (a[1] ^ b[1]) & swmask:
        diffs.append(f"{tag} status word (compared {swmask:#06x}): ours {a[1]:#06x} "
                     f"unicorn {b[1]:#06x}")
    if a[2] != b[2]:
        diffs.append(f"{tag} tag word: ours {a[2]:#06x} unicorn {b[2]:#06x}")
    if regs:
        for i in range(8):
            if a[3][i] != b[3][i]:
                diffs.append(f"{tag} st({i}): ours {a[3][i][::-1].hex()} "
                             f"unicorn {b[3][i][::-1].hex()}")
    return diffs


FIELDS = ("control word", "status word", "tag word", "registers", "memory stores",
          "status/control word stores", "environments", "save areas", "faults and errors")


def field_of(diff: str) -> str:
    """Which of FIELDS a difference reported by the checks is in."""
    head = diff.split(":")[0]
    if head.startswith("store slot"):
        return "memory stores"
    if head.startswith("word slot"):
        return "status/control word stores"
    if head.startswith("env slot"):
        return "environments"
    if head.startswith("save slot"):
        return "save areas"
    for name in ("control word", "status word", "tag word"):
        if name in head:
            return name
    if "st(" in head:
        return "registers"
    return "faults and errors"


def check_case(case: X87Case) -> None:
    code, masks, final = sanitize(case)
    m = _machine(case, code)
    uni = xu.run_unicorn(m)
    ours = xu.run_core(m)
    FIGURES["sequences"] += 1
    FIGURES["instructions"] += len(case.items)
    diffs = [e for e in (uni.error, ours.error) if e]
    if not diffs and (uni.fault is not None or ours.fault is not None):
        diffs.append(f"fault: ours {ours.fault} unicorn {uni.fault}")
    if not diffs:
        o, u = ours.mem[(DATA, xu.DATA_SIZE)], uni.mem[(DATA, xu.DATA_SIZE)]
        d = DUMP - DATA
        diffs += compare_fpu("final", o[d:d + 108], u[d:d + 108], final)
        if o[OUT - DATA:WORDS - DATA] != u[OUT - DATA:WORDS - DATA]:
            for s in range(32):
                a = OUT - DATA + 16 * s
                if o[a:a + 16] != u[a:a + 16]:
                    diffs.append(f"store slot {s}: ours {o[a:a + 10].hex()} "
                                 f"unicorn {u[a:a + 10].hex()}")
        for s in range(64):
            a = WORDS - DATA + 2 * s
            mask = masks.get(s, 0xFFFF)
            wo, wu = struct.unpack_from("<H", o, a)[0], struct.unpack_from("<H", u, a)[0]
            if (wo ^ wu) & mask:
                diffs.append(f"word slot {s} (compared {mask:#06x}): ours {wo:#06x} "
                             f"unicorn {wu:#06x}")
        # the environment's layout is checked by its own round trip (FLDENV
        # follows) and by tests/test_x87.py; here, the words it holds
        for s, op32 in case.env32.items():
            a = ENV - DATA + 32 * s
            diffs += compare_fpu(f"env slot {s}", o[a:a + 28], u[a:a + 28], TOP_MASK, op32,
                                 regs=False)
        for s, op32 in case.save32.items():
            a = SAVE - DATA + 112 * s
            diffs += compare_fpu(f"save slot {s}", o[a:a + 108], u[a:a + 108], TOP_MASK, op32)
    FIGURES["fields compared"] += 1
    if diffs:
        FIGURES["mismatched sequences"] += 1
        for dd in diffs:
            FIGURES["mismatch: " + field_of(dd)] += 1
        raise AssertionError(f"{case!r}: {len(diffs)} difference(s)\n  " + "\n  ".join(diffs)
                             + "\n" + xu.disasm(code))
    FIGURES["agreements"] += 1


# ------------------------------------------------ unmasked exceptions

def unmasked_case(p: Picker) -> X87Case:
    """The one unmasked exception QEMU models as the 387 does: division of a
    finite nonzero number by zero with ZE unmasked (CR0.NE set).  Both must
    report #MF at the same instruction: the next FWAIT (QEMU checks only
    there, so no other waiting instruction comes between), or none when the
    divisor is not zero or FNCLEX cleared the error first."""
    data = bytearray(xu.DATA_SIZE)
    dividend = p.choice((1.5, -3.0, 1e300, -2.0 ** -1000, 7.25))
    divisor = p.choice((0.0, -0.0, 0.0, 2.0))
    struct.pack_into("<dd", data, 0, dividend, divisor)
    struct.pack_into("<H", data, CWS - DATA, 0x037B | (p.int(0, 3) << 10))
    form = p.choice(("fdiv", "fdivr", "fidiv"))
    items = [Item(FNINIT, "init"), Item(mem(0xD9, 5, CWS), "ldcw"),
             Item(mem(0xDD, 0, POOL), "ld:m64")]
    if form == "fdiv":
        items.append(Item(mem(0xDC, 6, POOL + 8), "arith"))
    elif form == "fidiv":
        struct.pack_into("<I", data, 16, 0 if divisor == 0 else 2)
        items.append(Item(mem(0xDA, 6, POOL + 16), "arith"))
    else:
        items = items[:2] + [Item(mem(0xDD, 0, POOL + 8), "ld:m64"),
                             Item(mem(0xDC, 7, POOL), "arith")]
    if p.int(0, 2) == 0:
        items.append(Item(bytes.fromhex("dbe2"), "neutral"))     # fnclex
    items += [Item(mem(0xDD, 7, WORDS), "stsw", 0), Item(b"\x9b", "neutral")]
    return X87Case("unmasked:" + form, items, data)


def check_unmasked(case: X87Case) -> None:
    m = _machine(case, case.code)
    m.cr0_or = 0x20                          # CR0.NE: the error as exception 16
    uni = xu.run_unicorn(m)
    ours = xu.run_core(m)
    FIGURES["sequences"] += 1
    FIGURES["instructions"] += len(case.items)
    diffs = [e for e in (uni.error, ours.error) if e]
    if not diffs and (ours.fault, ours.eip) != (uni.fault, uni.eip):
        diffs.append(f"fault: ours {ours.fault} at {ours.eip:#x}, unicorn {uni.fault} "
                     f"at {uni.eip:#x}")
    word = WORDS - DATA
    o, u = ours.mem[(DATA, xu.DATA_SIZE)], uni.mem[(DATA, xu.DATA_SIZE)]
    if (o[word] ^ u[word]) & 0x04 or (o[word + 1] ^ u[word + 1]) & 0xB8:
        diffs.append(f"status word ZE/ES/B/TOP: ours {o[word:word + 2].hex()} "
                     f"unicorn {u[word:word + 2].hex()}")
    if diffs:
        FIGURES["mismatched sequences"] += 1
        for dd in diffs:
            FIGURES["mismatch: " + field_of(dd)] += 1
        raise AssertionError(f"{case!r}\n  " + "\n  ".join(diffs))
    FIGURES["agreements"] += 1


# ------------------------------------------------- the transcendental family

TRANS = {"f2xm1": "d9f0", "fyl2x": "d9f1", "fptan": "d9f2", "fpatan": "d9f3",
         "fyl2xp1": "d9f9", "fsincos": "d9fb", "fsin": "d9fe", "fcos": "d9ff"}


def _double(p: Picker, lo: float, hi: float, tiny: int = 60) -> float:
    """A double in [lo, hi], drawn to cover small and large magnitudes (down
    to 2**-tiny, or zero)."""
    k = p.choice(("uniform", "small", "edge"))
    if k == "edge":
        return p.choice((lo, hi, 0.0, (lo + hi) / 2))
    frac = (p.int(0, 1 << 52) | (1 << 52)) / (1 << 53)
    if k == "small":
        return frac * 2.0 ** -p.int(1, tiny) * (hi if p.int(0, 1) else lo)
    v = lo + (hi - lo) * frac
    return v if v == 0 or abs(v) >= 2.0 ** -tiny else 0.0


def trans_case(p: Picker) -> X87Case:
    name = p.choice(tuple(TRANS))
    data = bytearray(xu.DATA_SIZE)
    y = _double(p, -1e6, 1e6)
    # QEMU computes 2**x - 1 and log2(1 + x) with the 1 added in a double, so
    # for |x| much below 2**-20 its result is mostly rounding error: such
    # operands are left to the rule tests (tests/test_x87.py)
    if name == "f2xm1":
        x = _double(p, -1.0, 1.0, tiny=20)
    elif name == "fyl2x":
        x = abs(_double(p, 1e-300, 1e300)) or 2.0
    elif name == "fyl2xp1":
        x = _double(p, -0.29, 0.29, tiny=20)
    elif name == "fpatan":
        x = _double(p, -1e6, 1e6)
    else:
        x = _double(p, -1e5, 1e5)
    struct.pack_into("<dd", data, 0, y, x)
    struct.pack_into("<H", data, CWS - DATA, 0x7F | (p.int(0, 3) << 10) | (3 << 8))
    items = [Item(FNINIT, "init"), Item(mem(0xD9, 5, CWS), "ldcw"),
             Item(mem(0xDD, 0, POOL), "ld:m64"), Item(mem(0xDD, 0, POOL + 8), "ld:m64"),
             Item(bytes.fromhex(TRANS[name]), name)]
    return X87Case("transcendental:" + name, items, data)


def _close(a: bytes, b: bytes, name: str) -> bool:
    """Two extended values agree rounded to double, within the error of
    QEMU's host-double formulas (see the module docstring)."""
    fa, fb = F.to_float(int.from_bytes(a, "little")), F.to_float(int.from_bytes(b, "little"))
    if fa != fa or fb != fb:
        return (fa != fa) == (fb != fb)
    if fa == fb:
        return True
    import math
    scale = max(abs(fa), abs(fb))
    if name == "f2xm1":
        scale = max(scale, 1.0)        # QEMU's pow(2, x) - 1 errs by ulps of 1.0
    return abs(fa - fb) <= 8 * math.ulp(scale)


def check_trans(case: X87Case) -> None:
    name = case.family.split(":")[1]
    m = _machine(case, case.code)
    uni = xu.run_unicorn(m)
    ours = xu.run_core(m)
    FIGURES["sequences"] += 1
    FIGURES["instructions"] += len(case.items)
    o, u = ours.mem[(DATA, xu.DATA_SIZE)], uni.mem[(DATA, xu.DATA_SIZE)]
    d = DUMP - DATA
    a, b = _fields(o[d:d + 108]), _fields(u[d:d + 108])
    diffs = compare_fpu("final", o[d:d + 108], u[d:d + 108], TOP_MASK | C2 | C3 | C0,
                        regs=False)
    x, y = struct.unpack_from("<dd", case.data, 0)[::-1]     # ST0 and ST1
    for i in range(8):
        full = (a[2] >> (2 * (((a[1] >> 11) + i) & 7))) & 3 != 3
        if full and not _close(a[3][i], b[3][i], name):
            if name == "fyl2xp1" and _fyl2xp1_within(x, y, a[3][i], b[3][i]):
                continue
            diffs.append(f"st({i}): ours {F.to_float(int.from_bytes(a[3][i], 'little'))!r} "
                         f"unicorn {F.to_float(int.from_bytes(b[3][i], 'little'))!r}")
    if diffs:
        FIGURES["mismatched sequences"] += 1
        for dd in diffs:
            FIGURES["mismatch: " + field_of(dd)] += 1
        raise AssertionError(f"{case!r} x={x!r} y={y!r}\n  " + "\n  ".join(diffs))
    FIGURES["agreements"] += 1


def _fyl2xp1_within(x: float, y: float, a: bytes, b: bytes) -> bool:
    import math
    fa = F.to_float(int.from_bytes(a, "little"))
    fb = F.to_float(int.from_bytes(b, "little"))
    # QEMU's error: log2 of (1 + x) rounded to a double, i.e. up to half an
    # ulp of 1.0 in the argument, times |y| / ln 2, plus a few ulps
    bound = abs(y) * math.ulp(1.0) / math.log(2) + 8 * math.ulp(max(abs(fa), abs(fb)))
    return abs(fa - fb) <= bound


# ---------------------------------------------------------------- corpus

def corpus_case(p: Picker, n: int) -> X87Case:
    """The corpus's n-th case: one in five transcendental, one in twenty an
    unmasked exception, the rest random sequences of 4 to 24 instructions."""
    if n % 5 == 4:
        return trans_case(p)
    if n % 20 == 3:
        return unmasked_case(p)
    return gen_sequence(p, p.int(4, 24))


def corpus(sequences: int, seed: int = 387) -> int:
    """Run the full corpus and print its figures; returns the mismatch count."""
    rng = random.Random(seed)
    bad = 0
    for n in range(sequences):
        p = Picker(rng=rng)
        case = corpus_case(p, n)
        FIGURES["family: " + case.family.split(":")[0]] += 1
        try:
            CHECKS[case.family.split(":")[0]](case)
        except AssertionError as e:
            bad += 1
            if bad <= 5:
                print(e, file=sys.stderr)
    print(f"x87 corpus (seed {seed}): {FIGURES['sequences']} sequences, "
          f"{FIGURES['instructions']} instructions, {FIGURES['agreements']} agreements, "
          f"{FIGURES['mismatched sequences']} mismatched")
    print("by family: " + ", ".join(f"{k[8:]} {v}" for k, v in sorted(FIGURES.items())
                                    if k.startswith("family: ")))
    print("mismatches per field: " + ", ".join(
        f"{name} {FIGURES['mismatch: ' + name]}" for name in FIELDS))
    print("instructions settled by the manual's rule instead of unicorn: "
          + ", ".join(f"{k}: {v}" for k, v in sorted(SETTLED.items())))
    return bad


CHECKS = {"sequence": check_case, "transcendental": check_trans, "unmasked": check_unmasked}


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 5000
    return 1 if corpus(n) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
