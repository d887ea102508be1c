"""The Host: module init, the run_guest loop, and the way into the Switcher.

This is lguest's core.c, with its x86 half in x86_core.py as 2.6.25 split it
(``Host`` inherits ``X86Core``).  Loading the module (``Host(machine)``) sets
up what a Linux Host kernel would already have -- its GDT, IDT, TSS, page
tables and stack -- and maps the Switcher at 0xFFC00000.  After that the Host's life is
run_guest(): handle the Guest's hypercalls, give it interrupts, switch into it
through the Switcher, and look at why it came back (trapnum): a page fault to
fill from the Guest's tables, an in/out to fake, a trap to reflect, or a
reason to kill it.

The Host is Python, but the world switch is not: run_guest_once() does what
lguest's ``pushf; lcall *lguest_entry`` does -- pushes eflags, the Host's code
segment and a return address where no x86 code lives, loads %eax and %ebx and
jumps to switch_to_guest -- and lets the CPU run until the Switcher's iret lands
on that return address.
"""

from __future__ import annotations

import errno
import random
import struct
from collections import Counter

from .. import switcher as switcher_mod
from ..trace import Trace
from . import cost, segments
from .hypercalls import Hypercalls
from .interrupts_and_traps import Interrupts
from .io import IO
from .lg import (  # noqa: F401  (segment numbers others read as core.KERNEL_CS etc.)
    GDT_ENTRY_LGUEST_CS,
    GDT_ENTRY_LGUEST_DS,
    KERNEL_CS,
    KERNEL_DS,
    LD_CR2,
    LGUEST_CS,
    LGUEST_DS,
    LGUEST_TRAP_ENTRY,
    PAGE_SIZE,
    SYSCALL_VECTOR,
    Lguest,
    kill_guest,
    lgwrite_u32,
)
from .page_tables import PageTables
from .recovery import Recovery
from .x86_core import (  # noqa: F401  (the Host's map, re-exported: core.HOST_RETURN etc.)
    CR0_TS,
    FRAME_POOL,
    GUEST_SWITCHER_PTE,
    HOST_AREA,
    HOST_FAULT_HANDLER,
    HOST_GDT,
    HOST_IDT,
    HOST_IRQ_HANDLER,
    HOST_PGDIR,
    HOST_RETURN,
    HOST_STACK_TOP,
    HOST_SWITCHER_PTE,
    HOST_TIMER_VECTOR,
    HOST_TSS,
    MSR_SYSENTER_CS,
    PAGES,
    PERCPU_REGS,
    PERCPU_RO,
    RO,
    RO_GUEST_GDT,
    RO_GUEST_GDT_DESC,
    RO_GUEST_IDT,
    RO_GUEST_IDT_DESC,
    RO_GUEST_TSS,
    RO_HOST_CR3,
    RO_HOST_GDT_DESC,
    RO_HOST_IDT_DESC,
    RO_HOST_SP,
    SWITCHER_ADDR,
    SWITCHER_PHYS,
    SWITCHER_WATCHDOG,
    TIME_SLICE,
    X86Core,
)

#: P:400 core.py is the centre of the Host: `Host` is what loading lguest's
# module sets up, and `run_guest()` is the loop every read() of `/dev/lguest`
# spins in.  What is particular to the x86 -- the Host's own tables, the
# Switcher's mapping, the doorway into the Switcher (`enter_guest()`) and the
# way back, the emulated `in` and `out` -- is in x86_core.py (P:450), which
# `Host` inherits; the memory map it begins with is there too.


#: L:085 With --sharenet, two Launchers map the same file and their Guests
# talk through it.  `SharedMemory` is that file: a run of machine pages that
# belongs to no single Launcher.  Each Launcher maps it into its own `Process`
# wherever it likes, with `map_shared()`; the Host then sees the same pages at
# two different Guest-physical addresses, which is exactly why DMA keys are
# compared by the memory they name and not by address (io.py).
class SharedMemory:
    """Memory two Launchers map, as two processes mmap one file (--sharenet)."""

    def __init__(self, base: int, size: int) -> None:
        self.base, self.size = base, size


#: L:080 To the Host, a Guest's memory is simply its Launcher's memory: the
# Launcher allocates the Guest's RAM at the bottom of its own address space, so
# a Guest-physical address is also a Launcher address.  `Process` is that
# address space: a run of machine RAM starting at `base`, read and written
# with Launcher addresses.  Every copy the Host makes to or from a Guest (after
# `lguest_address_ok()`) goes through `read()` and `write()` here, and the
# shadow page tables ask `phys()` which machine page lies behind a Guest page.
# Pages mapped from a `SharedMemory` are the only ones not at `base + addr`.
class Process:
    """A Launcher's address space: a run of machine RAM, plus shared mappings.

    Launcher address 0 is Guest-physical 0: the Launcher maps Guest memory at
    the bottom of its own, so a Guest-physical address needs no translation in
    the Launcher.  Its pages are the machine's from ``base`` up, except where
    map_shared() put pages of a SharedMemory instead: the Host asks phys().
    """

    def __init__(self, mem, base: int, size: int) -> None:
        self.mem, self.base, self.size = mem, base, size
        self.shared: dict[int, tuple[SharedMemory, int]] = {}   # page -> (segment, offset)

    def map_shared(self, addr: int, segment: SharedMemory) -> None:
        """Map ``segment`` at Launcher address ``addr`` (page aligned, inside the process)."""
        if addr % PAGE_SIZE or addr + segment.size > self.size:
            raise ValueError(f"cannot map shared memory at {addr:#x}")
        for off in range(0, segment.size, PAGE_SIZE):
            self.shared[(addr + off) // PAGE_SIZE] = (segment, off)

    def phys(self, addr: int) -> int:
        """The machine address behind Launcher (= Guest-physical) address ``addr``."""
        hit = self.shared.get(addr // PAGE_SIZE) if self.shared else None
        if hit is None:
            return self.base + addr
        segment, off = hit
        return segment.base + off + addr % PAGE_SIZE

    def key_identity(self, addr: int) -> tuple[int, int, int]:
        """What the memory at ``addr`` is, for DMA keys (lguest uses futex keys):
        private memory is this process and the address, as a futex key is the
        mm and the address; shared memory is the segment and the offset in it,
        the same in every process mapping it.  Processes and segments are named
        by where their RAM starts, which is unique, and the same when a session
        replays the run."""
        hit = self.shared.get(addr // PAGE_SIZE) if self.shared else None
        if hit is None:
            return (0, self.base, addr)
        segment, off = hit
        return (1, segment.base, off + addr % PAGE_SIZE)

    def _check(self, addr: int, n: int) -> None:
        if addr < 0 or addr + n > self.size:
            raise ValueError(f"Launcher access outside its memory: {addr:#x}+{n}")

    def _chunks(self, addr: int, n: int):
        while n > 0:
            step = min(n, PAGE_SIZE - addr % PAGE_SIZE)
            yield addr, step
            addr += step
            n -= step

    def read(self, addr: int, n: int) -> bytes:
        self._check(addr, n)
        if not self.shared:
            return self.mem.read(self.base + addr, n)
        return b"".join(self.mem.read(self.phys(a), k) for a, k in self._chunks(addr, n))

    def write(self, addr: int, data: bytes) -> None:
        self._check(addr, len(data))
        if not self.shared:
            self.mem.write(self.base + addr, data)
            return
        done = 0
        for a, k in self._chunks(addr, len(data)):
            self.mem.write(self.phys(a), data[done:done + k])
            done += k

    def zero(self, addr: int, n: int) -> None:
        """Clear ``n`` bytes at ``addr``, as a fresh mmap of /dev/zero would read:
        private pages go back to the machine's RAM, paid for again when written."""
        self._check(addr, n)
        if not self.shared:
            self.mem.fill(self.base + addr, n)
            return
        for a, k in self._chunks(addr, n):
            self.mem.fill(self.phys(a), k)

    def read32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def write32(self, addr: int, v: int) -> None:
        self.write(addr, (v & 0xFFFFFFFF).to_bytes(4, "little"))

    def read16(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 2), "little")

    def write16(self, addr: int, v: int) -> None:
        self.write(addr, (v & 0xFFFF).to_bytes(2, "little"))


class Host(X86Core):
    """lg.ko loaded into a simulated Linux Host on ``machine``."""

    #: H:000 This is where the Host begins, the equivalent of lguest's module
    # init for `lg.ko`.  A real Host is a running Linux kernel; lguestsim has to
    # build one on the bare simulated machine (which needs at least 16 MiB) in
    # `_init_host_world()` before it can do what lguest's init did: put the
    # Switcher high in virtual memory, prepare the page-table, interrupt,
    # hypercall and I/O machinery, and stand ready for Launchers to open
    # `/dev/lguest`.  `direct_traps` lets a reader turn off the trap shortcut
    # of interrupts_and_traps.py and compare, and `seed` makes the one random
    # choice (which shadow page directory to evict) repeatable.  Two more
    # switches undo shortcuts lguest measured (benchmarks/bench_figures.py
    # runs each both ways): `changed_flags=False` copies the GDT and IDT on
    # every entry (S:010), `set_pte_at_once=False` leaves every new entry to a
    # shadow fault (H:420).
    def __init__(self, machine, *, direct_traps: bool = True, seed: int = 0,
                 changed_flags: bool = True, set_pte_at_once: bool = True) -> None:
        if machine.mem.size < HOST_AREA:
            raise ValueError(f"the machine needs at least {HOST_AREA >> 20} MiB for the Host")
        self.machine = machine
        self.cpu = machine.cpu
        self.mem = machine.mem
        self.trace = Trace(lambda: machine.cpu.cycles)
        self.random = random.Random(seed)
        self.direct_traps = direct_traps
        self.changed_flags = changed_flags
        self.set_pte_at_once = set_pte_at_once
        self.charges: Counter[str] = Counter()     # how often each kind of work was charged
        self.time_slice = TIME_SLICE
        self.tick_pending = False
        self.lguests: list[Lguest] = []
        self.next_guestid = 0
        self.last_guest: Lguest | None = None
        self.free_frames = list(range(HOST_AREA - PAGE_SIZE, FRAME_POOL - 1, -PAGE_SIZE))
        self.process_top = HOST_AREA
        self.switcher = switcher_mod.load()
        self.page_tables = PageTables(self)
        self.interrupts = Interrupts(self)
        self.hypercalls = Hypercalls(self)
        self.io = IO(self)
        self.switcher_pte_page = GUEST_SWITCHER_PTE
        self.regs_pte_index = switcher_mod.TEXT_PAGES
        self.default_idt = []
        self._init_host_world()
        self._map_switcher()
        self.recovery = Recovery(self)

    #: H:015 The Host's page allocator, standing in for the kernel's
    # `get_zeroed_page()`: a list of free frames between 1 MiB and 16 MiB,
    # handed out zeroed.  Shadow page tables and regs pages come from here.
    # When it runs dry, a shadow page table is taken back from the Guest
    # holding most (H:457); only if no Guest has one to spare does the caller
    # get `None` and must cope (initialize fails with ENOMEM).
    def alloc_page(self) -> int | None:
        if not self.free_frames and not self.page_tables.reclaim_from_hoarder():
            return None
        page = self.free_frames.pop()
        self.mem.fill(page, PAGE_SIZE)
        return page

    def free_page(self, page: int) -> None:
        self.free_frames.append(page)

    #: L:090 A real Launcher gets its memory from the Host kernel with mmap;
    # here the Host carves each new `Process` out of machine RAM above its own
    # 16 MiB, one after another, zeroed.  Nothing is ever given back: a session
    # makes its Launchers once, at the start.
    def new_process(self, size: int) -> Process:
        """Memory for a Launcher (and so for its Guest), above the Host's area."""
        size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        base = self.process_top
        if base + size > self.mem.size:
            raise MemoryError(f"the machine has no room for {size >> 20} MiB more")
        self.process_top += size
        self.mem.fill(base, size)
        return Process(self.mem, base, size)

    #: L:091 Shared memory comes from the same place as Launchers' memory, but
    # belongs to no `Process` until one maps it.  The network setup in
    # launcher/net.py asks for one page of it and maps that page into every
    # Launcher joining the `--sharenet` network.
    def new_shared_memory(self, size: int) -> SharedMemory:
        """Memory that several Launchers can map (the shared network page)."""
        size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        base = self.process_top
        if base + size > self.mem.size:
            raise MemoryError("the machine has no room for shared memory")
        self.process_top += size
        self.mem.fill(base, size)
        return SharedMemory(base, size)

    def open(self, process: Process, virtio: bool = False):
        """/dev/lguest for ``process``; ``virtio`` makes it speak 2.6.25's ABI."""
        from .lguest_user import LguestFile
        return LguestFile(self, process, virtio)

    # -- several Guests on one CPU
    #: H:700 In a real Host each Launcher is a task and Linux's scheduler shares
    # the CPUs between them, preempting a Guest on the timer interrupt.  Here
    # all Launchers share one Python thread, so the Host cannot switch tasks.
    # Instead `run_guest` gives the CPU back, failing read() with EAGAIN, when
    # this Guest's time slice is used up or it halts while another Guest could
    # run, and the Launchers' round-robin (launcher/run.py) reads the next one.
    # Another Guest "could run" if it is alive and either awake or has an
    # interrupt waiting to wake it.
    def others_runnable(self, lg: Lguest) -> bool:
        return any(o is not lg and o.dead is None and (not o.halted or o.irqs_pending)
                   for o in self.lguests)

    #: H:701 A Guest in a loop never traps, so nothing would bring the CPU back
    # to the Host to check its time slice.  With more than one Guest, the Host
    # keeps a timer one slice ahead.  The timer's function does nothing but
    # note that it fired: what matters is that its deadline stops the CPU, and
    # the Host timer interrupt (`host_timer_due()`) takes the CPU from the
    # Guest, back into `run_guest`'s loop.
    def start_scheduler_tick(self) -> None:
        """With several Guests, the Host's timer ticks so none can keep the CPU."""
        if len(self.lguests) > 1 and not self.tick_pending:
            self.tick_pending = True

            def tick() -> None:
                self.tick_pending = False

            self.machine.add_timer(self.cpu.cycles + self.time_slice, tick)

    #: H:702 `send_dma()` calls this between its two tries at a full receiver.
    # It is deliberately empty, and the docstring says why (and M:007 suggests
    # what to do about it).
    def let_run(self, lg: Lguest) -> None:
        """Give another Guest a chance to run before a retry (send_dma's restock).

        lguest drops its locks so the receiver, on another CPU, can refill its
        buffers.  This machine has one CPU and the sender holds it, so the
        receiver cannot run in between: the retry comes at once, as it would
        on a uniprocessor Host."""

    #: H:791 The Host's Python runs in no simulated time at all, so each piece
    # of Host work adds its price from cost.py to the CPU's cycle counter.  The
    # Guest's and Switcher's instructions are counted by the CPU as they run;
    # together the two give the costs that the book's views and the benchmarks
    # show.  `charges` counts each kind of work, so that an experiment can say
    # how often, say, the IDT was copied.
    def charge(self, kind: str) -> None:
        self.cpu.cycles += cost.cost(kind)
        self.charges[kind] += 1

    # -- creating a Guest (called by /dev/lguest's INITIALIZE)
    #: L:030 This is the Host side of initialize, and a first look deeper into
    # the Host.  It makes the Guest's `struct lguest` and starts its first CPU
    # (`lg_cpu_start`, L:025: a registers page and the registers a booting
    # kernel starts with), then builds the first shadow page directory from the
    # Launcher's `pgdir`.  Finally the GDT entries a booting Guest expects,
    # and the Guest joins the Host's list.
    def new_guest(self, process: Process, pfn_limit: int, pgdir: int, start: int,
                  page_offset: int) -> Lguest:
        lg = Lguest(guestid=self.next_guestid, mem_base=process.base, pfn_limit=pfn_limit,
                    page_offset=page_offset, launcher=process)
        # This is the first CPU (cpu 0), and it will start booting at `start`.
        from .lguest_user import lg_cpu_start
        cpu = lg_cpu_start(self, lg, 0, start)
        if not self.page_tables.init_guest_pagetable(lg, pgdir):
            self.free_page(cpu.regs_page)
            raise OSError(errno.ENOMEM, "no memory for the shadow page directory")
        self.next_guestid += 1
        segments.setup_guest_gdt(lg)
        self.lguests.append(lg)
        return lg

    #: L:070 The other end of a Guest's life, called by close(): stop its clock,
    # unbind all its DMA arrays so no other Guest sends into a dead one, free
    # its shadow page tables and its regs page, and forget it, in `last_guest`
    # too.  In C that matters because a new Guest could be given the freed
    # structure's address and be mistaken for this one, skipping the full copy
    # of its state; in Python it lets the dead Guest be garbage-collected.
    def destroy_guest(self, lg: Lguest) -> None:
        if lg.clock_timer is not None:
            self.machine.cancel_timer(lg.clock_timer)
            lg.clock_timer = None
        self.io.release_all_dma(lg)
        self.page_tables.free_guest_pagetable(lg)
        self.free_page(lg.regs_page)
        if lg in self.lguests:
            self.lguests.remove(lg)
        if self.last_guest is lg:
            self.last_guest = None

    #: H:030 Here is the Host's main loop, entered each time the Launcher reads
    # `/dev/lguest`.  It runs the Guest again and again until something
    # interesting happens for the Launcher: DMA for it (read() returns 8
    # bytes), a break or another Guest's turn (EAGAIN), or death (ENOENT).  The
    # loop lives in `guest_steps()`, a generator that stops at each trip into
    # the Guest; `run_guest()` drives it, running every trip at full speed.
    # (`/dev/lguest`'s read() drives its own checks and this loop the same way;
    # the session drives them one instruction at a time instead.)
    def run_guest(self, lg: Lguest, steps=None) -> bytes:
        """Run the Guest until something the Launcher must see; raises OSError like read().
        ``steps`` is the generator to drive, by default ``guest_steps(lg)``."""
        steps = self.guest_steps(lg) if steps is None else steps
        try:
            while True:
                next(steps)                   # the Host's work up to a trip into the Guest
                self.run_cpu_until_exit(lg)   # the trip, at full speed
        except StopIteration as done:
            return done.value

    #: H:031 The loop itself.  Each trip round it: fire any due timers, run the
    # Guest's hypercalls, return to the Launcher if a DMA is waiting for it or
    # the Waker asked, and set up a pending interrupt.  A halted Guest waits
    # for a timer, or yields the CPU if another Guest could run, as does one
    # whose time slice is over.  Then into the Guest,
    # and on return the trap number says why.  A general protection fault with
    # error code 0 may be an `in` or `out` to emulate; a page fault is usually
    # one the shadow page tables must fill (`demand_page()`), and only
    # otherwise goes to the Guest with cr2 written into `lguest_data`; a
    # device-not-available fault is the Guest's only if it set TS; real
    # interrupts and hypercalls just go round again.  Anything else is
    # reflected into the Guest's own handler, and a Guest with no handler for
    # it is killed.
    def guest_steps(self, lg: Lguest):
        """run_guest's loop, pausing (yield) each time the CPU must run the Guest.

        After enter_guest() the generator yields; whoever drives it runs the
        CPU until it is back at the Host's return address (run_guest does so
        at full speed, a stepping session one instruction at a time), then
        resumes it.  It returns read()'s bytes or raises read()'s OSError."""
        cpu = self.cpu
        slice_start = cpu.cycles
        while lg.dead is None:
            self.charge("run_guest_loop")
            self.machine.fire_timers()
            self.hypercalls.do_hypercalls(lg)
            if lg.dma_is_pending:
                return struct.pack("<II", lg.pending_dma, lg.pending_key)
            if lg.pending_notify:
                return struct.pack("<I", lg.pending_notify)
            if lg.break_out:
                raise OSError(errno.EAGAIN, "the Waker broke us out")
            self.interrupts.maybe_do_interrupt(lg)
            if lg.dead is not None:
                break
            if lg.halted:
                if self.others_runnable(lg):
                    raise OSError(errno.EAGAIN, "halted: another Guest's turn")
                # Sleep until a timer fires; with none, only the Launcher can wake us.
                if not self.machine.idle_until_next_timer():
                    raise OSError(errno.EAGAIN, "the Guest sleeps with no timer set")
                continue
            if cpu.cycles - slice_start >= self.time_slice and self.others_runnable(lg):
                raise OSError(errno.EAGAIN, "time slice over: another Guest's turn")
            self.start_scheduler_tick()
            self.enter_guest(lg)
            yield lg
            self.leave_guest(lg)
            if lg.dead is not None:
                break
            regs = lg.regs
            trapnum = regs.trapnum
            cr2 = cpu.cr2 if trapnum == 14 else 0
            if trapnum == 13:
                if regs.errcode == 0 and self.emulate_insn(lg):
                    continue
            elif trapnum == 14:
                self.charge("demand_page")
                if self.page_tables.demand_page(lg, cr2, regs.errcode):
                    continue
                if lg.lguest_data is not None:
                    lgwrite_u32(lg, self.mem, lg.lguest_data + LD_CR2, cr2)
            elif trapnum == 7:
                if not lg.ts:
                    continue
            elif trapnum == SYSCALL_VECTOR:
                pass         # (only with direct traps off) reflect it below
            elif trapnum == LGUEST_TRAP_ENTRY:
                if lg.virtio:    # 2.6.25 keeps the call's arguments for do_hypercalls (H:111)
                    r = regs.as_dict()
                    lg.cpu.hcall = (r["eax"], r["edx"], r["ebx"], r["ecx"])
                continue     # a hypercall: the top of the loop does it
            elif 32 <= trapnum <= 255:
                continue     # a real interrupt, already handled
            if lg.dead is not None:
                break
            self.charge("deliver_trap")
            if self.interrupts.deliver_trap(lg, trapnum):
                continue
            kill_guest(lg, f"unhandled trap {trapnum} at {regs.eip:#x} "
                           f"({cr2 if trapnum == 14 else regs.errcode:#x})")
        self.trace.emit("kill", guest=lg.guestid, reason=lg.dead)
        if lg.restart:
            raise OSError(errno.ERESTART, "the Guest asked to be restarted")
        raise OSError(errno.ENOENT, "the Guest is dead")
