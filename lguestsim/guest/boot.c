/*
 * boot.c: how the Guest kernel becomes a Guest.
 *
 * head.S has made the LHCALL_LGUEST_INIT hypercall and given us a stack;
 * lguest_init() at the bottom of this file is where we arrive.  Everything
 * above it is the Guest's replacement for an instruction a kernel normally
 * runs itself but which our ring 1 kernel may not: turning interrupts on and
 * off, loading descriptor tables, switching page tables, programming the
 * timer, halting.  Each becomes a store to "struct lguest_data" or a
 * hypercall, and lguest_init() puts them all in the "pv" table of ops the
 * rest of the kernel calls.
 */
#include "guest.h"

/*: G:010 Welcome to the Guest!
 *
 * The Guest is a kernel like any other, with one difference: it is not in
 * charge.  The Host runs it in ring 1, where the privileged instructions
 * (cli, sti, lgdt, lidt, mov to %cr3, hlt ...) fault instead of working.  A
 * Guest could let them fault and have the Host emulate each one, but that is
 * slow and complicated.  lguest's Guest is "paravirtualized" instead: it
 * knows what it is and asks the Host directly.
 *
 * The Host and the Guest share one structure in Guest memory.  Here is ours,
 * with the fields the Guest must fill in before LHCALL_LGUEST_INIT: every
 * slot of the hypercall ring is free (0xFF), the timer interrupt is blocked
 * until we are ready for it, and the Host is told the range of addresses
 * where it must never interrupt us (the iret sequence in entry.S).  It gets a
 * page of its own, so it is easy to find when you look at memory. */
struct lguest_data lguest_data __attribute__((aligned(PAGE_SIZE))) = {
	.hcall_status = { [0 ... LHCALL_RING_SIZE - 1] = 0xFF },
	.blocked_interrupts = 1 << 0,
	.noirq_start = (u32)lguest_noirq_start,
	.noirq_end = (u32)lguest_noirq_end,
};

/* The table of ops the rest of the kernel calls; lguest_init() fills it. */
struct pv_ops pv;

u8 boot_params[BOOT_PARAM_SIZE];
char boot_command_line[COMMAND_LINE_SIZE];

/*: G:033 Interrupts.  A native kernel disables interrupts with "cli" and
 * enables them with "sti"; it reads the state with "pushf".  In ring 1 those
 * either trap or silently do nothing, so the Guest keeps its interrupt flag
 * in lguest_data.irq_enabled instead, and the Host looks there before it
 * delivers an interrupt.  Turning interrupts off is one store: no hypercall,
 * no trap.
 *
 * The value stored is what eflags would hold: X86_EFLAGS_IF (0x200) for
 * "on", 0 for "off".  That way save_fl() and restore_fl() can pass it around
 * like a real flags word, and the iret code can copy it straight out of an
 * eflags value. */
static u32 lguest_save_fl(void)
{
	barrier();
	return lguest_data.irq_enabled;
}

static void lguest_restore_fl(u32 flags)
{
	barrier();
	lguest_data.irq_enabled = flags;
	barrier();
}

static void lguest_irq_disable(void)
{
	barrier();
	lguest_data.irq_enabled = 0;
	barrier();
}

static void lguest_irq_enable(void)
{
	barrier();
	lguest_data.irq_enabled = X86_EFLAGS_IF;
	barrier();
}

/*: M:003 Note that enabling interrupts does not check whether one is
 * already waiting.  If the timer fired while we had interrupts off, the Host
 * holds it until the next time it runs us, which is at our next trap or
 * hypercall.  For this kernel that is soon enough; a busier one would want
 * the Host to tell it, for example with a flag in lguest_data. */

/* Halting: a native kernel runs "sti; hlt".  We ask the Host to stop running
 * us until an interrupt arrives.  The Host delivers that interrupt even if
 * irq_enabled is 0 (it turns interrupts on as it wakes us), so a Guest can
 * check for work with interrupts off and then halt without missing one. */
static void lguest_safe_halt(void)
{
	hcall(LHCALL_HALT, 0, 0, 0);
}

/* A native kernel masks an interrupt at the interrupt controller.  Our
 * "controller" is a word of bits in lguest_data: bit n set, and the Host
 * holds interrupt n back.  The timer starts out blocked (see above). */
static void lguest_unmask_irq(unsigned int irq)
{
	lguest_data.blocked_interrupts &= ~(1u << irq);
	barrier();
}

static void lguest_mask_irq(unsigned int irq)
{
	lguest_data.blocked_interrupts |= 1u << irq;
	barrier();
}

/*: G:035 Lazy mode and the asynchronous hypercall ring.
 *
 * Each hypercall is a trip out of the Guest into the Host and back: a trap,
 * two switches of the whole machine state, and the Host's own work.  When
 * the kernel updates many page table entries in a row, most of those trips
 * are wasted: the Host only needs to know about them before the Guest next
 * relies on them.  So the kernel can enter "lazy mode", and while it is in
 * it the hypercalls that can wait (page table updates, TLB flushes, the
 * kernel stack, TS, TLS) are not made but written into a ring of slots in
 * lguest_data.  The Host runs every waiting slot in order the next time the
 * Guest traps to it for any reason, before it does anything else.  Leaving
 * lazy mode makes the LHCALL_FLUSH_ASYNC hypercall, which does nothing at
 * all: the trip to the Host is the point. */
static unsigned int next_call;
static int lazy_mode;

static void async_hcall(u32 call, u32 arg1, u32 arg2, u32 arg3)
{
	struct hcall_args *args;
	u32 flags;

	/* An interrupt handler could make an asynchronous call too: keep
	 * interrupts off while we own the cursor. */
	flags = lguest_save_fl();
	lguest_irq_disable();

	if (lguest_data.hcall_status[next_call] != 0xFF) {
		/* The Host has not emptied this slot yet: the ring is full.
		 * A synchronous call is always correct (the Host runs every
		 * waiting slot before it), just not as cheap. */
		hcall(call, arg1, arg2, arg3);
	} else {
		args = &lguest_data.hcalls[next_call];
		args->eax = call;
		args->edx = arg1;
		args->ebx = arg2;
		args->ecx = arg3;
		/* The arguments must be in memory before the Host can see the
		 * slot is ready (on one processor, keeping the compiler from
		 * reordering the stores is enough). */
		barrier();
		lguest_data.hcall_status[next_call] = 0;
		if (++next_call == LHCALL_RING_SIZE)
			next_call = 0;
	}
	lguest_restore_fl(flags);
}

void lazy_hcall(u32 call, u32 arg1, u32 arg2, u32 arg3)
{
	if (!lazy_mode)
		hcall(call, arg1, arg2, arg3);
	else
		async_hcall(call, arg1, arg2, arg3);
}

static void lguest_set_lazy_mode(int lazy)
{
	lazy_mode = lazy;
	if (!lazy)
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
}

/*: G:034 The Interrupt Descriptor Table says where the processor goes for
 * each interrupt and trap.  The Guest cannot load one with "lidt"; instead
 * it hands the Host one entry at a time with LHCALL_LOAD_IDT_ENTRY, as the
 * two 32-bit halves of the 8-byte gate descriptor.  The Host checks each one
 * (it is about to point the real processor at our code) and keeps a copy; it
 * only keeps the first 64 vectors and the system call vector, which is all
 * lguest Guests use. */
static void lguest_write_idt_entry(unsigned int vector, u32 lo, u32 hi)
{
	hcall(LHCALL_LOAD_IDT_ENTRY, vector, lo, hi);
}

/*: G:038 The Global Descriptor Table holds the segments.  Unlike the IDT it
 * goes to the Host in one piece: LHCALL_LOAD_GDT with the table's physical
 * address and its number of entries (at most 32).  The Host copies it,
 * keeps a few entries for itself (the Switcher's own segments and the TSS),
 * and quietly turns our ring 0 segments into ring 1 ones, since ring 1 is
 * where we really run.
 *
 * Threads want a segment of their own for thread-local storage, and a
 * kernel switches three GDT entries (6 to 8) on every task switch.  That is
 * common enough to get its own hypercall, LHCALL_LOAD_TLS, which can wait
 * in the ring. */
static void lguest_load_gdt(const u64 *gdt, unsigned int entries)
{
	hcall(LHCALL_LOAD_GDT, __pa(gdt), entries, 0);
}

static void lguest_load_tls(const u64 *tls)
{
	lazy_hcall(LHCALL_LOAD_TLS, __pa(tls), 0, 0);
}

/* When user mode traps, the processor switches to the kernel stack named in
 * the TSS.  The TSS belongs to the Host, so we tell it which stack to use
 * (the ring 1 entries, ss1 and esp1): the segment with our privilege level,
 * the top of the stack and how many pages it has.  The Host makes sure
 * those pages stay mapped, because nothing can handle a fault on them. */
static void lguest_load_esp0(u32 esp0)
{
	lazy_hcall(LHCALL_SET_STACK, __KERNEL_DS | GUEST_PL, esp0, THREAD_SIZE / PAGE_SIZE);
}

/* cr0's TS bit ("task switched") makes the next FPU instruction trap with
 * #NM, so a kernel can leave the FPU registers of one task in place until
 * another really uses the FPU.  We cannot write %cr0: we ask the Host to
 * keep the bit for us, and it sets the real one when it runs us. */
static void lguest_clts(void)
{
	lazy_hcall(LHCALL_TS, 0, 0, 0);
}

static void lguest_stts(void)
{
	lazy_hcall(LHCALL_TS, X86_CR0_TS, 0, 0);
}

/* Nor can we read %cr2, which holds the address of the last page fault: the
 * Host copies it into lguest_data before it passes the fault on to us. */
static u32 lguest_read_cr2(void)
{
	return lguest_data.cr2;
}

/*: G:036 Page tables.  The Guest keeps page tables of its own, in its own
 * memory, in the processor's format, but the processor never uses them: the
 * Host builds "shadow" page tables from them, which map Guest virtual
 * addresses to the Host's real memory, and puts those in %cr3.  So whenever
 * the Guest changes an entry the Host might have copied, it must say so:
 *
 *   LHCALL_SET_PTE (page directory, virtual address, new entry) after
 *   changing a page table entry;
 *   LHCALL_SET_PMD (page directory, index) after changing a directory
 *   entry;
 *   LHCALL_FLUSH_TLB where a native kernel would flush the TLB;
 *   LHCALL_NEW_PGTABLE where a native kernel would load %cr3.
 *
 * All of them can wait in the ring in lazy mode.  The Host needs physical
 * addresses of the tables; it keys its shadows by the physical address of
 * the page directory.  Entries for a directory the Host has never been
 * given need no telling: it has nothing to update yet. */
static void lguest_write_cr3(u32 pgdir_phys)
{
	lazy_hcall(LHCALL_NEW_PGTABLE, pgdir_phys, 0, 0);
}

static void lguest_flush_tlb_user(void)
{
	lazy_hcall(LHCALL_FLUSH_TLB, 0, 0, 0);
}

static void lguest_flush_tlb_kernel(void)
{
	lazy_hcall(LHCALL_FLUSH_TLB, 1, 0, 0);
}

static void lguest_set_pte_at(u32 *pgdir, u32 vaddr, u32 *ptep, u32 pte)
{
	*ptep = pte;
	barrier();
	lazy_hcall(LHCALL_SET_PTE, __pa(pgdir), vaddr, pte);
}

static void lguest_set_pmd(u32 *pmdp, u32 pmd)
{
	*pmdp = pmd;
	barrier();
	lazy_hcall(LHCALL_SET_PMD, __pa(pmdp) & PAGE_MASK, (__pa(pmdp) & ~PAGE_MASK) / 4, 0);
}

/* Time.  The Host gives us one timer, a "clock event device" in Linux's
 * words: ask for an interrupt so many nanoseconds from now, and interrupt 0
 * arrives then (once: we ask again for the next one).  Asking for 0 stops
 * the timer, as Linux does when it shuts the clock event device down. */
static void lguest_set_next_event(u32 delta_ns)
{
	if (delta_ns && delta_ns < LG_CLOCK_MIN_DELTA)
		delta_ns = LG_CLOCK_MIN_DELTA;
	hcall(LHCALL_SET_CLOCKEVENT, delta_ns, 0, 0);
}

/* The end.  LHCALL_CRASH is both how a Guest reports a fatal error and how
 * it powers off: either way the Host stops running it and hands the message
 * to the Launcher.  As always the Host wants a physical address. */
static void lguest_crash(const char *why)
{
	hcall(LHCALL_CRASH, __pa(why), 0, 0);
}

static void lguest_power_off(void)
{
	lguest_crash("Power down");
}

/*: G:030 By the time we get to lguest_init() we know we are a Guest: the
 * Launcher found our "GenuineLguest" signature and the Host accepted our
 * LHCALL_LGUEST_INIT (it has written reserve_mem, tsc_khz and guestid into
 * lguest_data for us).  Here we keep a copy of the boot header and the
 * command line, then fill in every op a native kernel would do with a
 * privileged instruction, and hand over to start_kernel(), which is as
 * ignorant of lguest as we can make it. */
void lguest_init(const u8 *boot) __attribute__((noreturn));
void lguest_init(const u8 *boot)
{
	u32 cmdline, i;

	/* The boot header is in the first page of memory, which the kernel
	 * will reuse; keep what it says.  The command line's physical address
	 * is at offset 0x228. */
	memcpy(boot_params, boot, BOOT_PARAM_SIZE);
	cmdline = *(u32 *)(boot_params + 0x228);
	if (cmdline) {
		const char *src = __va(cmdline);
		for (i = 0; i < COMMAND_LINE_SIZE - 1 && src[i]; i++)
			boot_command_line[i] = src[i];
		boot_command_line[i] = '\0';
	}

	pv.name = "lguest";
	pv.save_fl = lguest_save_fl;
	pv.restore_fl = lguest_restore_fl;
	pv.irq_disable = lguest_irq_disable;
	pv.irq_enable = lguest_irq_enable;
	pv.safe_halt = lguest_safe_halt;
	pv.unmask_irq = lguest_unmask_irq;
	pv.mask_irq = lguest_mask_irq;
	pv.load_gdt = lguest_load_gdt;
	pv.write_idt_entry = lguest_write_idt_entry;
	pv.load_tls = lguest_load_tls;
	pv.load_esp0 = lguest_load_esp0;
	pv.clts = lguest_clts;
	pv.stts = lguest_stts;
	pv.read_cr2 = lguest_read_cr2;
	pv.write_cr3 = lguest_write_cr3;
	pv.flush_tlb_user = lguest_flush_tlb_user;
	pv.flush_tlb_kernel = lguest_flush_tlb_kernel;
	pv.set_pte_at = lguest_set_pte_at;
	pv.set_pmd = lguest_set_pmd;
	pv.set_lazy_mode = lguest_set_lazy_mode;
	pv.set_next_event = lguest_set_next_event;
	pv.crash = lguest_crash;
	pv.power_off = lguest_power_off;

	/*: G:070 That is every op.  Linux's lguest_init() goes on with a
	 * long list of boot-time details; ours has nothing left to arrange,
	 * so it hands over to the kernel proper, never to come back. */
	start_kernel();
}
