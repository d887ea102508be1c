/*
 * lguest_bus.c: finding the devices the Launcher gives us.
 *
 * There is no PCI bus in a Guest.  The Launcher lists the devices in a
 * page of "struct lguest_device_desc"s just above the top of our RAM, and
 * each device type has a driver here that knows how to use it.  The bus
 * code connects the two and keeps the descriptors' status bits up to date,
 * so the Launcher can see how far each device got.  Drivers talk to their
 * devices with the DMA hypercalls at the bottom.
 */
#include "guest.h"
#include "lguest_launcher.h"

/* The descriptors (mapped by lguest_bus_init()), one lguest_device for each
 * slot, and the drivers this kernel has, one per device type. */
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

/*: D:130 A driver matches a device when it handles the device's type. */
static struct lguest_driver *find_driver(const struct lguest_device_desc *desc)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(drivers); i++)
		if (drivers[i]->device_type == desc->type)
			return drivers[i];
	return NULL;
}

/*: D:140 A device has met its driver.  We say so in the status bits
 * before the driver starts (DRIVER), and once its probe function is happy
 * we add DRIVER_OK: all green, as far as the Launcher can tell.  A driver
 * that fails leaves DRIVER without DRIVER_OK, and says why on the
 * console. */
static void lguest_dev_probe(struct lguest_device *dev, struct lguest_driver *drv)
{
	dev->desc->status |= LGUEST_DEVICE_S_DRIVER;
	if (drv->probe(dev) == 0)
		dev->desc->status |= LGUEST_DEVICE_S_DRIVER_OK;
}

/*: D:120 Adding one device.  The first thing we do is mark the descriptor
 * ACKNOWLEDGE: whatever happens next, the Launcher can see that we saw it.
 * Linux then allocates a "struct lguest_device" and registers it with the
 * driver core, and marks the descriptor FAILED if either goes wrong; ours
 * live in a table with a place for every descriptor, so here nothing can.
 * Then the device looks for its driver. */
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

/*: D:110 Scanning is walking the array: type 0 means an empty slot. */
static void scan_devices(void)
{
	unsigned int i;

	for (i = 0; i < LGUEST_MAX_DEVICES; i++)
		if (lguest_devices[i].type)
			add_lguest_device(i);
}

/*: D:100 The descriptors are in the page just above our RAM, which is not
 * part of the memory we mapped in paging_init(), so we map that one page
 * first (mm.c). */
void lguest_bus_init(void)
{
	lguest_devices = map_device_pages(ram_size >> PAGE_SHIFT, 1);
	scan_devices();
}

/* Before we power off, each driver that cares is told (a network driver
 * leaves the network, so no one sends to a Guest that is gone). */
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

/* Sending: the Host copies the buffers listed in *dma to whoever has
 * buffers bound to "key" (another Guest, or the Launcher, who serves our
 * devices) and writes how much it copied into used_len.  If no one took it,
 * used_len stays 0. */
void lguest_send_dma(u32 key, struct lguest_dma *dma)
{
	dma->used_len = 0;
	hcall(LHCALL_SEND_DMA, key, __pa(dma), 0);
}

/* Receiving: we bind an array of "num" buffers to a key and name the
 * interrupt we want when something arrives in one of them.  The Host
 * answers 1 if it took them (it keeps at most 32 arrays per Guest). */
int lguest_bind_dma(u32 key, struct lguest_dma *dmas, unsigned int num, u8 irq)
{
	return hcall(LHCALL_BIND_DMA, key, __pa(dmas), (num << 8) | irq) == 1 ? 0 : -ENOMEM;
}

/* And letting go: the same hypercall with interrupt 0. */
void lguest_unbind_dma(u32 key, struct lguest_dma *dmas)
{
	hcall(LHCALL_BIND_DMA, key, __pa(dmas), 0);
}
