/*
 * lguest.h: everything the Guest and the Host agree on.
 *
 * This header is the Guest's half of the contract with the Host: the number
 * of the trap used for hypercalls, the hypercall numbers, and the layout of
 * "struct lguest_data", the one structure the two share in Guest memory.
 * Every number here is fixed by Linux 2.6.23's lguest; the Host side of
 * lguestsim (lguestsim/host/) reads the same numbers from ABI.md.
 *
 * It is included from C and from assembly, so the assembler only sees the
 * #defines.
 */
#ifndef LGUEST_H
#define LGUEST_H

/*: G:031 How does a Guest ask the Host for something only the Host may do?
 * It cannot run the privileged instruction itself: it runs in ring 1, and the
 * processor would refuse.  Instead it makes a "hypercall", the Guest's
 * version of a system call: it puts a call number in %eax and up to three
 * arguments in %edx, %ebx and %ecx, then executes "int $0x1F".  The Host has
 * arranged for that trap to come straight back to it; it does the work and
 * puts any answer in %eax before resuming the Guest after the "int". */
#define LGUEST_TRAP_ENTRY	0x1F

/* The hypercall numbers (2.6.23). */
#define LHCALL_FLUSH_ASYNC	0	/* nothing: just run the async ring */
#define LHCALL_LGUEST_INIT	1	/* edx = physical address of lguest_data */
#define LHCALL_CRASH		2	/* edx = physical address of a message */
#define LHCALL_LOAD_GDT		3	/* table (physical), number of entries */
#define LHCALL_NEW_PGTABLE	4	/* physical address of a page directory */
#define LHCALL_FLUSH_TLB	5	/* 0 = user mappings, else everything */
#define LHCALL_LOAD_IDT_ENTRY	6	/* index, low word, high word */
#define LHCALL_SET_STACK	7	/* segment, esp, number of pages */
#define LHCALL_TS		8	/* the value of cr0's TS bit (0 or 8) */
#define LHCALL_SET_CLOCKEVENT	9	/* nanoseconds from now (0 = stop) */
#define LHCALL_HALT		10	/* sleep until an interrupt */
#define LHCALL_BIND_DMA		12	/* key, dma array, (count << 8) | irq */
#define LHCALL_SEND_DMA		13	/* key, struct lguest_dma (physical) */
#define LHCALL_SET_PTE		14	/* page directory, vaddr, pte */
#define LHCALL_SET_PMD		15	/* page directory, index of the entry */
#define LHCALL_LOAD_TLS		16	/* three GDT entries (physical) */

/* The asynchronous hypercall ring has this many slots. */
#define LHCALL_RING_SIZE	64
/* The Host's interrupt numbers fit in one 32-bit word of bits. */
#define LGUEST_IRQS		32
/* The shortest timer delay the Host accepts, in nanoseconds. */
#define LG_CLOCK_MIN_DELTA	100

/* The Guest's interrupts are on when irq_enabled holds the eflags IF bit. */
#define X86_EFLAGS_IF		0x200
/* cr0's "task switched" bit, as handed to LHCALL_TS. */
#define X86_CR0_TS		8

/* Offsets into struct lguest_data, for the assembler. */
#define LGUEST_DATA_irq_enabled	0
#define LGUEST_DATA_cr2		8
#define LGUEST_DATA_size	1128

#ifndef __ASSEMBLER__

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

/* One slot of the asynchronous hypercall ring: the four registers. */
struct hcall_args {
	u32 eax, edx, ebx, ecx;
};

/*: G:032 The Guest and the Host share one structure, "struct lguest_data",
 * which lives in the Guest's memory.  The Guest tells the Host where it is
 * with the very first hypercall, LHCALL_LGUEST_INIT; from then on both
 * sides read and write it with ordinary memory accesses, which is much
 * cheaper than a hypercall.
 *
 * The first three fields carry what a real processor keeps in its own
 * registers: whether interrupts are enabled, which interrupts are masked,
 * and the faulting address of the last page fault. */
struct lguest_data {
	/* 0x200 (the eflags IF bit) when the Guest takes interrupts, 0 when
	 * it does not.  The Guest flips it with a single store: no trap. */
	u32 irq_enabled;
	/* Bit n set: the Host must not deliver interrupt n (irq 0 = timer). */
	u32 blocked_interrupts;
	/* The Host writes the faulting virtual address here before it hands
	 * the Guest a page fault: the Guest cannot read the real %cr2. */
	u32 cr2;
	/* Wall-clock time, written by the Host. */
	struct { u32 tv_sec, tv_nsec; } time;

	/* The asynchronous hypercall ring.  A status of 0xFF means the slot
	 * is free (or done); the Guest fills hcalls[i] and then sets
	 * hcall_status[i] to 0 to say "please run this".  The Guest must
	 * set every status to 0xFF before LHCALL_LGUEST_INIT. */
	u8 hcall_status[LHCALL_RING_SIZE];
	struct hcall_args hcalls[LHCALL_RING_SIZE];

	/* Fields the Host fills in at LHCALL_LGUEST_INIT: */
	u32 reserve_mem;	/* bytes at the top of memory for the Switcher */
	u16 guestid;		/* which Guest we are */
	u32 tsc_khz;		/* how fast the time stamp counter runs */

	/* Fields the Guest fills in before LHCALL_LGUEST_INIT: the Host never
	 * delivers an interrupt while the Guest's eip is in this range (see
	 * the iret sequence in entry.S). */
	u32 noirq_start;
	u32 noirq_end;
};

/* The layout is the ABI: check it against the numbers the Host uses. */
#define LG_CHECK(field, off) \
	_Static_assert(__builtin_offsetof(struct lguest_data, field) == (off), #field)
LG_CHECK(irq_enabled, LGUEST_DATA_irq_enabled);
LG_CHECK(blocked_interrupts, 4);
LG_CHECK(cr2, LGUEST_DATA_cr2);
LG_CHECK(time, 12);
LG_CHECK(hcall_status, 20);
LG_CHECK(hcalls, 84);
LG_CHECK(reserve_mem, 1108);
LG_CHECK(guestid, 1112);
LG_CHECK(tsc_khz, 1116);
LG_CHECK(noirq_start, 1120);
LG_CHECK(noirq_end, 1124);
_Static_assert(sizeof(struct lguest_data) == LGUEST_DATA_size, "lguest_data size");
_Static_assert(sizeof(struct hcall_args) == 16, "hcall ring entry");
#undef LG_CHECK

extern struct lguest_data lguest_data;

/* The hypercall itself: one "int $0x1F".  The "memory" clobber tells the
 * compiler the Host may read or write any memory, so it must not keep
 * values in registers across the call. */
static inline u32 hcall(u32 call, u32 arg1, u32 arg2, u32 arg3)
{
	asm volatile("int $0x1F"
		     : "=a"(call)
		     : "a"(call), "d"(arg1), "b"(arg2), "c"(arg3)
		     : "memory");
	return call;
}

/* A hypercall which may be queued when we are in lazy mode (boot.c). */
void lazy_hcall(u32 call, u32 arg1, u32 arg2, u32 arg3);

#endif /* !__ASSEMBLER__ */
#endif /* LGUEST_H */
