/* Ordinary floating point as gcc compiles it for a 386 with a 387
 * (-m32 -O2 -mfpmath=387 -march=i386): double comparisons (fcom/fucom and
 * fnstsw; sahf), long double, sqrt (fsqrt), conversions both ways (fild,
 * and fistp under a truncating control word: fnstcw/fldcw), a few loops.
 * tests/test_x87_program.py runs it on the core and natively and compares
 * the 64-bit results word for word. */

typedef unsigned long long u64;

static u64 bits(double d)
{
	union { double d; u64 u; } x = { .d = d };
	return x.u;
}

static u64 lbits(long double d)
{
	union { long double d; u64 u[2]; } x;
	x.u[1] = 0;
	x.d = d;
	return x.u[0] ^ (x.u[1] << 48);
}

static int cmp_double(double a, double b)
{
	return (a < b) | (a <= b) << 1 | (a > b) << 2 | (a >= b) << 3 | (a == b) << 4
		| (a != b) << 5;
}

static void sort(double *v, int n)
{
	for (int i = 1; i < n; i++) {
		double x = v[i];
		int j = i - 1;
		while (j >= 0 && v[j] > x) {
			v[j + 1] = v[j];
			j--;
		}
		v[j + 1] = x;
	}
}

void compute(u64 *out, volatile double *inputs)
{
	int k = 0;
	double v[12];
	for (int i = 0; i < 12; i++)
		v[i] = inputs[i];
	/* comparisons, NaN among them */
	for (int i = 0; i < 12; i++)
		out[k++] = cmp_double(v[i], v[(i + 5) % 12]);
	/* sqrt, double and long double */
	for (int i = 0; i < 6; i++) {
		out[k++] = bits(__builtin_sqrt(v[i] * v[i] + 1.0));
		out[k++] = lbits(__builtin_sqrtl((long double)v[i] * v[i] + 2.0L));
	}
	/* conversions: truncation to int and to long long, and back */
	for (int i = 0; i < 10; i++) {
		int n = (int)(v[i] * 1000.0);
		long long ll = (long long)(v[i] * 1e12);
		out[k++] = (u64)(unsigned)n;
		out[k++] = (u64)ll;
		out[k++] = bits((double)n / 7.0);
		out[k++] = bits((double)ll * 0.5);
	}
	/* a series in long double: sum of 1/n^2 */
	long double s = 0;
	for (int n = 1; n <= 200; n++)
		s += 1.0L / ((long double)n * n);
	out[k++] = lbits(s);
	/* Newton's method for a cube root, in double */
	double x = 10.0, a = 2.0;
	for (int i = 0; i < 30; i++)
		x = x - (x * x * x - a) / (3.0 * x * x);
	out[k++] = bits(x);
	/* sort with comparisons (the NaN left out) */
	double w[11];
	for (int i = 0; i < 11; i++)
		w[i] = v[i];
	sort(w, 11);
	for (int i = 0; i < 11; i++)
		out[k++] = bits(w[i]);
	/* float and long double arithmetic */
	float f = 1.0f;
	for (int i = 0; i < 20; i++)
		f = f * 1.1f + (float)v[i % 11];
	out[k++] = bits(f);
	long double p = 1.0L;
	for (int i = 0; i < 40; i++)
		p = p * 1.0001L - v[i % 11] / 3.0L;
	out[k++] = lbits(p);
	out[k] = 0xC0FFEE;
}

#ifdef NATIVE
#include <stdio.h>
int main(void)
{
	static u64 out[200];
	static volatile double in[12];
	for (int i = 0; i < 12; i++)
		scanf("%la", (double *)&in[i]);
	compute(out, in);
	for (int i = 0; i < 200 && out[i] != 0xC0FFEE; i++)
		printf("%016llx\n", out[i]);
	return 0;
}
#else
void _start(void) __attribute__((section(".text.start")));
void _start(void)
{
	compute((u64 *)0x300000, (volatile double *)0x2ff000);
	for (;;)
		__asm__ volatile("hlt");
}
#endif
