"""Virtual-8086 mode: real-mode programs run as a task under protection.

With EFLAGS.VM set, a protected-mode 386 runs 8086 code: a segment register
holds a paragraph number (base = selector * 16, limit 64 KiB, no
descriptors), the code runs at CPL 3 under paging, and the instructions
that touch the interrupt flag (CLI, STI, PUSHF, POPF, INT n, IRET) trap
with #GP(0) unless IOPL is 3, so a monitor in ring 0 can emulate them.  VM
is set only by an IRET from ring 0 whose popped EFLAGS has it, or by a task
switch to a TSS whose EFLAGS has it; it is cleared by an interrupt or
exception, which always goes to ring 0 (interrupts.py pushes the 8086
segment registers and nulls them there).  lguest never uses the mode; the
core has it so that a Guest trying it meets the 386's rules.  SDM vol. 3,
chapter 15 (the 386 manual's chapter 15 too).
"""

from __future__ import annotations

from .faults import GP, CPUFault
from .flags import IOPL, VM, WRITABLE
from .segments import v86_segment

M32 = 0xFFFFFFFF


def sensitive(cpu) -> None:
    """CLI, STI, PUSHF, POPF, INT n and IRET in virtual-8086 mode need IOPL 3."""
    if cpu.v86 and cpu._ef & IOPL != IOPL:
        raise CPUFault(GP, 0)


#: P:045 The only way into virtual-8086 mode from ring 0 is IRET.  When the
# EFLAGS image an IRET pops at CPL 0 has VM set, the frame is longer: after
# EIP, CS and EFLAGS come ESP and SS of the 8086 program, then its ES, DS,
# FS and GS, every one a dword.  All six segment registers are loaded the
# 8086 way, base = selector * 16 with a 64 KiB limit, and the CPU runs at
# CPL 3.  At any CPL but 0 the VM bit of the image is simply ignored, as
# IOPL is at CPL > 0, so ring 1 code such as lguest's Guest kernel cannot
# get there by building a frame.
def enter_from_iret(cpu, sp: int, smask: int) -> None:
    """Finish an IRET at CPL 0 whose popped EFLAGS has VM set (32-bit frame at SS:sp)."""
    words = [int.from_bytes(cpu.read_seg(2, (sp + 4 * i) & smask, 4), "little")
             for i in range(9)]
    eip, cs, flags, esp, ss, es, ds, fs, gs = words
    cpu.eflags = flags & (WRITABLE | VM)
    for sreg, sel in ((0, es), (2, ss), (3, ds), (4, fs), (5, gs)):
        cpu.set_segment(sreg, v86_segment(sel & 0xFFFF))
    cpu.set_cs(v86_segment(cs & 0xFFFF, code=True), 3)
    cpu.r[4] = esp & M32
    cpu.eip = eip & 0xFFFF


def iret(cpu, op32: bool) -> None:
    """IRET inside virtual-8086 mode: the real-mode pops, allowed only at IOPL 3."""
    sensitive(cpu)
    size = 4 if op32 else 2
    sp = cpu.r[4] & 0xFFFF
    eip, cs, flags = (int.from_bytes(cpu.read_seg(2, (sp + i * size) & 0xFFFF, size), "little")
                      for i in range(3))
    if eip > 0xFFFF:
        raise CPUFault(GP, 0)
    old = cpu.eflags
    # IOPL stays (CPL 3), and so does VM; a 16-bit IRET changes the low half only.
    keep = IOPL | VM | (0 if op32 else ~0xFFFF & M32)
    cpu.eflags = (old & keep) | (flags & WRITABLE & ~keep)
    cpu.set_cs(v86_segment(cs & 0xFFFF, code=True), 3)
    cpu.eip = eip
    cpu.r[4] = (cpu.r[4] & 0xFFFF0000) | ((sp + 3 * size) & 0xFFFF)


def far_return(cpu, op32: bool, pop_extra: int) -> None:
    """RETF in virtual-8086 mode: the real-mode pops, CS an 8086 segment."""
    size = 4 if op32 else 2
    sp = cpu.r[4] & 0xFFFF
    eip, cs = (int.from_bytes(cpu.read_seg(2, (sp + i * size) & 0xFFFF, size), "little")
               for i in range(2))
    if eip > 0xFFFF:
        raise CPUFault(GP, 0)
    cpu.set_cs(v86_segment(cs & 0xFFFF, code=True), 3)
    cpu.eip = eip
    cpu.r[4] = (cpu.r[4] & 0xFFFF0000) | ((sp + 2 * size + pop_extra) & 0xFFFF)
