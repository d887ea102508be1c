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

/*: P:010 lguest is about the smallest hypervisor that can run a real
 * operating system beside Linux.  It has three parts: the Host, a kernel
 * module that owns the processor while a Guest runs; the Launcher, an
 * ordinary program that opens /dev/lguest, lays out the Guest's memory and
 * devices, and then asks the Host to run it; and the Guest itself.  Not any
 * kernel can be that Guest: it has to know it is one, and ask the Host (by
 * hypercall, or through a page the two share) for everything a kernel
 * usually does with privileged instructions.
 *
 * lguestsim keeps the three parts and their contracts, but the Host and the
 * Launcher are Python, and the "hardware" is an i386 interpreted one
 * instruction at a time.  The Guest is real machine code: this small kernel,
 * written in C and assembly and built with gcc.  This file plays the part of
 * Linux's lguest.c, the collection of Guest versions of the privileged
 * operations. */

#include "guest.h"

/*: G:010 The Guest chapter starts here, with the page the Guest and the
 * Host share.
 *
 * A Guest is an ordinary kernel in one respect only: it is not in charge.
 * The Host runs it in ring 1, where cli, sti, lgdt, lidt, hlt and writes to
 * %cr3 fault instead of working.  Letting every one of them fault and having
 * the Host emulate it would be slow and hard to get right, so an lguest Guest
 * is "paravirtualized": it knows what it is and asks for what it needs.
 *
 * Much of the asking is done through this structure, which lives in our
 * memory and which the Host reads and writes directly.  Some fields must be
 * right before the Host sees it at all: every slot of the hypercall ring
 * marked free (0xFF), the timer interrupt blocked until we can take it, and
 * the address range of our iret sequence (entry.S), where the Host must
 * never interrupt us.  It gets a page to itself, which makes it easy to
 * spot in a dump of Guest memory. */
struct lguest_data lguest_data __attribute__((aligned(PAGE_SIZE))) = {
	.hcall_status = { [0 ... LHCALL_RING_SIZE - 1] = 0xFF },
	.blocked_interrupts = 1 << 0,
	.noirq_start = (u32)lguest_noirq_start,
	.noirq_end = (u32)lguest_noirq_end,
#ifdef CONFIG_VIRTIO
	/* 2.6.25: the Guest tells the Host where its kernel lives. */
	.kernel_address = PAGE_OFFSET,
	.syscall_vec = SYSCALL_VECTOR,
#endif
};

/* The table of ops the rest of the kernel calls; lguest_init() fills it. */
struct pv_ops pv;

u8 boot_params[BOOT_PARAM_SIZE];
char boot_command_line[COMMAND_LINE_SIZE];

/*: G:033 The first ops: the interrupt flag.  On bare metal a kernel turns
 * interrupts off with `cli`, on with `sti`, and reads the state with
 * `pushf`.  In ring 1 those instructions either fault or quietly do nothing,
 * so the Guest keeps its interrupt flag in memory, in
 * `lguest_data.irq_enabled`, and the Host checks that word before it
 * delivers an interrupt.  Disabling interrupts thus costs one store, with no
 * trip to the Host at all.
 *
 * The word holds what eflags would: `X86_EFLAGS_IF` (0x200) when interrupts
 * are on, 0 when they are off.  So `save_fl()` and `restore_fl()` hand it
 * around like a real flags value, and the iret code in entry.S can copy the
 * bit straight out of a saved eflags.  The `barrier()`s keep the compiler
 * from moving memory accesses across the switch.  `lguest_restore_fl()`,
 * `lguest_irq_disable()` and `lguest_irq_enable()` below are the same store
 * with other values. */
static u32 lguest_save_fl(void)
{
	barrier();
	return lguest_data.irq_enabled;
}

static PV_REGPARM void lguest_restore_fl(u32 flags)
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

/*: M:003 An exercise in latency.  `lguest_irq_enable()` is a bare store: if
 * an interrupt became due while interrupts were off, the Host has held it
 * back, and it stays held until the Host next gets control (our next trap
 * or hypercall, or the next timer deadline of the simulated machine).  With
 * this kernel's few interrupts nobody notices, but you can measure it: in
 * the trace, compare when the Host raised the timer interrupt with when it
 * was delivered.  Then close the gap.  One way is a new word in
 * `lguest_data` that the Host sets when it holds an interrupt back (in
 * `maybe_do_interrupt()`, lguestsim/host/interrupts_and_traps.py), which
 * `lguest_irq_enable()` checks and answers with the do-nothing
 * LHCALL_FLUSH_ASYNC hypercall, so the Host gets a chance to deliver. */

/*: G:040 Halting.  A native kernel with nothing to do runs `sti; hlt` and
 * sleeps until an interrupt.  We ask the Host instead: LHCALL_HALT, and it
 * does not run us again until an interrupt is due.  The Host delivers that
 * interrupt even if `irq_enabled` is 0, turning interrupts on as it wakes
 * us, just as `sti; hlt` would.  That lets a Guest look for work with
 * interrupts off and then halt, with no window where a wake-up could be
 * lost (time.c's `wait_for_tick()` relies on it). */
static void lguest_safe_halt(void)
{
	hcall(LHCALL_HALT, 0, 0, 0);
}

/*: G:041 Masking one interrupt.  A native kernel masks an interrupt line in
 * the interrupt controller; our controller is the `blocked_interrupts` word
 * of `lguest_data`, one bit per line.  While bit n is set the Host keeps
 * interrupt n pending instead of delivering it.  The timer (line 0) starts
 * out blocked, and `request_irq()` in traps.c unmasks a line when a handler
 * is installed for it; `lguest_mask_irq()` below sets the bit again. */
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

/* Where the next asynchronous call goes in the ring, and whether we are in
 * lazy mode (G:035). */
static unsigned int next_call;
static int lazy_mode;

/*: G:037 The asynchronous hypercall ring.  `lguest_data` holds 64 slots,
 * each with the four registers of one hypercall and a status byte: 0xFF
 * means free, 0 means "waiting for the Host".  `async_hcall()` fills the
 * slot at `next_call`, and only then sets its status to 0, so the Host never
 * sees a half-written slot; the Host runs waiting slots in order at its next
 * chance and sets each back to 0xFF.
 *
 * If the slot we want still waits, the ring is full.  Then we simply make
 * the call synchronously: the Host empties the ring before it looks at a
 * direct hypercall, so the order of calls is kept.  Interrupts are off while
 * we own `next_call`, since an interrupt handler could queue a call too. */
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

/*: G:036 Every op whose hypercall may be put off goes through
 * `lazy_hcall()`: outside lazy mode it is an ordinary `hcall()`, inside it
 * the call goes into the ring.  Which calls may wait is a matter of meaning,
 * not mechanism: page table updates, TLB flushes, the kernel stack, the TS
 * bit and the TLS entries only have to reach the Host before the Guest
 * relies on them, and a kernel that uses lazy mode leaves it (which empties
 * the ring) before it does.  Loading the IDT or GDT, setting the timer and
 * halting always go straight to the Host with `hcall()`. */
void lazy_hcall(u32 call, u32 arg1, u32 arg2, u32 arg3)
{
	if (!lazy_mode)
		hcall(call, arg1, arg2, arg3);
	else
		async_hcall(call, arg1, arg2, arg3);
}

/*: G:035 Lazy mode, our first optimization.  A hypercall is expensive: a
 * trap, a full world switch out through the Switcher and another back in,
 * plus the Host's own work; in lguestsim you can count the instructions each
 * one costs.  When the kernel is about to change many page table entries in
 * a row (building a page table, tearing down an address space), one trip
 * for the lot would do.  So the kernel brackets such a batch with
 * `set_lazy_mode(1)` and `set_lazy_mode(0)`; in between, `lazy_hcall()`
 * queues calls in the ring instead of making them.  Leaving lazy mode makes
 * LHCALL_FLUSH_ASYNC, a hypercall that does nothing: it is the trip to the
 * Host, which runs the ring before anything else, that matters. */
static void lguest_set_lazy_mode(int lazy)
{
	lazy_mode = lazy;
	if (!lazy)
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
}

/*: G:034 The Interrupt Descriptor Table tells the processor where to go for
 * each interrupt and trap.  The Guest may not run `lidt`, and the real IDT
 * belongs to the Host anyway; instead the Guest sends its entries one at a
 * time with LHCALL_LOAD_IDT_ENTRY: the vector, then the two 32-bit halves of
 * the 8-byte gate.  The Host checks each gate (it may end up pointing the
 * real processor at our code) and keeps a copy.  It keeps the first 64
 * vectors (the processor's 32 exceptions and the Guest's 32 interrupt
 * lines) plus the system call vector 0x80, and silently drops the few it
 * reserves for itself.  traps.c's `trap_init()` is the caller.  The split
 * into halves is unchanged in 2.6.25, whose telling remarks on it: the
 * 32-bit kernel of the day passed its descriptors around as two words, so
 * two hypercall arguments were the natural shape. */
static void lguest_write_idt_entry(unsigned int vector, u32 lo, u32 hi)
{
	hcall(LHCALL_LOAD_IDT_ENTRY, vector, lo, hi);
}

/*: G:038 The other descriptor tables.  The Global Descriptor Table, unlike
 * the IDT, goes to the Host whole: LHCALL_LOAD_GDT with its physical address
 * and the number of entries (at most 32).  The Host copies it, keeps its own
 * entries (the Switcher's segments and the TSS) for itself, and turns any
 * ring 0 segment of ours into a ring 1 one, since that is where we really
 * run.
 *
 * Thread-local storage wants three GDT entries (6 to 8) that change on every
 * task switch, so `lguest_load_tls()` below has a hypercall of its own,
 * LHCALL_LOAD_TLS, which may wait in the ring.  The Local Descriptor Table,
 * for which Linux's lguest Guest has an op that does nothing, has no op here
 * at all: nothing in this kernel or its program uses one. */
static void lguest_load_gdt(const u64 *gdt, unsigned int entries)
{
	hcall(LHCALL_LOAD_GDT, __pa(gdt), entries, 0);
}

static void lguest_load_tls(const u64 *tls)
{
	lazy_hcall(LHCALL_LOAD_TLS, __pa(tls), 0, 0);
}

/*: G:042 The kernel stack.  When user mode traps, the processor fetches a
 * new stack from the TSS, and the TSS is the Host's.  So the Guest names its
 * stack with LHCALL_SET_STACK: the ring 1 data segment (`ss1`), the top of
 * the stack (`esp1`), and its size in pages.  The Host pins those pages in
 * its shadow page tables, because a fault while the processor pushes onto
 * that stack could be handled by nobody.  process.c calls this to give a
 * process its own stack and to take it back. */
static void lguest_load_esp0(u32 esp0)
{
	lazy_hcall(LHCALL_SET_STACK, __KERNEL_DS | GUEST_PL, esp0, THREAD_SIZE / PAGE_SIZE);
}

/*: G:043 The FPU's "task switched" bit.  With TS set in %cr0, the next FPU
 * instruction traps with "device not available" (vector 7), which lets a
 * kernel leave one task's FPU registers in place until another task really
 * uses the FPU.  We may not write %cr0, so LHCALL_TS tells the Host the
 * value we want, and it sets the real bit whenever it runs us.
 * `lguest_stts()` below sets it; process.c's `do_device_not_available()`
 * clears it with this one. */
static void lguest_clts(void)
{
	lazy_hcall(LHCALL_TS, 0, 0, 0);
}

static void lguest_stts(void)
{
	lazy_hcall(LHCALL_TS, X86_CR0_TS, 0, 0);
}

/* The faulting address of a page fault: the real %cr2 belongs to the Host,
 * and by the time we run again it may hold some other fault's address, so
 * the Host copies it into lguest_data.cr2 before passing the fault on
 * (mm.c's do_page_fault() reads it, G:230). */
static u32 lguest_read_cr2(void)
{
	return lguest_data.cr2;
}

/*: G:044 Page tables.  The Guest keeps its page tables in its own memory
 * and in the processor's format, but the processor never walks them: the
 * Host builds "shadow" tables from them, mapping Guest virtual addresses to
 * the Host's real pages, and puts those in the real %cr3.  So the Guest has
 * to tell the Host about every change to an entry the Host may have copied:
 * LHCALL_NEW_PGTABLE where a native kernel would load %cr3 (here),
 * LHCALL_FLUSH_TLB where it would flush the TLB (the user half, or
 * everything, in the two functions below), and LHCALL_SET_PTE and
 * LHCALL_SET_PMD after changing an entry (G:046, G:047).  All of them may
 * wait in the ring, and the Host wants physical addresses throughout: it
 * tells its shadows apart by the physical address of the page directory. */
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

/*: G:046 Changing a page table entry: write it in our own table first, then
 * tell the Host which directory it belongs to, the virtual address it maps
 * and its new value, so the Host can update (or drop) its shadow of it.  The
 * barrier keeps the compiler from sinking the store below the hypercall.
 * A kernel address is mapped the same way in every address space, so for
 * one of those the Host updates every shadow directory it keeps; for a user
 * address it updates only the shadow of that directory, if it has one. */
static void lguest_set_pte_at(u32 *pgdir, u32 vaddr, u32 *ptep, u32 pte)
{
	*ptep = pte;
	barrier();
	lazy_hcall(LHCALL_SET_PTE, __pa(pgdir), vaddr, pte);
}

/*: G:047 Changing a page directory entry.  The op gets only a pointer to
 * the entry, but page directories are page-aligned, so the page part of its
 * physical address is the directory and the rest, divided by the 4 bytes of
 * an entry, is its index.  That pair is what LHCALL_SET_PMD carries; the
 * Host then forgets its shadow of whatever page table that entry used to
 * point at. */
static void lguest_set_pmd(u32 *pmdp, u32 pmd)
{
	*pmdp = pmd;
	barrier();
	lazy_hcall(LHCALL_SET_PMD, __pa(pmdp) & PAGE_MASK, (__pa(pmdp) & ~PAGE_MASK) / 4, 0);
}

/*: G:048 The timer.  The Host gives each Guest one "clock event device", in
 * Linux's words: LHCALL_SET_CLOCKEVENT asks for interrupt 0 so many
 * nanoseconds from now, and it comes once (for the next tick, ask again).
 * Asking for 0 stops the timer.  A request shorter than the Host's minimum
 * (LG_CLOCK_MIN_DELTA, 100 ns) is rounded up rather than refused.  In
 * lguestsim the Host turns it into a deadline on the simulated machine's
 * cycle counter. */
static void lguest_set_next_event(u32 delta_ns)
{
	if (delta_ns && delta_ns < LG_CLOCK_MIN_DELTA)
		delta_ns = LG_CLOCK_MIN_DELTA;
	hcall(LHCALL_SET_CLOCKEVENT, delta_ns, 0, 0);
}

/*: G:049 The end of a Guest.  LHCALL_CRASH serves both for a fatal error
 * (lib.c's `panic()`) and for a tidy power-off: either way the Host stops
 * running the Guest for good, and the Launcher's next read() of
 * /dev/lguest returns the message instead of running it.  Like every
 * address the Host is given, the message's is physical; the Host reads at
 * most 128 bytes of it.  `lguest_power_off()` below is the polite case. */
#ifndef CONFIG_VIRTIO
static void lguest_crash(const char *why)
{
	hcall(LHCALL_CRASH, __pa(why), 0, 0);
}
#else
/*: G:051 What 2.6.25 changed at the end: LHCALL_SHUTDOWN takes a second
 * argument, and LGUEST_SHUTDOWN_RESTART turns the end into a reboot: the
 * Host stops us just the same, but the Launcher, told so, lays out a fresh
 * Guest from its own options and starts again (L:230). */
static void lguest_crash(const char *why)
{
	hcall(LHCALL_SHUTDOWN, __pa(why), LGUEST_SHUTDOWN_POWEROFF, 0);
}

static void lguest_restart(const char *why)
{
	hcall(LHCALL_SHUTDOWN, __pa(why), LGUEST_SHUTDOWN_RESTART, 0);
}
#endif

static void lguest_power_off(void)
{
	lguest_crash("Power down");
}

/*: G:030 `lguest_init()`: by the time we get here we are sure to be a
 * Guest.  The Launcher found our "GenuineLguest" signature, and the Host
 * accepted head.S's LHCALL_LGUEST_INIT and filled in `reserve_mem`,
 * `tsc_khz` and `guestid` in `lguest_data`.  Two jobs remain.  We copy the
 * boot header and the command line out of the first page of memory, which
 * the kernel will reuse; then we point every op in `pv` at the Guest
 * versions above.  Linux's lguest_init() does the same to its many paravirt
 * structures, and then both hand over to `start_kernel()` (main.c), which
 * boots as if on bare metal, reaching the Host only through these ops.
 * The 2.6.25 Guest (guest-virtio.elf) arrives here differently and finds the
 * same work: no signature, but the boot header's hardware_subarch (G:021)
 * and `lguest_entry`'s LGUEST_INIT (G:022); the ops it fills are the same,
 * the points Linux's pv_ops give for every privileged routine. */
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

	/*: D:905 A Guest has no I/O ports: every `in` and `out` traps to the
	 * Host, which answers as an empty bus (H:130).  So before any driver
	 * can go looking for a PC's chips, the Guest claims the whole port
	 * space for itself, and the drivers find nothing to probe (D:915).
	 * lguest measured its boot at 4.1 s without this and 0.45 s with; the
	 * word "noioreserve" leaves the ports free, to measure it again. */
	if (!cmdline_has("noioreserve"))
		request_region(0, 0x10000, "lguest");

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
#ifdef CONFIG_VIRTIO
	pv.restart = lguest_restart;
#endif
	apply_patches();

	/*: G:070 Back in `lguest_init()`, with every op seen.  Linux's
	 * version has a long list of boot details left at this point
	 * (reserving the Switcher's addresses, choosing clocks, switching off
	 * features a Guest lacks); this kernel has none, because it was
	 * written to be a Guest and the Launcher already gave it the memory
	 * map and page tables it needs.  So it calls `start_kernel()` and
	 * never returns.  The passages after this one follow that kernel as
	 * it uses the ops: its traps, its memory, its process. */
	start_kernel();
}

/*: M:040 An exercise: patching one more op.  Only the four interrupt flag
 * ops are patched (G:050 - G:060); every other op is still an indirect
 * call.  `read_cr2` is a good next one: `lguest_read_cr2()` above is a
 * single load from `lguest_data.cr2`, and mm.c's page fault handler calls
 * it on every fault.  Give it a PV_SITE() in guest.h (its result comes back
 * in %eax, like `save_fl`'s), a replacement in patch.S and a line in
 * patch.c's table, rebuild with `python -m lguestsim.guest.build`, and boot
 * it twice in a Session, once with "nopatch" on the command line and once
 * with another word of seven letters (the program prints its command
 * line, so the two boots should print as much).  Compare the instructions
 * from `start_kernel` to the end (`session.run_to("start_kernel")`, then
 * `session.cpu.instructions`) and count the faults, to see what each
 * patched site saves.  Then look at the instructions before
 * `start_kernel`: apply_patches() has a price, paid once. */
