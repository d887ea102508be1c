/*
 * The core benchmark's compiled workload: ordinary integer code as gcc -O2
 * emits it for a 386-class target, with no libc and no libgcc (so no 64-bit
 * division). bench_core.py builds it freestanding, loads it flat and runs it
 * with paging on.
 *
 * Entry: _start, with eax = the number of rounds and esp set by the harness.
 * Exit:  hlt, with eax = a checksum of everything computed, so two processors
 *        running it can be compared on one number.
 */

typedef unsigned int u32;
typedef unsigned char u8;

__asm__(
	".section .text.start, \"ax\"\n"
	".globl _start\n"
	"_start:\n"
	"	pushl %eax\n"		/* rounds, the argument of main */
	"	call main\n"
	"	addl $4, %esp\n"
	"	hlt\n"			/* eax = main's checksum */
	".previous\n");

#define N_SORT 200
#define N_BUF 1024

static u32 sort_a[N_SORT];
static u32 sort_b[N_SORT];
static u8 buf[N_BUF];
static u32 crc_table[256];
static char str_a[96];
static char str_b[96];

static u32 rng_state;

static u32 rng(void)
{
	/* xorshift32 */
	u32 x = rng_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	rng_state = x;
	return x;
}

static void insertion_sort(u32 *a, int n)
{
	for (int i = 1; i < n; i++) {
		u32 v = a[i];
		int j = i - 1;
		while (j >= 0 && a[j] > v) {
			a[j + 1] = a[j];
			j--;
		}
		a[j + 1] = v;
	}
}

static void quick_sort(u32 *a, int lo, int hi)
{
	while (lo < hi) {
		u32 pivot = a[lo + (hi - lo) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j) {
				u32 t = a[i];
				a[i] = a[j];
				a[j] = t;
				i++;
				j--;
			}
		}
		/* recurse on the smaller half, loop on the larger */
		if (j - lo < hi - i) {
			quick_sort(a, lo, j);
			lo = i;
		} else {
			quick_sort(a, i, hi);
			hi = j;
		}
	}
}

static u32 sorted_sum(const u32 *a, int n)
{
	u32 s = 0;
	for (int i = 0; i < n; i++) {
		if (i && a[i - 1] > a[i])
			s ^= 0xdeadbeef;	/* not sorted: spoil the checksum */
		s = s * 31 + a[i];
	}
	return s;
}

static void crc32_init(void)
{
	for (u32 i = 0; i < 256; i++) {
		u32 c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static u32 crc32(const u8 *p, int n)
{
	u32 c = 0xFFFFFFFFu;
	while (n--)
		c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

static u32 adler32(const u8 *p, int n)
{
	u32 a = 1, b = 0;
	while (n--) {
		a = (a + *p++) % 65521;		/* 32-bit div */
		b = (b + a) % 65521;
	}
	return (b << 16) | a;
}

static int my_strlen(const char *s)
{
	const char *p = s;
	while (*p)
		p++;
	return p - s;
}

static char *my_strcpy(char *d, const char *s)
{
	char *r = d;
	while ((*d++ = *s++))
		;
	return r;
}

static int my_strcmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (u8)*a - (u8)*b;
}

static void my_reverse(char *s)
{
	int i = 0, j = my_strlen(s) - 1;
	while (i < j) {
		char t = s[i];
		s[i++] = s[j];
		s[j--] = t;
	}
}

/* unsigned to text in a base known only at run time: a real 32-bit div */
static char *utoa(u32 v, u32 base, char *out)
{
	char *p = out;
	do {
		*p++ = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	*p = 0;
	my_reverse(out);
	return out;
}

static u32 strings(u32 seed)
{
	static const char words[] = "lguest hypervisor switcher launcher guest host";
	u32 h = 0;
	int len;

	my_strcpy(str_a, words);
	len = my_strlen(str_a);
	utoa(seed, 10 + (seed & 6), str_a + len);
	my_strcpy(str_b, str_a);
	my_reverse(str_b);
	h = h * 33 + my_strlen(str_b);
	h = h * 33 + (u32)my_strcmp(str_a, str_b);
	my_reverse(str_b);
	h = h * 33 + (u32)my_strcmp(str_a, str_b);
	for (const char *p = str_b; *p; p++)
		h = h * 33 + (u8)*p;
	return h;
}

u32 main(u32 rounds)
{
	u32 check = 0;

	rng_state = 2463534242u;
	crc32_init();
	for (u32 r = 0; r < rounds; r++) {
		for (int i = 0; i < N_SORT; i++)
			sort_a[i] = sort_b[i] = rng() % 100000;
		insertion_sort(sort_a, N_SORT / 4);
		check += sorted_sum(sort_a, N_SORT / 4);
		quick_sort(sort_b, 0, N_SORT - 1);
		check ^= sorted_sum(sort_b, N_SORT);

		for (int i = 0; i < N_BUF; i++)
			buf[i] = (u8)(rng() >> 7);
		check = (check << 5 | check >> 27) ^ crc32(buf, N_BUF);
		check += adler32(buf, N_BUF);
		check ^= strings(check);
	}
	return check;
}
