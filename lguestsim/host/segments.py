"""The Guest's GDT: loaded by hypercall, checked, and copied where the CPU looks.

The Guest kernel runs in ring 1, so it may not have ring-0 segments: any
descriptor it hands over with DPL 0 is raised to DPL 1.  A few entries are the
Host's and never come from the Guest (the Switcher's own code and data
segments, the TSS, the double-fault TSS).  The accessed bit is always set, so
the processor never needs to write a descriptor in the read-only page the
Switcher loads the GDT from.
"""

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

IGNORED = {GDT_ENTRY_TSS, GDT_ENTRY_LGUEST_CS, GDT_ENTRY_LGUEST_DS, GDT_ENTRY_DOUBLEFAULT_TSS}


def ignored_gdt(num: int) -> bool:
    return num in IGNORED


def fixup_gdt_table(lg: Lguest, start: int, end: int) -> None:
    """DPL 0 becomes GUEST_PL; the accessed bit is always set."""
    for i in range(start, end):
        if ignored_gdt(i):
            continue
        a, b = lg.gdt[i]
        if b & 0x6000 == 0:
            b |= GUEST_PL << 13
        b |= 0x100
        lg.gdt[i] = (a, b)


def setup_guest_gdt(lg: Lguest) -> None:
    """The two flat segments a Guest boots with, usable from ring 1."""
    lg.gdt[GDT_ENTRY_KERNEL_CS] = (FULL_EXEC_SEGMENT[0], FULL_EXEC_SEGMENT[1] | (GUEST_PL << 13))
    lg.gdt[GDT_ENTRY_KERNEL_DS] = (FULL_SEGMENT[0], FULL_SEGMENT[1] | (GUEST_PL << 13))


#: H:610 load_guest_gdt
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


def guest_load_tls(lg: Lguest, mem, gtls: int) -> None:
    raw = lgread(lg, mem, gtls, 3 * 8)
    for i in range(3):
        lg.gdt[GDT_ENTRY_TLS_MIN + i] = (int.from_bytes(raw[8 * i:8 * i + 4], "little"),
                                         int.from_bytes(raw[8 * i + 4:8 * i + 8], "little"))
    fixup_gdt_table(lg, GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_MAX + 1)
    lg.changed |= CHANGED_GDT_TLS


def copy_gdt(lg: Lguest, gdt: list) -> None:
    """Into the per-CPU copy: everything but the Host's own entries."""
    for i in range(GDT_ENTRIES):
        if not ignored_gdt(i):
            gdt[i] = lg.gdt[i]


def copy_gdt_tls(lg: Lguest, gdt: list) -> None:
    for i in range(GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_MAX + 1):
        gdt[i] = lg.gdt[i]
