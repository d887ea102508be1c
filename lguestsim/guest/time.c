/*
 * time.c: the timer interrupt and waiting for it.
 *
 * The Host gives a Guest one timer: LHCALL_SET_CLOCKEVENT asks for
 * interrupt 0 a number of nanoseconds from now.  Linux builds its whole
 * sense of time on that; we just count the interrupts ("jiffies", Linux's
 * old name for ticks) and show how a kernel waits for one without spinning.
 */
#include "guest.h"

volatile u32 jiffies;

/*: G:039 The timer interrupt.  It arrives as interrupt 0 (vector 32)
 * through an interrupt gate, so it runs with interrupts off, and all it does
 * here is count.  The timer is "one shot": to get another interrupt, the
 * kernel asks again. */
static void timer_interrupt(unsigned int irq)
{
	(void)irq;
	jiffies++;
}

/* The Host starts every Guest with the timer interrupt blocked, so that a
 * tick cannot arrive before the Guest can take it; request_irq() unblocks
 * it (lguest_data.blocked_interrupts, bit 0). */
void time_init(void)
{
	request_irq(0, timer_interrupt);
}

/*: G:040 Idling.  Spinning until jiffies changes would work, but in a
 * Guest it burns the Host's processor for nothing.  So we halt: the
 * LHCALL_HALT hypercall, and the Host does not run us again until an
 * interrupt is due.
 *
 * Checking and then halting leaves a window: if the interrupt came right
 * after the check, we would halt with nothing left to wake us.  A native
 * kernel closes it with "sti; hlt", which the processor treats as one step.
 * lguest's Host closes it the same way: a halted Guest is woken by an
 * interrupt even while its interrupts are off, and they are turned on as it
 * is delivered.  So we check with interrupts off and halt without turning
 * them on. */
void wait_for_tick(void)
{
	u32 seen = jiffies;

	for (;;) {
		pv.irq_disable();
		if (jiffies != seen)
			break;
		pv.safe_halt();
	}
	pv.irq_enable();
}

/*: G:041 Reading the time.  The processor's time stamp counter counts
 * cycles, and the Host told us how fast it runs (lguest_data.tsc_khz): so
 * "rdtsc" is a clock, and reading it is an ordinary instruction, allowed in
 * ring 1, with no trip to the Host.  Linux's lguest Guest uses it the same
 * way.  We keep the low 32 bits, which is plenty for timing things that
 * take less than a second. */
u32 read_tsc(void)
{
	u32 lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	(void)hi;
	return lo;
}

/* Cycles to nanoseconds, in 32-bit arithmetic: whole microseconds first,
 * then the rest. */
u32 tsc_to_ns(u32 cycles)
{
	u32 per_us = lguest_data.tsc_khz / 1000;

	if (!per_us)
		return 0;
	return cycles / per_us * 1000 + cycles % per_us * 1000 / per_us;
}
