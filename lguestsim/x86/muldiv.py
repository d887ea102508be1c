"""Multiply and divide: mul, imul (all three forms), div and idiv.

The 386 manual's multiplication and division, written inline by
translate.py.  Python's integers hold the double-width product exactly; the
flags are set at once (CF and OF say whether the high half matters, the rest
as a P6 leaves them).  A division by zero, or a quotient too large for its
register, raises #DE before anything is written.
"""

from __future__ import annotations

from .decode import Insn
from .emitter import MASK, SIGN, Emitter
from .faults import DE


def emit_mul(e: Emitter, insn: Insn) -> None:
    src = insn.operands[0]
    size = src[1]
    b = e.tmp("b")
    bexpr = e.value(insn, src, b)
    r = e.tmp("r")
    lo, hi = e.tmp("lo"), e.tmp("hi")
    mask = MASK[size]
    if size == 8:
        e.emit(f"{r} = (eax & 0xff) * {bexpr}")
        e.set_reg(16, 0, r)
        e.emit(f"{lo} = {r} & 0xff")
        e.emit(f"{hi} = {r} >> 8")
    else:
        e.emit(f"{r} = {e.get_reg(size, 0)} * {bexpr}")
        e.emit(f"{lo} = {r} & {mask}")
        e.emit(f"{hi} = {r} >> {size}")
        e.set_reg(size, 0, lo)
        e.set_reg(size, 2, hi)
    e.set_eager(_mul_flags(size, lo, f"{hi} != 0"))


def _mul_flags(size: int, lo: str, overflow: str) -> str:
    # CF = OF = overflow; SF, ZF, PF from the low half as a P6 leaves them; AF clear.
    return (f"(0x801 if {overflow} else 0) | PARITY[{lo} & 0xff] | (0x40 if {lo} == 0 else 0)"
            f" | (0x80 if {lo} & {SIGN[size]:#x} else 0)")


def emit_imul(e: Emitter, insn: Insn) -> None:
    ops = insn.operands
    if len(ops) == 1:
        src = ops[0]
        size = src[1]
        s = SIGN[size]
        b = e.tmp("b")
        bexpr = e.value(insn, src, b)
        e.emit(f"{b} = {bexpr}")
        e.emit(f"{b} = {b} - {2 * s:#x} if {b} & {s:#x} else {b}")
        a = e.tmp("a")
        e.emit(f"{a} = {e.get_reg(size, 0)}")
        e.emit(f"{a} = {a} - {2 * s:#x} if {a} & {s:#x} else {a}")
        r, lo, hi = e.tmp("r"), e.tmp("lo"), e.tmp("hi")
        e.emit(f"{r} = {a} * {b}")
        e.emit(f"{lo} = {r} & {MASK[size]}")
        if size == 8:
            e.set_reg(16, 0, f"{r} & 0xffff")
        else:
            e.emit(f"{hi} = ({r} >> {size}) & {MASK[size]}")
            e.set_reg(size, 0, lo)
            e.set_reg(size, 2, hi)
        ovf = f"{r} != ({lo} - {2 * s:#x} if {lo} & {s:#x} else {lo})"
        e.set_eager(_mul_flags(size, lo, ovf))
        return
    dst = ops[0]
    src1, src2 = (ops[0], ops[1]) if len(ops) == 2 else (ops[1], ops[2])
    size = dst[1]
    s = SIGN[size]
    a, b = e.tmp("a"), e.tmp("b")
    e1 = e.value(insn, src1, a)
    e.emit(f"{a} = {e1}")
    e2 = e.value(insn, src2, b)
    e.emit(f"{b} = {e2}")
    e.emit(f"{a} = {a} - {2 * s:#x} if {a} & {s:#x} else {a}")
    e.emit(f"{b} = {b} - {2 * s:#x} if {b} & {s:#x} else {b}")
    r, lo = e.tmp("r"), e.tmp("lo")
    e.emit(f"{r} = {a} * {b}")
    e.emit(f"{lo} = {r} & {MASK[size]}")
    e.set_reg(size, dst[2], lo)
    ovf = f"{r} != ({lo} - {2 * s:#x} if {lo} & {s:#x} else {lo})"
    e.set_eager(_mul_flags(size, lo, ovf))


def emit_div(e: Emitter, insn: Insn) -> None:
    src = insn.operands[0]
    size = src[1]
    signed = insn.mnemonic == "idiv"
    b = e.tmp("b")
    bexpr = e.value(insn, src, b)
    e.emit(f"{b} = {bexpr}")
    e.may_fault()
    a, q, rem = e.tmp("a"), e.tmp("q"), e.tmp("rm")
    if not signed:
        # The quotient fits exactly when the dividend's high half is below
        # the divisor, which also rules out dividing by zero: one comparison
        # is the whole #DE test, and nothing needs masking afterwards.
        high = e.get_reg(8, 4) if size == 8 else e.get_reg(size, 2)
        low = e.get_reg(size, 0)
        e.emit(f"if {high} >= {b}: raise CPUFault({DE})")
        e.emit(f"{q}, {rem} = divmod((({high} << {size}) | {low}) if {high} else {low}, {b})")
        if size == 8:
            e.set_reg(16, 0, f"({rem} << 8) | {q}")
        else:
            e.set_reg(size, 0, q)
            e.set_reg(size, 2, rem)
        return
    e.emit(f"if {b} == 0: raise CPUFault({DE})")
    if size == 8:
        e.emit(f"{a} = eax & 0xffff")
    else:
        e.emit(f"{a} = ({e.get_reg(size, 2)} << {size}) | {e.get_reg(size, 0)}")
    mask = MASK[size]
    s2 = 1 << (2 * size)
    e.emit(f"{a} = {a} - {s2:#x} if {a} >> {2 * size - 1} else {a}")
    s = SIGN[size]
    e.emit(f"{b} = {b} - {2 * s:#x} if {b} & {s:#x} else {b}")
    # truncating division, as the hardware does
    e.emit(f"{q} = abs({a}) // abs({b})")
    e.emit(f"if ({a} < 0) != ({b} < 0): {q} = -{q}")
    e.emit(f"{rem} = {a} - {q} * {b}")
    e.emit(f"if not {-s} <= {q} <= {s - 1}: raise CPUFault({DE})")
    if size == 8:
        e.set_reg(16, 0, f"(({rem} & 0xff) << 8) | ({q} & 0xff)")
    else:
        e.set_reg(size, 0, f"{q} & {mask}")
        e.set_reg(size, 2, f"{rem} & {mask}")


EMIT = {"mul": emit_mul, "imul": emit_imul, "div": emit_div, "idiv": emit_div}

# Every member is written inline: no helper ends a block for this family.
HELPERS: dict = {}
