"""struct lguest: everything the Host knows about one Guest.

lguest's lg.h is the Host's notebook: one structure per Guest holding its
registers page, its shadow page tables, its GDT and IDT as the Guest asked for
them, its interrupt bitmap, its clock, and why it died.  This module is that
structure, the numbers the Host and Guest agree on, kill_guest(), and the two
helpers through which the Host touches Guest memory: every address a Guest
hands over is checked by lguest_address_ok() before a byte moves.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..x86.x87 import FPU

PAGE_SIZE = 4096

#: P:501 The hypercall numbers of the 2.6.23 ABI, which the Guest puts in %eax
# before `int $0x1F` (LGUEST_TRAP_ENTRY).  lguestsim defines no number 11.  The
# Guest kernel has the same numbers in its header (lguestsim/guest/lguest.h);
# the names here are what the Host's `do_hcall()` in hypercalls.py compares
# against.  `HCALL_NAMES` exists only so that traces and views can print a name
# instead of a number, and `LHCALL_RING_SIZE` is the length of the asynchronous
# ring in `struct lguest_data`.
LHCALL_FLUSH_ASYNC, LHCALL_LGUEST_INIT, LHCALL_CRASH, LHCALL_LOAD_GDT = 0, 1, 2, 3
LHCALL_NEW_PGTABLE, LHCALL_FLUSH_TLB, LHCALL_LOAD_IDT_ENTRY, LHCALL_SET_STACK = 4, 5, 6, 7
LHCALL_TS, LHCALL_SET_CLOCKEVENT, LHCALL_HALT = 8, 9, 10
LHCALL_BIND_DMA, LHCALL_SEND_DMA = 12, 13
LHCALL_SET_PTE, LHCALL_SET_PMD, LHCALL_LOAD_TLS = 14, 15, 16
HCALL_NAMES = {0: "FLUSH_ASYNC", 1: "LGUEST_INIT", 2: "CRASH", 3: "LOAD_GDT", 4: "NEW_PGTABLE",
               5: "FLUSH_TLB", 6: "LOAD_IDT_ENTRY", 7: "SET_STACK", 8: "TS",
               9: "SET_CLOCKEVENT", 10: "HALT", 12: "BIND_DMA", 13: "SEND_DMA", 14: "SET_PTE",
               15: "SET_PMD", 16: "LOAD_TLS", 17: "NOTIFY"}

#: P:502 What 2.6.25 changed in the hypercalls.  The DMA calls (12 and 13) are
# gone: devices are virtio devices now, and all a Guest's driver ever needs
# from the Host is "Launcher, look at this", which is LHCALL_NOTIFY with one
# Guest-physical address, handed to the Launcher by read().  Number 2 keeps its
# place but becomes LHCALL_SHUTDOWN, whose second argument says whether the
# Guest wants to be powered off or restarted.  One Host here speaks both
# generations: which one a Guest uses is fixed when its Launcher initializes
# (`Lguest.virtio`), and each difference is a small named branch.
LHCALL_SHUTDOWN = LHCALL_CRASH
LHCALL_NOTIFY = 17
LGUEST_SHUTDOWN_POWEROFF, LGUEST_SHUTDOWN_RESTART = 1, 2
HCALL_NAMES_2625 = {**HCALL_NAMES, 2: "SHUTDOWN"}
LGUEST_TRAP_ENTRY = 0x1F
LHCALL_RING_SIZE = 64

# /dev/lguest requests (section C).
LHREQ_INITIALIZE, LHREQ_GETDMA, LHREQ_IRQ, LHREQ_BREAK = 0, 1, 2, 3

LGUEST_IRQS = 32
FIRST_EXTERNAL_VECTOR = 32
SYSCALL_VECTOR = 0x80
IDT_ENTRIES = FIRST_EXTERNAL_VECTOR + LGUEST_IRQS   # the Guest's own 64, plus syscall
LG_CLOCK_MIN_DELTA = 100                             # ns

# Segments (section E).
GDT_ENTRIES = 32
GDT_ENTRY_TLS_MIN, GDT_ENTRY_TLS_MAX = 6, 8
GDT_ENTRY_LGUEST_CS, GDT_ENTRY_LGUEST_DS = 10, 11
GDT_ENTRY_KERNEL_CS, GDT_ENTRY_KERNEL_DS = 12, 13
GDT_ENTRY_TSS, GDT_ENTRY_DOUBLEFAULT_TSS = 16, 31
LGUEST_CS, LGUEST_DS = GDT_ENTRY_LGUEST_CS * 8, GDT_ENTRY_LGUEST_DS * 8
KERNEL_CS, KERNEL_DS = GDT_ENTRY_KERNEL_CS * 8, GDT_ENTRY_KERNEL_DS * 8
GUEST_PL = 1
FULL_EXEC_SEGMENT = (0x0000FFFF, 0x00CF9B00)
FULL_SEGMENT = (0x0000FFFF, 0x00CF9300)

# struct lguest_data (section B).
LD_IRQ_ENABLED, LD_BLOCKED, LD_CR2, LD_TIME = 0, 4, 8, 12
LD_HCALL_STATUS, LD_HCALLS = 20, 84
LD_RESERVE_MEM, LD_GUESTID, LD_TSC_KHZ, LD_NOIRQ_START, LD_NOIRQ_END = 1108, 1112, 1116, 1120, 1124
LGUEST_DATA_SIZE = 1128
# 2.6.25's struct lguest_data: the same up to reserve_mem, then tsc_khz, the
# Host's pgdir for the Guest's boot, and kernel_address and syscall_vec, which
# the Guest fills in (the Launcher no longer tells the Host its page_offset).
LD25_TSC_KHZ, LD25_PGDIR, LD25_NOIRQ_START, LD25_NOIRQ_END = 1112, 1116, 1120, 1124
LD25_KERNEL_ADDRESS, LD25_SYSCALL_VEC = 1128, 1132
LGUEST_DATA_SIZE_2625 = 1136

# struct lguest_regs (2.6.23 order), at the end of the regs page.
REG_FIELDS = ("ebx", "ecx", "edx", "esi", "edi", "ebp", "gs", "eax", "fs", "ds", "es",
              "trapnum", "errcode", "eip", "cs", "eflags", "esp", "ss")
REGS_SIZE = 4 * len(REG_FIELDS)
REGS_OFFSET = PAGE_SIZE - REGS_SIZE

# What changed since this Guest last ran on this CPU.
CHANGED_IDT, CHANGED_GDT, CHANGED_GDT_TLS = 1, 2, 4
CHANGED_ALL = 3

LGUEST_MAX_DMA = 32


#: P:402 In lguest, `lg->regs` is a C pointer to a `struct lguest_regs` at the
# very end of the Guest's regs page: the Switcher pushes the Guest's registers
# there on every trap and pops them on the way back in, so Host and Switcher
# share them simply by sharing that page.  Python has no pointers into RAM, so
# `GuestRegs` is a small view: reading `regs.eip` reads the right 32-bit word of
# the simulated machine's memory, and assigning writes it.  The field order is
# 2.6.23's (ebx first, then the trap number and error code between es and eip),
# and it must match what switcher.S pushes, word for word.
class GuestRegs:
    """The Guest's registers: a view onto struct lguest_regs in its regs page (host RAM)."""

    __slots__ = ("mem", "base")

    def __init__(self, mem, base: int) -> None:
        object.__setattr__(self, "mem", mem)
        object.__setattr__(self, "base", base)

    def __getattr__(self, name: str) -> int:
        try:
            i = REG_FIELDS.index(name)
        except ValueError:
            raise AttributeError(name) from None
        return self.mem.read32(self.base + 4 * i)

    def __setattr__(self, name: str, value: int) -> None:
        i = REG_FIELDS.index(name)
        self.mem.write32(self.base + 4 * i, value & 0xFFFFFFFF)

    def as_dict(self) -> dict[str, int]:
        vals = struct.unpack_from(f"<{len(REG_FIELDS)}I", self.mem.ram, self.base)
        return dict(zip(REG_FIELDS, vals, strict=True))


#: H:310 One remembered shadow page directory: which Guest page directory
# (`gpgdir`, the Guest-physical address the Guest loads into cr3) it shadows,
# and the Host frame (`page`) that holds the shadow the real cr3 points at.
# A Guest keeps a few of these in `Lguest.pgdirs`, so that switching back to a
# process it ran recently finds its shadow already built instead of faulting
# every page in again (`new_pgdir` in page_tables.py picks which to reuse).
#
# `tables` lists the directory's present entries: entry index to the Host
# frame of the shadow page table behind it.  It says nothing the directory
# page does not, but it lets a flush or a reclaim visit only the entries in
# use instead of reading all 1023 (H:445, H:455).
@dataclass
class ShadowPgdir:
    gpgdir: int          # the Guest's cr3 (Guest-physical)
    page: int            # host-physical address of our shadow page directory
    tables: dict[int, int] = field(default_factory=dict)   # present entries: index -> frame


#: H:311 What one Guest's shadow page tables cost the Host, in frames of its
# pool: `pages` held now (directories and page tables), the most it ever held,
# how many it was given, and how many the Host took back from it to give to
# itself or to another Guest (H:455).  Plain numbers, for the views and the
# Host chapter.
@dataclass
class ShadowAccount:
    pages: int = 0
    peak: int = 0
    allocated: int = 0
    reclaimed: int = 0


#: P:403 What 2.6.24 changed in the Host's notebook: everything about one
# virtual CPU moved out of `struct lguest` into a `struct lg_cpu`, and the
# Guest got an array of them, `cpus[]`, with `nr_cpus` in use, in
# preparation for SMP Guests.  A CPU has its own registers page, its own view
# of the hypercall ring, its own TS bit, ring-1 stack, timer, FPU, pending
# interrupts, halt and break flags, the shadow page directory it runs on, and
# the address of its last NOTIFY; the Guest as a whole keeps its memory, its
# shadow page tables, its descriptor tables, its DMA and why it died.  This
# Host has one simulated processor, so a Guest has one CPU (NR_CPUS = 1).
# The Host's routines still take the Guest: the names of the CPU's fields on
# `Lguest` (`lg.regs`, `lg.halted`, ...) reach its CPU 0, `lg.cpu`, so the
# same code runs 2.6.23 and 2.6.25 Guests.
NR_CPUS = 1
CPU_FIELDS = ("regs_page", "regs", "next_hcall", "ts", "halted", "break_out", "esp1", "ss1",
              "stack_pages", "irqs_pending", "pgdidx", "changed", "pending_notify",
              "clock_timer", "fpu")


@dataclass
class LgCpu:
    """One virtual CPU of a Guest (lguest's struct lg_cpu, 2.6.24 on)."""
    id: int
    regs_page: int                # host-physical
    regs: GuestRegs
    lg: object = field(default=None, repr=False)     # the Guest it belongs to
    next_hcall: int = 0
    ts: int = 0
    halted: bool = False
    break_out: bool = False
    esp1: int = 0
    ss1: int = 0
    stack_pages: int = 0
    irqs_pending: int = 0         # bitmap of LGUEST_IRQS
    pgdidx: int = 0               # which of the Guest's shadow pgdirs this CPU runs on
    changed: int = CHANGED_ALL
    pending_notify: int = 0       # 2.6.25: the last NOTIFY's address, for read()
    clock_timer: int | None = None
    fpu: FPU = field(default_factory=FPU)
    # 2.6.25: the hypercall waiting to be done, (eax, edx, ebx, ecx), or None
    hcall: tuple | None = None


#: P:401 `Lguest` is lguest's `struct lguest`: everything the Host keeps about
# one Guest.  `/dev/lguest`'s initialize creates one, `run_guest` works from it,
# and close throws it away.  Among the fields: where the Guest's memory is (the
# `launcher` Process) and how much of it the Guest may touch (`pfn_limit`); the
# regs page; the Guest-physical address of its `lguest_data`; the shadow page
# directories (`pgdirs`, four remembered, `pgdidx` the current one); the GDT
# and IDT entries the Guest asked for, with `changed` flags saying what must
# be recopied before the next run; pending interrupts as a 32-bit bitmap; the
# bound DMA arrays; and `dead`, the first reason it was killed.  The last two
# fields are only counters for lguestsim's views and benchmarks.
@dataclass
class Lguest:
    """Everything about one Guest (lguest's struct lguest)."""
    guestid: int
    mem_base: int                 # host-physical address of Guest-physical 0 (but see
                                  # Process.phys: shared pages live elsewhere)
    pfn_limit: int
    page_offset: int
    launcher: object              # the Launcher process (its memory is the Guest's)
    cpus: list = field(default_factory=list)    # LgCpu, by id (P:403)
    nr_cpus: int = 0
    lguest_data: int | None = None    # Guest-physical address, once LGUEST_INIT ran
    noirq_start: int = 0
    noirq_end: int = 0
    dead: str | None = None
    pgdirs: list = field(default_factory=lambda: [None] * 4)
    shadow: ShadowAccount = field(default_factory=ShadowAccount)
    gdt: list = field(default_factory=lambda: [(0, 0)] * GDT_ENTRIES)
    idt: list = field(default_factory=lambda: [(0, 0)] * IDT_ENTRIES)
    syscall_idt: tuple = (0, 0)
    dma: list = field(default_factory=list)
    pending_dma: int = 0
    pending_key: int = 0
    dma_is_pending: bool = False
    # 2.6.25: the generation, and whether the Guest asked to be restarted
    # (read() gives ERESTART).
    virtio: bool = False
    restart: bool = False
    # figures for the views and benchmarks
    world_switches: int = 0
    hypercalls: int = 0


def _cpu_field(name: str) -> property:
    def get(lg: Lguest):
        return getattr(lg.cpus[0], name)

    def put(lg: Lguest, value) -> None:
        setattr(lg.cpus[0], name, value)

    return property(get, put, doc=f"CPU 0's {name} (struct lg_cpu)")


for _name in CPU_FIELDS:
    setattr(Lguest, _name, _cpu_field(_name))
Lguest.cpu = property(lambda lg: lg.cpus[0], doc="the Guest's one CPU (cpus[0])")


#: L:035 Let's pause on a routine used all over the Host.  When a Guest does
# something it must not (a bad address in a hypercall, a trap it cannot
# handle), the Host does not return an error that the Guest would then have to
# check: it kills the Guest.  Only the Guest kernel can make hypercalls, so
# there is nobody innocent to protect, and a Guest that is still running knows
# its call worked.  Killing is just writing down a reason: `run_guest` stops at
# the top of its loop, and the Launcher's next read() returns the text.  The
# callers can carry on as if nothing happened, and since only the first reason
# is kept, a cascade of later complaints does no harm.
def kill_guest(lg: Lguest, reason: str) -> None:
    """The Guest did something unforgivable: remember why (the first reason wins)."""
    if lg.dead is None:
        lg.dead = reason


#: L:305 The Guest hands the Host "physical" addresses all the time: hypercall
# arguments, DMA buffers, its `lguest_data`.  A Guest-physical address is an
# offset into the Launcher's memory (`Process` in core.py), but the Guest must
# not be trusted with all of it: above `pfn_limit` pages lie the Launcher's own
# things.  So every range is checked here before the Host copies a byte.  The
# test is lguest's, including its `addr + length >= addr` guard against C
# overflow (harmless, since Python integers do not wrap; the checks against
# negative values do that job here).  The helpers below, `lgread()`,
# `lgwrite()` and their 32-bit forms, check with it and, on a bad range, kill
# the Guest instead of failing: a read then returns zeroes, a write does nothing.
def lguest_address_ok(lg: Lguest, addr: int, length: int) -> bool:
    """Is [addr, addr+length) inside the memory this Guest may touch?"""
    return addr >= 0 and length >= 0 and (addr + length) // PAGE_SIZE < lg.pfn_limit \
        and addr + length >= addr


def lgread(lg: Lguest, mem, addr: int, length: int) -> bytes:
    """Copy Guest-physical memory; a bad address kills the Guest and reads zeroes."""
    if not lguest_address_ok(lg, addr, length):
        kill_guest(lg, f"bad read address {addr:#x} len {length}")
        return bytes(length)
    return lg.launcher.read(addr, length)


def lgwrite(lg: Lguest, mem, addr: int, data: bytes) -> None:
    if not lguest_address_ok(lg, addr, len(data)):
        kill_guest(lg, f"bad write address {addr:#x} len {len(data)}")
        return
    lg.launcher.write(addr, data)


def lgread_u32(lg: Lguest, mem, addr: int) -> int:
    return int.from_bytes(lgread(lg, mem, addr, 4), "little")


def lgwrite_u32(lg: Lguest, mem, addr: int, value: int) -> None:
    lgwrite(lg, mem, addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))
