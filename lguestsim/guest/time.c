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

/*: G:130 The timer interrupt.  When the deadline the kernel asked for
 * with `pv.set_next_event()` passes, the Host raises interrupt 0, which
 * arrives at vector 32 through one of the interrupt gates traps.c loaded,
 * so the handler runs with `irq_enabled` at 0.  All it does here is count:
 * `jiffies`, Linux's old word for ticks.  The timer is one-shot, so there is
 * no next tick unless someone asks for one (main.c does, three times). */
static void timer_interrupt(unsigned int irq)
{
	(void)irq;
	jiffies++;
}

/*: G:131 Installing the handler.  Our `lguest_data` starts with the timer
 * blocked (bit 0 of `blocked_interrupts`, set in boot.c), so a tick cannot
 * arrive before there is code to take it.  `request_irq()` (traps.c) records
 * the handler and then unmasks the line; main.c calls this just before it
 * turns interrupts on. */
void time_init(void)
{
	request_irq(0, timer_interrupt);
}

/*: G:132 Waiting for a tick.  Spinning until `jiffies` changes would
 * work, but in a Guest every spin is the Host's processor wasted, so we
 * halt: `pv.safe_halt()` makes LHCALL_HALT, and the Host does not run us
 * again until an interrupt is due.
 *
 * Looking and then halting leaves a race: with interrupts on, a tick could
 * come (and be counted) just after the look, and we would then halt with
 * nothing left to wake us.  On bare metal `sti; hlt` closes it, because the processor
 * takes no interrupt until after the `hlt`.  The lguest Host gives the same
 * promise another way: it wakes a halted Guest with an interrupt even if
 * `irq_enabled` is 0, and turns interrupts on as it delivers it.  So we look
 * with interrupts off and halt without turning them on. */
void wait_for_tick(void)
{
	u32 seen = jiffies;

	for (;;) {
		irq_disable();
		if (jiffies != seen)
			break;
		pv.safe_halt();
	}
	irq_enable();
}

/*: G:133 Reading the time.  The processor's time stamp counter counts
 * cycles, and the Host told us at LHCALL_LGUEST_INIT how fast it runs
 * (`lguest_data.tsc_khz`), so `rdtsc` is a clock.  It is an ordinary
 * instruction, allowed in ring 1, so reading the time needs no trip to the
 * Host; Linux's lguest Guest uses the TSC the same way when the Host says
 * it is usable.  In lguestsim the counter is the simulated processor's
 * cycle count.  We keep the low 32 bits, plenty for timing anything under
 * a second, such as net.c's ping round trips. */
u32 read_tsc(void)
{
	u32 lo, hi;

	asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
	(void)hi;
	return lo;
}

/*: G:134 Cycles to nanoseconds, without 64-bit division (which gcc would
 * want a helper library for).  `tsc_khz / 1000` is cycles per microsecond;
 * the whole microseconds are multiplied up first and the leftover cycles
 * scaled separately.  The first product is never bigger than the answer and
 * the second is less than `tsc_khz`, so nothing overflows unless the answer
 * itself would.  A Host that reported no usable TSC (0 kHz) gets 0. */
u32 tsc_to_ns(u32 cycles)
{
	u32 per_us = lguest_data.tsc_khz / 1000;

	if (!per_us)
		return 0;
	return cycles / per_us * 1000 + cycles % per_us * 1000 / per_us;
}
