"""The cycle cost model: every cycle figure of the core lives here.

A plausible i486/Pentium-class model, not a measurement of any one chip.
Each instruction costs a base figure by mnemonic, read from the opcode table
(opcodes.FAMILIES, beside each mnemonic's family); a memory operand adds
MEMORY_OPERAND (read) or MEMORY_WRITE (read-modify-write); a taken branch adds
BRANCH_TAKEN.  Events that real hardware pays for on the side are charged
where they happen: a TLB miss costs PAGE_WALK, a protected-mode segment load
SEGMENT_LOAD, delivering an exception or interrupt EXCEPTION_DELIVERY, and a
privilege change on the way PRIVILEGE_CHANGE more.  String instructions with a
rep prefix cost REP_SETUP plus their base per iteration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .opcodes import CYCLES

if TYPE_CHECKING:
    from .decode import Insn

#: P:022 Every cycle the simulation counts comes from this file, so this is
# where to look when a trace says a world switch took so many nanoseconds.
# An instruction costs its base figure from `BASE`, the opcode table's cycle
# column (opcodes.py), by mnemonic, in the spirit of an i486 or early Pentium
# (1 for `mov` or `add`, 40 for `div`), plus a cycle or two for a memory operand and two for a taken branch.  The
# expensive parts of virtualization are charged on the side, where they
# happen: a TLB miss pays `PAGE_WALK`, every exception or interrupt
# `EXCEPTION_DELIVERY`, and one that changes ring (a Guest trap into the
# Switcher's ring 0, an `iret` back out to ring 1) `PRIVILEGE_CHANGE` on top.
# The figures are plausible, not measured: change one and watch the costs of
# lguest's tricks move.
DEFAULT = 2          # anything the opcode table does not list
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

# Base cost by mnemonic (register forms): the cycle column of the opcode
# table, where each mnemonic also has its family (opcodes.FAMILIES).
BASE = CYCLES


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
        return "cmovcc"
    if insn.operands and m == "mov" and (insn.operands[0][0] == "c" or insn.operands[-1][0] == "c"):
        return "mov_cr"
    for s in ("movs", "stos", "lods", "cmps", "scas", "ins", "outs"):
        # the string forms end in their element size; movsx is not movs + "x"
        if m.startswith(s) and m[len(s):] in ("b", "w", "d"):
            return s
    return m


def memory_kind(insn: Insn | None) -> int:
    if insn is None or insn.mem is None or insn.mnemonic == "lea":
        return 0
    ops = insn.operands
    if ops and ops[0][0] == "m" and insn.mnemonic not in ("cmp", "test", "push", "bt", "mov"):
        return 2
    return 1
