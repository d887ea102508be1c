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

/*: G:090 Our Global Descriptor Table: flat 4 GiB code and data segments
 * for the kernel (entries 12 and 13) and for user mode (14 and 15), in the
 * slots Linux uses, so the selectors in guest.h are Linux's too.  The
 * kernel's are written with privilege level 0, exactly as a native kernel
 * would write them; the Host quietly makes them ring 1 segments when it
 * copies the table.  The entries the Host keeps for itself (10, 11, 16 and
 * 31) are left empty, like every other slot, and entries 6 to 8 are filled
 * per process with LHCALL_LOAD_TLS (process.c). */
static u64 gdt[GDT_ENTRIES] __attribute__((aligned(8))) = {
	[GDT_ENTRY_KERNEL_CS] = 0x00cf9a000000ffffULL,	/* code, ring 0 */
	[GDT_ENTRY_KERNEL_DS] = 0x00cf92000000ffffULL,	/* data, ring 0 */
	[GDT_ENTRY_USER_CS] = 0x00cffa000000ffffULL,	/* code, ring 3 */
	[GDT_ENTRY_USER_DS] = 0x00cff2000000ffffULL,	/* data, ring 3 */
};

/*: G:091 `cpu_init()` is the first time main.c's kernel uses the ops for
 * real: it hands the Host our GDT (G:038) and names the stack that traps from
 * user mode should land on (G:042).  Neither changes anything visible yet:
 * the segment registers already hold the Host's copies of entries 12 and 13,
 * and no user mode has run. */
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

/*: G:100 The Interrupt Descriptor Table is made of "gates": each says
 * where the handler is (a code segment and an offset), what type of gate it
 * is, and the lowest privilege level allowed to reach it with an `int`
 * instruction.  Two types matter to us.  An interrupt gate (0xE) turns
 * interrupts off on the way in, which for a Guest means the Host sets
 * `irq_enabled` to 0 as it delivers; a trap gate (0xF) leaves them as they
 * were.
 *
 * The type also matters to the Host.  It delivers almost every trap itself,
 * after a look of its own (a page fault may be its business rather than
 * ours), but a trap gate lets it do better: it can point the real IDT
 * straight at our handler, so the trap reaches us with no world switch.
 * That is what the system call gets below. */
#define GATE_INTERRUPT	0xE
#define GATE_TRAP	0xF

/*: G:101 Building one gate, in the processor's layout: the handler's
 * offset split in two halves around our kernel code segment in the low
 * word, and in the high word the "present" bit (0x8000), the privilege
 * level in bits 13 and 14, and the type in bits 8 to 11.  We cannot write
 * the IDT ourselves, so the two words go to the Host through
 * `pv.write_idt_entry()` (G:034). */
static void set_gate(unsigned int vector, u32 handler, unsigned int type, unsigned int dpl)
{
	u32 lo = (__KERNEL_CS << 16) | (handler & 0xFFFF);
	u32 hi = (handler & 0xFFFF0000) | 0x8000 | (dpl << 13) | (type << 8);

	pv.write_idt_entry(vector, lo, hi);
}

/*: G:102 `trap_init()` fills in every vector we handle: the 32
 * exceptions and the 32 interrupt lines with the stubs of entry.S (G:110),
 * all through interrupt gates that only the kernel may reach, and then the
 * system call, 0x80, with a trap gate of privilege level 3, so that user
 * mode may use `int $0x80` and the Host may make it a direct trap.  We
 * send all 64 even though the Host throws a few away (NMI, the double fault,
 * vector 15 and its own hypercall vector 0x1F): what the Host keeps is its
 * decision, not ours. */
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

/*: G:103 A driver asks for an interrupt line by giving a handler; the
 * line is then unmasked (G:041), so the Host may start delivering it.  The
 * timer (time.c) and each device on the lguest bus call this; a device's
 * line is its index in the device page plus one. */
void request_irq(unsigned int irq, irq_handler_t handler)
{
	irq_handlers[irq] = handler;
	pv.unmask_irq(irq);
}

/* And giving it back, when a driver's probe fails after asking: the line is
 * masked again, so the Host holds back anything still pending on it. */
void free_irq(unsigned int irq)
{
	pv.mask_irq(irq);
	irq_handlers[irq] = NULL;
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

/*: G:120 Every trap and interrupt comes here from entry.S's
 * `common_trap`, with the registers of whatever it interrupted in `*frame`.
 * Interrupts (vectors 32 to 63) go to their handler; the system call, the
 * FPU's "device not available" (7) and page faults (14) each have a
 * function of their own; anything else is a crash.  A crash in user mode
 * kills the process, in the kernel it is a panic, which ends the Guest
 * through LHCALL_CRASH.  Changing the frame changes what we return to:
 * that is how a system call hands its result back in %eax. */
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
