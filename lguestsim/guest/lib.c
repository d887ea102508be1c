/*
 * lib.c: the little C library every kernel carries.
 *
 * A kernel cannot call the C library (there is none underneath it), so it
 * brings its own: copying and clearing memory, string lengths, and printk(),
 * the kernel's printf, which formats into a buffer and sends it to the
 * console.  The compiler may also call memcpy() and memset() on its own, for
 * structure copies, so they must exist.
 */
#include <stdarg.h>

#include "guest.h"

/*: G:403 Copying and clearing memory with the string instructions: one
 * `rep movsb` or `rep stosb` does the whole job.  On a real processor that
 * is merely compact; on lguestsim's interpreted one it matters more, since
 * one instruction with a count is far cheaper to simulate than a loop of
 * loads and stores, each decoded and executed in Python.  `memset()` below
 * is the same with `stosb`. */
void *memcpy(void *dst, const void *src, u32 n)
{
	void *d = dst;

	asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memset(void *dst, int c, u32 n)
{
	void *d = dst;

	asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

u32 strlen(const char *s)
{
	u32 n = 0;

	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

/* Is "word" one of the words of the kernel command line?  The switches the
 * kernel reads there ("nopatch", "noioreserve", "endfirstpiece") ask this. */
int cmdline_has(const char *word)
{
	const char *p = boot_command_line;

	while (*p) {
		const char *w = word;

		while (*p == ' ')
			p++;
		while (*w && *p == *w) {
			p++;
			w++;
		}
		if (!*w && (*p == ' ' || !*p))
			return 1;
		while (*p && *p != ' ')
			p++;
	}
	return 0;
}

/* Formatting goes into a buffer that may not overflow (G:401). */
struct outbuf {
	char *buf;
	u32 len, size;
};

static void put(struct outbuf *out, char c)
{
	if (out->len + 1 < out->size)
		out->buf[out->len++] = c;
}

static void put_number(struct outbuf *out, u32 value, unsigned int base, int negative,
		       unsigned int width, char pad)
{
	char digits[12];
	unsigned int n = 0;

	do {
		digits[n++] = "0123456789abcdef"[value % base];
		value /= base;
	} while (value);
	if (negative)
		digits[n++] = '-';
	while (width > n) {
		put(out, pad);
		width--;
	}
	while (n)
		put(out, digits[--n]);
}

/*: G:401 The formatting engine behind printk() and snprintf().  It
 * understands %d, %u, %x, %s, %c, %p and %%, with an optional "0" flag and
 * a width (as in "%08x"); an "l" is accepted and ignored, because int and
 * long are the same size here.  Anything that does not fit in the caller's
 * buffer is cut off, and the result is always NUL-terminated, so a printk()
 * of a long message is safe, just shortened. */
static u32 vsnprintf(char *buf, u32 size, const char *fmt, va_list args)
{
	struct outbuf out = { buf, 0, size };
	unsigned int width;
	const char *s;
	char pad;
	int v;

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&out, *fmt);
			continue;
		}
		fmt++;
		pad = ' ';
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		for (width = 0; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + (*fmt - '0');
		if (*fmt == 'l')
			fmt++;
		switch (*fmt) {
		case 'd':
			v = va_arg(args, int);
			put_number(&out, v < 0 ? -(u32)v : (u32)v, 10, v < 0, width, pad);
			break;
		case 'u':
			put_number(&out, va_arg(args, u32), 10, 0, width, pad);
			break;
		case 'x':
			put_number(&out, va_arg(args, u32), 16, 0, width, pad);
			break;
		case 'p':
			put(&out, '0');
			put(&out, 'x');
			put_number(&out, (u32)va_arg(args, void *), 16, 0, 8, '0');
			break;
		case 'c':
			put(&out, (char)va_arg(args, int));
			break;
		case 's':
			s = va_arg(args, const char *);
			for (s = s ? s : "(null)"; *s; s++)
				put(&out, *s);
			break;
		case '%':
			put(&out, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			put(&out, '%');
			put(&out, *fmt);
			break;
		}
	}
	buf[out.len] = '\0';
	return out.len;
}

int snprintf(char *buf, u32 size, const char *fmt, ...)
{
	va_list args;
	u32 len;

	va_start(args, fmt);
	len = vsnprintf(buf, size, fmt, args);
	va_end(args);
	return len;
}

/*: G:400 `printk()`, the kernel's printf.  It formats into a buffer on
 * the stack and hands the bytes to console.c, where `console_write()`
 * makes one LHCALL_SEND_DMA per page-sized piece: the Host passes the DMA
 * to the Launcher, which writes it to its standard output.  Nothing needs
 * setting up first, which is why main.c can print from its very first
 * line.  Each printk() costs a trip out to the Host and on to the
 * Launcher, so it is worth a look in the trace. */
int printk(const char *fmt, ...)
{
	char buf[256];
	va_list args;
	u32 len;

	va_start(args, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	console_write(buf, len);
	return len;
}

/*: G:402 Something is wrong beyond repair: say what on the console, then
 * ask the Host to stop us with `pv.crash()` (G:049).  The buffer is static
 * and 128 bytes, as much of the message as the Host reads.  The Host never
 * runs a crashed Guest again, so the halting loop after it is only for a
 * Host that ignored us. */
void panic(const char *fmt, ...)
{
	static char buf[128];
	va_list args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);
	printk("Kernel panic: %s\n", buf);
	pv.crash(buf);
	for (;;)
		pv.safe_halt();
}
