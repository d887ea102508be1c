/*
 * mm.c: memory and page tables.
 *
 * The kernel sees all of its RAM at PAGE_OFFSET (0xC0000000) and up: the
 * Launcher built page tables like that before starting us, and
 * paging_init() builds our own to replace them.  A process gets a page
 * directory of its own which shares the kernel's part; below PAGE_OFFSET
 * it maps the program's pages, one at a time.  Every change goes through
 * the paravirt page table ops, because the Host keeps shadow copies of our
 * tables and has to hear about changes (boot.c, G:036).  Page faults the
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

/*: G:200 The Launcher describes our memory the way a PC's BIOS does, with
 * an "e820" map in the boot header: the number of entries at offset 0x1E8,
 * the entries from offset 0x2D0, each a 64-bit start, a 64-bit length and a
 * type (1 is RAM).  It gives us one entry: all of our memory, from 0. */
struct e820entry {
	u64 addr;
	u64 size;
	u32 type;
} __attribute__((packed));

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

/* Pages for page tables and for the user program come from here.  A kernel
 * would have a real allocator; ours takes pages one after another from the
 * end of the kernel, and keeps freed pages on a list (the first word of a
 * free page points to the next).  The top of memory is never reached: that
 * is where the Launcher built its page tables. */
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

/*: G:210 Our own page tables.  We do what the Launcher did (map all of RAM
 * at PAGE_OFFSET, one 4 KiB page per entry) in our own page directory, and
 * then switch to it.
 *
 * Look at which hypercalls that takes.  The page table entries themselves
 * need none: the Host has never seen this directory, so it has no shadow of
 * it to update.  We still announce each directory entry with set_pmd() (as
 * Linux does); the Host ignores those for a directory it does not know.
 * Then write_cr3() asks for the switch.  All of that happens in lazy mode,
 * so the calls wait in the hypercall ring and reach the Host in one trip
 * when we leave it.  The Host then starts a fresh, empty shadow for our
 * directory and fills it in from our tables, a page at a time, as we touch
 * memory. */
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

/* Pages outside RAM, such as the device page the Launcher puts just above
 * it and the devices' own pages above that, get a kernel mapping of their
 * own when a driver asks (Linux's lguest_map()): the next free pages of
 * virtual space after the linear map (usually that is exactly PAGE_OFFSET
 * plus their physical address, but not when RAM was too big to map whole).
 * This time the directory is live, so the Host must hear about each new
 * entry: set_pte_at() tells it, and since this is a kernel address it
 * updates the shadows of every directory it keeps. */
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

/*: G:220 A process's address space.  Its page directory starts as a copy of
 * the kernel's upper quarter (the entries from PAGE_OFFSET up point at the
 * kernel's own page tables, so the kernel is mapped the same way in every
 * address space), with nothing below.  Nothing to tell the Host yet: it has
 * never seen this directory. */
int mm_create(struct mm *mm)
{
	mm->pgdir = alloc_page();
	memcpy(&mm->pgdir[USER_PGD_ENTRIES], &swapper_pg_dir[USER_PGD_ENTRIES],
	       (PTRS_PER_PTE - USER_PGD_ENTRIES) * sizeof(u32));
	return 0;
}

/* Give the process a fresh zeroed page at vaddr; returns the page's kernel
 * address so the kernel can fill it. */
u32 *map_user_page(struct mm *mm, u32 vaddr)
{
	u32 *pte = lookup_pte(mm->pgdir, vaddr, 1);
	u32 *page = alloc_page();

	pv.set_pte_at(mm->pgdir, vaddr & PAGE_MASK, pte, __pa(page) | USER_PTE);
	return page;
}

/* Switching address spaces is loading a page directory, which we ask the
 * Host to do. */
void switch_mm(struct mm *mm)
{
	current_mm = mm;
	pv.write_cr3(__pa(mm->pgdir));
}

/* Tearing down the address space we are running in, as a process exits.
 * The Host keeps a shadow of this directory (it caches a few), and the pages
 * are about to be reused, so every entry we clear we also clear in the
 * Host's copy: set_pte_at() for each page, set_pmd() for each page table.
 * A native kernel would flush the TLB after that; we ask the Host to drop
 * the user part of its shadow.  Then we move to the kernel's own directory
 * and free this one.  Lazy mode makes all of it one trip to the Host. */
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

/* Where a user address lives in physical memory, by walking the process's
 * page tables the way the processor would.  The heap is filled in on
 * demand here too, so the kernel can use a heap page the program has not
 * touched yet. */
static int in_user_heap(u32 vaddr)
{
	return vaddr >= USER_HEAP_START && vaddr < USER_HEAP_START + USER_HEAP_SIZE;
}

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

/*: G:230 Page faults.  Most page faults never reach us: when the processor
 * faults on the Host's shadow page tables, the Host looks in ours first, and
 * if our entry says the page is there, it fixes its shadow and runs us again
 * without a word.  What does reach us is a fault our own tables cannot
 * satisfy, exactly as on a real machine, with one difference: the faulting
 * address is not in %cr2 (we cannot read it) but in lguest_data.cr2, where
 * the Host put it.
 *
 * Our user program's heap is such a case: the kernel leaves it unmapped
 * until the program touches it, then hands it a zeroed page.  Once we have
 * set the entry, returning re-runs the faulting instruction, which now
 * finds its page (after one more silent trip through the Host, which has
 * not filled in its shadow yet). */
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
