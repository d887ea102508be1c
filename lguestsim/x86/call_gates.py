"""Far JMP and CALL: straight to a code segment, through a call gate, or to a task.

In protected mode the selector of a far JMP or CALL names a descriptor, and
its type decides what happens.  A code segment is entered directly, at the
same privilege (or a conforming one at the caller's).  A call gate is the
386's door to a more privileged ring: it names a code segment and an entry
point, its DPL says who may use it, and a CALL through it to an inner ring
switches to that ring's stack from the TSS, copying a few parameters across.
A TSS descriptor or a task gate switches tasks (task_switch.py).  Real and
virtual-8086 mode just load CS with selector * 16.  The way back from an
inner ring, far RET, is interrupts.py's `far_return()`.  SDM vol. 3, 5.8.
"""

from __future__ import annotations

from . import operands as O
from . import segments, task_switch, timing
from .decode import Insn
from .faults import GP, NP, SS, TS, CPUFault
from .segments import (
    CALL_GATE16,
    CALL_GATE32,
    CONFORMING_OR_DOWN,
    TASK_GATE,
    TSS16_AVAIL,
    TSS16_BUSY,
    TSS32_AVAIL,
    TSS32_BUSY,
    SegmentCache,
)

M32 = 0xFFFFFFFF


def far_target(cpu, insn: Insn) -> tuple[int, int]:
    op = insn.operands[0]
    if op[0] == "p":
        return op[2], op[3]
    size = 4 if insn.op32 else 2
    raw = cpu.read_linear(O.linear(cpu, insn, (size + 2) * 8, False), size + 2)
    return int.from_bytes(raw[size:], "little"), int.from_bytes(raw[:size], "little")


def _next_eip(cpu, insn: Insn) -> int:
    return (insn.eip + insn.length) & (M32 if cpu.code32 else 0xFFFF)


def far_transfer(cpu, insn: Insn, call: bool) -> None:
    """ljmp / lcall: decide by the descriptor's type what kind of transfer it is."""
    sel, off = far_target(cpu, insn)
    off &= M32 if insn.op32 else 0xFFFF
    ret = _next_eip(cpu, insn)
    if not cpu.protected:
        _real_mode(cpu, insn, sel, off, ret, call)
        return
    err = sel & 0xFFFC
    if err == 0:
        raise CPUFault(GP, 0)
    desc = segments.fetch_descriptor(cpu, sel)
    if not desc.system:
        if not desc.is_code:
            raise CPUFault(GP, err)
        _direct(cpu, insn, sel, desc, off, ret, call)
        return
    kind = desc.type
    if kind in (CALL_GATE16, CALL_GATE32):
        _through_call_gate(cpu, insn, sel, desc, ret, call)
    elif kind in (TSS32_AVAIL, TSS16_AVAIL, TSS32_BUSY, TSS16_BUSY, TASK_GATE):
        if desc.dpl < cpu.cpl or desc.dpl < (sel & 3):
            raise CPUFault(GP, err)
        if kind == TASK_GATE:
            if not desc.present:
                raise CPUFault(NP, err)
            sel, desc = task_switch.task_gate_target(cpu, desc)
        elif kind & segments.BUSY:
            raise CPUFault(GP, err)
        task_switch.switch_tasks(cpu, sel, desc, "call" if call else "jmp", ret)
    else:
        raise CPUFault(GP, err)


def _real_mode(cpu, insn: Insn, sel: int, off: int, ret: int, call: bool) -> None:
    size = 4 if insn.op32 else 2
    if call:
        saved = cpu.r[4]
        try:
            O.push(cpu, size, cpu.sregs[1].selector)
            O.push(cpu, size, ret)
        except CPUFault:
            cpu.r[4] = saved
            raise
    cs = cpu.sregs[1]
    if cpu.v86:
        cpu.set_cs(segments.v86_segment(sel, code=True), 3)
    else:
        cpu.set_cs(SegmentCache(sel, sel << 4, cs.limit, cs.access, cs.big), 0)
    cpu.eip = off


def _direct(cpu, insn: Insn, sel: int, desc: segments.Descriptor, off: int, ret: int,
            call: bool) -> None:
    """To a code segment at the current privilege (the SDM's checks, in order)."""
    err = sel & 0xFFFC
    if desc.type & CONFORMING_OR_DOWN:
        if desc.dpl > cpu.cpl:
            raise CPUFault(GP, err)
    elif (sel & 3) > cpu.cpl or desc.dpl != cpu.cpl:
        raise CPUFault(GP, err)
    if not desc.present:
        raise CPUFault(NP, err)
    if off > desc.limit:
        raise CPUFault(GP, 0)
    if call:
        size = 4 if insn.op32 else 2
        _push_all(cpu, cpu.sregs[2], cpu.r[4], [cpu.sregs[1].selector, ret], size, cpu.cpl,
                  SS, 0)
    segments.set_accessed(cpu, sel, desc)
    cpu.cycles += timing.SEGMENT_LOAD
    cpu.set_cs(desc.cache((sel & 0xFFFC) | cpu.cpl), cpu.cpl)
    cpu.eip = off


#: P:043 A call gate is the 386's sanctioned way into a more privileged
# ring.  Its DPL says which rings may use it (the CPL and the selector's RPL
# must both be at most the DPL, or #GP), and it names the code segment and
# entry point, so the caller chooses only which door, never where it leads.
# The target must be code no less privileged than the caller.  A JMP
# through a gate stays in the caller's ring (a conforming target, or one of
# the same DPL); a CALL to a non-conforming segment of an inner ring
# switches stacks: the new SS:ESP come from the TSS for that ring, are
# checked like any stack (#TS with the selector), and receive the caller's
# SS and ESP, then the gate's count of parameters copied from the caller's
# stack (dwords for a 386 gate, words for a 286 one), then the return CS
# and EIP.  As with interrupts, everything is read and checked before
# anything changes.  lguest's Guest kernel in ring 1 has no business with
# call gates: the Host refuses a Guest's GDT entries that are gates, and
# the core makes sure a gate left in a GDT is obeyed the 386's way.
def _through_call_gate(cpu, insn: Insn, gate_sel: int, gate: segments.Descriptor, ret: int,
                       call: bool) -> None:
    gerr = gate_sel & 0xFFFC
    if gate.dpl < cpu.cpl or gate.dpl < (gate_sel & 3):
        raise CPUFault(GP, gerr)
    if not gate.present:
        raise CPUFault(NP, gerr)
    sel = gate.gate_selector
    err = sel & 0xFFFC
    if err == 0:
        raise CPUFault(GP, 0)
    code = segments.fetch_descriptor(cpu, sel)
    if not code.is_code or code.dpl > cpu.cpl:
        raise CPUFault(GP, err)
    conforming = bool(code.type & CONFORMING_OR_DOWN)
    if not call and not conforming and code.dpl != cpu.cpl:
        raise CPUFault(GP, err)
    if not code.present:
        raise CPUFault(NP, err)
    gate32 = gate.type == CALL_GATE32
    off = gate.gate_offset if gate32 else gate.gate_offset & 0xFFFF
    size = 4 if gate32 else 2
    cpu.cycles += timing.CALL_GATE
    if call and not conforming and code.dpl < cpu.cpl:
        _call_inner(cpu, sel, code, off, ret, size, gate.high & 0x1F)
        return
    if off > code.limit:
        raise CPUFault(GP, 0)
    if call:
        _push_all(cpu, cpu.sregs[2], cpu.r[4], [cpu.sregs[1].selector, ret], size, cpu.cpl,
                  SS, 0)
    segments.set_accessed(cpu, sel, code)
    cpu.set_cs(code.cache(err | cpu.cpl), cpu.cpl)
    cpu.eip = off


def _call_inner(cpu, sel: int, code: segments.Descriptor, off: int, ret: int, size: int,
                params: int) -> None:
    """CALL through a gate to an inner ring: new stack from the TSS, parameters copied."""
    new_cpl = code.dpl
    ss_sel, esp = segments.tss_stack(cpu, new_cpl, 0)
    ss_desc = segments.check_stack_segment(cpu, ss_sel, new_cpl, TS)
    ss = ss_desc.cache(ss_sel)
    # The parameters, read from the caller's stack at the caller's privilege.
    old_ss = cpu.sregs[2]
    old_mask = M32 if old_ss.big else 0xFFFF
    old_sp = cpu.r[4] & old_mask
    args = [int.from_bytes(cpu.read_seg(2, (old_sp + i * size) & old_mask, size), "little")
            for i in range(params)]
    if off > code.limit:
        raise CPUFault(GP, 0)
    frame = [old_ss.selector, cpu.r[4]] + args[::-1] + [cpu.sregs[1].selector, ret]
    new_mask = M32 if ss.big else 0xFFFF
    writes = _stack_writes(cpu, ss, esp & new_mask, frame, size, SS, ss_sel & 0xFFFC)
    user = new_cpl == 3
    for la, data in writes:
        cpu.write_priv(la, data, user)
    sp = (esp - size * len(frame)) & new_mask
    segments.set_accessed(cpu, ss_sel, ss_desc)
    segments.set_accessed(cpu, sel, code)
    cpu.cycles += timing.PRIVILEGE_CHANGE + timing.CALL_GATE_PARAMETER * params
    cpu.set_segment(2, ss)
    cpu.r[4] = (esp & ~new_mask & M32) | sp if new_mask == 0xFFFF else sp
    cpu.set_cs(code.cache((sel & 0xFFFC) | new_cpl), new_cpl)
    cpu.eip = off


def _stack_writes(cpu, ss: SegmentCache, sp: int, frame: list[int], size: int,
                  vector: int, err: int) -> list[tuple[int, bytes]]:
    """Check each push of ``frame`` against SS's limits; give (linear, bytes) to write."""
    mask = M32 if ss.big else 0xFFFF
    out = []
    for value in frame:
        sp = (sp - size) & mask
        if ss.expand_down:
            bad = sp <= ss.limit or sp + size - 1 > mask
        else:
            bad = sp + size - 1 > ss.limit
        if bad:
            raise CPUFault(vector, err)
        out.append(((ss.base + sp) & M32, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")))
    return out


def _push_all(cpu, ss: SegmentCache, esp: int, frame: list[int], size: int, cpl: int,
              vector: int, err: int) -> None:
    """Push ``frame`` on the current stack, all or nothing."""
    mask = M32 if ss.big else 0xFFFF
    writes = _stack_writes(cpu, ss, esp & mask, frame, size, vector, err)
    for la, data in writes:
        cpu.write_priv(la, data, cpl == 3)
    sp = (esp - size * len(frame)) & mask
    cpu.r[4] = (esp & ~mask & M32) | sp
