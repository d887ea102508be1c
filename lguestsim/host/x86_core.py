"""The x86 half of the Host: lguest's drivers/lguest/x86/core.c (2.6.25).

Everything here is particular to the i386: the Host's own GDT, IDT, TSS,
page tables and stack, built on the bare simulated machine; the Switcher
mapped at 0xFFC00000; the copy of a Guest's state into this CPU's pages;
the trip into the Switcher and back (``enter_guest``, ``run_cpu_until_exit``,
``leave_guest``); and the emulation of ``in`` and ``out``.  ``Host`` in
core.py inherits it (``X86Core``), so the methods share the Host's state.
"""

#: P:450 What 2.6.25 changed in the Host's files: the x86-specific code left
# core.c for drivers/lguest/x86/core.c, in preparation for porting lguest to
# other architectures.  lguestsim follows: core.py keeps
# what any architecture would need -- the Launcher's memory, the Guests, the
# page allocator, the scheduler, `run_guest`'s loop -- and this file the
# x86's own: the Host's tables, the Switcher's mapping and the trip through it,
# and the instructions a ring-1 kernel cannot run.  The file also keeps the
# non-obvious setup and teardown pieces (the busy bits of the TSS
# descriptors, SYSENTER_CS, the TS bit) that lguest's authors found after
# days of debugging.

from __future__ import annotations

import struct

from .. import switcher as switcher_mod
from ..x86.segments import SegmentCache, encode
from . import segments
from .lg import (
    CHANGED_ALL,
    CHANGED_GDT,
    CHANGED_GDT_TLS,
    CHANGED_IDT,
    FULL_EXEC_SEGMENT,
    FULL_SEGMENT,
    GDT_ENTRIES,
    GDT_ENTRY_LGUEST_CS,
    GDT_ENTRY_LGUEST_DS,
    GDT_ENTRY_TSS,
    KERNEL_CS,
    KERNEL_DS,
    LGUEST_CS,
    LGUEST_DS,
    LGUEST_TRAP_ENTRY,
    PAGE_SIZE,
    Lguest,
    lgread,
)

#: P:451 The Host's map of the machine.  The Host keeps its own tables at
# fixed low addresses of machine RAM, which it maps one-to-one (host-virtual
# = host-physical); the Switcher's code pages sit at 0x10000 with this CPU's
# pair of pages (`struct lguest_pages`: a registers page and a read-only state
# page) after them.  Frames for shadow page tables and regs pages come from
# 1 MiB up to 16 MiB, and Launchers get the memory above.  The constants
# after these give the other view: in every address space, Host and Guest
# alike, the Switcher's pages appear at SWITCHER_ADDR, 0xFFC00000.  The
# simulated machine has one CPU, so there is just one pair of pages.
HOST_GDT, HOST_IDT, HOST_TSS = 0x1000, 0x2000, 0x3000
HOST_IRQ_HANDLER = 0x4000          # the Host's interrupt handler: a lone iret
HOST_FAULT_HANDLER = 0x4010        # the Host's exception handler: an oops (hlt)
HOST_RETURN = 0x5000               # where the far call returns: Python, not x86
HOST_STACK_TOP = 0x8000
HOST_PGDIR = 0x8000
HOST_SWITCHER_PTE = 0x9000         # the Host's own mapping of the Switcher pages
GUEST_SWITCHER_PTE = 0xA000        # this CPU's Switcher PTE page in every shadow pgdir
SWITCHER_PHYS = 0x10000            # two pages of Switcher code
PERCPU_REGS = SWITCHER_PHYS + switcher_mod.TEXT_PAGES * PAGE_SIZE
PERCPU_RO = PERCPU_REGS + PAGE_SIZE
FRAME_POOL = 0x100000              # shadow page tables, regs pages: from here...
HOST_AREA = 16 << 20               # ...to here; Launchers' memory lies above

SWITCHER_ADDR = switcher_mod.SWITCHER_ADDR
PAGES = SWITCHER_ADDR + switcher_mod.TEXT_PAGES * PAGE_SIZE     # struct lguest_pages
RO = PAGES + PAGE_SIZE
# struct lguest_ro_state offsets
RO_HOST_CR3, RO_HOST_IDT_DESC, RO_HOST_GDT_DESC, RO_HOST_SP = 0, 4, 12, 20
RO_GUEST_IDT_DESC, RO_GUEST_GDT_DESC, RO_GUEST_TSS = 24, 32, 40
RO_GUEST_IDT, RO_GUEST_GDT = 144, 2192
HOST_TIMER_VECTOR = 0x20
TIME_SLICE = 2_000_000             # cycles a Guest runs before another gets the CPU
SWITCHER_WATCHDOG = 10_000         # instructions in ring 0 after which a switch is stuck
MSR_SYSENTER_CS = 0x174
CR0_TS = 8

#: H:040 The x86 half of setting up and running a Guest, as 2.6.25 cut it out
# of the Host's core.  What stays in core.py (`run_guest`'s loop, hypercalls,
# interrupts, shadow page tables) would be the same on any processor; what is
# here could only be an x86's: the Host's GDT, IDT and TSS, mapping the
# Switcher's pages at the top of every address space, copying the Guest's
# registers into the Switcher's per-CPU page, the far call through the
# Switcher and back, and decoding the few instructions (in, out) a Guest may
# run only by having the Host emulate them.  The Host inherits it, so the
# rest of the Host reads as before.


class X86Core:
    """The x86-specific part of the Host (inherited by core.Host)."""

    # -- the Host's own world
    #: H:005 Everything a Linux Host would already have when lguest loads:
    # a GDT with the kernel's flat segments and the two LGUEST ones, an IDT
    # whose every interrupt vector leads to a lone `iret` (the Host's
    # "handler": by then the Python Host has done the real work) and whose
    # exception vectors (0 to 31) lead to a `hlt`: an exception in the Host's
    # own world can only come from a broken world switch, and Linux would
    # oops; the CPU stops and the Host recovers (S:015).  Then a TSS with the
    # Host's kernel stack, and page tables mapping all RAM one-to-one with
    # 4 MiB pages plus the Switcher's last 4 MiB.  The CPU is then put in that
    # world, in ring 0 (`load_host_context()`, which recovery uses too).
    # Note that cr4 has PSE but not PGE: lguest's init turned global pages off,
    # because a global Host mapping would survive the Switcher's change of cr3
    # and show up inside the Guest.
    def _init_host_world(self) -> None:
        mem = self.mem
        gdt = bytearray(GDT_ENTRIES * 8)
        flat_code, flat_data = encode(0, 0xFFFFF, 0x9B), encode(0, 0xFFFFF, 0x93)
        for entry, desc in ((GDT_ENTRY_LGUEST_CS, flat_code), (GDT_ENTRY_LGUEST_DS, flat_data),
                            (KERNEL_CS // 8, flat_code), (KERNEL_DS // 8, flat_data),
                            (GDT_ENTRY_TSS, encode(HOST_TSS, 0x67, 0x89, 0))):
            gdt[entry * 8:entry * 8 + 8] = desc
        mem.write(HOST_GDT, bytes(gdt))
        idt = b"".join(struct.pack("<II", (KERNEL_CS << 16) | (handler & 0xFFFF),
                                   (handler & 0xFFFF0000) | 0x8E00)
                       for handler in [HOST_FAULT_HANDLER] * 32 + [HOST_IRQ_HANDLER] * 224)
        mem.write(HOST_IDT, idt)
        tss = bytearray(104)
        struct.pack_into("<II", tss, 4, HOST_STACK_TOP, KERNEL_DS)
        struct.pack_into("<H", tss, 0x66, 104)
        mem.write(HOST_TSS, bytes(tss))
        mem.write(HOST_IRQ_HANDLER, b"\xcf")          # iret
        mem.write(HOST_FAULT_HANDLER, b"\xf4")        # hlt
        # Host page tables: all RAM identity-mapped with 4 MiB pages, and the Switcher.
        pgdir = bytearray(PAGE_SIZE)
        for i in range(min(1023, (mem.size + (4 << 20) - 1) >> 22)):
            struct.pack_into("<I", pgdir, i * 4, (i << 22) | 0x1E3)   # P RW A D PS, global off
        struct.pack_into("<I", pgdir, 1023 * 4, HOST_SWITCHER_PTE | 0x063)
        mem.write(HOST_PGDIR, bytes(pgdir))
        self.load_host_context()

    def load_host_context(self) -> None:
        """The CPU as the Host runs: its tables loaded, ring 0, on its own stack."""
        cpu = self.cpu
        cpu.reset_flat32()
        cpu.gdtr = (HOST_GDT, GDT_ENTRIES * 8 - 1)
        cpu.idtr = (HOST_IDT, 256 * 8 - 1)
        cpu.cr4 = 0x10                                  # PSE; the Host turns PGE off
        cpu.cr3 = HOST_PGDIR
        cpu.cr0 = cpu.cr0 | 0x80010023                  # PG WP NE MP
        cpu.load_cs(KERNEL_CS)
        for s in ("ds", "es", "ss"):
            cpu.load_segment(s, KERNEL_DS)
        cpu.load_segment("fs", 0)
        cpu.load_segment("gs", 0)
        # ltr refuses a busy TSS: free the Host's descriptor first (it is busy
        # again once loaded), in case we come here to recover.
        self.mem.write8(HOST_GDT + GDT_ENTRY_TSS * 8 + 5, 0x89)
        cpu.load_tr(GDT_ENTRY_TSS * 8)
        cpu.esp = HOST_STACK_TOP
        cpu.eflags = 0x2
        cpu.msr[MSR_SYSENTER_CS] = KERNEL_CS

    #: H:010 The Switcher has to be at one and the same virtual address in the
    # Host and in every Guest, because it is running at the very moment the
    # address space changes under it.  We copy its code into its pages and build
    # two page tables for the top 4 MiB (0xFFC00000): the Host's, where all of it
    # is writable, and the one every shadow page directory will share, where
    # the code and the read-only state are read-only and the registers slot is
    # left for `map_switcher_in_guest()` to fill with the running Guest's regs
    # page.  Then we fill in the read-only state page as far as it is the same
    # for every Guest: the Host's and Guest's descriptor-table pointers; a TSS
    # whose ring-0 stack is the end of the regs page, so a trap saves the
    # Guest's registers right where the Host reads them; the LGUEST segments;
    # and an IDT sending every vector to its Switcher stub.  The Switcher is
    # assembled to run at 0xFFC00000, so unlike lguest's, its stubs need no
    # relocation.
    def _map_switcher(self) -> None:
        """Copy the Switcher into its pages and map them at 0xFFC00000."""
        mem = self.mem
        mem.write(SWITCHER_PHYS, self.switcher.code)
        text = [SWITCHER_PHYS + i * PAGE_SIZE for i in range(switcher_mod.TEXT_PAGES)]
        #: H:510 lguest allocated one Switcher page table for each CPU when its
        # module loaded, since each CPU had its own `lguest_pages`.  The
        # simulated machine has one CPU, so the Host builds the one page table
        # here, once, at start-up, and every shadow page directory of every
        # Guest points its top entry at it.

        #: H:520 Filling the two page tables for the top 4 MiB.  The Host's maps
        # the Switcher's code and both per-CPU pages writable (0x063: present,
        # writable, accessed, dirty).  The Guests' one maps the code and the
        # read-only state page present and read-only (0x021), and leaves the
        # regs slot empty: `map_switcher_in_guest` fills it before each run
        # with the running Guest's regs page, writable, so the processor can
        # save the Guest's registers there on a trap.
        host_pte = bytearray(PAGE_SIZE)
        guest_pte = bytearray(PAGE_SIZE)
        for i, page in enumerate(text):
            struct.pack_into("<I", host_pte, i * 4, page | 0x063)
            struct.pack_into("<I", guest_pte, i * 4, page | 0x021)    # read-only to the Guest
        n = switcher_mod.TEXT_PAGES
        struct.pack_into("<I", host_pte, n * 4, PERCPU_REGS | 0x063)
        struct.pack_into("<I", host_pte, (n + 1) * 4, PERCPU_RO | 0x063)
        struct.pack_into("<I", guest_pte, (n + 1) * 4, PERCPU_RO | 0x021)
        mem.write(HOST_SWITCHER_PTE, bytes(host_pte))
        mem.write(GUEST_SWITCHER_PTE, bytes(guest_pte))
        # The read-only state every Guest entry uses on this CPU.
        ro = bytearray(PAGE_SIZE)
        struct.pack_into("<HI", ro, RO_HOST_IDT_DESC, 256 * 8 - 1, HOST_IDT)
        struct.pack_into("<HI", ro, RO_HOST_GDT_DESC, GDT_ENTRIES * 8 - 1, HOST_GDT)
        struct.pack_into("<HI", ro, RO_GUEST_IDT_DESC, 256 * 8 - 1, RO + RO_GUEST_IDT)
        struct.pack_into("<HI", ro, RO_GUEST_GDT_DESC, GDT_ENTRIES * 8 - 1, RO + RO_GUEST_GDT)
        # The Guest's TSS: traps to ring 0 land at the end of the regs page, on LGUEST_DS.
        struct.pack_into("<II", ro, RO_GUEST_TSS + 4, PAGES + PAGE_SIZE, LGUEST_DS)
        struct.pack_into("<H", ro, RO_GUEST_TSS + 0x66, 104)
        gdt = RO_GUEST_GDT
        ro[gdt + GDT_ENTRY_LGUEST_CS * 8: gdt + GDT_ENTRY_LGUEST_CS * 8 + 8] = \
            struct.pack("<II", *FULL_EXEC_SEGMENT)
        ro[gdt + GDT_ENTRY_LGUEST_DS * 8: gdt + GDT_ENTRY_LGUEST_DS * 8 + 8] = \
            struct.pack("<II", *FULL_SEGMENT)
        ro[gdt + GDT_ENTRY_TSS * 8: gdt + GDT_ENTRY_TSS * 8 + 8] = \
            encode(RO + RO_GUEST_TSS, 0x67, 0x89, 0)
        # Default IDT: every vector to its Switcher stub; only the hypercall
        # vector may be raised from ring 1 (DPL 1).
        for v in range(256):
            stub = self.switcher.stub(v)
            flags = 0xAE00 if v == LGUEST_TRAP_ENTRY else 0x8E00
            entry = ((LGUEST_CS << 16) | (stub & 0xFFFF), (stub & 0xFFFF0000) | flags)
            self.default_idt.append(entry)
            struct.pack_into("<II", ro, RO_GUEST_IDT + 8 * v, *entry)
        self.mem.write(PERCPU_RO, bytes(ro))

    # -- host memory
    # -- running a Guest
    #: S:010 Now we come close to the Switcher.  This CPU's two pages at the top
    # of memory, visible to the Guest while it runs, must hold that Guest's
    # state: we copy it in just before each entry.  The cheap parts are copied
    # every time: the Host's cr3 for the way back, the Guest's regs page in the
    # Switcher mapping, and the ring-1 stack (`esp1`, `ss1`) that traps going
    # straight to the Guest will use.  The IDT and GDT are big, so they are only
    # copied when the `changed` flags (set by interrupts_and_traps.py and
    # segments.py) say so, or when another Guest used this CPU since this one
    # ran, which makes everything count as changed.
    #
    # The flags came after measuring: copying both tables on every entry had
    # cost about 15% of a Guest's context switch (7800 ns became 9000 ns
    # without them).  `Host(changed_flags=False)` puts that back, everything
    # counted as changed on every entry, and bench_figures.py compares.
    def copy_in_guest_info(self, lg: Lguest) -> None:
        """Put this Guest's state where the Switcher and the CPU will look for it."""
        mem = self.mem
        if self.last_guest is not lg or not self.changed_flags:
            lg.changed = CHANGED_ALL
            self.last_guest = lg
        self.charge("copy_in_guest_info")
        mem.write32(PERCPU_RO + RO_HOST_CR3, self.cpu.cr3)
        self.page_tables.map_switcher_in_guest(lg)
        mem.write(PERCPU_RO + RO_GUEST_TSS + 12, struct.pack("<II", lg.esp1, lg.ss1))
        if lg.changed & CHANGED_IDT:
            self.charge("copy_idt")
            idt = list(self.default_idt)
            self.interrupts.copy_traps(lg, idt, self.default_idt)
            mem.write(PERCPU_RO + RO_GUEST_IDT,
                      b"".join(struct.pack("<II", lo, hi) for lo, hi in idt))
        if lg.changed & CHANGED_GDT:
            self.charge("copy_gdt")
            gdt = self._read_percpu_gdt()
            segments.copy_gdt(lg, gdt)
            self._write_percpu_gdt(gdt)
        elif lg.changed & CHANGED_GDT_TLS:
            gdt = self._read_percpu_gdt()
            segments.copy_gdt_tls(lg, gdt)
            self._write_percpu_gdt(gdt)
        lg.changed = 0

    def _read_percpu_gdt(self) -> list:
        raw = self.mem.read(PERCPU_RO + RO_GUEST_GDT, GDT_ENTRIES * 8)
        return [struct.unpack_from("<II", raw, 8 * i) for i in range(GDT_ENTRIES)]

    def _write_percpu_gdt(self, gdt: list) -> None:
        self.mem.write(PERCPU_RO + RO_GUEST_GDT, b"".join(struct.pack("<II", a, b) for a, b in gdt))

    #: S:011 A single trip into the Guest and back.  In lguest this is one
    # C function around one `lcall`; here it is three steps, because the trip
    # itself is simulated: set the CPU up at the Switcher's entry, let the CPU
    # execute (the Switcher, then the Guest, then the Switcher again) until it
    # comes back to the Host, and tidy up.  `run_guest` does the middle step
    # itself so that a stepping session can run the trip one instruction at a
    # time.
    def run_guest_once(self, lg: Lguest) -> None:
        """One trip into the Guest and back, every instruction of it on the CPU."""
        self.enter_guest(lg)
        self.run_cpu_until_exit(lg)
        self.leave_guest(lg)

    #: S:012 lguest enters the Switcher with `pushf; lcall *lguest_entry`: the
    # far call loads LGUEST_CS and pushes the Host's code segment and a return
    # address, so with eflags below them the Host's stack looks exactly like an
    # interrupt frame, which the Switcher's `iret` will unwind on the way back.
    # We build that frame on the Host stack by hand, with HOST_RETURN as the
    # return address: nothing lives there, and the CPU stops when it gets there.
    # %eax points at this CPU's `lguest_pages` and %ebx holds the shadow page
    # directory, as the Switcher expects.  Before that: the trap number is set
    # to an impossible 256, so a fault on the way in is noticed; the Guest's
    # FPU and virtual TS bit go in; and SYSENTER is disabled, since it would
    # jump straight to ring 0.
    def enter_guest(self, lg: Lguest) -> None:
        """lguest's ``pushf; lcall *lguest_entry``: the CPU is left at switch_to_guest."""
        cpu, mem = self.cpu, self.mem
        self.copy_in_guest_info(lg)
        lg.regs.trapnum = 256          # if we fault on the way in, this says so
        cpu.fpu = lg.fpu
        if lg.ts:
            cpu.cr0 = cpu.cr0 | CR0_TS
        cpu.msr[MSR_SYSENTER_CS] = 0
        # eflags, the Host's code segment and a return address where no code
        # lives: the frame an interrupt would push, which the Switcher irets to.
        sp = cpu.esp - 12                      # pushed in this order, so lowest last
        mem.write(sp, struct.pack("<III", HOST_RETURN, KERNEL_CS, cpu.eflags))
        cpu.esp = sp
        cpu.eax = PAGES                                  # this CPU's lguest_pages
        cpu.ebx = lg.pgdirs[lg.pgdidx].page              # the shadow page directory
        cpu.set_cs(SegmentCache(LGUEST_CS, 0, 0xFFFFFFFF, 0x9B, True, True), 0)
        cpu.eip = self.switcher.switch_to_guest
        cpu.exit_eip = HOST_RETURN
        self.trace.emit("switch", guest=lg.guestid, to="guest", eip=lg.regs.eip)

    #: S:014 The Host's timer interrupt is how time keeps working while a Guest
    # runs: the machine's timers (the Guest's clock, the scheduler tick, the
    # Waker) fire, and vector 0x20 is raised on the CPU.  If the Guest is
    # running, the IDT sends it to the Switcher's stub, which goes back to the
    # Host (`deliver_to_host`), and `run_guest` finds a trap number of 32.
    def host_timer_due(self) -> None:
        """The clock passed a deadline: fire the timers and interrupt the CPU.

        The Host's timer interrupt preempts a running Guest: the Switcher's
        stub for it goes to deliver_to_host, and we are back in run_guest."""
        cpu, machine = self.cpu, self.machine
        if HOST_TIMER_VECTOR not in cpu.pending:
            cpu.raise_interrupt(HOST_TIMER_VECTOR)
        while cpu.cycles >= machine.next_deadline() and machine.fire_timers():
            pass

    #: S:013 The trip itself: the CPU runs instruction by instruction until
    # it reaches HOST_RETURN, the return address `enter_guest()` pushed.  The
    # run is cut short at each timer deadline so that timers fire on time; the
    # Host timer interrupt then pulls the Guest out, and we carry on running
    # until the Switcher is back.  A CPU that halts or shuts down on the way
    # is the only other way out.
    #
    # A Guest never runs in ring 0, and the Switcher's way through takes some
    # sixty instructions.  So when the run stops at a deadline in ring 0, the
    # CPU is given a budget of SWITCHER_WATCHDOG instructions to get out of
    # it; one that spends them all is going round in the Switcher (a fault
    # delivered again and again) and counts as stopped.  Without any timer,
    # the run still stops every time slice to look.
    def run_cpu_until_exit(self, lg: Lguest) -> None:
        cpu, machine = self.cpu, self.machine
        while True:
            why = cpu.run(deadline=min(machine.next_deadline(), cpu.cycles + self.time_slice))
            if why == "deadline" and cpu.cpl == 0:
                why = self.watch_switcher()
            if why == "exit":
                return
            if why == "deadline":
                if cpu.cycles >= machine.next_deadline():
                    self.host_timer_due()
                continue
            self.cpu_stopped(lg, why)
            return

    def watch_switcher(self) -> str:
        """Step the CPU out of ring 0: "exit", "deadline" (in the Guest), or why it stopped."""
        cpu = self.cpu
        for _ in range(SWITCHER_WATCHDOG):
            if cpu.eip == HOST_RETURN:
                return "exit"
            if cpu.cpl != 0:
                return "deadline"
            why = cpu.step()
            if why is not None:
                return why
        return "stuck in ring 0"

    #: S:015 A correct Switcher never halts or triple-faults the CPU, and a
    # Guest cannot (it runs in ring 1, so `hlt` traps).  If it happens anyway,
    # say in an exercise that broke the Switcher, a fault that reached the
    # Host's own exception handler (H:005), or a Guest that handed the
    # Switcher a frame it could not use, the simulation must not hang or
    # take other Guests down: the Guest is killed with the address where it
    # happened, every byte the Guests share and the CPU's Host context are put
    # back as they were (recovery.py), and the trip "returns".
    def cpu_stopped(self, lg: Lguest, why: str) -> None:
        """A halted or shut-down CPU in the middle of a world switch is a Host bug:
        report it as the Guest's death rather than hang."""
        self.recovery.recover(lg, f"CPU stopped ({why}) during the world switch "
                                  f"at {self.cpu.eip:#x}")

    #: S:016 Back from the Switcher: undo what `enter_guest()` changed for
    # the Guest.  A Host timer interrupt still pending has done its job (the
    # timers fired when it was raised), the TS bit is cleared, and the Host's
    # SYSENTER segment is restored.  lguest does this with interrupts off, and
    # must read cr2 before turning them on, in case another fault changes it;
    # the Python Host takes no interrupts, so `guest_steps()` reads it next.
    def leave_guest(self, lg: Lguest) -> None:
        cpu = self.cpu
        if lg.dead is None:
            failed = self.recovery.check(lg)
            if failed is not None:
                self.recovery.recover(lg, failed)
        cpu.exit_eip = None
        if HOST_TIMER_VECTOR in cpu.pending:
            cpu.pending.remove(HOST_TIMER_VECTOR)
        if cpu.cr0 & CR0_TS:
            cpu.cr0 = cpu.cr0 & ~CR0_TS
        cpu.msr[MSR_SYSENTER_CS] = KERNEL_CS
        lg.world_switches += 1
        self.trace.emit("switch", guest=lg.guestid, to="host", trapnum=lg.regs.trapnum,
                        errcode=lg.regs.errcode, eip=lg.regs.eip)

    #: H:130 The Guest is paravirtualized, but not completely: Linux's boot
    # code still pokes at I/O ports to look for a PC's usual chips.  In ring 1
    # with IOPL 0, `in` and `out` cause a general protection fault, so they come
    # here.  We read the instruction at the Guest's eip (kernel addresses only,
    # turned physical by subtracting `page_offset`, as lguest's `guest_pa()`
    # does), allow one 0x66 operand-size prefix, and recognise the four opcode
    # pairs: port in the next byte (two bytes long) or in %dx (one byte).  An
    # `out` is ignored; an `in` reads all ones, what an empty bus returns.  Then
    # eip skips the instruction.  lguest's own version set more bits than the
    # instruction reads (all of %ax for a byte, all of %eax for a prefixed
    # word); this one sets exactly %al, %ax or %eax.
    def emulate_insn(self, lg: Lguest) -> bool:
        """A Guest's in or out trapped (ring 1, IOPL 0): pretend no device answered."""
        regs = lg.regs
        eip = regs.eip
        if eip < lg.page_offset:
            return False
        raw = lgread(lg, self.mem, (eip - lg.page_offset) & 0xFFFFFFFF, 4)
        insn = int.from_bytes(raw, "little")
        self.charge("emulate_insn")
        length, shift = 0, 0
        if insn & 0xFF == 0x66:
            shift, length = 16, 1
            insn >>= 8
        op = insn & 0xFF
        if op in (0xE4, 0xE5, 0xE6, 0xE7):
            length += 2
        elif op in (0xEC, 0xED, 0xEE, 0xEF):
            length += 1
        else:
            return False
        if op in (0xE4, 0xE5, 0xEC, 0xED):
            if op & 1 == 0:
                mask = 0xFF
            else:
                mask = 0xFFFF if shift else 0xFFFFFFFF
            regs.eax = regs.eax | mask
        regs.eip = (eip + length) & 0xFFFFFFFF
        self.trace.emit("trap", guest=lg.guestid, vector=13, emulated="in" if op in
                        (0xE4, 0xE5, 0xEC, 0xED) else "out", eip=eip)
        return True
