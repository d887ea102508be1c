"""Interrupts and exceptions: IDT gates, the TSS stack switch, iret.

Delivery in protected mode follows the SDM's INT n pseudo-code: find the gate
(interrupt or trap, 16 or 32 bit), check it, find the handler's code segment,
and if that segment is more privileged than the interrupted code take the new
stack from the TSS (ss0:esp0, or ss1:esp1 -- lguest's Guest kernel in ring 1
takes its traps on esp1) and push the old SS:ESP first.  Then EFLAGS, CS, EIP
and the error code.  An interrupt gate also clears IF.

When delivering one exception raises another, the SDM's table decides: two
contributory faults, or a page fault followed by a contributory fault or a
page fault, make a double fault (#DF, vector 8); a fault while delivering #DF
is a triple fault, and the processor shuts down.

An IDT entry may also be a task gate (task_switch.py does the rest), and an
interrupt out of virtual-8086 mode (v86.py) also pushes ES, DS, FS and GS
and enters ring 0 with them null.

Real mode uses the interrupt vector table instead: a far pointer per vector.
"""

from __future__ import annotations

from . import segments, task_switch, timing, v86
from .faults import CONTRIBUTORY, DF, GP, HAS_ERROR_CODE, NP, PF, TS, CPUFault, TripleFault
from .flags import AC, ID, IF, IOPL, NT, RF, TF, VIF, VIP, VM, WRITABLE
from .segments import (
    CONFORMING_OR_DOWN,
    INTR_GATE16,
    INTR_GATE32,
    TASK_GATE,
    TRAP_GATE16,
    TRAP_GATE32,
    SegmentCache,
    check_stack_segment,
    fetch_descriptor,
)


def _is_double(first: int, second: int) -> bool:
    if first in CONTRIBUTORY and second in CONTRIBUTORY:
        return True
    return first == PF and (second in CONTRIBUTORY or second == PF)


#: P:038 What if delivering an exception causes another?  The SDM sorts
# them into benign ones, "contributory" ones (#DE, #TS, #NP, #SS, #GP) and
# page faults.  A contributory fault while delivering a contributory one, or
# a contributory fault or page fault while delivering a page fault, becomes
# a double fault, vector 8; other pairs are simply handled one after the
# other.  The classes belong to exceptions only: an `int n` (or `int3`,
# `into`) whose gate refuses it has simply faulted, like any instruction, and
# an external interrupt counts as benign, so `int $14` from ring 1 through a
# DPL 0 gate is a plain #GP(14*8+2), never a double fault, and `int $8` is
# not a double fault being delivered.  A fault while delivering the real
# double fault is a triple fault: the CPU shuts down (`cpu.shutdown`) and
# `run()` returns "triple-fault".  A real PC resets at that point, so
# lguest's Switcher must never let it happen while a Guest's tables are
# loaded; if a broken Switcher does it anyway, lguestsim's Host kills the
# Guest rather than hang (S:015).
def deliver_exception(cpu, vector: int, error_code: int | None, return_eip: int | None = None,
                      software: bool = False, external: bool = False) -> None:
    """Deliver an exception or interrupt, applying the double/triple fault rules."""
    first = vector
    exception = not software and not external
    if return_eip is None:
        return_eip = cpu.eip
    try:
        _deliver(cpu, vector, error_code, return_eip, software, external)
        return
    except CPUFault as f:
        second = f
    if exception and first == DF:
        raise TripleFault(f"fault {second} while delivering #DF")
    # The second fault belongs to the instruction (or interrupted instruction)
    # at cpu.eip, not to the return address a software interrupt would push.
    if exception and _is_double(first, second.vector):
        try:
            _deliver(cpu, DF, 0, cpu.eip, False, False)
        except CPUFault as third:
            raise TripleFault(f"fault {third} while delivering #DF") from None
        return
    # Benign combinations are handled one after the other: deliver the second.
    deliver_exception(cpu, second.vector, second.error_code, cpu.eip)


#: P:036 Delivering an exception or interrupt in protected mode.  The IDT
# entry for the vector must be an interrupt or trap gate (or a task gate,
# P:044); a software `int n`
# must also pass the gate's DPL (a Guest's `int $0x1f` hypercall works only
# because the Switcher's IDT gives that one vector DPL 1), and the gate must
# be present.  The gate names a code segment and an offset.  If that segment
# is more privileged than the interrupted code, the stack changes: the new
# SS:ESP come from the TSS (P:037) and the old SS and ESP are the first
# things pushed on it.  Then EFLAGS, CS and EIP, and for the vectors that
# have one the error code.  Nothing is committed until every push has
# succeeded, so a fault on the way leaves the CPU as it was (P:038).  An
# interrupt gate also clears IF; a trap gate leaves it.  lguest lives on this
# frame: a Guest trap into ring 0 pushes it into the regs page, where
# `struct lguest_regs` expects it, and when the Host hands a trap or an
# interrupt to the Guest it builds the same frame by hand (H:210).
def _deliver(cpu, vector: int, error_code: int | None, return_eip: int,
             software: bool, external: bool) -> None:
    cpu.cycles += timing.EXCEPTION_DELIVERY
    if not cpu.cr0 & 1:
        _deliver_real(cpu, vector, return_eip)
        return
    # EXT: the event being delivered did not come from an int n / int3 / into.
    ext = 0 if software else 1
    gate_err = vector * 8 + 2 + ext
    if vector * 8 + 7 > cpu.idt_limit:
        raise CPUFault(GP, gate_err)
    raw = segments.read_table_entry(cpu, (cpu.idt_base + vector * 8) & 0xFFFFFFFF)
    gate = segments.Descriptor(raw & 0xFFFFFFFF, raw >> 32)
    # (Descriptor's properties, inline: every trap and interrupt comes here.)
    ghigh = gate.high
    gtype = (ghigh >> 8) & 0xF if not ghigh & 0x1000 else -1
    if gtype not in (INTR_GATE16, INTR_GATE32, TRAP_GATE16, TRAP_GATE32, TASK_GATE):
        raise CPUFault(GP, gate_err)
    if software and (ghigh >> 13) & 3 < cpu.cpl:
        raise CPUFault(GP, gate_err)
    if not ghigh & 0x8000:
        raise CPUFault(NP, gate_err)
    if gtype == TASK_GATE:
        _deliver_through_task_gate(cpu, vector, error_code, return_eip, gate, software, ext)
        return
    from_v86 = cpu.v86
    selector = gate.gate_selector
    offset = gate.gate_offset
    gate32 = gtype in (INTR_GATE32, TRAP_GATE32)
    if not gate32:
        offset &= 0xFFFF
    if selector & 0xFFFC == 0:
        raise CPUFault(GP, ext)
    code = fetch_descriptor(cpu, selector, GP, ext)
    sel_err = (selector & 0xFFFC) | ext
    chigh = code.high
    cdpl = (chigh >> 13) & 3
    ctype = (chigh >> 8) & 0xF
    if not (chigh & 0x1000 and ctype & 8) or cdpl > cpu.cpl:      # not code.is_code
        raise CPUFault(GP, sel_err)
    if from_v86 and (cdpl != 0 or ctype & CONFORMING_OR_DOWN):
        raise CPUFault(GP, sel_err)     # from virtual-8086 mode, only to ring 0
    if not chigh & 0x8000:
        raise CPUFault(NP, sel_err)
    eflags = cpu.eflags
    if not software and not external and vector not in (1, 3, 4):
        eflags_image = eflags | RF   # faults push RF set, so the restart skips breakpoints
    else:
        eflags_image = eflags
    old_cs = cpu.sregs[1].selector
    old_cpl = cpu.cpl
    size = 4 if gate32 else 2
    if not ctype & CONFORMING_OR_DOWN and cdpl < cpu.cpl:
        new_cpl = cdpl
        ss_sel, esp = segments.tss_stack(cpu, new_cpl, ext)
        ss_desc = check_stack_segment(cpu, ss_sel, new_cpl, TS, ext)
        ss_cache = ss_desc.cache(ss_sel)
        frame = [cpu.sregs[2].selector, cpu.esp, eflags_image, old_cs, return_eip]
        if from_v86:    # the 8086 segment registers go on the ring 0 stack too
            frame[:0] = [cpu.sregs[i].selector for i in (5, 4, 3, 0)]
            cpu.cycles += timing.V86_INTERRUPT
        cpu.cycles += timing.PRIVILEGE_CHANGE
    elif ctype & CONFORMING_OR_DOWN or cdpl == cpu.cpl:
        new_cpl = cpu.cpl
        ss_cache = cpu.sregs[2]
        esp = cpu.esp
        frame = [eflags_image, old_cs, return_eip]
    else:
        raise CPUFault(GP, sel_err)
    if error_code is not None and vector in HAS_ERROR_CODE and not software:
        frame.append(error_code)
    if offset > code.limit:
        raise CPUFault(GP, ext)
    # Push the frame on the (possibly new) stack; nothing is committed until
    # every write has succeeded, so a fault here leaves the CPU as it was.
    mask = 0xFFFFFFFF if ss_cache.big else 0xFFFF
    sp = esp
    writes = []
    for value in frame:
        sp = (sp - size) & mask
        writes.append((_stack_linear(cpu, ss_cache, sp, size, new_cpl, ext), value))
    # Pushes are supervisor accesses when the handler runs in ring 0-2.
    user = new_cpl == 3
    for la, value in writes:
        cpu.write_priv(la, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"), user)
    segments.set_accessed(cpu, selector, code)
    if from_v86:
        cpu.eflags = eflags & ~VM
        for i in (0, 3, 4, 5):
            cpu.set_segment(i, SegmentCache(0, 0, 0, 0, False, False, False))
    if new_cpl != old_cpl:
        cpu.set_segment(2, ss_cache)
    cpu.esp = (esp & ~mask) | sp if mask == 0xFFFF else sp
    cpu.set_cs(code.cache((selector & 0xFFFC) | new_cpl), new_cpl)
    cpu.eip = offset
    cleared = TF | NT | RF | VM
    if gtype in (INTR_GATE16, INTR_GATE32):
        cleared |= IF
    cpu.eflags = eflags & ~cleared
    cpu.last_exception = (vector, error_code if vector in HAS_ERROR_CODE and not software else None)
    cpu.halted = False


def _deliver_through_task_gate(cpu, vector: int, error_code: int | None, return_eip: int,
                               gate: segments.Descriptor, software: bool, ext: int) -> None:
    """An interrupt or exception whose IDT entry is a task gate: switch tasks (nested),
    then push the error code, if any, on the new task's stack."""
    sel, desc = task_switch.task_gate_target(cpu, gate, ext)
    task_switch.switch_tasks(cpu, sel, desc, "int", return_eip)
    pushes = error_code is not None and vector in HAS_ERROR_CODE and not software
    cpu.last_exception = (vector, error_code if pushes else None)
    cpu.halted = False
    if pushes:
        task_switch.push_error_code(cpu, error_code)


def _stack_linear(cpu, ss: SegmentCache, sp: int, size: int, cpl: int, ext: int) -> int:
    """Check a push against the stack segment's limit (#SS) and give its linear address."""
    if ss.expand_down:
        upper = 0xFFFFFFFF if ss.big else 0xFFFF
        if sp <= ss.limit or sp + size - 1 > upper:
            raise CPUFault(12, ext if cpl == cpu.cpl else (ss.selector & 0xFFFC) | ext)
    elif sp + size - 1 > ss.limit:
        raise CPUFault(12, ext if cpl == cpu.cpl else (ss.selector & 0xFFFC) | ext)
    return (ss.base + sp) & 0xFFFFFFFF


def _deliver_real(cpu, vector: int, return_eip: int) -> None:
    if vector * 4 + 3 > cpu.idt_limit:
        raise CPUFault(GP, 0)
    entry = int.from_bytes(cpu.read_sup((cpu.idt_base + vector * 4) & 0xFFFFFFFF, 4), "little")
    flags = cpu.eflags
    ss = cpu.sregs[2]
    sp = cpu.esp & 0xFFFF
    for value in (flags, cpu.sregs[1].selector, return_eip):
        sp = (sp - 2) & 0xFFFF
        cpu.write_sup((ss.base + sp) & 0xFFFFFFFF, (value & 0xFFFF).to_bytes(2, "little"))
    cpu.esp = (cpu.esp & 0xFFFF0000) | sp
    seg = entry >> 16
    cs = cpu.sregs[1]
    cpu.set_cs(SegmentCache(seg, seg << 4, cs.limit, cs.access, cs.big), 0)
    cpu.eip = entry & 0xFFFF
    cpu.eflags = flags & ~(IF | TF | AC | RF)
    cpu.last_exception = (vector, None)
    cpu.halted = False


#: P:039 The way back: `iret` (and `lret`) in protected mode.  The return
# CS comes off the stack, and its RPL says where to: the same ring, or an
# outer one, never an inner one (#GP).  Going outward, the processor also
# pops ESP and SS and checks the new stack segment, and afterwards nulls any
# data segment register the outer ring could not have loaded itself, so no
# more privileged segment leaks out.  EFLAGS follow the rules of
# `_restore_flags()` below: only ring 0 may change IOPL, and only code whose
# CPL is at most IOPL may change IF.  The Switcher enters a Guest with exactly this,
# an `iret` from ring 0 to ring 1 or 3 on a frame built from `lguest_regs`.
# And the IF rule is why the Guest kernel cannot return from its own
# interrupt handlers with a bare `iret`: in ring 1 the popped IF would be
# ignored, so it has `lguest_iret` (G:045).
def far_return(cpu, op32: bool, is_iret: bool, pop_extra: int = 0,
               return_eip: int = 0) -> None:
    """iret / lret: to the same ring or to an outer one, to another task (iret
    with NT), into virtual-8086 mode (iret at CPL 0), and in real and v86 mode.
    ``return_eip`` is the EIP after the instruction, saved if the task changes."""
    size = 4 if op32 else 2
    ss = cpu.sregs[2]
    smask = 0xFFFFFFFF if ss.big else 0xFFFF
    sp = cpu.esp & smask
    count = 3 if is_iret else 2

    if cpu.v86:
        if is_iret:
            v86.iret(cpu, op32)
        else:
            v86.far_return(cpu, op32, pop_extra)
        return
    if is_iret and cpu.protected and cpu.eflags & NT:
        task_switch.task_return(cpu, return_eip)
        return
    vals = [int.from_bytes(cpu.read_seg(2, (sp + i * size) & smask, size), "little")
            for i in range(count)]
    new_eip, new_cs = vals[0], vals[1] & 0xFFFF
    new_flags = vals[2] if is_iret else None
    if is_iret and op32 and new_flags & VM and cpu.cpl == 0 and cpu.protected:
        v86.enter_from_iret(cpu, sp, smask)
        cpu.cycles += timing.PRIVILEGE_CHANGE
        return
    if not cpu.protected:
        cs = cpu.sregs[1]
        cpu.set_cs(SegmentCache(new_cs, new_cs << 4, cs.limit, cs.access, cs.big), 0)
        cpu.eip = new_eip & (0xFFFFFFFF if op32 else 0xFFFF)
        _set_sp(cpu, sp + count * size + pop_extra, smask)
        if is_iret:
            _restore_flags(cpu, new_flags, op32, 0)
        return
    rpl = new_cs & 3
    if rpl < cpu.cpl:
        raise CPUFault(GP, new_cs & 0xFFFC)
    code = fetch_descriptor(cpu, new_cs) if new_cs & 0xFFFC else None
    if code is None:
        raise CPUFault(GP, 0)
    chigh = code.high               # (Descriptor's properties, inline)
    ctype, cdpl = (chigh >> 8) & 0xF, (chigh >> 13) & 3
    if not (chigh & 0x1000 and ctype & 8):
        raise CPUFault(GP, new_cs & 0xFFFC)
    if ctype & CONFORMING_OR_DOWN:
        if cdpl > rpl:
            raise CPUFault(GP, new_cs & 0xFFFC)
    elif cdpl != rpl:
        raise CPUFault(GP, new_cs & 0xFFFC)
    if not chigh & 0x8000:
        raise CPUFault(NP, new_cs & 0xFFFC)
    mask = 0xFFFFFFFF if op32 else 0xFFFF
    new_eip &= mask
    if new_eip > code.limit:
        raise CPUFault(GP, 0)
    old_cpl = cpu.cpl
    if rpl == old_cpl:
        cpu.set_cs(code.cache(new_cs), rpl)
        cpu.eip = new_eip
        _set_sp(cpu, sp + count * size + pop_extra, smask)
        if is_iret:
            _restore_flags(cpu, new_flags, op32, old_cpl)
        return
    # Return to an outer ring: SS:ESP come off the stack too.
    base = count * size + pop_extra
    new_esp = int.from_bytes(cpu.read_seg(2, (sp + base) & smask, size), "little")
    new_ss = int.from_bytes(cpu.read_seg(2, (sp + base + size) & smask, size), "little") & 0xFFFF
    ss_desc = check_stack_segment(cpu, new_ss, rpl)
    cpu.cycles += timing.PRIVILEGE_CHANGE
    cpu.set_cs(code.cache(new_cs), rpl)
    cpu.eip = new_eip
    if is_iret:
        _restore_flags(cpu, new_flags, op32, old_cpl)
    cpu.set_segment(2, ss_desc.cache(new_ss))
    new_smask = 0xFFFFFFFF if ss_desc.big else 0xFFFF
    _set_sp(cpu, (new_esp + pop_extra) if not is_iret else new_esp, new_smask)
    segments.null_outer_data_segments(cpu)


def _set_sp(cpu, value: int, smask: int) -> None:
    if smask == 0xFFFF:
        cpu.esp = (cpu.esp & 0xFFFF0000) | (value & 0xFFFF)
    else:
        cpu.esp = value & 0xFFFFFFFF


def _restore_flags(cpu, new: int, op32: bool, cpl: int) -> None:
    """EFLAGS from an iret: IOPL only at CPL 0, IF only when CPL <= IOPL."""
    old = cpu.eflags
    keep = 0
    if not op32:
        new = (old & 0xFFFF0000) | (new & 0xFFFF)
    if cpl > 0:
        keep |= IOPL
    if cpl > ((old & IOPL) >> 12):
        keep |= IF
    writable = WRITABLE & ~keep
    value = (old & ~writable) | (new & writable)
    value &= ~(VM | VIF | VIP)
    if not op32:
        value = (value & ~ID) | (old & ID)
    cpu.eflags = value
