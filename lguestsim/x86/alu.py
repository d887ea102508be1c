"""Arithmetic and logic: add, or, adc, sbb, and, sub, xor, cmp, test, inc, dec, neg, not, daa...

The 386 manual's "binary arithmetic" and "logical" instructions, the ones a
compiled program is mostly made of.  Each is written inline into its block
(translate.py) and leaves its flags lazy (flags.py): the operands and result
are kept, and the flags are worked out only if something reads them.  adc and
sbb read the carry and set their flags at once; the decimal adjustments (daa,
aam and the rest) are rare: they are Python helpers below, which end their
block and work on the CPU object itself.
"""

from __future__ import annotations

from . import flags as F
from .decode import Insn
from .emitter import MASK, Emitter, add32, sub32
from .faults import DE, CPUFault
from .flags import AF, CF, PARITY
from .flags import OF as OF_BIT


def emit_alu(e: Emitter, insn: Insn) -> None:
    m = insn.mnemonic
    dst, src = insn.operands
    size = dst[1]
    mask = MASK[size]
    a, b, r = e.tmp("a"), e.tmp("b"), e.tmp("r")
    la = None
    if m in ("xor", "sub") and dst[0] == "r" and src == dst:
        # Zeroing a register: whatever it held, the flags are those of a
        # zero result from equal inputs, so they are kept as constants.
        e.set_reg(size, dst[2], "0")
        e.lazy(F.LOGIC if m == "xor" else F.SUB, size, "0", "0", "0")
        return
    la = e.read(insn, dst, a, write=m not in ("cmp", "test"))
    bexpr = e.value(insn, src, b)
    e.emit(f"{b} = {bexpr}") if bexpr != b else None
    if m == "add":
        e.emit(f"{r} = {add32(f'{a} + {b}')}" if size == 32 else f"{r} = ({a} + {b}) & {mask}")
        e.lazy(F.ADD, size, a, b, r)
    elif m == "sub":
        e.emit(f"{r} = {sub32(f'{a} - {b}')}" if size == 32 else f"{r} = ({a} - {b}) & {mask}")
        e.lazy(F.SUB, size, a, b, r)
    elif m == "cmp":
        e.lazy(F.CMP, size, a, b, "0")      # no result: its flags work it out
    elif m in ("and", "test"):
        e.emit(f"{r} = {a} & {b}")
        e.lazy(F.LOGIC, size, a, b, r)
    elif m == "or":
        e.emit(f"{r} = {a} | {b}")
        e.lazy(F.LOGIC, size, a, b, r)
    elif m == "xor":
        e.emit(f"{r} = {a} ^ {b}")
        e.lazy(F.LOGIC, size, a, b, r)
    else:  # adc, sbb: eager, with the carry in chosen at run time
        c = e.carry()
        if m == "adc":
            e.emit(f"{r} = ({a} + {b} + {c}) & {mask}")
            with_c, without = F.eflags_expr(F.ADC, size, a, b, r), F.eflags_expr(F.ADD, size, a, b, r)
        else:
            e.emit(f"{r} = ({a} - {b} - {c}) & {mask}")
            with_c, without = F.eflags_expr(F.SBB, size, a, b, r), F.eflags_expr(F.SUB, size, a, b, r)
        if dst[0] == "m":
            e.write(insn, dst, r, la)
        else:
            e.write(insn, dst, r)
        e.set_eager(f"({with_c}) if {c} else ({without})")
        return
    if m not in ("cmp", "test"):
        e.write(insn, dst, r, la)


def emit_unary(e: Emitter, insn: Insn) -> None:
    m = insn.mnemonic
    dst = insn.operands[0]
    size = dst[1]
    mask = MASK[size]
    a, b, r = e.tmp("a"), e.tmp("b"), e.tmp("r")
    la = e.read(insn, dst, a, write=True)
    if m == "not":
        e.write(insn, dst, f"{a} ^ {mask}", la)
        return
    if m == "neg":
        e.emit(f"{r} = -{a} & {mask}")
        e.emit(f"{b} = {a}")
        e.emit(f"{a} = 0")
        e.write(insn, dst, r, la)
        e.lazy(F.SUB, size, a, b, r)
        return
    if e.producer is None:
        # The carry in comes from before the block; fetch it only if someone reads it.
        b = "cfin"
    else:
        cf = e.flag("CF")
        e.emit(f"{b} = 0" if cf == "(0)" else f"{b} = 1 if {cf} else 0")
    if size == 32:
        e.emit(f"{r} = {add32(f'{a} + 1') if m == 'inc' else sub32(f'{a} - 1')}")
    else:
        e.emit(f"{r} = ({a} {'+' if m == 'inc' else '-'} 1) & {mask}")
    e.write(insn, dst, r, la)
    e.lazy(F.INC if m == "inc" else F.DEC, size, a, b, r)


EMIT = {m: emit_alu for m in ("add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test")}
EMIT.update({m: emit_unary for m in ("inc", "dec", "neg", "not")})


# The decimal adjustments, carried out in Python at the end of their block.
def _bcd(cpu, al: int, ah: int | None, flags: int) -> None:
    al &= 0xFF
    f = flags & ~(0x40 | 0x80 | 0x4)
    f |= PARITY[al] | (0x40 if al == 0 else 0) | (0x80 if al & 0x80 else 0)
    cpu.r[0] = (cpu.r[0] & 0xFFFFFF00) | al
    if ah is not None:
        cpu.r[0] = (cpu.r[0] & 0xFFFF00FF) | ((ah & 0xFF) << 8)
    cpu.eflags = (cpu.eflags & ~0x8D5) | (f & 0x8D5)


def daa_das(cpu, insn: Insn):
    ef = cpu.eflags
    al = cpu.r[0] & 0xFF
    old_al, old_cf = al, ef & CF
    f = ef & ~(CF | AF)
    sub = insn.mnemonic == "das"
    if (al & 0xF) > 9 or ef & AF:
        al = al - 6 if sub else al + 6
        f |= AF
        if not sub:
            f |= CF if (old_cf or al > 0xFF) else 0
        else:
            f |= CF if (old_cf or al < 0) else 0
        al &= 0xFF
    if old_al > 0x99 or old_cf:
        al = (al - 0x60 if sub else al + 0x60) & 0xFF
        f |= CF
    _bcd(cpu, al, None, f & ~OF_BIT)
    return None


def aaa_aas(cpu, insn: Insn):
    ef = cpu.eflags
    ax = cpu.r[0] & 0xFFFF
    if (ax & 0xF) > 9 or ef & AF:
        if insn.mnemonic == "aaa":
            ax = (ax + 0x106) & 0xFFFF
        else:   # the borrow out of AL reaches AH, as on P6 and later
            ax = (ax - 6 - 0x100) & 0xFFFF
        f = ef | AF | CF
    else:
        f = ef & ~(AF | CF)
    cpu.r[0] = (cpu.r[0] & 0xFFFF0000) | (ax & 0xFF0F)
    cpu.eflags = f
    return None


def aam(cpu, insn: Insn):
    base = insn.operands[0][2]
    if base == 0:
        raise CPUFault(DE)
    al = cpu.r[0] & 0xFF
    _bcd(cpu, al % base, al // base, cpu.eflags & ~(CF | AF | OF_BIT))
    return None


def aad(cpu, insn: Insn):
    base = insn.operands[0][2]
    al = cpu.r[0] & 0xFF
    ah = (cpu.r[0] >> 8) & 0xFF
    _bcd(cpu, (al + ah * base) & 0xFF, 0, cpu.eflags & ~(CF | AF | OF_BIT))
    return None


HELPERS = {"daa": daa_das, "das": daa_das, "aaa": aaa_aas, "aas": aaa_aas, "aam": aam, "aad": aad}
