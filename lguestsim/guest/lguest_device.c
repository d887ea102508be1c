/*
 * lguest_device.c: lguest's virtio glue (Linux 2.6.25's
 * drivers/lguest/lguest_device.c), only in guest-virtio.elf.
 *
 * 2.6.23's lguest_bus.c found devices and gave drivers DMA; its 2.6.25
 * successor finds devices and gives drivers virtqueues.  It walks the
 * device page, sets the status bits as each driver gets going, maps each
 * virtqueue's ring and routes its interrupt, and turns a driver's "kick"
 * into LHCALL_NOTIFY.
 */

/*: P:051 What 2.6.25 changed in the Drivers chapter: lguest stopped having
 * drivers of its own.  The Guest's console, disk and network card are
 * virtio devices, described on the page just above the Guest's memory, and
 * every piece of I/O is a buffer put in a shared ring followed by one
 * hypercall, NOTIFY, that tells the Launcher where to look.  The Host no
 * longer copies anything: it passes the address up, and the Launcher, which
 * can read the Guest's memory, does the work. */
#include "virtio.h"

#define MAX_VQS		8

static struct lguest_device_desc *device_page;	/* mapped */
static struct virtio_device devices[LGUEST_MAX_DEVICES];
static unsigned int num_devices;
static struct virtqueue vqs[MAX_VQS];
static unsigned int num_vqs;
/* The virtqueue behind each interrupt line. */
static struct virtqueue *vq_by_irq[LGUEST_IRQS];

static const struct virtio_driver *const drivers[] = {
	&virtio_console_driver, &virtio_blk_driver, &virtio_net_driver,
};

/* A descriptor's parts, in the order they are laid out. */
static struct lguest_vqconfig *lg_vq(const struct lguest_device_desc *desc)
{
	return (void *)(desc->config);
}

static u8 *lg_features(const struct lguest_device_desc *desc)
{
	return (u8 *)(lg_vq(desc) + desc->num_vq);
}

static u8 *lg_config(const struct lguest_device_desc *desc)
{
	return lg_features(desc) + desc->feature_len * 2;
}

static unsigned int desc_size(const struct lguest_device_desc *desc)
{
	return sizeof(*desc) + desc->num_vq * sizeof(struct lguest_vqconfig)
		+ desc->feature_len * 2 + desc->config_len;
}

/*: D:760 Features.  The Launcher offers feature bits in the first bitmap;
 * a driver asking about one also accepts it, by setting the same bit in the
 * second bitmap, so the Launcher can see what the driver will rely on. */
int lg_feature(struct virtio_device *vdev, unsigned int fbit)
{
	struct lguest_device_desc *desc = vdev->desc;

	if (fbit / 8 >= desc->feature_len)
		return 0;
	if (!(lg_features(desc)[fbit / 8] & (1 << (fbit % 8))))
		return 0;
	lg_features(desc)[desc->feature_len + fbit / 8] |= 1 << (fbit % 8);
	return 1;
}

/* Configuration bytes; a read past what the Launcher wrote gives zeroes. */
void lg_get_config(struct virtio_device *vdev, unsigned int offset, void *buf,
		   unsigned int len)
{
	const u8 *config = lg_config(vdev->desc);
	u8 *out = buf;
	unsigned int i;

	for (i = 0; i < len; i++)
		out[i] = offset + i < vdev->desc->config_len ? config[offset + i] : 0;
}

static void lg_add_status(struct virtio_device *vdev, u8 bits)
{
	vdev->desc->status |= bits;
	barrier();
}

/*: D:770 Resetting a device: status 0, and a NOTIFY of the descriptor's
 * own physical address, which the Launcher recognises (it zeroes the
 * device's rings and forgets how far it had read them).  We reset every
 * device before powering off or rebooting, so a rebooted Guest finds them
 * as new. */
static void lg_reset(struct virtio_device *vdev)
{
	vdev->desc->status = 0;
	barrier();
	hcall(LHCALL_NOTIFY, (ram_size & PAGE_MASK) + ((u32)vdev->desc - (u32)device_page),
	      0, 0);
}

/*: D:780 The kick's back end: NOTIFY with the physical address of the
 * ring's first page, which is how the Launcher tells our virtqueues apart. */
static void lg_notify(struct virtqueue *vq)
{
	hcall(LHCALL_NOTIFY, vq->notify_addr, 0, 0);
}

static void lg_vq_interrupt(unsigned int irq)
{
	if (irq < LGUEST_IRQS && vq_by_irq[irq])
		vring_interrupt(vq_by_irq[irq]);
}

/*: D:790 find_vq: a driver asks for its device's Nth virtqueue.  The
 * Launcher chose the ring's size, place and interrupt; we check them (a
 * size we cannot hold, a power of two or not, an interrupt line that does
 * not exist, a line already taken), map the ring's pages, set the ring up
 * and send its interrupt to vring_interrupt(). */
struct virtqueue *lg_find_vq(struct virtio_device *vdev, unsigned int index,
			     void (*callback)(struct virtqueue *vq))
{
	struct lguest_vqconfig config;
	struct virtqueue *vq;
	void *pages;

	if (index >= vdev->desc->num_vq || num_vqs == MAX_VQS)
		return NULL;
	memcpy(&config, lg_vq(vdev->desc) + index, sizeof(config));
	if (!config.num || config.num > VIRTQUEUE_MAX || (config.num & (config.num - 1))
	    || !config.irq || config.irq >= LGUEST_IRQS || vq_by_irq[config.irq]) {
		printk("virtio: device %u queue %u: num %u irq %u refused\n", vdev->index, index,
		       config.num, config.irq);
		return NULL;
	}
	pages = map_device_pages(config.pfn, PAGE_ALIGN(vring_size(config.num)) / PAGE_SIZE);
	vq = &vqs[num_vqs++];
	vring_new_virtqueue(vq, config.num, pages, lg_notify, callback);
	vq->notify_addr = config.pfn << PAGE_SHIFT;
	vq->irq = config.irq;
	vq_by_irq[config.irq] = vq;
	request_irq(config.irq, lg_vq_interrupt);
	return vq;
}

static const char *id_name(u8 id)
{
	switch (id) {
	case VIRTIO_ID_NET:
		return "network";
	case VIRTIO_ID_BLOCK:
		return "block";
	case VIRTIO_ID_CONSOLE:
		return "console";
	}
	return "unknown";
}

/*: D:800 One device: ACKNOWLEDGE says we saw it, DRIVER that we have a
 * driver for it, and then the driver's probe ends in DRIVER_OK or FAILED.
 * The Launcher reads these bits; so does the shell's "devices" command. */
static void add_lguest_device(struct lguest_device_desc *d, unsigned int index)
{
	struct virtio_device *vdev = &devices[num_devices++];
	const struct virtio_driver *drv = NULL;
	unsigned int i;

	vdev->index = index;
	vdev->desc = d;
	lg_add_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	for (i = 0; i < ARRAY_SIZE(drivers); i++)
		if (drivers[i]->id == d->type)
			drv = drivers[i];
	printk("virtio: device %u is a %s device, %u queues, driver %s\n", index,
	       id_name(d->type), d->num_vq, drv ? drv->name : "(none)");
	if (!drv)
		return;
	vdev->driver = drv;
	lg_add_status(vdev, VIRTIO_CONFIG_S_DRIVER);
	lg_add_status(vdev, drv->probe(vdev) == 0 ? VIRTIO_CONFIG_S_DRIVER_OK
						  : VIRTIO_CONFIG_S_FAILED);
}

/*: D:810 The scan: descriptors follow one another from the start of the
 * page, each as long as its header says, until a type of 0.  One that
 * claims to run past the end of the page ends the scan. */
void lguest_devices_init(void)
{
	struct lguest_device_desc *d;
	unsigned int off;

	device_page = map_device_pages(ram_size >> PAGE_SHIFT, 1);
	for (off = 0; off + sizeof(*d) <= PAGE_SIZE && num_devices < LGUEST_MAX_DEVICES;
	     off += desc_size(d)) {
		d = (void *)((u8 *)device_page + off);
		if (d->type == 0)
			break;
		if (off + desc_size(d) > PAGE_SIZE) {
			printk("virtio: descriptor at %u runs off the page\n", off);
			break;
		}
		add_lguest_device(d, num_devices);
	}
}

/* Before power-off or reboot: drivers stop, and every device is reset. */
void lguest_devices_shutdown(void)
{
	unsigned int i;

	for (i = 0; i < num_devices; i++) {
		if (devices[i].driver && devices[i].driver->remove
		    && (devices[i].desc->status & VIRTIO_CONFIG_S_DRIVER_OK))
			devices[i].driver->remove(&devices[i]);
		lg_reset(&devices[i]);
	}
}

/* For the program's "devices" command (user_abi.h's struct lg_device). */
int lguest_devices_table(struct lg_device *table, unsigned int max)
{
	unsigned int i, q;
	struct lguest_device_desc *d;

	memset(table, 0, max * sizeof(*table));
	for (i = 0; i < num_devices && i < max; i++) {
		d = devices[i].desc;
		table[i].type = d->type;
		table[i].num_vq = d->num_vq;
		table[i].status = d->status;
		table[i].features = d->feature_len ? lg_features(d)[0] : 0;
		table[i].accepted = d->feature_len ? lg_features(d)[d->feature_len] : 0;
		table[i].config_len = d->config_len;
		for (q = 0; q < 2 && q < d->num_vq; q++) {
			table[i].vq[q].num = lg_vq(d)[q].num;
			table[i].vq[q].irq = lg_vq(d)[q].irq;
			table[i].vq[q].pfn = lg_vq(d)[q].pfn;
		}
	}
	return max;
}

/*: D:820 The early console.  Until the virtio console is up, printk()
 * still has to go somewhere, so the Launcher accepts a NOTIFY of any
 * address in our memory that is not one of its rings: it prints the
 * NUL-terminated string there.  Ours go through a small static buffer,
 * since a string must end with a NUL the caller's buffer may not have. */
void lguest_early_console(const char *buf, u32 len)
{
	static char scratch[65];
	u32 n;

	while (len) {
		n = len < sizeof(scratch) - 1 ? len : sizeof(scratch) - 1;
		memcpy(scratch, buf, n);
		scratch[n] = '\0';
		hcall(LHCALL_NOTIFY, __pa(scratch), 0, 0);
		buf += n;
		len -= n;
	}
}
