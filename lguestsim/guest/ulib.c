/*
 * ulib.c: the user program's system calls and text helpers.
 *
 * Each system call is one call of syscall3() (user.S) with its number from
 * user_abi.h.  The rest turns numbers and addresses into text, and text
 * back into numbers, with nothing but loops: there is no printf here.
 */
#include "ulib.h"

/*: G:342 The program's side of each system call is one call of
 * `syscall3()` (user.S, G:341) with the number from user_abi.h, and pointers
 * passed as plain integers: the kernel checks them (G:321, G:322), not the
 * compiler.  The other wrappers below are the same. */
int read(int fd, void *buf, u32 len)
{
	return syscall3(__NR_read, fd, (int)buf, (int)len);
}

int write(int fd, const void *buf, u32 len)
{
	return syscall3(__NR_write, fd, (int)buf, (int)len);
}

int lseek(int fd, int offset, int whence)
{
	return syscall3(__NR_lseek, fd, offset, whence);
}

int getpid(void)
{
	return syscall3(__NR_getpid, 0, 0, 0);
}

void exit(int code)
{
	syscall3(__NR_exit, code, 0, 0);
	for (;;)
		;
}

int lguest_devices(struct lg_device *table)
{
	return syscall3(__NR_lguest_devices, (int)table, 0, 0);
}

int lguest_net(struct net_peer *peers, u32 max)
{
	return syscall3(__NR_lguest_net, (int)peers, (int)max, 0);
}

int lguest_promisc(int on)
{
	return syscall3(__NR_lguest_promisc, on, 0, 0);
}

int lguest_ping(struct lg_ping *ping)
{
	return syscall3(__NR_lguest_ping, (int)ping, 0, 0);
}

#ifdef CONFIG_VIRTIO
int reboot(void)
{
	return syscall3(__NR_reboot, 0, 0, 0);
}
#endif

u32 strlen(const char *s)
{
	u32 n = 0;

	while (s[n])
		n++;
	return n;
}

int streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* The compiler may call these two by itself (for a structure set to zero,
 * say), so they have these names. */
void *memset(void *dst, int c, u32 n)
{
	u8 *d = dst;

	while (n--)
		*d++ = (u8)c;
	return dst;
}

void *memcpy(void *dst, const void *src, u32 n)
{
	u8 *d = dst;
	const u8 *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}

void add_char(struct line *l, char c)
{
	if (l->len < sizeof(l->text))
		l->text[l->len++] = c;
}

void add(struct line *l, const char *s)
{
	while (*s)
		add_char(l, *s++);
}

void add_number(struct line *l, u32 v, u32 base)
{
	char digits[12];
	int n = 0;

	if (base == 16)
		add(l, "0x");
	do {
		digits[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n)
		add_char(l, digits[--n]);
}

void add_signed(struct line *l, int v)
{
	if (v < 0) {
		add(l, "-");
		add_number(l, -(u32)v, 10);
	} else {
		add_number(l, v, 10);
	}
}

void add_hex(struct line *l, u32 v, u32 digits)
{
	while (digits--)
		add_char(l, "0123456789abcdef"[(v >> (4 * digits)) & 0xF]);
}

void add_mac(struct line *l, const u8 *mac)
{
	int i;

	for (i = 0; i < 6; i++) {
		if (i)
			add_char(l, ':');
		add_hex(l, mac[i], 2);
	}
}

void send(struct line *l)
{
	add_char(l, '\n');
	write(STDOUT_FILENO, l->text, l->len);
	l->len = 0;
}

void say(const char *s)
{
	struct line l = { .len = 0 };

	add(&l, s);
	send(&l);
}

char *next_word(char **p)
{
	char *s = *p, *word;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return 0;
	word = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return word;
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 99;
}

int parse_number(const char *s, u32 *v)
{
	u32 base = 10;
	int d;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return -1;
	for (*v = 0; *s; s++) {
		d = digit_value(*s);
		if (d >= (int)base)
			return -1;
		*v = *v * base + d;
	}
	return 0;
}

int parse_mac(const char *s, u8 mac[6])
{
	int i, hi, lo;

	for (i = 0; i < 6; i++) {
		hi = digit_value(s[0]);
		lo = digit_value(s[1]);
		if (hi > 15 || lo > 15 || s[2] != (i == 5 ? '\0' : ':'))
			return -1;
		mac[i] = (u8)(hi << 4 | lo);
		s += 3;
	}
	return 0;
}
