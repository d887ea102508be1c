"""Bytes to a decoded instruction.

``decode(buf, eip, code32)`` reads one instruction from ``buf`` (the bytes at
``eip``): prefixes, the opcode (looked up in opcodes.py), ModRM and SIB,
displacement and immediates.  The result is an ``Insn``: plain data that the
translator turns into Python.  Decoding happens once per instruction address,
not once per execution.

Operands are small tuples:
  ("r", size, n)    general register n (for size 8: al cl dl bl ah ch dh bh)
  ("m", size)       the memory operand described by insn.mem
  ("i", size, v)    an immediate, already sign- or zero-extended to size
  ("s", 16, n)      segment register n (es cs ss ds fs gs)
  ("c", 32, n)      control register n;  ("d", 32, n) debug register n
  ("j", 32, t)      a jump target (an EIP, already computed)
  ("p", 48, sel, off)  a far pointer given in the instruction
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import opcodes
from .opcodes import GROUPS, ONE_BYTE, TWO_BYTE, X87_TABLE

SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs"]
ES, CS, SS, DS, FS, GS = range(6)
REG32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"]
REG16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"]
REG8 = ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"]
SEG_PREFIX = {0x26: ES, 0x2E: CS, 0x36: SS, 0x3E: DS, 0x64: FS, 0x65: GS}
FIXED = {"AL": ("r", 8, 0), "CL": ("r", 8, 1), "DX": ("r", 16, 2), "1": ("i", 8, 1),
         "ES": ("s", 16, ES), "CS": ("s", 16, CS), "SS": ("s", 16, SS),
         "DS": ("s", 16, DS), "FS": ("s", 16, FS), "GS": ("s", 16, GS)}
# 16-bit addressing: r/m picks base and index registers.
MODRM16 = [(3, 6), (3, 7), (5, 6), (5, 7), (6, None), (7, None), (5, None), (3, None)]


class DecodeError(Exception):
    """The bytes are not an instruction this core knows (#UD) or are too long (#GP)."""

    def __init__(self, vector: int) -> None:
        super().__init__(vector)
        self.vector = vector


class NeedBytes(Exception):  # noqa: N818 - a signal, not an error
    """The instruction runs past the bytes supplied (the next page)."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


@dataclass(slots=True)
class Mem:
    """A memory operand: seg:[base + index*scale + disp] with 16- or 32-bit addressing."""
    seg: int
    base: int | None
    index: int | None
    scale: int
    disp: int
    addr32: bool


#: P:020 What the decoder hands the translator: an `Insn` is plain data
# about one instruction at one address.  Its operands are already resolved
# into the small tuples listed at the top of this file (a register number, an
# immediate already extended to its size, a jump target already made
# absolute), and a memory operand into a `Mem` giving the segment, base,
# index, scale and displacement.  Operand and address size, the prefixes,
# the condition code of a jcc/setcc/cmovcc and the raw bytes come along.  The
# translator needs nothing else, and printing an `Insn` shows it
# disassembled (P:041).
@dataclass(slots=True)
class Insn:
    eip: int
    length: int
    opcode: int           # 0x00-0xFF, or 0x0F00 | second byte
    mnemonic: str
    operands: list = field(default_factory=list)
    op32: bool = True     # operand size 32 (else 16)
    addr32: bool = True
    seg: int | None = None  # segment override prefix
    rep: str | None = None  # "rep" (F3) or "repne" (F2)
    lock: bool = False
    mem: Mem | None = None
    modrm: int | None = None
    cc: int | None = None   # condition code for jcc/setcc/cmovcc
    fpu: tuple | None = None  # (operation, argument) for x87 instructions
    raw: bytes = b""

    def __str__(self) -> str:
        # The bare mnemonic: the decoder sits below the printers (disasm.py's
        # format_insn() gives the operands), so it does not import them.
        return f"{self.eip:08x}: {self.mnemonic}"


#: P:021 `decode()` reads one instruction the way the processor's front end
# does.  First come the prefixes, in any order: operand size (0x66), address
# size (0x67), a segment override, rep or repne, lock.  Then one opcode byte,
# or two after 0x0F, looked up in opcodes.py (the x87 escapes 0xD8 to 0xDF
# have their own table in x87.py); then the ModRM byte, a SIB byte and a
# displacement if there is a memory operand; then immediates.  Each operand
# letter of the table becomes an operand tuple.  Bytes that are no
# instruction raise `DecodeError` (#UD, or #GP past 15 bytes), and
# `NeedBytes` says the instruction runs off the bytes supplied, which is how
# the translator notices an instruction straddling two pages.  Decoding
# happens when a block is translated, so once per address, however many
# times the code then runs.
def decode(buf: bytes, eip: int, code32: bool = True) -> Insn:
    """Decode the instruction at the start of ``buf``, which sits at ``eip``."""
    pos = 0
    op32 = addr32 = code32
    seg = rep = None
    lock = False
    n = len(buf)

    def byte() -> int:
        nonlocal pos
        if pos >= n:
            raise NeedBytes(pos)
        if pos >= 15:
            raise DecodeError(13)  # longer than 15 bytes: #GP(0)
        b = buf[pos]
        pos += 1
        return b

    def imm(size: int, signed: bool = False) -> int:
        v = 0
        for i in range(size // 8):
            v |= byte() << (8 * i)
        if signed and v >> (size - 1):
            v -= 1 << size
        return v

    # Prefixes, in any order; the last of a kind wins.
    while True:
        b = byte()
        if b == 0x66:
            op32 = not code32
        elif b == 0x67:
            addr32 = not code32
        elif b in SEG_PREFIX:
            seg = SEG_PREFIX[b]
        elif b == 0xF3:
            rep = "rep"
        elif b == 0xF2:
            rep = "repne"
        elif b == 0xF0:
            lock = True
        else:
            break
    opcode = b
    if b == 0x0F:
        opcode = 0x0F00 | byte()

    modrm = None
    mem = None

    def read_modrm() -> tuple[int, int, int]:
        nonlocal modrm, mem
        if modrm is None:
            modrm = byte()
            if 0x0F20 <= opcode <= 0x0F23:
                modrm |= 0xC0   # mov to/from CRn/DRn: mod is ignored, always a register
            mod, rm = modrm >> 6, modrm & 7
            if mod != 3:
                mem = _decode_mem(mod, rm, addr32, byte, imm)
                if seg is not None:
                    mem.seg = seg
        return modrm >> 6, (modrm >> 3) & 7, modrm & 7

    fpu = None
    if opcode in GROUPS:
        _, table = GROUPS[opcode]
        _, reg, _ = read_modrm()
        if opcode in opcodes.GROUP_ZERO_ONLY and reg:
            raise DecodeError(6)
        entry = table[reg]
        if entry is None:
            raise DecodeError(6)
    elif opcode in ONE_BYTE and opcode not in opcodes.GROUP_ZERO_ONLY:
        entry = ONE_BYTE[opcode]
    elif opcode in opcodes.GROUP_ZERO_ONLY:
        read_modrm()
        if (modrm >> 3) & 7:
            raise DecodeError(6)
        entry = ONE_BYTE[opcode]
    elif 0xD8 <= opcode <= 0xDF:
        mod, reg, rm = read_modrm()
        key = (opcode, reg if mod != 3 else 8 + reg, None if mod != 3 else rm)
        found = X87_TABLE.get(key) or X87_TABLE.get((opcode, key[1], "i"))
        if found is None:
            entry = ("fpu", "")
            fpu = ("unsupported", None)
        else:
            entry = (found[0], "")
            fpu = (found[1], rm if mod == 3 else None)
    elif opcode & 0xFF00 == 0x0F00 and opcode & 0xFF in TWO_BYTE:
        entry = TWO_BYTE[opcode & 0xFF]
    elif opcode & 0xFF00 == 0x0F00 and opcode & 0xFF in opcodes.SIMD_WITH_MODRM:
        read_modrm()
        if opcode & 0xFF in opcodes.SIMD_WITH_IMM8:
            byte()
        entry = ("simd", "")
    else:
        raise DecodeError(6)

    mnemonic, spec = entry
    if "/" in mnemonic:
        # jcxz/jecxz test CX or ECX by the address size; the rest go by operand size
        wide = addr32 if opcode == 0xE3 else op32
        mnemonic = mnemonic.split("/")[1 if wide else 0]
    vsize = 32 if op32 else 16
    operands = []
    for s in spec.split(",") if spec else ():
        if s in FIXED:
            operands.append(FIXED[s])
        elif s == "eAX":
            operands.append(("r", vsize, 0))
        elif s[0] in "EGMRSCD":
            mod, reg, rm = read_modrm()
            size = {"b": 8, "w": 16, "d": 32, "v": vsize, "p": vsize + 16}.get(s[1:2], vsize)
            if s[0] == "E":
                operands.append(("m", size) if mod != 3 else ("r", size, rm))
            elif s[0] == "M":
                if mod == 3:
                    raise DecodeError(6)
                operands.append(("m", size))
            elif s[0] == "G":
                operands.append(("r", size, reg))
            elif s[0] == "R":
                operands.append(("r", 32, rm))
            elif s[0] == "S":
                if reg > 5:
                    raise DecodeError(6)
                operands.append(("s", 16, reg))
            elif s[0] == "C":
                if reg in (1, 5, 6, 7):
                    raise DecodeError(6)
                operands.append(("c", 32, reg))
            elif s[0] == "D":
                operands.append(("d", 32, reg))
        elif s[0] == "Z":
            size = 8 if s[1] == "b" else (32 if s[1] == "d" else vsize)
            operands.append(("r", size, opcode & 7))
        elif s[0] == "I":
            kind = s[1]
            if kind == "b":
                operands.append(("i", 8, imm(8)))
            elif kind == "w":
                operands.append(("i", 16, imm(16)))
            elif kind == "s":
                operands.append(("i", vsize, imm(8, True) & ((1 << vsize) - 1)))
            else:  # z, v
                operands.append(("i", vsize, imm(vsize)))
        elif s[0] == "J":
            disp = imm(8, True) if s[1] == "b" else imm(vsize, True)
            operands.append(("j", vsize, disp))  # made absolute below
        elif s[0] == "O":
            off = imm(32 if addr32 else 16)
            mem = Mem(DS if seg is None else seg, None, None, 1, off, addr32)
            operands.append(("m", 8 if s[1] == "b" else vsize))
        elif s == "Ap":
            off = imm(vsize)
            sel = imm(16)
            operands.append(("p", vsize + 16, sel, off))
        else:
            raise AssertionError(f"bad operand spec {s}")
    length = pos
    mask = 0xFFFFFFFF if op32 else 0xFFFF
    fixed = []
    for o in operands:
        if o[0] == "j":
            fixed.append(("j", o[1], (eip + length + o[2]) & mask))
        else:
            fixed.append(o)
    cc = None
    if (0x70 <= opcode <= 0x7F) or (0x0F80 <= opcode <= 0x0F8F):
        cc = opcode & 0xF
    elif 0x0F40 <= opcode <= 0x0F4F or 0x0F90 <= opcode <= 0x0F9F:
        cc = opcode & 0xF
    if lock and (mem is None or mnemonic not in LOCKABLE or fixed[0][0] != "m"):
        raise DecodeError(6)
    return Insn(eip=eip, length=length, opcode=opcode, mnemonic=mnemonic, operands=fixed,
                op32=op32, addr32=addr32, seg=seg, rep=rep, lock=lock, mem=mem,
                modrm=modrm, cc=cc, fpu=fpu, raw=bytes(buf[:length]))


LOCKABLE = {"add", "or", "adc", "sbb", "and", "sub", "xor", "not", "neg", "inc", "dec",
            "xchg", "xadd", "cmpxchg", "cmpxchg8b", "bts", "btr", "btc"}


def _decode_mem(mod, rm, addr32, byte, imm) -> Mem:
    if not addr32:
        if mod == 0 and rm == 6:
            return Mem(DS, None, None, 1, imm(16, True) & 0xFFFF, False)
        base, index = MODRM16[rm]
        disp = 0 if mod == 0 else imm(8 if mod == 1 else 16, True)
        seg = SS if base == 5 else DS
        return Mem(seg, base, index, 1, disp & 0xFFFF, False)
    base = rm
    index = None
    scale = 1
    if rm == 4:
        sib = byte()
        scale = 1 << (sib >> 6)
        idx = (sib >> 3) & 7
        index = None if idx == 4 else idx
        base = sib & 7
        if base == 5 and mod == 0:
            base = None
            disp = imm(32, True)
            return Mem(DS, None, index, scale, disp & 0xFFFFFFFF, True)
    elif rm == 5 and mod == 0:
        return Mem(DS, None, None, 1, imm(32) & 0xFFFFFFFF, True)
    disp = 0 if mod == 0 else imm(8 if mod == 1 else 32, True)
    seg = SS if base in (4, 5) else DS
    return Mem(seg, base, index, scale, disp & 0xFFFFFFFF, True)
