"""Differential-testing harness: lguestsim's interpreted i386 against unicorn.

The same snippet of machine code, the same registers, EFLAGS and memory image
are given to unicorn (QEMU's TCG, 32-bit protected mode, flat segments) and to
``lguestsim.x86.CPU``; both run until the ``hlt`` appended to the code (or
until a fault), and everything architectural that the instructions define is
compared: the eight GPRs, EIP, EFLAGS masked to the flags the instructions
leave defined (per the Intel SDM), the data area and the stack.

Unicorn does not deliver exceptions through the IDT: its ``UC_HOOK_INTR``
sees the vector with EIP at the faulting instruction and CR2 set, and we stop
there. Our CPU gets a real IDT whose every vector is a ``hlt`` stub; the
exception frame it pushed tells the faulting EIP, EFLAGS and error code.

Instructions come from byte templates (no assembler needed) drawn by
hypothesis strategies. Each generated instruction declares which flags it
reads, writes and leaves undefined, so random sequences can mix instructions
while undefined flags are tracked (a flag-reading instruction that would read
an undefined flag is replaced by NOPs of the same length).

Memory layout (physical = linear unless paging is on)::

    0x00400  IDT, 32 interrupt gates to STUBS + vector
    0x00600  32 one-byte ``hlt`` stubs
    0x00800  GDT: 0x08 ring-0 code, 0x10 ring-0 data, 0x1b ring-3 code,
             0x23 ring-3 data, 0x28 32-bit TSS
    0x00900  TSS (esp0 = RING0_STACK_TOP, ss0 = 0x10)
    0x01000  code (CODE), ends with hlt
    0x04000  data area (DATA, DATA_SIZE bytes)
    0x08000  stack page, ESP starts at STACK_TOP = 0x8800
    0x0a000  ring-0 stack page used by ring-3 tests (TSS esp0 = 0xb000)
    0x10000+ page directory and page tables of the paging tests
    0x30000+ frames the paging tests map
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random
import struct
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# --------------------------------------------------------------------------
# Constants

MEM_SIZE = 0x100000
IDT_BASE = 0x0400
IDT_LIMIT = 32 * 8 - 1
STUBS = 0x0600
GDT_BASE = 0x0800
TSS_BASE = 0x0900
TSS_SEL = 0x28
GDT_LIMIT = 6 * 8 - 1
CODE = 0x1000
CODE_MAX = 0x3000
DATA = 0x4000
DATA_SIZE = 0x1000
DATA_END = DATA + DATA_SIZE
STACK_LO = 0x8000
STACK_TOP = 0x8800
STACK_HI = 0x9000
RING0_STACK_TOP = 0xB000
MAX_STEPS = 2000

CF, PF, AF, ZF, SF, TF, IF, DF, OF = (
    0x1, 0x4, 0x10, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800)
STATUS = CF | PF | AF | ZF | SF | OF
#: EFLAGS bits compared: status flags, TF, IF, DF, IOPL, NT and bit 1. RF,
#: VM, AC, VIF, VIP and ID are left out: RF is set differently in fault
#: frames by CPU generation, and the others are never set by these tests.
EFLAGS_COMPARE = 0x7FD7

R32 = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")
R16 = ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di")
R8 = ("al", "cl", "dl", "bl", "ah", "ch", "dh", "bh")
EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI = range(8)
#: vectors that push an error code
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17})

SPECIAL32 = (
    0, 1, 2, 3, 0x0F, 0x10, 0x7F, 0x80, 0x81, 0xFF, 0x100, 0x7FFF, 0x8000,
    0x8001, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFF,
    0xFFFFFFFE, 0xFFFF8000, 0xFFFFFF80, 0xFFFF7FFF, 0x0000FF80, 0x00FF00FF,
    0x99, 0x09, 0x0A, 0x9A, 0xFA,
)


def mask(bits: int) -> int:
    return (1 << bits) - 1


def cc_reads(cc: int) -> int:
    """The flags condition code ``cc`` (0..15, as in jcc/setcc) reads."""
    return (OF, CF, ZF, CF | ZF, SF, PF, SF | OF, SF | OF | ZF)[cc >> 1]


# --------------------------------------------------------------------------
# Generated instructions and cases


@dataclasses.dataclass
class Insn:
    """One encoded instruction and its flag behaviour.

    ``writes`` are the flags the instruction may modify, ``undef`` (a subset)
    those it leaves undefined; ``reads`` those whose value it depends on.
    ``jump_items`` is set on forward jumps: how many following items the
    jump skips when taken (resolved to a displacement when the case is laid
    out). ``undef_regs`` are registers whose value is undefined afterwards.
    """

    code: bytes
    reads: int = 0
    writes: int = 0
    undef: int = 0
    undef_regs: frozenset[int] = frozenset()
    jump_items: int | None = None
    jump_form: str = ""
    note: str = ""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(f"Insn({self.code.hex()})")


@dataclasses.dataclass
class Case:
    """A complete differential test case (code plus initial state)."""

    family: str
    insns: list[Insn]
    regs: list[int]
    eflags: int
    data: bytes = dataclasses.field(repr=False)
    stack: bytes = dataclasses.field(repr=False)
    undef_in: list[int] = dataclasses.field(repr=False)   # undefined flags before each insn
    undef_regs: frozenset[int] = dataclasses.field(repr=False)
    offsets: list[int] = dataclasses.field(repr=False)    # code offsets (+ the final hlt)

    def __repr__(self) -> str:
        return (f"Case({self.family}: code {self.code.hex()}, regs "
                + "/".join(f"{v:x}" for v in self.regs) + f", eflags {self.eflags:#x})")

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """Hypothesis prints falsifying examples with this."""
        p.text(repr(self))

    @property
    def code(self) -> bytes:
        return b"".join(i.code for i in self.insns) + b"\xf4"

    @property
    def hlt_addr(self) -> int:
        return CODE + self.offsets[-1]


# --------------------------------------------------------------------------
# The generator context


class Gen:
    """Draws operands for instruction generators.

    In single mode (``seq=False``) a register an instruction needs with a
    particular value (a base register, a shift count in CL, a dividend) is
    given that value in the initial state; in sequence mode a ``mov reg,
    imm32`` is emitted just before the instruction instead, so values computed
    by earlier instructions still flow into the others.
    """

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any], seq: bool) -> None:
        self.draw = draw
        self.seq = seq
        seed = draw(st.integers(0, 2**32 - 1))
        rnd = random.Random(seed)
        self.data = bytearray(rnd.randbytes(DATA_SIZE))
        self.stack = bytearray(rnd.randbytes(STACK_HI - STACK_LO))
        self.fixed: dict[int, int] = {}
        self.pre: list[Insn] = []
        self.item_fixed: dict[int, int] = {}
        self.df: int | None = None       # DF wanted in the initial EFLAGS

    # -- values -----------------------------------------------------------
    def value(self) -> int:
        return self.draw(st.one_of(
            st.sampled_from(SPECIAL32),
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**32 - 1).map(lambda v: v & 0x800000FF),
        ))

    def imm(self, bits: int) -> int:
        if bits == 8:
            return self.draw(st.one_of(
                st.sampled_from((0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 0x7F, 0x80, 0xFF)),
                st.integers(0, 255)))
        return self.value() & mask(bits)

    def size(self, sizes: Sequence[int] = (8, 16, 32)) -> int:
        return self.draw(st.sampled_from(tuple(sizes)))

    def reg(self, size: int, avoid: Sequence[int] = ()) -> int:
        """A register number for an operand of ``size`` bits (never ESP for
        16/32 bits; ``avoid`` lists 32-bit registers not to touch)."""
        if size == 8:
            choices = [r for r in range(8) if (r & 3) not in avoid]
        else:
            choices = [r for r in range(8) if r != ESP and r not in avoid]
        return self.draw(st.sampled_from(choices))

    # -- register constraints ----------------------------------------------
    def fix(self, reg: int, value: int) -> None:
        """Give 32-bit register ``reg`` the value ``value`` when the current
        item's main instruction runs."""
        value &= 0xFFFFFFFF
        assert reg != ESP, "ESP is never fixed"
        old = self.item_fixed.get(reg)
        assert old is None or old == value, f"conflicting values for {R32[reg]}"
        self.item_fixed[reg] = value
        if not self.seq and reg not in self.fixed and old is None:
            self.fixed[reg] = value
        elif old is None:
            self.pre.append(Insn(bytes([0xB8 + reg]) + struct.pack("<I", value),
                                 note="fix"))

    def known(self, reg: int) -> int | None:
        """The value ``reg`` is known to have when the instruction runs."""
        return self.item_fixed.get(reg)

    def fix_random(self, reg: int) -> int:
        v = self.value()
        self.fix(reg, v)
        return v

    def fix_operand(self, reg: int, size: int, value: int) -> None:
        """Fix a register operand of ``size`` bits (8-bit numbering for
        size 8) to ``value``, the rest of its 32-bit register random."""
        r32 = reg & 3 if size == 8 else reg
        shift = 8 if size == 8 and reg >= 4 else 0
        m = mask(size) << shift
        self.fix(r32, (self.value() & ~m) | ((value << shift) & m))

    def reg_value(self, reg: int, size: int) -> int:
        """Fix (if needed) and return the value of an operand register."""
        r32 = reg & 3 if size == 8 else reg
        v = self.known(r32)
        if v is None:
            v = self.fix_random(r32)
        if size == 8:
            return (v >> 8) & 0xFF if reg >= 4 else v & 0xFF
        return v & mask(size)

    def set_df(self, df: int) -> None:
        """Make DF = df for this item (initial EFLAGS, or cld/std)."""
        if self.seq or self.df is not None:
            self.pre.append(Insn(b"\xfd" if df else b"\xfc", writes=DF, note="fix"))
        else:
            self.df = df

    def begin_item(self) -> None:
        self.item_fixed = {}
        self.pre = []

    # -- memory -------------------------------------------------------------
    def poke(self, addr: int, data: bytes) -> None:
        if DATA <= addr and addr + len(data) <= DATA_END:
            self.data[addr - DATA:addr - DATA + len(data)] = data
        elif STACK_LO <= addr and addr + len(data) <= STACK_HI:
            self.stack[addr - STACK_LO:addr - STACK_LO + len(data)] = data
        else:
            raise AssertionError(f"poke outside the data/stack areas: {addr:#x}")

    def peek(self, addr: int, n: int) -> bytes:
        if DATA <= addr and addr + n <= DATA_END:
            return bytes(self.data[addr - DATA:addr - DATA + n])
        return bytes(self.stack[addr - STACK_LO:addr - STACK_LO + n])

    def pick_ea(self, size_bytes: int, lo: int = DATA, hi: int = DATA_END) -> int:
        return self.draw(st.integers(lo, hi - size_bytes))

    def modrm_mem(self, reg_field: int, size_bytes: int, avoid: Sequence[int] = (),
                  ea: int | None = None, poke: bool = True) -> tuple[bytes, int | None]:
        """ModRM (+SIB +disp) bytes for a memory operand into the data area,
        with its base/index registers fixed so the address is ``ea``.
        Returns the bytes and the effective address (None if ESP-relative
        in sequence mode). Pokes an interesting value there if ``poke``."""
        forms = ["disp32", "base", "base8", "base32", "sib", "sib8", "sib32",
                 "sib_nobase", "esp8"]
        form = self.draw(st.sampled_from(forms))
        if ea is None:
            ea = self.pick_ea(size_bytes)
        usable = [r for r in range(8) if r != ESP and r not in avoid
                  and r not in self.item_fixed]
        if form != "esp8" and not usable:
            form = "disp32"
        rf = reg_field << 3
        if form == "disp32":
            code = bytes([rf | 5]) + struct.pack("<I", ea)
        elif form == "esp8":
            if self.seq:
                disp = self.draw(st.integers(-64, 64))
                ea_out = None
            else:
                disp = self.draw(st.integers(-128, 127 - size_bytes))
                ea_out = STACK_TOP + disp
            code = bytes([0x40 | rf | 4, 0x24, disp & 0xFF])
            if poke and ea_out is not None:
                self.poke(ea_out, self.value().to_bytes(4, "little")[:size_bytes])
            return code, ea_out
        elif form in ("base", "base8", "base32"):
            choices = [r for r in usable if not (form == "base" and r == EBP)]
            if not choices:
                choices = usable
                form = "base8"
            base = self.draw(st.sampled_from(choices))
            if form == "base":
                disp, code = 0, bytes([rf | base])
            elif form == "base8":
                disp = self.draw(st.integers(-128, 127))
                code = bytes([0x40 | rf | base, disp & 0xFF])
            else:
                disp = self.value()
                code = bytes([0x80 | rf | base]) + struct.pack("<I", disp)
            self.fix(base, ea - disp)
        else:
            scale = self.draw(st.integers(0, 3))
            if len(usable) < 2 and form != "sib_nobase":
                form = "sib_nobase"
            index = self.draw(st.sampled_from(usable))
            idx_val = self.draw(st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)))
            if form == "sib_nobase":
                disp = (ea - (idx_val << scale)) & 0xFFFFFFFF
                code = bytes([rf | 4, (scale << 6) | (index << 3) | 5]) + struct.pack("<I", disp)
                self.fix(index, idx_val)
            else:
                bases = [r for r in usable if r != index]
                if form == "sib" and bases != [EBP]:
                    bases = [r for r in bases if r != EBP]
                elif form == "sib":
                    form = "sib8"
                base = self.draw(st.sampled_from(bases))
                if form == "sib":
                    disp, tail, mod = 0, b"", 0
                elif form == "sib8":
                    disp = self.draw(st.integers(-128, 127))
                    tail, mod = bytes([disp & 0xFF]), 0x40
                else:
                    disp = self.value()
                    tail, mod = struct.pack("<I", disp), 0x80
                code = bytes([mod | rf | 4, (scale << 6) | (index << 3) | base]) + tail
                self.fix(index, idx_val)
                self.fix(base, ea - disp - (idx_val << scale))
        if poke:
            self.poke(ea, self.value().to_bytes(4, "little")[:size_bytes])
        return code, ea

    def modrm_any(self, reg_field: int) -> bytes:
        """A random memory-form ModRM for lea: no register constraints."""
        mod = self.draw(st.integers(0, 2))
        rm = self.draw(st.integers(0, 7))
        out = bytes([(mod << 6) | (reg_field << 3) | rm])
        if rm == 4:
            out += bytes([self.draw(st.integers(0, 255))])
            if mod == 0 and out[-1] & 7 == 5:
                out += struct.pack("<I", self.value())
        if mod == 0 and rm == 5:
            out += struct.pack("<I", self.value())
        elif mod == 1:
            out += bytes([self.draw(st.integers(0, 255))])
        elif mod == 2:
            out += struct.pack("<I", self.value())
        return out

    def rm(self, reg_field: int, size: int, avoid: Sequence[int] = (),
           mem: bool | None = None) -> tuple[bytes, int | None, int | None]:
        """An r/m operand: (modrm bytes, register or None, memory address
        or None)."""
        if mem is None:
            mem = self.draw(st.booleans())
        if mem:
            code, ea = self.modrm_mem(reg_field, size // 8, avoid)
            return code, None, ea
        r = self.reg(size)
        return bytes([0xC0 | (reg_field << 3) | r]), r, None

    def rm_value(self, size: int, reg: int | None, ea: int | None) -> int | None:
        """The value of an r/m operand when known statically."""
        if reg is not None:
            return self.reg_value(reg, size)
        if ea is not None and not self.seq:
            return int.from_bytes(self.peek(ea, size // 8), "little")
        return None


def osz(size: int) -> bytes:
    """Operand-size prefix for a 16-bit operation."""
    return b"\x66" if size == 16 else b""


def imm_bytes(v: int, size: int) -> bytes:
    return (v & mask(size)).to_bytes(size // 8, "little")


# --------------------------------------------------------------------------
# Instruction generators. Each takes a Gen and returns the item's
# instructions (without the fixes; `item()` prepends them).

GenFn = Callable[[Gen], list[Insn]]


def gen_alu(g: Gen) -> list[Insn]:
    """add/or/adc/sbb/and/sub/xor/cmp in all their forms."""
    op = g.draw(st.integers(0, 7))
    size = g.size()
    w = 0 if size == 8 else 1
    form = g.draw(st.sampled_from(["E,G", "G,E", "acc,imm", "E,imm", "E,imm8s"]))
    if form == "E,imm8s" and size == 8:
        form = "E,imm"
    if form == "E,G":
        g_reg = g.reg(size)
        code, _, _ = g.rm(g_reg, size)
        enc = bytes([op * 8 + w]) + code
    elif form == "G,E":
        g_reg = g.reg(size)
        code, _, _ = g.rm(g_reg, size)
        enc = bytes([op * 8 + 2 + w]) + code
    elif form == "acc,imm":
        enc = bytes([op * 8 + 4 + w]) + imm_bytes(g.imm(size), size)
    elif form == "E,imm":
        code, _, _ = g.rm(op, size)
        opc = 0x81 if w else g.draw(st.sampled_from([0x80, 0x82]))
        enc = bytes([opc]) + code + imm_bytes(g.imm(size), size)
    else:
        code, _, _ = g.rm(op, size)
        enc = b"\x83" + code + bytes([g.imm(8)])
    logic = op in (1, 4, 6)
    return [Insn(osz(size) + enc, reads=CF if op in (2, 3) else 0, writes=STATUS,
                 undef=AF if logic else 0)]


def gen_test(g: Gen) -> list[Insn]:
    """test r/m,reg and test r/m,imm / acc,imm."""
    size = g.size()
    w = 0 if size == 8 else 1
    form = g.draw(st.sampled_from(["E,G", "acc,imm", "E,imm"]))
    if form == "E,G":
        code, _, _ = g.rm(g.reg(size), size)
        enc = bytes([0x84 + w]) + code
    elif form == "acc,imm":
        enc = bytes([0xA8 + w]) + imm_bytes(g.imm(size), size)
    else:
        code, _, _ = g.rm(0, size)
        enc = bytes([0xF6 + w]) + code + imm_bytes(g.imm(size), size)
    return [Insn(osz(size) + enc, writes=STATUS, undef=AF)]


def gen_unary(g: Gen) -> list[Insn]:
    """inc/dec (both encodings), neg, not."""
    size = g.size()
    w = 0 if size == 8 else 1
    kind = g.draw(st.sampled_from(["inc", "dec", "neg", "not", "inc_short", "dec_short"]))
    if kind.endswith("_short") and size == 8:
        kind = kind[:3]
    if kind.endswith("_short"):
        enc = bytes([(0x40 if kind.startswith("inc") else 0x48) + g.reg(size)])
        return [Insn(osz(size) + enc, writes=STATUS & ~CF)]
    if kind in ("inc", "dec"):
        code, _, _ = g.rm(0 if kind == "inc" else 1, size)
        return [Insn(osz(size) + bytes([0xFE + w]) + code, writes=STATUS & ~CF)]
    code, _, _ = g.rm(3 if kind == "neg" else 2, size)
    return [Insn(osz(size) + bytes([0xF6 + w]) + code,
                 writes=STATUS if kind == "neg" else 0)]


SHIFT_COUNTS = (0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 63, 64, 65,
                0x7F, 0x80, 0xFF)


def shift_flags(op: int, size: int, count: int) -> tuple[int, int, int]:
    """(reads, writes, undef) of shift/rotate group op ``op`` by ``count``."""
    c = count & 0x1F
    reads = CF if op in (2, 3) else 0
    if c == 0:
        return reads, 0, 0
    if op in (0, 1, 2, 3):                      # rol ror rcl rcr
        return reads, CF | OF, OF if c != 1 else 0
    undef = AF | (OF if c != 1 else 0)
    if op in (4, 5, 6) and c >= size:           # shl/shr: CF undefined
        undef |= CF
    return reads, STATUS, undef


def gen_shift(g: Gen) -> list[Insn]:
    """rol/ror/rcl/rcr/shl/shr/sal/sar by 1, by imm8 and by CL."""
    op = g.draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]))
    size = g.size()
    w = 0 if size == 8 else 1
    kind = g.draw(st.sampled_from(["1", "imm", "cl"]))
    count = g.draw(st.one_of(st.sampled_from(SHIFT_COUNTS), st.integers(0, 255)))
    if kind == "1":
        count = 1
        code, _, _ = g.rm(op, size)
        enc = bytes([0xD0 + w]) + code
    elif kind == "imm":
        code, _, _ = g.rm(op, size)
        enc = bytes([0xC0 + w]) + code + bytes([count])
    else:
        # (if the operand is CL/CX/ECX itself the count is still CL)
        g.fix(ECX, (g.value() & ~0xFF) | count)
        code, _, _ = g.rm(op, size, avoid=(ECX,))
        enc = bytes([0xD2 + w]) + code
    reads, writes, undef = shift_flags(op, size, count)
    return [Insn(osz(size) + enc, reads=reads, writes=writes, undef=undef)]


def gen_shxd(g: Gen) -> list[Insn]:
    """shld/shrd by imm8 and by CL, 16 and 32 bits."""
    size = g.size((16, 32))
    right = g.draw(st.booleans())
    by_cl = g.draw(st.booleans())
    count = g.draw(st.one_of(st.sampled_from(SHIFT_COUNTS), st.integers(0, 255)))
    c = count & 0x1F
    # A count beyond the operand size leaves the destination undefined: keep
    # that case to register destinations (masked in the comparison), and out
    # of sequences.
    if size == 16 and c > 16 and g.seq:
        count &= 0x0F
        c = count
    too_big = size == 16 and c > 16
    avoid = (ECX,) if by_cl else ()
    if by_cl:
        g.fix(ECX, (g.value() & ~0xFF) | count)
    src = g.reg(size, avoid=avoid)
    code, r, _ = g.rm(src, size, avoid=avoid, mem=False if too_big else None)
    opc = (0xAC if right else 0xA4) + (1 if by_cl else 0)
    enc = osz(size) + bytes([0x0F, opc]) + code + (b"" if by_cl else bytes([count]))
    if c == 0:
        return [Insn(enc)]
    if too_big:
        assert r is not None
        return [Insn(enc, writes=STATUS, undef=STATUS, undef_regs=frozenset({r}))]
    return [Insn(enc, writes=STATUS, undef=AF | (OF if c != 1 else 0))]


MULDIV_UNDEF = SF | ZF | AF | PF


def gen_mul(g: Gen) -> list[Insn]:
    """mul/imul one-operand, imul two- and three-operand forms."""
    form = g.draw(st.sampled_from(["mul", "imul1", "imul2", "imul3", "imul3b"]))
    if form in ("mul", "imul1"):
        size = g.size()
        code, _, _ = g.rm(4 if form == "mul" else 5, size)
        enc = osz(size) + bytes([0xF6 if size == 8 else 0xF7]) + code
    else:
        size = g.size((16, 32))
        code, _, _ = g.rm(g.reg(size), size)
        if form == "imul2":
            enc = osz(size) + b"\x0f\xaf" + code
        elif form == "imul3":
            enc = osz(size) + b"\x69" + code + imm_bytes(g.imm(size), size)
        else:
            enc = osz(size) + b"\x6b" + code + bytes([g.imm(8)])
    return [Insn(enc, writes=STATUS, undef=MULDIV_UNDEF)]


def _signed(v: int, bits: int) -> int:
    v &= mask(bits)
    return v - (1 << bits) if v >> (bits - 1) else v


def gen_div(g: Gen) -> list[Insn]:
    """div/idiv; mostly non-faulting operands, sometimes anything (#DE)."""
    size = g.size()
    signed = g.draw(st.booleans())
    divd_regs = (EAX,) if size == 8 else (EAX, EDX)
    if g.draw(st.integers(0, 9)) == 0:
        # anything goes: may raise #DE, which both sides must report
        for reg in divd_regs:
            g.fix(reg, g.value())
        code, _, _ = g.rm(7 if signed else 6, size, avoid=divd_regs)
        return [Insn(osz(size) + bytes([0xF6 if size == 8 else 0xF7]) + code,
                     writes=STATUS, undef=STATUS)]
    d = g.value() & mask(size) or 1
    if g.draw(st.booleans()):
        code, ea = g.modrm_mem(7 if signed else 6, size // 8, avoid=divd_regs, poke=False)
        if ea is not None:
            g.poke(ea, imm_bytes(d, size))
        else:
            code = None
    else:
        code = None
    if code is None:  # a register divisor (also when an ESP-relative address is unknown)
        r = g.reg(size, avoid=divd_regs)
        g.fix_operand(r, size, d)
        code = bytes([0xC0 | ((7 if signed else 6) << 3) | r])
    dv = _signed(d, size) if signed else d
    if signed:
        q = g.draw(st.integers(-(1 << (size - 1)), (1 << (size - 1)) - 1))
        rem = g.draw(st.integers(0, abs(dv) - 1))
        if q * dv < 0 or (q == 0 and g.draw(st.booleans())):
            rem = -rem
    else:
        q = g.draw(st.integers(0, mask(size)))
        rem = g.draw(st.integers(0, dv - 1))
    dividend = (q * dv + rem) & mask(2 * size)
    if size == 8:
        g.fix(EAX, (g.value() & ~0xFFFF) | dividend)
    elif size == 16:
        g.fix(EAX, (g.value() & ~0xFFFF) | (dividend & 0xFFFF))
        g.fix(EDX, (g.value() & ~0xFFFF) | (dividend >> 16))
    else:
        g.fix(EAX, dividend & 0xFFFFFFFF)
        g.fix(EDX, dividend >> 32)
    enc = osz(size) + bytes([0xF6 if size == 8 else 0xF7]) + code
    return [Insn(enc, writes=STATUS, undef=STATUS)]


BT_UNDEF = OF | SF | AF | PF


def gen_bt(g: Gen) -> list[Insn]:
    """bt/bts/btr/btc, register and immediate bit offsets, register and
    memory operands (register offsets reaching far outside the operand)."""
    op = g.draw(st.integers(0, 3))            # bt bts btr btc
    size = g.size((16, 32))
    imm_form = g.draw(st.booleans())
    mem = g.draw(st.booleans())
    if imm_form:
        code, _, _ = g.rm(4 + op, size, mem=mem)
        enc = osz(size) + b"\x0f\xba" + code + bytes([g.imm(8)])
    elif not mem:
        off_reg = g.reg(size)
        code, _, _ = g.rm(off_reg, size, mem=False)
        enc = osz(size) + bytes([0x0F, 0xA3 + 8 * op]) + code
    else:
        off_reg = g.reg(size)
        nbytes = size // 8
        ea = g.pick_ea(nbytes, DATA + 0x700, DATA + 0x900)
        lo_bits = -((ea - DATA) // nbytes) * size
        hi_bits = ((DATA_END - ea) // nbytes) * size - 1
        if size == 16:
            lo_bits, hi_bits = max(lo_bits, -0x8000), min(hi_bits, 0x7FFF)
        bit = g.draw(st.one_of(st.integers(lo_bits, hi_bits), st.integers(-40, 40)))
        high = g.value() & ~0xFFFF if size == 16 else 0
        g.fix(off_reg, (bit & mask(size)) | high)
        code, _ = g.modrm_mem(off_reg, nbytes, avoid=(off_reg,), ea=ea)
        enc = osz(size) + bytes([0x0F, 0xA3 + 8 * op]) + code
    return [Insn(enc, writes=CF | BT_UNDEF, undef=BT_UNDEF)]


def gen_bsf(g: Gen) -> list[Insn]:
    """bsf/bsr; the destination is undefined when the source is zero."""
    size = g.size((16, 32))
    rev = g.draw(st.booleans())
    dst = g.reg(size)
    zero = g.draw(st.integers(0, 3)) == 0
    code, r, ea = g.rm(dst, size)
    if r is not None and g.known(r) is None:
        g.fix_operand(r, size, 0 if zero else g.value())
    elif ea is not None and zero:
        g.poke(ea, bytes(size // 8))
    src = g.rm_value(size, r, ea)
    undef_regs = frozenset({dst}) if (src is None or src & mask(size) == 0) else frozenset()
    enc = osz(size) + (b"\x0f\xbd" if rev else b"\x0f\xbc") + code
    return [Insn(enc, writes=STATUS, undef=STATUS & ~ZF, undef_regs=undef_regs)]


def gen_bswap(g: Gen) -> list[Insn]:
    return [Insn(bytes([0x0F, 0xC8 + g.reg(32)]))]


def gen_xadd_cmpxchg(g: Gen) -> list[Insn]:
    """xadd and cmpxchg, 8/16/32 bits, reg and memory destinations."""
    size = g.size()
    w = 0 if size == 8 else 1
    if g.draw(st.booleans()):
        code, _, _ = g.rm(g.reg(size), size)
        return [Insn(osz(size) + bytes([0x0F, 0xC0 + w]) + code, writes=STATUS)]
    src = g.reg(size, avoid=(EAX,))
    code, r, ea = g.rm(src, size, avoid=(EAX,))
    if g.draw(st.booleans()) and not (r is not None and (r & 3 if size == 8 else r) == EAX):
        # make the accumulator equal to the destination
        v = g.rm_value(size, r, ea)
        if v is not None:
            g.fix(EAX, (g.value() & ~mask(size)) | v)
    return [Insn(osz(size) + bytes([0x0F, 0xB0 + w]) + code, writes=STATUS)]


def gen_setcc_cmov(g: Gen) -> list[Insn]:
    cc = g.draw(st.integers(0, 15))
    if g.draw(st.booleans()):
        code, _, _ = g.rm(0, 8)
        return [Insn(bytes([0x0F, 0x90 + cc]) + code, reads=cc_reads(cc))]
    size = g.size((16, 32))
    code, _, _ = g.rm(g.reg(size), size)
    return [Insn(osz(size) + bytes([0x0F, 0x40 + cc]) + code, reads=cc_reads(cc))]


def gen_movx(g: Gen) -> list[Insn]:
    """movzx/movsx r16/r32 <- r/m8, r32 <- r/m16."""
    sx = 8 if g.draw(st.booleans()) else 0
    if g.draw(st.booleans()):
        size = g.size((16, 32))
        code, _, _ = g.rm(g.reg(size), 8)
        return [Insn(osz(size) + bytes([0x0F, 0xB6 + sx]) + code)]
    code, _, _ = g.rm(g.reg(32), 16)
    return [Insn(bytes([0x0F, 0xB7 + sx]) + code)]


def gen_lea(g: Gen) -> list[Insn]:
    size = g.size((16, 32))
    return [Insn(osz(size) + b"\x8d" + g.modrm_any(g.reg(size)))]


def gen_xchg(g: Gen) -> list[Insn]:
    size = g.size()
    if size != 8 and g.draw(st.booleans()):
        return [Insn(osz(size) + bytes([0x90 + g.reg(size)]))]
    code, _, _ = g.rm(g.reg(size), size)
    return [Insn(osz(size) + bytes([0x86 if size == 8 else 0x87]) + code)]


def gen_xlat(g: Gen) -> list[Insn]:
    """xlat: AL <- [EBX + AL]."""
    g.fix(EBX, g.draw(st.integers(DATA, DATA_END - 0x100)))
    return [Insn(b"\xd7")]


def gen_convert(g: Gen) -> list[Insn]:
    """cbw/cwde/cwd/cdq."""
    return [Insn(osz(g.size((16, 32))) + g.draw(st.sampled_from([b"\x98", b"\x99"])))]


def gen_mov(g: Gen) -> list[Insn]:
    size = g.size()
    w = 0 if size == 8 else 1
    form = g.draw(st.sampled_from(["E,G", "G,E", "r,imm", "E,imm"]))
    if form == "E,G":
        code, _, _ = g.rm(g.reg(size), size)
        enc = bytes([0x88 + w]) + code
    elif form == "G,E":
        code, _, _ = g.rm(g.reg(size), size)
        enc = bytes([0x8A + w]) + code
    elif form == "r,imm":
        enc = bytes([(0xB0 if size == 8 else 0xB8) + g.reg(size)]) + imm_bytes(g.imm(size), size)
    else:
        code, _, _ = g.rm(0, size)
        enc = bytes([0xC6 + w]) + code + imm_bytes(g.imm(size), size)
    return [Insn(osz(size) + enc)]


def gen_flagops(g: Gen) -> list[Insn]:
    """clc/stc/cmc/cld/std/lahf/sahf."""
    k = g.draw(st.sampled_from(["clc", "stc", "cmc", "cld", "std", "lahf", "sahf"]))
    lahf_flags = SF | ZF | AF | PF | CF
    return [{
        "clc": Insn(b"\xf8", writes=CF), "stc": Insn(b"\xf9", writes=CF),
        "cmc": Insn(b"\xf5", reads=CF, writes=CF), "cld": Insn(b"\xfc", writes=DF),
        "std": Insn(b"\xfd", writes=DF), "lahf": Insn(b"\x9f", reads=lahf_flags),
        "sahf": Insn(b"\x9e", writes=lahf_flags),
    }[k]]


def gen_bcd(g: Gen) -> list[Insn]:
    """daa/das/aaa/aas/aam/aad (aam 0 raises #DE)."""
    k = g.draw(st.sampled_from(["daa", "das", "aaa", "aas", "aam", "aad"]))
    # AL near the adjust boundaries (carries and borrows into AH)
    al = g.draw(st.one_of(st.sampled_from(
        (0, 1, 5, 6, 9, 0x0A, 0x0F, 0x10, 0x60, 0x99, 0x9A, 0x9F, 0xA0, 0xF9, 0xFA, 0xFF)),
        st.integers(0, 255)))
    g.fix(EAX, (g.value() & ~0xFF) | al)
    if k in ("daa", "das"):
        return [Insn(b"\x27" if k == "daa" else b"\x2f", reads=CF | AF, writes=STATUS, undef=OF)]
    if k in ("aaa", "aas"):
        return [Insn(b"\x37" if k == "aaa" else b"\x3f", reads=AF, writes=STATUS,
                     undef=OF | SF | ZF | PF)]
    imm = g.draw(st.one_of(st.just(10), st.integers(0, 255)))
    return [Insn((b"\xd4" if k == "aam" else b"\xd5") + bytes([imm]), writes=STATUS,
                 undef=OF | AF | CF)]


def gen_string(g: Gen) -> list[Insn]:
    """movs/stos/lods/cmps/scas, b/w/d, with rep/repe/repne, both DFs."""
    k = g.draw(st.sampled_from(["movs", "stos", "lods", "cmps", "scas"]))
    size = g.size()
    nb = size // 8
    opc = {"movs": 0xA4, "cmps": 0xA6, "stos": 0xAA, "lods": 0xAC, "scas": 0xAE}[k]
    opc += 0 if size == 8 else 1
    compare = k in ("cmps", "scas")
    prefix = g.draw(st.sampled_from(["", "rep", "repne"] if compare else ["", "rep"]))
    df = g.draw(st.integers(0, 1))
    g.set_df(df)
    count = g.draw(st.one_of(st.integers(0, 12), st.integers(0, 64)))
    margin = 0x200
    esi = g.draw(st.integers(DATA + margin, DATA_END - margin))
    if g.draw(st.booleans()):
        edi = esi + g.draw(st.integers(-8, 8))           # overlapping
    else:
        edi = g.draw(st.integers(DATA + margin, DATA_END - margin))
    g.fix(ESI, esi)
    g.fix(EDI, edi)
    g.fix(ECX, count if prefix else g.value())
    step = -nb if df else nb
    if k in ("stos", "scas") or g.draw(st.booleans()):
        g.fix(EAX, g.value())
    if compare:
        # make runs of equal elements so repe/repne stop at interesting places
        n_eq = g.draw(st.integers(0, count + 1))
        for i in range(n_eq):
            src = esi + i * step
            dst = edi + i * step
            if not (DATA <= dst and dst + nb <= DATA_END and DATA <= src and src + nb <= DATA_END):
                break
            if k == "cmps":
                g.poke(dst, g.peek(src, nb))
            else:
                eax = g.known(EAX) or 0
                g.poke(dst, imm_bytes(eax, size))
    pfx = {"": b"", "rep": b"\xf3", "repne": b"\xf2"}[prefix]
    writes = STATUS if compare and (not prefix or count) else 0
    return [Insn(pfx + osz(size) + bytes([opc]), writes=writes)]


def gen_stack(g: Gen) -> list[Insn]:
    """push/pop (reg, imm, mem, 16 and 32 bits), pushf/popf."""
    k = g.draw(st.sampled_from(["push_r", "pop_r", "push_imm8", "push_imm", "push_m",
                                "pop_m", "pushf", "popf", "push_esp", "pop_m_esp",
                                "pusha", "popa", "enter", "leave", "pop_esp"]))
    size = g.size((16, 32))
    p = osz(size)
    if k == "pusha":
        return [Insn(p + b"\x60")]
    if k == "popa":
        return [Insn(p + b"\x61")]
    if k in ("enter", "leave"):
        # EBP must point into the stack page: leave loads ESP from it, enter
        # with a nesting level copies frame pointers from below it.
        g.fix(EBP, STACK_TOP + g.draw(st.integers(-0x100, 0x100)))
        if k == "leave":
            return [Insn(p + b"\xc9")]
        alloc = g.draw(st.sampled_from([0, 4, 8, 0x10, 0x7C]))
        level = g.draw(st.sampled_from([0, 1, 2, 3, 31, 32]))
        return [Insn(p + b"\xc8" + struct.pack("<HB", alloc, level))]
    if k == "pop_esp" and not g.seq:     # ESP gets a random value: not in sequences
        return [Insn(p + b"\x5c")]
    if k == "pop_esp":
        k = "pop_r"
    if k == "push_r":
        return [Insn(p + bytes([0x50 + g.reg(size)]))]
    if k == "push_esp":
        return [Insn(p + b"\x54")]
    if k == "pop_r":
        return [Insn(p + bytes([0x58 + g.reg(size)]))]
    if k == "push_imm8":
        return [Insn(p + b"\x6a" + bytes([g.imm(8)]))]
    if k == "push_imm":
        return [Insn(p + b"\x68" + imm_bytes(g.imm(size), size))]
    if k == "push_m":
        code, _ = g.modrm_mem(6, size // 8)
        return [Insn(p + b"\xff" + code)]
    if k == "pop_m":
        code, _ = g.modrm_mem(0, size // 8)
        return [Insn(p + b"\x8f" + code)]
    if k == "pop_m_esp":
        disp = g.draw(st.integers(-32, 32)) & 0xFF
        return [Insn(p + b"\x8f\x44\x24" + bytes([disp]))]
    if k == "pushf":
        return [Insn(p + b"\x9c", reads=STATUS)]
    # popf: a controlled image (status flags, DF, IF, IOPL, NT, reserved bits)
    v = g.draw(st.integers(0, 0xFFFF)) & (STATUS | DF | IF | 0x3000 | 0x4000 | 0x8028)
    if size == 32:   # RF/VM and the reserved high bits, but not AC/VIF/VIP/ID
        v |= g.value() & 0xFFC30000
    pre: list[Insn] = []
    if g.seq:
        pre = [Insn(p + b"\x68" + imm_bytes(v, size))]
    else:
        g.poke(STACK_TOP, imm_bytes(v, size))
    return [*pre, Insn(p + b"\x9d", writes=STATUS | DF)]


def gen_jcc(g: Gen) -> list[Insn]:
    """Forward conditional/unconditional jumps, jecxz and loop[cc]."""
    k = g.draw(st.sampled_from(["jcc8", "jcc32", "jmp8", "jmp32", "jecxz", "loop",
                                "loope", "loopne", "call"]))
    skip = g.draw(st.integers(0, 2))
    cc = g.draw(st.integers(0, 15))
    if k in ("jecxz", "loop", "loope", "loopne") and g.draw(st.booleans()):
        g.fix(ECX, g.draw(st.sampled_from([0, 1, 2, 0x10000, 0xFFFFFFFF])))
    reads = {"jcc8": cc_reads(cc), "jcc32": cc_reads(cc), "loope": ZF, "loopne": ZF}.get(k, 0)
    # Unicorn bug (not ours): when loope/loopne exit because ECX reaches 0,
    # unicorn 2.1.4 leaves the lazily computed flags stale (`neg al; loope`
    # with AL=0x10, ECX=1 ends with OF=1; with AL=2, with AF=0), although
    # the loop instructions leave every flag alone. So the status flags are
    # not compared after these two (nor read by a later instruction).
    quirk = STATUS if k in ("loope", "loopne") else 0
    form = {"jcc8": f"rel8:{0x70 + cc:02x}", "jcc32": f"rel32:0f{0x80 + cc:02x}",
            "jmp8": "rel8:eb", "jmp32": "rel32:e9", "jecxz": "rel8:e3", "loop": "rel8:e2",
            "loope": "rel8:e1", "loopne": "rel8:e0", "call": "rel32:e8"}[k]
    return [Insn(b"", reads=reads, writes=quirk, undef=quirk, jump_items=skip, jump_form=form)]


#: generators that may appear in random sequences (their flag/register
#: effects are static)
SEQUENCE_GENS: tuple[GenFn, ...] = (
    gen_alu, gen_alu, gen_test, gen_unary, gen_shift, gen_shxd, gen_mul, gen_div,
    gen_bt, gen_bswap, gen_xadd_cmpxchg, gen_setcc_cmov, gen_movx, gen_lea,
    gen_xchg, gen_convert, gen_xlat, gen_mov, gen_flagops, gen_bcd, gen_string, gen_stack,
    gen_jcc, gen_jcc,
)


# --------------------------------------------------------------------------
# Case assembly


def _layout(items: list[list[Insn]]) -> tuple[list[Insn], list[int], list[int]]:
    """Resolve forward jumps and flatten items. Returns the instructions,
    their jump target indices (or -1) and the code offsets."""
    flat: list[Insn] = []
    item_start: list[int] = []
    for it in items:
        item_start.append(len(flat))
        flat.extend(it)
    item_start.append(len(flat))
    item_of = []
    for n, it in enumerate(items):
        item_of.extend([n] * len(it))
    # Encode jumps: their length depends only on the form.
    for ins in flat:
        if ins.jump_items is not None:
            kind, opc = ins.jump_form.split(":")
            ins.code = bytes.fromhex(opc) + (b"\0" if kind == "rel8" else b"\0\0\0\0")
    offsets = [0]
    for ins in flat:
        offsets.append(offsets[-1] + len(ins.code))
    targets = []
    for idx, ins in enumerate(flat):
        if ins.jump_items is None:
            targets.append(-1)
            continue
        n = item_of[idx]
        # a jump ends its item; skip the following `jump_items` items
        tgt_item = min(n + 1 + ins.jump_items, len(items))
        tgt = item_start[tgt_item]
        rel = offsets[tgt] - offsets[idx + 1]
        kind, opc = ins.jump_form.split(":")
        if kind == "rel8":
            assert rel < 128, "jump too far"
            ins.code = bytes.fromhex(opc) + bytes([rel])
        else:
            ins.code = bytes.fromhex(opc) + struct.pack("<i", rel)
        targets.append(tgt)
    return flat, targets, offsets


def _flow(flat: list[Insn], targets: list[int]) -> tuple[list[int], frozenset[int]]:
    """Forward data flow of undefined flags (union over all paths; jumps only
    go forward). A flag reader that could read an undefined flag is replaced
    by NOPs of the same length. Returns the undefined flags before each
    instruction (and at the end) and the registers left undefined."""
    undef_in = [0] * (len(flat) + 1)
    undef_regs: set[int] = set()
    for i, ins in enumerate(flat):
        u = undef_in[i]
        if ins.reads & u:
            ins.code = b"\x90" * len(ins.code)
            ins.reads = ins.writes = ins.undef = 0
            ins.note = "nop'd: it would read undefined flags"
            ins.jump_items = None
            targets[i] = -1
        out = (u & ~ins.writes) | ins.undef
        undef_regs |= ins.undef_regs
        undef_in[i + 1] |= out          # also after an unconditional jump
        if targets[i] >= 0:
            undef_in[targets[i]] |= out
    return undef_in, frozenset(undef_regs)


def _item(g: Gen, fn: GenFn) -> list[Insn]:
    g.begin_item()
    main = fn(g)
    return g.pre + main


def _eflags(draw: Callable[[st.SearchStrategy[Any]], Any], g: Gen) -> int:
    fl = draw(st.integers(0, 0xFFF)) & (STATUS | DF)
    if g.df is not None:
        fl = (fl & ~DF) | (DF if g.df else 0)
    return fl | 2


@st.composite
def cases(draw: Callable[[st.SearchStrategy[Any]], Any], gens: Sequence[GenFn],
          family: str, min_items: int = 1, max_items: int = 1) -> Case:
    """A case of ``min_items..max_items`` items drawn from ``gens``. With one
    item the case is in single mode (operands are set up in the initial
    state); with more, in sequence mode."""
    seq = max_items > 1
    g = Gen(draw, seq)
    n = draw(st.integers(min_items, max_items))
    items = []
    for _ in range(n):
        fn = draw(st.sampled_from(tuple(gens)))
        items.append(_item(g, fn))
    flat, targets, offsets = _layout(items)
    undef_in, undef_regs = _flow(flat, targets)
    regs = []
    for r in range(8):
        if r == ESP:
            regs.append(STACK_TOP)
        elif r in g.fixed:
            regs.append(g.fixed[r])
        else:
            regs.append(g.value())
    return Case(family=family, insns=flat, regs=regs, eflags=_eflags(draw, g),
                data=bytes(g.data), stack=bytes(g.stack), undef_in=undef_in,
                undef_regs=undef_regs, offsets=offsets)


# --------------------------------------------------------------------------
# Machine set-up shared by both sides


def descriptor(base: int, limit: int, access: int, flags: int) -> bytes:
    return struct.pack("<HHBBBB", limit & 0xFFFF, base & 0xFFFF, (base >> 16) & 0xFF,
                       access, ((limit >> 16) & 0xF) | (flags << 4), base >> 24)


def system_image() -> list[tuple[int, bytes]]:
    """GDT, IDT (every vector an interrupt gate to a hlt stub) and TSS."""
    gdt = (bytes(8)
           + descriptor(0, 0xFFFFF, 0x9B, 0xC)      # 0x08 ring-0 code (accessed)
           + descriptor(0, 0xFFFFF, 0x93, 0xC)      # 0x10 ring-0 data
           + descriptor(0, 0xFFFFF, 0xFB, 0xC)      # 0x18 ring-3 code
           + descriptor(0, 0xFFFFF, 0xF3, 0xC)      # 0x20 ring-3 data
           + descriptor(TSS_BASE, 0x67, 0x89, 0x0))  # 0x28 32-bit TSS
    idt = b"".join(
        struct.pack("<HHBBH", (STUBS + v) & 0xFFFF, 0x08, 0, 0x8E, (STUBS + v) >> 16)
        for v in range(32))
    tss = bytearray(0x68)
    struct.pack_into("<II", tss, 4, RING0_STACK_TOP, 0x10)
    struct.pack_into("<H", tss, 0x66, 0x68)          # no I/O bitmap
    return [(GDT_BASE, gdt), (IDT_BASE, idt), (STUBS, b"\xf4" * 32), (TSS_BASE, bytes(tss))]


@dataclasses.dataclass
class Machine:
    """What both sides are given: a memory image, registers, control
    registers, where to start and the EIP where the run ends."""

    image: list[tuple[int, bytes]]
    regs: list[int]
    eflags: int
    entry: int
    stop: int                     # EIP of the final hlt (not executed at CPL 3)
    regions: list[tuple[int, int]]  # (addr, size) to compare / report
    cr0_or: int = 0
    cr3: int = 0
    cr4_or: int = 0
    user_stop: bool = False       # stop reached at CPL 3: stop by breakpoint


@dataclasses.dataclass
class Result:
    """The end state of one side."""

    regs: list[int]
    eip: int
    eflags: int
    cr2: int
    mem: dict[tuple[int, int], bytes]
    fault: int | None = None      # vector, if the run ended in an exception
    error_code: int | None = None  # ours only
    frame_eflags: int | None = None
    frame: tuple[int, int] | None = None  # ours: where the exception frame was pushed
    error: str | None = None      # the side failed to run (crash, bad stop)


def machine_for(case: Case) -> Machine:
    image = system_image() + [(CODE, case.code), (DATA, case.data), (STACK_LO, case.stack)]
    return Machine(image=image, regs=list(case.regs), eflags=case.eflags, entry=CODE,
                   stop=case.hlt_addr,
                   regions=[(DATA, DATA_SIZE), (STACK_LO, STACK_HI - STACK_LO)])


# --------------------------------------------------------------------------
# Unicorn side


def run_unicorn(m: Machine) -> Result:
    from unicorn import UC_ARCH_X86, UC_ERR_INSN_INVALID, UC_HOOK_INTR, UC_MODE_32, Uc, UcError
    from unicorn import x86_const as x

    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, MEM_SIZE)
    for addr, data in m.image:
        uc.mem_write(addr, data)
    uc.reg_write(x.UC_X86_REG_GDTR, (0, GDT_BASE, GDT_LIMIT, 0))
    uc.reg_write(x.UC_X86_REG_IDTR, (0, IDT_BASE, IDT_LIMIT, 0))
    ureg = [getattr(x, "UC_X86_REG_" + n.upper()) for n in R32]
    for r, v in zip(ureg, m.regs, strict=True):
        uc.reg_write(r, v)
    uc.reg_write(x.UC_X86_REG_EFLAGS, m.eflags)
    if m.cr3:
        uc.reg_write(x.UC_X86_REG_CR3, m.cr3)
    if m.cr4_or:
        uc.reg_write(x.UC_X86_REG_CR4, uc.reg_read(x.UC_X86_REG_CR4) | m.cr4_or)
    if m.cr0_or:
        uc.reg_write(x.UC_X86_REG_CR0, uc.reg_read(x.UC_X86_REG_CR0) | m.cr0_or)
    fault: list[int] = []

    def hook(u: Any, intno: int, _user: Any) -> None:
        fault.append(intno)
        u.emu_stop()

    uc.hook_add(UC_HOOK_INTR, hook)
    error = None
    try:
        uc.emu_start(m.entry, m.stop, count=MAX_STEPS)
    except UcError as e:
        if e.errno == UC_ERR_INSN_INVALID:   # unicorn reports #UD this way
            fault.append(6)
        else:
            error = f"unicorn: {e}"
    eip = uc.reg_read(x.UC_X86_REG_EIP)
    if not fault and error is None and eip != m.stop:
        error = f"unicorn stopped at {eip:#x}, not at the end {m.stop:#x}"
    return Result(regs=[uc.reg_read(r) for r in ureg], eip=eip,
                  eflags=uc.reg_read(x.UC_X86_REG_EFLAGS), cr2=uc.reg_read(x.UC_X86_REG_CR2),
                  mem={(a, n): bytes(uc.mem_read(a, n)) for a, n in m.regions},
                  fault=fault[0] if fault else None, error=error)


# --------------------------------------------------------------------------
# Our side


def run_core(m: Machine) -> Result:
    from lguestsim.x86 import CPU, PhysicalMemory

    mem = PhysicalMemory(MEM_SIZE)
    for addr, data in m.image:
        mem.write(addr, data)
    cpu = CPU(mem)
    cpu.reset_flat32()
    cpu.gdtr = (GDT_BASE, GDT_LIMIT)
    cpu.idtr = (IDT_BASE, IDT_LIMIT)
    if m.user_stop:
        cpu.load_tr(TSS_SEL)
    for name, v in zip(R32, m.regs, strict=True):
        setattr(cpu, name, v)
    cpu.eflags = m.eflags
    if m.cr3:
        cpu.cr3 = m.cr3
    if m.cr4_or:
        cpu.cr4 = cpu.cr4 | m.cr4_or
    if m.cr0_or:
        cpu.cr0 = cpu.cr0 | m.cr0_or
    cpu.eip = m.entry
    if m.user_stop:
        cpu.breakpoints.add(m.stop)
    error = None
    why = None
    try:
        why = cpu.run(MAX_STEPS)
    except Exception:  # noqa: BLE001 - anything escaping run() is a core bug
        error = "core raised:\n" + traceback.format_exc(limit=6)
    regs = [getattr(cpu, n) & 0xFFFFFFFF for n in R32]
    res = Result(regs=regs, eip=cpu.eip, eflags=cpu.eflags, cr2=cpu.cr2,
                 mem={(a, n): bytes(mem.read(a, n)) for a, n in m.regions}, error=error)
    if error:
        return res
    stub = cpu.eip - 1 - STUBS
    if why == "hlt" and not m.user_stop and cpu.eip == m.stop + 1:
        res.eip = m.stop
    elif why == "breakpoint" and m.user_stop and cpu.eip == m.stop:
        pass
    elif why == "hlt" and 0 <= stub < 32:
        # An exception was delivered to the stub: read the frame.
        res.fault = stub
        esp = cpu.esp
        words = struct.unpack("<6I", mem.read(esp, 24))
        if stub in ERROR_CODE_VECTORS:
            res.error_code, words = words[0], words[1:]
        res.eip, res.frame_eflags = words[0], words[2]
        from_user = words[1] & 3 == 3
        frame_len = 12 + (4 if stub in ERROR_CODE_VECTORS else 0)
        res.regs[ESP] = words[3] if from_user else (esp + frame_len) & 0xFFFFFFFF
        if cpu.last_exception is None or cpu.last_exception[0] != stub:
            res.error = (f"stub {stub} reached but last_exception is {cpu.last_exception}")
        elif stub in ERROR_CODE_VECTORS and cpu.last_exception[1] != res.error_code:
            res.error = (f"error code on the stack {res.error_code:#x} != "
                         f"last_exception {cpu.last_exception}")
        # unicorn pushes no frame: leave those bytes out of the comparison
        res.frame = (esp, frame_len + (8 if from_user else 0))
    else:
        res.error = f"core stopped with {why!r} at eip {cpu.eip:#x} (cpl {cpu.cpl})"
    return res


# --------------------------------------------------------------------------
# Comparison and reporting

COUNTS: collections.Counter[str] = collections.Counter()


def disasm(code: bytes, addr: int = CODE) -> str:
    try:
        import capstone
        md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
        return "\n".join(f"    {i.address:#07x}: {i.bytes.hex():<24} {i.mnemonic} {i.op_str}"
                         for i in md.disasm(code, addr))
    except Exception as e:  # noqa: BLE001 - disassembly is only for the report
        return f"    (no disassembly: {e})"


def fmt_flags(v: int) -> str:
    names = [(CF, "CF"), (PF, "PF"), (AF, "AF"), (ZF, "ZF"), (SF, "SF"), (DF, "DF"), (OF, "OF")]
    return f"{v:#x}[" + " ".join(n for b, n in names if v & b) + "]"


def compare(m: Machine, ours: Result, uni: Result, undef_flags: int,
            undef_regs: frozenset[int] = frozenset(), skip_regions: Sequence[tuple[int, int]] = ()
            ) -> list[str]:
    """Differences between the two results (empty list: they agree)."""
    diffs = []
    if uni.error:
        diffs.append(uni.error)
    if ours.error:
        diffs.append(ours.error)
    if diffs:
        return diffs
    if ours.fault != uni.fault:
        diffs.append(f"fault: ours {ours.fault} unicorn {uni.fault}")
        return diffs
    if ours.eip != uni.eip:
        diffs.append(f"eip: ours {ours.eip:#x} unicorn {uni.eip:#x}")
    for r in range(8):
        if r in undef_regs:
            continue
        if ours.regs[r] != uni.regs[r]:
            diffs.append(f"{R32[r]}: ours {ours.regs[r]:#010x} unicorn {uni.regs[r]:#010x}")
    fl_mask = EFLAGS_COMPARE & ~undef_flags
    our_fl = ours.frame_eflags if ours.frame_eflags is not None else ours.eflags
    if (our_fl ^ uni.eflags) & fl_mask:
        differ = fmt_flags((our_fl ^ uni.eflags) & fl_mask)
        diffs.append(f"eflags (compared {fmt_flags(fl_mask)}): ours {fmt_flags(our_fl)} "
                     f"unicorn {fmt_flags(uni.eflags)} differ in {differ}")
    for key, data in uni.mem.items():
        if key in skip_regions:
            continue
        a, _ = key
        od = ours.mem[key]
        if od != data:
            bad = [i for i in range(len(data)) if od[i] != data[i]]
            if ours.frame is not None:
                fa, fn = ours.frame
                bad = [i for i in bad if not fa <= a + i < fa + fn]
            if not bad:
                continue
            lo = bad[0]
            diffs.append(f"memory at {a + lo:#x} (+{len(bad)} bytes differ): "
                         f"ours {od[lo:lo + 8].hex()} unicorn {data[lo:lo + 8].hex()}")
    return diffs


def report(title: str, m: Machine, ours: Result, uni: Result, diffs: list[str],
           extra: str = "") -> str:
    code = [(a, d) for a, d in m.image if CODE <= a < CODE_MAX]
    lines = [f"{title}: {len(diffs)} difference(s)", *("  " + d for d in diffs),
             *(f"code at {a:#x} ({d.hex()}):\n{disasm(d, a)}" for a, d in code),
             "initial: " + " ".join(f"{n}={v:#x}" for n, v in zip(R32, m.regs, strict=True))
             + f" eflags={fmt_flags(m.eflags)}",
             "ours:    " + " ".join(f"{n}={v:#x}" for n, v in zip(R32, ours.regs, strict=True))
             + f" eip={ours.eip:#x} eflags={fmt_flags(ours.eflags)} fault={ours.fault}"
             + (f" ec={ours.error_code:#x}" if ours.error_code is not None else ""),
             "unicorn: " + " ".join(f"{n}={v:#x}" for n, v in zip(R32, uni.regs, strict=True))
             + f" eip={uni.eip:#x} eflags={fmt_flags(uni.eflags)} fault={uni.fault}"]
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def check_case(case: Case) -> None:
    """Run ``case`` on both sides and assert they agree."""
    m = machine_for(case)
    uni = run_unicorn(m)
    ours = run_core(m)
    COUNTS[case.family] += 1
    undef = case.undef_in[-1]
    undef_regs = case.undef_regs
    if uni.fault is not None and uni.error is None:
        # flags undefined before the faulting instruction
        off = uni.eip - CODE
        if off in case.offsets:
            undef = case.undef_in[case.offsets.index(off)]
        undef_regs = frozenset()
    diffs = compare(m, ours, uni, undef, undef_regs)
    if diffs:
        notes = [f"  insn {i}: {ins.note}" for i, ins in enumerate(case.insns) if ins.note
                 and ins.note != "fix"]
        extra = (f"undefined flags at the end: {fmt_flags(undef)}; undefined regs: "
                 f"{sorted(R32[r] for r in undef_regs)}\n" + "\n".join(notes))
        raise AssertionError(report(f"mismatch in {case.family}", m, ours, uni, diffs, extra))


# --------------------------------------------------------------------------
# Hypothesis settings and the case counter


def ci_profile() -> bool:
    """True when the `ci` hypothesis profile is in force."""
    name = getattr(settings, "_current_profile", None)
    if name is not None:
        return name == "ci"
    return os.environ.get("HYPOTHESIS_PROFILE") == "ci" or os.environ.get("CI") == "true"


def examples(ci: int, local: int | None = None) -> settings:
    """Settings for a differential test: ``ci`` examples under the `ci`
    profile, ``local`` (default a tenth) otherwise; no deadline."""
    n = ci if ci_profile() else (local if local is not None else max(ci // 10, 20))
    return settings(max_examples=n, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


class _Summary:
    """pytest plugin printing how many differential cases ran."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        total = sum(COUNTS.values())
        if not total:
            return
        parts = ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items()))
        terminalreporter.write_sep("-", f"unicorn differential cases run: {total} ({parts})")


def register_summary(config: Any) -> None:
    """Register the case-count summary with pytest (once per session)."""
    if not config.pluginmanager.has_plugin("x86env_unicorn_summary"):
        config.pluginmanager.register(_Summary(), "x86env_unicorn_summary")


def repro(code: bytes, regs: dict[str, int] | None = None, eflags: int = 2) -> str:
    """Run ``code`` (a hlt is appended) on both sides from the given
    registers and EFLAGS and return the comparison report (for reducing a
    failure by hand: ``python -c "import x86env_unicorn as x;
    print(x.repro(bytes.fromhex('3f'), {'eax': 0}, 0x12))"``)."""
    r = regs or {}
    vals = [r.get(n, STACK_TOP if n == "esp" else 0) for n in R32]
    insn = Insn(code)
    case = Case(family="repro", insns=[insn], regs=vals, eflags=eflags, data=bytes(DATA_SIZE),
                stack=bytes(STACK_HI - STACK_LO), undef_in=[0, 0], undef_regs=frozenset(),
                offsets=[0, len(code)])
    m = machine_for(case)
    uni, ours = run_unicorn(m), run_core(m)
    return report("repro", m, ours, uni, compare(m, ours, uni, 0))
