"""The x87 subset: enough floating point to show lazy FPU switching.

lguest's Host saves a Guest's FPU state only when the Guest actually uses the
FPU: it sets CR0.TS, the first FPU instruction traps with #NM, and only then
is the state switched.  The instructions here are the ones that story needs:
load constants and memory operands, add/sub/mul/div, store, fnsave/frstor,
the status and control words.  Registers hold Python floats (IEEE double),
not 80-bit extended values: a documented simplification; fnsave writes and
frstor reads the real 80-bit format.  Any other x87 opcode raises #NM when
CR0.TS or CR0.EM is set (as every FPU opcode does) and #UD otherwise.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

# (escape opcode, reg | 8+reg for register forms, rm | None | "i" for st(i)) -> (mnemonic, op)
X87_TABLE: dict[tuple, tuple[str, str]] = {
    (0xD9, 0, None): ("fld", "ld32"), (0xD9, 2, None): ("fst", "st32"),
    (0xD9, 3, None): ("fstp", "stp32"), (0xD9, 5, None): ("fldcw", "ldcw"),
    (0xD9, 7, None): ("fnstcw", "stcw"), (0xD9, 8, "i"): ("fld", "ldst"),
    (0xD9, 13, 0): ("fld1", "ld1"), (0xD9, 13, 6): ("fldz", "ldz"),
    (0xDD, 0, None): ("fld", "ld64"), (0xDD, 2, None): ("fst", "st64"),
    (0xDD, 3, None): ("fstp", "stp64"), (0xDD, 4, None): ("frstor", "rstor"),
    (0xDD, 6, None): ("fnsave", "save"), (0xDD, 7, None): ("fnstsw", "stsw"),
    (0xDD, 10, "i"): ("fst", "stst"), (0xDD, 11, "i"): ("fstp", "stpst"),
    (0xDB, 12, 3): ("fninit", "init"), (0xDF, 12, 0): ("fnstsw", "stswax"),
}
_ARITH = {0: "fadd", 1: "fmul", 4: "fsub", 5: "fsubr", 6: "fdiv", 7: "fdivr"}
for _r, _m in _ARITH.items():
    X87_TABLE[(0xD8, _r, None)] = (_m, "m32:" + _m)
    X87_TABLE[(0xDC, _r, None)] = (_m, "m64:" + _m)
    X87_TABLE[(0xD8, 8 + _r, "i")] = (_m, "st0_sti:" + _m)
# DC and DE with register operands write st(i); Intel swaps the r forms there.
_SWAP = {"fsub": "fsubr", "fsubr": "fsub", "fdiv": "fdivr", "fdivr": "fdiv"}
for _r, _m in _ARITH.items():
    _m2 = _SWAP.get(_m, _m)
    X87_TABLE[(0xDC, 8 + _r, "i")] = (_m2, "sti_st0:" + _m2)
    X87_TABLE[(0xDE, 8 + _r, "i")] = (_m2 + "p", "sti_st0p:" + _m2)

EMPTY = 3


@dataclass
class FPU:
    """x87 state: eight registers addressed relative to TOP, tags, CW and SW."""
    regs: list = field(default_factory=lambda: [0.0] * 8)
    tags: list = field(default_factory=lambda: [EMPTY] * 8)
    top: int = 0
    cw: int = 0x037F
    sw: int = 0

    def reset(self) -> None:
        self.regs = [0.0] * 8
        self.tags = [EMPTY] * 8
        self.top = 0
        self.cw = 0x037F
        self.sw = 0

    def status(self) -> int:
        return (self.sw & ~0x3800) | (self.top << 11)

    def st(self, i: int) -> float:
        return self.regs[(self.top + i) & 7]

    def set_st(self, i: int, v: float) -> None:
        self.regs[(self.top + i) & 7] = v
        self.tags[(self.top + i) & 7] = 0

    def push(self, v: float) -> None:
        self.top = (self.top - 1) & 7
        if self.tags[self.top] != EMPTY:
            self.sw |= 0x41  # stack overflow: IE and SF
        self.regs[self.top] = v
        self.tags[self.top] = 0

    def pop(self) -> float:
        v = self.regs[self.top]
        self.tags[self.top] = EMPTY
        self.top = (self.top + 1) & 7
        return v

    def tag_word(self) -> int:
        tw = 0
        for i in range(8):
            t = self.tags[i]
            if t != EMPTY:
                v = self.regs[i]
                t = 1 if v == 0.0 else (2 if (math.isnan(v) or math.isinf(v)) else 0)
            tw |= t << (2 * i)
        return tw


def to_ext80(v: float) -> bytes:
    """A double as the x87's 80-bit extended format (10 bytes, little-endian)."""
    bits = struct.unpack("<Q", struct.pack("<d", v))[0]
    sign = bits >> 63
    exp = (bits >> 52) & 0x7FF
    frac = bits & ((1 << 52) - 1)
    if exp == 0 and frac == 0:
        e, m = 0, 0
    elif exp == 0x7FF:
        e, m = 0x7FFF, (1 << 63) | (frac << 11)
    elif exp == 0:  # denormal double: normalise
        shift = frac.bit_length()
        m = frac << (64 - shift)
        e = 1 - 1023 + 16383 - (52 - shift + 1)
    else:
        e, m = exp - 1023 + 16383, (1 << 63) | (frac << 11)
    return m.to_bytes(8, "little") + ((sign << 15) | e).to_bytes(2, "little")


def from_ext80(b: bytes) -> float:
    m = int.from_bytes(b[:8], "little")
    se = int.from_bytes(b[8:10], "little")
    sign = -1.0 if se >> 15 else 1.0
    e = se & 0x7FFF
    if e == 0 and m == 0:
        return math.copysign(0.0, sign)
    if e == 0x7FFF:
        return math.copysign(math.inf, sign) if (m << 1) & ((1 << 64) - 1) == 0 else math.nan
    try:
        return sign * math.ldexp(m, e - 16383 - 63)
    except OverflowError:
        return math.copysign(math.inf, sign)


def _arith(name: str, a: float, b: float) -> float:
    try:
        if name == "fadd":
            return a + b
        if name == "fmul":
            return a * b
        if name == "fsub":
            return a - b
        if name == "fsubr":
            return b - a
        if name == "fdiv":
            return a / b
        if name == "fdivr":
            return b / a
    except ZeroDivisionError:
        num = a if name == "fdiv" else b
        if num == 0 or math.isnan(num):
            return math.nan
        return math.copysign(math.inf, num)
    raise ValueError(name)


def execute(cpu, op: str, rm: int | None, la: int | None) -> None:
    """Run one x87 operation; ``la`` is the linear address of a memory operand."""
    f = cpu.fpu
    if op == "init":
        f.reset()
    elif op == "ld1":
        f.push(1.0)
    elif op == "ldz":
        f.push(0.0)
    elif op == "ld32":
        f.push(struct.unpack("<f", cpu.read_linear(la, 4))[0])
    elif op == "ld64":
        f.push(struct.unpack("<d", cpu.read_linear(la, 8))[0])
    elif op == "ldst":
        f.push(f.st(rm))
    elif op in ("st32", "stp32"):
        v = f.st(0)
        try:
            data = struct.pack("<f", v)
        except OverflowError:
            data = struct.pack("<f", math.copysign(math.inf, v))
        cpu.write_linear(la, data)
        if op == "stp32":
            f.pop()
    elif op in ("st64", "stp64"):
        cpu.write_linear(la, struct.pack("<d", f.st(0)))
        if op == "stp64":
            f.pop()
    elif op in ("stst", "stpst"):
        f.set_st(rm, f.st(0))
        if op == "stpst":
            f.pop()
    elif op == "ldcw":
        f.cw = int.from_bytes(cpu.read_linear(la, 2), "little")
    elif op == "stcw":
        cpu.write_linear(la, f.cw.to_bytes(2, "little"))
    elif op == "stsw":
        cpu.write_linear(la, f.status().to_bytes(2, "little"))
    elif op == "stswax":
        cpu.eax = (cpu.eax & 0xFFFF0000) | f.status()
    elif op == "save":
        env = [f.cw | 0xFFFF0000, f.status() | 0xFFFF0000, f.tag_word() | 0xFFFF0000, 0, 0, 0, 0]
        data = b"".join(v.to_bytes(4, "little") for v in env)
        data += b"".join(to_ext80(f.st(i)) for i in range(8))
        cpu.write_linear(la, data)
        f.reset()
    elif op == "rstor":
        data = cpu.read_linear(la, 108)
        f.cw = int.from_bytes(data[0:2], "little")
        sw = int.from_bytes(data[4:6], "little")
        tw = int.from_bytes(data[8:10], "little")
        f.sw = sw & ~0x3800
        f.top = (sw >> 11) & 7
        for i in range(8):
            phys = (f.top + i) & 7
            f.regs[phys] = from_ext80(data[28 + 10 * i: 38 + 10 * i])
            f.tags[phys] = EMPTY if ((tw >> (2 * phys)) & 3) == EMPTY else 0
    else:
        kind, name = op.split(":")
        if kind == "m32":
            f.set_st(0, _arith(name, f.st(0), struct.unpack("<f", cpu.read_linear(la, 4))[0]))
        elif kind == "m64":
            f.set_st(0, _arith(name, f.st(0), struct.unpack("<d", cpu.read_linear(la, 8))[0]))
        elif kind == "st0_sti":
            f.set_st(0, _arith(name, f.st(0), f.st(rm)))
        elif kind in ("sti_st0", "sti_st0p"):
            f.set_st(rm, _arith(name, f.st(rm), f.st(0)))
            if kind == "sti_st0p":
                f.pop()
        else:
            raise ValueError(op)
