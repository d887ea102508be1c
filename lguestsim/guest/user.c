/*
 * user.c: the user program, the one process our Guest kernel runs.
 *
 * It runs in ring 3 and can reach the kernel only through system calls,
 * but it is written to make the kernel (and the Host under it) work: it
 * asks for its process id two ways (a system call, and its thread-local
 * storage segment), computes something, writes to a heap nobody has mapped
 * yet, uses the FPU once, and prints what it found.  It has no C library,
 * so it carries its own few helpers for turning numbers into text.
 */
#include "user_abi.h"

typedef unsigned int u32;

int syscall3(int nr, int a, int b, int c);

static int write(int fd, const char *buf, u32 len)
{
	return syscall3(__NR_write, fd, (int)buf, (int)len);
}

static int getpid(void)
{
	return syscall3(__NR_getpid, 0, 0, 0);
}

void exit(int code) __attribute__((noreturn));
void exit(int code)
{
	syscall3(__NR_exit, code, 0, 0);
	for (;;)
		;
}

/* A line of output is built in a buffer and sent with one write(). */
struct line {
	char text[120];
	u32 len;
};

static void add(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->text))
		l->text[l->len++] = *s++;
}

static void add_number(struct line *l, u32 v, u32 base)
{
	char digits[12];
	int n = 0;

	if (base == 16)
		add(l, "0x");
	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && l->len < sizeof(l->text))
		l->text[l->len++] = digits[--n];
}

static void add_signed(struct line *l, int v)
{
	if (v < 0) {
		add(l, "-");
		add_number(l, -(u32)v, 10);
	} else {
		add_number(l, v, 10);
	}
}

static void send(struct line *l)
{
	add(l, "\n");
	write(1, l->text, l->len);
	l->len = 0;
}

/* Reading the thread block: %gs must first be loaded with the TLS selector,
 * which user mode may do, since the kernel made that segment a ring 3 one. */
static u32 tls_word(u32 offset)
{
	u32 value;

	asm volatile("movw %w1, %%gs\n\t"
		     "movl %%gs:(%2), %0"
		     : "=r"(value)
		     : "r"(USER_TLS_SEL), "r"(offset));
	return value;
}

/* The FPU: (1 + 2.5) * 4, in single precision.  The constants are the IEEE
 * bit patterns of 2.5 and 4.0.  The first FPU instruction, "fld1", traps to
 * the kernel (see process.c) and then runs again. */
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

int main(void)
{
	volatile u32 *heap = (volatile u32 *)USER_HEAP_START;
	struct line l = { .len = 0 };
	u32 i, sum = 0, check = 0;
	int err;

	add(&l, "user: hello from ring 3");
	send(&l);

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

	add(&l, "user: goodbye");
	send(&l);
	return 0;
}
