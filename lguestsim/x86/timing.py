"""The cycle cost model: every cycle figure of the core lives here.

A plausible i486/Pentium-class model, not a measurement of any one chip.
Each instruction costs a base figure by mnemonic; a memory operand adds
MEMORY_OPERAND (read) or MEMORY_WRITE (read-modify-write); a taken branch adds
BRANCH_TAKEN.  Events that real hardware pays for on the side are charged
where they happen: a TLB miss costs PAGE_WALK, a protected-mode segment load
SEGMENT_LOAD, delivering an exception or interrupt EXCEPTION_DELIVERY, and a
privilege change on the way PRIVILEGE_CHANGE more.  String instructions with a
rep prefix cost REP_SETUP plus their base per iteration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .decode import Insn

#: P:022 Every cycle the simulation counts comes from this file, so this is
# where to look when a trace says a world switch took so many nanoseconds.
# An instruction costs its base figure from `BASE` below, by mnemonic, in the
# spirit of an i486 or early Pentium (1 for `mov` or `add`, 40 for `div`),
# plus a cycle or two for a memory operand and two for a taken branch.  The
# expensive parts of virtualization are charged on the side, where they
# happen: a TLB miss pays `PAGE_WALK`, every exception or interrupt
# `EXCEPTION_DELIVERY`, and one that changes ring (a Guest trap into the
# Switcher's ring 0, an `iret` back out to ring 1) `PRIVILEGE_CHANGE` on top.
# The figures are plausible, not measured: change one and watch the costs of
# lguest's tricks move.
DEFAULT = 2          # anything not listed below
MEMORY_OPERAND = 1   # an operand read from memory
MEMORY_WRITE = 2     # an operand read, modified and written back
BRANCH_TAKEN = 2     # the pipeline refill of a taken jump
PAGE_WALK = 8        # two table reads and the TLB fill
SEGMENT_LOAD = 6     # reading and checking a descriptor
EXCEPTION_DELIVERY = 26
PRIVILEGE_CHANGE = 20
REP_SETUP = 5
IRET_SAME = 10
FAR_TRANSFER = 12
# The 386's protection machinery, from the Intel386 DX data sheet's clock
# counts (rounded; the data sheet's own figures for a 386 at zero wait states):
# a CALL through a call gate costs about 52 clocks at the same privilege
# (CALL_GATE on top of lcall's base), 86 to an inner ring and 4 more for each
# parameter copied; a task switch through a 386 TSS about 300, whatever
# started it; an interrupt from virtual-8086 mode to ring 0 about 120 (the
# four extra segment pushes and nulls on top of EXCEPTION_DELIVERY and
# PRIVILEGE_CHANGE).
CALL_GATE = 34
CALL_GATE_PARAMETER = 4
TASK_SWITCH = 300
V86_INTERRUPT = 40

# Base cost by mnemonic (register forms).  Grouped as the SDM groups them.
BASE = {
    # data movement
    "mov": 1, "movzx": 3, "movsx": 3, "xchg": 3, "lea": 1, "push": 1, "pop": 1,
    "pushad": 11, "popad": 9, "pushfd": 4, "popfd": 6, "pushf": 4, "popf": 6,
    "pusha": 11, "popa": 9, "cmove": 2, "bswap": 1, "xlatb": 4, "lahf": 2,
    "sahf": 2, "cbw": 3, "cwde": 3, "cwd": 3, "cdq": 3, "enter": 14, "leave": 5,
    "cmpxchg": 6, "xadd": 3, "lds": 12, "les": 12, "lfs": 12, "lgs": 12, "lss": 12,
    # arithmetic and logic
    "add": 1, "adc": 1, "sub": 1, "sbb": 1, "cmp": 1, "and": 1, "or": 1, "xor": 1,
    "test": 1, "inc": 1, "dec": 1, "neg": 1, "not": 1,
    "mul": 13, "imul": 13, "div": 40, "idiv": 43,
    "daa": 2, "das": 2, "aaa": 3, "aas": 3, "aam": 15, "aad": 14,
    # shifts and bits
    "shl": 2, "shr": 2, "sar": 2, "rol": 2, "ror": 2, "rcl": 8, "rcr": 8,
    "shld": 3, "shrd": 3, "bt": 3, "bts": 6, "btr": 6, "btc": 6,
    "bsf": 6, "bsr": 6, "setcc": 3,
    # control transfer
    "jmp": 1, "jcc": 1, "call": 3, "ret": 5, "loop": 6, "loope": 6,
    "loopne": 6, "jecxz": 5, "jcxz": 5, "int": 30, "int3": 26, "into": 28,
    "iret": 15, "iretd": 15, "ljmp": 17, "lcall": 18, "lret": 13, "hlt": 4,
    # strings (per element)
    "movs": 4, "stos": 3, "lods": 4, "cmps": 7, "scas": 5, "ins": 15, "outs": 15,
    # flags and processor control
    "clc": 2, "stc": 2, "cmc": 2, "cld": 2, "std": 2, "cli": 5, "sti": 5,
    "nop": 1, "pause": 1, "wait": 1, "cpuid": 20, "rdtsc": 11, "rdmsr": 20,
    "wrmsr": 30, "clts": 7, "invlpg": 12, "mov_cr": 10, "mov_dr": 10,
    "lgdt": 11, "lidt": 11, "sgdt": 10, "sidt": 10, "lldt": 20, "sldt": 2,
    "ltr": 20, "str": 2, "lmsw": 13, "smsw": 2, "lar": 15, "lsl": 15,
    "verr": 11, "verw": 11, "arpl": 9, "bound": 7, "in": 14, "out": 16,
    "sysenter": 20, "sysexit": 20, "ud2": 1, "invd": 4, "wbinvd": 5,
    # the 387, a typical figure per instruction from Intel's 387 DX data
    # sheet (memory forms: the m32/m64 figure); it ran beside the 386, so
    # these are slower than the rest of this (486-class) table
    "fninit": 33, "fnclex": 11, "fldcw": 19, "fnstcw": 15, "fnstsw": 15,
    "fnstenv": 103, "fldenv": 71, "fnsave": 375, "frstor": 308,
    "fld": 20, "fst": 44, "fstp": 44, "fstpnce": 44, "fild": 50, "fist": 82, "fistp": 82,
    "fbld": 270, "fbstp": 520, "fxch": 18, "ffree": 18, "ffreep": 18,
    "fld1": 24, "fldz": 20, "fldpi": 40, "fldl2t": 40, "fldl2e": 40, "fldlg2": 41,
    "fldln2": 41,
    "fadd": 23, "faddp": 23, "fsub": 26, "fsubp": 26, "fsubr": 26, "fsubrp": 26,
    "fmul": 29, "fmulp": 29, "fdiv": 88, "fdivp": 88, "fdivr": 88, "fdivrp": 88,
    "fiadd": 71, "fisub": 71, "fisubr": 71, "fimul": 76, "fidiv": 136, "fidivr": 136,
    "fcom": 24, "fcomp": 26, "fcompp": 26, "fucom": 24, "fucomp": 26, "fucompp": 26,
    "ficom": 71, "ficomp": 71, "ftst": 28, "fxam": 30,
    "fchs": 24, "fabs": 22, "fsqrt": 122, "frndint": 66, "fscale": 67, "fxtract": 70,
    "fprem": 74, "fprem1": 95, "fdecstp": 22, "fincstp": 21, "fnop": 12,
    "fneni": 12, "fndisi": 12, "fnsetpm": 12,
    "f2xm1": 211, "fyl2x": 120, "fyl2xp1": 257, "fptan": 191, "fpatan": 314,
    "fsin": 122, "fcos": 123, "fsincos": 194,
}


def cost(mnemonic: str, memory: int = 0) -> int:
    """Cycles for one instruction: memory is 0 (none), 1 (read) or 2 (write back)."""
    base = BASE.get(mnemonic, DEFAULT)
    if memory == 1:
        return base + MEMORY_OPERAND
    if memory == 2:
        return base + MEMORY_WRITE
    return base


def timing_key(insn: Insn | None) -> str:
    if insn is None:
        return "nop"
    m = insn.mnemonic
    if m.startswith("j") and insn.cc is not None:
        return "jcc"
    if m.startswith("set"):
        return "setcc"
    if m.startswith("cmov"):
        return "cmove"
    if insn.operands and m == "mov" and (insn.operands[0][0] == "c" or insn.operands[-1][0] == "c"):
        return "mov_cr"
    for s in ("movs", "stos", "lods", "cmps", "scas", "ins", "outs"):
        if m.startswith(s) and len(m) == len(s) + 1:
            return s
    return m


def memory_kind(insn: Insn | None) -> int:
    if insn is None or insn.mem is None or insn.mnemonic == "lea":
        return 0
    ops = insn.operands
    if ops and ops[0][0] == "m" and insn.mnemonic not in ("cmp", "test", "push", "bt", "mov"):
        return 2
    return 1
