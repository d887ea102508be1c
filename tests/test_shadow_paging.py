"""A property of shadow paging (ABI.md section G), checked with hypothesis.

A well-behaved Guest changes its page tables and tells the Host (SET_PTE,
SET_PMD, FLUSH_TLB, NEW_PGTABLE); the processor faults on whatever the
shadow tables lack and the Host fills it in (demand_page).  After any
sequence of these, every present shadow entry must map the host frame that
backs the Guest's own mapping, with permissions no wider than the Guest's
(writable only once the Guest's entry is dirty), and directory entry 1023 must
hold nothing but the Switcher.
"""

from __future__ import annotations

import struct

from guestenv import PAGE_OFFSET, boot
from hypothesis import given, settings
from hypothesis import strategies as st

from lguestsim.host.page_tables import SWITCHER_PGD_INDEX

GUEST_PGDIRS = [0x200000 + i * 0x1000 for i in range(6)]
USER_PTE_POOL = 0x310000                          # user PTE pages allocated from here
USER_VADDRS = [0x08048000, 0x08049000, 0x0804A000, 0x40000000, 0x40001000, 0xBFFFF000]
KERNEL_VADDRS = [PAGE_OFFSET + 0x1000 * i for i in (0x400, 0x401, 0x402, 0x7F0)]
FLAGS = [0x1, 0x3, 0x5, 0x7, 0x21, 0x23, 0x25, 0x27, 0x61, 0x63, 0x65, 0x67, 0x0]
P, RW, US, D = 1, 2, 4, 0x40


class GuestModel:
    """The Guest's side: its own page tables in its memory, and the hypercalls."""

    def __init__(self) -> None:
        host, dev, lg, proc = boot("""
            HCALL 1, lguest_data-PO
            HCALL 13, 0, dma-PO
1:          jmp 1b
            .p2align 2
dma:        .long 0
            .fill 16, 4, 0
            .fill 16, 2, 0
        """)
        dev.read(8)          # it has run LGUEST_INIT and stopped at its first DMA
        self.host, self.lg, self.proc = host, lg, proc
        self.next_pte_page = USER_PTE_POOL
        # Like Linux, every address space shares the kernel half: copy the
        # directory entries of the Launcher's initial tables.
        boot_pgdir = lg.pgdirs[lg.pgdidx].gpgdir
        first = (PAGE_OFFSET >> 22) * 4
        kernel_half = proc.read(boot_pgdir + first, 4096 - first)
        for g in GUEST_PGDIRS:
            proc.write(g, bytes(4096))
            proc.write(g + (PAGE_OFFSET >> 22) * 4, kernel_half)
        self.cr3 = GUEST_PGDIRS[0]
        self.hcall(4, self.cr3)

    def hcall(self, n: int, a: int = 0, b: int = 0, c: int = 0) -> None:
        self.host.hypercalls.do_hcall(self.lg, n, a, b, c)
        assert self.lg.dead is None, self.lg.dead

    def pde_addr(self, vaddr: int) -> int:
        return self.cr3 + (vaddr >> 22) * 4

    def set_pte(self, vaddr: int, frame: int, flags: int) -> None:
        proc = self.proc
        pde = proc.read32(self.pde_addr(vaddr))
        if not pde & P:
            page, self.next_pte_page = self.next_pte_page, self.next_pte_page + 0x1000
            proc.write(page, bytes(4096))
            pde = page | 0x67
            proc.write32(self.pde_addr(vaddr), pde)
            self.hcall(15, self.cr3, vaddr >> 22)            # SET_PMD
        pte = (frame << 12) | flags if flags else 0
        proc.write32((pde & ~0xFFF) + ((vaddr >> 12) & 0x3FF) * 4, pte)
        self.hcall(14, self.cr3, vaddr, pte)                 # SET_PTE

    def access(self, vaddr: int, errcode: int) -> None:
        self.host.page_tables.demand_page(self.lg, vaddr, errcode)
        assert self.lg.dead is None, self.lg.dead


def check_shadow(model: GuestModel) -> None:
    lg, mem, proc = model.lg, model.host.mem, model.proc
    switcher_pde = model.host.switcher_pte_page | 0x063
    for slot in lg.pgdirs:
        if slot is None:
            continue
        for j in range(1024):
            spde = mem.read32(slot.page + 4 * j)
            if j == SWITCHER_PGD_INDEX:
                assert spde in (0, switcher_pde), f"entry 1023 is {spde:#x}"
                continue
            if not spde & P:
                continue
            gpde = proc.read32(slot.gpgdir + 4 * j)
            assert gpde & P, f"shadow PDE {j} present, Guest's is not"
            assert spde & ~gpde & (RW | US) == 0, f"shadow PDE {j} wider than the Guest's"
            for k in range(1024):
                spte = mem.read32((spde & ~0xFFF) + 4 * k)
                if not spte & P:
                    continue
                gpte = proc.read32((gpde & ~0xFFF) + 4 * k)
                where = f"vaddr {(j << 22) | (k << 12):#x}"
                assert gpte & P, f"{where}: shadow present, Guest's not"
                assert spte & ~0xFFF == lg.launcher.phys(gpte & ~0xFFF), f"{where}: wrong frame"
                assert spte & ~gpte & (RW | US) == 0, f"{where}: wider than the Guest's"
                assert not spte & RW or gpte & D, f"{where}: writable before dirty"
                assert not spte & 0x100, f"{where}: global"


ops = st.one_of(
    st.tuples(st.just("map"), st.sampled_from(USER_VADDRS + KERNEL_VADDRS),
              st.integers(0, 0x7EF), st.sampled_from(FLAGS)),
    st.tuples(st.just("access"), st.sampled_from(USER_VADDRS + KERNEL_VADDRS),
              st.sampled_from([0, 2, 4, 6])),
    st.tuples(st.just("flush"), st.sampled_from([0, 1])),
    st.tuples(st.just("newpgtable"), st.sampled_from(GUEST_PGDIRS)),
    st.tuples(st.just("guest_write_unannounced_then_flush"),
              st.sampled_from(USER_VADDRS), st.integers(0, 0x7EF)),
)


@settings(max_examples=60)
@given(st.lists(ops, min_size=1, max_size=40))
def test_shadow_entries_never_exceed_the_guests(seq):
    model = GuestModel()
    for op in seq:
        if op[0] == "map":
            model.set_pte(op[1], op[2], op[3])
        elif op[0] == "access":
            model.access(op[1], op[2])
        elif op[0] == "flush":
            model.hcall(5, op[1])
        elif op[0] == "newpgtable":
            model.cr3 = op[1]
            model.hcall(4, op[1])
        else:
            # Write a user PTE without SET_PTE, as a lazy Guest may, then flush.
            vaddr, frame = op[1], op[2]
            pde = model.proc.read32(model.pde_addr(vaddr))
            if pde & P:
                model.proc.write32((pde & ~0xFFF) + ((vaddr >> 12) & 0x3FF) * 4,
                                   (frame << 12) | 0x67)
            model.hcall(5, 0)
        check_shadow(model)


def test_demand_page_fills_from_the_guests_tables():
    model = GuestModel()
    model.set_pte(0x08048000, 0x123, 0x07)            # present, user, writable, not dirty
    model.access(0x08048000, 4)                       # a user read
    lg, mem = model.lg, model.host.mem
    spde = mem.read32(lg.pgdirs[lg.pgdidx].page + (0x08048000 >> 22) * 4)
    spte = mem.read32((spde & ~0xFFF) + ((0x08048000 >> 12) & 0x3FF) * 4)
    assert spte & ~0xFFF == lg.launcher.phys(0x123000)    # the frame behind Guest's 0x123
    assert spte & (P | US) == P | US and not spte & RW     # read-only until dirty
    model.access(0x08048000, 6)                       # a user write: now dirty and writable
    spte = mem.read32((spde & ~0xFFF) + ((0x08048000 >> 12) & 0x3FF) * 4)
    assert spte & RW
    gpte = struct.unpack("<I", model.proc.read(
        (model.proc.read32(model.pde_addr(0x08048000)) & ~0xFFF) + 0x48 * 4, 4))[0]
    assert gpte & 0x60 == 0x60                        # the Guest's entry: accessed and dirty
    check_shadow(model)


def test_a_new_address_space_never_inherits_user_mappings_even_when_host_memory_is_out():
    """With no frame for a new shadow, the Host takes over the current one;
    the old address space's user mappings must go with it (H:435)."""
    model = GuestModel()
    model.set_pte(0x08048000, 0x123, 0x07)
    model.access(0x08048000, 4)                       # address space A maps a user page
    lg, mem = model.lg, model.host.mem
    a = lg.pgdirs[lg.pgdidx].page
    assert mem.read32(a + (0x08048000 >> 22) * 4) & P
    model.host.alloc_page = lambda: None              # the Host has no page left
    for g in GUEST_PGDIRS[1:]:                        # every other address space: B, C, ...
        # The random pick lands on an empty slot, which the Host cannot fill.
        empty = next(i for i, slot in enumerate(lg.pgdirs) if slot is None)
        model.host.random.randrange = lambda n, empty=empty: empty
        model.cr3 = g
        model.hcall(4, g)                             # NEW_PGTABLE
        shadow = lg.pgdirs[lg.pgdidx].page
        assert lg.pgdirs[lg.pgdidx].gpgdir == g
        assert not mem.read32(shadow + (0x08048000 >> 22) * 4) & P, \
            f"{g:#x} sees the user mappings of the address space before it"
    check_shadow(model)
