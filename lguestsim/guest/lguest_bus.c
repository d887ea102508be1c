/*
 * lguest_bus.c: finding the devices the Launcher gives us.
 *
 * There is no PCI bus in a Guest.  The Launcher lists the devices in a
 * page of "struct lguest_device_desc"s just above the top of our RAM, and
 * each device type has a driver here that knows how to use it.  The bus
 * code connects the two and keeps the descriptors' status bits up to date,
 * so the Launcher can see how far each device got.  Drivers talk to their
 * devices with the two DMA hypercalls at the bottom.
 */
#include "guest.h"
#include "lguest_launcher.h"

/* The descriptors, and the drivers we have (just the console, for now). */
static struct lguest_device_desc *lguest_devices;
static struct lguest_device devices[LGUEST_MAX_DEVICES];
static struct lguest_driver *const drivers[] = { &console_driver };

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

/*: D:120 Adding one device.  We mark the descriptor as we go: ACKNOWLEDGE
 * once we have seen it, DRIVER once a driver has it, and DRIVER_OK once the
 * driver's probe function is happy (or FAILED if it is not).  The Launcher
 * can read those bits even when the console is the device that failed. */
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
	if (!drv)
		return;
	desc->status |= LGUEST_DEVICE_S_DRIVER;
	if (drv->probe(dev) == 0)
		desc->status |= LGUEST_DEVICE_S_DRIVER_OK;
	else
		desc->status |= LGUEST_DEVICE_S_FAILED;
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
	lguest_devices = map_device_page(ram_size >> PAGE_SHIFT);
	scan_devices();
}

/* Sending: the Host copies the buffers listed in *dma to whoever has
 * buffers bound to "key" (another Guest, or the Launcher, who serves our
 * devices) and writes how much it copied into used_len. */
void lguest_send_dma(u32 key, struct lguest_dma *dma)
{
	dma->used_len = 0;
	hcall(LHCALL_SEND_DMA, key, __pa(dma), 0);
}

/* Receiving: we bind an array of "num" buffers to a key and name the
 * interrupt we want when something arrives in one of them.  The Host
 * answers 1 if it took them. */
int lguest_bind_dma(u32 key, struct lguest_dma *dmas, unsigned int num, u8 irq)
{
	return hcall(LHCALL_BIND_DMA, key, __pa(dmas), (num << 8) | irq) == 1 ? 0 : -1;
}
