"""Hypercalls: the Guest asking the Host for everything a ring-1 kernel can't do.

The Guest traps with ``int $0x1F``: eax says which call, edx, ebx and ecx
carry the arguments, and a result (for the few calls that have one) goes back
in eax.  Calls that may be batched (page-table updates, in lazy mode) can
instead be written into a ring in struct lguest_data, which the Host drains
every time it gets control, before it looks at a synchronous call.

A Guest's very first hypercall must be LGUEST_INIT, telling the Host where
lguest_data lives.  A malformed call is not answered with an error: the Guest
is killed.
"""

#: P:500 A program asks its kernel for things it may not do itself with a
# system call; a Guest kernel asks the Host with a hypercall.  The Guest runs in
# ring 1, where loading page tables, descriptor tables or the kernel stack
# would fault, so for each of those it traps into the Host instead, with a call
# number and up to three arguments in registers.  This file decodes those
# requests and carries them out, mostly by handing them to the other parts of
# the Host (page_tables.py, segments.py, interrupts_and_traps.py, io.py).  The
# Host looks for hypercalls at the top of every trip round `run_guest`'s loop.

from __future__ import annotations

import struct

from .. import machine as machine_mod
from . import segments
from .lg import (
    HCALL_NAMES,
    HCALL_NAMES_2625,
    LD25_KERNEL_ADDRESS,
    LD25_NOIRQ_END,
    LD25_NOIRQ_START,
    LD25_PGDIR,
    LD25_SYSCALL_VEC,
    LD25_TSC_KHZ,
    LD_GUESTID,
    LD_HCALL_STATUS,
    LD_HCALLS,
    LD_NOIRQ_END,
    LD_NOIRQ_START,
    LD_RESERVE_MEM,
    LD_TIME,
    LD_TSC_KHZ,
    LG_CLOCK_MIN_DELTA,
    LGUEST_DATA_SIZE,
    LGUEST_DATA_SIZE_2625,
    LGUEST_SHUTDOWN_RESTART,
    LGUEST_TRAP_ENTRY,
    LHCALL_BIND_DMA,
    LHCALL_CRASH,
    LHCALL_FLUSH_ASYNC,
    LHCALL_FLUSH_TLB,
    LHCALL_HALT,
    LHCALL_LGUEST_INIT,
    LHCALL_LOAD_GDT,
    LHCALL_LOAD_IDT_ENTRY,
    LHCALL_LOAD_TLS,
    LHCALL_NEW_PGTABLE,
    LHCALL_NOTIFY,
    LHCALL_RING_SIZE,
    LHCALL_SEND_DMA,
    LHCALL_SET_CLOCKEVENT,
    LHCALL_SET_PMD,
    LHCALL_SET_PTE,
    LHCALL_SET_STACK,
    LHCALL_TS,
    SYSCALL_VECTOR,
    Lguest,
    kill_guest,
    lgread,
    lgread_u32,
    lguest_address_ok,
    lgwrite,
    lgwrite_u32,
)

RESERVE_MEM = 4 * 1024 * 1024   # what the Guest keeps free at the top for the Switcher (4 MiB)


class Hypercalls:
    def __init__(self, host) -> None:
        self.host = host
        self.mem = host.machine.mem

    #: H:120 Here one hypercall is carried out, whichever way it arrived: from
    # the trap's registers or from the asynchronous ring.  `eax` selects the
    # call and `edx`, `ebx`, `ecx` are its arguments, as the Guest loaded them.
    # Most calls pass straight on to the part of the Host that owns the state
    # (shadow page tables, GDT, IDT, DMA); a few just set a field of the
    # `Lguest`, like the virtual TS bit or `halted`.  An unknown call number, or
    # a second LGUEST_INIT, kills the Guest, and CRASH kills it on purpose with
    # the Guest's own message.  Only BIND_DMA has a result, which the caller
    # puts back in the Guest's %eax.
    def do_hcall(self, lg: Lguest, eax: int, edx: int, ebx: int, ecx: int) -> int | None:
        """Carry out one hypercall; returns the value for eax, if the call has one."""
        host, mem = self.host, self.mem
        lg.hypercalls += 1
        host.trace.emit("hypercall", guest=lg.guestid, call=eax,
                        name=(HCALL_NAMES_2625 if lg.virtio else HCALL_NAMES).get(eax, "?"),
                        args=(edx, ebx, ecx))
        host.charge("hypercall")
        pt = host.page_tables
        if eax == LHCALL_FLUSH_ASYNC:
            pass
        elif eax == LHCALL_LGUEST_INIT:
            kill_guest(lg, "already have lguest_data")
        elif eax == LHCALL_CRASH:
            raw = lgread(lg, mem, edx, 128)
            msg = raw.split(b"\0", 1)[0][:127].decode("latin-1")
            kill_guest(lg, f"CRASH: {msg}")
            #: L:231 2.6.25's SHUTDOWN is the same call with a second argument:
            # LGUEST_SHUTDOWN_RESTART marks the Guest dead in a special way
            # (lguest stores -ERESTART where the reason would go), and every
            # read() after that fails with ERESTART instead of giving a reason.
            # The Launcher takes that as "start me again" (L:230).
            if lg.virtio and ebx == LGUEST_SHUTDOWN_RESTART and lg.dead == f"CRASH: {msg}":
                lg.restart = True
                host.trace.emit("restart", guest=lg.guestid, reason=msg)
        elif lg.virtio and eax in (LHCALL_BIND_DMA, LHCALL_SEND_DMA):
            kill_guest(lg, f"Bad hypercall {eax}: DMA is gone in 2.6.25; use virtio and NOTIFY")
        elif lg.virtio and eax == LHCALL_NOTIFY:
            #: H:129 NOTIFY, the one I/O hypercall of 2.6.25.  The Host does not
            # look at the address at all: it only remembers it in
            # `pending_notify`, and `run_guest` returns it to the Launcher as
            # read()'s four bytes before the Guest runs again.  The Launcher
            # decides what the address means (a virtqueue's pages, a device
            # descriptor, or an early console string) and checks it.
            lg.pending_notify = edx
            host.trace.emit("notify", guest=lg.guestid, addr=edx)
        elif eax == LHCALL_FLUSH_TLB:
            if edx:
                pt.guest_pagetable_clear_all(lg)
            else:
                pt.guest_pagetable_flush_user(lg)
        elif eax == LHCALL_BIND_DMA:
            return host.io.bind_dma(lg, edx, ebx, ecx >> 8, ecx & 0xFF)
        elif eax == LHCALL_SEND_DMA:
            host.io.send_dma(lg, edx, ebx)
        elif eax == LHCALL_LOAD_GDT:
            segments.load_guest_gdt(lg, mem, edx, ebx)
        elif eax == LHCALL_LOAD_IDT_ENTRY:
            host.interrupts.load_guest_idt_entry(lg, edx, ebx, ecx)
        elif eax == LHCALL_NEW_PGTABLE:
            pt.guest_new_pagetable(lg, edx)
        elif eax == LHCALL_SET_STACK:
            host.interrupts.guest_set_stack(lg, edx, ebx, ecx)
        elif eax == LHCALL_SET_PTE:
            pt.guest_set_pte(lg, edx, ebx, ecx)
        elif eax == LHCALL_SET_PMD:
            pt.guest_set_pmd(lg, edx, ebx)
        elif eax == LHCALL_LOAD_TLS:
            segments.guest_load_tls(lg, mem, edx)
        elif eax == LHCALL_SET_CLOCKEVENT:
            self.guest_set_clockevent(lg, edx)
        elif eax == LHCALL_TS:
            lg.ts = edx
        elif eax == LHCALL_HALT:
            lg.halted = True
        else:
            kill_guest(lg, f"Bad hypercall {eax}")
        return None

    #: H:125 Some hypercalls come in bulk: while the Guest is updating page
    # tables in lazy mode, it writes calls into the 64-entry ring inside its
    # `lguest_data` instead of trapping for each one.  A status byte per entry
    # says whether it waits (0) or is free (0xFF).  The Host walks the ring from
    # where it stopped last time (`next_hcall`), runs each waiting entry in
    # order, and marks it free again.  It stops at the first free entry, if the
    # Guest dies, or if a call was a SEND_DMA for the Launcher, since read() has
    # to return before anything else happens.
    def do_async_hcalls(self, lg: Lguest) -> None:
        mem = self.mem
        status = lgread(lg, mem, lg.lguest_data + LD_HCALL_STATUS, LHCALL_RING_SIZE)
        for _ in range(LHCALL_RING_SIZE):
            n = lg.next_hcall
            if status[n] == 0xFF:
                break
            lg.next_hcall = (n + 1) % LHCALL_RING_SIZE
            raw = lgread(lg, mem, lg.lguest_data + LD_HCALLS + 16 * n, 16)
            if lg.dead:
                break
            eax, edx, ebx, ecx = (int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4))
            self.do_hcall(lg, eax, edx, ebx, ecx)
            lgwrite(lg, mem, lg.lguest_data + LD_HCALL_STATUS + n, b"\xff")
            if lg.dead or lg.dma_is_pending or lg.pending_notify:
                break

    #: H:126 The first hypercall any Guest makes is LGUEST_INIT, handing over
    # the Guest-physical address of its `struct lguest_data`, the page the Host
    # and Guest share from then on.  Anything else first is fatal, as is an
    # address outside the Guest's memory.  The Host fills in what the Guest
    # needs to know (how much memory to keep free at the top for the Switcher,
    # the TSC frequency, its Guest id, the time) and reads back the range of
    # Guest code (`noirq_start` to `noirq_end`) where no interrupt may be
    # delivered.  Finally it throws away all shadow page tables built so far.
    # In lguest those writes could be the first to that page of the Launcher's
    # memory, and copy-on-write could move the page under a shadow entry still
    # pointing at the old copy.  A `Process` never moves its pages, so here
    # the flush only keeps lguest's order of operations.
    def initialize(self, lg: Lguest) -> None:
        regs = lg.regs
        mem = self.mem
        if regs.eax != LHCALL_LGUEST_INIT:
            kill_guest(lg, f"hypercall {regs.eax} before LGUEST_INIT")
            return
        addr = regs.edx
        if lg.virtio:
            self.initialize_2625(lg, addr)
            return
        if not lguest_address_ok(lg, addr, LGUEST_DATA_SIZE):
            kill_guest(lg, f"bad guest page {addr:#x}")
            return
        lg.lguest_data = addr
        lgwrite_u32(lg, mem, addr + LD_RESERVE_MEM, RESERVE_MEM)
        lgwrite_u32(lg, mem, addr + LD_TSC_KHZ, machine_mod.CPU_MHZ * 1000)
        lgwrite(lg, mem, addr + LD_GUESTID, lg.guestid.to_bytes(2, "little"))
        lg.noirq_start = lgread_u32(lg, mem, addr + LD_NOIRQ_START)
        lg.noirq_end = lgread_u32(lg, mem, addr + LD_NOIRQ_END)
        self.write_timestamp(lg)
        self.host.page_tables.guest_pagetable_clear_all(lg)
        self.host.trace.emit("hypercall", guest=lg.guestid, call=LHCALL_LGUEST_INIT,
                             name="LGUEST_INIT", args=(addr, 0, 0))

    #: H:131 LGUEST_INIT as 2.6.25 has it.  The structure grew: the Host now
    # also writes `pgdir`, the Guest-physical address of the page directory the
    # Launcher built (the Guest starts at physical addresses and copies that
    # directory's entries up to its PAGE_OFFSET itself), and it reads two
    # fields the Guest fills in, `kernel_address` (where the kernel's mappings
    # begin: what 2.6.23's Launcher passed as page_offset) and `syscall_vec`.
    # The Guest id is no longer told.  Both values the Guest gives are
    # checked like any other: a kernel_address in the Switcher's top 4 MiB,
    # or a system call vector other than the one this Host traps directly
    # (0x80), kills the Guest.
    def initialize_2625(self, lg: Lguest, addr: int) -> None:
        mem = self.mem
        if not lguest_address_ok(lg, addr, LGUEST_DATA_SIZE_2625):
            kill_guest(lg, f"bad guest page {addr:#x}")
            return
        lg.lguest_data = addr
        lgwrite_u32(lg, mem, addr + LD_RESERVE_MEM, RESERVE_MEM)
        lgwrite_u32(lg, mem, addr + LD25_TSC_KHZ, machine_mod.CPU_MHZ * 1000)
        lgwrite_u32(lg, mem, addr + LD25_PGDIR, lg.pgdirs[lg.pgdidx].gpgdir)
        lg.noirq_start = lgread_u32(lg, mem, addr + LD25_NOIRQ_START)
        lg.noirq_end = lgread_u32(lg, mem, addr + LD25_NOIRQ_END)
        kernel_address = lgread_u32(lg, mem, addr + LD25_KERNEL_ADDRESS)
        syscall_vec = lgread_u32(lg, mem, addr + LD25_SYSCALL_VEC)
        if kernel_address >> 22 >= 1023 or kernel_address == 0:
            kill_guest(lg, f"bad kernel_address {kernel_address:#x}")
            return
        if syscall_vec != SYSCALL_VECTOR:
            kill_guest(lg, f"syscall_vec {syscall_vec:#x}: this Host traps only "
                           f"{SYSCALL_VECTOR:#x}")
            return
        lg.page_offset = kernel_address
        self.write_timestamp(lg)
        self.host.page_tables.guest_pagetable_clear_all(lg)
        self.host.trace.emit("hypercall", guest=lg.guestid, call=LHCALL_LGUEST_INIT,
                             name="LGUEST_INIT", args=(addr, 0, 0))

    #: M:013 A subtle case the 2.6.25 journey points out.  A Guest that reads a
    # page it never wrote gets a shadow mapping of it, read-only, and if the
    # Launcher then writes that page (a device's output, a virtqueue's used
    # ring), could the Guest still see the old contents?  In lguest, where the
    # Launcher's memory is ordinary copy-on-write process memory, it could,
    # which is why LGUEST_INIT flushes the shadows.  In lguestsim every Guest
    # page is one fixed machine frame that Launcher and Guest share, so the
    # Guest always sees the Launcher's writes.  Check that claim: the used
    # ring of a virtqueue is written only by the Launcher (launcher/virtio.py)
    # and read by the Guest through its shadow page tables.

    #: H:127 The Guest reads the wall-clock time from its `lguest_data` rather
    # than from a clock chip.  The Host writes seconds and nanoseconds there: at
    # LGUEST_INIT, and again each time the Guest's clock event fires.  The time
    # is the simulated machine's, counted from its cycles, not the time of the
    # computer running lguestsim.
    def write_timestamp(self, lg: Lguest) -> None:
        ns = self.host.machine.ns()
        sec, nsec = divmod(ns, 1_000_000_000)
        lgwrite(lg, self.mem, lg.lguest_data + LD_TIME, struct.pack("<II", sec, nsec))

    #: H:100 This is where `run_guest` begins each trip round its loop.  Until
    # the Guest has made its LGUEST_INIT call there is nowhere to find a
    # hypercall ring, so the only thing to look for is that first call.  After
    # that, the asynchronous ring is drained first, in order, and only then is
    # a synchronous hypercall (trap number 0x1F, LGUEST_TRAP_ENTRY) run, so the
    # Guest can count on queued calls happening before the call it traps with.
    # If the ring stopped on a DMA for the Launcher, the synchronous call waits
    # for the next trip, after read() has returned.
    def do_hypercalls(self, lg: Lguest) -> None:
        if lg.virtio:
            self.do_hypercalls_2625(lg)
            return
        regs = lg.regs
        if lg.lguest_data is None:
            if regs.trapnum == LGUEST_TRAP_ENTRY:
                self.initialize(lg)
                regs.trapnum = 255
            return
        self.do_async_hcalls(lg)
        if not lg.dma_is_pending and not lg.pending_notify and not lg.dead \
                and regs.trapnum == LGUEST_TRAP_ENTRY:
            r = regs.as_dict()
            result = self.do_hcall(lg, r["eax"], r["edx"], r["ebx"], r["ecx"])
            if result is not None:
                regs.eax = result
            #: H:110 Having done a hypercall, the Host overwrites the trap number
            # with 255, which means "nothing".  Normally the Guest runs again
            # and sets a new trap number anyway, but `run_guest` may return to
            # the Launcher first (DMA to deliver, a break); on the next read()
            # `do_hypercalls` would see the same 0x1F and run the call twice.
            # lguest had a small `clear_hcall()` for this; here it is one line
            # (and the LGUEST_INIT branch above does the same).
            regs.trapnum = 255

    #: H:111 What 2.6.24 changed in the bookkeeping of a hypercall: instead of
    # overwriting the trap number with 255, the Host keeps a pointer to the
    # call's arguments in the CPU (`cpu->hcall`), set when the trap comes back
    # (`guest_steps`) and cleared once the call is done, so a call can never
    # run twice and the trap number stays what the Guest trapped with.  And
    # the ring is drained only when the Guest makes a hypercall.  A NOTIFY
    # found in the ring leaves the trapping call waiting (its pointer still
    # set) until the Launcher has served the NOTIFY and read() again.
    def do_hypercalls_2625(self, lg: Lguest) -> None:
        cpu = lg.cpu
        if cpu.hcall is None:
            return
        if lg.lguest_data is None:
            self.initialize(lg)
            cpu.hcall = None
            return
        self.do_async_hcalls(lg)
        if not cpu.pending_notify and not lg.dead:
            eax, edx, ebx, ecx = cpu.hcall
            cpu.hcall = None
            result = self.do_hcall(lg, eax, edx, ebx, ecx)
            if result is not None:
                lg.regs.eax = result

    # -- the Guest's clock
    #: H:128 SET_CLOCKEVENT is the Guest's only timer: "interrupt me in this
    # many nanoseconds" (zero cancels).  The Host keeps at most one such timer
    # per Guest, and never sets one closer than 100 ns.  lguest used a Host
    # high-resolution timer; lguestsim puts a timer on the simulated machine,
    # due after as many CPU cycles as the nanoseconds take.  When it fires, irq
    # 0 becomes pending and the timestamp is refreshed; `run_guest` delivers the
    # interrupt (and wakes a halted Guest) on its next trip round the loop.
    def guest_set_clockevent(self, lg: Lguest, delta_ns: int) -> None:
        machine = self.host.machine
        if lg.clock_timer is not None:
            machine.cancel_timer(lg.clock_timer)
            lg.clock_timer = None
        if delta_ns == 0:
            return
        delta_ns = max(delta_ns, LG_CLOCK_MIN_DELTA)

        def expire(lg=lg) -> None:
            lg.clock_timer = None
            lg.irqs_pending |= 1
            self.host.trace.emit("timer", guest=lg.guestid)
            if lg.lguest_data is not None and not lg.dead:
                self.write_timestamp(lg)

        lg.clock_timer = machine.add_timer(machine.cycles + machine.cycles_for_ns(delta_ns), expire)
