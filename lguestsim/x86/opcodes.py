"""The opcode map: every instruction the core knows, one line each.

Like py65's table for the 6502, this is the page to scan when you want to know
what a byte means.  Each entry gives the mnemonic and the operands in the
notation of the Intel SDM's opcode map (appendix A):

  E  ModRM r/m operand (register or memory)   G  ModRM reg field, a GPR
  I  immediate     J  relative jump target     O  absolute offset (moffs)
  M  ModRM memory only                         S  segment register (ModRM reg)
  C  control register (reg)  D  debug register  R  general register (r/m)
  Z  register in the opcode's low three bits   A  far pointer ptr16:16/32
  X  memory at DS:eSI   Y  memory at ES:eDI   (the string instructions, IMPLICIT)
  size letters:  b byte, w word, d dword, v word or dword (operand size),
  z like v for immediates, s a byte sign-extended to v, p far pointer
  AL, eAX, CL, DX, 1, ES ...  fixed operands

Mnemonics written "a/b" are the 16- and 32-bit operand-size spellings.
A mnemonic in a GROUP is chosen by the ModRM reg field.  `FAMILIES` below
gives each mnemonic its family (the module that carries it out) and its base
cycle cost; `describe()` puts the four facts of an opcode side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"]
SHIFTS = ["rol", "ror", "rcl", "rcr", "shl", "shr", "shl", "sar"]  # /6 is an alias of shl
CC = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"]

#: P:019 The page to read when you want to know what a byte means.  Each
# one-byte opcode the core knows is one entry, a mnemonic and its operands in
# the letters of the SDM's opcode map explained above: `Gv,Ev` means "a
# register, then a register or memory operand, both of the operand size".
# The regular rows (the eight ALU operations in their six forms, the sixteen
# conditional jumps, the instructions that carry a register number in their
# low three bits) are filled in by loops; the rest are listed one by one.
# Opcodes whose ModRM byte picks the instruction are in `GROUPS` below (it is
# 0x0F 0x01 that holds `lgdt`, `lidt` and `invlpg`, three of the instructions
# lguest's Guest kernel may not run), and the 0x0F ones in `TWO_BYTE`.  What
# a mnemonic costs and which family's module carries it out are in
# `FAMILIES`, at the end of this file: encoding, meaning and cost are read
# from here by the decoder, the translator, timing.py and the disassembler.
ONE_BYTE: dict[int, tuple[str, str]] = {}
for _i, _m in enumerate(ALU):
    _o = _i * 8
    ONE_BYTE[_o + 0] = (_m, "Eb,Gb")
    ONE_BYTE[_o + 1] = (_m, "Ev,Gv")
    ONE_BYTE[_o + 2] = (_m, "Gb,Eb")
    ONE_BYTE[_o + 3] = (_m, "Gv,Ev")
    ONE_BYTE[_o + 4] = (_m, "AL,Ib")
    ONE_BYTE[_o + 5] = (_m, "eAX,Iz")
ONE_BYTE.update({
    0x06: ("push", "ES"), 0x07: ("pop", "ES"), 0x0E: ("push", "CS"),
    0x16: ("push", "SS"), 0x17: ("pop", "SS"), 0x1E: ("push", "DS"), 0x1F: ("pop", "DS"),
    0x27: ("daa", ""), 0x2F: ("das", ""), 0x37: ("aaa", ""), 0x3F: ("aas", ""),
    0x60: ("pusha/pushad", ""), 0x61: ("popa/popad", ""), 0x62: ("bound", "Gv,M"),
    0x63: ("arpl", "Ew,Gw"), 0x68: ("push", "Iz"), 0x69: ("imul", "Gv,Ev,Iz"),
    0x6A: ("push", "Is"), 0x6B: ("imul", "Gv,Ev,Is"),
    0x6C: ("insb", ""), 0x6D: ("insw/insd", ""), 0x6E: ("outsb", ""), 0x6F: ("outsw/outsd", ""),
    0x84: ("test", "Eb,Gb"), 0x85: ("test", "Ev,Gv"), 0x86: ("xchg", "Eb,Gb"),
    0x87: ("xchg", "Ev,Gv"), 0x88: ("mov", "Eb,Gb"), 0x89: ("mov", "Ev,Gv"),
    0x8A: ("mov", "Gb,Eb"), 0x8B: ("mov", "Gv,Ev"), 0x8C: ("mov", "Ew,Sw"),
    0x8D: ("lea", "Gv,M"), 0x8E: ("mov", "Sw,Ew"), 0x8F: ("pop", "Ev"),
    0x90: ("nop", ""), 0x98: ("cbw/cwde", ""), 0x99: ("cwd/cdq", ""),
    0x9A: ("lcall", "Ap"), 0x9B: ("wait", ""), 0x9C: ("pushf/pushfd", ""),
    0x9D: ("popf/popfd", ""), 0x9E: ("sahf", ""), 0x9F: ("lahf", ""),
    0xA0: ("mov", "AL,Ob"), 0xA1: ("mov", "eAX,Ov"), 0xA2: ("mov", "Ob,AL"),
    0xA3: ("mov", "Ov,eAX"), 0xA4: ("movsb", ""), 0xA5: ("movsw/movsd", ""),
    0xA6: ("cmpsb", ""), 0xA7: ("cmpsw/cmpsd", ""), 0xA8: ("test", "AL,Ib"),
    0xA9: ("test", "eAX,Iz"), 0xAA: ("stosb", ""), 0xAB: ("stosw/stosd", ""),
    0xAC: ("lodsb", ""), 0xAD: ("lodsw/lodsd", ""), 0xAE: ("scasb", ""),
    0xAF: ("scasw/scasd", ""),
    0xC2: ("ret", "Iw"), 0xC3: ("ret", ""), 0xC4: ("les", "Gv,Mp"), 0xC5: ("lds", "Gv,Mp"),
    0xC6: ("mov", "Eb,Ib"), 0xC7: ("mov", "Ev,Iz"), 0xC8: ("enter", "Iw,Ib"),
    0xC9: ("leave", ""), 0xCA: ("lret", "Iw"), 0xCB: ("lret", ""), 0xCC: ("int3", ""),
    0xCD: ("int", "Ib"), 0xCE: ("into", ""), 0xCF: ("iret/iretd", ""),
    0xD4: ("aam", "Ib"), 0xD5: ("aad", "Ib"), 0xD6: ("salc", ""), 0xD7: ("xlatb", ""),
    0xE0: ("loopne", "Jb"), 0xE1: ("loope", "Jb"), 0xE2: ("loop", "Jb"),
    0xE3: ("jcxz/jecxz", "Jb"), 0xE4: ("in", "AL,Ib"), 0xE5: ("in", "eAX,Ib"),
    0xE6: ("out", "Ib,AL"), 0xE7: ("out", "Ib,eAX"), 0xE8: ("call", "Jz"),
    0xE9: ("jmp", "Jz"), 0xEA: ("ljmp", "Ap"), 0xEB: ("jmp", "Jb"),
    0xEC: ("in", "AL,DX"), 0xED: ("in", "eAX,DX"), 0xEE: ("out", "DX,AL"),
    0xEF: ("out", "DX,eAX"), 0xF1: ("int1", ""), 0xF4: ("hlt", ""), 0xF5: ("cmc", ""),
    0xF8: ("clc", ""), 0xF9: ("stc", ""), 0xFA: ("cli", ""), 0xFB: ("sti", ""),
    0xFC: ("cld", ""), 0xFD: ("std", ""),
})
for _r in range(8):
    ONE_BYTE[0x40 + _r] = ("inc", "Zv")
    ONE_BYTE[0x48 + _r] = ("dec", "Zv")
    ONE_BYTE[0x50 + _r] = ("push", "Zv")
    ONE_BYTE[0x58 + _r] = ("pop", "Zv")
    ONE_BYTE[0xB0 + _r] = ("mov", "Zb,Ib")
    ONE_BYTE[0xB8 + _r] = ("mov", "Zv,Iv")
    if _r:
        ONE_BYTE[0x90 + _r] = ("xchg", "Zv,eAX")
for _c in range(16):
    ONE_BYTE[0x70 + _c] = ("j" + CC[_c], "Jb")

# Opcodes whose ModRM reg field picks the instruction.
GROUPS: dict[int, tuple[str, list[tuple[str, str] | None]]] = {
    0x80: ("Eb,Ib", [(m, "Eb,Ib") for m in ALU]),
    0x81: ("Ev,Iz", [(m, "Ev,Iz") for m in ALU]),
    0x82: ("Eb,Ib", [(m, "Eb,Ib") for m in ALU]),
    0x83: ("Ev,Is", [(m, "Ev,Is") for m in ALU]),
    0xC0: ("", [(m, "Eb,Ib") for m in SHIFTS]),
    0xC1: ("", [(m, "Ev,Ib") for m in SHIFTS]),
    0xD0: ("", [(m, "Eb,1") for m in SHIFTS]),
    0xD1: ("", [(m, "Ev,1") for m in SHIFTS]),
    0xD2: ("", [(m, "Eb,CL") for m in SHIFTS]),
    0xD3: ("", [(m, "Ev,CL") for m in SHIFTS]),
    0xF6: ("", [("test", "Eb,Ib"), ("test", "Eb,Ib"), ("not", "Eb"), ("neg", "Eb"),
                ("mul", "Eb"), ("imul", "Eb"), ("div", "Eb"), ("idiv", "Eb")]),
    0xF7: ("", [("test", "Ev,Iz"), ("test", "Ev,Iz"), ("not", "Ev"), ("neg", "Ev"),
                ("mul", "Ev"), ("imul", "Ev"), ("div", "Ev"), ("idiv", "Ev")]),
    0xFE: ("", [("inc", "Eb"), ("dec", "Eb"), None, None, None, None, None, None]),
    0xFF: ("", [("inc", "Ev"), ("dec", "Ev"), ("call", "Ev"), ("lcall", "Mp"),
                ("jmp", "Ev"), ("ljmp", "Mp"), ("push", "Ev"), None]),
    0x0F00: ("", [("sldt", "Ew"), ("str", "Ew"), ("lldt", "Ew"), ("ltr", "Ew"),
                  ("verr", "Ew"), ("verw", "Ew"), None, None]),
    0x0F01: ("", [("sgdt", "M"), ("sidt", "M"), ("lgdt", "M"), ("lidt", "M"),
                  ("smsw", "Ew"), None, ("lmsw", "Ew"), ("invlpg", "M")]),
    0x0FBA: ("", [None, None, None, None, ("bt", "Ev,Ib"), ("bts", "Ev,Ib"),
                  ("btr", "Ev,Ib"), ("btc", "Ev,Ib")]),
    0x0FC7: ("", [None, ("cmpxchg8b", "M"), None, None, None, None, None, None]),
}
# 0xC6 and 0xC7 only define /0; 0x8F only /0.
GROUP_ZERO_ONLY = {0xC6, 0xC7, 0x8F}

TWO_BYTE: dict[int, tuple[str, str]] = {
    0x02: ("lar", "Gv,Ew"), 0x03: ("lsl", "Gv,Ew"), 0x06: ("clts", ""),
    0x08: ("invd", ""), 0x09: ("wbinvd", ""), 0x0B: ("ud2", ""), 0x1F: ("nop", "Ev"),
    0x20: ("mov", "Rd,Cd"), 0x21: ("mov", "Rd,Dd"), 0x22: ("mov", "Cd,Rd"),
    0x23: ("mov", "Dd,Rd"), 0x30: ("wrmsr", ""), 0x31: ("rdtsc", ""), 0x32: ("rdmsr", ""),
    0x34: ("sysenter", ""), 0x35: ("sysexit", ""),
    0xA0: ("push", "FS"), 0xA1: ("pop", "FS"), 0xA2: ("cpuid", ""), 0xA3: ("bt", "Ev,Gv"),
    0xA4: ("shld", "Ev,Gv,Ib"), 0xA5: ("shld", "Ev,Gv,CL"), 0xA8: ("push", "GS"),
    0xA9: ("pop", "GS"), 0xAB: ("bts", "Ev,Gv"), 0xAC: ("shrd", "Ev,Gv,Ib"),
    0xAD: ("shrd", "Ev,Gv,CL"), 0xAF: ("imul", "Gv,Ev"), 0xB0: ("cmpxchg", "Eb,Gb"),
    0xB1: ("cmpxchg", "Ev,Gv"), 0xB2: ("lss", "Gv,Mp"), 0xB3: ("btr", "Ev,Gv"),
    0xB4: ("lfs", "Gv,Mp"), 0xB5: ("lgs", "Gv,Mp"), 0xB6: ("movzx", "Gv,Eb"),
    0xB7: ("movzx", "Gv,Ew"), 0xBB: ("btc", "Ev,Gv"), 0xBC: ("bsf", "Gv,Ev"),
    0xBD: ("bsr", "Gv,Ev"), 0xBE: ("movsx", "Gv,Eb"), 0xBF: ("movsx", "Gv,Ew"),
    0xC0: ("xadd", "Eb,Gb"), 0xC1: ("xadd", "Ev,Gv"),
}
for _c in range(16):
    TWO_BYTE[0x40 + _c] = ("cmov" + CC[_c], "Gv,Ev")
    TWO_BYTE[0x80 + _c] = ("j" + CC[_c], "Jz")
    TWO_BYTE[0x90 + _c] = ("set" + CC[_c], "Eb")
for _r in range(8):
    TWO_BYTE[0xC8 + _r] = ("bswap", "Zd")

# MMX/SSE opcodes (0F xx with a ModRM byte) are decoded only far enough to
# fault: #NM when CR0.TS or EM is set (lazy FPU switching), #UD otherwise.
SIMD_WITH_MODRM = (set(range(0x10, 0x18)) | set(range(0x28, 0x30)) | set(range(0x50, 0x80))
                   | {0xC2, 0xC3, 0xC4, 0xC5, 0xC6} | set(range(0xD0, 0x100)) | {0xAE})
SIMD_WITH_IMM8 = {0x70, 0x71, 0x72, 0x73, 0xC2, 0xC4, 0xC5, 0xC6}

#: P:084 What the decoder leaves out and a disassembler shows.  The string
# instructions name no operand in their encoding, yet they read DS:eSI and
# write ES:eDI, and the SDM's map writes those as X and Y; a listing shows
# them (`rep stosl %eax, %es:(%edi)`).  And some selector operands are 16
# bits in memory but a whole register of the operand size (the map's Rv/Mw
# for sldt, str and smsw; the instruction pages say the same of mov to and
# from a segment register, lar and lsl).  The translator needs neither
# fact, so they sit here beside the map, for the disassembler (P:085).
IMPLICIT: dict[int, str] = {
    0x6C: "Yb,DX", 0x6D: "Yz,DX", 0x6E: "DX,Xb", 0x6F: "DX,Xz",
    0xA4: "Yb,Xb", 0xA5: "Yv,Xv", 0xA6: "Xb,Yb", 0xA7: "Xv,Yv",
    0xAA: "Yb,AL", 0xAB: "Yv,eAX", 0xAC: "AL,Xb", 0xAD: "eAX,Xv",
    0xAE: "AL,Yb", 0xAF: "eAX,Yv",
}
# (opcode, ModRM reg or None): operands written Rv/Mw in the SDM's map.
RV_MW = {(0x8C, None), (0x8E, None), (0x0F02, None), (0x0F03, None),
         (0x0F00, 0), (0x0F00, 1), (0x0F01, 4)}

# The 387's transcendental functions (x87_transcendental.FUNCTIONS carries them
# out): an operation named as its mnemonic.
X87_FUNCTIONS = ("f2xm1", "fyl2x", "fyl2xp1", "fptan", "fpatan", "fsin", "fcos", "fsincos")


#: P:046 The 387 is a second processor beside the 386, and its opcode map is
# the eight escape opcodes D8 to DF: the 386 decodes the ModRM byte (and so
# any memory operand) and the 387 reads the rest from the reg field, and for
# a register operand (mod = 11) from the r/m field as well.  One table names
# every instruction: (escape, reg, rm) -> (mnemonic, operation), where reg is
# 8 + reg for the register forms and rm is None for a memory form or "i" for
# "any st(i)".  x87.py carries each operation out.
def _opcode_table() -> dict[tuple, tuple[str, str]]:
    table: dict[tuple, tuple[str, str]] = {}

    def t(esc: int, reg: int, rm, mnemonic: str, op: str) -> None:
        table[(esc, reg, rm)] = (mnemonic, op)

    ARITH = ("add", "mul", "com", "comp", "sub", "subr", "div", "divr")
    for r, n in enumerate(ARITH):
        t(0xD8, r, None, "f" + n, n + ":m32")
        t(0xDC, r, None, "f" + n, n + ":m64")
        t(0xDA, r, None, "fi" + n, n + ":i32")
        t(0xDE, r, None, "fi" + n, n + ":i16")
        t(0xD8, 8 + r, "i", "f" + n, n + ":st0")
    # DC and DE with a register operand write st(i), and there Intel's names
    # for the reversed forms are swapped: DC E0+i is fsubr st(i), st(0), that
    # is st(i) = st(0) - st(i).
    for r, n in enumerate(("add", "mul", "com", "comp", "subr", "sub", "divr", "div")):
        if n in ("com", "comp"):
            t(0xDC, 8 + r, "i", "f" + n, n + ":st0")      # aliases of D8 D0/D8
            continue
        t(0xDC, 8 + r, "i", "f" + n, n + ":sti")
        t(0xDE, 8 + r, "i", "f" + n + "p", n + ":stip")
    t(0xDE, 10, "i", "fcomp", "comp:st0")
    t(0xDE, 11, 1, "fcompp", "compp")
    t(0xDA, 13, 1, "fucompp", "ucompp")
    for op, esc, reg, m in (
            ("ld:m32", 0xD9, 0, "fld"), ("st:m32", 0xD9, 2, "fst"), ("stp:m32", 0xD9, 3, "fstp"),
            ("ldenv", 0xD9, 4, "fldenv"), ("ldcw", 0xD9, 5, "fldcw"), ("stenv", 0xD9, 6, "fnstenv"),
            ("stcw", 0xD9, 7, "fnstcw"),
            ("ld:i32", 0xDB, 0, "fild"), ("st:i32", 0xDB, 2, "fist"), ("stp:i32", 0xDB, 3, "fistp"),
            ("ld:m80", 0xDB, 5, "fld"), ("stp:m80", 0xDB, 7, "fstp"),
            ("ld:m64", 0xDD, 0, "fld"), ("st:m64", 0xDD, 2, "fst"), ("stp:m64", 0xDD, 3, "fstp"),
            ("rstor", 0xDD, 4, "frstor"), ("save", 0xDD, 6, "fnsave"), ("stsw", 0xDD, 7, "fnstsw"),
            ("ld:i16", 0xDF, 0, "fild"), ("st:i16", 0xDF, 2, "fist"), ("stp:i16", 0xDF, 3, "fistp"),
            ("ld:bcd", 0xDF, 4, "fbld"), ("ld:i64", 0xDF, 5, "fild"), ("stp:bcd", 0xDF, 6, "fbstp"),
            ("stp:i64", 0xDF, 7, "fistp")):
        t(esc, reg, None, m, op)
    for op, esc, reg, m in (
            ("ld:st", 0xD9, 8, "fld"), ("xch", 0xD9, 9, "fxch"), ("stp:st", 0xD9, 11, "fstpnce"),
            ("free", 0xDD, 8, "ffree"), ("xch", 0xDD, 9, "fxch"), ("st:st", 0xDD, 10, "fst"),
            ("stp:st", 0xDD, 11, "fstp"), ("ucom", 0xDD, 12, "fucom"), ("ucomp", 0xDD, 13, "fucomp"),
            ("freep", 0xDF, 8, "ffreep"), ("xch", 0xDF, 9, "fxch"), ("stp:st", 0xDF, 10, "fstp"),
            ("stp:st", 0xDF, 11, "fstp")):
        t(esc, reg, "i", m, op)
    D9 = ("fchs", "fabs", None, None, "ftst", "fxam", None, None,
          "fld1", "fldl2t", "fldl2e", "fldpi", "fldlg2", "fldln2", "fldz", None,
          "f2xm1", "fyl2x", "fptan", "fpatan", "fxtract", "fprem1", "fdecstp", "fincstp",
          "fprem", "fyl2xp1", "fsqrt", "fsincos", "frndint", "fscale", "fsin", "fcos")
    for rm, m in enumerate(D9):
        if m is not None:
            op = "const" if m.startswith("fld") else m if m in X87_FUNCTIONS else m[1:]
            t(0xD9, 12 + rm // 8, rm % 8, m, op)
    t(0xD9, 10, 0, "fnop", "nop")
    for rm, m, op in ((0, "fneni", "nop"), (1, "fndisi", "nop"), (2, "fnclex", "clex"),
                      (3, "fninit", "init"), (4, "fnsetpm", "nop")):
        t(0xDB, 12, rm, m, op)
    t(0xDF, 12, 0, "fnstsw", "stswax")
    return table


X87_TABLE = _opcode_table()


# The base cycle counts below are a plausible i486/Pentium-class model (timing.py
# explains it and holds the costs paid on the side).  A cost is named as
# timing.timing_key() names an instruction: the mnemonic, but `jcc`, `setcc`
# and `cmovcc` for the sixteen conditions, `movs`, `stos` and the rest for the
# string instructions' three sizes, and `mov_cr` for a move to or from a
# control register (a system instruction, though `mov`'s other forms are moves).
FAMILIES: dict[str, dict[str, int]] = {
    # data movement and the stack (moves.py); the segment-register forms of
    # mov, push and pop go to system.py
    "moves": {
        "mov": 1, "movzx": 3, "movsx": 3, "lea": 1, "xchg": 3, "xadd": 3, "cmpxchg": 6,
        "bswap": 1, "cmovcc": 2, "cbw": 3, "cwde": 3, "cwd": 3, "cdq": 3, "xlatb": 4,
        "push": 1, "pop": 1, "leave": 5, "nop": 1,
        "pusha": 11, "pushad": 11, "popa": 9, "popad": 9, "enter": 14, "cmpxchg8b": 2,
    },
    # arithmetic and logic, decimal arithmetic (alu.py)
    "alu": {
        "add": 1, "or": 1, "adc": 1, "sbb": 1, "and": 1, "sub": 1, "xor": 1, "cmp": 1,
        "test": 1, "inc": 1, "dec": 1, "neg": 1, "not": 1,
        "daa": 2, "das": 2, "aaa": 3, "aas": 3, "aam": 15, "aad": 14,
    },
    # shifts and rotates (shifts.py)
    "shifts": {
        "shl": 2, "shr": 2, "sar": 2, "rol": 2, "ror": 2, "rcl": 8, "rcr": 8,
        "shld": 3, "shrd": 3,
    },
    # multiply and divide (muldiv.py)
    "muldiv": {"mul": 13, "imul": 13, "div": 40, "idiv": 43},
    # bit and byte instructions (bits.py)
    "bits": {"bt": 3, "bts": 6, "btr": 6, "btc": 6, "bsf": 6, "bsr": 6, "setcc": 3},
    # near control transfer (control.py)
    "control": {
        "jmp": 1, "jcc": 1, "call": 3, "ret": 5, "loop": 6, "loope": 6, "loopne": 6,
        "jcxz": 5, "jecxz": 5,
    },
    # flag control (flag_control.py)
    "flag_control": {
        "clc": 2, "stc": 2, "cmc": 2, "cld": 2, "std": 2, "lahf": 2, "sahf": 2,
        "pushf": 4, "pushfd": 4, "salc": 2,
    },
    # the string instructions, per element (strings.py)
    "strings": {"movs": 4, "stos": 3, "lods": 4, "cmps": 7, "scas": 5, "ins": 15, "outs": 15},
    # what a Python helper does (system.py, and through it segments.py,
    # interrupts.py, call_gates.py, task_switch.py, v86.py): segments, far
    # transfers, interrupts, I/O, system registers, and the rarer rest
    "system": {
        "bound": 7, "lds": 12, "les": 12, "lfs": 12, "lgs": 12, "lss": 12,
        "popf": 6, "popfd": 6, "cli": 5, "sti": 5,
        "int": 30, "int1": 2, "int3": 26, "into": 28, "iret": 15, "iretd": 15,
        "ljmp": 17, "lcall": 18, "lret": 13, "hlt": 4, "wait": 1,
        "in": 14, "out": 16, "cpuid": 20, "rdtsc": 11, "rdmsr": 20, "wrmsr": 30,
        "sysenter": 20, "sysexit": 20, "clts": 7, "invlpg": 12, "mov_cr": 10,
        "lgdt": 11, "lidt": 11, "sgdt": 10, "sidt": 10, "lldt": 20, "sldt": 2,
        "ltr": 20, "str": 2, "lmsw": 13, "smsw": 2, "lar": 15, "lsl": 15,
        "verr": 11, "verw": 11, "arpl": 9, "ud2": 1, "invd": 4, "wbinvd": 5,
    },
    # the 387 (x87.py), a typical figure per instruction from Intel's 387 DX
    # data sheet (memory forms: the m32/m64 figure); it ran beside the 386,
    # so these are slower than the rest of this (486-class) table
    "x87": {
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
    },
}

# Each cost key's base cycles, and each mnemonic (as the decoder spells it)
# its family and its cost key.
CYCLES: dict[str, int] = {k: c for costs in FAMILIES.values() for k, c in costs.items()}
FAMILY: dict[str, str] = {}
KEY: dict[str, str] = {}
for _family, _costs in FAMILIES.items():
    for _k in _costs:
        if _k in ("jcc", "setcc", "cmovcc"):
            _spellings = [_k[:-2] + _c for _c in CC]
        elif _family == "strings":
            _spellings = [_k + _s for _s in "bwd"]
        elif _k == "mov_cr":
            _spellings = []
        else:
            _spellings = [_k]
        for _m in _spellings:
            FAMILY[_m] = _family
            KEY[_m] = _k


@dataclass(frozen=True)
class Opcode:
    """An opcode's four facts: what it is called, its operands, the family
    that carries it out and its base cycles (register form)."""
    mnemonic: str
    form: str
    family: str
    cycles: int


def describe(opcode: int, reg: int | None = None) -> list[Opcode]:
    """The opcode's entry (0x0Fxx for the two-byte map; ``reg`` picks a group
    member), one Opcode per operand-size spelling; [] if the core does not
    know it.  The 387's escapes are in `X87_TABLE`, by (escape, reg, rm)."""
    if opcode in GROUPS:
        entries = [e for i, e in enumerate(GROUPS[opcode][1]) if e and (reg is None or i == reg)]
    elif opcode >> 8 == 0x0F:
        entries = [TWO_BYTE[opcode & 0xFF]] if opcode & 0xFF in TWO_BYTE else []
    else:
        entries = [ONE_BYTE[opcode]] if opcode in ONE_BYTE else []
    return [Opcode(m, form, FAMILY[m], CYCLES[KEY[m]])
            for mnemonics, form in entries for m in mnemonics.split("/")]
