"""Build i386 protected-mode worlds in PhysicalMemory for the CPU tests.

Everything here is written from the Intel SDM (vol. 3, chapters 3-7): the
layouts of segment descriptors, gate descriptors, the 32-bit TSS and the
two-level page tables.  Nothing is taken from the core, so the tests check
the core against the manual rather than against itself.

The standard world (``Env``) is flat: every code and data segment has base 0
and a 4 GiB limit, so a linear address is the offset, and (with paging off)
the physical address too.  Its layout in RAM:

    0x00001000  GDT (32 entries)       0x00002000  IDT (256 gates)
    0x00003000  TSS (104 bytes, I/O map base past the limit)
    0x00004000  handler stubs, 16 bytes per vector: each is ``hlt``
    0x00008000  ring-0 stack top when the test starts at ring 0
    0x00009000  TSS esp0 (ss0 = 0x10)     0x0000A000  TSS esp1 (ss1 = 0x21)
    0x0000B000  TSS esp2 (ss2 = 0x4A)     0x0000C000  ring-3 stack top
    0x00010000  test code                 0x00020000  test data
    0x00030000  page directory, page tables allocated upward from 0x31000

GDT selectors (RPL = DPL):
    0x08 ring-0 code  0x10 ring-0 data  0x19 ring-1 code  0x21 ring-1 data
    0x2B ring-3 code  0x33 ring-3 data  0x38 TSS  0x42 ring-2 code
    0x4A ring-2 data; entries 10-31 are free for tests (``Env.set_gdt``).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lguestsim.x86 import PhysicalMemory

# --- EFLAGS, CR0, CR4 and page-table bits (SDM vol. 3, 2.3, 2.5, 4.3) ----
CF, PF, AF, ZF, SF, TF, IF, DF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x100, 0x200, 0x400, 0x800
IOPL_SHIFT = 12
IOPL_MASK = 0x3000
NT, RF, VM, AC, VIF, VIP, ID = 0x4000, 0x10000, 0x20000, 0x40000, 0x80000, 0x100000, 0x200000
EFLAGS_FIXED = 0x2

CR0_PE, CR0_MP, CR0_EM, CR0_TS, CR0_ET, CR0_NE = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20
CR0_WP, CR0_AM, CR0_PG = 1 << 16, 1 << 18, 1 << 31
CR4_PSE, CR4_PAE, CR4_PGE = 0x10, 0x20, 0x80

PG_P, PG_W, PG_U, PG_PWT, PG_PCD, PG_A, PG_D, PG_PS, PG_G = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100)

# Exception vectors (SDM vol. 3, table 6-1).
DE, DB, NMI, BP, OF_VEC, BR, UD, NM, DF_VEC = 0, 1, 2, 3, 4, 5, 6, 7, 8
TS, NP, SS_VEC, GP, PF_VEC, MF, AC_VEC = 10, 11, 12, 13, 14, 16, 17

# --- the standard layout ------------------------------------------------------
GDT_BASE = 0x1000
GDT_ENTRIES = 32
IDT_BASE = 0x2000
TSS_BASE = 0x3000
HANDLERS = 0x4000
HANDLER_SIZE = 16
RING0_ESP = 0x8000
ESP0, ESP1, ESP2 = 0x9000, 0xA000, 0xB000
RING3_ESP = 0xC000
CODE = 0x10000
DATA = 0x20000
PD_BASE = 0x30000
PT_POOL = 0x31000
STACK_FILL = 0xA5A5A5A5   # what the stacks hold before a test pushes

NULL_SEL = 0x00
CS0, DS0 = 0x08, 0x10
CS1, DS1 = 0x19, 0x21
CS3, DS3 = 0x2B, 0x33
TSS_SEL = 0x38
CS2, DS2 = 0x42, 0x4A
CODE_SEL = {0: CS0, 1: CS1, 2: CS2, 3: CS3}
DATA_SEL = {0: DS0, 1: DS1, 2: DS2, 3: DS3}
STACK_TOP = {0: ESP0, 1: ESP1, 2: ESP2, 3: RING3_ESP}


# --- descriptors (SDM vol. 3, 3.4.5 and 6.11) ---------------------------------
def selector(index: int, rpl: int = 0, ldt: bool = False) -> int:
    return (index << 3) | (4 if ldt else 0) | rpl


def descriptor(base: int, limit: int, access: int, flags: int) -> bytes:
    """A segment descriptor: ``access`` is byte 5 (P, DPL, S, type), ``flags``
    the high nibble of byte 6 (G=8, D/B=4, L=2, AVL=1)."""
    lo = (limit & 0xFFFF) | ((base & 0xFFFF) << 16)
    hi = (((base >> 16) & 0xFF) | ((access & 0xFF) << 8) | (((limit >> 16) & 0xF) << 16)
          | ((flags & 0xF) << 20) | (base & 0xFF000000))
    return struct.pack("<II", lo, hi)


def code_segment(dpl: int = 0, base: int = 0, limit: int = 0xFFFFF, *, readable: bool = True,
                 conforming: bool = False, present: bool = True, g: bool = True,
                 big: bool = True, accessed: bool = False) -> bytes:
    access = (0x18 | (conforming << 2) | (readable << 1) | accessed | (dpl << 5)
              | (present << 7))
    return descriptor(base, limit, access, (g << 3) | (big << 2))


def data_segment(dpl: int = 0, base: int = 0, limit: int = 0xFFFFF, *, writable: bool = True,
                 expand_down: bool = False, present: bool = True, g: bool = True,
                 big: bool = True, accessed: bool = False) -> bytes:
    access = (0x10 | (expand_down << 2) | (writable << 1) | accessed | (dpl << 5)
              | (present << 7))
    return descriptor(base, limit, access, (g << 3) | (big << 2))


def tss_descriptor(base: int, limit: int = 0x67, dpl: int = 0, busy: bool = False,
                   present: bool = True) -> bytes:
    access = (0xB if busy else 0x9) | (dpl << 5) | (present << 7)
    return descriptor(base, limit, access, 0)


def ldt_descriptor(base: int, limit: int, dpl: int = 0, present: bool = True) -> bytes:
    return descriptor(base, limit, 0x2 | (dpl << 5) | (present << 7), 0)


GATE_TYPES = {"task": 0x5, "interrupt16": 0x6, "trap16": 0x7, "call": 0xC,
              "interrupt": 0xE, "trap": 0xF}


def gate(offset: int, sel: int, kind: str = "interrupt", dpl: int = 0,
         present: bool = True, params: int = 0) -> bytes:
    """An IDT (or GDT call) gate descriptor."""
    lo = (offset & 0xFFFF) | ((sel & 0xFFFF) << 16)
    hi = ((offset & 0xFFFF0000) | (present << 15) | (dpl << 13) | (GATE_TYPES[kind] << 8)
          | (params & 0x1F))
    return struct.pack("<II", lo, hi)


def tss32(esp0: int = 0, ss0: int = 0, esp1: int = 0, ss1: int = 0, esp2: int = 0,
          ss2: int = 0, cr3: int = 0, iomap_base: int = 104) -> bytes:
    """A 32-bit TSS (SDM vol. 3, figure 7-2); 104 bytes."""
    t = bytearray(104)
    struct.pack_into("<IIIIIII", t, 4, esp0, ss0, esp1, ss1, esp2, ss2, cr3)
    struct.pack_into("<HH", t, 100, 0, iomap_base)
    return bytes(t)


# --- page tables (SDM vol. 3, 4.3) ---------------------------------------------
class PageTables:
    """A two-level 32-bit page table in RAM at ``pd_base``; page tables are taken
    from a pool growing upward from ``pool``."""

    def __init__(self, mem: PhysicalMemory, pd_base: int = PD_BASE, pool: int = PT_POOL,
                 pde_flags: int = PG_P | PG_W | PG_U) -> None:
        self.mem = mem
        self.pd = pd_base
        self.pool = pool
        self.pde_flags = pde_flags
        mem.write(pd_base, bytes(4096))

    def pde_addr(self, va: int) -> int:
        return self.pd + (va >> 22) * 4

    def pde(self, va: int) -> int:
        return self.mem.read32(self.pde_addr(va))

    def pte_addr(self, va: int) -> int:
        pde = self.pde(va)
        assert pde & PG_P, f"no page table for {va:#x}"
        return (pde & 0xFFFFF000) + ((va >> 12) & 0x3FF) * 4

    def pte(self, va: int) -> int:
        return self.mem.read32(self.pte_addr(va))

    def _table(self, va: int) -> int:
        pde = self.pde(va)
        if not pde & PG_P:
            table = self.pool
            self.pool += 4096
            self.mem.write(table, bytes(4096))
            self.mem.write32(self.pde_addr(va), table | self.pde_flags)
            return table
        return pde & 0xFFFFF000

    def map(self, va: int, pa: int, flags: int = PG_P | PG_W | PG_U) -> None:
        table = self._table(va)
        self.mem.write32(table + ((va >> 12) & 0x3FF) * 4, (pa & 0xFFFFF000) | flags)

    def set_pte(self, va: int, value: int) -> None:
        self.mem.write32(self.pte_addr(va), value)

    def unmap(self, va: int) -> None:
        if self.pde(va) & PG_P:
            self.set_pte(va, 0)

    def identity(self, start: int, end: int, flags: int = PG_P | PG_W | PG_U) -> None:
        for va in range(start & ~0xFFF, end, 4096):
            self.map(va, va, flags)


# --- the standard world --------------------------------------------------------
class Env:
    """A CPU in flat protected mode at ring 0 with the standard GDT, an IDT
    whose 256 interrupt gates (DPL 0, ring-0 code) point at ``hlt`` stubs, and
    a TSS giving the ring 0, 1 and 2 stacks."""

    def __init__(self, mem_size: int = 4 << 20, *, paging: bool = False) -> None:
        from lguestsim.x86 import CPU, PhysicalMemory

        self.mem = PhysicalMemory(mem_size)
        self.cpu = cpu = CPU(self.mem)
        cpu.reset_flat32()
        gdt = [b"\0" * 8] * GDT_ENTRIES
        gdt[1] = code_segment(0)
        gdt[2] = data_segment(0)
        gdt[3] = code_segment(1)
        gdt[4] = data_segment(1)
        gdt[5] = code_segment(3)
        gdt[6] = data_segment(3)
        gdt[7] = tss_descriptor(TSS_BASE)
        gdt[8] = code_segment(2)
        gdt[9] = data_segment(2)
        self.mem.write(GDT_BASE, b"".join(gdt))
        self.mem.write(TSS_BASE, tss32(ESP0, DS0, ESP1, DS1, ESP2, DS2))
        for v in range(256):
            self.mem.write(self.handler(v), b"\xF4" + b"\x90" * (HANDLER_SIZE - 1))
            self.set_gate(v)
        # Stacks hold a known pattern so a test can see what a push wrote.
        self.mem.write(0x5000, struct.pack("<I", STACK_FILL) * ((RING3_ESP - 0x5000) // 4))
        cpu.gdtr = (GDT_BASE, GDT_ENTRIES * 8 - 1)
        cpu.idtr = (IDT_BASE, 256 * 8 - 1)
        cpu.load_tr(TSS_SEL)
        cpu.load_cs(CS0)
        for s in ("ss", "ds", "es", "fs", "gs"):
            cpu.load_segment(s, DS0)
        cpu.esp = RING0_ESP
        cpu.eip = CODE
        self.pt: PageTables | None = None
        if paging:
            self.enable_paging()

    # -- tables
    @staticmethod
    def handler(vector: int) -> int:
        return HANDLERS + vector * HANDLER_SIZE

    def set_gdt(self, index: int, desc: bytes) -> None:
        self.mem.write(GDT_BASE + index * 8, desc)

    def set_gate(self, vector: int, offset: int | None = None, sel: int = CS0,
                 kind: str = "interrupt", dpl: int = 0, present: bool = True) -> None:
        if offset is None:
            offset = self.handler(vector)
        self.mem.write(IDT_BASE + vector * 8, gate(offset, sel, kind, dpl, present))

    def set_handler_code(self, vector: int, code: bytes) -> None:
        assert len(code) <= HANDLER_SIZE
        self.mem.write(self.handler(vector), code)

    def set_tss(self, **fields: int) -> None:
        """Rewrite TSS fields by name: esp0 ss0 esp1 ss1 esp2 ss2 cr3 iomap_base."""
        offsets = {"esp0": 4, "ss0": 8, "esp1": 12, "ss1": 16, "esp2": 20, "ss2": 24,
                   "cr3": 28}
        for name, value in fields.items():
            if name == "iomap_base":
                self.mem.write16(TSS_BASE + 102, value)
            else:
                self.mem.write32(TSS_BASE + offsets[name], value)

    # -- paging
    def enable_paging(self, flags: int = PG_P | PG_W | PG_U, wp: bool = False) -> PageTables:
        """Identity-map the first 4 MiB (user, writable) and turn paging on."""
        self.pt = PageTables(self.mem)
        self.pt.identity(0, 0x400000, flags)
        self.cpu.cr3 = PD_BASE
        self.cpu.cr0 = self.cpu.cr0 | CR0_PG | (CR0_WP if wp else 0)
        return self.pt

    # -- code and state
    def code(self, data: bytes, at: int = CODE) -> int:
        self.mem.write(at, data)
        self.cpu.eip = at
        return at

    def enter_ring(self, ring: int, esp: int | None = None) -> None:
        """Put the CPU at ``ring`` with that ring's flat code, stack and data
        segments (set-up through load_cs/load_segment, not an instruction)."""
        cpu = self.cpu
        cpu.load_cs(CODE_SEL[ring])
        for s in ("ss", "ds", "es", "fs", "gs"):
            cpu.load_segment(s, DATA_SEL[ring])
        cpu.esp = (RING3_ESP if ring == 3 else {0: RING0_ESP, 1: ESP1 - 0x800,
                                                2: ESP2 - 0x800}[ring]) if esp is None else esp
        assert cpu.cpl == ring

    def read32(self, addr: int) -> int:
        return self.mem.read32(addr)

    def stack(self, n: int, esp: int | None = None) -> list[int]:
        """n dwords from esp upward (flat stack segment, paging off)."""
        esp = self.cpu.esp if esp is None else esp
        return [self.mem.read32(esp + 4 * i) for i in range(n)]

    def step(self, n: int = 1):
        r = None
        for _ in range(n):
            r = self.cpu.step()
        return r


def seg_slot_ok(slot: int, sel: int, fill: int = STACK_FILL) -> bool:
    """A segment selector pushed in a 32-bit slot: the low 16 bits are the
    selector; the SDM lets the processor either zero-extend it or write only
    the low word (SDM vol. 2, PUSH; vol. 3, 6.12.1)."""
    return slot & 0xFFFF == sel and slot >> 16 in (0, fill >> 16)


def assert_frame(words: list[int], expected: list[tuple[str, int]]) -> None:
    """Compare a stack frame, lowest address first.  Names ending in 'cs' or
    'ss' are selector slots (see seg_slot_ok); the rest must match exactly."""
    assert len(words) >= len(expected)
    for i, (name, want) in enumerate(expected):
        got = words[i]
        if name in ("cs", "ss"):
            assert seg_slot_ok(got, want), (
                f"frame[{i}] {name}: {got:#010x}, want selector {want:#06x}; "
                f"frame {[hex(w) for w in words]}")
        else:
            assert got == want, (f"frame[{i}] {name}: {got:#010x}, want {want:#010x}; "
                                 f"frame {[hex(w) for w in words]}")
