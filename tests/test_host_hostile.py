"""Hostile Guests: every bad hypercall argument kills only the Guest that made it.

Each test boots a well-behaved victim Guest first and lets it run up to a
point, then runs a hostile Guest on the same Host.  The hostile one must die
with a clear reason; the victim's memory, its shadow page tables and registers,
and the Host's own tables and Switcher must be byte-for-byte what they were;
and the victim must then run to its normal end.
"""

from __future__ import annotations

import struct

import pytest
from guestenv import boot, console_bytes, run_to_death

from lguestsim.host import core

VICTIM = """
        movl $stack_top, %esp
        HCALL 1, lguest_data-PO
        HCALL 13, 0, ready-PO              # "ready": back to the Launcher
        movl $0, %ecx
1:      addl $7, work(,%ecx,4)
        incl %ecx
        cmpl $1024, %ecx
        jne 1b
        HCALL 2, msg-PO
msg:    .asciz "Power down"
        .p2align 2
ready:  DMA text-PO, 5
text:   .ascii "ready"
        .p2align 12
work:   .fill 4096, 1, 0
        .p2align 12
stack:  .fill 4096, 1, 0
stack_top:
"""

HOSTILE = {
    "init_outside_memory": ("HCALL 1, 0x800c00", "bad guest page 0x800c00"),
    "crash_message_outside": ("HCALL 1, lguest_data-PO\nHCALL 2, 0x900000",
                              "bad read address 0x900000 len 128"),
    "gdt_outside": ("HCALL 1, lguest_data-PO\nHCALL 3, 0x900000, 32",
                    "bad read address 0x900000 len 256"),
    "too_many_gdt_entries": ("HCALL 1, lguest_data-PO\nHCALL 3, lguest_data-PO, 33",
                             "too many gdt entries 33"),
    "task_gate_in_idt": ("HCALL 1, lguest_data-PO\nHCALL 6, 14, 0x00600000, 0x8500",
                         "bad IDT type 5"),
    "ring0_stack_segment": ("HCALL 1, lguest_data-PO\nHCALL 7, 0x68, 0xc0200000, 1",
                            "bad stack segment 104"),
    "three_stack_pages": ("HCALL 1, lguest_data-PO\nHCALL 7, 0x69, 0xc0200000, 3",
                          "bad stack pages 3"),
    "pte_past_pfn_limit": ("HCALL 1, lguest_data-PO\nHCALL 14, 0, 0xc0000000, 0x10000067",
                           "bad page table entry 0x10000067"),
    "pte_with_pse": ("HCALL 1, lguest_data-PO\nHCALL 14, 0, 0xc0000000, 0x000000e7",
                     "bad page table entry 0xe7"),
    "touch_switcher_entry": ("HCALL 1, lguest_data-PO\nHCALL 14, 0, 0xffc00000, 0x00001067",
                             "attempt to access switcher pages"),
    "second_init": ("HCALL 1, lguest_data-PO\nHCALL 1, lguest_data-PO",
                    "already have lguest_data"),
    "unknown_hypercall": ("HCALL 1, lguest_data-PO\nHCALL 11", "Bad hypercall 11"),
    "dma_key_unaligned": ("HCALL 1, lguest_data-PO\nHCALL 13, 2, 0", "bad sending DMA key"),
    # The Guest maps its own directory entry 1023, then writes through it.
    "write_to_switcher_mapping": ("HCALL 1, lguest_data-PO\nmovl $0x00200067, 0xc07ffffc\n"
                                  "movl %eax, 0xffc01000",
                                        "attempt to access switcher pages"),
    "cli_without_handler": ("HCALL 1, lguest_data-PO\ncli",
                            "unhandled trap 13 at"),
}


def snapshot(host, victim) -> dict[str, bytes]:
    """Everything outside the hostile Guest that must not change."""
    mem = host.mem
    proc = victim.launcher
    parts = {
        "victim memory": mem.read(proc.base, proc.size),
        "victim regs page": mem.read(victim.regs_page, 4096),
        "host tables": mem.read(core.HOST_GDT, 0x3000),
        "host page tables": mem.read(core.HOST_PGDIR, 0x2000),
        "switcher": mem.read(core.SWITCHER_PHYS, 0x2000),
    }
    for i, pgdir in enumerate(victim.pgdirs):
        if pgdir is None:
            continue
        parts[f"victim shadow pgdir {i}"] = mem.read(pgdir.page, 4096)
        for j in range(1023):
            pde = mem.read32(pgdir.page + 4 * j)
            if pde & 1:
                parts[f"victim shadow pte page {i}/{j}"] = mem.read(pde & ~0xFFF, 4096)
    return parts


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_hypercall_kills_only_that_guest(name):
    code, reason = HOSTILE[name]
    host, vdev, victim, vproc = boot(VICTIM, slots=2)
    dma, key = struct.unpack("<II", vdev.read(8))
    assert console_bytes(vdev, dma) == b"ready"
    before = snapshot(host, victim)
    _, hdev, hostile, hproc = boot("movl $0xc0100000, %esp\n" + code + """
        HCALL 2, survived-PO
survived: .asciz "survived"
""", host=host)
    died, _ = run_to_death(hdev)
    assert died.startswith(reason), died
    after = snapshot(host, victim)
    changed = [k for k in before if before[k] != after.get(k)]
    assert not changed, f"changed outside the hostile Guest: {changed}"
    hdev.close()
    # The Host keeps running: the victim finishes its work.
    died, _ = run_to_death(vdev)
    assert died == "CRASH: Power down"
    work = vproc.read(0x100000 + 0x1000 * ((vproc.symbols["work"] - 0xC0100000) // 0x1000), 16)
    assert struct.unpack("<4I", work) == (7, 7, 7, 7)
