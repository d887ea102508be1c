"""Flag control: clc, stc, cmc, cld, std, lahf, sahf, pushf and salc.

The 386 manual's instructions that read or set EFLAGS bits directly, written
inline by translate.py.  They read the lazy flags (flags.py) as they stand
and store the arithmetic ones at once.  popf, cli and sti may change IF or
IOPL, which the privilege rules guard, so they live in system.py.
"""

from __future__ import annotations

from . import flags as F
from .decode import Insn
from .emitter import M32, Emitter
from .faults import GP
from .flags import ARITH


def emit_flagop(e: Emitter, insn: Insn) -> None:
    m = insn.mnemonic
    a = e.arith_flags()
    if m == "clc":
        e.set_eager(f"{a} & ~1")
    elif m == "stc":
        e.set_eager(f"{a} | 1")
    else:
        e.set_eager(f"{a} ^ 1")


def emit_direction(e: Emitter, insn: Insn) -> None:
    if insn.mnemonic == "cld":
        e.emit(f"cpu._ef &= {~F.DF & M32:#x}")
    else:
        e.emit(f"cpu._ef |= {F.DF:#x}")


def emit_lahf(e: Emitter, insn: Insn) -> None:
    e.set_reg(8, 4, f"({e.arith_flags()} & 0xd5) | 2")


def emit_sahf(e: Emitter, insn: Insn) -> None:
    v = e.tmp("v")
    e.emit(f"{v} = ({e.arith_flags()} & 0x800) | ({e.get_reg(8, 4)} & 0xd5)")
    e.set_eager(v)


def emit_pushf(e: Emitter, insn: Insn) -> None:
    if e.cpu.v86_trap:       # virtual-8086 mode, IOPL < 3 (v86.py)
        e.may_fault()
        e.emit(f"raise CPUFault({GP}, 0)")
        return
    v = e.tmp("v")
    # VM and RF are never pushed (they read as zero in the image).
    e.emit(f"{v} = ((cpu._ef & {~ARITH & M32:#x}) | {e.arith_flags()}) & 0xfcffff")
    e.push(32 if insn.op32 else 16, v if insn.op32 else f"{v} & 0xffff")


def emit_salc(e: Emitter, insn: Insn) -> None:
    e.set_reg(8, 0, f"0xff if {e.flag('CF')} else 0")


EMIT = {
    "clc": emit_flagop, "stc": emit_flagop, "cmc": emit_flagop, "cld": emit_direction,
    "std": emit_direction, "lahf": emit_lahf, "sahf": emit_sahf, "pushf": emit_pushf,
    "pushfd": emit_pushf, "salc": emit_salc,
}

# Every member is written inline: no helper ends a block for this family.
HELPERS: dict = {}
