"""Hostile Guests, one mechanism at a time: recovery, the watchdog, reclaim, the GDT rules.

The corpus (tests/test_hostile_corpus.py, tests/hostile.py) runs hundreds
of hostile Guests beside a neighbour.  These tests look at the Host's
mechanisms directly: what a failed world switch leaves behind, how the
frame pool is shared out, and which descriptors a Guest's GDT may hold.
"""

from __future__ import annotations

import struct

from guestenv import MEM, boot, console_bytes, run_to_death
from hostile import (
    GDT_WITH,
    HELLO,
    HOARDER,
    INT_RING1,
    NEIGHBOUR,
    NEIGHBOUR_OUT,
    SPINNER,
    Injector,
    run_hostile,
    run_neighbour,
    system_descriptor,
)

from lguestsim.host import HOST_AREA, Host, core
from lguestsim.machine import Machine


def host_with_neighbour(slots: int = 2):
    host = Host(Machine(HOST_AREA + (slots + 1) * (MEM + 4096)))
    host.time_slice = 200_000
    _, ndev, neighbour, _ = boot(NEIGHBOUR, host=host)
    dma, _ = struct.unpack("<II", ndev.read(8))
    assert console_bytes(ndev, dma) == b"ready"
    return host, ndev, neighbour


def neighbour_finishes(ndev) -> None:
    assert run_neighbour(ndev) == ("CRASH: Power down", NEIGHBOUR_OUT[1:])


def shadow_is_consistent(host, lg) -> None:
    """Each shadow's list of tables is exactly its present directory entries."""
    for pgdir in lg.pgdirs:
        if pgdir is None:
            continue
        present = {i: host.mem.read32(pgdir.page + 4 * i) & ~0xFFF for i in range(1023)
                   if host.mem.read32(pgdir.page + 4 * i) & 1}
        assert present == pgdir.tables


def test_int_8_from_ring_1_kills_that_guest_and_no_other():
    """Issue 10's first finding: the machine triple-faulted, and every Guest died after."""
    host, ndev, _ = host_with_neighbour()
    _, hdev, _, hproc = boot(INT_RING1, host=host)
    hproc.write(hproc.symbols["vector"] - 0xC0000000, b"\xcd\x08")
    died, _ = run_to_death(hdev)
    assert died.startswith("unhandled trap 13 at") and died.endswith("(0x42)"), died
    neighbour_finishes(ndev)


def test_a_failed_switch_leaves_the_shared_state_as_at_start_up():
    host, ndev, _ = host_with_neighbour()
    _, hdev, _, _ = boot(SPINNER, host=host)
    # A general protection fault just before the Switcher loads the Guest's cr3.
    injector = Injector(host.cpu, [(host.switcher.switch_to_guest + 0x3A, 13, 0)])
    try:
        died = run_hostile(hdev)
    finally:
        injector.remove()
    assert injector.done == 1
    assert died.startswith("trap ") and "inside the Switcher at" in died, died
    assert host.recovery.failures == 1
    assert host.recovery.shared_state() == host.recovery.pristine_state()
    kinds = [e.kind for e in host.trace.events]
    assert "switch-failed" in kinds
    neighbour_finishes(ndev)
    _, dev, _, _ = boot(HELLO, host=host)                  # and a new Guest starts
    assert run_to_death(dev) == ("CRASH: Power down", [b"hello"])


def test_a_switcher_going_round_in_ring_0_is_stopped_by_the_watchdog():
    """A Switcher broken into an endless loop (with interrupts off) must not hang the Host;
    its code comes back from the start-up image."""
    host, ndev, _ = host_with_neighbour()
    _, hdev, _, _ = boot(SPINNER, host=host)
    loop_at = host.switcher.switch_to_guest + 0x3A
    host.mem.write(core.SWITCHER_PHYS + 0x3A, b"\xeb\xfe")   # jmp .
    died = run_hostile(hdev)
    assert died == f"CPU stopped (stuck in ring 0) during the world switch at {loop_at:#x}"
    assert host.mem.read(core.SWITCHER_PHYS + 0x3A, 2) != b"\xeb\xfe"
    assert host.recovery.shared_state() == host.recovery.pristine_state()
    neighbour_finishes(ndev)


def test_an_exception_in_the_hosts_own_world_halts_rather_than_loops():
    host, ndev, _ = host_with_neighbour()
    _, hdev, _, _ = boot(SPINNER, host=host)
    # switch_to_guest's first instruction runs in the Host's world (Host IDT).
    injector = Injector(host.cpu, [(host.switcher.switch_to_guest, 14, 0)])
    try:
        died = run_hostile(hdev)
    finally:
        injector.remove()
    assert died == f"CPU stopped (hlt) during the world switch at {core.HOST_FAULT_HANDLER + 1:#x}"
    neighbour_finishes(ndev)


def test_the_hoarder_is_held_to_its_quota_and_pays_itself():
    host, ndev, neighbour = host_with_neighbour(slots=3)
    _, hdev, hoarder, _ = boot(HOARDER, host=host)
    assert run_hostile(hdev) is None                       # asleep, alive
    account = host.page_tables.accounting()
    assert hoarder.shadow.peak == account.quota
    assert hoarder.shadow.reclaimed > 1000                 # it paid with its own tables
    assert neighbour.shadow.reclaimed == 0
    # Every frame of the pool is free or in someone's account (plus a regs page each).
    held = sum(a.pages for a in account.guests.values())
    assert account.free + held + len(host.lguests) == account.pool
    shadow_is_consistent(host, hoarder)
    _, dev, _, _ = boot(HELLO, host=host)                  # a new Guest still starts
    assert run_to_death(dev) == ("CRASH: Power down", [b"hello"])
    neighbour_finishes(ndev)


def test_an_empty_pool_takes_from_the_guest_holding_most():
    """With no quota and a small pool, the hoarder drains it; the neighbour's next shadow
    table comes from the hoarder's, and the neighbour never notices."""
    host, ndev, neighbour = host_with_neighbour(slots=3)
    host.free_frames = host.free_frames[-1200:]
    host.page_tables.quota = 1 << 30
    _, hdev, hoarder, _ = boot(HOARDER, host=host)
    assert run_hostile(hdev) is None
    assert not host.free_frames
    taken = hoarder.shadow.reclaimed
    neighbour_finishes(ndev)                                # maps 5 MiB: new tables
    assert hoarder.shadow.reclaimed > taken
    assert neighbour.shadow.reclaimed == 0
    shadow_is_consistent(host, hoarder)


def test_flush_tlb_releases_what_the_shadows_hold_and_the_stack_stays_pinned():
    host, dev, lg, _ = boot(NEIGHBOUR)
    dev.read(8)
    run_neighbour(dev)                                      # it dies; keep its shadows
    lg.dead = None
    before = lg.shadow.pages
    host.hypercalls.do_hcall(lg, 5, 1, 0, 0)                # FLUSH_TLB(1)
    shadow_is_consistent(host, lg)
    pinned = {(lg.esp1 - 1) >> 22}
    assert set(lg.pgdirs[lg.pgdidx].tables) == pinned
    assert lg.shadow.pages == 1 + len(pinned) < before


def load_gdt_with(kind: int, dpl: int, present: bool = True) -> str:
    host, dev, lg, proc = boot(GDT_WITH)
    entry = bytearray(system_descriptor(kind, dpl, 0xC0100000))
    if not present:
        entry[5] &= 0x7F
    proc.write(proc.symbols["entry"] - 0xC0000000, bytes(entry))
    died, _ = run_to_death(dev)
    return died, lg


def test_a_tss_or_gate_in_the_gdt_kills_the_guest():
    for kind in (0x9, 0xC, 0x5, 0x4, 0x2):
        died, lg = load_gdt_with(kind, 3)
        assert died == f"bad GDT entry 14: system descriptor type {kind}"
        assert lg.gdt[14] == (0, 0)                         # never reaches the CPU


def test_a_system_descriptor_that_is_not_present_is_emptied_not_fatal():
    died, lg = load_gdt_with(0x9, 0, present=False)
    # The Guest's ljmp to it then faults like any jump to an empty entry.
    assert died.startswith("unhandled trap 13 at"), died
    assert lg.gdt[14] == (0, 0)


def test_tls_entries_follow_the_same_rule():
    host, dev, lg, proc = boot("""
        HCALL 1, lguest_data-PO
        HCALL 16, tls-PO
        HCALL 2, m-PO
m:      .asciz "survived"
        .p2align 3
tls:    .quad 0x00cf9a000000ffff, 0x0000e90010000067, 0
""")
    assert run_to_death(dev)[0] == "bad GDT entry 7: system descriptor type 9"


# A Guest that jumps to a TSS of its own: the task switch loads every register
# from it, here ring-0 code (LGUEST_CS) running with the Host's page tables,
# which writes a word into a Host frame no Guest owns, and halts.
TSS_ESCAPE = """
        movl $0xc0100000, %esp
        HCALL 1, lguest_data-PO
        HCALL 3, gdt-PO, 32
        ljmp $0x71, $0
        HCALL 2, m-PO
m:      .asciz "no task switch"
ring0:  movl $0x4f574e44, {target}
        hlt
        .p2align 3
gdt:    .fill 12, 8, 0
        .quad 0x00cf9a000000ffff, 0x00cf92000000ffff
entry:  .quad 0
        .fill 17, 8, 0
        .p2align 7
tss:    .fill 104, 1, 0
"""


def tss_escape(host, old_rules: bool, monkeypatch):
    """Boot TSS_ESCAPE; with ``old_rules``, the Host checks the GDT as 2.6.23 did."""
    from lguestsim.host import segments

    if old_rules:
        def check_2_6_23(lg, i, a, b):       # DPL 0 -> 1, "accessed" bit, and keep it
            lg.gdt[i] = (a, b | (1 << 13 if b & 0x6000 == 0 else 0) | 0x100)
        monkeypatch.setattr(segments, "check_system_descriptor", check_2_6_23)
    target = core.HOST_AREA - 8                      # the pool's last frame, never handed out
    _, dev, lg, proc = boot(TSS_ESCAPE.replace("{target}", hex(target)), host=host)
    machine = proc.base - 0xC0000000                 # Guest virtual -> machine, for the guess
    tss = bytearray(104)
    struct.pack_into("<II", tss, 0x1C, core.HOST_PGDIR, proc.symbols["ring0"] + machine)
    struct.pack_into("<I", tss, 0x24, 0x2)           # eflags
    struct.pack_into("<I", tss, 0x38, proc.base + 0x100000)          # esp
    struct.pack_into("<IIII", tss, 0x48, 0x58, 0x50, 0x58, 0x58)     # es, cs, ss, ds
    struct.pack_into("<H", tss, 0x66, 104)
    proc.write(proc.symbols["tss"] - 0xC0000000, bytes(tss))
    proc.write(proc.symbols["entry"] - 0xC0000000,
               system_descriptor(0x9, 0, proc.symbols["tss"]))
    return dev, target


def test_on_a_386_the_2_6_23_gdt_rules_let_a_guest_tss_into_ring_0(monkeypatch):
    """What the Mastery chapter tells: a 386 has no CR0.WP, so the task switch may save
    the old state into the read-only TSS page, and the Guest's TSS takes ring 0."""
    host = Host(Machine(HOST_AREA + 2 * (MEM + 4096)))
    host.cpu.cr0 = host.cpu.cr0 & ~0x10000           # no write protection in ring 0
    dev, target = tss_escape(host, True, monkeypatch)
    died, _ = run_to_death(dev)
    assert died.startswith("CPU stopped (hlt)"), died
    assert host.mem.read32(target) == 0x4f574e44     # ring 0 wrote into the Host
    # With WP, as on a 486 and later, the save into the read-only TSS faults first.
    host = Host(Machine(HOST_AREA + 2 * (MEM + 4096)))
    dev, target = tss_escape(host, True, monkeypatch)
    died, _ = run_to_death(dev)
    assert died.startswith("unhandled trap 14"), died
    assert host.mem.read32(target) == 0


def test_lguestsims_rule_stops_the_tss_escape_at_load_gdt(monkeypatch):
    host = Host(Machine(HOST_AREA + 2 * (MEM + 4096)))
    host.cpu.cr0 = host.cpu.cr0 & ~0x10000
    dev, target = tss_escape(host, False, monkeypatch)
    died, _ = run_to_death(dev)
    assert died == "bad GDT entry 14: system descriptor type 9"
    assert host.mem.read32(target) == 0
