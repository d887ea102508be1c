/*
 * virtio_console.c: the 2.6.25 console, a virtio driver (Linux's
 * drivers/char/virtio_console.c, made small); only in guest-virtio.elf.
 *
 * Two virtqueues: the first carries input from the Launcher into a buffer
 * we keep there, the second carries our output.  Before the device is
 * found, output goes through the early console (lguest_device.c).  The
 * line discipline above it is console.c's, shared with 2.6.23.
 */
#include "virtio.h"

static struct virtqueue *in_vq, *out_vq;
static char inbuf[256];

/*: D:830 Output, 2.6.25's put_chars(): one readable descriptor, a kick,
 * and then we spin until the Launcher hands it back.  That cannot take long:
 * the Launcher serves the queue during the NOTIFY hypercall itself.
 * Interrupts are off meanwhile, so output from an interrupt handler cannot
 * land in the middle. */
void console_write_phys(u32 phys, u32 len)
{
	struct scatterlist sg = { .phys = phys, .len = len };
	u32 flags, used;

	if (!out_vq) {
		lguest_early_console(__va(phys), len);
		return;
	}
	flags = save_fl();
	irq_disable();
	if (vring_add_buf(out_vq, &sg, 1, 0, (void *)1) == 0) {
		vring_kick(out_vq);
		while (!vring_get_buf(out_vq, &used) && !out_vq->broken)
			barrier();
	}
	restore_fl(flags);
}

void console_write(const char *buf, u32 len)
{
	if (len)
		console_write_phys(__pa(buf), len);
}

/* Our one input buffer goes (back) to the Launcher. */
static void add_inbuf(void)
{
	struct scatterlist sg = { .phys = __pa(inbuf), .len = sizeof(inbuf) };

	if (vring_add_buf(in_vq, &sg, 0, 1, inbuf) == 0)
		vring_kick(in_vq);
}

/*: D:840 Input: the Launcher filled our buffer and interrupted us.  What
 * it wrote goes to the line discipline, and the buffer goes straight back
 * for more; an empty one means the input ended, and then we stop offering. */
static void virtcons_input(struct virtqueue *vq)
{
	u32 len;

	while (vring_get_buf(vq, &len)) {
		if (len > sizeof(inbuf))
			len = sizeof(inbuf);
		console_receive(inbuf, len);
		if (len)
			add_inbuf();
	}
}

static int virtcons_probe(struct virtio_device *vdev)
{
	in_vq = lg_find_vq(vdev, 0, virtcons_input);
	if (!in_vq)
		return -EINVAL;
	out_vq = lg_find_vq(vdev, 1, NULL);
	if (!out_vq) {
		in_vq = NULL;
		return -EINVAL;
	}
	add_inbuf();
	return 0;
}

/* Before power-off: output falls back to the early console. */
static void virtcons_remove(struct virtio_device *vdev)
{
	(void)vdev;
	out_vq = NULL;
}

const struct virtio_driver virtio_console_driver = {
	.name = "virtio_console",
	.id = VIRTIO_ID_CONSOLE,
	.probe = virtcons_probe,
	.remove = virtcons_remove,
};
