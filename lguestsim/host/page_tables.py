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

#: P:700 Shadow page tables: the longest and most delicate part of the Host.
# The Guest describes its address spaces in page tables of its own, but those
# map Guest-virtual addresses to Guest-*physical* frames, and the Guest could
# write any frame number it liked in them.  So the processor is never pointed
# at them: it walks tables the Host builds instead, every entry checked and
# translated to the machine frame that really holds the Guest's page.  In
# lguestsim the difference can be seen: Guest-physical memory is its
# Launcher's Process, which sits above the Host's first 16 MiB of machine RAM,
# so a Guest entry and its shadow never hold the same frame number.

from __future__ import annotations

from dataclasses import dataclass

from .lg import (
    PAGE_SIZE,
    Lguest,
    ShadowAccount,
    ShadowPgdir,
    kill_guest,
    lgread_u32,
    lgwrite_u32,
)

#: H:300 The page table code.  The Guest uses the classic two-level i386
# layout (no PAE): a page directory of 1024 entries, each pointing at a page
# table of 1024 entries, each mapping one 4 KiB page.  Its tables stay in its
# own memory, and the Host only ever reads (and writes back accessed and dirty
# bits in) them; the tables the processor walks are the *shadows*, built
# here.  The work falls into seven parts, which the passages below follow:
# (i) filling a shadow entry when the Guest faults, (ii) keeping the Guest's
# kernel stack mapped, (iii) following the Guest's changes to its entries,
# (iv) switching address spaces, (v) flushing, (vi) mapping the Switcher
# before each run, and (vii) setting up.
#
# The constants are the entry bits the code looks at, the most a Guest page
# directory entry may carry (0x067), and the directory slot for the top
# 4 MiB of the address space, which is the Switcher's.
P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80, 0x100
PAGE_TABLE_FLAGS = P | RW | US | A | D    # 0x067: what a Guest PDE may carry
SWITCHER_PGD_INDEX = 1023
QUOTA_SHARES = 4          # a Guest may hold a quarter of the pool before it pays itself


#: H:312 The Host-wide view of the frame pool's use, for the views and the Host
# chapter: how many frames the pool has, how many are free, the quota past
# which a Guest's own shadows are reclaimed to pay for new ones, and each
# Guest's account (H:311), by Guest id.
@dataclass
class ShadowAccounting:
    pool: int
    free: int
    quota: int
    guests: dict[int, ShadowAccount]


#: H:320 Two helpers split a 32-bit virtual address the way the processor
# does: the top ten bits choose the page directory entry, the next ten the
# page table entry, and the low twelve are the offset in the page.  Guest and
# shadow tables share the layout, so every lookup below starts with these.
def pgd_index(vaddr: int) -> int:
    return vaddr >> 22


#: H:321 And the page table entry: bits 12 to 21 of the address.  (No
# helper is needed for the offset; a shadow entry maps a whole page.)
def pte_index(vaddr: int) -> int:
    return (vaddr >> 12) & 0x3FF


class PageTables:
    """The shadow-paging half of the Host, over the machine's RAM."""

    def __init__(self, host) -> None:
        self.host = host
        self.mem = host.machine.mem
        self.pool = len(host.free_frames)
        self.quota = self.pool // QUOTA_SHARES

    # -- the shadow directories
    #: H:323 Where the shadow directory entry for an address lives: in slot
    # `idx` of the Guest's cached shadow directories (usually the current
    # one), at the address's directory index.  That page is the Host's, a
    # frame from its own pool in machine RAM, so it is read and written
    # directly, with none of the checks Guest memory gets.  The last entry maps
    # the Switcher in every shadow, and a Guest that makes us look it up (by
    # faulting there, or setting a mapping there) has tried to touch the
    # Switcher: it is killed, and entry 0 is used so that the caller still
    # gets a harmless address to finish with.
    def spgd_addr(self, lg: Lguest, idx: int, vaddr: int) -> int | None:
        """Host-physical address of the shadow PDE for vaddr, or None (Guest killed)."""
        index = pgd_index(vaddr)
        if index >= SWITCHER_PGD_INDEX:
            kill_guest(lg, "attempt to access switcher pages")
            index = 0
        return lg.pgdirs[idx].page + index * 4

    #: H:324 The Guest-side twin: where the Guest's own directory entry for an
    # address lies, as a Guest-physical address for lgread_u32().  It looks in
    # the directory of the address space the Guest is running now (`pgdidx`),
    # which is where faults happen.
    def gpgd_addr(self, lg: Lguest, vaddr: int) -> int:
        return lg.pgdirs[lg.pgdidx].gpgdir + pgd_index(vaddr) * 4

    #: H:335 A Guest entry is checked before it is used to build a shadow one,
    # and a bad one is fatal.  A directory entry may carry only the flags of an
    # ordinary link to a page table (present, writable, user, accessed, dirty:
    # 0x067), so in particular no 4 MiB page; and the page table it points at
    # must lie below `pfn_limit`, inside the Guest's own memory.
    def check_gpgd(self, lg: Lguest, gpgd: int) -> None:
        if gpgd & 0xFFF & ~PAGE_TABLE_FLAGS or (gpgd >> 12) >= lg.pfn_limit:
            kill_guest(lg, f"bad page directory entry {gpgd:#x}")

    #: H:337 A page table entry is refused if it asks for a 4 MiB page (which
    # means nothing at this level), for write-through caching, or for a frame
    # at or above `pfn_limit`.  The last check is the one that matters most:
    # it keeps every mapping inside the memory the Launcher gave the Guest, so
    # a Guest can map only pages its Launcher chose to give it.
    def check_gpte(self, lg: Lguest, gpte: int) -> None:
        if gpte & (PS | PWT) or (gpte >> 12) >= lg.pfn_limit:
            kill_guest(lg, f"bad page table entry {gpte:#x}")

    #: H:340 Turning a Guest page table entry into the shadow entry the
    # processor will use.  The flags carry over, with two changes.  The global
    # bit goes: the Host runs with global pages off, and a global shadow entry
    # would outlive the next switch of address space if they were on.  And the
    # writable bit goes unless the caller says this mapping may be written
    # (the callers allow it only once the Guest's entry is dirty).  The frame
    # number needs more thought.
    def gpte_to_spte(self, lg: Lguest, gpte: int, write: bool) -> int:
        """The shadow PTE: the host frame behind the Guest's; never global; writable iff dirty."""
        flags = gpte & 0xFFF & ~G
        if not write:
            flags &= ~RW
        #: H:350 The frame.  The Guest's entry names a Guest-physical frame,
        # which is an address in its Launcher's memory, and the Process knows
        # the machine frame behind it.  Usually that is the Process's base plus
        # the address, but pages shared with another Launcher (--sharenet) live
        # elsewhere, which is why we ask.  check_gpte() has already made sure
        # the frame is the Guest's.  lguest asked Linux, with get_user_pages(),
        # which also pins the page so it cannot be swapped out; lguestsim's
        # memory never moves, so there is nothing to pin or to release later.
        host_frame = lg.launcher.phys(gpte & 0xFFFFF000)
        return host_frame | flags

    #: M:014 An exercise for 2.6.25 readers: lguest's get_pfn() was slow, taking
    # the memory-map lock and calling get_user_pages() for one page at a time,
    # and its authors suggested fetching pages in batches (pre-faulting).  Here
    # `phys()` is cheap, but the demand faults are not: count the trap-14 round
    # trips in a boot's trace, then make `demand_page()` fill the neighbouring
    # entries of the same Guest page table too (checking each, as check_gpte
    # does), and count again.  Which Guest entries may you fill early, given
    # that writable shadows must wait for the Guest's DIRTY bit?

    # -- demand paging
    #: H:330 (i) Filling in a shadow entry when the Guest faults.  Shadows
    # start empty and are filled lazily: run_guest() sees trap 14 come back
    # through the Switcher and calls this with the faulting address (cr2) and
    # the error code.  If the Guest's own tables map the address in a way that
    # allows the access, we copy the mapping into the shadow and return True;
    # the Guest runs the instruction again and never knows it faulted.
    # Otherwise we return False, and run_guest() writes cr2 into lguest_data
    # and reflects the fault: one the Guest would have had on real hardware.
    #
    # Bit 1 of the error code means a write, bit 2 an access from user mode.
    # A missing shadow page table is taken from the Host's frame pool on the
    # way.  Like the processor, we set the Guest entry's accessed bit, and its
    # dirty bit on a write.  The shadow is writable only if the Guest entry is
    # dirty: a read of a writable page gets a read-only shadow, so the first
    # write faults again, and that is when we mark the Guest's entry dirty.
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
            page = self.alloc_shadow_page(lg)
            if page is None:
                kill_guest(lg, "out of memory allocating pte page")
                return False
            spde = page | (gpgd & 0xFFF)
            mem.write32(spgd, spde)
            lg.pgdirs[lg.pgdidx].tables[pgd_index(vaddr)] = page
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

    #: H:360 (ii) Keeping the Guest's kernel stack mapped.  This is the cheap
    # question, asked first: does the current shadow already map the address
    # present and writable?  Usually it does, and the longer walk through the
    # Guest's tables in demand_page() is not needed.
    def page_writable(self, lg: Lguest, vaddr: int) -> bool:
        spgd = self.spgd_addr(lg, lg.pgdidx, vaddr)
        spde = self.mem.read32(spgd)
        if not spde & P:
            return False
        spte = self.mem.read32((spde & 0xFFFFF000) + pte_index(vaddr) * 4)
        return bool(spte & P and spte & RW)

    #: H:365 "Pinning" one stack page, in lguest's sense: not locking memory,
    # but making sure the shadow maps it writable.  If it does not yet, we
    # fault it in ourselves as if the Guest's kernel had written to it (error
    # code 2: a write, not from user mode).  If even the Guest's own tables do
    # not allow that, its stack is bogus and the Guest dies.
    def pin_page(self, lg: Lguest, vaddr: int) -> None:
        """Make sure a Guest kernel stack page is present and writable in the shadow."""
        if not self.page_writable(lg, vaddr) and not self.demand_page(lg, vaddr, 2):
            kill_guest(lg, f"bad stack page {vaddr:#x}")

    #: H:260 Direct traps (H:250) from user mode push their frame on the
    # Guest's kernel stack with no Host code involved: the CPU takes `esp1`
    # from the TSS and writes.  lguest makes sure those writes cannot fault.
    # A fault in the middle of delivering an exception is where double faults
    # come from, and vector 8 is the Host's: the Guest would die for what was
    # really the Host's laziness in filling its shadow.  (By the SDM's rules,
    # which lguestsim's CPU follows, a page fault while delivering a software
    # interrupt only reaches the Host as an ordinary page fault; pinning saves
    # that trip and leaves no doubt.)  So the stack's one or two pages are kept
    # present and writable in the current shadow: after SET_STACK, when a
    # blank or recycled shadow comes into use, and after all shadows are
    # flushed.
    #
    # The stack grows down from `esp1`, which points just past its top, so the
    # pages are those holding `esp1 - 1`, `esp1 - 1 - 4096`, and so on.  (lguest
    # 2.6.23 pinned from `esp1` itself: one page too high when `esp1` is page
    # aligned, as it is for Linux; later versions subtract one too.)
    def pin_stack_pages(self, lg: Lguest) -> None:
        # Direct traps push on this stack with no Host help: it must never fault.
        for i in range(lg.stack_pages):
            self.pin_page(lg, (lg.esp1 - 1 - i * PAGE_SIZE) & 0xFFFFFFFF)

    # -- releasing shadow entries
    #: H:450 Throwing away one shadow directory entry: if it is present, the
    # page table it points at goes back to the Host's frame pool and the
    # entry is zeroed, so it is never released twice.  Whatever it mapped will
    # fault again, and demand_page() rebuilds what the Guest still uses.
    # (lguest also walked the table, dropping its reference on each page
    # mapped; lguestsim takes no references, so freeing the table is enough.)
    # The entry also leaves the directory's list of tables and the Guest's
    # account.
    def release_pgd(self, lg: Lguest, spgd: int) -> None:
        spde = self.mem.read32(spgd)
        if spde & P:
            for pgdir in lg.pgdirs:
                if pgdir is not None and pgdir.page == spgd & ~0xFFF:
                    pgdir.tables.pop((spgd & 0xFFF) >> 2, None)
            self.free_shadow_page(lg, spde & 0xFFFFF000)
            self.mem.write32(spgd, 0)

    #: H:440 (v) Flushing.  Every directory entry below `page_offset`, the
    # user half of the address space, is released in the shadow in slot
    # `idx`; the kernel half, the same in every address space, stays.
    # new_pgdir() does this to a slot it recycles for another address space.
    # Only the entries the shadow holds are visited (its `tables`), so a
    # flush costs what the shadow holds, not the 768 entries of the user half.
    def flush_user_mappings(self, lg: Lguest, idx: int) -> None:
        pgdir = lg.pgdirs[idx]
        limit = pgd_index(lg.page_offset)
        for index in [i for i in pgdir.tables if i < limit]:
            self.release_pgd(lg, pgdir.page + index * 4)

    #: H:455 Frames for shadows, and taking them back.  Any shadow page table
    # can be dropped at any moment: demand_page() builds it again on the next
    # fault.  So no Guest's hoard need ever make another Guest fail.  Each
    # Guest's frames are counted (`lg.shadow`, H:311), and a Guest that
    # already holds its quota (a quarter of the pool) pays for a new frame by
    # giving back one of its own tables first: a hoarder slows itself down
    # with refaults, and nobody else notices.  If the pool is empty all the
    # same (many Guests, each within its quota), Host.alloc_page() reclaims
    # from whichever Guest holds most (H:015).  Only when no Guest has a table
    # to spare does the caller get None.
    def alloc_shadow_page(self, lg: Lguest) -> int | None:
        """A zeroed frame for one of ``lg``'s shadows, charged to its account."""
        account = lg.shadow
        if account.pages >= self.quota:
            self.reclaim(lg)
        page = self.host.alloc_page()
        if page is None:
            return None
        account.pages += 1
        account.allocated += 1
        account.peak = max(account.peak, account.pages)
        return page

    def free_shadow_page(self, lg: Lguest, page: int) -> None:
        lg.shadow.pages -= 1
        self.host.free_page(page)

    #: H:456 Which table to give back.  Shadows of address spaces the Guest is
    # not running now go first, the current one last; in each, the table that
    # was built longest ago (a dict keeps its order of insertion).  The tables
    # holding the Guest's kernel stack are never taken, in any shadow: they
    # are pinned (H:260), and a switch back to a cached shadow does not pin
    # again.  Directory pages are not reclaimed, only page tables: a Guest has
    # at most four directories.  The cost is bounded by the Guest's own
    # shadows, at most four times 1023 entries.
    def reclaim(self, lg: Lguest) -> bool:
        """Give back one of ``lg``'s shadow page tables; False if it has none to spare."""
        pinned = {pgd_index((lg.esp1 - 1 - i * PAGE_SIZE) & 0xFFFFFFFF)
                  for i in range(lg.stack_pages)}
        current = lg.pgdirs[lg.pgdidx]
        order = [p for p in lg.pgdirs if p is not None and p is not current] + [current]
        for pgdir in order:
            for index in pgdir.tables:
                if index not in pinned:
                    self.release_pgd(lg, pgdir.page + index * 4)
                    lg.shadow.reclaimed += 1
                    return True
        return False

    #: H:457 The Host's last resort when its pool is empty: take a table from
    # the Guest holding the most frames (the hoarder), or the next one if all
    # of the hoarder's are pinned.
    def reclaim_from_hoarder(self) -> bool:
        for lg in sorted(self.host.lguests, key=lambda g: -g.shadow.pages):
            if lg.pgdirs[lg.pgdidx] is not None and self.reclaim(lg):
                return True
        return False

    #: H:458 The accounting the views read (H:312).
    def accounting(self) -> ShadowAccounting:
        return ShadowAccounting(self.pool, len(self.host.free_frames), self.quota,
                                {lg.guestid: lg.shadow for lg in self.host.lguests})

    # -- the hypercalls
    #: H:445 LHCALL_FLUSH_TLB with 0: the Guest changed user mappings, where a
    # native kernel would reload cr3 to flush the TLB.  Dropping the user half
    # of the current shadow is our TLB flush: the new mappings fault in afresh.
    def guest_pagetable_flush_user(self, lg: Lguest) -> None:
        self.flush_user_mappings(lg, lg.pgdidx)

    #: H:470 LHCALL_FLUSH_TLB with a non-zero argument: a kernel mapping
    # changed, and kernel mappings are in every shadow, so the simple answer is
    # to release every directory entry of every cached shadow (all but the
    # Switcher's, entry 1023).  That is slow, but rare; LGUEST_INIT does it
    # too, to start clean.  (lguest's release_all_pagetables() is the loop
    # here; free_guest_pagetable() has its own copy.)  The Guest's kernel stack
    # went with everything else, so it is pinned again at once.  As with a
    # user flush, only the entries each shadow holds are visited: a Guest
    # that flushes thousands of times pays for what it rebuilds, not for a
    # walk of four whole directories each time.
    def guest_pagetable_clear_all(self, lg: Lguest) -> None:
        for pgdir in lg.pgdirs:
            if pgdir is not None:
                for index in list(pgdir.tables):
                    self.release_pgd(lg, pgdir.page + index * 4)
        self.pin_stack_pages(lg)

    #: H:432 A Guest has four shadow directories cached, one for each address
    # space it used lately, each remembering the Guest cr3 it shadows (in a
    # ShadowPgdir, lguest's struct pgdir).  Finding one is a linear search;
    # None means that address space has no shadow yet.
    def find_pgdir(self, lg: Lguest, gpgdir: int) -> int | None:
        for i, pgdir in enumerate(lg.pgdirs):
            if pgdir is not None and pgdir.gpgdir == gpgdir:
                return i
        return None

    #: H:435 Making room for an address space with no shadow.  The slot is
    # chosen at random (the Host's generator is seeded, so runs repeat);
    # least-recently-used might do better, but random is simple.  An empty
    # slot gets a fresh zeroed page, a blank shadow with not even the kernel
    # mapped, and only then must the caller pin the Guest's stack in it (the
    # second value).  If no page can be had, the current slot is taken over.
    # Any slot that was in use has its user half flushed: it may hold the
    # mappings of the address space that had it before, which the new one
    # must never see.  The kernel half is the same in every address space
    # and stays.
    def new_pgdir(self, lg: Lguest, gpgdir: int) -> tuple[int, bool]:
        """Pick a slot for a new address space (at random, as lguest does)."""
        nxt = self.host.random.randrange(len(lg.pgdirs))
        blank = False
        if lg.pgdirs[nxt] is None:
            page = self.alloc_shadow_page(lg)
            if page is None:
                nxt = lg.pgdidx
            else:
                lg.pgdirs[nxt] = ShadowPgdir(gpgdir, page)
                blank = True
        lg.pgdirs[nxt].gpgdir = gpgdir
        if not blank:                   # a fresh page is all zeroes already
            self.flush_user_mappings(lg, nxt)
        return nxt, blank

    #: H:430 (iv) Switching page tables.  LHCALL_NEW_PGTABLE is the Guest's
    # way of loading cr3, so it comes on nearly every context switch.  If the
    # Guest directory already has a shadow, switching is only a change of
    # `pgdidx`: the next trip through the Switcher loads that shadow into the
    # real cr3.  Otherwise new_pgdir() finds one, and if it asks, the Guest's
    # kernel stack is pinned in it.
    def guest_new_pagetable(self, lg: Lguest, gpgdir: int) -> None:
        idx = self.find_pgdir(lg, gpgdir)
        repin = False
        if idx is None:
            idx, repin = self.new_pgdir(lg, gpgdir)
        lg.pgdidx = idx
        if repin:
            self.pin_stack_pages(lg)

    #: H:420 Setting the shadow entry for one address in the shadow in slot
    # `idx`.  If that shadow has no page table there, there is nothing to do:
    # a later fault will build it from the Guest's new entry.  The simple
    # course would be to zero the shadow entry and let demand_page() refill
    # it.  But kernels (Linux included) usually set the accessed bit, and
    # often the dirty bit, in a new entry themselves; then the fault would only
    # set what is already set, so we install the shadow at once, writable if
    # dirty.  lguest measured 10% on a copy-on-write benchmark from this;
    # `Host(set_pte_at_once=False)` takes the simple course instead, so that
    # bench_figures.py can measure it again.
    def do_set_pte(self, lg: Lguest, idx: int, vaddr: int, gpte: int) -> None:
        spgd = self.spgd_addr(lg, idx, vaddr)
        if lg.dead:
            return
        spde = self.mem.read32(spgd)
        if not spde & P:
            return
        spte_addr = (spde & 0xFFFFF000) + pte_index(vaddr) * 4
        if gpte & (D | A) and self.host.set_pte_at_once:
            self.check_gpte(lg, gpte)
            if lg.dead:
                return
            self.mem.write32(spte_addr, self.gpte_to_spte(lg, gpte, bool(gpte & D)))
        else:
            self.mem.write32(spte_addr, 0)

    #: H:410 LHCALL_SET_PTE: the Guest changed one page table entry, the one
    # for `vaddr` in the address space whose directory is `gpgdir`.  Addresses
    # from `page_offset` up are the kernel's, mapped alike in every address
    # space, so the change goes into every cached shadow; that is rare.  A
    # user mapping belongs to one address space, so only its shadow (if there
    # is one) is touched.  Keeping the kernel half identical everywhere is
    # what lets a recycled shadow keep it, and context switches stay cheap.
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

    #: H:400 (iii) Following the Guest's changes to its tables.  The Guest
    # tells us of every change by hypercall, and the rule throughout is that a
    # shadow may always *forget*: an entry we remove is rebuilt by
    # demand_page() the next time it is used.  So for LHCALL_SET_PMD, a
    # changed directory entry (`index` in the directory `gpgdir`), we free the
    # shadow's page table there, if that directory has a shadow.  The Switcher's
    # slot is not the Guest's to change; an attempt is ignored.
    def guest_set_pmd(self, lg: Lguest, gpgdir: int, index: int) -> None:
        if index >= SWITCHER_PGD_INDEX:
            return
        idx = self.find_pgdir(lg, gpgdir)
        if idx is not None:
            self.release_pgd(lg, lg.pgdirs[idx].page + index * 4)

    #: H:500 (vii) Setting up.  When the Launcher's LHREQ_INITIALIZE creates
    # the Guest, new_guest() in core.py calls this with the Guest-physical
    # address of the page directory the Launcher built.  The Guest starts with
    # one shadow, in slot 0, whose directory page is all zeroes: everything
    # will be faulted in.  False (no free frame) makes the initialization fail
    # with ENOMEM.  The check that `page_offset` stays clear of the Switcher's
    # slot, which flush_user_mappings() relies on, comes earlier, in
    # /dev/lguest's initialize().
    def init_guest_pagetable(self, lg: Lguest, gpgdir: int) -> bool:
        page = self.alloc_shadow_page(lg)
        if page is None:
            return False
        lg.pgdidx = 0
        lg.pgdirs[0] = ShadowPgdir(gpgdir, page)
        return True

    #: H:505 When the Guest is destroyed (its Launcher closed /dev/lguest),
    # every shadow page table, then every shadow directory page, goes back to
    # the Host's frame pool.  The Switcher's entry is skipped: the page table
    # behind it belongs to the Host and is shared by every Guest.
    def free_guest_pagetable(self, lg: Lguest) -> None:
        for i, pgdir in enumerate(lg.pgdirs):
            if pgdir is not None:
                for index in list(pgdir.tables):
                    self.release_pgd(lg, pgdir.page + index * 4)
                self.free_shadow_page(lg, pgdir.page)
                lg.pgdirs[i] = None

    #: H:480 (vi) Mapping the Switcher, just before each run, from
    # copy_in_guest_info().  The last entry of the shadow about to be loaded is
    # pointed at the Switcher's page table, which maps the Switcher's code and
    # the per-CPU pages at 0xFFC00000 in every Guest (lguest has one such table
    # per CPU; lguestsim's machine has one CPU).  That table also gets this
    # Guest's own regs page in the slot where the Switcher saves registers, so
    # the Switcher's pushes land straight in the Guest's `struct lguest_regs`
    # and nothing needs copying afterwards.  The directory entry (0x063) is
    # supervisor-only, so none of it is visible to the Guest's user programs.
    def map_switcher_in_guest(self, lg: Lguest) -> None:
        """Point the current shadow directory's last entry at the Switcher's PTE page,
        and put this Guest's own regs page where the Switcher saves registers."""
        host = self.host
        shadow = lg.pgdirs[lg.pgdidx].page
        self.mem.write32(shadow + SWITCHER_PGD_INDEX * 4, host.switcher_pte_page | 0x063)
        self.mem.write32(host.switcher_pte_page + host.regs_pte_index * 4, lg.regs_page | 0x063)


#: M:008 Every shadow page table and directory is a frame from the Host's
# pool, and H:455 takes them back when a Guest holds too many or the pool
# runs dry.  The choice of victim is simple: oldest first, other address
# spaces before the current one.  Try least-recently-used instead (the
# accessed bits of the shadow directory entries say which tables the CPU
# walked since the last look; clear them as you read them), run the frame
# hoarder from tests/hostile.py beside the teaching Guest, and count the
# teaching Guest's refaults under each policy.  (lguest's own note here was
# about the Guest's pages, which get_user_pages() kept pinned so that Linux
# could never swap them.)
