"""Bit and byte instructions: bt, bts, btr, btc, bsf, bsr and setcc.

The 386 manual's "bit and byte" group, written inline by translate.py.  The
bit tests with a register offset reach outside their operand in memory (the
offset is signed, in whole operands), which is why they compute their own
address.  test, which the manual lists here too, shares its code with and
(alu.py).
"""

from __future__ import annotations

from . import flags as F
from .decode import Insn
from .emitter import SIGN, Emitter


def emit_bittest(e: Emitter, insn: Insn) -> None:
    m = insn.mnemonic
    dst, src = insn.operands
    size = dst[1]
    a, b, bit = e.tmp("a"), e.tmp("b"), e.tmp("bit")
    if src[0] == "i":
        e.emit(f"{b} = {src[2] % size}")
    else:
        e.emit(f"{b} = {e.get_reg(size, src[2])}")
    if dst[0] == "m" and src[0] == "r":
        # A register bit offset reaches outside the operand: signed, in whole operands.
        s = SIGN[size]
        off = e.tmp("o")
        e.emit(f"{off} = ({b} - {2 * s:#x} if {b} & {s:#x} else {b}) >> {size.bit_length() - 1}")
        e.emit(f"{b} = {b} & {size - 1}")
        e.may_fault()
        ea = e.ea(insn)
        amask = "0xffffffff" if insn.mem.addr32 else "0xffff"
        la = e.linear(insn.mem.seg, f"(({ea}) + {off} * {size // 8}) & {amask}", size,
                         m != "bt")
        e.load(la, size, a)
    else:
        if src[0] == "r":
            e.emit(f"{b} = {b} & {size - 1}")
        la = e.read(insn, dst, a, write=m != "bt")
    e.emit(f"{bit} = ({a} >> {b}) & 1")
    if m != "bt":
        op = {"bts": f"{a} | (1 << {b})", "btr": f"{a} & ~(1 << {b})", "btc": f"{a} ^ (1 << {b})"}[m]
        e.write(insn, dst, op, la)
    e.set_eager(f"({e.arith_flags()} & ~1) | {bit}")


def emit_bitscan(e: Emitter, insn: Insn) -> None:
    dst, src = insn.operands
    size = dst[1]
    v = e.tmp("v")
    expr = e.value(insn, src, v)
    e.emit(f"{v} = {expr}")
    prior = e.arith_flags()
    e.emit(f"if {v}:")
    if insn.mnemonic == "bsf":
        e.emit(f"    {v} = ({v} & -{v}).bit_length() - 1")
    else:
        e.emit(f"    {v} = {v}.bit_length() - 1")
    e.ind += 1
    e.set_reg(size, dst[2], v)
    e.set_eager(f"({prior}) & ~0x40")
    e.ind -= 1
    e.emit("else:")
    e.ind += 1
    e.set_eager(f"({prior}) | 0x40")
    e.ind -= 1


def emit_setcc(e: Emitter, insn: Insn) -> None:
    e.write(insn, insn.operands[0], f"1 if {e.cond(insn.cc)} else 0")


EMIT = {m: emit_bittest for m in ("bt", "bts", "btr", "btc")}
EMIT.update({"bsf": emit_bitscan, "bsr": emit_bitscan})
EMIT.update({"set" + c: emit_setcc for c in F.CC_NAMES})

# Every member is written inline: no helper ends a block for this family.
HELPERS: dict = {}
