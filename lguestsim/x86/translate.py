"""Translation: a block of decoded instructions becomes one Python function.

Dense on purpose: this is the code that makes a pure-Python i386 fast enough
to watch a kernel boot.  For each instruction the translator writes a few
lines of Python that do exactly what the instruction does, with

  * the eight registers held in local variables for the whole block,
  * memory reached through the TLB's fast dicts and memoryviews, falling back
    to the CPU's slow path for misses, unaligned or cross-page accesses,
  * flags left lazy (flags.py) and stored to the CPU only by the last
    instruction that sets them, or by the fault handler,
  * ``n`` holding the index of the instruction that may fault next, so the
    handler can write back the precise state of that instruction boundary.

The common integer instructions are generated inline (the families below:
data movement, arithmetic and logic, shifts, multiply/divide, bit operations,
control transfer).  Everything else is a Python function in system.py and
strings.py; such an instruction ends its block, which first hands the
complete state back to the CPU object.
"""

from __future__ import annotations

import re

from . import flags as F
from . import shifts, strings, system, timing
from .blocks import HOT, Block, assemble, compiled, unwind
from .decode import DecodeError, Insn, NeedBytes, decode
from .faults import DE, GP, CPUFault
from .flags import ARITH, PARITY
from .timing import memory_kind, timing_key

M32 = 0xFFFFFFFF
MASK = {8: "0xff", 16: "0xffff", 32: "0xffffffff"}
SIGN = {8: 0x80, 16: 0x8000, 32: 0x80000000}
REGS = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")

# Instructions generated inline, by family: mnemonic -> emitter method name.
INLINE = {}
for _m in ("add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test"):
    INLINE[_m] = "alu"
for _m in ("inc", "dec", "neg", "not"):
    INLINE[_m] = "unary"
for _m in ("shl", "shr", "sar", "rol", "ror", "rcl", "rcr"):
    INLINE[_m] = "shift"
for _m in ("bt", "bts", "btr", "btc"):
    INLINE[_m] = "bittest"
for _c in F.CC_NAMES:
    INLINE["j" + _c] = "jcc"
    INLINE["set" + _c] = "setcc"
    INLINE["cmov" + _c] = "cmovcc"
INLINE.update({
    "mov": "mov", "movzx": "movzx", "movsx": "movsx", "lea": "lea", "xchg": "xchg",
    "push": "push", "pop": "pop", "nop": "nop", "jmp": "jmp", "call": "call", "ret": "ret",
    "loop": "loop", "loope": "loop", "loopne": "loop", "jecxz": "jcxz", "jcxz": "jcxz",
    "mul": "mul", "imul": "imul", "div": "div", "idiv": "div", "shld": "shd", "shrd": "shd",
    "bsf": "bitscan", "bsr": "bitscan", "bswap": "bswap", "xadd": "xadd",
    "cmpxchg": "cmpxchg", "cbw": "extend", "cwde": "extend", "cwd": "extend", "cdq": "extend",
    "clc": "flagop", "stc": "flagop", "cmc": "flagop", "cld": "direction", "std": "direction", "leave": "leave", "lahf": "lahf",
    "sahf": "sahf", "pushf": "pushf", "pushfd": "pushf", "xlatb": "xlat", "salc": "salc",
})

# Sizes of an operand that are not registers of the opcode's own size.
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
        self.emit(f"n = {self.idx}")

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
            return f"(({' + '.join(parts)}) & 0xffffffff)"
        if m.base is not None:
            parts.append(f"({REGS[m.base]} & 0xffff)")
        if m.index is not None:
            parts.append(f"({REGS[m.index]} & 0xffff)")
        if m.disp or not parts:
            parts.append(hex(m.disp))
        return f"(({' + '.join(parts)}) & 0xffff)"

    def linear(self, seg: int, off: str, size: int, write: bool) -> str:
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

    #: P:025 Memory, as generated code reaches it.  A load looks the
    # virtual page number up in `TRD`, the CPU's current read dict, which maps
    # a page straight to where it lies in RAM, as the difference to add to a
    # linear address; on a hit, an aligned 32-bit read is one addition and one
    # index into the memoryview `M32`.  Anything else (a TLB miss, an
    # unaligned or page-crossing access, an unmapped page) calls `cpu.rd()`,
    # the slow path, which walks the page tables and raises #PF if it must.
    # Stores do the same with `TWD` and `cpu.wr()`.  The common case costs a
    # dict lookup and an index, and still every rule of paging holds, because
    # only the slow path, after its checks, ever fills those dicts (P:035).
    def load(self, la: str, size: int, dest: str) -> None:
        self.mem_accesses += 1
        self.emit(f"p = TRD.get({la} >> 12)")
        if size == 8:
            self.emit(f"{dest} = RAM[{la} + p] if p is not None else cpu.rd({la}, 1)")
        elif size == 16:
            self.emit(f"{dest} = M16[({la} + p) >> 1] if p is not None and not {la} & 1 "
                      f"else cpu.rd({la}, 2)")
        else:
            self.emit(f"{dest} = M32[({la} + p) >> 2] if p is not None and not {la} & 3 "
                      f"else cpu.rd({la}, 4)")

    def store(self, la: str, size: int, expr: str) -> None:
        self.mem_accesses += 1
        self.emit(f"p = TWD.get({la} >> 12)")
        if size == 8:
            self.emit("if p is not None:")
            self.emit(f"    RAM[{la} + p] = {expr}")
        elif size == 16:
            self.emit(f"if p is not None and not {la} & 1:")
            self.emit(f"    M16[({la} + p) >> 1] = {expr}")
        else:
            self.emit(f"if p is not None and not {la} & 3:")
            self.emit(f"    M32[({la} + p) >> 2] = {expr}")
        self.emit("else:")
        self.emit(f"    cpu.wr({la}, {size // 8}, {expr})")

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
        self.emit(f"{sp} = (esp - {size // 8}) & {self.sp_mask()}")
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
        la = self.linear(STACK_SEG, cur, size, False)
        self.load(la, size, dest)
        sp = self.tmp("sp")
        base = "esp" if self.stack32 else "(esp & 0xffff)"
        self.emit(f"{sp} = ({base} + {offset + size // 8}) & {self.sp_mask()}")
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

    # ---- the instruction families -------------------------------------
    def op_alu(self, insn: Insn) -> None:
        m = insn.mnemonic
        dst, src = insn.operands
        size = dst[1]
        mask = MASK[size]
        a, b, r = self.tmp("a"), self.tmp("b"), self.tmp("r")
        la = None
        if m in ("xor", "sub") and dst[0] == "r" and src == dst:
            self.emit(f"{a} = {b} = {self.get_reg(size, dst[2])}")
            self.emit(f"{r} = 0")
            self.set_reg(size, dst[2], "0")
            self.lazy(F.LOGIC if m == "xor" else F.SUB, size, a, b, r)
            return
        la = self.read(insn, dst, a, write=m not in ("cmp", "test"))
        bexpr = self.value(insn, src, b)
        self.emit(f"{b} = {bexpr}") if bexpr != b else None
        if m == "add":
            self.emit(f"{r} = ({a} + {b}) & {mask}")
            self.lazy(F.ADD, size, a, b, r)
        elif m in ("sub", "cmp"):
            self.emit(f"{r} = ({a} - {b}) & {mask}")
            self.lazy(F.SUB, size, a, b, r)
        elif m in ("and", "test"):
            self.emit(f"{r} = {a} & {b}")
            self.lazy(F.LOGIC, size, a, b, r)
        elif m == "or":
            self.emit(f"{r} = {a} | {b}")
            self.lazy(F.LOGIC, size, a, b, r)
        elif m == "xor":
            self.emit(f"{r} = {a} ^ {b}")
            self.lazy(F.LOGIC, size, a, b, r)
        else:  # adc, sbb: eager, with the carry in chosen at run time
            c = self.carry()
            if m == "adc":
                self.emit(f"{r} = ({a} + {b} + {c}) & {mask}")
                with_c, without = F.eflags_expr(F.ADC, size, a, b, r), F.eflags_expr(F.ADD, size, a, b, r)
            else:
                self.emit(f"{r} = ({a} - {b} - {c}) & {mask}")
                with_c, without = F.eflags_expr(F.SBB, size, a, b, r), F.eflags_expr(F.SUB, size, a, b, r)
            if dst[0] == "m":
                self.write(insn, dst, r, la)
            else:
                self.write(insn, dst, r)
            self.set_eager(f"({with_c}) if {c} else ({without})")
            return
        if m not in ("cmp", "test"):
            self.write(insn, dst, r, la)

    def op_unary(self, insn: Insn) -> None:
        m = insn.mnemonic
        dst = insn.operands[0]
        size = dst[1]
        mask = MASK[size]
        a, b, r = self.tmp("a"), self.tmp("b"), self.tmp("r")
        la = self.read(insn, dst, a, write=True)
        if m == "not":
            self.write(insn, dst, f"{a} ^ {mask}", la)
            return
        if m == "neg":
            self.emit(f"{r} = -{a} & {mask}")
            self.emit(f"{b} = {a}")
            self.emit(f"{a} = 0")
            self.write(insn, dst, r, la)
            self.lazy(F.SUB, size, a, b, r)
            return
        if self.producer is None:
            # The carry in comes from before the block; fetch it only if someone reads it.
            b = "cfin"
        else:
            cf = self.flag("CF")
            self.emit(f"{b} = 0" if cf == "(0)" else f"{b} = 1 if {cf} else 0")
        op = "+" if m == "inc" else "-"
        self.emit(f"{r} = ({a} {op} 1) & {mask}")
        self.write(insn, dst, r, la)
        self.lazy(F.INC if m == "inc" else F.DEC, size, a, b, r)

    def op_mov(self, insn: Insn) -> None:
        dst, src = insn.operands
        if dst[0] in ("s", "c", "d") or src[0] in ("c", "d"):
            return self.helper(insn)
        if src[0] == "s":
            # mov r/m16, sreg: a 32-bit register destination gets the selector zero-extended
            v = self.tmp("v")
            self.emit(f"{v} = cpu.sregs[{src[2]}].selector")
            if dst[0] == "r":
                self.set_reg(32 if insn.op32 else 16, dst[2], v)
            else:
                self.write(insn, ("m", 16), v)
            return
        if dst[0] == "r" and dst[1] == 32 and src[0] == "m":
            self.read(insn, src, REGS[dst[2]])      # straight into the register
            return
        v = self.tmp("v")
        expr = self.value(insn, src, v)
        self.write(insn, dst, expr)

    def op_movzx(self, insn: Insn) -> None:
        dst, src = insn.operands
        if dst[1] == 32 and src[0] == "m":
            self.read(insn, src, REGS[dst[2]])
            return
        v = self.tmp("v")
        self.set_reg(dst[1], dst[2], self.value(insn, src, v))

    def op_movsx(self, insn: Insn) -> None:
        dst, src = insn.operands
        v = self.tmp("v")
        expr = self.value(insn, src, v)
        self.emit(f"{v} = {expr}")
        s = SIGN[src[1]]
        self.set_reg(dst[1], dst[2], f"({v} - {2 * s:#x} if {v} & {s:#x} else {v}) & {MASK[dst[1]]}")

    def op_lea(self, insn: Insn) -> None:
        dst = insn.operands[0]
        ea = self.ea(insn)
        self.set_reg(dst[1], dst[2], ea if dst[1] == 32 else f"{ea} & 0xffff")

    def op_xchg(self, insn: Insn) -> None:
        a_op, b_op = insn.operands
        a, b = self.tmp("a"), self.tmp("b")
        if a_op[0] == "m" or b_op[0] == "m":
            mem, reg = (a_op, b_op) if a_op[0] == "m" else (b_op, a_op)
            la = self.read(insn, mem, a, write=True)
            self.emit(f"{b} = {self.get_reg(reg[1], reg[2])}")
            self.write(insn, mem, b, la)
            self.set_reg(reg[1], reg[2], a)
            return
        self.emit(f"{a} = {self.get_reg(a_op[1], a_op[2])}")
        self.emit(f"{b} = {self.get_reg(b_op[1], b_op[2])}")
        self.set_reg(a_op[1], a_op[2], b)
        self.set_reg(b_op[1], b_op[2], a)

    def op_push(self, insn: Insn) -> None:
        op = insn.operands[0]
        size = 32 if insn.op32 else 16
        if op[0] == "s":
            return self.helper(insn)
        v = self.tmp("v")
        if op[0] == "i":
            expr = self.live.get(self.idx) or f"{op[2] & ((1 << size) - 1):#x}"
        else:
            expr = self.value(insn, op, v)
            if expr != v:
                self.emit(f"{v} = {expr}")
                expr = v
        self.push(size, expr)

    def op_pop(self, insn: Insn) -> None:
        op = insn.operands[0]
        if op[0] != "r":
            return self.helper(insn)
        size = op[1]
        v = self.tmp("v")
        sp = self.pop_value(size, v)
        self.commit_sp(sp)
        self.set_reg(size, op[2], v)

    def op_nop(self, insn: Insn) -> None:
        pass

    def op_leave(self, insn: Insn) -> None:
        size = 32 if insn.op32 else 16
        # ESP = EBP, then pop EBP; done on copies so a fault leaves both alone.
        v, sp = self.tmp("v"), self.tmp("sp")
        self.may_fault()
        base = "ebp" if self.stack32 else "(ebp & 0xffff)"
        la = self.linear(STACK_SEG, base, size, False)
        self.load(la, size, v)
        self.emit(f"{sp} = ({base} + {size // 8}) & {self.sp_mask()}")
        self.commit_sp(sp)
        self.set_reg(size, 5, v)

    def op_pushf(self, insn: Insn) -> None:
        if self.cpu.v86_trap:       # virtual-8086 mode, IOPL < 3 (v86.py)
            self.may_fault()
            self.emit(f"raise CPUFault({GP}, 0)")
            return
        v = self.tmp("v")
        # VM and RF are never pushed (they read as zero in the image).
        self.emit(f"{v} = ((cpu._ef & {~ARITH & M32:#x}) | {self.arith_flags()}) & 0xfcffff")
        self.push(32 if insn.op32 else 16, v if insn.op32 else f"{v} & 0xffff")

    def op_lahf(self, insn: Insn) -> None:
        self.set_reg(8, 4, f"({self.arith_flags()} & 0xd5) | 2")

    def op_sahf(self, insn: Insn) -> None:
        v = self.tmp("v")
        self.emit(f"{v} = ({self.arith_flags()} & 0x800) | ({self.get_reg(8, 4)} & 0xd5)")
        self.set_eager(v)

    def op_salc(self, insn: Insn) -> None:
        self.set_reg(8, 0, f"0xff if {self.flag('CF')} else 0")

    def op_xlat(self, insn: Insn) -> None:
        from .decode import DS, Mem
        insn.mem = Mem(DS if insn.seg is None else insn.seg, 3, None, 1, 0, insn.addr32)
        off = self.tmp("o")
        mask = "0xffffffff" if insn.addr32 else "0xffff"
        self.emit(f"{off} = ({self.get_reg(32 if insn.addr32 else 16, 3)} + (eax & 0xff)) & {mask}")
        self.may_fault()
        la = self.linear(insn.mem.seg, off, 8, False)
        v = self.tmp("v")
        self.load(la, 8, v)
        self.set_reg(8, 0, v)

    def op_flagop(self, insn: Insn) -> None:
        m = insn.mnemonic
        a = self.arith_flags()
        if m == "clc":
            self.set_eager(f"{a} & ~1")
        elif m == "stc":
            self.set_eager(f"{a} | 1")
        else:
            self.set_eager(f"{a} ^ 1")

    def op_direction(self, insn: Insn) -> None:
        if insn.mnemonic == "cld":
            self.emit(f"cpu._ef &= {~F.DF & M32:#x}")
        else:
            self.emit(f"cpu._ef |= {F.DF:#x}")

    def op_extend(self, insn: Insn) -> None:
        m = insn.mnemonic
        if m == "cbw":
            self.set_reg(16, 0, "(eax & 0xff) | (0xff00 if eax & 0x80 else 0)")
        elif m == "cwde":
            self.set_reg(32, 0, "(eax & 0xffff) | (0xffff0000 if eax & 0x8000 else 0)")
        elif m == "cwd":
            self.set_reg(16, 2, "0xffff if eax & 0x8000 else 0")
        else:
            self.set_reg(32, 2, "0xffffffff if eax & 0x80000000 else 0")

    def op_setcc(self, insn: Insn) -> None:
        self.write(insn, insn.operands[0], f"1 if {self.cond(insn.cc)} else 0")

    def op_cmovcc(self, insn: Insn) -> None:
        dst, src = insn.operands
        v = self.tmp("v")
        expr = self.value(insn, src, v)  # the source is read (and may fault) either way
        c = self.cond(insn.cc)
        self.emit(f"if {c}:")
        self.ind += 1
        self.set_reg(dst[1], dst[2], expr)
        self.ind -= 1
        if dst[1] == 32:
            return
        # (a 16-bit cmov leaves the register alone when false)

    def op_bswap(self, insn: Insn) -> None:
        r = REGS[insn.operands[0][2]]
        if not insn.op32:  # undefined; hardware clears the low word
            self.emit(f"{r} = {r} & 0xffff0000")
            return
        self.emit(f"{r} = int.from_bytes({r}.to_bytes(4, 'little'), 'big')")

    def op_xadd(self, insn: Insn) -> None:
        dst, src = insn.operands
        size = dst[1]
        a, b, r = self.tmp("a"), self.tmp("b"), self.tmp("r")
        la = self.read(insn, dst, a, write=True)
        self.emit(f"{b} = {self.get_reg(size, src[2])}")
        self.emit(f"{r} = ({a} + {b}) & {MASK[size]}")
        if dst[0] == "m":
            self.write(insn, dst, r, la)
            self.set_reg(size, src[2], a)
        else:
            self.set_reg(size, src[2], a)
            self.set_reg(size, dst[2], r)
        self.lazy(F.ADD, size, a, b, r)

    def op_cmpxchg(self, insn: Insn) -> None:
        dst, src = insn.operands
        size = dst[1]
        a, b, r = self.tmp("a"), self.tmp("b"), self.tmp("r")
        d = self.tmp("d")
        la = self.read(insn, dst, d, write=True)
        self.emit(f"{a} = {self.get_reg(size, 0)}")
        self.emit(f"{b} = {d}")
        self.emit(f"{r} = ({a} - {b}) & {MASK[size]}")
        self.emit(f"if {r} == 0:")
        self.ind += 1
        self.write(insn, dst, self.get_reg(size, src[2]), la)
        self.ind -= 1
        self.emit("else:")
        self.ind += 1
        if dst[0] == "m":   # the processor always writes the destination back
            self.write(insn, dst, d, la)
        self.set_reg(size, 0, d)
        self.ind -= 1
        self.lazy(F.SUB, size, a, b, r)

    # -- shifts and rotates
    def op_shift(self, insn: Insn) -> None:
        m = insn.mnemonic
        dst, cnt = insn.operands
        size = dst[1]
        a, b, r = self.tmp("a"), self.tmp("b"), self.tmp("r")
        la = self.read(insn, dst, a, write=True)
        if cnt[0] == "i":
            count = cnt[2] & 0x1F
            if count == 0:
                return
            self.emit(f"{b} = {count}")
            known = True
        else:
            self.emit(f"{b} = ecx & 0x1f")
            known = False
            self.emit(f"if {b}:")
            self.ind += 1
        mask = MASK[size]
        if m in ("shl", "shr", "sar"):
            if m == "shl":
                self.emit(f"{r} = ({a} << {b}) & {mask}")
            elif m == "shr":
                self.emit(f"{r} = {a} >> {b}")
            else:
                s = SIGN[size]
                self.emit(f"{a} = {a} - {2 * s:#x} if {a} & {s:#x} else {a}")
                self.emit(f"{r} = ({a} >> {b}) & {mask}")
            self.write(insn, dst, r, la)
            kind = {"shl": F.SHL, "shr": F.SHR, "sar": F.SAR}[m]
            if known:
                self.lazy(kind, size, a, b, r)
            else:
                self.emit(f"cpu.fo = {F.op_code(kind, size)}; cpu.fa = {a}; cpu.fb = {b}; cpu.fr = {r}")
        else:
            fn = self.const(getattr(shifts, m.upper()), "S")
            fl = self.tmp("f")
            self.emit(f"{r}, {fl} = {fn}({a}, {b}, {size}, {self.arith_flags()})")
            self.write(insn, dst, r, la)
            self.store_flags(fl)
        if not known:
            self.ind -= 1
            self.else_flags_unchanged()     # count 0: flags unchanged, but now in the CPU
            self.flags_stored()
        elif m not in ("shl", "shr", "sar"):
            self.flags_stored()

    def op_shd(self, insn: Insn) -> None:
        dst, src, cnt = insn.operands
        size = dst[1]
        a, b, r = self.tmp("a"), self.tmp("b"), self.tmp("r")
        la = self.read(insn, dst, a, write=True)
        c = self.tmp("c")
        self.emit(f"{c} = {cnt[2] & 0x1f if cnt[0] == 'i' else 'ecx & 0x1f'}")
        self.emit(f"{b} = {self.get_reg(size, src[2])}")
        self.emit(f"if {c}:")
        self.ind += 1
        fn = self.const(shifts.SHLD if insn.mnemonic == "shld" else shifts.SHRD, "S")
        fl = self.tmp("f")
        self.emit(f"{r}, {fl} = {fn}({a}, {b}, {c}, {size}, {self.arith_flags()})")
        self.write(insn, dst, r, la)
        self.store_flags(fl)
        self.ind -= 1
        self.else_flags_unchanged()
        self.flags_stored()

    # -- multiply and divide
    def op_mul(self, insn: Insn) -> None:
        src = insn.operands[0]
        size = src[1]
        b = self.tmp("b")
        bexpr = self.value(insn, src, b)
        r = self.tmp("r")
        lo, hi = self.tmp("lo"), self.tmp("hi")
        mask = MASK[size]
        if size == 8:
            self.emit(f"{r} = (eax & 0xff) * {bexpr}")
            self.set_reg(16, 0, r)
            self.emit(f"{lo} = {r} & 0xff")
            self.emit(f"{hi} = {r} >> 8")
        else:
            self.emit(f"{r} = {self.get_reg(size, 0)} * {bexpr}")
            self.emit(f"{lo} = {r} & {mask}")
            self.emit(f"{hi} = {r} >> {size}")
            self.set_reg(size, 0, lo)
            self.set_reg(size, 2, hi)
        self.set_eager(self._mul_flags(size, lo, f"{hi} != 0"))

    def _mul_flags(self, size: int, lo: str, overflow: str) -> str:
        # CF = OF = overflow; SF, ZF, PF from the low half as a P6 leaves them; AF clear.
        return (f"(0x801 if {overflow} else 0) | PARITY[{lo} & 0xff] | (0x40 if {lo} == 0 else 0)"
                f" | (0x80 if {lo} & {SIGN[size]:#x} else 0)")

    def op_imul(self, insn: Insn) -> None:
        ops = insn.operands
        if len(ops) == 1:
            src = ops[0]
            size = src[1]
            s = SIGN[size]
            b = self.tmp("b")
            bexpr = self.value(insn, src, b)
            self.emit(f"{b} = {bexpr}")
            self.emit(f"{b} = {b} - {2 * s:#x} if {b} & {s:#x} else {b}")
            a = self.tmp("a")
            self.emit(f"{a} = {self.get_reg(size, 0)}")
            self.emit(f"{a} = {a} - {2 * s:#x} if {a} & {s:#x} else {a}")
            r, lo, hi = self.tmp("r"), self.tmp("lo"), self.tmp("hi")
            self.emit(f"{r} = {a} * {b}")
            self.emit(f"{lo} = {r} & {MASK[size]}")
            if size == 8:
                self.set_reg(16, 0, f"{r} & 0xffff")
            else:
                self.emit(f"{hi} = ({r} >> {size}) & {MASK[size]}")
                self.set_reg(size, 0, lo)
                self.set_reg(size, 2, hi)
            ovf = f"{r} != ({lo} - {2 * s:#x} if {lo} & {s:#x} else {lo})"
            self.set_eager(self._mul_flags(size, lo, ovf))
            return
        dst = ops[0]
        src1, src2 = (ops[0], ops[1]) if len(ops) == 2 else (ops[1], ops[2])
        size = dst[1]
        s = SIGN[size]
        a, b = self.tmp("a"), self.tmp("b")
        e1 = self.value(insn, src1, a)
        self.emit(f"{a} = {e1}")
        e2 = self.value(insn, src2, b)
        self.emit(f"{b} = {e2}")
        self.emit(f"{a} = {a} - {2 * s:#x} if {a} & {s:#x} else {a}")
        self.emit(f"{b} = {b} - {2 * s:#x} if {b} & {s:#x} else {b}")
        r, lo = self.tmp("r"), self.tmp("lo")
        self.emit(f"{r} = {a} * {b}")
        self.emit(f"{lo} = {r} & {MASK[size]}")
        self.set_reg(size, dst[2], lo)
        ovf = f"{r} != ({lo} - {2 * s:#x} if {lo} & {s:#x} else {lo})"
        self.set_eager(self._mul_flags(size, lo, ovf))

    def op_div(self, insn: Insn) -> None:
        src = insn.operands[0]
        size = src[1]
        signed = insn.mnemonic == "idiv"
        b = self.tmp("b")
        bexpr = self.value(insn, src, b)
        self.emit(f"{b} = {bexpr}")
        self.may_fault()
        self.emit(f"if {b} == 0: raise CPUFault({DE})")
        a, q, rem = self.tmp("a"), self.tmp("q"), self.tmp("rm")
        if size == 8:
            self.emit(f"{a} = eax & 0xffff")
        else:
            self.emit(f"{a} = ({self.get_reg(size, 2)} << {size}) | {self.get_reg(size, 0)}")
        mask = MASK[size]
        if signed:
            s2 = 1 << (2 * size)
            self.emit(f"{a} = {a} - {s2:#x} if {a} >> {2 * size - 1} else {a}")
            s = SIGN[size]
            self.emit(f"{b} = {b} - {2 * s:#x} if {b} & {s:#x} else {b}")
            # truncating division, as the hardware does
            self.emit(f"{q} = abs({a}) // abs({b})")
            self.emit(f"if ({a} < 0) != ({b} < 0): {q} = -{q}")
            self.emit(f"{rem} = {a} - {q} * {b}")
            self.emit(f"if not {-s} <= {q} <= {s - 1}: raise CPUFault({DE})")
        else:
            self.emit(f"{q}, {rem} = divmod({a}, {b})")
            self.emit(f"if {q} > {mask}: raise CPUFault({DE})")
        if size == 8:
            self.set_reg(16, 0, f"(({rem} & 0xff) << 8) | ({q} & 0xff)")
        else:
            self.set_reg(size, 0, f"{q} & {mask}")
            self.set_reg(size, 2, f"{rem} & {mask}")

    # -- bits
    def op_bittest(self, insn: Insn) -> None:
        m = insn.mnemonic
        dst, src = insn.operands
        size = dst[1]
        a, b, bit = self.tmp("a"), self.tmp("b"), self.tmp("bit")
        if src[0] == "i":
            self.emit(f"{b} = {src[2] % size}")
        else:
            self.emit(f"{b} = {self.get_reg(size, src[2])}")
        if dst[0] == "m" and src[0] == "r":
            # A register bit offset reaches outside the operand: signed, in whole operands.
            s = SIGN[size]
            off = self.tmp("o")
            self.emit(f"{off} = ({b} - {2 * s:#x} if {b} & {s:#x} else {b}) >> {size.bit_length() - 1}")
            self.emit(f"{b} = {b} & {size - 1}")
            self.may_fault()
            ea = self.ea(insn)
            amask = "0xffffffff" if insn.mem.addr32 else "0xffff"
            la = self.linear(insn.mem.seg, f"(({ea}) + {off} * {size // 8}) & {amask}", size,
                             m != "bt")
            self.load(la, size, a)
        else:
            if src[0] == "r":
                self.emit(f"{b} = {b} & {size - 1}")
            la = self.read(insn, dst, a, write=m != "bt")
        self.emit(f"{bit} = ({a} >> {b}) & 1")
        if m != "bt":
            op = {"bts": f"{a} | (1 << {b})", "btr": f"{a} & ~(1 << {b})", "btc": f"{a} ^ (1 << {b})"}[m]
            self.write(insn, dst, op, la)
        self.set_eager(f"({self.arith_flags()} & ~1) | {bit}")

    def op_bitscan(self, insn: Insn) -> None:
        dst, src = insn.operands
        size = dst[1]
        v = self.tmp("v")
        expr = self.value(insn, src, v)
        self.emit(f"{v} = {expr}")
        prior = self.arith_flags()
        self.emit(f"if {v}:")
        if insn.mnemonic == "bsf":
            self.emit(f"    {v} = ({v} & -{v}).bit_length() - 1")
        else:
            self.emit(f"    {v} = {v}.bit_length() - 1")
        self.ind += 1
        self.set_reg(size, dst[2], v)
        self.set_eager(f"({prior}) & ~0x40")
        self.ind -= 1
        self.emit("else:")
        self.ind += 1
        self.set_eager(f"({prior}) | 0x40")
        self.ind -= 1

    # -- control transfer
    def jump(self, target: str, taken: bool = True) -> None:
        mask = "0xffffffff" if self.code32 else "0xffff"
        if not self.cs_flat:
            t = self.tmp("t")
            self.emit(f"{t} = {target} & {mask}")
            self.may_fault()
            self.emit(f"if {t} > cpu.sregs[1].limit: raise CPUFault({GP}, 0)")
            target = t
        self.emit(f"nxt = {target}")
        if taken:
            self.emit(f"tk += {timing.BRANCH_TAKEN}")

    def op_jmp(self, insn: Insn) -> None:
        op = insn.operands[0]
        if op[0] == "j":
            self.jump(hex(op[2]))
        else:
            v = self.tmp("v")
            self.jump(self.value(insn, op, v))
        self.end_eip = "nxt"

    def op_jcc(self, insn: Insn) -> None:
        c = self.cond(insn.cc)
        self.conditional(c, insn.operands[0][2], insn)

    def conditional(self, c: str, target: int, insn: Insn) -> None:
        self.emit(f"if {c}:")
        self.ind += 1
        self.jump(hex(target))
        self.ind -= 1
        self.emit("else:")
        self.emit(f"    nxt = {self.next_eip(insn):#x}")
        self.end_eip = "nxt"

    def op_loop(self, insn: Insn) -> None:
        m = insn.mnemonic
        cx = self.tmp("cx")
        if insn.addr32:
            self.emit(f"{cx} = (ecx - 1) & 0xffffffff")
            c = f"{cx} != 0"
        else:
            self.emit(f"{cx} = (ecx & 0xffff0000) | ((ecx - 1) & 0xffff)")
            c = f"{cx} & 0xffff != 0"
        if m == "loope":
            c = f"{c} and {self.cond(4)}"
        elif m == "loopne":
            c = f"{c} and {self.cond(5)}"
        self.conditional(c, insn.operands[0][2], insn)
        self.emit(f"ecx = {cx}")

    def op_jcxz(self, insn: Insn) -> None:
        cnt = "ecx" if insn.addr32 else "(ecx & 0xffff)"
        self.conditional(f"{cnt} == 0", insn.operands[0][2], insn)

    def op_call(self, insn: Insn) -> None:
        op = insn.operands[0]
        size = 32 if insn.op32 else 16
        if op[0] == "j":
            target = hex(op[2])
        else:
            v = self.tmp("v")
            target = self.value(insn, op, v)
            if target != v:
                self.emit(f"{v} = {target}")
                target = v
        ret = f"{self.next_eip(insn):#x}"
        # the target is checked against the CS limit before anything is pushed
        mask = "0xffffffff" if self.code32 else "0xffff"
        t = self.tmp("t")
        self.emit(f"{t} = {target} & {mask}")
        if not self.cs_flat:
            self.may_fault()
            self.emit(f"if {t} > cpu.sregs[1].limit: raise CPUFault({GP}, 0)")
        self.push(size, ret)
        self.emit(f"nxt = {t}")
        self.emit(f"tk += {timing.BRANCH_TAKEN}")
        self.end_eip = "nxt"

    def op_ret(self, insn: Insn) -> None:
        size = 32 if insn.op32 else 16
        v = self.tmp("v")
        sp = self.pop_value(size, v)
        if insn.operands:
            self.emit(f"{sp} = ({sp} + {insn.operands[0][2]}) & {self.sp_mask()}")
        if not self.cs_flat:
            self.may_fault()
            self.emit(f"if {v} > cpu.sregs[1].limit: raise CPUFault({GP}, 0)")
        self.commit_sp(sp)
        self.emit(f"nxt = {v}")
        self.emit(f"tk += {timing.BRANCH_TAKEN}")
        self.end_eip = "nxt"

    # -- everything else: a Python function, at the end of the block
    def helper(self, insn: Insn) -> None:
        self.helper_insn = insn

    def next_eip(self, insn: Insn) -> int:
        return (insn.eip + insn.length) & (M32 if self.code32 else 0xFFFF)


def ends_block(insn: Insn) -> bool:
    kind = INLINE.get(insn.mnemonic)
    return kind in ("jmp", "jcc", "call", "ret", "loop", "jcxz") or uses_helper(insn)


#: P:027 Not every instruction is worth generating inline.  The common
# integer ones are: moves, arithmetic and logic, shifts, multiply and divide,
# bit tests, jumps, calls and returns.  Everything that touches the
# processor's mode or its tables goes to a Python function in system.py
# instead (segment loads, far jumps and calls, `int` and `iret`, `cli` and
# `sti`, `in` and `out`, `lgdt`, moves to control registers, `invlpg`), or
# to strings.py for the rep string instructions and x87.py for the FPU.  Such
# an instruction always ends its block, after the block has written the
# whole state back to the CPU object, so the helper may change anything,
# even the mode the block was compiled for.  Every instruction lguest's
# Guest kernel is denied is among them, so the checks that make those fault
# in ring 1 are all plain Python in system.py (P:032, P:033).
def uses_helper(insn: Insn) -> bool:
    kind = INLINE.get(insn.mnemonic)
    if kind is None or insn.rep is not None and kind not in ("jcc", "alu", "ret", "nop"):
        return True
    if insn.lock and kind not in ("alu", "unary", "xchg", "xadd", "cmpxchg", "bittest"):
        return True
    if kind == "mov":
        dst, src = insn.operands
        return dst[0] in ("s", "c", "d") or src[0] in ("c", "d")
    if kind == "push":
        return insn.operands[0][0] == "s"
    if kind == "pop":
        return insn.operands[0][0] != "r"
    return False


# Every instruction left to Python, by mnemonic: the system ones and the string ones.
HELPERS = {**system.HELPERS, **strings.HELPERS}

BASE_GLOBALS = {"CPUFault": CPUFault, "PARITY": PARITY, "UNWIND": unwind}


def fetch_bytes(cpu, pa: int) -> bytes:
    """The bytes from ``pa`` to the end of its page (all ones beyond RAM, like a bus)."""
    end = (pa | 0xFFF) + 1
    return bytes(cpu.ram[pa:end]) if pa < cpu.mem.size else b"\xff" * (end - pa)


#: P:023 The heart of the core's speed.  Interpreting in Python one
# instruction at a time would cost a decode, a lookup and a call for every
# instruction executed.  Instead, the first time the CPU reaches a physical
# address, `translate()` decodes the straight run of instructions there, up
# to 48 of them, ending after a jump, call or return, after an instruction
# left to a helper (P:027), or at the end of the page.  It writes one Python
# function for the whole run (P:024), compiles it, and caches it by physical
# address, so every later visit is a dict lookup and a call.  An instruction
# that straddles two pages is fetched from both (which may page-fault) and
# gets a block of its own that is never cached, since the second page's
# mapping may change.  A block that jumps back to its own start becomes a
# loop inside its function, so a busy-wait or a memset does not go back
# through the dispatcher on every iteration.  This file is dense on purpose:
# it is the hot path of the whole project.
def translate(cpu, eip: int, pa: int, limit: int):
    """Decode from ``eip`` (physical ``pa``) and compile the block; see the module docstring."""
    code32 = cpu.code32
    emask = M32 if code32 else 0xFFFF
    page = pa & ~0xFFF
    insns, fault, cross, off = decode_run(cpu, eip, pa, limit)
    em = Emitter(cpu)
    live = ()
    if not cross and fault is None and cpu.rewritten.get(pa, 0) >= REWRITTEN and pa + off <= cpu.mem.size:
        live = live_immediates(em, insns, pa)
    total, helper_insn, eips, cycles_before = emit_run(em, insns)
    n_inline = len(insns) - (1 if helper_insn is not None else 0)
    end = (insns[-1].eip + insns[-1].length) & emask if insns else eip
    if fault is not None:
        eips = [eip]
        cycles_before = [0]
    else:
        eips.append(end)
        cycles_before.append(total)
    # A block whose last instruction jumps back to its own start loops inside
    # its function (bounded by the instruction budget): tight loops then cost
    # no trip through the CPU's dispatcher per iteration.
    loops = bool(helper_insn is None and fault is None and limit > 1 and insns
                 and not em.reads_entry_flags and _targets(insns[-1]) == eip)
    if loops:
        # Every pass but perhaps the last takes the branch back: its cycles are
        # counted once, from the passes made, instead of on each (blocks.py).
        taken = f"tk += {timing.BRANCH_TAKEN}"
        last = max(i for i, ln in enumerate(em.lines) if ln.strip() == taken)
        em.lines[last] = ""
        prune(em)       # worth its cost where the body runs many times
    src, meta = assemble(em, n_inline, eip, total, helper_insn, fault, code32, loops)
    ns = dict(BASE_GLOBALS)
    ns.update(em.consts)
    if helper_insn is not None:
        ns["HELPER"] = HELPERS.get(helper_insn.mnemonic, system.undefined)
        ns["HINSN"] = helper_insn
        ns["HCOST"] = timing.cost(timing_key(helper_insn), memory_kind(helper_insn))
    ns["EIPS"] = tuple(eips)
    ns["META"] = meta + (ns["EIPS"], tuple(cycles_before))
    exec(compiled(src, f"<block {eip:#010x}>"), ns)  # noqa: S102 - our own generated source
    blk = Block(ns["block"], eip, max(len(insns), 1), end, page, src)
    if not cross and fault is None:
        cache = cpu.bcache if limit > 1 else cpu.scache
        cache[pa] = blk
        # A block replacing another at the same address (code reached through
        # two aliases) replaces its entry too, so the list cannot grow forever.
        entries = [e for e in cpu._page_blocks.get(page, ()) if e[0] is not cache or e[1] != pa]
        entries.append((cache, pa, pa, pa + off, live))
        cpu._page_blocks[page] = entries
        cpu.tlb.protect_code_page(page)
        # A plain block that may lead on to others on its page, run often,
        # becomes the entry of a region (regions.py).
        if limit > 1 and helper_insn is None and not loops and not live:
            blk.heat = HOT
    return blk


def decode_run(cpu, eip: int, pa: int, limit: int) -> tuple[list[Insn], tuple | None, bool, int]:
    """Decode up to ``limit`` instructions from ``eip``: (insns, fault, crosses a page, bytes)."""
    code32 = cpu.code32
    emask = M32 if code32 else 0xFFFF
    buf = fetch_bytes(cpu, pa)
    insns: list[Insn] = []
    fault: tuple[int, int | None] | None = None
    cross = False
    off = 0
    cur = eip
    cs = cpu.sregs[1]
    while len(insns) < limit:
        try:
            insn = decode(buf[off:off + 16], cur, code32)
        except NeedBytes:
            if insns:
                break
            # The instruction runs into the next page: fetch it (this may #PF).
            la2 = (cs.base + cur + (len(buf) - off)) & M32
            pa2 = cpu._phys(la2, False, cpu.cpl == 3)
            more = bytes(cpu.mem.read(pa2, 16))
            try:
                insn = decode(buf[off:] + more, cur, code32)
            except DecodeError as d:
                fault = (d.vector, 0 if d.vector == GP else None)
                break
            cross = True
        except DecodeError as d:
            if not insns:
                fault = (d.vector, 0 if d.vector == GP else None)
            break
        if not cpu.cs_flat and cur + insn.length - 1 > cs.limit:
            if not insns:
                fault = (GP, 0)
            break
        insns.append(insn)
        off += insn.length
        cur = (cur + insn.length) & emask
        if ends_block(insn) or cross or off >= len(buf):
            break
    return insns, fault, cross, off


def emit_run(em: Emitter, insns: list[Insn]) -> tuple[int, Insn | None, list[int], list[int]]:
    """Emit the inline instructions: (cycles, the helper ending the run or None,
    each one's EIP, the cycles before each)."""
    eips, cycles_before = [], []
    total = 0
    helper_insn = None
    for i, insn in enumerate(insns):
        em.idx = i
        eips.append(insn.eip)
        cycles_before.append(total)
        if uses_helper(insn):
            helper_insn = insn
            break
        em.starts.append(len(em.lines))
        em.emit(f"# {insn.eip:08x}: {insn.mnemonic}")
        getattr(em, "op_" + INLINE[insn.mnemonic])(insn)
        total += timing.cost(timing_key(insn), memory_kind(insn))
    em.starts.append(len(em.lines))
    return total, helper_insn, eips, cycles_before


_DEF = re.compile(r"^( *)([abr]\d+) = (.+)$")
_SIMPLE = re.compile(r"^(eax|ecx|edx|ebx|esp|ebp|esi|edi|0x[0-9a-f]+|\d+)$")
_ASSIGNED = re.compile(r"^ *([\w, ]+?) = ", re.M)


def prune(em: Emitter) -> None:
    """Drop the copies a flag producer makes for flags no one will read (in
    loops and regions, whose bodies run many times: elsewhere the saving does
    not repay the looking).

    A producer's operands and result are kept in temporaries (``a3 = eax``)
    only so that its flags can be worked out later.  When a later producer
    overwrites them before anything can read them (no flag test, and no
    instruction that may fault, whose unwinding would store them), the copies
    are dead: the instruction then works on the registers themselves
    (``eax = (eax + ebx) & 0xffffffff``).
    """
    stores = em.stores
    faults = {int(ln.split("=")[1]) for ln in em.lines if ln.lstrip().startswith("n = ")}
    lines = em.lines
    for j in range(len(stores) - 1):
        idx, st = stores[j]
        if st is None or idx + 1 >= len(em.starts):
            continue
        if any(idx < m <= stores[j + 1][0] for m in faults):
            continue
        lo, hi = em.starts[idx], em.starts[idx + 1]
        names = [t for t in st[1:] if t != "cfin"]
        outside = "\n".join(lines[:lo] + lines[hi:])
        if any(re.search(rf"\b{t}\b", outside) for t in names):
            continue
        for t in names:
            _propagate(lines, lo, hi, t)


def _propagate(lines: list[str], lo: int, hi: int, t: str) -> None:
    """Within lines[lo:hi], replace temporary ``t`` by what it was given, if safe."""
    word = re.compile(rf"\b{t}\b")
    defs = [i for i in range(lo, hi) if (m := _DEF.match(lines[i])) and m.group(2) == t]
    if len(defs) != 1:
        return
    d = defs[0]
    indent, _, value = _DEF.match(lines[d]).groups()
    if len(indent) != len(lines[lo]) - len(lines[lo].lstrip()):
        return              # inside an if of the instruction's own: leave it be
    uses = [i for i in range(d + 1, hi) if word.search(lines[i])]
    if not uses:
        return
    if _SIMPLE.match(value):
        # a register may not change between the copy and its last use
        between = "\n".join(lines[d + 1:uses[-1]])
        if any(value in {n.strip() for n in m.split(",")} for m in _ASSIGNED.findall(between)):
            return
        for i in uses:
            lines[i] = word.sub(value, lines[i])
    elif len(uses) == 1 and uses[0] == d + 1 \
            and re.match(rf"^{indent}(eax|ecx|edx|ebx|esp|ebp|esi|edi) = {t}$", lines[d + 1]):
        # the result goes straight into its register (r3 = ...; eax = r3)
        lines[d + 1] = lines[d + 1][:-len(t)] + value
    else:
        return
    del lines[d]
    lines.insert(d, "")         # keep the instruction ranges where they were


REWRITTEN = 2
LIVE = ("mov", "add", "or", "adc", "sbb", "and", "sub", "xor", "cmp", "test", "push", "imul")
SIGN_EXTENDED_IMM8 = (0x83, 0x6A, 0x6B)


#: P:059 Code that rewrites itself mostly rewrites data kept in its own
# instructions: a constant in a `mov`, a `cmp` or a `push`.  Translating the
# block again after every such store costs a `compile()`, a thousand times
# what the store does.  So a block that writes have thrown away `REWRITTEN`
# times is translated once more with its immediates live: they are read from
# RAM, into locals, each time the block is entered (so within one run of it the
# block still sees the bytes it started with, as a prefetch queue would), and
# a later store that lands wholly inside one of them leaves the block in place
# (`CPU._memory_written`).  Only immediates the translator pastes in as they
# are qualify (moves, arithmetic, `test`, `push`, `imul`); a store to an
# opcode, a displacement, a shift count or a jump still drops the block.
def live_immediates(em: Emitter, insns: list[Insn], pa: int) -> tuple:
    """Read the block's immediates from RAM at entry; returns their byte ranges."""
    ranges = []
    at = pa
    for i, insn in enumerate(insns):
        ops = insn.operands
        if (insn.mnemonic in LIVE and ops and ops[-1][0] == "i"
                and sum(o[0] == "i" for o in ops) == 1 and not uses_helper(insn)):
            size = ops[-1][1]
            k = 1 if insn.opcode in SIGN_EXTENDED_IMM8 else size // 8
            start = at + insn.length - k
            name = em.live[i] = f"I{i}"
            value = f'int.from_bytes(cpu.ram[{start:#x}:{start + k:#x}], "little")'
            if k == 1 and size > 8:
                value = f"(({value} ^ 0x80) - 0x80) & {MASK[size]}"
            em.prologue.append(f"{name} = {value}")
            ranges.append((start, start + k))
        at += insn.length
    return tuple(ranges)


def _targets(insn: Insn) -> int | None:
    if INLINE.get(insn.mnemonic) in ("jmp", "jcc", "loop", "jcxz") and insn.operands[0][0] == "j":
        return insn.operands[0][2]
    return None
