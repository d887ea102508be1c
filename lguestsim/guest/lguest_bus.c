/*: P:050 How a Guest finds its devices (lguest_bus.c).
 *
 * There is no PCI bus in a Guest, and no hardware to probe.  The Launcher
 * simply writes a list of devices into one page just above the top of the
 * Guest's RAM, one "struct lguest_device_desc" per device (D:010), and
 * each kind of device has a driver in the Guest that knows how to use it.
 * This file is the glue: it maps that page, walks the list, matches each
 * device with a driver, and records in each descriptor's status bits how
 * far the device got, so the Launcher can see what went wrong even when
 * the console is the thing that failed.  At the bottom are the DMA
 * hypercalls, the only way any driver talks to its device.  In Linux most
 * of this file was sysfs and driver-core boilerplate; ours is the part
 * that is left when that is taken away.
 */

#include "guest.h"
#include "lguest_launcher.h"

/*: D:095 The bus's state.  lguest_devices points at the descriptor page
 * once lguest_bus_init() has mapped it; devices[] has one "struct
 * lguest_device" for each of its 16 slots, so adding a device never has to
 * allocate anything; and drivers[] lists every driver this kernel has, one
 * per device type.  Linux builds that list at boot as each driver registers
 * itself; ours is fixed when the kernel is compiled. */
struct lguest_device_desc *lguest_devices;
static struct lguest_device devices[LGUEST_MAX_DEVICES];
static struct lguest_driver *const drivers[] = { &console_driver, &block_driver, &net_driver };

static const char *device_type_name(u16 type)
{
	switch (type) {
	case LGUEST_DEVICE_T_CONSOLE:
		return "console";
	case LGUEST_DEVICE_T_NET:
		return "network";
	case LGUEST_DEVICE_T_BLOCK:
		return "block";
	}
	return "unknown";
}

/*: D:130 Matching a device with a driver is as simple as it can be: each
 * driver names the one device type it handles, and the device's type is in
 * its descriptor, so we look down the table for the first driver whose type
 * is the same.  In Linux this is the bus's "match" function, which the
 * driver core calls for each pairing of device and driver it considers;
 * here add_lguest_device() calls it once per device.  A device type no
 * driver claims (the Launcher could add a new kind) finds nothing, and stays
 * acknowledged but driverless. */
static struct lguest_driver *find_driver(const struct lguest_device_desc *desc)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(drivers); i++)
		if (drivers[i]->device_type == desc->type)
			return drivers[i];
	return NULL;
}

/*: D:140 A device has met its driver.  Before the driver touches the
 * device we add DRIVER to the descriptor's status bits; if the driver's
 * probe function then returns 0 we add DRIVER_OK, and as far as the
 * Launcher can tell, that device is working.  A driver that fails leaves
 * DRIVER without DRIVER_OK, which is how the Launcher (and the "devices"
 * command of our shell, which reads the same bits) can tell "no driver"
 * from "the driver gave up".  In Linux the driver core makes this call,
 * whichever of the device and the driver registered last; with our fixed
 * table it always comes straight from add_lguest_device(). */
static void lguest_dev_probe(struct lguest_device *dev, struct lguest_driver *drv)
{
	dev->desc->status |= LGUEST_DEVICE_S_DRIVER;
	if (drv->probe(dev) == 0)
		dev->desc->status |= LGUEST_DEVICE_S_DRIVER_OK;
}

/*: D:120 Adding one device is the heart of the bus.  The very first thing
 * it does is set ACKNOWLEDGE in the descriptor: whatever happens after
 * that, the Launcher can see that the Guest noticed the device.  Linux then
 * allocates a "struct lguest_device" and registers it with the driver core,
 * marking the descriptor FAILED if either step goes wrong; ours come from a
 * table with a place for each slot, so neither can.  Then we look for the
 * device's driver, say what we found on the console (these are the "lguest
 * bus:" lines of the boot log) and, if there is a driver, probe. */
static void add_lguest_device(unsigned int index)
{
	struct lguest_device_desc *desc = &lguest_devices[index];
	struct lguest_device *dev = &devices[index];
	struct lguest_driver *drv;

	desc->status |= LGUEST_DEVICE_S_ACKNOWLEDGE;
	dev->index = index;
	dev->desc = desc;

	drv = find_driver(desc);
	printk("lguest bus: device %u is a %s device, irq %u, driver %s\n", index,
	       device_type_name(desc->type), lgdev_irq(dev), drv ? drv->name : "(none)");
	if (drv)
		lguest_dev_probe(dev, drv);
}

/*: D:110 Scanning the bus is walking the array.  Type 0 means an empty
 * slot; anything else is a device to add, in index order.  The Launcher
 * puts the devices of its command line first and the console last, so the
 * console's interrupt number depends on how many disks and networks came
 * before it.  There is no hotplug: the list is read once at boot and never
 * again. */
static void scan_devices(void)
{
	unsigned int i;

	for (i = 0; i < LGUEST_MAX_DEVICES; i++)
		if (lguest_devices[i].type)
			add_lguest_device(i);
}

/*: D:100 start_kernel() (main.c) calls this once paging_init() has given
 * us our own page tables and before the timer starts.  The descriptor page
 * is the page just above our RAM, page number ram_size >> PAGE_SHIFT, and
 * it is not RAM: paging_init() mapped only our memory, so we map this one
 * page first with map_device_pages() (mm.c), which tells the Host about the
 * new page table entry (SET_PTE).  Linux's lguest_bus_init() first
 * checks that it is running under lguest at all, since the same kernel
 * boots on bare metal; ours is never anything but a Guest.  Then we scan. */
void lguest_bus_init(void)
{
	lguest_devices = map_device_pages(ram_size >> PAGE_SHIFT, 1);
	scan_devices();
}

/*: D:150 The bus's last job, which Linux's lguest bus never had: just
 * before start_kernel() powers off, every device whose driver came up
 * (DRIVER_OK) and that has a shutdown function is told.  Only the network
 * driver has one: it clears its slot in the shared network page and
 * unbinds its receive buffers, so the other Guests stop sending to a
 * machine that is about to vanish.  The console and the disks have nothing
 * to undo, because the Host forgets all of a dead Guest's bindings anyway. */
void lguest_bus_shutdown(void)
{
	unsigned int i;
	struct lguest_driver *drv;

	for (i = 0; i < LGUEST_MAX_DEVICES; i++) {
		if (!(lguest_devices[i].status & LGUEST_DEVICE_S_DRIVER_OK))
			continue;
		drv = find_driver(&lguest_devices[i]);
		if (drv && drv->shutdown)
			drv->shutdown(&devices[i]);
	}
}

/*: D:210 Sending, the first of the two I/O hypercalls (D:200).  We hand
 * the Host a key and the physical address of a "struct lguest_dma"; it
 * copies the listed pieces into a buffer someone bound at that key (another
 * Guest's), or, if the key is in our private memory, stops running us and
 * lets our Launcher's read() of /dev/lguest pick the DMA up.  Either way the
 * Host writes the number of bytes that went across into used_len, which is
 * why we clear it first: if nobody took the data, used_len stays 0.  The
 * hypercall is synchronous, so the DMA can live on the caller's stack. */
void lguest_send_dma(u32 key, struct lguest_dma *dma)
{
	dma->used_len = 0;
	hcall(LHCALL_SEND_DMA, key, __pa(dma), 0);
}

/*: D:220 Receiving: we offer an array of "num" receive buffers at a key,
 * and name the interrupt we want when the Host fills one.  The number and
 * the interrupt share one argument, (num << 8) | irq, since a hypercall
 * only has three.  The Host answers 1 if it took the array; it refuses
 * once a Guest has LGUEST_MAX_DMA (32) arrays bound, or an interrupt
 * number it has no bit for.  The buffers then belong to the Host whenever
 * their used_len is 0, so a driver fills in a buffer's sections before it
 * clears used_len, and never the other way round. */
int lguest_bind_dma(u32 key, struct lguest_dma *dmas, unsigned int num, u8 irq)
{
	return hcall(LHCALL_BIND_DMA, key, __pa(dmas), (num << 8) | irq) == 1 ? 0 : -ENOMEM;
}

/*: D:230 Unbinding is the same hypercall with interrupt 0, which no
 * device uses (the timer has it).  The Host finds the array by its key and
 * address and forgets it. */
void lguest_unbind_dma(u32 key, struct lguest_dma *dmas)
{
	hcall(LHCALL_BIND_DMA, key, __pa(dmas), 0);
}
