"""Two-level paging and the TLB.

A linear address splits 10/10/12: the page directory entry (found through
CR3), then the page table entry, then the offset.  With CR4.PSE a directory
entry with PS set maps 4 MiB directly.  The walk sets the accessed bits in the
entries it uses and the dirty bit on a write, as hardware does, and checks the
U/S and R/W bits of both levels (CR0.WP decides whether ring 0 may write a
read-only page).  A failed walk raises #PF with CR2 and the error code.

The TLB keeps what walks found.  Like a real one it is not coherent with the
tables: a page-table write leaves a stale entry in place until ``invlpg`` or a
CR3 load (which spares global entries when CR4.PGE is on).  lguest's shadow
page tables depend on exactly that contract.

For speed the CPU does not consult ``map`` on every access: four plain
dicts (supervisor/user x read/write) map a virtual page number straight to a
physical page base.  They are derived from ``map`` and rebuilt from it,
never from the tables, so they cannot make the TLB more coherent than it is.
A page that holds translated code is left out of the write dicts, so writes to
it take the slow path, which throws the translation away.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import timing
from .faults import PF, CPUFault

P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100
CR0_WP, CR0_PG = 1 << 16, 1 << 31
CR4_PSE, CR4_PGE = 1 << 4, 1 << 7


@dataclass(slots=True)
class TLBEntry:
    vpn: int          # virtual page number (address >> 12)
    page: int         # physical page base
    user: bool        # U/S allowed at both levels
    writable: bool    # R/W allowed at both levels
    dirty: bool
    glob: bool
    large: bool       # came from a 4 MiB page


#: P:035 The TLB remembers what walks found, one `TLBEntry` per virtual
# page, and is deliberately no more coherent than a real one: when a page
# table entry in RAM changes, the cached entry stays, stale, until `invlpg`
# drops that page (system.py) or a CR3 load drops them all (the `cr3` setter
# in cpu.py), sparing global entries when CR4.PGE is on.  This is the
# contract lguest's Host works within.  A Guest's changes to its own page
# tables mean nothing to the processor until the Guest's hypercalls carry
# them into the shadow tables (H:400), and the Host's writes to a shadow
# table take effect once the TLB forgets the old entry, which the Switcher's
# CR3 load on every entry into the Guest makes sure of.  A global Host page
# would survive even that, which is why the Host turns PGE off (H:005).  For
# speed, four plain dicts (supervisor or user, read or write) map a virtual
# page number straight to a physical page; `translate()` below fills them
# from `map` after its permission checks, and they are emptied with it, so
# they can never see a mapping the TLB does not hold.
class TLB:
    def __init__(self) -> None:
        self.map: dict[int, TLBEntry] = {}   # virtual page number -> entry
        self.sr: dict[int, int] = {}
        self.sw: dict[int, int] = {}
        self.ur: dict[int, int] = {}
        self.uw: dict[int, int] = {}
        # The write entries held back from sw/uw because their page holds
        # code: a store there must tell the CPU (P:029), but need not walk.
        self.cw: dict[int, int] = {}
        self.cuw: dict[int, int] = {}
        # The same four as deltas, page - (vpn << 12), for generated code: the
        # physical address of a linear one is then one addition (P:025).
        # These are keyed by the page's linear base (vpn << 12), not its
        # number, so that one mask of the address both finds the page and
        # rejects a misaligned access (its low bits then make a key no page
        # has).
        self.dsr: dict[int, int] = {}
        self.dsw: dict[int, int] = {}
        self.dur: dict[int, int] = {}
        self.duw: dict[int, int] = {}
        self.misses = 0
        self.accesses = 0       # memory accesses made (counted per block)
        self.code_pages: set[int] = set()   # physical page bases holding translated code

    @property
    def hits(self) -> int:
        return max(0, self.accesses - self.misses)

    def entries(self) -> list[TLBEntry]:
        return sorted(self.map.values(), key=lambda e: e.vpn)

    def clear_fast(self) -> None:
        self.sr.clear()
        self.sw.clear()
        self.ur.clear()
        self.uw.clear()
        self.cw.clear()
        self.cuw.clear()
        self.dsr.clear()
        self.dsw.clear()
        self.dur.clear()
        self.duw.clear()

    def flush(self, keep_global: bool = False) -> None:
        if keep_global:
            self.map = {v: e for v, e in self.map.items() if e.glob}
        else:
            self.map.clear()
        self.clear_fast()

    def invalidate(self, vpn: int) -> None:
        """invlpg: forget the page at ``vpn``; for a 4 MiB page, all of it (the
        hardware holds one entry for it, which we keep as 4 KiB pieces)."""
        doomed = [vpn]
        base = vpn & ~0x3FF
        doomed += [v for v in range(base, base + 1024)
                   if v != vpn and (e := self.map.get(v)) is not None and e.large]
        for v in doomed:
            self.map.pop(v, None)
            for d in (self.sr, self.sw, self.ur, self.uw, self.cw, self.cuw):
                d.pop(v, None)
            for d in (self.dsr, self.dsw, self.dur, self.duw):
                d.pop(v << 12, None)

    def unprotect_code_page(self, page: int) -> None:
        """``page`` holds no code any more: its stores may take the fast path again."""
        self.code_pages.discard(page)
        for held, d, delta in ((self.cw, self.sw, self.dsw), (self.cuw, self.uw, self.duw)):
            for vpn in [v for v, p in held.items() if p == page]:
                d[vpn] = held.pop(vpn)
                delta[vpn << 12] = page - (vpn << 12)

    def protect_code_page(self, page: int) -> None:
        """Keep writes to ``page`` off the fast path from now on."""
        if page in self.code_pages:
            return
        self.code_pages.add(page)
        for d, held, delta in ((self.sw, self.cw, self.dsw), (self.uw, self.cuw, self.duw)):
            for vpn in [v for v, p in d.items() if p == page]:
                held[vpn] = d.pop(vpn)
                del delta[vpn << 12]


#: P:034 The page-table walk, as an i386 does it.  CR3 gives the page
# directory; the top ten bits of the linear address pick a directory entry,
# the next ten an entry of the page table that one points to, and the low
# twelve a byte of the page.  (A directory entry with PS set, and CR4.PSE on,
# maps 4 MiB at once: the Host's own tables do that.)  Permissions are the
# AND of both levels: an access from ring 3 needs U/S in both, a write needs
# R/W in both, and rings 0 to 2 may write read-only pages unless CR0.WP is
# set.  So lguest's Guest kernel, in ring 1, is a supervisor as far as
# paging goes, and what keeps it from writing the Switcher's pages is their
# being read-only with WP on.  The walk sets the accessed bit in the entries
# it used, and the dirty bit on a write; in a Guest these land in the Host's
# shadow tables, not the Guest's, which is why the Host marks the Guest's
# own entries itself when it fills a shadow entry (H:330).  A failed walk
# sets CR2 and raises #PF with an error code saying whether the page was
# present, and whether the access was a write and came from ring 3.
def walk(cpu, la: int, write: bool, user: bool) -> TLBEntry:
    """Walk the page tables for ``la``; set A/D bits; raise #PF on failure."""
    tlb = cpu.tlb
    tlb.misses += 1
    cpu.cycles += timing.PAGE_WALK
    # A loop or region running now counts its cycles in locals, against a
    # budget worked out when it began: this tells it to stop and let run()
    # work the budget out again (as it stops when translations are dropped).
    cpu.code_generation += 1
    mem = cpu.mem
    err = (2 if write else 0) | (4 if user else 0)
    wp = cpu._cr0 & CR0_WP
    pde_addr = (cpu._cr3 & 0xFFFFF000) | ((la >> 20) & 0xFFC)
    # Entries are aligned words: one index into the word view (as read32, an
    # entry past the end of RAM reads as all ones).
    m32, size = mem.m32, mem.size
    pde = m32[pde_addr >> 2] if pde_addr < size else 0xFFFFFFFF
    if not pde & P:
        raise page_fault(cpu, la, err)
    if pde & PS and cpu._cr4 & CR4_PSE:
        ok_user = bool(pde & US)
        ok_write = bool(pde & RW)
        _check(cpu, la, err, write, user, ok_user, ok_write, wp)
        new = pde | A | (D if write else 0)
        if new != pde:
            _set_entry(cpu, pde_addr, new)
        page = (pde & 0xFFC00000) | (la & 0x3FF000)
        return TLBEntry(la >> 12, page, ok_user, ok_write, bool(new & D),
                        bool(pde & G and cpu._cr4 & CR4_PGE), True)
    if not pde & A:
        pde |= A
        _set_entry(cpu, pde_addr, pde)
    pte_addr = (pde & 0xFFFFF000) | ((la >> 10) & 0xFFC)
    pte = m32[pte_addr >> 2] if pte_addr < size else 0xFFFFFFFF
    if not pte & P:
        raise page_fault(cpu, la, err)
    ok_user = bool(pde & pte & US)
    ok_write = bool(pde & pte & RW)
    _check(cpu, la, err, write, user, ok_user, ok_write, wp)
    new = pte | A | (D if write else 0)
    if new != pte:
        _set_entry(cpu, pte_addr, new)
    return TLBEntry(la >> 12, pte & 0xFFFFF000, ok_user, ok_write, bool(new & D),
                    bool(pte & G and cpu._cr4 & CR4_PGE), False)


def _set_entry(cpu, addr: int, value: int) -> None:
    """Write back a paging entry's accessed/dirty bits.  Entries are aligned
    words; when the CPU is the memory's only watcher and the page holds no
    translated code, telling the watcher would do nothing, so one store does."""
    mem = cpu.mem
    if addr < mem.size and addr & ~0xFFF not in cpu.tlb.code_pages and mem.sole_watcher(cpu):
        mem.m32[addr >> 2] = value
    else:
        mem.write32(addr, value)


def _check(cpu, la, err, write, user, ok_user, ok_write, wp) -> None:
    if user and not ok_user:
        raise page_fault(cpu, la, err | 1)
    if write and not ok_write and (user or wp):
        raise page_fault(cpu, la, err | 1)


def page_fault(cpu, la: int, err: int) -> CPUFault:
    cpu.cr2 = la & 0xFFFFFFFF
    return CPUFault(PF, err)


def translate(cpu, la: int, write: bool, user: bool) -> int:
    """The physical address for linear ``la``, through the TLB; fills the fast dicts."""
    tlb = cpu.tlb
    vpn = la >> 12
    if not cpu._cr0 & CR0_PG:
        page = vpn << 12
        if page < cpu.mem.size:
            tlb.sr[vpn] = tlb.ur[vpn] = page
            tlb.dsr[page] = tlb.dur[page] = 0
            if page not in tlb.code_pages:
                tlb.sw[vpn] = tlb.uw[vpn] = page
                tlb.dsw[page] = tlb.duw[page] = 0
            else:
                tlb.cw[vpn] = tlb.cuw[vpn] = page
        return la
    e = tlb.map.get(vpn)
    if e is None or (write and not e.dirty):
        e = walk(cpu, la, write, user)
        tlb.map[vpn] = e
    else:
        err = (2 if write else 0) | (4 if user else 0)
        _check(cpu, la, err, write, user, e.user, e.writable, cpu._cr0 & CR0_WP)
    page = e.page
    if page < cpu.mem.size:
        lpage = vpn << 12
        delta = page - lpage
        tlb.sr[vpn] = page
        tlb.dsr[lpage] = delta
        if e.user:
            tlb.ur[vpn] = page
            tlb.dur[lpage] = delta
        if e.dirty:
            if page not in tlb.code_pages:
                if e.writable or not cpu._cr0 & CR0_WP:
                    tlb.sw[vpn] = page
                    tlb.dsw[lpage] = delta
                if e.writable and e.user:
                    tlb.uw[vpn] = page
                    tlb.duw[lpage] = delta
            else:
                if e.writable or not cpu._cr0 & CR0_WP:
                    tlb.cw[vpn] = page
                if e.writable and e.user:
                    tlb.cuw[vpn] = page
    return page | (la & 0xFFF)


def probe(cpu, la: int) -> tuple[int | None, list[tuple[str, int, int]]]:
    """Walk without side effects, for views: (physical address or None, steps).

    Each step is (level name, entry address, entry value).
    """
    steps = []
    if not cpu._cr0 & CR0_PG:
        return la, steps
    pde_addr = (cpu._cr3 & 0xFFFFF000) | ((la >> 20) & 0xFFC)
    pde = cpu.mem.read32(pde_addr)
    steps.append(("pde", pde_addr, pde))
    if not pde & P:
        return None, steps
    if pde & PS and cpu._cr4 & CR4_PSE:
        return (pde & 0xFFC00000) | (la & 0x3FFFFF), steps
    pte_addr = (pde & 0xFFFFF000) | ((la >> 10) & 0xFFC)
    pte = cpu.mem.read32(pte_addr)
    steps.append(("pte", pte_addr, pte))
    if not pte & P:
        return None, steps
    return (pte & 0xFFFFF000) | (la & 0xFFF), steps
