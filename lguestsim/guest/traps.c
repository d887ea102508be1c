/*
 * traps.c: segments, the interrupt table, and where traps go.
 *
 * cpu_init() gives the processor our Global Descriptor Table and our kernel
 * stack; trap_init() fills the Interrupt Descriptor Table with the stubs of
 * entry.S.  Both go through the Host, which checks what we ask for before
 * it lets the real processor use it.  do_trap() is where every trap and
 * interrupt arrives in C, and sends it on to the code that handles it.
 */
#include "guest.h"
#include "user_abi.h"

/* The Global Descriptor Table: flat 4 GiB segments for the kernel and for
 * user mode, in Linux's slots.  We write the kernel's with privilege level 0,
 * as a native kernel would; the Host turns them into ring 1 segments.  It
 * also fills in the entries it keeps for itself (10, 11, 16 and 31), so we
 * leave those empty, like all the others. */
static u64 gdt[GDT_ENTRIES] __attribute__((aligned(8))) = {
	[GDT_ENTRY_KERNEL_CS] = 0x00cf9a000000ffffULL,	/* code, ring 0 */
	[GDT_ENTRY_KERNEL_DS] = 0x00cf92000000ffffULL,	/* data, ring 0 */
	[GDT_ENTRY_USER_CS] = 0x00cffa000000ffffULL,	/* code, ring 3 */
	[GDT_ENTRY_USER_DS] = 0x00cff2000000ffffULL,	/* data, ring 3 */
};

void cpu_init(void)
{
	/* The segments we run on now are the Host's copies of entries 12 and
	 * 13, so loading a table with the same entries changes nothing under
	 * our feet. */
	pv.load_gdt(gdt, GDT_ENTRIES);

	/* Traps from user mode arrive on this stack (the first task's, from
	 * head.S) until a process gives us its own. */
	pv.load_esp0((u32)init_stack + THREAD_SIZE);
}

/*: G:100 The Interrupt Descriptor Table.  Each entry is a "gate": the
 * address of the handler, the code segment to run it in, a type, and the
 * lowest privilege level allowed to reach it with an "int" instruction.
 *
 * Two types matter.  An interrupt gate (0xE) turns interrupts off on entry;
 * for us that means the Host sets lguest_data.irq_enabled to 0 as it
 * delivers the trap.  A trap gate (0xF) leaves them alone.  The Host hands
 * almost everything to us itself (it has to look first: a page fault may be
 * its business, not ours), but a trap gate for the system call vector lets
 * it go further: it points the real IDT at our handler, and a user
 * program's "int $0x80" goes straight to our kernel without the Host ever
 * running.  That is why only the system call gets a trap gate here, with
 * privilege level 3 so that user mode may use it. */
#define GATE_INTERRUPT	0xE
#define GATE_TRAP	0xF

static void set_gate(unsigned int vector, u32 handler, unsigned int type, unsigned int dpl)
{
	u32 lo = (__KERNEL_CS << 16) | (handler & 0xFFFF);
	u32 hi = (handler & 0xFFFF0000) | 0x8000 | (dpl << 13) | (type << 8);

	pv.write_idt_entry(vector, lo, hi);
}

void trap_init(void)
{
	extern char system_call[];
	unsigned int v;

	for (v = 0; v < FIRST_EXTERNAL_VECTOR + NR_IRQ_VECTORS; v++)
		set_gate(v, trap_stub_table[v], GATE_INTERRUPT, 0);
	set_gate(SYSCALL_VECTOR, (u32)system_call, GATE_TRAP, 3);
}

/* Interrupts: each of the Host's 32 interrupt lines may have a handler. */
static irq_handler_t irq_handlers[NR_IRQ_VECTORS];

void request_irq(unsigned int irq, irq_handler_t handler)
{
	irq_handlers[irq] = handler;
	pv.unmask_irq(irq);
}

static void do_irq(unsigned int irq)
{
	if (irq_handlers[irq])
		irq_handlers[irq](irq);
	else
		printk("spurious interrupt %u\n", irq);
}

static const char *const trap_names[FIRST_EXTERNAL_VECTOR] = {
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bounds",
	"invalid opcode", "device not available", "double fault",
	"coprocessor segment overrun", "invalid TSS", "segment not present",
	"stack segment", "general protection", "page fault", "reserved",
	"x87 floating point", "alignment check", "machine check", "SIMD floating point",
};

static void die(const char *what, struct trap_frame *f)
{
	printk("%s: error code %x at %x:%p, eflags %x\n", what, f->error_code, f->cs,
	       (void *)f->eip, f->eflags);
	printk("eax %x ebx %x ecx %x edx %x esi %x edi %x ebp %x\n",
	       f->eax, f->ebx, f->ecx, f->edx, f->esi, f->edi, f->ebp);
	panic("%s in the kernel", what);
}

/*: G:120 Every trap and interrupt comes here from entry.S, with the
 * registers of whatever it interrupted in *frame.  Changing the frame
 * changes what we return to: that is how a system call hands back its
 * result in %eax. */
void do_trap(struct trap_frame *frame)
{
	unsigned int vector = frame->vector;
	const char *name;

	if (vector >= FIRST_EXTERNAL_VECTOR && vector < FIRST_EXTERNAL_VECTOR + NR_IRQ_VECTORS) {
		do_irq(vector - FIRST_EXTERNAL_VECTOR);
		return;
	}
	switch (vector) {
	case SYSCALL_VECTOR:
		do_syscall(frame);
		return;
	case 7:
		do_device_not_available(frame);
		return;
	case 14:
		do_page_fault(frame);
		return;
	}
	name = vector < FIRST_EXTERNAL_VECTOR && trap_names[vector] ? trap_names[vector]
								     : "unknown trap";
	if (from_user_mode(frame))
		kill_current_process(name, frame);
	die(name, frame);
}
