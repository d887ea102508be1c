"""The Guest's GDT: loaded by hypercall, checked, and copied where the CPU looks.

The Guest kernel runs in ring 1, so it may not have ring-0 segments: any
descriptor it hands over with DPL 0 is raised to DPL 1.  A few entries are the
Host's and never come from the Guest (the Switcher's own code and data
segments, the TSS, the double-fault TSS).  The accessed bit is always set, so
the processor never needs to write a descriptor in the read-only page the
Switcher loads the GDT from.
"""

#: P:600 Segments are the last of the processor's tables the Host has to
# manage for the Guest.  Linux hardly uses segmentation, but the processor
# consults the Global Descriptor Table on every segment register load and
# every change of privilege level, and a descriptor decides which ring code
# runs in, so a Guest cannot be let near the real one.  As with the IDT, the Guest hands
# its GDT over by hypercall, the Host keeps a checked copy in `lg.gdt`, and
# before a run the entries are copied into the per-CPU GDT in the Switcher's
# read-only page, which is the one the processor loads.

from __future__ import annotations

from .lg import (
    CHANGED_GDT,
    CHANGED_GDT_TLS,
    FULL_EXEC_SEGMENT,
    FULL_SEGMENT,
    GDT_ENTRIES,
    GDT_ENTRY_DOUBLEFAULT_TSS,
    GDT_ENTRY_KERNEL_CS,
    GDT_ENTRY_KERNEL_DS,
    GDT_ENTRY_LGUEST_CS,
    GDT_ENTRY_LGUEST_DS,
    GDT_ENTRY_TLS_MAX,
    GDT_ENTRY_TLS_MIN,
    GDT_ENTRY_TSS,
    GUEST_PL,
    Lguest,
    kill_guest,
    lgread,
)

S_BIT, PRESENT = 0x1000, 0x8000           # in a descriptor's high word
IGNORED = {GDT_ENTRY_TSS, GDT_ENTRY_LGUEST_CS, GDT_ENTRY_LGUEST_DS, GDT_ENTRY_DOUBLEFAULT_TSS}


#: H:600 Segments are the Host's last topic.  Four GDT entries belong to the
# Host, and whatever the Guest puts in those slots is ignored: the Switcher's
# own ring-0 code and data segments (LGUEST_CS and LGUEST_DS, entries 10 and
# 11), the TSS the Switcher loads with `ltr` (16), and the double-fault TSS
# (31).  The first three are written once into the per-CPU GDT when the Host
# maps the Switcher (lguestsim has no double-fault TSS and leaves that slot
# empty), and copying the Guest's table over it must never touch them.
def ignored_gdt(num: int) -> bool:
    return num in IGNORED


#: H:610 Making the Guest's descriptors fit to use, after every load.  The
# Guest kernel runs in ring 1, where a descriptor with privilege level (DPL)
# 0 is unusable; Linux, and our Guest (guest/traps.c), write 0 for their
# kernel segments as a native kernel would, so rather than refuse them we
# raise DPL 0 to 1.  And the
# accessed bit is set ahead of time: the processor sets it itself, in the
# GDT, the first time a segment is loaded, but the GDT it uses sits in the
# Switcher's read-only page, where that write would fault.  System
# descriptors are refused (H:612).  Nothing else is
# checked (no base or limit checks): paging, not segmentation, keeps the
# Guest inside its memory.
def fixup_gdt_table(lg: Lguest, start: int, end: int) -> None:
    """DPL 0 becomes GUEST_PL; the accessed bit is always set; no system descriptors."""
    for i in range(start, end):
        if ignored_gdt(i):
            continue
        a, b = lg.gdt[i]
        if not b & S_BIT:
            check_system_descriptor(lg, i, a, b)
            continue
        if b & 0x6000 == 0:
            b |= GUEST_PL << 13
        b |= 0x100
        lg.gdt[i] = (a, b)


#: H:612 A descriptor with the S bit clear is not a segment but a system
# descriptor: an LDT, a TSS, or a call, task, interrupt or trap gate.  None of
# them belongs in a Guest's GDT, and some are keys to ring 0.  A TSS
# descriptor the Guest may jump to starts a hardware task switch, which loads
# every register from a TSS the Guest wrote, %cs included: name LGUEST_CS
# there (entry 10, the Switcher's ring-0 code, present in every Guest's GDT)
# and the Guest runs its own code in ring 0.  A task gate leads to the same
# switch, and a call gate's target selector can name LGUEST_CS directly, with
# the stack for ring 0 taken from the TSS that ends in the Switcher's regs
# page.  Raising the DPL to 1 does not help: it only makes the gate or TSS
# reachable from ring 1.  So a present system descriptor kills the Guest, as
# lguest kills for any table it cannot trust; one that is not present could
# never be used, and is simply emptied, so that nothing but segments ever
# reaches the processor's GDT.  (The all-zero entries every GDT is full of are
# such not-present descriptors.)
def check_system_descriptor(lg: Lguest, i: int, a: int, b: int) -> None:
    if b & PRESENT:
        kill_guest(lg, f"bad GDT entry {i}: system descriptor type {(b >> 8) & 0xF}")
    lg.gdt[i] = (0, 0)


#: H:615 A new Guest's GDT, before it loads one of its own: the kernel's flat
# 4 GiB code and data segments (KERNEL_CS and KERNEL_DS, entries 12 and 13),
# already at DPL 1.  new_guest() in core.py calls this, and starts the
# Guest's registers on them (selectors 0x61 and 0x69).
def setup_guest_gdt(lg: Lguest) -> None:
    """The two flat segments a Guest boots with, usable from ring 1."""
    lg.gdt[GDT_ENTRY_KERNEL_CS] = (FULL_EXEC_SEGMENT[0], FULL_EXEC_SEGMENT[1] | (GUEST_PL << 13))
    lg.gdt[GDT_ENTRY_KERNEL_DS] = (FULL_SEGMENT[0], FULL_SEGMENT[1] | (GUEST_PL << 13))


#: H:620 LHCALL_LOAD_GDT, the Guest's `lgdt`: the Guest-physical address of
# its table and the number of entries in it.  More entries than our 32 kills
# the Guest.  The entries are read into `lg.gdt`, every entry is fixed up
# (H:610), and CHANGED_GDT tells copy_in_guest_info() to copy the table into
# the per-CPU GDT before the next run.  Entries past the Guest's count keep
# whatever they held.
def load_guest_gdt(lg: Lguest, mem, table: int, num: int) -> None:
    if num > GDT_ENTRIES:
        kill_guest(lg, f"too many gdt entries {num}")
        return
    raw = lgread(lg, mem, table, num * 8)
    for i in range(num):
        lg.gdt[i] = (int.from_bytes(raw[8 * i:8 * i + 4], "little"),
                     int.from_bytes(raw[8 * i + 4:8 * i + 8], "little"))
    fixup_gdt_table(lg, 0, GDT_ENTRIES)
    lg.changed |= CHANGED_GDT


#: H:630 LHCALL_LOAD_TLS: the three thread-local-storage entries (6 to 8).
# Linux reloads them for the next task on every context switch, so they are
# the only part of the GDT that changes often; they have their own hypercall
# and their own flag, CHANGED_GDT_TLS, so that copy_in_guest_info() can copy
# just these three.
def guest_load_tls(lg: Lguest, mem, gtls: int) -> None:
    raw = lgread(lg, mem, gtls, 3 * 8)
    for i in range(3):
        lg.gdt[GDT_ENTRY_TLS_MIN + i] = (int.from_bytes(raw[8 * i:8 * i + 4], "little"),
                                         int.from_bytes(raw[8 * i + 4:8 * i + 8], "little"))
    fixup_gdt_table(lg, GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_MAX + 1)
    lg.changed |= CHANGED_GDT_TLS


#: H:640 Copying the Guest's entries into the per-CPU GDT, which
# copy_in_guest_info() reads out of the Switcher's read-only page, hands here
# as a list and writes back.  Every entry goes across but the Host's four
# (H:600).
def copy_gdt(lg: Lguest, gdt: list) -> None:
    """Into the per-CPU copy: everything but the Host's own entries."""
    for i in range(GDT_ENTRIES):
        if not ignored_gdt(i):
            gdt[i] = lg.gdt[i]


#: H:645 When only the TLS entries changed, only they are copied.  That
# completes the Host; the Switcher, where all these tables are loaded into
# the processor, comes next.
def copy_gdt_tls(lg: Lguest, gdt: list) -> None:
    for i in range(GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_MAX + 1):
        gdt[i] = lg.gdt[i]
