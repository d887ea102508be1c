/*
 * guest.h: what the parts of the teaching Guest kernel know about each other.
 *
 * The Guest is a tiny kernel laid out like Linux's lguest Guest: head.S is
 * where the Launcher starts it, boot.c is where it learns it is a Guest and
 * fills in its "paravirt ops" (patch.c then rewrites the hottest calls of
 * them in place), and main.c then boots it with nothing but those ops, as
 * a native kernel would with its own.  Each other file is one
 * concept: traps.c and entry.S (interrupts and traps), mm.c (memory and page
 * tables), time.c (the clock), lguest_bus.c (finding devices) and one file
 * per driver (console.c, block.c, net.c), process.c (the user program's
 * life, system calls), lib.c (the C library a kernel carries with it).
 */
#ifndef GUEST_H
#define GUEST_H

#include "lguest.h"
#include "lguest_launcher.h"
#include "user_abi.h"	/* the system calls, errors and structures we give the program */

/* The kernel's virtual addresses are physical addresses plus PAGE_OFFSET:
 * physical 0 appears at 0xC0000000.  The Launcher set up such a mapping
 * before starting us, and we build our own just like it. */
#define PAGE_OFFSET	0xC0000000
#define PAGE_SIZE	4096
#define PAGE_SHIFT	12
#define PAGE_MASK	(~(PAGE_SIZE - 1))
#define PTRS_PER_PTE	1024
#define __pa(vaddr)	((u32)(vaddr) - PAGE_OFFSET)
#define __va(paddr)	((void *)((u32)(paddr) + PAGE_OFFSET))
#define PAGE_ALIGN(x)	(((x) + PAGE_SIZE - 1) & PAGE_MASK)

/* Page table entry bits (the same in directories and tables). */
#define _PAGE_PRESENT	0x001
#define _PAGE_RW	0x002
#define _PAGE_USER	0x004
#define _PAGE_ACCESSED	0x020
#define _PAGE_DIRTY	0x040

/* Segment selectors.  The GDT entries are Linux's: 12 and 13 for the
 * kernel, 14 and 15 for user mode, 6 for a thread-local storage segment.
 * The kernel runs in ring 1, so its selectors carry RPL 1. */
#define __KERNEL_CS	0x60
#define __KERNEL_DS	0x68
#define __USER_CS	(0x70 | 3)
#define __USER_DS	(0x78 | 3)
#define GDT_ENTRY_TLS_MIN	6
#define GDT_ENTRIES	32
#define GUEST_PL	1
#define GDT_ENTRY_KERNEL_CS	12
#define GDT_ENTRY_KERNEL_DS	13
#define GDT_ENTRY_USER_CS	14
#define GDT_ENTRY_USER_DS	15

/* Kernel stacks are two pages, aligned to their size. */
#define THREAD_SIZE	8192

/* Hardware interrupt n arrives as vector FIRST_EXTERNAL_VECTOR + n. */
#define FIRST_EXTERNAL_VECTOR	32
#define NR_IRQ_VECTORS		LGUEST_IRQS

#ifndef __ASSEMBLER__

#define NULL		((void *)0)
#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define barrier()	asm volatile("" : : : "memory")

/*: G:052 Linux calls every privileged operation through tables of function
 * pointers, the "paravirt ops": a kernel running on bare metal fills them
 * with one-instruction functions ("cli", "mov %eax,%cr3"), a Guest fills
 * them with its own.  lguest's lguest_init() is where that happens.  Linux
 * then goes further and patches the hottest call sites with the Guest's
 * instructions inline, and so does this kernel, for the four interrupt
 * flag ops (G:050 below, patch.c).  It keeps the table, so that main.c and
 * the rest boot without knowing they are a Guest, and every call that
 * would be privileged can be found here. */
/* The patchable ops take their argument in %eax, not on the stack, so a
 * call site and the instruction that replaces it agree on where the value
 * is (Linux's i386 kernel passed every argument in registers). */
#define PV_REGPARM	__attribute__((regparm(1)))

struct pv_ops {
	const char *name;

	/* Interrupts on and off (boot.c, G:033). */
	u32 (*save_fl)(void);
	void (*restore_fl)(u32 flags) PV_REGPARM;
	void (*irq_disable)(void);
	void (*irq_enable)(void);
	/* Wait for an interrupt (which turns interrupts on). */
	void (*safe_halt)(void);
	/* Let interrupt "irq" through, or hold it back. */
	void (*unmask_irq)(unsigned int irq);
	void (*mask_irq)(unsigned int irq);

	/* Descriptor tables and the kernel stack (G:034, G:038). */
	void (*load_gdt)(const u64 *gdt, unsigned int entries);
	void (*write_idt_entry)(unsigned int vector, u32 lo, u32 hi);
	void (*load_tls)(const u64 *tls);
	void (*load_esp0)(u32 esp0);

	/* cr0's TS bit, which makes the first FPU instruction trap. */
	void (*clts)(void);
	void (*stts)(void);
	/* The faulting address of the last page fault. */
	u32 (*read_cr2)(void);

	/* Page tables (G:044). */
	void (*write_cr3)(u32 pgdir_phys);
	void (*flush_tlb_user)(void);
	void (*flush_tlb_kernel)(void);
	void (*set_pte_at)(u32 *pgdir, u32 vaddr, u32 *ptep, u32 pte);
	void (*set_pmd)(u32 *pmdp, u32 pmd);
	void (*set_lazy_mode)(int lazy);

	/* The timer: interrupt 0, this many nanoseconds from now (0: never). */
	void (*set_next_event)(u32 delta_ns);

	/* Goodbye. */
	void (*power_off)(void);
	void (*crash)(const char *why);
#ifdef CONFIG_VIRTIO
	void (*restart)(const char *why);	/* 2.6.25: reboot */
#endif
};
extern struct pv_ops pv;

/*: G:050 Patching.  The table makes every privileged operation an
 * indirect call, and an indirect call is not free: the processor must load
 * the pointer before it knows where it is going, and the function it
 * reaches here does a single store to `lguest_data.irq_enabled`.  Turning
 * interrupts off and on, and saving and restoring the flag, are what a
 * kernel does most often, so those four call sites are worth rewriting:
 * at boot, each is overwritten with the very instruction the Guest's
 * version would have executed, and the call vanishes.  A native kernel
 * would rewrite them to `cli`, `sti`, `pushf; pop %eax` and
 * `push %eax; popf` the same way.
 *
 * To be rewritten a site has to be found, and it has to be big enough.
 * PV_SITE() emits the call between two labels and records where it starts,
 * which op it calls and how many bytes it has, in the section
 * `.parainstructions` (guest.ld gathers all the records into one array).
 * The site saves %ecx and %edx, the registers a C function may clobber
 * besides %eax, around the call: that tells the compiler the sequence
 * changes nothing but %eax, which stays true after patching, and pads
 * the site to ten bytes, enough for a `movl $imm, mem` (patch.S has the
 * replacements, patch.c does the rewriting, G:055 and G:060). */
#define PATCH_irq_disable	0
#define PATCH_irq_enable	1
#define PATCH_save_fl		2
#define PATCH_restore_fl	3
#define NR_PATCHES		4

struct paravirt_patch_site {
	u8 *instr;	/* where the site starts */
	u8 type;	/* which op: PATCH_irq_disable ... */
	u8 len;		/* how many bytes may be rewritten */
	u16 pad;
};
extern struct paravirt_patch_site __parainstructions[], __parainstructions_end[];

#define PV_SITE								\
	"771:\tpushl %%ecx\n\tpushl %%edx\n"				\
	"\tcall *%c[op]\n"						\
	"\tpopl %%edx\n\tpopl %%ecx\n772:\n"				\
	"\t.pushsection .parainstructions, \"a\"\n"			\
	"\t.balign 4\n\t.long 771b\n"					\
	"\t.byte %c[type], 772b - 771b\n\t.short 0\n"			\
	"\t.popsection\n"

static inline void irq_disable(void)
{
	asm volatile(PV_SITE : : [op] "i" (&pv.irq_disable), [type] "i" (PATCH_irq_disable)
		     : "eax", "memory", "cc");
}

static inline void irq_enable(void)
{
	asm volatile(PV_SITE : : [op] "i" (&pv.irq_enable), [type] "i" (PATCH_irq_enable)
		     : "eax", "memory", "cc");
}

static inline u32 save_fl(void)
{
	u32 flags;

	asm volatile(PV_SITE : "=a" (flags) : [op] "i" (&pv.save_fl), [type] "i" (PATCH_save_fl)
		     : "memory", "cc");
	return flags;
}

static inline void restore_fl(u32 flags)
{
	asm volatile(PV_SITE : "+a" (flags) : [op] "i" (&pv.restore_fl),
		     [type] "i" (PATCH_restore_fl) : "memory", "cc");
}

/* patch.c: rewrite the sites above, unless the command line says
 * "nopatch"; how many were rewritten and how many kept their call. */
extern unsigned int patched_sites, unpatched_sites;
void apply_patches(void);

/* A segment descriptor: base, limit (20 bits) and the access flags in the
 * Linux way, 0xGA0P: G = granularity and size bits, A = the access byte. */
static inline u64 make_segment(u32 base, u32 limit, u32 flags)
{
	u32 lo = (base << 16) | (limit & 0xFFFF);
	u32 hi = (base & 0xFF000000) | ((flags & 0xF000) << 8) | (limit & 0xF0000)
		| ((flags & 0xFF) << 8) | ((base >> 16) & 0xFF);
	return ((u64)hi << 32) | lo;
}

/* A place to keep the boot header the Launcher gave us (boot.c). */
#define BOOT_PARAM_SIZE		4096
#define COMMAND_LINE_SIZE	256
extern u8 boot_params[BOOT_PARAM_SIZE];
extern char boot_command_line[COMMAND_LINE_SIZE];

/* How the trap entry code in entry.S leaves the stack for C (traps.c):
 * what "pushal" saved, the data segments, which vector it was and its
 * error code (0 when the processor gives none), then the frame pushed by
 * the processor or the Host, whose last two words exist only if we came
 * from user mode. */
struct trap_frame {
	u32 edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;
	u32 es, ds;
	u32 vector, error_code;
	u32 eip, cs, eflags;
	u32 user_esp, user_ss;
};
#define from_user_mode(f)	(((f)->cs & 3) == 3)


/* head.S: the first task's kernel stack */
extern u8 init_stack[];

/* main.c */
void start_kernel(void) __attribute__((noreturn));

/* traps.c */
void cpu_init(void);
void trap_init(void);
typedef void (*irq_handler_t)(unsigned int irq);
void request_irq(unsigned int irq, irq_handler_t handler);
void free_irq(unsigned int irq);
void do_trap(struct trap_frame *frame);

/* entry.S */
extern u32 trap_stub_table[];
void lguest_iret(void);
extern char lguest_noirq_start[], lguest_noirq_end[];
struct kernel_context { u32 esp; };
int enter_user_mode(struct kernel_context *saved, u32 eip, u32 esp);
void leave_user_mode(struct kernel_context *saved, int code) __attribute__((noreturn));

/* mm.c */
struct mm {
	u32 *pgdir;		/* virtual address of the page directory */
};
extern struct mm init_mm;
extern u32 ram_size;
void setup_memory(void);
void *alloc_page(void);
void paging_init(void);
void switch_mm(struct mm *mm);
int mm_create(struct mm *mm);
void mm_destroy(struct mm *mm);
u32 *map_user_page(struct mm *mm, u32 vaddr);
int user_virt_to_phys(struct mm *mm, u32 vaddr, u32 *phys);
void do_page_fault(struct trap_frame *frame);
void *map_device_pages(u32 pfn, unsigned int pages);

/* time.c */
extern volatile u32 jiffies;
void time_init(void);
void wait_for_tick(void);
u32 read_tsc(void);
u32 tsc_to_ns(u32 cycles);

/* Sleeping until "condition" holds, the way wait_for_tick() waits for the
 * timer (time.c, G:132): test it with interrupts off, and if it does not
 * hold yet, halt; an interrupt handler is what makes it true, and the
 * Host wakes us for it.  Interrupts end up as they were before. */
#define wait_event(condition)					\
	do {							\
		u32 __flags = save_fl();			\
		for (;;) {					\
			irq_disable();				\
			if (condition)				\
				break;				\
			pv.safe_halt();				\
		}						\
		restore_fl(__flags);				\
	} while (0)

/* lguest_bus.c */
/*: D:090 What the bus hands a driver: one of these for each descriptor it
 * found.  The index is the descriptor's place in the device page, and it is
 * all a driver needs to know which interrupt is its own (lgdev_irq() below);
 * desc points into the page itself, so a driver reads its device's memory
 * (pfn, num_pages) and features from there.  Linux's version also embeds a
 * "struct device" for the driver core and sysfs, and a private pointer for
 * the driver; this kernel has neither, and keeps each driver's state in
 * the driver's own static variables. */
struct lguest_device {
	unsigned int index;
	struct lguest_device_desc *desc;
};
/*: D:092 A driver, as the bus sees it: a name for the boot messages, the
 * device type it drives, the probe function the bus calls when it finds a
 * device of that type, and, new in lguestsim, a shutdown function for the
 * moment before power-off.  Linux drivers hand one of these to
 * register_lguest_driver() when they initialise; ours are simply listed in
 * a table in lguest_bus.c, since all three are built in. */
struct lguest_driver {
	const char *name;
	u16 device_type;
	int (*probe)(struct lguest_device *dev);
	void (*shutdown)(struct lguest_device *dev);	/* may be NULL */
};
extern struct lguest_device_desc *lguest_devices;
void lguest_bus_init(void);
void lguest_bus_shutdown(void);
void lguest_send_dma(u32 key, struct lguest_dma *dma);
int lguest_bind_dma(u32 key, struct lguest_dma *dmas, unsigned int num, u8 irq);
void lguest_unbind_dma(u32 key, struct lguest_dma *dmas);
/*: D:380 Which interrupt a device raises is not written anywhere: it is a
 * convention that the Launcher and the Guest both follow.  Device n in the
 * descriptor page uses interrupt n + 1, because interrupt 0 is already
 * taken by the timer.  A driver passes this number both to request_irq()
 * (traps.c) and to BIND_DMA, which tells the Host what to raise when a
 * buffer is filled; the Launcher, serving input itself, learns it from the
 * used_len of the buffer that LHREQ_GETDMA hands back. */
static inline unsigned int lgdev_irq(const struct lguest_device *dev)
{
	return dev->index + 1;
}

/* console.c */
void console_write(const char *buf, u32 len);
void console_write_phys(u32 phys, u32 len);
int console_read(char *buf, u32 len);
extern struct lguest_driver console_driver;

/* block.c: a request is a run of whole sectors and the memory it goes to or
 * comes from, as pieces of physical memory that do not cross a page (what
 * Linux's block layer hands a driver as "bio_vecs"). */
#define SECTOR_SIZE	512
struct blk_request {
	int write;
	u32 sector;
	unsigned int pieces;
	u32 phys[LGUEST_MAX_DMA_SECTIONS];
	u32 len[LGUEST_MAX_DMA_SECTIONS];
	volatile int result;	/* 0 until it ends; then 1 done, 2 failed */
};
int lgb_num_sectors(unsigned int disk, u32 *num_sectors);
int lgb_do_request(unsigned int disk, struct blk_request *req);
extern struct lguest_driver block_driver;

/* net.c (the structures it fills in for the user program are in
 * user_abi.h) */
int net_peers(struct net_peer *out, unsigned int max);
int net_set_promisc(int on);
int net_ping(const u8 dest[6], u32 seq, struct lg_ping *result);
extern struct lguest_driver net_driver;

/* ioport.c: who owns which I/O ports, and the probes of a PC's old chips. */
int request_region(u32 start, u32 n, const char *name);
void release_region(u32 start, u32 n);
void probe_legacy_devices(void);
extern unsigned int ioport_accesses;

/* process.c */
int run_init_process(void);
void do_syscall(struct trap_frame *frame);
void do_device_not_available(struct trap_frame *frame);
void kill_current_process(const char *why, struct trap_frame *frame) __attribute__((noreturn));
extern int current_pid;

/* lib.c */
void *memcpy(void *dst, const void *src, u32 n);
void *memset(void *dst, int c, u32 n);
u32 strlen(const char *s);
int strcmp(const char *a, const char *b);
int cmdline_has(const char *word);
int snprintf(char *buf, u32 size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void panic(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#endif /* !__ASSEMBLER__ */
#endif /* GUEST_H */
