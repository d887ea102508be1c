"""A decoded instruction written out as text, in AT&T or Intel syntax.

This is the disassembler disasm.py falls back on where capstone is missing
(the live book runs in Pyodide, where there is no capstone wheel).  It reads
nothing but what the core already has: ``decode()``'s `Insn` and the opcode
map it came from (opcodes.py, and x87.py's table for the 387), and it spells
the text the way capstone 5 does, quirks included, so that a view looks the
same with or without capstone.  tests/test_disasm.py holds the two side by
side on every instruction of the shipped Guests and the Switcher and on
random encodings from the whole map.
"""

from __future__ import annotations

from .decode import REG8, REG16, REG32, SEG_NAMES, DecodeError, Insn, Mem, NeedBytes, decode
from .opcodes import CC, GROUPS, IMPLICIT, ONE_BYTE, RV_MW, TWO_BYTE, X87_TABLE

REGS = {8: REG8, 16: REG16, 32: REG32}
SUFFIX = {8: "b", 16: "w", 32: "l"}
PTR = {8: "byte ptr ", 16: "word ptr ", 32: "dword ptr ", 48: "ptr ", 64: "qword ptr ",
       80: "xword ptr "}
ES = SEG_NAMES.index("es")

# AT&T's own names where Intel's carry the size in the name.
ATT_NAMES = {"cbw": "cbtw", "cwde": "cwtl", "cwd": "cwtd", "cdq": "cltd",
             "pushf": "pushfw", "pushfd": "pushfl", "popf": "popfw", "popfd": "popfl",
             "pusha": "pushaw", "pushad": "pushal", "popa": "popaw", "popad": "popal",
             "iret": "iretw", "iretd": "iretl", "movsd": "movsl", "cmpsd": "cmpsl",
             "stosd": "stosl", "lodsd": "lodsl", "scasd": "scasl", "insd": "insl",
             "outsd": "outsl", "sysexit": "sysexitl"}
# capstone's Intel names that are not the core's.
INTEL_NAMES = {"lret": "retf", "pushad": "pushal", "popad": "popal", "pusha": "pushaw",
               "popa": "popaw"}
# AT&T mnemonics written without a size suffix, whatever their operands.
NO_SUFFIX = {"loop", "loope", "loopne", "jcxz", "jecxz", "int", "enter", "aam", "aad",
             "arpl", "verr", "verw", "invlpg", "cmpxchg8b", "bound"} \
    | {"j" + c for c in CC} | {"set" + c for c in CC}
# Instructions with no operands that AT&T still gives a suffix.
SUFFIX_ALONE = {"ret", "lret"}
# Operand lists AT&T writes in Intel's order, not reversed.
UNREVERSED = {"enter", "bound"}
# Branches before which capstone reads F2 as MPX's bnd.
NEAR_BRANCHES = {0x70 + c for c in range(16)} | {0x0F80 + c for c in range(16)} \
    | {0xE3, 0xE8, 0xE9, 0xEB, 0xC2, 0xC3, 0xCA, 0xCB}
PREFIXES = {0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3}


class Unprintable(Exception):  # noqa: N818 - a signal, like decode's NeedBytes
    """An encoding the core decodes only to refuse (the P6 x87 additions: #UD here)."""


def number(v: int) -> str:
    """capstone's way with a number: decimal up to 9, hexadecimal beyond, a sign before."""
    if v < 0:
        return "-" + number(-v)
    return str(v) if v <= 9 else f"{v:#x}"


def signed(v: int, size: int) -> int:
    return v - (1 << size) if v >> (size - 1) & 1 else v


def entry(insn: Insn) -> tuple[str, str]:
    """The opcode map's (mnemonic, operand letters) for a decoded instruction."""
    op = insn.opcode
    if op in GROUPS:
        found = GROUPS[op][1][(insn.modrm >> 3) & 7]
        assert found is not None
        return found
    if op & 0xFF00 == 0x0F00:
        return TWO_BYTE[op & 0xFF]
    return ONE_BYTE[op]


class _Spell:
    """Operands as text in one syntax."""

    def __init__(self, insn: Insn, att: bool) -> None:
        self.insn = insn
        self.att = att
        self.pct = "%" if att else ""
        # the code's own size: the operand size, unless a 66 prefix turned it
        self.code32 = insn.op32 != (0x66 in _prefixes(insn))

    def reg(self, size: int, n: int) -> str:
        return self.pct + REGS[size][n]

    def mem(self, m: Mem, size: int | None, seg: int | None = None) -> str:
        """A memory operand; its segment is shown when a prefix (or ``seg``) names it."""
        shown = seg if seg is not None else (m.seg if self.insn.seg is not None else None)
        prefix = "" if shown is None else self.pct + SEG_NAMES[shown] + ":"
        regs = REG32 if m.addr32 else REG16
        base = None if m.base is None else regs[m.base]
        index = None if m.index is None else regs[m.index]
        disp = m.disp
        if base is not None or index is not None:
            disp = signed(disp, 32 if m.addr32 else 16)
        elif not m.addr32 and self.insn.modrm is not None and self.code32:
            disp = signed(disp, 16) & 0xFFFFFFFF   # capstone widens a 16-bit ModRM address
        # A SIB byte naming neither base nor index: capstone's AT&T keeps the
        # empty parentheses and a signed displacement.
        bare_sib = (m.addr32 and base is None and index is None and self.insn.modrm is not None
                    and self.insn.modrm & 7 == 4 and self.insn.modrm >> 6 != 3)
        if self.att and bare_sib:
            return prefix + number(signed(disp, 32)) + "()"
        if self.att:
            inner = ""
            if base is not None or index is not None:
                inner = "(" + ("%" + base if base else "")
                if index is not None:
                    inner += ", %" + index + (f", {m.scale}" if m.scale != 1 else "")
                inner += ")"
            return prefix + (number(disp) if disp or not inner else "") + inner
        parts = [base] if base is not None else []
        if index is not None:
            parts.append(index + (f"*{m.scale}" if m.scale != 1 else ""))
        inside = " + ".join(parts)
        if not parts:
            inside = number(disp)
        elif disp:
            inside += (" - " if disp < 0 else " + ") + number(abs(disp))
        return ("" if size is None else PTR[size]) + prefix + "[" + inside + "]"

    def imm(self, v: int, size: int, letter: str, mnemonic: str) -> str:
        i = self.insn
        if (letter == "s" and mnemonic not in ("and", "or", "xor")) or mnemonic == "enter" \
                or (i.opcode == 0xF6 and (i.modrm >> 3) & 7 == 1):
            v = signed(v, size)   # capstone writes these negative (F6 /1: test's alias)
        return ("$" if self.att else "") + number(v)

    def string(self, letter: str, size: int) -> str:
        """X (DS:eSI, or the prefix's segment) or Y (ES:eDI) of a string instruction."""
        i = self.insn
        seg = i.seg if letter == "X" else ES
        m = Mem(3 if seg is None else seg, 6 if letter == "X" else 7, None, 1, 0, i.addr32)
        return self.mem(m, size, seg)


def _size(letter: str, vsize: int) -> int:
    return {"b": 8, "w": 16, "d": 32, "v": vsize, "z": vsize}[letter]


def _memory_size(name: str, letters: str, insn: Insn, size: int) -> int | None:
    """The size Intel syntax puts before a memory operand (None: no size)."""
    vsize = 32 if insn.op32 else 16
    if name in ("lea", "lgdt", "lidt", "sgdt", "sidt"):
        return None
    if name == "invlpg":
        return 8
    if name in ("bound", "cmpxchg8b"):
        return 64 if name == "cmpxchg8b" else 2 * vsize
    if letters == "Mp":
        return None if name in ("lcall", "ljmp") and not insn.op32 else 48
    return size


def _operands(insn: Insn, letters: list[str], s: _Spell, name: str) -> list[str]:
    out = []
    vsize = 32 if insn.op32 else 16
    reg_field = None if insn.modrm is None else (insn.modrm >> 3) & 7
    rv = (insn.opcode, None) in RV_MW or (insn.opcode, reg_field) in RV_MW
    for letter, op in zip(letters, insn.operands, strict=False):
        kind = op[0]
        if kind == "r":
            size = vsize if rv and letter[0] == "E" else op[1]
            out.append(s.reg(size, op[2]))
        elif kind == "m":
            out.append(s.mem(insn.mem, _memory_size(name, letter, insn, op[1])))
        elif kind == "i":
            out.append(s.imm(op[2], op[1], letter[1:2] if letter[0] == "I" else "", name))
        elif kind in "scd":
            out.append(s.pct + {"s": SEG_NAMES[op[2]] if kind == "s" else "",
                                "c": f"cr{op[2]}", "d": f"dr{op[2]}"}[kind])
        elif kind == "j":
            out.append(number(op[2]))
        elif kind == "p":
            out += [f"${op[2]:#x}", f"${op[3]:#x}"] if s.att else [number(op[2]), number(op[3])]
    return out


def _string_operands(insn: Insn, letters: str, s: _Spell) -> list[str]:
    vsize = 32 if insn.op32 else 16
    out = []
    for letter in letters.split(","):
        if letter in ("AL", "eAX"):
            out.append(s.reg(8 if letter == "AL" else vsize, 0))
        elif letter == "DX":
            out.append(s.reg(16, 2))
        else:
            out.append(s.string(letter[0], _size(letter[1], vsize)))
    return out


def _att_name(insn: Insn, name: str, letters: list[str]) -> str:
    if name in ATT_NAMES:
        return ATT_NAMES[name]
    if name in NO_SUFFIX or (name == "jmp" and insn.operands[0][0] == "j"):
        return name
    vsize = 32 if insn.op32 else 16
    if name in ("movzx", "movsx"):
        src = insn.operands[1][1]
        return name[:4] + SUFFIX[src] + SUFFIX[vsize]
    if not insn.operands:
        return name + SUFFIX[vsize] if name in SUFFIX_ALONE else name
    reg_field = None if insn.modrm is None else (insn.modrm >> 3) & 7
    for letter, op in zip(letters, insn.operands, strict=False):
        if op[0] in "rm" and letter != "DX":
            size = op[1]
            if op[0] == "r" and letter[0] == "E" and (
                    (insn.opcode, None) in RV_MW or (insn.opcode, reg_field) in RV_MW):
                size = vsize
            return name + SUFFIX[size if letter[1:2] != "p" else vsize]
    return name + SUFFIX[vsize]


def _prefixes(insn: Insn) -> list[int]:
    """The instruction's prefix bytes, in their order."""
    out = []
    for b in insn.raw:
        if b not in PREFIXES:
            break
        out.append(b)
    return out


def _prefix(insn: Insn) -> str:
    """The prefixes capstone writes before the mnemonic.

    Beyond lock and rep it reads some as their later meanings: F2 before a
    branch is MPX's bnd, 3E before an indirect branch CET's notrack, F2/F3
    with lock (or on xchg) the TSX hints; a 386 ignores all four."""
    prefixes = _prefixes(insn)
    op, rep = insn.opcode, insn.rep
    reg = None if insn.modrm is None else (insn.modrm >> 3) & 7
    text = ""
    # an indirect call or jmp (a far one only with a 32-bit operand)
    indirect = op == 0xFF and (reg in (2, 4) or (reg in (3, 5) and insn.op32))
    if rep == "repne" and (op in NEAR_BRANCHES or indirect):
        text += "bnd "
    if insn.seg == 3 and (op in (0xE8, 0xE9, 0xEB) or indirect):
        text += "notrack "            # the last segment prefix is 3E
    last = {b: i for i, b in enumerate(prefixes)}
    lock = insn.lock and last[0xF0] > max(last.get(0xF2, -1), last.get(0xF3, -1))
    if rep and prefixes[0] in (0xF2, 0xF3) and (
            (lock and prefixes[1] == 0xF0)
            or (op in (0x86, 0x87) and insn.mem is not None and len(prefixes) == 1)):
        text += "xacquire " if rep == "repne" else "xrelease "
    if lock:                          # capstone drops a lock that an F2 or F3 follows
        text += "lock "
    if rep == "rep" and op in (0xC2, 0xC3):
        text += "repz "
    if rep and op in IMPLICIT:
        compares = op in (0xA6, 0xA7, 0xAE, 0xAF)
        if rep == "rep":
            text += "repe " if compares else "rep "
        elif not (op == 0xA5 and insn.op32):
            text += "repne "
    return text


#: P:085 Printing an instruction needs little the decoder has not already
# found: the operand tuples of the `Insn` become registers, immediates and
# memory operands, and the opcode map's letters say what the tuples forget
# (an `Is` immediate is a signed byte, an `Ap` a far pointer, P:084's
# string operands).  AT&T syntax then reverses the operands, puts `%` before
# registers and `$` before immediates, and writes the operand size into the
# mnemonic (`movl`, `movzbl`).  The rest is capstone's house style, kept so
# that the live book's listing reads like the local one: which numbers are
# written as negative, the prefixes it reads with their later meanings, a
# few operands it leaves out.
def text(insn: Insn, att: bool = True) -> str:
    """The instruction as capstone would print it, without its address."""
    s = _Spell(insn, att)
    if 0xD8 <= insn.opcode <= 0xDF:
        return _prefix(insn) + _x87(insn, s)
    name = insn.mnemonic
    op = insn.opcode
    if op == 0x90 and insn.rep == "rep":
        return "pause"
    _, spec = entry(insn)
    implicit = IMPLICIT.get(op)
    letters = (implicit or spec).split(",") if (implicit or spec) else []
    if implicit:
        ops = _string_operands(insn, implicit, s)
    else:
        ops = _operands(insn, letters, s, name)
    if 0xC0 <= op <= 0xD3 and op in GROUPS and (insn.modrm >> 3) & 7 == 6:
        name = "sal"      # /6, undocumented, does what /4 does; capstone calls it sal
    far = insn.operands[0][0] if name in ("lcall", "ljmp") else None
    if att:
        if name not in UNREVERSED and far != "p":
            ops.reverse()
        if name in ("call", "jmp", "lcall", "ljmp") and insn.operands[0][0] in "rm":
            ops = ["*" + ops[0]]
        if op in (0xD0, 0xD1) and insn.mem is not None and (insn.modrm >> 3) & 7 != 3:
            ops = ops[1:]     # a memory shift by one: capstone leaves the 1 unwritten
        name = _att_name(insn, name, letters)
    else:
        if far == "m" and insn.op32:
            name = name[1:]
        if op in (0xD0, 0xD1) and insn.mem is not None and (insn.modrm >> 3) & 7 == 2:
            ops = ops[:1]     # and in Intel syntax, rcl's alone
        name = INTEL_NAMES.get(name, name)
    if op == 0xEA:
        return _prefix(insn) + name + " " + ":".join(ops)
    return (_prefix(insn) + name + " " + ", ".join(ops)).strip()


# --- the 387 ---------------------------------------------------------------
# x87.py's table names each operation with its operand: ":m32", ":i16" ... for
# memory, ":st0", ":sti", ":stip" for the register forms.
X87_MEMORY = {"m32": ("s", 32), "m64": ("l", 64), "m80": ("t", 80), "i16": ("s", 16),
              "i32": ("l", 32), "i64": ("ll", 64), "bcd": ("", 80)}
X87_CONTROL = {"ldcw": 16, "stcw": 16, "stsw": 16, "ldenv": None, "stenv": None,
               "rstor": 32, "save": 32}
X87_NAMES = {"fneni": "feni8087_nop", "fndisi": "fdisi8087_nop", "fnsetpm": "fsetpm"}


def _x87(insn: Insn, s: _Spell) -> str:
    modrm = insn.modrm
    mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
    key = (insn.opcode, reg if mod != 3 else 8 + reg, None if mod != 3 else rm)
    found = X87_TABLE.get(key) or X87_TABLE.get((insn.opcode, key[1], "i"))
    if found is None:
        raise Unprintable(insn)
    name, op = found
    name = X87_NAMES.get(name, name)
    form = op.split(":")[1] if ":" in op else ""
    st = s.pct + f"st({rm})"
    st0 = s.pct + "st(0)"
    if mod != 3:
        if form in X87_MEMORY:
            suffix, size = X87_MEMORY[form]
            if form == "bcd":     # capstone writes Intel's size even in AT&T here
                return f"{name} tbyte ptr {s.mem(insn.mem, None)}"
            if s.att:
                return f"{name}{suffix} {s.mem(insn.mem, None)}"
            return f"{name} {s.mem(insn.mem, size)}"
        return f"{name} {s.mem(insn.mem, None if s.att else X87_CONTROL.get(op))}"
    if op == "stswax":
        return f"{name} {s.reg(16, 0)}"
    if name == "fstpnce":
        return f"{name} {st0}, {st}" if s.att else f"{name} {st}, {st0}"
    if form == "sti":
        if s.att:
            return f"{_att_reversed(name)} {st0}, {st}"
        return f"{name} {st}, {st0}"
    if form == "stip":
        return f"{_att_reversed(name) if s.att else name} {st}"
    if form in ("st0", "st") or op in ("xch", "free", "freep", "ucom", "ucomp"):
        return f"{name} {st}"
    return name


def _att_reversed(name: str) -> str:
    """AT&T's historical swap: with st(i) as destination, fsub means Intel's fsubr."""
    for a, b in (("fsubr", "fsub"), ("fdivr", "fdiv")):
        if name.startswith(a):
            return b + name[len(a):]
        if name.startswith(b):
            return a + name[len(b):]
    return name


def disassemble(data: bytes, address: int, code32: bool = True, count: int = 0,
                att: bool = False) -> list[tuple[int, int, str]]:
    """(address, length, text) of each instruction, up to the first the core cannot decode."""
    out = []
    pos = 0
    while pos < len(data) and (count <= 0 or len(out) < count):
        try:
            insn = decode(data[pos:pos + 15], (address + pos) & 0xFFFFFFFF, code32)
            line = text(insn, att)
        except (DecodeError, NeedBytes, Unprintable):
            break
        out.append((insn.eip, insn.length, line))
        pos += insn.length
    return out
