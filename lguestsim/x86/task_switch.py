"""Hardware task switches: the 386's own way of changing from one task to another.

A task is a TSS, a Task State Segment: a block of memory holding a whole
register set, named by a TSS descriptor in the GDT.  A far JMP or CALL to a
TSS descriptor (or to a task gate, which names one), an interrupt or
exception whose IDT entry is a task gate, and an IRET with EFLAGS.NT set
(back to the task that called this one) all switch tasks: the processor
saves the registers into the current TSS, loads them from the new one (CR3
and LDTR too), and sets CR0.TS so the next FPU instruction traps.  Linux,
and so lguest, switches tasks in software and uses one TSS per CPU only for
its ring 0 stack; the Host refuses a Guest's TSS descriptors, and this
module is what a 386 would do if it did not.  SDM vol. 3, chapter 7; the
checks follow its table 7-1 in order.
"""

from __future__ import annotations

import dataclasses

from . import segments, timing
from .faults import GP, NP, SS, TS, CPUFault
from .flags import NT, RF, VM
from .segments import BUSY, CONFORMING_OR_DOWN, WRITABLE_OR_READABLE, SegmentCache

M32 = 0xFFFFFFFF


@dataclasses.dataclass(frozen=True)
class TSSLayout:
    """Where a TSS keeps each register (byte offsets), 386 or 286 format."""

    width: int                       # bytes per register slot
    min_limit: int                   # a shorter TSS is a #TS
    eip: int
    eflags: int
    regs: int                        # EAX..EDI, one slot each
    segs: tuple[int | None, ...]     # ES CS SS DS FS GS (the 286 has no FS, GS)
    ldt: int
    cr3: int | None


TSS32 = TSSLayout(4, 0x67, 32, 36, 40, (72, 76, 80, 84, 88, 92), 96, 28)
TSS16 = TSSLayout(2, 0x2B, 14, 16, 18, (34, 36, 38, 40, None, None), 42, None)


def layout(tss_type: int) -> TSSLayout:
    return TSS32 if tss_type & 8 else TSS16


def _u(raw: bytes, off: int, width: int) -> int:
    return int.from_bytes(raw[off:off + width], "little")


def _write_descriptor_high(cpu, selector: int, high: int) -> None:
    cpu.write_sup((cpu.gdt_base + (selector & 0xFFF8) + 4) & M32, high.to_bytes(4, "little"))


def _descriptor_high(cpu, selector: int) -> int:
    return int.from_bytes(cpu.read_sup((cpu.gdt_base + (selector & 0xFFF8) + 4) & M32, 4),
                          "little")


def check_new_tss(cpu, selector: int, desc: segments.Descriptor, reason: str) -> None:
    """The checks made in the old task's context: present, not busy (busy for IRET), limit."""
    err = selector & 0xFFFC
    if not desc.present:
        raise CPUFault(NP, err)
    busy = bool(desc.type & BUSY)
    if reason == "iret" and not busy:
        raise CPUFault(TS, err)
    if reason != "iret" and busy:
        raise CPUFault(GP, err)
    if desc.limit < layout(desc.type).min_limit:
        raise CPUFault(TS, err)


#: P:044 A hardware task switch, the 386's way.  The new TSS must be
# present, busy only when an IRET returns to it (a task cannot be entered
# twice), and long enough: 104 bytes for a 386 TSS, 44 for a 286 one.  Every
# check and every read that can fault happens first, in the old task: the
# new TSS is read whole and the old one's save area is written in one piece,
# so a fault there leaves the old task exactly as it was.  Then the switch
# happens: the old task's EIP (just past the switching instruction),
# EFLAGS, general and segment registers go into its TSS; a JMP or IRET marks
# it no longer busy; a CALL, interrupt or exception writes the old TSS's
# selector into the new one's back link and sets NT, so that the new task's
# IRET comes back; TR takes the new TSS and CR0.TS is set.  Only then are
# the new task's LDT, code, stack and data segments checked, and a fault
# there (#TS with the selector, #NP, #SS) belongs to the new task: it is
# delivered with the new task's registers, as on the real chip.
def switch_tasks(cpu, selector: int, desc: segments.Descriptor, reason: str,
                 return_eip: int) -> None:
    """Switch from the current task to the TSS ``selector``; ``reason`` is
    "jmp", "call", "int" or "iret"."""
    new = layout(desc.type)
    check_new_tss(cpu, selector, desc, reason)
    image = cpu.read_sup(desc.base, new.min_limit + 1)
    old_tr = cpu.tr_cache
    if not old_tr.valid:
        raise CPUFault(TS, old_tr.selector & 0xFFFC)
    old = layout(old_tr.access & 0xF)
    save_lo = old.eip
    save_hi = old.segs[5] + old.width if old.segs[5] is not None else old.segs[3] + old.width
    if old_tr.limit < save_hi - 1:
        raise CPUFault(TS, old_tr.selector & 0xFFFC)
    area = bytearray(cpu.read_sup((old_tr.base + save_lo) & M32, save_hi - save_lo))
    w = old.width
    eflags = cpu.eflags
    if reason == "iret":
        eflags &= ~NT

    def put(off: int, value: int, width: int = w) -> None:
        area[off - save_lo:off - save_lo + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(
            width, "little")
    put(old.eip, return_eip)
    put(old.eflags, eflags)
    for i in range(8):
        put(old.regs + i * w, cpu.r[i])
    for i, off in enumerate(old.segs):
        if off is not None:
            put(off, cpu.sregs[i].selector, 2)
    cpu.write_sup((old_tr.base + save_lo) & M32, bytes(area))

    # The switch itself.  From here on, faults belong to the new task.
    cpu.cycles += timing.TASK_SWITCH
    if reason in ("jmp", "iret"):
        _write_descriptor_high(cpu, old_tr.selector,
                               _descriptor_high(cpu, old_tr.selector) & ~(BUSY << 8))
    new_flags = _u(image, new.eflags, new.width)
    if reason in ("call", "int"):
        cpu.write_sup(desc.base & M32, old_tr.selector.to_bytes(2, "little"))
        new_flags |= NT
    if reason != "iret":
        desc.high |= BUSY << 8
        _write_descriptor_high(cpu, selector, desc.high)
    cpu.tr_cache = desc.cache(selector)
    cpu.cr0 = cpu.cr0 | 8                 # CR0.TS: the FPU state belongs to the old task
    if new.cr3 is not None and cpu.cr0 & 0x80000000:
        cpu.cr3 = _u(image, new.cr3, 4)
    _load_state(cpu, new, image, new_flags)


def _load_state(cpu, new: TSSLayout, image: bytes, new_flags: int) -> None:
    w = new.width
    if w == 2:
        # A 286 TSS has 16-bit registers; the 386 fills the high halves with ones.
        cpu.r[:] = [0xFFFF0000 | _u(image, new.regs + i * 2, 2) for i in range(8)]
        new_flags &= 0xFFFF
    else:
        cpu.r[:] = [_u(image, new.regs + i * 4, 4) for i in range(8)]
    cpu.eflags = new_flags & ~RF
    cpu.eip = _u(image, new.eip, w)
    sels = [(_u(image, off, 2) if off is not None else 0) for off in new.segs]
    ldt = _u(image, new.ldt, 2)
    # Selectors first, unchecked and unusable, so a fault below shows them.
    for i, sel in enumerate(sels):
        cpu.sregs[i] = SegmentCache(sel, 0, 0, 0, False, False, False)
    cpu.ldtr_cache = SegmentCache(ldt, 0, 0, 0, False, False, False)
    cpu._mode_changed()     # set_segment/set_cs compare with the mode: make it match
    v86 = bool(cpu.eflags & VM)
    cpl = 3 if v86 else sels[1] & 3
    cpu.set_cs(SegmentCache(sels[1], 0, 0, 0x9B, False, False, False), cpl)
    _load_ldt(cpu, ldt)
    if v86:
        for i, sel in enumerate(sels):
            cpu.set_segment(i, segments.v86_segment(sel, code=i == 1))
        cpu.set_cs(cpu.sregs[1], 3)
        return
    ss_sel, cs_sel = sels[2], sels[1]
    ss = segments.check_stack_segment(cpu, ss_sel, cpl, TS)
    segments.set_accessed(cpu, ss_sel, ss)
    cpu.set_segment(2, ss.cache(ss_sel))
    code = _check_code(cpu, cs_sel, cpl)
    segments.set_accessed(cpu, cs_sel, code)
    cpu.set_cs(code.cache(cs_sel), cpl)
    for i in (0, 3, 4, 5):
        _load_data(cpu, i, sels[i], cpl)
    if cpu.eip > code.limit:
        raise CPUFault(GP, 0)


def _load_ldt(cpu, ldt: int) -> None:
    if ldt & 0xFFFC == 0:
        return
    if ldt & 4:
        raise CPUFault(TS, ldt & 0xFFFC)
    desc = segments.fetch_descriptor(cpu, ldt, TS)
    if not desc.system or desc.type != segments.LDT_TYPE or not desc.present:
        raise CPUFault(TS, ldt & 0xFFFC)
    cpu.ldtr_cache = desc.cache(ldt)


def _check_code(cpu, sel: int, cpl: int) -> segments.Descriptor:
    err = sel & 0xFFFC
    if err == 0:
        raise CPUFault(TS, 0)
    desc = segments.fetch_descriptor(cpu, sel, TS)
    if not desc.is_code:
        raise CPUFault(TS, err)
    if desc.type & CONFORMING_OR_DOWN:
        if desc.dpl > cpl:
            raise CPUFault(TS, err)
    elif desc.dpl != cpl:
        raise CPUFault(TS, err)
    if not desc.present:
        raise CPUFault(NP, err)
    return desc


def _load_data(cpu, sreg: int, sel: int, cpl: int) -> None:
    err = sel & 0xFFFC
    if err == 0:
        return
    desc = segments.fetch_descriptor(cpu, sel, TS)
    if desc.system or (desc.is_code and not desc.type & WRITABLE_OR_READABLE):
        raise CPUFault(TS, err)
    if not (desc.is_code and desc.type & CONFORMING_OR_DOWN):
        if desc.dpl < cpl or desc.dpl < (sel & 3):
            raise CPUFault(TS, err)
    if not desc.present:
        raise CPUFault(NP, err)
    segments.set_accessed(cpu, sel, desc)
    cpu.set_segment(sreg, desc.cache(sel))


def task_gate_target(cpu, gate: segments.Descriptor, ext: int = 0) -> tuple[int, segments.Descriptor]:
    """The TSS a task gate names: in the GDT, an available TSS (#GP), present (#NP)."""
    sel = gate.gate_selector
    err = (sel & 0xFFFC) | ext
    if sel & 4 or sel & 0xFFFC == 0:
        raise CPUFault(GP, err)
    desc = segments.fetch_descriptor(cpu, sel, GP, ext)
    if not desc.system or desc.type not in (segments.TSS32_AVAIL, segments.TSS16_AVAIL,
                                            segments.TSS32_BUSY, segments.TSS16_BUSY):
        raise CPUFault(GP, err)
    if desc.type & BUSY:
        raise CPUFault(GP, err)
    if not desc.present:
        raise CPUFault(NP, err)
    return sel, desc


def task_return(cpu, return_eip: int) -> None:
    """IRET with NT set: back to the task named by this TSS's back link."""
    tr = cpu.tr_cache
    back = int.from_bytes(cpu.read_sup(tr.base & M32, 2), "little")
    err = back & 0xFFFC
    if back & 4 or err == 0:
        raise CPUFault(TS, err)
    desc = segments.fetch_descriptor(cpu, back, TS)
    if not desc.system or desc.type not in (segments.TSS32_BUSY, segments.TSS16_BUSY):
        raise CPUFault(TS, err)
    switch_tasks(cpu, back, desc, "iret", return_eip)


def push_error_code(cpu, error_code: int) -> None:
    """An exception through a task gate pushes its error code on the new task's stack."""
    wide = cpu.tr_cache.access & 8
    size = 4 if wide else 2
    ss = cpu.sregs[2]
    mask = M32 if ss.big else 0xFFFF
    sp = (cpu.r[4] - size) & mask
    if ss.expand_down:
        bad = sp <= ss.limit or sp + size - 1 > mask
    else:
        bad = sp + size - 1 > ss.limit
    if bad:
        raise CPUFault(SS, 0)
    cpu.write_priv((ss.base + sp) & M32, error_code.to_bytes(size, "little"), cpu.cpl == 3)
    cpu.r[4] = (cpu.r[4] & ~mask & M32) | sp
