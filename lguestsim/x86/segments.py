"""Segmentation: descriptors, the hidden descriptor caches, and selector loads.

A selector names an 8-byte descriptor in the GDT or LDT.  Loading a segment
register checks that descriptor the way the SDM lists it (null, table limit,
type, DPL against RPL and CPL, present) and copies base, limit and access
rights into the register's hidden cache; later accesses use the cache only.
lguest leans on this: its Guest kernel runs in ring 1 with segments whose DPL
the Host checks and fixes, and returning to a less privileged ring clears the
data segment registers that ring may not use.

Far transfers through call gates are call_gates.py's, task switches
task_switch.py's, and virtual-8086 mode's segments (base = selector * 16)
v86.py's; Linux's lguest Guest uses none of them, but a Guest may put them
in the GDT it hands the Host, so the core does what a 386 does with them.
"""

from __future__ import annotations

from .faults import GP, NP, SS, TS, CPUFault

# Access-byte bits.
ACCESSED, WRITABLE_OR_READABLE, CONFORMING_OR_DOWN, CODE, S_BIT, PRESENT = 1, 2, 4, 8, 0x10, 0x80
# System descriptor types (S = 0).
TSS32_AVAIL, LDT_TYPE, TSS32_BUSY = 0x9, 0x2, 0xB
TSS16_AVAIL, TSS16_BUSY = 0x1, 0x3
INTR_GATE16, TRAP_GATE16, INTR_GATE32, TRAP_GATE32, TASK_GATE = 0x6, 0x7, 0xE, 0xF, 0x5
CALL_GATE16, CALL_GATE32 = 0x4, 0xC
BUSY = 0x2                # the bit that marks a TSS type busy


def v86_segment(selector: int, code: bool = False) -> SegmentCache:
    """A segment register in virtual-8086 mode: base = selector * 16, 64 KiB, ring 3."""
    return SegmentCache(selector, selector << 4, 0xFFFF, 0xFB if code else 0xF3,
                        False, False, True)


#: P:030 A segment register is more than the 16-bit selector a program
# sees.  Loading one makes the processor read the 8-byte descriptor the
# selector names, check it, and copy its base, limit and access rights into a
# hidden part of the register; every later access through that register uses
# the copy and never looks at the table again.  `SegmentCache` is the whole
# register, visible and hidden parts.  Two things follow that matter to
# lguest: the Host can change the GDT a Guest runs on without disturbing
# segment registers already loaded from it, and the privilege the processor
# runs at comes from the DPL copied into CS.  `flat()` is the simulator's own
# question: base 0 and a 4 GiB limit need no checks at all, and generated
# code skips segmentation for such a segment entirely (P:028).
class SegmentCache:
    """The visible selector and hidden part of one segment register."""

    __slots__ = ("selector", "base", "limit", "access", "big", "gran", "valid")

    def __init__(self, selector: int = 0, base: int = 0, limit: int = 0xFFFF,
                 access: int = 0x93, big: bool = False, gran: bool = False,
                 valid: bool = True) -> None:
        self.selector = selector
        self.base = base
        self.limit = limit        # the effective byte limit
        self.access = access      # P DPL S type, as in the descriptor
        self.big = big            # D/B bit: 32-bit code / 32-bit stack
        self.gran = gran
        self.valid = valid        # False after loading a null selector

    @property
    def dpl(self) -> int:
        return (self.access >> 5) & 3

    @property
    def is_code(self) -> bool:
        return bool(self.access & S_BIT and self.access & CODE)

    @property
    def expand_down(self) -> bool:
        return bool(self.access & S_BIT and not self.access & CODE and self.access & CONFORMING_OR_DOWN)

    def flat(self) -> bool:
        """Base 0, limit 4 GiB, expand-up writable data: accesses need no checks."""
        return (self.valid and self.base == 0 and self.limit == 0xFFFFFFFF
                and self.access & (S_BIT | CODE | WRITABLE_OR_READABLE | CONFORMING_OR_DOWN | PRESENT)
                == (S_BIT | WRITABLE_OR_READABLE | PRESENT))

    def copy(self) -> SegmentCache:
        return SegmentCache(self.selector, self.base, self.limit, self.access, self.big,
                            self.gran, self.valid)

    def __repr__(self) -> str:
        return (f"SegmentCache(sel={self.selector:#06x}, base={self.base:#010x}, "
                f"limit={self.limit:#010x}, access={self.access:#04x}, big={self.big})")


class Descriptor:
    """A decoded 8-byte segment or gate descriptor."""

    __slots__ = ("low", "high")

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    @property
    def base(self) -> int:
        return (self.low >> 16) | ((self.high & 0xFF) << 16) | (self.high & 0xFF000000)

    @property
    def limit(self) -> int:
        raw = (self.low & 0xFFFF) | (self.high & 0xF0000)
        return (raw << 12) | 0xFFF if self.high & 0x800000 else raw

    @property
    def access(self) -> int:
        return (self.high >> 8) & 0xFF

    @property
    def type(self) -> int:
        return (self.high >> 8) & 0xF

    @property
    def system(self) -> bool:
        return not self.high & 0x1000

    @property
    def dpl(self) -> int:
        return (self.high >> 13) & 3

    @property
    def present(self) -> bool:
        return bool(self.high & 0x8000)

    @property
    def big(self) -> bool:
        return bool(self.high & 0x400000)

    @property
    def is_code(self) -> bool:
        return not self.system and bool(self.type & CODE)

    @property
    def gate_selector(self) -> int:
        return self.low >> 16

    @property
    def gate_offset(self) -> int:
        return (self.low & 0xFFFF) | (self.high & 0xFFFF0000)

    def cache(self, selector: int) -> SegmentCache:
        # The properties above, computed inline: every segment load comes here.
        low, high = self.low, self.high
        raw = (low & 0xFFFF) | (high & 0xF0000)
        gran = bool(high & 0x800000)
        return SegmentCache(selector,
                            (low >> 16) | ((high & 0xFF) << 16) | (high & 0xFF000000),
                            (raw << 12) | 0xFFF if gran else raw, (high >> 8) & 0xFF,
                            bool(high & 0x400000), gran, True)


def encode(base: int, limit: int, access: int, flags: int = 0xC) -> bytes:
    """Build a descriptor: flags is the G D/B L AVL nibble (0xC: 4 KiB pages, 32-bit)."""
    low = (limit & 0xFFFF) | ((base & 0xFFFF) << 16)
    high = (((base >> 16) & 0xFF) | (access << 8) | (limit & 0xF0000) | ((flags & 0xF) << 20)
            | (base & 0xFF000000))
    return low.to_bytes(4, "little") + high.to_bytes(4, "little")


def fetch_descriptor(cpu, selector: int, vector: int = GP, ext: int = 0) -> Descriptor:
    """Read the descriptor a (non-null) selector names, or fault with its error code."""
    index = selector & 0xFFF8
    if selector & 4:
        if not cpu.ldtr_cache.valid or index + 7 > cpu.ldtr_cache.limit:
            raise CPUFault(vector, (selector & 0xFFFC) | ext)
        base = cpu.ldtr_cache.base
    else:
        if index + 7 > cpu.gdt_limit:
            raise CPUFault(vector, (selector & 0xFFFC) | ext)
        base = cpu.gdt_base
    raw = read_table_entry(cpu, (base + index) & 0xFFFFFFFF)
    return Descriptor(raw & 0xFFFFFFFF, raw >> 32)


def read_table_entry(cpu, la: int) -> int:
    """The 8 bytes at linear ``la`` as a supervisor reads them (cpu.read_sup), as
    one integer: straight from RAM when the TLB's fast dict has the page, as
    it has for a GDT or IDT already used since the last flush."""
    tlb = cpu.tlb
    p = tlb.sr.get(la >> 12)
    if p is not None and la & 0xFFF <= 0xFF8:
        tlb.accesses += 1
        p |= la & 0xFFF
        return int.from_bytes(cpu.ram[p:p + 8], "little")
    return int.from_bytes(cpu.read_sup(la, 8), "little")


def set_accessed(cpu, selector: int, desc: Descriptor) -> None:
    """Hardware sets the descriptor's accessed bit when it loads a segment."""
    if desc.high & 0x100:
        return
    desc.high |= 0x100
    base = cpu.ldtr_cache.base if selector & 4 else cpu.gdt_base
    cpu.write_sup((base + (selector & 0xFFF8) + 4) & 0xFFFFFFFF, desc.high.to_bytes(4, "little"))


#: P:031 A `mov` into DS, ES, FS or GS in protected mode runs the SDM's
# checks in the SDM's order.  A null selector is allowed and leaves the
# register unusable, so the first access through it faults.  Otherwise the
# descriptor must lie within the table, be a data segment or a readable code
# segment, and be no more privileged than both the CPL and the selector's
# requested privilege (RPL): ring 1 code cannot load a DPL 0 data segment.
# Then it must be present (#NP otherwise), and the processor marks it
# accessed in the table, a write to memory.  So lguest's Host raises every
# DPL 0 descriptor the Guest hands it to DPL 1, or the Guest kernel could
# not load its own data segments, and sets every accessed bit beforehand,
# because the GDT the processor really uses sits in a read-only page (P:600).
def load_data_segment(cpu, sreg: int, selector: int) -> None:
    """mov/pop/lds into DS, ES, FS or GS: the protected-mode checks (SDM MOV)."""
    selector &= 0xFFFF
    if not cpu.protected:
        if cpu.v86:
            cpu.set_segment(sreg, v86_segment(selector))
            return
        cpu.set_segment(sreg, SegmentCache(selector, selector << 4, cpu.sregs[sreg].limit,
                                           cpu.sregs[sreg].access, cpu.sregs[sreg].big))
        return
    if selector & 0xFFFC == 0:
        cpu.set_segment(sreg, SegmentCache(selector, 0, 0, 0, False, False, False))
        return
    desc = fetch_descriptor(cpu, selector)
    err = selector & 0xFFFC
    # Descriptor's properties, inline (a world switch loads ten segments).
    high = desc.high
    typ = (high >> 8) & 0xF
    is_code = high & 0x1000 and typ & CODE
    if not high & 0x1000 or (is_code and not typ & WRITABLE_OR_READABLE):
        raise CPUFault(GP, err)
    if not (is_code and typ & CONFORMING_OR_DOWN):
        dpl = (high >> 13) & 3
        if (selector & 3) > dpl or cpu.cpl > dpl:
            raise CPUFault(GP, err)
    if not high & 0x8000:
        raise CPUFault(NP, err)
    set_accessed(cpu, selector, desc)
    cpu.set_segment(sreg, desc.cache(selector))


def check_stack_segment(cpu, selector: int, rpl_cpl: int, vector: int = GP, ext: int = 0) -> Descriptor:
    """The checks for a new SS at privilege ``rpl_cpl`` (mov ss, iret/ret, interrupt)."""
    err = (selector & 0xFFFC) | ext
    if selector & 0xFFFC == 0:
        raise CPUFault(vector, ext)
    desc = fetch_descriptor(cpu, selector, vector, ext)
    if (selector & 3) != rpl_cpl or desc.dpl != rpl_cpl or desc.system or desc.is_code \
            or not desc.type & WRITABLE_OR_READABLE:
        raise CPUFault(vector, err)
    if not desc.present:
        raise CPUFault(SS, err)
    return desc


def load_ss(cpu, selector: int) -> None:
    """mov ss / pop ss / lss."""
    selector &= 0xFFFF
    if not cpu.protected:
        if cpu.v86:
            cpu.set_segment(2, v86_segment(selector))
            return
        s = cpu.sregs[2]
        cpu.set_segment(2, SegmentCache(selector, selector << 4, s.limit, s.access, s.big))
        return
    desc = check_stack_segment(cpu, selector, cpu.cpl)
    set_accessed(cpu, selector, desc)
    cpu.set_segment(2, desc.cache(selector))


def check_code_segment(cpu, selector: int, ext: int = 0) -> Descriptor:
    """A far jmp/call target: a present code segment this CPL may enter directly."""
    if selector & 0xFFFC == 0:
        raise CPUFault(GP, ext)
    desc = fetch_descriptor(cpu, selector, GP, ext)
    err = (selector & 0xFFFC) | ext
    if not desc.is_code:
        raise CPUFault(GP, err)
    if desc.type & CONFORMING_OR_DOWN:
        if desc.dpl > cpu.cpl:
            raise CPUFault(GP, err)
    elif (selector & 3) > cpu.cpl or desc.dpl != cpu.cpl:
        raise CPUFault(GP, err)
    if not desc.present:
        raise CPUFault(NP, err)
    return desc


def null_outer_data_segments(cpu) -> None:
    """After a return to an outer ring, drop data segments the new ring may not use."""
    for sreg in (0, 3, 4, 5):
        s = cpu.sregs[sreg]
        if not s.valid:
            continue
        conforming_code = s.access & CODE and s.access & CONFORMING_OR_DOWN
        if not conforming_code and s.dpl < cpu.cpl:
            cpu.set_segment(sreg, SegmentCache(0, 0, 0, 0, False, False, False))


def load_tr(cpu, selector: int) -> None:
    """ltr: an available 32-bit TSS in the GDT, marked busy."""
    if selector & 0xFFFC == 0:
        raise CPUFault(GP, 0)
    if selector & 4:
        raise CPUFault(GP, selector & 0xFFFC)
    desc = fetch_descriptor(cpu, selector)
    if not desc.system or desc.type not in (TSS32_AVAIL, 0x1):
        raise CPUFault(GP, selector & 0xFFFC)
    if not desc.present:
        raise CPUFault(NP, selector & 0xFFFC)
    desc.high |= 0x200  # busy
    cpu.write_sup((cpu.gdt_base + (selector & 0xFFF8) + 4) & 0xFFFFFFFF,
                  desc.high.to_bytes(4, "little"))
    cpu.tr_cache = desc.cache(selector)


def load_ldtr(cpu, selector: int) -> None:
    if selector & 0xFFFC == 0:
        cpu.ldtr_cache = SegmentCache(selector, 0, 0, 0, False, False, False)
        return
    if selector & 4:
        raise CPUFault(GP, selector & 0xFFFC)
    desc = fetch_descriptor(cpu, selector)
    if not desc.system or desc.type != LDT_TYPE:
        raise CPUFault(GP, selector & 0xFFFC)
    if not desc.present:
        raise CPUFault(NP, selector & 0xFFFC)
    cpu.ldtr_cache = desc.cache(selector)


#: P:037 Where the new stack comes from.  A 32-bit TSS holds a stack pointer
# and stack segment for each of rings 0, 1 and 2, at offsets 4, 12 and 20
# (ESP first, then SS), and an interrupt entering a more privileged ring
# takes the pair for that ring.  lguest uses two of them.  `esp0` in the
# Switcher's TSS points at the end of the Guest's regs page, so a trap out
# of the Guest pushes its frame exactly where the Host will read
# `lguest_regs` (H:010).  `esp1`/`ss1` are the Guest kernel's own stack, set
# by hypercall (H:265), so that a system call from Guest user mode can go
# through a gate straight to the Guest's ring 1 handler with no Host involved
# (H:260).  A TSS too short to hold the pair is a #TS.  (A 286 TSS holds
# 16-bit SP:SS pairs at offsets 2, 6 and 10.)
def tss_stack(cpu, ring: int, ext: int) -> tuple[int, int]:
    """The ss:esp for ``ring`` from the current TSS (#TS if it is too short)."""
    tr = cpu.tr_cache
    wide = tr.access & 8
    off, size = (4 + ring * 8, 8) if wide else (2 + ring * 4, 4)
    if not tr.valid or off + size - 1 > tr.limit:
        raise CPUFault(TS, (tr.selector & 0xFFFC) | ext)
    raw = cpu.read_sup((tr.base + off) & 0xFFFFFFFF, size)
    if not wide:
        return int.from_bytes(raw[2:4], "little"), int.from_bytes(raw[:2], "little")
    return int.from_bytes(raw[4:6], "little"), int.from_bytes(raw[:4], "little")
