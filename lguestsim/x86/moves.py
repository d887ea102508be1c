"""Data movement and the stack: mov and its kin, exchanges, conversions, push and pop.

The 386 manual's "data transfer" instructions (mov, movzx, movsx, lea,
xchg, xadd, cmpxchg, bswap, cmovcc, cbw and the rest, xlat) and its stack
operations (push, pop, leave), written inline into their block by
translate.py.  A move to or from a segment, control or debug register, and a
push or pop of a segment register, change the processor's mode or tables:
those forms go to system.py, which checks them as the manual says.  The rare
pusha, popa, enter and cmpxchg8b are Python helpers below, which end their
block and work on the CPU object itself.
"""

from __future__ import annotations

from . import flags as F
from . import operands as O
from . import paging
from .decode import DS, Insn, Mem
from .emitter import M32, MASK, REGS, SIGN, STACK_SEG, Emitter
from .faults import CPUFault


def emit_mov(e: Emitter, insn: Insn) -> None:
    dst, src = insn.operands
    if dst[0] in ("s", "c", "d") or src[0] in ("c", "d"):
        return e.helper(insn)
    if src[0] == "s":
        # mov r/m16, sreg: a 32-bit register destination gets the selector zero-extended
        v = e.tmp("v")
        e.emit(f"{v} = cpu.sregs[{src[2]}].selector")
        if dst[0] == "r":
            e.set_reg(32 if insn.op32 else 16, dst[2], v)
        else:
            e.write(insn, ("m", 16), v)
        return
    if dst[0] == "r" and dst[1] == 32 and src[0] == "m":
        e.read(insn, src, REGS[dst[2]])      # straight into the register
        return
    v = e.tmp("v")
    expr = e.value(insn, src, v)
    e.write(insn, dst, expr)


def emit_movzx(e: Emitter, insn: Insn) -> None:
    dst, src = insn.operands
    if dst[1] == 32 and src[0] == "m":
        e.read(insn, src, REGS[dst[2]])
        return
    v = e.tmp("v")
    e.set_reg(dst[1], dst[2], e.value(insn, src, v))


def emit_movsx(e: Emitter, insn: Insn) -> None:
    dst, src = insn.operands
    v = e.tmp("v")
    expr = e.value(insn, src, v)
    e.emit(f"{v} = {expr}")
    s = SIGN[src[1]]
    e.set_reg(dst[1], dst[2], f"({v} - {2 * s:#x} if {v} & {s:#x} else {v}) & {MASK[dst[1]]}")


def emit_lea(e: Emitter, insn: Insn) -> None:
    dst = insn.operands[0]
    ea = e.ea(insn)
    e.set_reg(dst[1], dst[2], ea if dst[1] == 32 else f"{ea} & 0xffff")


def emit_xchg(e: Emitter, insn: Insn) -> None:
    a_op, b_op = insn.operands
    a, b = e.tmp("a"), e.tmp("b")
    if a_op[0] == "m" or b_op[0] == "m":
        mem, reg = (a_op, b_op) if a_op[0] == "m" else (b_op, a_op)
        la = e.read(insn, mem, a, write=True)
        e.emit(f"{b} = {e.get_reg(reg[1], reg[2])}")
        e.write(insn, mem, b, la)
        e.set_reg(reg[1], reg[2], a)
        return
    e.emit(f"{a} = {e.get_reg(a_op[1], a_op[2])}")
    e.emit(f"{b} = {e.get_reg(b_op[1], b_op[2])}")
    e.set_reg(a_op[1], a_op[2], b)
    e.set_reg(b_op[1], b_op[2], a)


def emit_xadd(e: Emitter, insn: Insn) -> None:
    dst, src = insn.operands
    size = dst[1]
    a, b, r = e.tmp("a"), e.tmp("b"), e.tmp("r")
    la = e.read(insn, dst, a, write=True)
    e.emit(f"{b} = {e.get_reg(size, src[2])}")
    e.emit(f"{r} = ({a} + {b}) & {MASK[size]}")
    if dst[0] == "m":
        e.write(insn, dst, r, la)
        e.set_reg(size, src[2], a)
    else:
        e.set_reg(size, src[2], a)
        e.set_reg(size, dst[2], r)
    e.lazy(F.ADD, size, a, b, r)


def emit_cmpxchg(e: Emitter, insn: Insn) -> None:
    dst, src = insn.operands
    size = dst[1]
    a, b, r = e.tmp("a"), e.tmp("b"), e.tmp("r")
    d = e.tmp("d")
    la = e.read(insn, dst, d, write=True)
    e.emit(f"{a} = {e.get_reg(size, 0)}")
    e.emit(f"{b} = {d}")
    e.emit(f"{r} = ({a} - {b}) & {MASK[size]}")
    e.emit(f"if {r} == 0:")
    e.ind += 1
    e.write(insn, dst, e.get_reg(size, src[2]), la)
    e.ind -= 1
    e.emit("else:")
    e.ind += 1
    if dst[0] == "m":   # the processor always writes the destination back
        e.write(insn, dst, d, la)
    e.set_reg(size, 0, d)
    e.ind -= 1
    e.lazy(F.SUB, size, a, b, r)


def emit_bswap(e: Emitter, insn: Insn) -> None:
    r = REGS[insn.operands[0][2]]
    if not insn.op32:  # undefined; hardware clears the low word
        e.emit(f"{r} = {r} & 0xffff0000")
        return
    e.emit(f"{r} = int.from_bytes({r}.to_bytes(4, 'little'), 'big')")


def emit_cmovcc(e: Emitter, insn: Insn) -> None:
    dst, src = insn.operands
    v = e.tmp("v")
    expr = e.value(insn, src, v)  # the source is read (and may fault) either way
    c = e.cond(insn.cc)
    e.emit(f"if {c}:")
    e.ind += 1
    e.set_reg(dst[1], dst[2], expr)
    e.ind -= 1
    if dst[1] == 32:
        return
    # (a 16-bit cmov leaves the register alone when false)


def emit_extend(e: Emitter, insn: Insn) -> None:
    m = insn.mnemonic
    if m == "cbw":
        e.set_reg(16, 0, "(eax & 0xff) | (0xff00 if eax & 0x80 else 0)")
    elif m == "cwde":
        e.set_reg(32, 0, "(eax & 0xffff) | (0xffff0000 if eax & 0x8000 else 0)")
    elif m == "cwd":
        e.set_reg(16, 2, "0xffff if eax & 0x8000 else 0")
    else:
        e.set_reg(32, 2, "0xffffffff if eax & 0x80000000 else 0")


def emit_xlat(e: Emitter, insn: Insn) -> None:
    insn.mem = Mem(DS if insn.seg is None else insn.seg, 3, None, 1, 0, insn.addr32)
    off = e.tmp("o")
    mask = "0xffffffff" if insn.addr32 else "0xffff"
    e.emit(f"{off} = ({e.get_reg(32 if insn.addr32 else 16, 3)} + (eax & 0xff)) & {mask}")
    e.may_fault()
    la = e.linear(insn.mem.seg, off, 8, False)
    v = e.tmp("v")
    e.load(la, 8, v)
    e.set_reg(8, 0, v)


def emit_push(e: Emitter, insn: Insn) -> None:
    op = insn.operands[0]
    size = 32 if insn.op32 else 16
    if op[0] == "s":
        return e.helper(insn)
    v = e.tmp("v")
    if op[0] == "i":
        expr = e.live.get(e.idx) or f"{op[2] & ((1 << size) - 1):#x}"
    else:
        # (A register is read as it was: the store comes before ESP changes.)
        expr = e.value(insn, op, v)
    e.push(size, expr)


def emit_pop(e: Emitter, insn: Insn) -> None:
    op = insn.operands[0]
    if op[0] != "r":
        return e.helper(insn)
    size = op[1]
    v = e.tmp("v")
    sp = e.pop_value(size, v)
    e.commit_sp(sp)
    e.set_reg(size, op[2], v)


def emit_leave(e: Emitter, insn: Insn) -> None:
    size = 32 if insn.op32 else 16
    # ESP = EBP, then pop EBP; done on copies so a fault leaves both alone.
    v, sp = e.tmp("v"), e.tmp("sp")
    e.may_fault()
    base = "ebp" if e.stack32 else "(ebp & 0xffff)"
    la = e.linear(STACK_SEG, base, size, False)
    e.load(la, size, v)
    e.emit(f"{sp} = ({base} + {size // 8}) & {e.sp_mask()}")
    e.commit_sp(sp)
    e.set_reg(size, 5, v)


def emit_nop(e: Emitter, insn: Insn) -> None:
    pass


EMIT = {
    "mov": emit_mov, "movzx": emit_movzx, "movsx": emit_movsx, "lea": emit_lea,
    "xchg": emit_xchg, "xadd": emit_xadd, "cmpxchg": emit_cmpxchg, "bswap": emit_bswap,
    "cbw": emit_extend, "cwde": emit_extend, "cwd": emit_extend, "cdq": emit_extend,
    "xlatb": emit_xlat, "push": emit_push, "pop": emit_pop, "leave": emit_leave, "nop": emit_nop,
}
EMIT.update({"cmov" + c: emit_cmovcc for c in F.CC_NAMES})


# The rare ones, carried out in Python at the end of their block.
def cmpxchg8b(cpu, insn: Insn):
    la = O.linear(cpu, insn, 64, True)
    cur = int.from_bytes(cpu.read_linear(la, 8), "little")
    want = (cpu.r[2] << 32) | cpu.r[0]
    ef = cpu.eflags
    if cur == want:
        cpu.write_linear(la, ((cpu.r[1] << 32) | cpu.r[3]).to_bytes(8, "little"))
        cpu.eflags = ef | 0x40
    else:
        cpu.write_linear(la, cur.to_bytes(8, "little"))
        cpu.r[0], cpu.r[2] = cur & M32, cur >> 32
        cpu.eflags = ef & ~0x40
    return None


def pusha(cpu, insn: Insn):
    size = 4 if insn.op32 else 2
    saved = cpu.r[4]
    vals = [O.get_reg(cpu, size * 8, i) for i in range(8)]
    try:
        for v in vals:
            O.push(cpu, size, v)
    except CPUFault:
        cpu.r[4] = saved
        raise
    return None


def popa(cpu, insn: Insn):
    size = 4 if insn.op32 else 2
    vals = [O.peek(cpu, size, i) for i in range(8)]
    for _ in range(8):
        O.pop(cpu, size)
    for i, v in zip((7, 6, 5, 4, 3, 2, 1, 0), vals, strict=True):
        if i != 4:
            O.set_reg(cpu, size * 8, i, v)
    return None


def enter(cpu, insn: Insn):
    """ENTER as the SDM and a 386 do it: the frame pointer is the whole ESP for
    32-bit operands (even on a 16-bit stack, where only SP moves), and the
    final SS:(E)SP is probed for a write, paging included, before anything
    changes."""
    size = 4 if insn.op32 else 2
    alloc = insn.operands[0][2]
    level = insn.operands[1][2] & 31
    saved_sp, saved_bp = cpu.r[4], cpu.r[5]
    smask = M32 if cpu.sregs[2].big else 0xFFFF
    try:
        O.push(cpu, size, O.get_reg(cpu, size * 8, 5))
        frame = cpu.r[4] if size == 4 else cpu.r[4] & 0xFFFF
        bp = cpu.r[5] & smask
        for _ in range(1, level):
            bp = (bp - size) & smask
            O.push(cpu, size, int.from_bytes(cpu.read_seg(2, bp, size), "little"))
        if level:
            O.push(cpu, size, frame)
        new_sp = ((cpu.r[4] & smask) - alloc) & smask
        la = cpu.seg_lin(2, new_sp, size, True)
        paging.translate(cpu, la, True, cpu.cpl == 3)
        if (la & 0xFFF) + size > 0x1000:
            paging.translate(cpu, la + size - 1, True, cpu.cpl == 3)
    except CPUFault:
        cpu.r[4], cpu.r[5] = saved_sp, saved_bp
        raise
    O.set_reg(cpu, size * 8, 5, frame)
    cpu.r[4] = (cpu.r[4] & ~smask & M32) | new_sp
    return None


HELPERS = {"cmpxchg8b": cmpxchg8b, "pusha": pusha, "pushad": pusha, "popa": popa, "popad": popa,
           "enter": enter}
