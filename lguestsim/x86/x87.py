"""The 387: the FPU's state and the execution of each instruction.

lguest's Host saves a Guest's FPU state only when the Guest actually uses the
FPU (CR0.TS and #NM, P:040); this module is the FPU that state belongs to, the
whole 387 as a 386 Guest of the time could use it (its opcode map, D8 to DF,
is in opcodes.py beside the 386's).  Eight registers hold
80-bit extended reals (x87_float.py does their arithmetic exactly on
integers, x87_transcendental.py the functions), addressed as a stack from
TOP, with a tag per register, the control word (masks, precision and
rounding control), the status word (exception flags, condition codes C0-C3,
TOP) and the pointers to the last instruction and operand, which
FNSTENV/FNSAVE write for an exception handler.

Exceptions are the 387's: a masked one gets the default response (the real
indefinite, an infinity, a denormal, a rounded result) and only leaves its
flag; an unmasked one sets ES and B too and is reported on the next waiting
FPU instruction (every ESC except the FN control ones, and WAIT): with CR0.NE
set as #MF (vector 16), the fault pointing at that next instruction.  With
NE clear a PC wires the 387's error line to IRQ 13 through the PIC; the
processor knows no PIC, so it calls ``fpu.ferr(cpu)`` when the machine has
set one (which may raise the interrupt) and otherwise carries on as if the
error line were ignored (IGNNE#); the error stays pending in ES until
FNCLEX, FNINIT or FNSAVE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import operands as O
from . import x87_float as F
from . import x87_transcendental as T
from .faults import CPUFault

EMPTY = 3
# status word bits beside the flags and TOP
C0, C1, C2, C3, ES, B = 0x100, 0x200, 0x400, 0x4000, 0x80, 0x8000
CC = C0 | C1 | C2 | C3
MF = 16

# The control instructions: they neither wait for a pending error nor move
# the instruction and operand pointers.
CONTROL = {"ldenv", "ldcw", "stenv", "stcw", "rstor", "save", "stsw", "stswax", "clex", "init"}
NO_WAIT = {"stenv", "stcw", "save", "stsw", "stswax", "clex", "init"}
NO_WAIT_MNEMONICS = {"fneni", "fndisi", "fnsetpm"}
# memory operand size in bytes, by the part after the colon
SIZES = {"m32": 4, "m64": 8, "m80": 10, "i16": 2, "i32": 4, "i64": 8, "bcd": 10}

# The constants as the 387 holds them, with more bits than a register: here
# 64 bits, a guard bit and a sticky bit (any further bits set), so that RC
# rounds them as it would the true value (FLDPI gives ...C235 rounding to
# nearest or up, ...C234 rounding down or toward zero).
CONSTANTS = {
    "fld1": (0, 0x3FFF, 0x8000000000000000 << 2),
    "fldl2t": (0, 0x4000, 0xD49A784BCD1B8AFE << 2 | 1),
    "fldl2e": (0, 0x3FFF, 0xB8AA3B295C17F0BB << 2 | 3),
    "fldpi": (0, 0x4000, 0xC90FDAA22168C234 << 2 | 3),
    "fldlg2": (0, 0x3FFD, 0x9A209A84FBCFF798 << 2 | 3),
    "fldln2": (0, 0x3FFE, 0xB17217F7D1CF79AB << 2 | 3),
    "fldz": (0, 0, 0),
}


@dataclass
class FPU:
    """The 387's registers: eight extended reals addressed relative to TOP,
    tags (here only empty or not: the others are derived from the value),
    control and status words, and the last instruction's pointers."""
    regs: list[int] = field(default_factory=lambda: [0] * 8)
    tags: list[int] = field(default_factory=lambda: [EMPTY] * 8)
    top: int = 0
    cw: int = 0x037F
    sw: int = 0          # the status word without TOP
    fip: int = 0
    fcs: int = 0
    fop: int = 0
    fdp: int = 0
    fds: int = 0
    ferr: Callable | None = None   # the error line when CR0.NE is clear (see above)

    def reset(self) -> None:
        """FNINIT: the registers keep their bits but are all empty."""
        self.tags = [EMPTY] * 8
        self.top = 0
        self.cw = 0x037F
        self.sw = 0
        self.fip = self.fcs = self.fop = self.fdp = self.fds = 0

    def status(self) -> int:
        return (self.sw & ~0x3800) | (self.top << 11)

    def reg(self, i: int) -> int:
        """ST(i) as its 80 bits."""
        return self.regs[(self.top + i) & 7]

    def st(self, i: int) -> float:
        """ST(i) as a Python float, for display and tests."""
        return F.to_float(self.reg(i))

    def empty(self, i: int) -> bool:
        return self.tags[(self.top + i) & 7] == EMPTY

    def set(self, i: int, v: int) -> None:
        p = (self.top + i) & 7
        self.regs[p] = v
        self.tags[p] = 0

    def pop(self) -> None:
        self.tags[self.top] = EMPTY
        self.top = (self.top + 1) & 7

    def tag_word(self) -> int:
        tw = 0
        for p in range(8):
            t = self.tags[p]
            if t != EMPTY:
                k = F.kind(self.regs[p])
                t = 0 if k == F.NORMAL else (1 if k == F.ZERO else 2)
            tw |= t << (2 * p)
        return tw

    def set_tag_word(self, tw: int) -> None:
        self.tags = [EMPTY if (tw >> (2 * p)) & 3 == EMPTY else 0 for p in range(8)]

    def update_es(self) -> None:
        """ES (and B, which on the 387 follows it) say an unmasked exception is pending."""
        if self.sw & ~self.cw & 0x3F:
            self.sw |= ES | B
        else:
            self.sw &= ~(ES | B)

    # -- exceptions ------------------------------------------------------
    def signal(self, c: F.Rounding, c1: bool | None = None) -> bool:
        """Record the flags an operation raised; C1 from its rounding (or
        ``c1`` for a stack fault).  True when an unmasked invalid, denormal or
        zero-divide exception forbids writing the result."""
        flags = c.flags
        self.sw &= ~C1
        if flags & F.SF:
            if c1:
                self.sw |= C1
        elif c.up and flags & F.PE:
            self.sw |= C1
        self.sw |= flags & 0x7F
        if flags & ~self.cw & 0x3F:
            self.sw |= ES | B
        return bool(flags & ~self.cw & (F.IE | F.DE | F.ZE))

    def ctx(self, pc: bool = False) -> F.Rounding:
        return F.rounding(self.cw, pc)


# ------------------------------------------------------------ execution

#: P:048 An exception of the 387 is two things: a flag in the status word,
# which stays set until FNCLEX, and, when its mask bit in the control word is
# clear, an error the program must hear about.  Masked, the 387 just carries
# on with a default answer: the real indefinite (a quiet NaN) for an invalid
# operation, an infinity for a division by zero, a rounded or denormal
# result.  Unmasked, it leaves the operands alone, sets ES, and waits: the
# error surfaces at the next FPU instruction that waits for the 387 (every
# one but the FN control instructions, and WAIT itself), which then faults
# with #MF before it runs, so the handler sees the state the bad
# instruction left and FNSTENV's pointers say which one it was.
def wait(cpu) -> None:
    """What a waiting instruction does first: report a pending unmasked error."""
    f = cpu.fpu
    if f.sw & ES:
        if cpu.cr0 & 0x20:           # NE: the error as exception 16
            raise CPUFault(MF)
        if f.ferr is not None:
            f.ferr(cpu)


def execute(cpu, insn) -> None:
    """Run one x87 instruction (the caller has checked CR0.EM and TS)."""
    op, arg = insn.fpu
    f = cpu.fpu
    if op not in NO_WAIT and insn.mnemonic not in NO_WAIT_MNEMONICS:
        wait(cpu)
    name, _, form = op.partition(":")
    la = None
    if insn.mem is not None:
        size = SIZES.get(form, 2)
        if name in ("ldenv", "stenv"):
            size = 28 if insn.op32 else 14
        elif name in ("save", "rstor"):
            size = 108 if insn.op32 else 94
        write = name in ("st", "stp", "stenv", "save", "stcw", "stsw")
        la = O.linear(cpu, insn, 8 * size, write)
    if op not in CONTROL:
        _pointers(cpu, f, insn, la)
    HANDLERS[name](cpu, f, insn, form, arg, la)


def _pointers(cpu, f: FPU, insn, la: int | None) -> None:
    f.fip = insn.eip
    f.fcs = cpu.sregs[1].selector
    raw = insn.raw
    i = 0
    while raw[i] < 0xD8 or raw[i] > 0xDF:
        i += 1
    f.fop = ((raw[i] & 7) << 8) | raw[i + 1]
    if la is not None:
        f.fdp = O.effective_address(cpu, insn)
        f.fds = cpu.sregs[insn.mem.seg].selector


def _read(cpu, la: int, n: int) -> int:
    return int.from_bytes(cpu.read_linear(la, n), "little")


def _write(cpu, la: int, n: int, v: int) -> None:
    cpu.write_linear(la, (v & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))


def _underflow(f: FPU, c: F.Rounding) -> None:
    c.flags |= F.IE | F.SF


def _push(f: FPU, v: int, c: F.Rounding) -> None:
    """Push ``v``; onto a full stack, a stack overflow pushes the indefinite."""
    if not f.empty(-1):
        c.flags |= F.IE | F.SF
        if f.signal(c, True):
            return
        v = F.INDEFINITE
    elif f.signal(c):
        return
    f.top = (f.top - 1) & 7
    f.set(0, v)


def _load(cpu, f: FPU, form: str, la: int, c: F.Rounding, operand: bool = False) -> int:
    """A memory operand as an extended real (``operand``: for arithmetic or a
    compare, where an SNaN stays signalling until the operation sees it)."""
    if form == "m32":
        return F.from_memory(_read(cpu, la, 4), F.SINGLE, c, operand)
    if form == "m64":
        return F.from_memory(_read(cpu, la, 8), F.DOUBLE, c, operand)
    if form == "m80":
        return _read(cpu, la, 10)
    if form == "bcd":
        data = cpu.read_linear(la, 10)
        v = 0
        for b in reversed(data[:9]):
            v = v * 100 + (b >> 4) * 10 + (b & 15)
        return F.from_int(v) | ((data[9] >> 7) << 79)
    bits = {"i16": 16, "i32": 32, "i64": 64}[form]
    v = _read(cpu, la, bits // 8)
    return F.from_int(v - (1 << bits) if v >> (bits - 1) else v)


# -- loads and stores ----------------------------------------------------

def _ld(cpu, f: FPU, insn, form: str, arg, la) -> None:
    c = f.ctx()
    if form == "st":
        if f.empty(arg):
            _underflow(f, c)
            v = F.INDEFINITE
        else:
            v = f.reg(arg)
    else:
        v = _load(cpu, f, form, la, c)
    _push(f, v, c)


def _const(cpu, f: FPU, insn, form, arg, la) -> None:
    c = f.ctx()
    s, e, m66 = CONSTANTS[insn.mnemonic]
    if m66:
        q, _ = F.round_int(0, m66, 2, c)
        v = F.pack(s, e, q) if q >> 64 == 0 else F.pack(s, e + 1, q >> 1)
    else:
        v = 0
    c.up = False
    c.flags &= ~F.PE
    _push(f, v, c)


def _store_value(cpu, f: FPU, form: str, la: int, v: int, c: F.Rounding) -> bool:
    """Convert ST0 for memory and write it, unless an unmasked exception
    forbids it (invalid, overflow or underflow); False then."""
    n = SIZES[form]
    if form in ("m32", "m64"):
        bits = F.to_memory(v, F.SINGLE if form == "m32" else F.DOUBLE, c)
    elif form == "m80":
        bits = v
    elif form == "bcd":
        r = F.to_int(v, c, 64)
        if r is None or abs(r) > 10 ** 18 - 1:
            if r is not None:
                c.flags = (c.flags & ~F.PE) | F.IE
            data = bytes(7) + b"\xc0\xff\xff"
        else:
            digits = f"{abs(r):018d}"
            data = bytes(int(digits[16 - 2 * i: 18 - 2 * i], 16) for i in range(9))
            data += b"\x80" if r < 0 or (r == 0 and v >> 79) else b"\x00"
        if f.signal(c) or c.flags & ~f.cw & (F.OE | F.UE):
            return False
        cpu.write_linear(la, data)
        return True
    else:
        nbits = {"i16": 16, "i32": 32, "i64": 64}[form]
        r = F.to_int(v, c, nbits)
        bits = (1 << (nbits - 1)) if r is None else r
    if f.signal(c) or c.flags & ~f.cw & (F.OE | F.UE):
        return False
    _write(cpu, la, n, bits)
    return True


def _st(cpu, f: FPU, insn, form: str, arg, la, pop: bool = False) -> None:
    c = f.ctx()
    if f.empty(0):
        _underflow(f, c)
        v = F.INDEFINITE
        if form == "st":
            if f.signal(c):
                return
            f.set(arg, v)
        elif not _store_value(cpu, f, form, la, v, c):
            return
        if pop:
            f.pop()
        return
    v = f.reg(0)
    if form == "st":
        f.signal(c)
        f.set(arg, v)
    elif not _store_value(cpu, f, form, la, v, c):
        return
    if pop:
        f.pop()


def _stp(cpu, f, insn, form, arg, la) -> None:
    _st(cpu, f, insn, form, arg, la, pop=True)


def _xch(cpu, f: FPU, insn, form, arg, la) -> None:
    c = f.ctx()
    a = F.INDEFINITE if f.empty(0) else f.reg(0)
    b = F.INDEFINITE if f.empty(arg) else f.reg(arg)
    if f.empty(0) or f.empty(arg):
        _underflow(f, c)
    if f.signal(c):
        return
    f.set(0, b)
    f.set(arg, a)


def _free(cpu, f: FPU, insn, form, arg, la) -> None:
    f.tags[(f.top + arg) & 7] = EMPTY


def _freep(cpu, f: FPU, insn, form, arg, la) -> None:
    _free(cpu, f, insn, form, arg, la)
    f.pop()


# -- arithmetic ----------------------------------------------------------

def _compute(name: str, a: int, b: int, c: F.Rounding) -> int:
    if name == "add":
        return F.add(a, b, c)
    if name == "mul":
        return F.mul(a, b, c)
    if name == "sub":
        return F.sub(a, b, c)
    if name == "subr":
        return F.sub(b, a, c)
    if name == "div":
        return F.div(a, b, c)
    return F.div(b, a, c)


def _arith(cpu, f: FPU, insn, form: str, arg, la) -> None:
    """dst = dst op src: ST0 op memory or st(i), or st(i) op ST0 (and pop)."""
    name = insn.fpu[0].partition(":")[0]
    c = f.ctx(pc=True)
    dst = arg if form in ("sti", "stip") else 0
    if form in ("st0", "sti", "stip"):
        src_i = 0 if dst else arg
        if f.empty(dst) or f.empty(src_i):
            _underflow(f, c)
            r = F.INDEFINITE
        else:
            r = _compute(name, f.reg(dst), f.reg(src_i), c)
    else:
        src = _load(cpu, f, form, la, c, operand=True)
        if f.empty(0):
            _underflow(f, c)
            r = F.INDEFINITE
        else:
            r = _compute(name, f.reg(0), src, c)
    if f.signal(c):
        return
    f.set(dst, r)
    if form == "stip":
        f.pop()


def _unary(fn: Callable) -> Callable:
    def run(cpu, f: FPU, insn, form, arg, la) -> None:
        c = f.ctx(pc=fn is F.sqrt)
        if f.empty(0):
            _underflow(f, c)
            r = F.INDEFINITE
        else:
            r = fn(f.reg(0), c)
        if f.signal(c):
            return
        f.set(0, r)
    return run


def _scale(cpu, f: FPU, insn, form, arg, la) -> None:
    c = f.ctx()
    if f.empty(0) or f.empty(1):
        _underflow(f, c)
        r = F.INDEFINITE
    else:
        r = F.scale(f.reg(0), f.reg(1), c)
    if not f.signal(c):
        f.set(0, r)


def _xtract(cpu, f: FPU, insn, form, arg, la) -> None:
    c = f.ctx()
    over = False
    if f.empty(0):
        _underflow(f, c)
        e = m = F.INDEFINITE
    elif not f.empty(-1):
        c.flags |= F.IE | F.SF
        over = True
        e = m = F.INDEFINITE
    else:
        e, m = F.xtract(f.reg(0), c)
    if f.signal(c, over):
        return
    f.set(0, e)
    f.top = (f.top - 1) & 7
    f.set(0, m)


def _prem(cpu, f: FPU, insn, form, arg, la) -> None:
    c = f.ctx()
    nearest = insn.fpu[0] == "prem1"
    if f.empty(0) or f.empty(1):
        _underflow(f, c)
        r, q = F.INDEFINITE, 0
    else:
        r, q = F.remainder(f.reg(0), f.reg(1), c, nearest)
    if f.signal(c):
        return
    f.set(0, r)
    if q is None:
        f.sw |= C2
    else:
        f.sw = (f.sw & ~CC) | (C0 if q & 4 else 0) | (C3 if q & 2 else 0) | (C1 if q & 1 else 0)


def _chs_abs(cpu, f: FPU, insn, form, arg, la) -> None:
    c = f.ctx()
    if f.empty(0):
        _underflow(f, c)
        if not f.signal(c):
            f.set(0, F.INDEFINITE)
        return
    f.signal(c)
    v = f.reg(0)
    f.set(0, v ^ F.SIGN if insn.fpu[0] == "chs" else v & ~F.SIGN)


# -- compares and examine ------------------------------------------------

_CC = {-1: C0, 0: C3, 1: 0, 2: C0 | C2 | C3}


def _compare(f: FPU, a: int | None, b: int | None, quiet: bool, pops: int,
             c: F.Rounding | None = None) -> None:
    c = c or f.ctx()
    if a is None or b is None:
        _underflow(f, c)
        r = 2
    else:
        r = F.compare(a, b, c, quiet)
    f.sw = (f.sw & ~(C0 | C2 | C3)) | _CC[r]
    if f.signal(c):
        return
    for _ in range(pops):
        f.pop()


def _com(cpu, f: FPU, insn, form: str, arg, la) -> None:
    """FCOM/FCOMP with st(i) or memory, FICOM/FICOMP (a memory denormal
    raises DE as it is loaded)."""
    c = f.ctx()
    a = None if f.empty(0) else f.reg(0)
    if form == "st0":
        b = None if f.empty(arg) else f.reg(arg)
    else:
        b = _load(cpu, f, form, la, c, operand=True)
    _compare(f, a, b, False, 1 if insn.fpu[0].startswith("comp") else 0, c)


def _compp(cpu, f: FPU, insn, form, arg, la) -> None:
    a = None if f.empty(0) else f.reg(0)
    b = None if f.empty(1) else f.reg(1)
    _compare(f, a, b, insn.fpu[0] == "ucompp", 2)


def _ucom(cpu, f: FPU, insn, form, arg, la) -> None:
    a = None if f.empty(0) else f.reg(0)
    b = None if f.empty(arg) else f.reg(arg)
    _compare(f, a, b, True, 1 if insn.fpu[0] == "ucomp" else 0)


def _tst(cpu, f: FPU, insn, form, arg, la) -> None:
    _compare(f, None if f.empty(0) else f.reg(0), 0, False, 0)


_XAM = {F.UNSUPPORTED: 0, F.QNAN: C0, F.SNAN: C0, F.NORMAL: C2, F.INFINITY: C2 | C0,
        F.ZERO: C3, F.DENORMAL: C3 | C2}


def _xam(cpu, f: FPU, insn, form, arg, la) -> None:
    v = f.reg(0)
    cc = (C3 | C0) if f.empty(0) else _XAM[F.kind(v)]
    f.sw = (f.sw & ~CC) | cc | (C1 if v >> 79 else 0)


# -- transcendental ------------------------------------------------------

def _function(cpu, f: FPU, insn, form, arg, la) -> None:
    """The function unit: one or two operands in, one or two results out."""
    name = insn.fpu[0]
    c = f.ctx()
    args = 2 if name in ("fyl2x", "fyl2xp1", "fpatan") else 1
    pushes = name in ("fptan", "fsincos")
    over = False
    if any(f.empty(i) for i in range(args)):
        _underflow(f, c)
        results = (F.INDEFINITE, F.INDEFINITE) if pushes else (F.INDEFINITE,)
    elif pushes and not f.empty(-1):
        c.flags |= F.IE | F.SF
        over = True
        results = (F.INDEFINITE, F.INDEFINITE)
    else:
        results = T.FUNCTIONS[name](*(f.reg(i) for i in range(args)), c)
        if results is None:            # out of range: C2, operand unchanged
            f.signal(c)
            f.sw |= C2
            return
    if f.signal(c, over):
        return
    f.sw &= ~C2
    if args == 2:
        f.pop()
    f.set(0, results[0])
    if pushes:
        f.top = (f.top - 1) & 7
        f.set(0, results[1])


# -- control -------------------------------------------------------------

def _ldcw(cpu, f: FPU, insn, form, arg, la) -> None:
    f.cw = _read(cpu, la, 2)
    f.update_es()


def _stcw(cpu, f: FPU, insn, form, arg, la) -> None:
    _write(cpu, la, 2, f.cw)


def _stsw(cpu, f: FPU, insn, form, arg, la) -> None:
    _write(cpu, la, 2, f.status())


def _stswax(cpu, f: FPU, insn, form, arg, la) -> None:
    cpu.eax = (cpu.eax & 0xFFFF0000) | f.status()


def _clex(cpu, f: FPU, insn, form, arg, la) -> None:
    f.sw &= 0x7F00


def _init(cpu, f: FPU, insn, form, arg, la) -> None:
    f.reset()


def _nop(cpu, f: FPU, insn, form, arg, la) -> None:
    pass


def _stack(cpu, f: FPU, insn, form, arg, la) -> None:
    f.top = (f.top + (1 if insn.fpu[0] == "incstp" else -1)) & 7
    f.sw &= ~CC


def environment(cpu, f: FPU, op32: bool) -> bytes:
    """The environment as FNSTENV writes it: 28 bytes (32-bit operand size)
    or 14, in the protected-mode or the real-mode layout."""
    real = not cpu.protected or cpu.eflags & 0x20000
    cw, sw, tw = f.cw, f.status(), f.tag_word()
    if real:
        # real-mode pointers are addresses: selector * 16 + offset
        ip, dp = ((f.fcs << 4) + f.fip) & 0xFFFFFFFF, ((f.fds << 4) + f.fdp) & 0xFFFFFFFF
        if op32:
            words = (cw, sw, tw, ip & 0xFFFF, ((ip >> 16) << 12) | f.fop, dp & 0xFFFF,
                     (dp >> 16) << 12)
            return b"".join((w | (0xFFFF0000 if i in (0, 1, 2, 3, 5) else 0)).to_bytes(4, "little")
                            for i, w in enumerate(words))
        words = (cw, sw, tw, ip & 0xFFFF, ((ip >> 16) & 0xF) << 12 | f.fop, dp & 0xFFFF,
                 ((dp >> 16) & 0xF) << 12)
        return b"".join(w.to_bytes(2, "little") for w in words)
    if op32:
        words = (cw | 0xFFFF0000, sw | 0xFFFF0000, tw | 0xFFFF0000, f.fip,
                 f.fcs | (f.fop << 16), f.fdp, f.fds | 0xFFFF0000)
        return b"".join(w.to_bytes(4, "little") for w in words)
    words = (cw, sw, tw, f.fip & 0xFFFF, f.fcs, f.fdp & 0xFFFF, f.fds)
    return b"".join(w.to_bytes(2, "little") for w in words)


def load_environment(cpu, f: FPU, data: bytes, op32: bool) -> None:
    w = 4 if op32 else 2
    word = [int.from_bytes(data[i * w: i * w + 2], "little") for i in range(7)]
    hi = [int.from_bytes(data[i * w: i * w + w], "little") for i in range(7)]
    f.cw, sw, tw = word[0], word[1], word[2]
    f.top = (sw >> 11) & 7
    f.sw = sw & ~0x3800
    f.set_tag_word(tw)
    if not cpu.protected or cpu.eflags & 0x20000:
        f.fop = hi[4] & 0x7FF
        f.fip = (word[3] | ((hi[4] >> 12) << 16)) if op32 else (word[3] | ((word[4] >> 12) << 16))
        f.fdp = (word[5] | ((hi[6] >> 12) << 16)) if op32 else (word[5] | ((word[6] >> 12) << 16))
        f.fcs = f.fds = 0
    else:
        f.fip = hi[3]
        f.fcs = word[4]
        f.fop = (hi[4] >> 16) & 0x7FF if op32 else f.fop
        f.fdp = hi[5]
        f.fds = word[6]
    f.update_es()


def _stenv(cpu, f: FPU, insn, form, arg, la) -> None:
    cpu.write_linear(la, environment(cpu, f, insn.op32))
    f.cw |= 0x3F      # FNSTENV masks every exception, as the 387 does


def _ldenv(cpu, f: FPU, insn, form, arg, la) -> None:
    n = 28 if insn.op32 else 14
    load_environment(cpu, f, cpu.read_linear(la, n), insn.op32)


def _save(cpu, f: FPU, insn, form, arg, la) -> None:
    data = environment(cpu, f, insn.op32)
    data += b"".join(f.reg(i).to_bytes(10, "little") for i in range(8))
    cpu.write_linear(la, data)
    f.reset()


def _rstor(cpu, f: FPU, insn, form, arg, la) -> None:
    n = 28 if insn.op32 else 14
    data = cpu.read_linear(la, n + 80)
    load_environment(cpu, f, data[:n], insn.op32)
    for i in range(8):
        f.regs[(f.top + i) & 7] = int.from_bytes(data[n + 10 * i: n + 10 * i + 10], "little")


HANDLERS: dict[str, Callable] = {
    "ld": _ld, "st": _st, "stp": _stp, "const": _const, "xch": _xch, "free": _free,
    "freep": _freep,
    **{n: _arith for n in ("add", "mul", "sub", "subr", "div", "divr")},
    "com": _com, "comp": _com, "compp": _compp, "ucompp": _compp, "ucom": _ucom, "ucomp": _ucom,
    "tst": _tst, "xam": _xam, "chs": _chs_abs, "abs": _chs_abs,
    "sqrt": _unary(F.sqrt), "rndint": _unary(F.round_to_int), "scale": _scale,
    "xtract": _xtract, "prem": _prem, "prem1": _prem,
    **{n: _function for n in T.FUNCTIONS},
    "ldcw": _ldcw, "stcw": _stcw, "stsw": _stsw, "stswax": _stswax, "clex": _clex,
    "init": _init, "nop": _nop, "incstp": _stack, "decstp": _stack,
    "ldenv": _ldenv, "stenv": _stenv, "save": _save, "rstor": _rstor,
}
