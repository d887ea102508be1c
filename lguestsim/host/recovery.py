"""Recovering from a world switch that failed: the Host's shared state, kept whole.

lguest's Switcher cannot fail: it is forty instructions the Host wrote and
checked, and if the processor faulted inside it the Host would be dead
anyway.  lguestsim's Switcher runs on a simulated CPU that a reader can stop,
an exercise can break and a test can fault at every instruction, and a
hostile Guest hands the Host values (a misframed trap, a bad stack) that
reach it.  So the Host keeps an image of everything the world switch shares
between Guests -- its own GDT, IDT, TSS and page tables, the Switcher's code,
its page tables and this CPU's `lguest_pages` -- taken once at start-up, and
checks the CPU after every trip.  A trip that did not come back to the
Host's world exactly, or came back with signs that the Switcher itself
faulted (a trap frame from ring 0, registers saved below `struct
lguest_regs`, a write through the Host's view of the regs slot), kills that
Guest with the reason, puts every shared byte back from the image, and reloads the CPU's
Host context.  The next Guest to run finds a Host as good as new.

Where it sits: x86_core.py calls `check()` in leave_guest() and `recover()` when
the CPU halts or shuts down mid-switch; the tests call `shared_state()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import switcher as switcher_mod
from . import x86_core
from .lg import GDT_ENTRIES, GDT_ENTRY_TSS, PAGE_SIZE, REGS_OFFSET, Lguest, kill_guest

TSS_BUSY = 0x02          # in the type byte of a TSS descriptor (type 9 free, 11 busy)
# What lies just below struct lguest_regs in every regs page (S:019).
CANARY = b"\xa5\x5a" * 32
HOST_VIEW_OF_REGS = "per-CPU regs page (Host's view)"


#: S:017 What the Guests share and no Guest owns, as (name, address, length)
# in machine RAM: the Host's own world, the Switcher's code, the two page
# tables that map it at 0xFFC00000, and this CPU's pair of pages.  A few words
# in there belong to whichever Guest last ran and are rewritten before every
# entry (the Guest's regs page in the Switcher's page table, `esp1` and
# `ss1`, the copies of its IDT and GDT, and the Host's cr3 and stack pointer
# for the way back): `per_guest()` lists them, so that a snapshot can leave
# them out.
@dataclass(frozen=True)
class SharedRegion:
    name: str
    addr: int
    size: int


def shared_regions(core) -> list[SharedRegion]:
    """Every range of machine RAM the world switch shares between Guests."""
    text = switcher_mod.TEXT_PAGES * PAGE_SIZE
    return [
        SharedRegion("Host GDT", core.HOST_GDT, GDT_ENTRIES * 8),
        SharedRegion("Host IDT", core.HOST_IDT, 256 * 8),
        SharedRegion("Host TSS", core.HOST_TSS, 104),
        SharedRegion("Host handlers", core.HOST_IRQ_HANDLER, 32),
        SharedRegion("Host page directory", core.HOST_PGDIR, PAGE_SIZE),
        SharedRegion("Host's Switcher page table", core.HOST_SWITCHER_PTE, PAGE_SIZE),
        SharedRegion("Guests' Switcher page table", core.GUEST_SWITCHER_PTE, PAGE_SIZE),
        SharedRegion("Switcher code", core.SWITCHER_PHYS, text),
        SharedRegion(HOST_VIEW_OF_REGS, core.PERCPU_REGS, PAGE_SIZE),
        SharedRegion("per-CPU read-only page", core.PERCPU_RO, PAGE_SIZE),
    ]


def per_guest(core) -> dict[str, list[tuple[int, int]]]:
    """(offset, length) ranges of each shared region that belong to the last Guest."""
    guest_gdt = [(core.RO_GUEST_GDT + 8 * i, 8) for i in range(GDT_ENTRIES)
                 if i not in (core.GDT_ENTRY_LGUEST_CS, core.GDT_ENTRY_LGUEST_DS, GDT_ENTRY_TSS)]
    return {
        "Guests' Switcher page table": [(4 * switcher_mod.TEXT_PAGES, 4)],
        "per-CPU read-only page": [(core.RO_HOST_CR3, 4), (core.RO_HOST_SP, 4),
                                   (core.RO_GUEST_TSS + 12, 8),
                                   (core.RO_GUEST_IDT, 256 * 8), *guest_gdt],
    }


class Recovery:
    """The image of the Host's shared state, the check after each trip, and the way back."""

    def __init__(self, host) -> None:
        # The Host's map of its own world (its tables, the Switcher's pages)
        # is laid out by x86_core.py.
        self.host, self.core = host, x86_core
        self.mem, self.cpu = host.mem, host.cpu
        self.regions = shared_regions(x86_core)
        self.masks = per_guest(x86_core)
        #: S:018 The image is taken once the Host has built its world and
        # mapped the Switcher (H:000): at that moment every shared byte is as
        # it should be, and the Host's TSS descriptor is busy from the Host's
        # own `ltr`.  Nothing legitimate ever changes these bytes afterwards
        # except the per-Guest words, so the image is also what a snapshot of
        # a healthy Host must equal.
        self.image = {r.name: self.mem.read(r.addr, r.size) for r in self.regions}
        self.failures = 0

    def shared_state(self) -> dict[str, bytes]:
        """The shared regions as they are now, the last Guest's own words zeroed."""
        state = {}
        for r in self.regions:
            raw = bytearray(self.mem.read(r.addr, r.size))
            for off, n in self.masks.get(r.name, ()):
                raw[off:off + n] = bytes(n)
            state[r.name] = bytes(raw)
        return state

    def pristine_state(self) -> dict[str, bytes]:
        """shared_state() of a healthy Host: the start-up image, masked the same way."""
        state = {}
        for r in self.regions:
            raw = bytearray(self.image[r.name])
            for off, n in self.masks.get(r.name, ()):
                raw[off:off + n] = bytes(n)
            state[r.name] = bytes(raw)
        return state

    #: S:019 After every trip the Host looks before it trusts: is the CPU
    # back in ring 0 on the Host's code segment, with the Host's page tables,
    # GDT, IDT and task register, on the stack the far call left?  Is the
    # Host's TSS descriptor busy (its `ltr` ran) and the Guest's free (the
    # Switcher cleared it, so the next `ltr` works)?  And did the trap come
    # from the Guest?  The processor pushes the interrupted code segment, and
    # a Guest runs in ring 1 or 3, never 0: a frame whose `cs` has privilege
    # level 0 was pushed by a fault inside the Switcher itself, and so is a
    # trap number above 255 (256 is what enter_guest() wrote).  A frame can
    # also be pushed twice, by a fault in a trap stub or just before the
    # Switcher's `iret`: the second lands below the first, and the Switcher
    # then saves the registers below `struct lguest_regs`.  So the 64 bytes
    # under it hold a canary, written when the regs page is made (`arm()`),
    # and a changed canary is a failed switch too.  A fault taken between the
    # Switcher's load of the Host's cr3 and of the Host's IDT goes through the
    # Guest's IDT to a stub, which pushes through the Host's mapping of the
    # regs slot: that page, which nothing else ever writes, must be as at
    # start-up.  These are a dozen comparisons, cheap enough for every trip.
    def check(self, lg: Lguest) -> str | None:
        """Why the trip that just ended did not return cleanly, or None if it did."""
        core, cpu, mem = self.core, self.cpu, self.mem
        # (The trap left %ss on LGUEST_DS, from the Guest's TSS, and the
        # Switcher's iret to ring 0 keeps it: both are flat ring-0 data.)
        if cpu.cpl != 0 or cpu.cs != core.KERNEL_CS \
                or cpu.ss not in (core.KERNEL_DS, core.LGUEST_DS) \
                or cpu.cr3 != core.HOST_PGDIR or cpu.gdtr[0] != core.HOST_GDT \
                or cpu.idtr[0] != core.HOST_IDT or cpu.tr != GDT_ENTRY_TSS * 8 \
                or cpu.esp != core.HOST_STACK_TOP:
            return "the Switcher did not bring the Host's world back"
        if not mem.read8(core.HOST_GDT + GDT_ENTRY_TSS * 8 + 5) & TSS_BUSY \
                or mem.read8(core.PERCPU_RO + core.RO_GUEST_GDT + GDT_ENTRY_TSS * 8 + 5) \
                & TSS_BUSY:
            return "the Switcher left a TSS descriptor in the wrong state"
        regs = lg.regs
        trapnum = regs.trapnum
        if trapnum > 255 or regs.cs & 3 == 0:
            return f"trap {trapnum} inside the Switcher at {regs.eip:#x}"
        if mem.read(lg.regs_page + REGS_OFFSET - len(CANARY), len(CANARY)) != CANARY:
            return "the Switcher faulted and saved registers below struct lguest_regs"
        if mem.read(core.PERCPU_REGS, PAGE_SIZE) != self.image[HOST_VIEW_OF_REGS]:
            return "the Switcher faulted after loading the Host's page tables"
        return None

    def arm(self, regs_page: int) -> None:
        """Write the canary under struct lguest_regs in a new regs page."""
        self.mem.write(regs_page + REGS_OFFSET - len(CANARY), CANARY)

    #: S:020 The way back from a failed switch.  The Guest whose trip it
    # was dies, with the reason.  Every shared byte is written back from the
    # image (the Switcher may have half-loaded tables, left a busy bit, or
    # pushed over its own pages), the CPU is put back in the Host's context
    # exactly as module init left it, and `last_guest` is forgotten, so the
    # next Guest to run has its IDT and GDT copied in whole.  Nothing of any
    # other Guest is touched: their registers and shadow tables live in their
    # own pages.  The CPU then "returns" from the far call, at HOST_RETURN.
    def recover(self, lg: Lguest, reason: str) -> None:
        """Kill the Guest whose switch failed and put the Host back as it was."""
        self.failures += 1
        kill_guest(lg, reason)
        self.host.trace.emit("switch-failed", guest=lg.guestid, reason=reason)
        for r in self.regions:
            self.mem.write(r.addr, self.image[r.name])
        self.host.load_host_context()
        self.host.last_guest = None
        self.cpu.eip = self.core.HOST_RETURN
