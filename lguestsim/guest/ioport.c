/*
 * ioport.c: I/O ports, of which a Guest has none, and why it says so early.
 *
 * A PC's chips answer on I/O ports, and a PC kernel's drivers look for
 * them by reading and writing those ports.  Linux keeps a list of who owns
 * which range (request_region()), and a driver that finds its range taken
 * does not probe.  This file has that list, in miniature, and the probes a
 * PC kernel's old drivers make: the keyboard controller, the serial and
 * parallel ports, the floppy controller and the two IDE channels.  For a
 * Guest each of those port accesses is a trap to the Host (H:130), so the
 * Guest claims every port for itself before any driver can look (boot.c).
 */
#include "guest.h"

#define MAX_REGIONS	8
/* How often a probe reads a busy status before it gives up on the chip. */
#define POLL_LIMIT	256

struct io_region {
	u32 start, end;			/* [start, end) */
	const char *name;
};
static struct io_region regions[MAX_REGIONS];
static unsigned int num_regions;

/* Port reads and writes the probes made, each one a trip to the Host. */
unsigned int ioport_accesses;

/*: D:910 Claiming a range of ports, as Linux's request_region() does: it
 * fails if any port of the range is already someone's, and the caller
 * leaves the chip alone.  (Linux keeps a tree of nested ranges; a short
 * list of disjoint ones is all this kernel needs.) */
int request_region(u32 start, u32 n, const char *name)
{
	unsigned int i;

	for (i = 0; i < num_regions; i++)
		if (start < regions[i].end && regions[i].start < start + n)
			return -EBUSY;
	if (num_regions == MAX_REGIONS)
		return -ENOMEM;
	regions[num_regions].start = start;
	regions[num_regions].end = start + n;
	regions[num_regions].name = name;
	num_regions++;
	return 0;
}

void release_region(u32 start, u32 n)
{
	unsigned int i;

	for (i = 0; i < num_regions; i++) {
		if (regions[i].start == start && regions[i].end == start + n) {
			regions[i] = regions[--num_regions];
			return;
		}
	}
}

static u8 inb(u16 port)
{
	u8 v;

	ioport_accesses++;
	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void outb(u8 v, u16 port)
{
	ioport_accesses++;
	asm volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

/* Read a status port until the bits in "mask" read as "want", at most
 * POLL_LIMIT times; an empty bus reads all ones, so a busy bit never clears. */
static int poll_status(u16 port, u8 mask, u8 want)
{
	unsigned int i;

	for (i = 0; i < POLL_LIMIT; i++)
		if ((inb(port) & mask) == want)
			return 1;
	return 0;
}

/* Each probe claims its ports, looks, and (finding nothing) lets them go. */
static int probe_i8042(void)
{
	/* The keyboard controller: wait for its input buffer to drain
	 * (status bit 1), then ask it to test itself (0xaa). */
	if (!poll_status(0x64, 0x02, 0x00))
		return 0;
	outb(0xaa, 0x64);
	return poll_status(0x64, 0x01, 0x01) && inb(0x60) == 0x55;
}

static int probe_serial(u16 base)
{
	/* A 16550 has a scratch register that keeps what is written. */
	outb(0x5a, base + 7);
	return inb(base + 7) == 0x5a;
}

static int probe_parallel(u16 base)
{
	outb(0xaa, base);
	return inb(base) == 0xaa;
}

static int probe_floppy(void)
{
	/* Wait for the main status register's "ready" (bit 7) with the
	 * data direction "to the controller" (bit 6 clear). */
	return poll_status(0x3f4, 0xc0, 0x80);
}

static int probe_ide(u16 base)
{
	/* Select the master drive and wait for "busy" (bit 7) to clear. */
	outb(0xa0, base + 6);
	return poll_status(base + 7, 0x80, 0x00);
}

struct legacy_chip {
	const char *name;
	u16 port, count;
	int (*probe)(u16 port);
};

static int i8042(u16 port) { (void)port; return probe_i8042(); }
static int floppy(u16 port) { (void)port; return probe_floppy(); }

static const struct legacy_chip chips[] = {
	{ "keyboard", 0x60, 5, i8042 },
	{ "serial", 0x3f8, 8, probe_serial },
	{ "serial", 0x2f8, 8, probe_serial },
	{ "serial", 0x3e8, 8, probe_serial },
	{ "serial", 0x2e8, 8, probe_serial },
	{ "parport", 0x378, 3, probe_parallel },
	{ "floppy", 0x3f0, 8, floppy },
	{ "ide0", 0x1f0, 8, probe_ide },
	{ "ide1", 0x170, 8, probe_ide },
};

/*: D:915 The legacy drivers' probes, run once the lguest devices are found,
 * where a PC kernel's driver initcalls would run.  Each asks for its ports
 * first.  On lguest the answer is no: lguest_init() claimed every port,
 * 0 to 0xffff, for "lguest" (boot.c), and no probe touches a port.  With
 * the word "noioreserve" on the command line the ports are left free and
 * the probes run, each read and write a general protection fault that the
 * Host decodes and answers as an empty bus would, all ones (H:130); a
 * probe that waits for a busy bit to clear waits its whole limit.  lguest's
 * Guest took 4.1 seconds to boot before it reserved the ports and 0.45
 * after; bench_figures.py boots ours both ways. */
void probe_legacy_devices(void)
{
	unsigned int i, found = 0;

	for (i = 0; i < sizeof(chips) / sizeof(chips[0]); i++) {
		const struct legacy_chip *c = &chips[i];

		if (request_region(c->port, c->count, c->name) != 0)
			continue;
		if (c->probe(c->port))
			found++;
		release_region(c->port, c->count);
	}
	if (ioport_accesses)
		printk("legacy probes: %u port accesses, each trapped to the Host; "
		       "%u chips answered\n", ioport_accesses, found);
}
