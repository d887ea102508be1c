"""Shadow page tables: the Guest's tables as the processor actually sees them.

The Guest keeps ordinary two-level page tables in its own memory, but they
hold Guest-physical frame numbers, and the Guest may not be trusted with the
real ones.  So the CPU never walks them.  The Host builds a shadow page
directory per Guest address space (four cached per Guest), fills it lazily
on page faults (demand_page), and keeps it in step when the Guest announces a
change by hypercall (SET_PTE, SET_PMD, FLUSH_TLB, NEW_PGTABLE).  Every shadow
entry maps the *host* frame that backs the Guest's frame, never grants more
than the Guest's entry, and is writable only once the Guest's entry is dirty,
so that the first write faults and the Host can set the dirty bit for it.

The last directory entry (1023) belongs to the Switcher in every shadow
directory; a Guest that tries to reach it there is killed.
"""

from __future__ import annotations

from .lg import PAGE_SIZE, Lguest, ShadowPgdir, kill_guest, lgread_u32, lgwrite_u32

P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100
PAGE_TABLE_FLAGS = P | RW | US | A | D    # 0x067: what a Guest PDE may carry
SWITCHER_PGD_INDEX = 1023


def pgd_index(vaddr: int) -> int:
    return vaddr >> 22


def pte_index(vaddr: int) -> int:
    return (vaddr >> 12) & 0x3FF


class PageTables:
    """The shadow-paging half of the Host, over the machine's RAM."""

    def __init__(self, host) -> None:
        self.host = host
        self.mem = host.machine.mem

    # -- the shadow directories
    def spgd_addr(self, lg: Lguest, idx: int, vaddr: int) -> int | None:
        """Host-physical address of the shadow PDE for vaddr, or None (Guest killed)."""
        index = pgd_index(vaddr)
        if index >= SWITCHER_PGD_INDEX:
            kill_guest(lg, "attempt to access switcher pages")
            index = 0
        return lg.pgdirs[idx].page + index * 4

    def gpgd_addr(self, lg: Lguest, vaddr: int) -> int:
        return lg.pgdirs[lg.pgdidx].gpgdir + pgd_index(vaddr) * 4

    def check_gpgd(self, lg: Lguest, gpgd: int) -> None:
        if gpgd & 0xFFF & ~PAGE_TABLE_FLAGS or (gpgd >> 12) >= lg.pfn_limit:
            kill_guest(lg, f"bad page directory entry {gpgd:#x}")

    def check_gpte(self, lg: Lguest, gpte: int) -> None:
        if gpte & (PS | PWT) or (gpte >> 12) >= lg.pfn_limit:
            kill_guest(lg, f"bad page table entry {gpte:#x}")

    def gpte_to_spte(self, lg: Lguest, gpte: int, write: bool) -> int:
        """The shadow PTE: the host frame behind the Guest's; never global; writable iff dirty."""
        flags = gpte & 0xFFF & ~G
        if not write:
            flags &= ~RW
        host_frame = lg.launcher.phys(gpte & 0xFFFFF000)
        return host_frame | flags

    # -- demand paging
    #: H:320 demand_page
    def demand_page(self, lg: Lguest, vaddr: int, errcode: int) -> bool:
        """Fill in the shadow entry for a faulting address, if the Guest's tables allow it.

        Returns True when the fault is dealt with and the Guest can simply run
        again; False when the Guest must be told (its own mapping is missing or
        forbids the access).
        """
        mem = self.mem
        gpgd = lgread_u32(lg, mem, self.gpgd_addr(lg, vaddr))
        if not gpgd & P or lg.dead:
            return False
        spgd = self.spgd_addr(lg, lg.pgdidx, vaddr)
        if lg.dead:
            return False
        spde = mem.read32(spgd)
        if not spde & P:
            self.check_gpgd(lg, gpgd)
            if lg.dead:
                return False
            page = self.host.alloc_page()
            if page is None:
                kill_guest(lg, "out of memory allocating pte page")
                return False
            spde = page | (gpgd & 0xFFF)
            mem.write32(spgd, spde)
        gpte_addr = (gpgd & 0xFFFFF000) + pte_index(vaddr) * 4
        gpte = lgread_u32(lg, mem, gpte_addr)
        if not gpte & P:
            return False
        if errcode & 2 and not gpte & RW:
            return False
        if errcode & 4 and not gpte & US:
            return False
        self.check_gpte(lg, gpte)
        if lg.dead:
            return False
        gpte |= A
        if errcode & 2:
            gpte |= D
        spte_addr = (spde & 0xFFFFF000) + pte_index(vaddr) * 4
        mem.write32(spte_addr, self.gpte_to_spte(lg, gpte, bool(gpte & D)))
        lgwrite_u32(lg, mem, gpte_addr, gpte)
        self.host.trace.emit("pagefault", guest=lg.guestid, vaddr=vaddr, errcode=errcode,
                             gpte=gpte, handled=True)
        return True

    def page_writable(self, lg: Lguest, vaddr: int) -> bool:
        spgd = self.spgd_addr(lg, lg.pgdidx, vaddr)
        spde = self.mem.read32(spgd)
        if not spde & P:
            return False
        spte = self.mem.read32((spde & 0xFFFFF000) + pte_index(vaddr) * 4)
        return bool(spte & P and spte & RW)

    def pin_page(self, lg: Lguest, vaddr: int) -> None:
        """Make sure a Guest kernel stack page is present and writable in the shadow."""
        if not self.page_writable(lg, vaddr) and not self.demand_page(lg, vaddr, 2):
            kill_guest(lg, f"bad stack page {vaddr:#x}")

    def pin_stack_pages(self, lg: Lguest) -> None:
        # Direct traps push on this stack with no Host help: it must never fault.
        for i in range(lg.stack_pages):
            self.pin_page(lg, (lg.esp1 - 1 - i * PAGE_SIZE) & 0xFFFFFFFF)

    # -- releasing shadow entries
    def release_pgd(self, lg: Lguest, spgd: int) -> None:
        spde = self.mem.read32(spgd)
        if spde & P:
            self.host.free_page(spde & 0xFFFFF000)
            self.mem.write32(spgd, 0)

    def flush_user_mappings(self, lg: Lguest, idx: int) -> None:
        base = lg.pgdirs[idx].page
        for i in range(pgd_index(lg.page_offset)):
            self.release_pgd(lg, base + i * 4)

    # -- the hypercalls
    def guest_pagetable_flush_user(self, lg: Lguest) -> None:
        self.flush_user_mappings(lg, lg.pgdidx)

    def guest_pagetable_clear_all(self, lg: Lguest) -> None:
        for pgdir in lg.pgdirs:
            if pgdir is not None:
                for j in range(SWITCHER_PGD_INDEX):
                    self.release_pgd(lg, pgdir.page + j * 4)
        self.pin_stack_pages(lg)

    def find_pgdir(self, lg: Lguest, gpgdir: int) -> int | None:
        for i, pgdir in enumerate(lg.pgdirs):
            if pgdir is not None and pgdir.gpgdir == gpgdir:
                return i
        return None

    def new_pgdir(self, lg: Lguest, gpgdir: int) -> tuple[int, bool]:
        """Pick a slot for a new address space (at random, as lguest does)."""
        nxt = self.host.random.randrange(len(lg.pgdirs))
        blank = False
        if lg.pgdirs[nxt] is None:
            page = self.host.alloc_page()
            if page is None:
                nxt = lg.pgdidx
            else:
                lg.pgdirs[nxt] = ShadowPgdir(gpgdir, page)
                blank = True
                return nxt, blank
        else:
            self.flush_user_mappings(lg, nxt)
            blank = True
        lg.pgdirs[nxt].gpgdir = gpgdir
        return nxt, blank

    #: H:330 guest_new_pagetable
    def guest_new_pagetable(self, lg: Lguest, gpgdir: int) -> None:
        idx = self.find_pgdir(lg, gpgdir)
        repin = False
        if idx is None:
            idx, repin = self.new_pgdir(lg, gpgdir)
        lg.pgdidx = idx
        if repin:
            self.pin_stack_pages(lg)

    def do_set_pte(self, lg: Lguest, idx: int, vaddr: int, gpte: int) -> None:
        spgd = self.spgd_addr(lg, idx, vaddr)
        if lg.dead:
            return
        spde = self.mem.read32(spgd)
        if not spde & P:
            return
        spte_addr = (spde & 0xFFFFF000) + pte_index(vaddr) * 4
        if gpte & (D | A):
            self.check_gpte(lg, gpte)
            if lg.dead:
                return
            self.mem.write32(spte_addr, self.gpte_to_spte(lg, gpte, bool(gpte & D)))
        else:
            self.mem.write32(spte_addr, 0)

    #: H:340 guest_set_pte
    def guest_set_pte(self, lg: Lguest, gpgdir: int, vaddr: int, gpte: int) -> None:
        """SET_PTE: kernel mappings are shared by all address spaces; user ones are not."""
        if vaddr >= lg.page_offset:
            for i, pgdir in enumerate(lg.pgdirs):
                if pgdir is not None:
                    self.do_set_pte(lg, i, vaddr, gpte)
        else:
            idx = self.find_pgdir(lg, gpgdir)
            if idx is not None:
                self.do_set_pte(lg, idx, vaddr, gpte)

    def guest_set_pmd(self, lg: Lguest, gpgdir: int, index: int) -> None:
        if index >= SWITCHER_PGD_INDEX:
            return
        idx = self.find_pgdir(lg, gpgdir)
        if idx is not None:
            self.release_pgd(lg, lg.pgdirs[idx].page + index * 4)

    def init_guest_pagetable(self, lg: Lguest, gpgdir: int) -> bool:
        page = self.host.alloc_page()
        if page is None:
            return False
        lg.pgdidx = 0
        lg.pgdirs[0] = ShadowPgdir(gpgdir, page)
        return True

    def free_guest_pagetable(self, lg: Lguest) -> None:
        for i, pgdir in enumerate(lg.pgdirs):
            if pgdir is not None:
                for j in range(SWITCHER_PGD_INDEX):
                    self.release_pgd(lg, pgdir.page + j * 4)
                self.host.free_page(pgdir.page)
                lg.pgdirs[i] = None

    def map_switcher_in_guest(self, lg: Lguest) -> None:
        """Point the current shadow directory's last entry at the Switcher's PTE page,
        and put this Guest's own regs page where the Switcher saves registers."""
        host = self.host
        shadow = lg.pgdirs[lg.pgdidx].page
        self.mem.write32(shadow + SWITCHER_PGD_INDEX * 4, host.switcher_pte_page | 0x063)
        self.mem.write32(host.switcher_pte_page + host.regs_pte_index * 4, lg.regs_page | 0x063)
