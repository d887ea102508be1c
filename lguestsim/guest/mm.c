/*
 * mm.c: memory and page tables.
 *
 * The kernel sees all of its RAM at PAGE_OFFSET (0xC0000000) and up: the
 * Launcher built page tables like that before starting us, and
 * paging_init() builds our own to replace them.  A process gets a page
 * directory of its own which shares the kernel's part; below PAGE_OFFSET
 * it maps the program's pages, one at a time.  Every change goes through
 * the paravirt page table ops, because the Host keeps shadow copies of our
 * tables and has to hear about changes (boot.c, G:044).  Page faults the
 * Host cannot settle itself come to do_page_fault() at the end.
 */
#include "guest.h"
#include "user_abi.h"

/* Page table entry flags: the kernel's pages are supervisor-only; the user
 * program's pages are user pages.  Kernel entries are made ACCESSED and
 * DIRTY from the start, which lets the Host install them at once; user
 * entries are not, so the Host finds out (and sets those bits in our
 * tables) when the program first reads and writes each page. */
#define KERNEL_PTE	(_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY)
#define KERNEL_PDE	(_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY)
#define USER_PTE	(_PAGE_PRESENT | _PAGE_RW | _PAGE_USER)
#define USER_PDE	(_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED)

#define pgd_index(vaddr)	((vaddr) >> 22)
#define pte_index(vaddr)	(((vaddr) >> PAGE_SHIFT) & (PTRS_PER_PTE - 1))
#define USER_PGD_ENTRIES	pgd_index(PAGE_OFFSET)

extern char _end[];

/* The kernel's page directory, and its address space, which has no user
 * part at all. */
static u32 swapper_pg_dir[PTRS_PER_PTE] __attribute__((aligned(PAGE_SIZE)));
struct mm init_mm = { .pgdir = swapper_pg_dir };

/* The address space we are running in right now. */
static struct mm *current_mm = &init_mm;

u32 ram_size;		/* bytes of RAM, from the boot header */
static u32 lowmem_size;	/* how much of it we map at PAGE_OFFSET */

/*: G:200 How much memory do we have?  The Launcher answers the way a PC's
 * BIOS does, with an "e820" map in the boot header that lguest_init() saved
 * in `boot_params`: the number of entries is the byte at offset 0x1E8, and
 * the entries start at offset 0x2D0.  Each is a 64-bit start, a 64-bit
 * length and a type, where 1 means usable RAM.  The layout is packed, as the
 * boot protocol has it.  lguest's Launcher writes a single entry: all of the
 * Guest's memory, starting at physical 0. */
struct e820entry {
	u64 addr;
	u64 size;
	u32 type;
} __attribute__((packed));

/*: G:201 `setup_memory()`, the first thing main.c does after its
 * greeting, takes the end of the highest RAM entry as our memory size.  Not
 * all of it can be mapped at PAGE_OFFSET: the Host keeps the top of every
 * address space for the Switcher (`lguest_data.reserve_mem` says how much),
 * and we keep 4 MiB of virtual space below that for the device pages, which
 * lie above our RAM.  What remains is `lowmem_size`, the part of RAM the
 * kernel maps; with lguestsim's small Guests it is all of it. */
void setup_memory(void)
{
	unsigned int i, n = boot_params[0x1E8];
	const struct e820entry *map = (const void *)(boot_params + 0x2D0);
	u32 max_lowmem;

	for (i = 0; i < n && i < 32; i++) {
		if (map[i].type == 1 && (u32)(map[i].addr + map[i].size) > ram_size)
			ram_size = (u32)(map[i].addr + map[i].size);
	}
	if (!ram_size)
		panic("no RAM in the e820 map");

	/* The Host keeps the top of every address space for the Switcher
	 * (it told us how much in reserve_mem), and we want the page above
	 * our RAM for the devices: the rest is what we can map. */
	max_lowmem = 0u - lguest_data.reserve_mem - PAGE_OFFSET - (4u << 20);
	lowmem_size = ram_size < max_lowmem ? ram_size : max_lowmem;
	printk("Memory: %u KiB of RAM, %u KiB mapped at %p; the kernel ends at %p\n",
	       ram_size / 1024, lowmem_size / 1024, (void *)PAGE_OFFSET, (void *)_end);
}

/* The page allocator's state (G:205). */
static u32 next_free_phys;
static void *free_list;
static unsigned int pages_in_use;

static void clear_page(void *page)
{
	u32 edi, ecx;

	asm volatile("rep stosl"
		     : "=D"(edi), "=c"(ecx)
		     : "0"(page), "1"(PAGE_SIZE / 4), "a"(0)
		     : "memory");
}

/*: G:205 Pages for page tables and for the user program come from
 * here.  A real kernel has a proper allocator; ours hands out pages one
 * after another from the end of the kernel image, and keeps freed pages on
 * a list, each free page's first word pointing at the next.  It never
 * hands out the upper half of mapped memory, which keeps it well clear of
 * the top of RAM, where the Launcher built the page tables we booted on.
 * Every page comes back zeroed by a single `rep stosl`. */
void *alloc_page(void)
{
	void *page;

	if (free_list) {
		page = free_list;
		free_list = *(void **)page;
	} else {
		if (!next_free_phys)
			next_free_phys = PAGE_ALIGN(__pa(_end));
		if (next_free_phys + PAGE_SIZE > lowmem_size / 2)
			panic("out of memory");
		page = __va(next_free_phys);
		next_free_phys += PAGE_SIZE;
	}
	clear_page(page);
	pages_in_use++;
	return page;
}

static void free_page(void *page)
{
	*(void **)page = free_list;
	free_list = page;
	pages_in_use--;
}

/*: G:210 Our own page tables.  We do what the Launcher did, mapping all
 * of (low) RAM at PAGE_OFFSET with one 4 KiB page per entry, but in a page
 * directory of our own, and then switch to it.
 *
 * Count the hypercalls.  The page table entries themselves need none: the
 * Host has never seen this directory, so it has no shadow to keep up to
 * date.  We still announce each directory entry with `set_pmd()`, as Linux
 * does, and the Host ignores those for a directory it does not know.  Then
 * `write_cr3()` asks for the switch.  It all happens in lazy mode, so the
 * calls collect in the ring and reach the Host in one trip, when we leave
 * lazy mode; the Host then starts an empty shadow of our directory and fills
 * it from our tables as we touch memory. */
void paging_init(void)
{
	u32 phys, *pte_page;
	unsigned int i, tables = 0;

	pv.set_lazy_mode(1);
	for (phys = 0; phys < lowmem_size; phys += PTRS_PER_PTE * PAGE_SIZE) {
		pte_page = alloc_page();
		for (i = 0; i < PTRS_PER_PTE && phys + i * PAGE_SIZE < lowmem_size; i++)
			pte_page[i] = (phys + i * PAGE_SIZE) | KERNEL_PTE;
		pv.set_pmd(&swapper_pg_dir[pgd_index(PAGE_OFFSET + phys)], __pa(pte_page) | KERNEL_PDE);
		tables++;
	}
	pv.write_cr3(__pa(swapper_pg_dir));
	pv.set_lazy_mode(0);

	printk("Paging: our own page directory at %p (physical %x), %u page tables\n",
	       (void *)swapper_pg_dir, __pa(swapper_pg_dir), tables);
}

/*: G:214 Finding the page table entry for an address, the way the
 * processor would: the directory entry first, then the entry in the page
 * table it points to.  If the directory entry is empty, we give it a fresh
 * zeroed page table and tell the Host with `set_pmd()`.  `user` decides
 * whether ring 3 may use what the new table maps. */
static u32 *lookup_pte(u32 *pgdir, u32 vaddr, int user)
{
	u32 *pde = &pgdir[pgd_index(vaddr)];
	u32 *pte_page;

	if (!(*pde & _PAGE_PRESENT)) {
		pte_page = alloc_page();
		pv.set_pmd(pde, __pa(pte_page) | (user ? USER_PDE : KERNEL_PDE));
	}
	pte_page = __va(*pde & PAGE_MASK);
	return &pte_page[pte_index(vaddr)];
}

static u32 next_device_vaddr;

/*: G:215 Device pages.  The device page the Launcher puts just above
 * our RAM, and the devices' own pages above that, are not in the linear
 * map, so a driver asks for a kernel mapping (Linux's lguest_map()).  We
 * take the next free pages of virtual space after the linear map; usually
 * that is PAGE_OFFSET plus their physical address anyway, though not when
 * RAM was too big to map whole.  This time the directory is the live one,
 * so the Host must hear of each new entry: `set_pte_at()` tells it, and
 * since these are kernel addresses it updates every shadow directory it
 * keeps. */
void *map_device_pages(u32 pfn, unsigned int pages)
{
	u32 vaddr, start, *pte;
	unsigned int i;

	if (!next_device_vaddr)
		next_device_vaddr = PAGE_OFFSET + lowmem_size;
	start = next_device_vaddr;
	if (start + pages * PAGE_SIZE > 0u - lguest_data.reserve_mem)
		panic("no virtual space left to map device page %x", pfn);
	next_device_vaddr += pages * PAGE_SIZE;
	for (i = 0; i < pages; i++) {
		vaddr = start + i * PAGE_SIZE;
		pte = lookup_pte(swapper_pg_dir, vaddr, 0);
		pv.set_pte_at(swapper_pg_dir, vaddr, pte, ((pfn + i) << PAGE_SHIFT) | KERNEL_PTE);
	}
	return (void *)start;
}

/*: G:220 A process's address space.  Its page directory starts as a copy
 * of the kernel's top quarter: the entries from PAGE_OFFSET up point at the
 * kernel's own page tables, so the kernel appears at the same addresses in
 * every address space, as it must for traps to work.  Below PAGE_OFFSET
 * there is nothing yet.  Nothing to tell the Host either, since it has
 * never seen this directory. */
int mm_create(struct mm *mm)
{
	mm->pgdir = alloc_page();
	memcpy(&mm->pgdir[USER_PGD_ENTRIES], &swapper_pg_dir[USER_PGD_ENTRIES],
	       (PTRS_PER_PTE - USER_PGD_ENTRIES) * sizeof(u32));
	return 0;
}

/*: G:221 Giving a process a fresh zeroed page at `vaddr`.  The entry is
 * a user page, writable, and neither accessed nor dirty, so the Host will
 * have to come back to our tables to set those bits the first time the
 * program reads and writes it.  We return the page's kernel address, so the
 * kernel can fill it through its own mapping (process.c copies the program
 * in this way). */
u32 *map_user_page(struct mm *mm, u32 vaddr)
{
	u32 *pte = lookup_pte(mm->pgdir, vaddr, 1);
	u32 *page = alloc_page();

	pv.set_pte_at(mm->pgdir, vaddr & PAGE_MASK, pte, __pa(page) | USER_PTE);
	return page;
}

/*: G:222 Switching address spaces is loading %cr3, which only the Host
 * may do: `write_cr3()` gives it the directory's physical address, and the
 * Host finds its shadow of that directory (it keeps a few) or starts a new
 * one.  Nothing else changes hands: the kernel half is the same in every
 * directory. */
void switch_mm(struct mm *mm)
{
	current_mm = mm;
	pv.write_cr3(__pa(mm->pgdir));
}

/*: G:225 Tearing down the address space we are running in, as the
 * process exits.  The Host keeps a shadow of this directory, and the pages
 * are about to be reused, so every entry we clear we also clear in the
 * Host's copy: `set_pte_at()` for each page, `set_pmd()` for each page
 * table.  A native kernel would then flush the TLB; we ask the Host to drop
 * the user part of its shadow.  Then we move to the kernel's own directory
 * and free this one.  Lazy mode turns all of those calls into one trip to
 * the Host, and the trace shows the ring filling up and emptying. */
void mm_destroy(struct mm *mm)
{
	unsigned int i, j;
	u32 *pte_page;

	pv.set_lazy_mode(1);
	for (i = 0; i < USER_PGD_ENTRIES; i++) {
		if (!(mm->pgdir[i] & _PAGE_PRESENT))
			continue;
		pte_page = __va(mm->pgdir[i] & PAGE_MASK);
		for (j = 0; j < PTRS_PER_PTE; j++) {
			if (!(pte_page[j] & _PAGE_PRESENT))
				continue;
			free_page(__va(pte_page[j] & PAGE_MASK));
			pv.set_pte_at(mm->pgdir, (i << 22) | (j << PAGE_SHIFT), &pte_page[j], 0);
		}
		pv.set_pmd(&mm->pgdir[i], 0);
		free_page(pte_page);
	}
	pv.flush_tlb_user();
	switch_mm(&init_mm);
	pv.set_lazy_mode(0);
	free_page(mm->pgdir);
	mm->pgdir = NULL;
	printk("Memory: address space freed, %u pages still in use by the kernel\n", pages_in_use);
}

/* The program's heap, which no one maps in advance (G:226, G:230). */
static int in_user_heap(u32 vaddr)
{
	return vaddr >= USER_HEAP_START && vaddr < USER_HEAP_START + USER_HEAP_SIZE;
}

/*: G:226 Where a user address lives in physical memory, found by walking
 * the process's page tables the way the processor would.  The system calls
 * use it to check and follow the program's pointers (process.c).  A heap
 * page the program has not touched yet is mapped here on the spot, just as
 * a page fault would map it, so that `read()` into fresh heap works. */
int user_virt_to_phys(struct mm *mm, u32 vaddr, u32 *phys)
{
	u32 pde, pte = 0;

	if (vaddr >= PAGE_OFFSET)
		return -1;
	pde = mm->pgdir[pgd_index(vaddr)];
	if (pde & _PAGE_PRESENT)
		pte = ((u32 *)__va(pde & PAGE_MASK))[pte_index(vaddr)];
	if (!(pte & _PAGE_PRESENT)) {
		if (!in_user_heap(vaddr))
			return -1;
		pte = __pa(map_user_page(mm, vaddr)) | USER_PTE;
	}
	*phys = (pte & PAGE_MASK) | (vaddr & ~PAGE_MASK);
	return 0;
}

/*: G:230 Page faults.  Most never reach us: when the processor faults on
 * the Host's shadow tables, the Host looks in ours first, and if our entry
 * says the page is there, it fixes its shadow and resumes us without a
 * word.  What does reach us is a fault our own tables cannot satisfy, as on
 * a real machine, except that the address comes from `lguest_data.cr2`,
 * where the Host copied it, not from %cr2 (which is the Host's).
 *
 * The program's heap is such a case: we leave it unmapped until the program
 * touches it, then hand it a zeroed page.  Returning re-runs the faulting
 * instruction, which now finds its page after one more silent trip through
 * the Host to fill in the shadow.  Any other fault kills the process if it
 * came from user mode, and is a kernel panic if it did not. */
void do_page_fault(struct trap_frame *frame)
{
	u32 addr = pv.read_cr2();
	u32 *page;

	if (current_mm != &init_mm && in_user_heap(addr) && !(frame->error_code & _PAGE_PRESENT)) {
		page = map_user_page(current_mm, addr);
		printk("page fault: %s %p by %s mode: mapped a zeroed page (physical %x)\n",
		       frame->error_code & 2 ? "write to" : "read of", (void *)addr,
		       from_user_mode(frame) ? "user" : "kernel", __pa(page));
		return;
	}
	if (from_user_mode(frame)) {
		printk("page fault: bad user access to %p, error code %x\n",
		       (void *)addr, frame->error_code);
		kill_current_process("segmentation fault", frame);
	}
	printk("page fault: kernel access to %p, error code %x, at %p\n",
	       (void *)addr, frame->error_code, (void *)frame->eip);
	panic("kernel page fault at %p", (void *)addr);
}
