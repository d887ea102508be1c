/*
 * main.c: start_kernel(), the whole life of the Guest in one function.
 *
 * lguest_init() (boot.c) has filled in the paravirt ops; from here on the
 * kernel does what any kernel does, and only those ops know it is a Guest.
 * Read this function first: each line names the file where the next part
 * of the story is told.
 */
#include "guest.h"
#ifdef CONFIG_VIRTIO
#include "virtio.h"
#endif

/* The timer demonstration: ask for an interrupt this far ahead, this many
 * times, halting in between. */
#define TICK_NS		1000000		/* one millisecond, as with HZ=1000 */
#define DEMO_TICKS	3

/*: G:080 `start_kernel()`, the whole life of the Guest in one function.
 * By now `lguest_init()` has filled in the `pv` ops, and nothing below
 * knows it runs on lguest except through them.  It reads like the outline
 * of any kernel's boot: memory, segments and traps, page tables, devices,
 * the clock, the first process.  Each step names the file where its
 * passages are; the G:1xx passages follow traps, G:2xx memory, G:3xx the
 * process.  When the program exits, the Guest powers off through
 * LHCALL_CRASH, which is also how the Launcher learns it is over. */
void start_kernel(void)
{
	unsigned int i;
	int code;

	/* printk() works from the very start: console output is a single
	 * DMA hypercall, which needs no set-up (console.c). */
	printk("lguestsim teaching Guest: running on %s, in ring %u\n",
	       pv.name, (unsigned int)GUEST_PL);
#ifdef CONFIG_VIRTIO
	printk("Host: lguest 2.6.25 (virtio), Switcher reserves the top %u KiB, TSC at %u kHz\n",
	       lguest_data.reserve_mem / 1024, lguest_data.tsc_khz);
#else
	printk("Host: guest id %u, Switcher reserves the top %u KiB, TSC at %u kHz\n",
	       lguest_data.guestid, lguest_data.reserve_mem / 1024, lguest_data.tsc_khz);
#endif
	printk("Kernel command line: %s\n", boot_command_line);

	/* How much memory we have, from the boot header (mm.c). */
	setup_memory();

	/* Our own segments, our own kernel stack, our own interrupt table
	 * (traps.c): after this, traps and interrupts reach our code. */
	cpu_init();
	trap_init();

	/* Our own page tables, replacing the Launcher's (mm.c). */
	paging_init();

	/* Devices: find them in the page above our memory, and start a
	 * driver for each (lguest_bus.c; console.c, block.c, net.c). */
#ifdef CONFIG_VIRTIO
	lguest_devices_init();
#else
	lguest_bus_init();
#endif

	/* The drivers a PC kernel also starts, for the chips every PC has:
	 * they find their I/O ports taken and leave them be (ioport.c). */
	probe_legacy_devices();

	/* Time: let the timer interrupt through and turn interrupts on.
	 * Then ask for a few timer interrupts, halting while we wait
	 * (time.c). */
	time_init();
	irq_enable();
	for (i = 0; i < DEMO_TICKS; i++) {
		pv.set_next_event(TICK_NS);
		wait_for_tick();
		printk("timer: tick %u (asked for an interrupt in %u ns, then halted)\n",
		       jiffies, (unsigned int)TICK_NS);
	}

	/* User mode: build a process and run it until it exits
	 * (process.c). */
	code = run_init_process();
	printk("init exited with code %d\n", code);

	/* That is the whole Guest.  A real kernel would now run processes
	 * forever; ours lets its devices know (lguest_bus.c), says goodbye and
	 * asks the Host to turn it off.  The Host stops running us and tells
	 * the Launcher why. */
#ifdef CONFIG_VIRTIO
	lguest_devices_shutdown();
#else
	lguest_bus_shutdown();
#endif
	printk("Goodbye from the Guest: powering off.\n");
	pv.power_off();
	panic("the Host did not power us off");
}
