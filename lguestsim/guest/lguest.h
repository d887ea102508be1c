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

/*: G:031 How does a Guest ask for something only the Host may do?  Not
 * with the privileged instruction: in ring 1 the processor refuses it.
 * Instead it makes a "hypercall", the Guest's version of a system call: a
 * call number in %eax, up to three arguments in %edx, %ebx and %ecx, and
 * then `int $0x1F`.  The Host has set things up so that this trap always
 * comes back to it, through the Switcher; it does the work, puts any answer
 * in %eax, and resumes the Guest just after the `int` (in lguestsim you can
 * watch every instruction of that round trip).  Below are the calls of
 * Linux 2.6.23's lguest, which ours keeps number for number; the
 * one-instruction `hcall()` at the end of this file makes them (G:039). */
#define LGUEST_TRAP_ENTRY	0x1F
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
#ifdef CONFIG_VIRTIO
/* What 2.6.25 changed: no DMA (12 and 13 are gone), call 2 became SHUTDOWN
 * with a second argument, and NOTIFY tells the Launcher to look at an
 * address (a virtqueue, a device descriptor, an early console string). */
#define LHCALL_SHUTDOWN		2	/* message (physical), POWEROFF or RESTART */
#define LHCALL_NOTIFY		17	/* Guest-physical address for the Launcher */
#define LGUEST_SHUTDOWN_POWEROFF	1
#define LGUEST_SHUTDOWN_RESTART		2
#endif

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
#ifdef CONFIG_VIRTIO
#define LGUEST_DATA_pgdir	1116
#define LGUEST_DATA_size	1136
#else
#define LGUEST_DATA_size	1128
#endif

#ifndef __ASSEMBLER__

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

/* One slot of the asynchronous hypercall ring: the four registers. */
struct hcall_args {
	u32 eax, edx, ebx, ecx;
};

/*: G:032 The Guest and the Host share one structure, `struct lguest_data`,
 * in the Guest's memory.  The very first hypercall, LHCALL_LGUEST_INIT,
 * tells the Host where it is; from then on both sides simply read and write
 * it, which costs nothing like a hypercall.  The first fields stand in for
 * processor state the Guest cannot reach: whether interrupts are enabled,
 * which are masked, and the address of the last page fault.  Then come the
 * asynchronous hypercall ring (G:037), what the Host tells the Guest at
 * LHCALL_LGUEST_INIT, and the range of addresses where the Host must never
 * interrupt.  The layout is part of the ABI, byte for byte: the
 * `_Static_assert`s below hold it to the offsets lguestsim's Python Host
 * uses. */
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
#ifndef CONFIG_VIRTIO
	u16 guestid;		/* which Guest we are */
#endif
	u32 tsc_khz;		/* how fast the time stamp counter runs */
#ifdef CONFIG_VIRTIO
	u32 pgdir;		/* 2.6.25: the page directory we were started with */
#endif

	/* Fields the Guest fills in before LHCALL_LGUEST_INIT: the Host never
	 * delivers an interrupt while the Guest's eip is in this range (see
	 * the iret sequence in entry.S). */
	u32 noirq_start;
	u32 noirq_end;
#ifdef CONFIG_VIRTIO
	/* 2.6.25: where the kernel's own mappings start (the Host needs it for
	 * its shadow page tables, and the Launcher no longer says), and the
	 * vector our system calls use. */
	u32 kernel_address;
	u32 syscall_vec;
#endif
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
#ifdef CONFIG_VIRTIO
LG_CHECK(tsc_khz, 1112);
LG_CHECK(pgdir, LGUEST_DATA_pgdir);
LG_CHECK(kernel_address, 1128);
LG_CHECK(syscall_vec, 1132);
#else
LG_CHECK(guestid, 1112);
LG_CHECK(tsc_khz, 1116);
#endif
LG_CHECK(noirq_start, 1120);
LG_CHECK(noirq_end, 1124);
_Static_assert(sizeof(struct lguest_data) == LGUEST_DATA_size, "lguest_data size");
_Static_assert(sizeof(struct hcall_args) == 16, "hcall ring entry");
#undef LG_CHECK

extern struct lguest_data lguest_data;

/*: G:039 The hypercall itself: one `int $0x1F`, with the call number and
 * arguments pinned to the registers the Host reads, and the answer taken
 * from %eax.  The "memory" clobber matters as much as the instruction: it
 * tells the compiler that the Host may read or write any of our memory
 * during the call (the `lguest_data` ring, a page table, a DMA buffer), so
 * it must finish every store before the `int` and trust no value cached in
 * a register afterwards.  Every op that cannot wait ends here, and so does
 * a lazy one outside lazy mode (G:036). */
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
