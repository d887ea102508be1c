/*
 * user.c: the user program, the one process our Guest kernel runs.
 *
 * It runs in ring 3 and can reach the kernel only through system calls,
 * but it is written to make the kernel (and the Host under it) work: it
 * asks for its process id two ways (a system call, and its thread-local
 * storage segment), computes something, writes to a heap nobody has mapped
 * yet, uses the FPU once, and prints what it found.  Then the devices: with
 * "shell" among its arguments (the kernel command line) it reads commands
 * from the console until told to quit (shell.c); without, it shows the disk
 * and the network if it has any, and exits.  Its helpers for system calls
 * and text are in ulib.c.
 */
#include "ulib.h"

/*: G:351 Reading the thread block.  %gs must first be loaded with the
 * TLS selector, which user mode may do because the kernel made entry 6 a
 * ring 3 data segment.  Loading it makes the processor read that entry of
 * the GDT, which is the Host's copy with our TLS entries in it: if the
 * Host had not taken LHCALL_LOAD_TLS, this would fault. */
static u32 tls_word(u32 offset)
{
	u32 value;

	asm volatile("movw %w1, %%gs\n\t"
		     "movl %%gs:(%2), %0"
		     : "=r"(value)
		     : "r"(USER_TLS_SEL), "r"(offset));
	return value;
}

/*: G:352 The FPU: (1 + 2.5) * 4 in single precision, with the IEEE bit
 * patterns of 2.5 and 4.0 as the constants.  The first FPU instruction,
 * `fld1`, traps with "device not available" because the kernel set TS; the
 * kernel clears it (G:330) and `fld1` runs again, and the program never
 * knows. */
static u32 fpu_sum(void)
{
	static const u32 two_and_a_half = 0x40200000, four = 0x40800000;
	u32 result;

	asm volatile("fld1\n\t"
		     "fadds %1\n\t"
		     "fmuls %2\n\t"
		     "fstps %0"
		     : "=m"(result)
		     : "m"(two_and_a_half), "m"(four));
	return result;
}

/* The integer part of a positive single-precision float, without the FPU. */
static u32 float_to_u32(u32 bits)
{
	int exponent = (int)((bits >> 23) & 0xFF) - 127;
	u32 mantissa = (bits & 0x7FFFFF) | 0x800000;

	if (exponent < 0)
		return 0;
	if (exponent > 23)
		return mantissa << (exponent - 23);
	return mantissa >> (23 - exponent);
}

/*: G:350 The user program, written to make the kernel and the Host
 * underneath it work.  It prints its arguments, asks for its process id in
 * two ways (a system call, and its TLS block), computes a sum, then writes
 * to three heap pages nobody has mapped (three page faults) and reads a
 * fourth (one more).  It writes from the heap, which makes the kernel walk
 * its page tables, and tries to write from kernel memory, which the kernel
 * refuses.  Then one FPU calculation, and the devices: a shell with "shell"
 * on the kernel command line, otherwise a short show. */
int main(int argc, char **argv)
{
	volatile u32 *heap = (volatile u32 *)USER_HEAP_START;
	struct line l = { .len = 0 };
	u32 i, sum = 0, check = 0;
	int err, interactive = 0;

	add(&l, "user: hello from ring 3");
	send(&l);

	/* Our arguments: the words of the kernel command line. */
	if (argc > 1) {
		add(&l, "user: my arguments:");
		for (i = 1; i < (u32)argc; i++) {
			add(&l, " ");
			add(&l, argv[i]);
			if (streq(argv[i], "shell"))
				interactive = 1;
		}
		send(&l);
	}

	add(&l, "user: getpid() = ");
	add_signed(&l, getpid());
	add(&l, ", pid in my TLS block = ");
	add_number(&l, tls_word(USER_TLS_PID), 10);
	add(&l, " (block at ");
	add_number(&l, tls_word(USER_TLS_SELF), 16);
	add(&l, ")");
	send(&l);

	for (i = 1; i <= 100; i++)
		sum += i * i;
	add(&l, "user: 1*1 + 2*2 + ... + 100*100 = ");
	add_number(&l, sum, 10);
	send(&l);

	/* Three pages of heap, each touched for the first time by a write:
	 * three page faults for the kernel to fix.  The checksum then reads
	 * the first and last word of four pages, and the third page, never
	 * written, faults on that read and turns out to be zeros. */
	heap[0] = 0xC0FFEE;
	heap[1024] = sum;
	heap[3 * 1024 + 1023] = 0x5EED;
	for (i = 0; i < 4 * 1024; i += 1024)
		check += heap[i] + heap[i + 1023];
	add(&l, "user: heap words ");
	add_number(&l, heap[0], 16);
	add(&l, " ");
	add_number(&l, heap[1024], 10);
	add(&l, " ");
	add_number(&l, heap[3 * 1024 + 1023], 16);
	add(&l, ", checksum ");
	add_number(&l, check, 16);
	send(&l);

	/* Writing from the heap works too: the kernel walks our page tables. */
	heap[8] = 0x70616568;	/* "heap" */
	heap[9] = 0x0a6b6f20;	/* " ok\n" */
	write(1, (const char *)&heap[8], 8);

	/* A pointer into the kernel is refused. */
	err = write(1, (const char *)0xC0100000, 16);
	add(&l, "user: write() of kernel memory returned ");
	add_signed(&l, err);
	send(&l);

	i = fpu_sum();
	add(&l, "user: fpu: (1 + 2.5) * 4 = ");
	add_number(&l, float_to_u32(i), 10);
	add(&l, " (bits ");
	add_number(&l, i, 16);
	add(&l, ")");
	send(&l);

	/* The devices: commands typed on the console, or a short show of
	 * what there is (shell.c). */
	if (interactive)
		shell();
	else
		device_demo();

	add(&l, "user: goodbye");
	send(&l);
	return 0;
}
