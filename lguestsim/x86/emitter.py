"""The emitter: what every instruction family's code generation stands on.

translate.py asks a family module (moves.py, alu.py, shifts.py, muldiv.py,
bits.py, control.py, flag_control.py) to write each instruction of a block,
handing it an `Emitter`.  The emitter holds what the block's code shares: the
lines written so far, the registers as locals, memory through the TLB's fast
dicts (P:025), the stack, and the lazy flags of the last instruction that set
them (flags.py).  Dense on purpose: the code it writes is the hot path.
"""

from __future__ import annotations

import re

from . import flags as F
from .decode import Insn
from .flags import ARITH

M32 = 0xFFFFFFFF
MASK = {8: "0xff", 16: "0xffff", 32: "0xffffffff"}
SIGN = {8: 0x80, 16: 0x8000, 32: 0x80000000}
REGS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")



def add32(expr: str) -> str:
    """``expr & 0xffffffff`` for a sum of two 32-bit values, without the mask.

    In CPython a mask is a generic operation that makes a new int object, and
    a comparison is not; a sum of two 32-bit values wraps at most once.
    """
    return f"(w_ if (w_ := {expr}) <= 0xffffffff else w_ - 0x100000000)"


def sub32(expr: str) -> str:
    """``expr & 0xffffffff`` for a difference of two 32-bit values (see add32)."""
    return f"(w_ if (w_ := {expr}) >= 0 else w_ + 0x100000000)"


_TEMP_NAME = re.compile(r"[a-z]+\d+$")

# Each size's view of RAM, the shift from a byte address to its index, and
# the mask that keeps the address bits its alignment needs to be zero (P:025).
VIEWS = {8: ("RAM", "", -4096), 16: ("M16", " >> 1", -4095), 32: ("M32", " >> 2", -4093)}


def _element(la: str, size: int, delta: str) -> str:
    """The item of RAM at linear ``la`` through the delta dict ``delta``."""
    view, shift, key = VIEWS[size]
    index = f"{la} + {delta}[{la} & {key}]"
    return f"{view}[({index}){shift}]" if shift else f"{view}[{index}]"


# The segment register a stack access goes through.
STACK_SEG = 2


class Emitter:
    """Writes the Python for one block, one instruction at a time."""

    def __init__(self, cpu) -> None:
        self.cpu = cpu
        self.lines: list[str] = []
        self.ind = 2
        self.consts: dict[str, object] = {}
        self.producer = None     # (kind, size, a, b, r) of an in-block lazy producer, or "cpu"
        self.stores: list = []   # (index, (op code, a, b, r) or None) per producer
        self.flat = cpu.flat_mask
        self.stack32 = cpu.stack32
        self.code32 = cpu.code32
        self.cs_flat = cpu.cs_flat
        self.idx = 0
        self.mem_accesses = 0
        self.end_eip: str | None = None   # expression of the next EIP if the block ends here
        self.taken_extra = False
        self.reads_entry_flags = False   # some instruction reads flags set before the block
        self.live: dict[int, str] = {}   # instruction index -> its immediate's name (live_immediates)
        self.prologue: list[str] = []    # lines run once at the block's entry
        self.starts: list[int] = []      # where each instruction's lines begin (prune)
        self.faults: set[int] = set()    # the instructions that may fault (prune)

    # ---- plumbing
    def emit(self, line: str) -> None:
        self.lines.append("    " * self.ind + line)

    def tmp(self, stem: str) -> str:
        return f"{stem}{self.idx}"

    def const(self, obj, stem: str = "K") -> str:
        name = f"{stem}{len(self.consts)}"
        self.consts[name] = obj
        return name

    def may_fault(self) -> None:
        # Nothing is written: a fault's line number tells unwind() which
        # instruction it was (blocks.py).  prune() must know, though.
        self.faults.add(self.idx)

    # ---- registers
    def get_reg(self, size: int, n: int) -> str:
        if size == 32:
            return REGS[n]
        if size == 16:
            return f"({REGS[n]} & 0xffff)"
        if n < 4:
            return f"({REGS[n]} & 0xff)"
        return f"(({REGS[n - 4]} >> 8) & 0xff)"

    def set_reg(self, size: int, n: int, expr: str) -> None:
        if size == 32:
            self.emit(f"{REGS[n]} = {expr}")
        elif size == 16:
            self.emit(f"{REGS[n]} = ({REGS[n]} & 0xffff0000) | ({expr})")
        elif n < 4:
            self.emit(f"{REGS[n]} = ({REGS[n]} & 0xffffff00) | ({expr})")
        else:
            r = REGS[n - 4]
            self.emit(f"{r} = ({r} & 0xffff00ff) | (({expr}) << 8)")

    # ---- memory
    def ea(self, insn: Insn, wrap: bool = True) -> str:
        """The effective address; with ``wrap`` False (a flat segment's access,
        32-bit addressing) it may fall outside 0..2**32-1, for which no fast
        dict has an entry: the slow path then wraps it, as the 386 does."""
        m = insn.mem
        parts = []
        if m.addr32 and not wrap and (m.base is not None or m.index is not None):
            if m.base is not None:
                parts.append(REGS[m.base])
            if m.index is not None:
                parts.append(REGS[m.index] if m.scale == 1 else f"{REGS[m.index]} * {m.scale}")
            expr = " + ".join(parts)
            disp = m.disp - (1 << 32) if m.disp & 0x80000000 else m.disp
            if disp:
                expr += f" + {disp:#x}" if disp > 0 else f" - {-disp:#x}"
            return expr if len(parts) == 1 and not disp and m.index is None else f"({expr})"
        if m.addr32:
            if m.base is not None:
                parts.append(REGS[m.base])
            if m.index is not None:
                parts.append(REGS[m.index] if m.scale == 1 else f"{REGS[m.index]} * {m.scale}")
            if m.disp or not parts:
                parts.append(hex(m.disp))
            if len(parts) == 1 and m.base is not None or (len(parts) == 1 and m.index is None):
                return parts[0]
            if len(parts) == 2 and m.scale == 1:
                return add32(" + ".join(parts))     # two 32-bit terms wrap at most once
            return f"(({' + '.join(parts)}) & 0xffffffff)"
        if m.base is not None:
            parts.append(f"({REGS[m.base]} & 0xffff)")
        if m.index is not None:
            parts.append(f"({REGS[m.index]} & 0xffff)")
        if m.disp or not parts:
            parts.append(hex(m.disp))
        return f"(({' + '.join(parts)}) & 0xffff)"

    def linear(self, seg: int, off: str, size: int, write: bool, now: bool = False) -> str:
        """The linear address of ``off`` in segment ``seg``: a name holding it.

        A flat segment's offset is its linear address: a temporary (assigned
        once) serves as it is, and so does a register the caller reaches at
        once (``now``), before anything can change it."""
        if self.flat >> seg & 1 and (_TEMP_NAME.match(off) or now and off in REGS):
            return off
        la = self.tmp("la")
        if self.flat >> seg & 1:
            self.emit(f"{la} = {off}")
        else:
            self.emit(f"{la} = cpu.seg_lin({seg}, {off}, {size // 8}, {write})")
        return la

    def mem_la(self, insn: Insn, size: int, write: bool) -> str:
        self.may_fault()
        flat = self.flat >> insn.mem.seg & 1
        return self.linear(insn.mem.seg, self.ea(insn, wrap=not flat), size, write)

    #: P:025 Memory, as generated code reaches it.  A load masks the linear
    # address down to its page's base and looks that up in `TRD`, the CPU's
    # current read dict, which maps a page to where it lies in RAM, as the
    # difference to add to a linear address; an aligned 32-bit read is then
    # one mask, one lookup, one addition and one index into the memoryview
    # `M32`.  The mask keeps the address's low bits that alignment needs to be
    # zero (`la & -4093` clears bits 2-11 only), so a misaligned address makes
    # a key no page has, and so does one outside 0..2**32-1: a single lookup
    # tells the fast case from every other.  Anything else (a TLB miss, an
    # unaligned or page-crossing access, an unmapped page) raises KeyError,
    # whose handler calls `cpu.rd()`, the slow path, which walks the page
    # tables and raises #PF if it must, and notes `sl` (a slow access was
    # made, which a loop checks before its next pass).  Stores do the same
    # with `TWD` and `cpu.wr()`.  A `try` costs nothing in CPython 3.11 until
    # something is raised, and every rule of paging still holds, because only
    # the slow path, after its checks, ever fills those dicts (P:035).
    def load(self, la: str, size: int, dest: str) -> None:
        self.mem_accesses += 1
        self.emit(f"try: {dest} = {_element(la, size, 'TRD')}")
        self.emit(f"except KeyError: {dest} = cpu.rd({la}, {size // 8}); sl = 1")

    def store(self, la: str, size: int, expr: str) -> None:
        self.mem_accesses += 1
        self.emit(f"try: {_element(la, size, 'TWD')} = {expr}")
        self.emit(f"except KeyError: cpu.wr({la}, {size // 8}, {expr}); sl = 1")

    def read(self, insn: Insn, op: tuple, dest: str, la: str | None = None, write: bool = False) -> str | None:
        """Emit code leaving the operand's value in ``dest``; returns the la for memory."""
        kind = op[0]
        if kind == "r":
            self.emit(f"{dest} = {self.get_reg(op[1], op[2])}")
        elif kind == "i":
            self.emit(f"{dest} = {op[2]:#x}")
        elif kind == "m":
            if la is None:
                la = self.mem_la(insn, op[1], write)
            self.load(la, op[1], dest)
            return la
        else:
            raise AssertionError(op)
        return None

    def value(self, insn: Insn, op: tuple, dest: str) -> str:
        """An expression for a register or immediate operand, else load into ``dest``."""
        if op[0] == "r":
            return self.get_reg(op[1], op[2])
        if op[0] == "i":
            return self.live.get(self.idx) or f"{op[2]:#x}"
        self.read(insn, op, dest)
        return dest

    def write(self, insn: Insn, op: tuple, expr: str, la: str | None = None) -> None:
        if op[0] == "r":
            self.set_reg(op[1], op[2], expr)
        else:
            if la is None:
                la = self.mem_la(insn, op[1], True)
            self.store(la, op[1], expr)

    # ---- stack
    def sp_mask(self) -> str:
        return "0xffffffff" if self.stack32 else "0xffff"

    def push(self, size: int, expr: str) -> None:
        """Write first, then commit ESP: a faulting push changes nothing."""
        sp = self.tmp("sp")
        self.may_fault()
        if self.stack32:
            self.emit(f"{sp} = {sub32(f'esp - {size // 8}')}")
        else:
            self.emit(f"{sp} = (esp - {size // 8}) & 0xffff")
        la = self.linear(STACK_SEG, sp, size, True)
        self.store(la, size, expr)
        self.commit_sp(sp)

    def commit_sp(self, sp: str) -> None:
        if self.stack32:
            self.emit(f"esp = {sp}")
        else:
            self.emit(f"esp = (esp & 0xffff0000) | {sp}")

    def pop_value(self, size: int, dest: str, offset: int = 0) -> str:
        """Load the stack slot ``offset`` bytes above ESP; returns the new-SP name."""
        self.may_fault()
        cur = "esp" if self.stack32 else "(esp & 0xffff)"
        if offset:
            cur = f"(({cur} + {offset}) & {self.sp_mask()})"
        la = self.linear(STACK_SEG, cur, size, False, now=True)
        self.load(la, size, dest)
        sp = self.tmp("sp")
        base = "esp" if self.stack32 else "(esp & 0xffff)"
        if self.stack32:
            self.emit(f"{sp} = {add32(f'esp + {offset + size // 8}')}")
        else:
            self.emit(f"{sp} = ({base} + {offset + size // 8}) & 0xffff")
        return sp

    # ---- flags
    def lazy(self, kind: int, size: int, a: str, b: str, r: str) -> None:
        self.producer = (kind, size, a, b, r)
        code = F.op_code(kind, size)
        self.stores.append((self.idx, (code, a, b, r)))

    def flags_stored(self) -> None:
        """The instruction just emitted put the flags in the CPU object itself."""
        self.producer = "cpu"
        self.stores.append((self.idx, None))

    def _need_cfin(self, expr: str) -> str:
        if "cfin" in expr:
            self.emit("cfin = cpu.eflags & 1")
            self.reads_entry_flags = True
        return expr

    def arith_flags(self) -> str:
        """An expression for the six arithmetic flag bits as they are now."""
        p = self.producer
        if p is None:
            self.reads_entry_flags = True
        if p is None or p == "cpu":
            return "(cpu.eflags & 0x8d5)"
        return self._need_cfin(f"({F.eflags_expr(*p)})")

    def flag(self, name: str) -> str:
        p = self.producer
        if p is None:
            self.reads_entry_flags = True
        if p is None or p == "cpu":
            bit = {"CF": F.CF, "PF": F.PF, "AF": F.AF, "ZF": F.ZF, "SF": F.SF, "OF": F.OF}[name]
            return f"(cpu.eflags & {bit:#x})"
        return self._need_cfin(f"({F.flag_exprs(*p)[name]})")

    def carry(self) -> str:
        """Emit ``c<idx> = CF`` as 0/1 and return its name."""
        c = self.tmp("c")
        self.emit(f"{c} = 1 if {self.flag('CF')} else 0")
        return c

    def cond(self, cc: int) -> str:
        p = self.producer
        if p is None:
            self.reads_entry_flags = True
        if p is None or p == "cpu":
            ef = self.tmp("ef")
            self.emit(f"{ef} = cpu.eflags")
            return F.cond_from_flags(cc, ef)
        return self._need_cfin(F.cond_from_op(cc, *p))

    def store_flags(self, arith_expr: str) -> None:
        """Emit: the six arithmetic flags are ``arith_expr``, kept in the CPU object."""
        self.emit(f"cpu._ef = (cpu._ef & {~ARITH & M32:#x}) | ({arith_expr})")
        self.emit("cpu.fo = 0")

    def else_flags_unchanged(self) -> None:
        """Emit an else branch (count 0) that moves the current flags into the CPU."""
        if self.producer in (None, "cpu"):
            return
        self.emit("else:")
        self.ind += 1
        self.store_flags(self.arith_flags())
        self.ind -= 1

    def set_eager(self, arith_expr: str) -> None:
        """Store all six arithmetic flags now (for instructions not worth a lazy kind)."""
        self.store_flags(arith_expr)
        self.flags_stored()

    # ---- what the families share
    def helper(self, insn: Insn) -> None:
        self.helper_insn = insn

    def next_eip(self, insn: Insn) -> int:
        return (insn.eip + insn.length) & (M32 if self.code32 else 0xFFFF)
