"""Operand access for instructions carried out by Python helpers.

The translator inlines operand access into generated code for the common
instructions; the rarer ones (segment loads, far transfers, string and system
instructions) are plain Python functions that call these.
"""

from __future__ import annotations

from .decode import Insn

M32 = 0xFFFFFFFF
SIZE_MASK = {8: 0xFF, 16: 0xFFFF, 32: M32}


def get_reg(cpu, size: int, n: int) -> int:
    if size == 32:
        return cpu.r[n]
    if size == 16:
        return cpu.r[n] & 0xFFFF
    if n < 4:
        return cpu.r[n] & 0xFF
    return (cpu.r[n - 4] >> 8) & 0xFF


def set_reg(cpu, size: int, n: int, value: int) -> None:
    r = cpu.r
    if size == 32:
        r[n] = value & M32
    elif size == 16:
        r[n] = (r[n] & 0xFFFF0000) | (value & 0xFFFF)
    elif n < 4:
        r[n] = (r[n] & 0xFFFFFF00) | (value & 0xFF)
    else:
        r[n - 4] = (r[n - 4] & 0xFFFF00FF) | ((value & 0xFF) << 8)


def effective_address(cpu, insn: Insn) -> int:
    m = insn.mem
    if m.addr32:
        a = m.disp
        if m.base is not None:
            a += cpu.r[m.base]
        if m.index is not None:
            a += cpu.r[m.index] * m.scale
        return a & M32
    a = m.disp
    if m.base is not None:
        a += cpu.r[m.base] & 0xFFFF
    if m.index is not None:
        a += cpu.r[m.index] & 0xFFFF
    return a & 0xFFFF


def linear(cpu, insn: Insn, size: int, write: bool, offset: int = 0) -> int:
    """The linear address of the memory operand (plus ``offset`` bytes), checked."""
    ea = (effective_address(cpu, insn) + offset) & (M32 if insn.mem.addr32 else 0xFFFF)
    return cpu.seg_lin(insn.mem.seg, ea, size // 8, write)


def read(cpu, insn: Insn, op: tuple) -> int:
    kind = op[0]
    if kind == "r":
        return get_reg(cpu, op[1], op[2])
    if kind == "i":
        return op[2]
    if kind == "m":
        size = op[1] // 8
        return int.from_bytes(cpu.read_linear(linear(cpu, insn, op[1], False), size), "little")
    if kind == "s":
        return cpu.sregs[op[2]].selector
    raise ValueError(f"cannot read operand {op}")


def write(cpu, insn: Insn, op: tuple, value: int) -> None:
    kind = op[0]
    if kind == "r":
        set_reg(cpu, op[1], op[2], value)
    elif kind == "m":
        size = op[1] // 8
        cpu.write_linear(linear(cpu, insn, op[1], True),
                         (value & SIZE_MASK[op[1]]).to_bytes(size, "little"))
    else:
        raise ValueError(f"cannot write operand {op}")


def push(cpu, size: int, value: int) -> None:
    """Push ``size`` bytes on SS:(E)SP; ESP changes only if the write succeeds."""
    mask = M32 if cpu.sregs[2].big else 0xFFFF
    sp = (cpu.r[4] - size) & mask
    cpu.write_seg(2, sp, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
    cpu.r[4] = (cpu.r[4] & ~mask & M32) | sp


def pop(cpu, size: int) -> int:
    mask = M32 if cpu.sregs[2].big else 0xFFFF
    sp = cpu.r[4] & mask
    value = int.from_bytes(cpu.read_seg(2, sp, size), "little")
    cpu.r[4] = (cpu.r[4] & ~mask & M32) | ((sp + size) & mask)
    return value


def peek(cpu, size: int, index: int = 0) -> int:
    """The ``index``-th stack slot of ``size`` bytes, without popping."""
    mask = M32 if cpu.sregs[2].big else 0xFFFF
    sp = (cpu.r[4] + index * size) & mask
    return int.from_bytes(cpu.read_seg(2, sp, size), "little")
