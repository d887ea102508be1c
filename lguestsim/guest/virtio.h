/*
 * virtio.h: the 2.6.25 Guest's virtio layer (only in guest-virtio.elf).
 *
 * In Linux 2.6.25 lguest's drivers stopped being lguest's: the console,
 * block and network drivers are virtio drivers, which kvm uses too, and
 * lguest only supplies the glue underneath (lguest_device.c): finding the
 * devices on the device page, handing each driver its virtqueues, and
 * prodding the Launcher with LHCALL_NOTIFY.  A virtqueue is a "vring" in
 * memory the Guest shares with the Launcher (virtio_ring.c).  This header
 * is the small part of Linux's virtio API this kernel uses.
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include "guest.h"

/* The largest ring we handle (the Launcher's VIRTQUEUE_NUM). */
#define VIRTQUEUE_MAX	128

/*: D:710 The vring, as virtio_ring.h lays it out, a layout the Guest and
 * the Launcher must agree on to the byte.  The descriptor table holds
 * pieces of Guest-physical memory (64-bit addresses, although ours fit in
 * 32), chained by `next` while VRING_DESC_F_NEXT is set; WRITE marks a
 * piece for the other side to fill.  The available ring is ours: the heads
 * of the chains we offer, and an index that only ever counts up (it wraps
 * at 65536).  The used ring, starting on the next page, is the Launcher's:
 * the chains it has finished with and how much it wrote into each. */
struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};
#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2

struct vring_avail {
	u16 flags;
	u16 idx;
	u16 ring[];
};
#define VRING_AVAIL_F_NO_INTERRUPT	1

struct vring_used_elem {
	u32 id;
	u32 len;
};

struct vring_used {
	u16 flags;
	u16 idx;
	struct vring_used_elem ring[];
};
#define VRING_USED_F_NO_NOTIFY	1

_Static_assert(sizeof(struct vring_desc) == 16, "vring_desc");
_Static_assert(sizeof(struct vring_used_elem) == 8, "vring_used_elem");

/* Bytes a ring of num entries takes, with the used ring page-aligned. */
static inline u32 vring_size(unsigned int num)
{
	return PAGE_ALIGN(sizeof(struct vring_desc) * num + sizeof(u16) * (2 + num))
		+ sizeof(u16) * 2 + sizeof(struct vring_used_elem) * num;
}

/* One piece of a buffer: physical address and length (Linux's scatterlist). */
struct scatterlist {
	u32 phys;
	u32 len;
};

/* A virtqueue: the ring, our bookkeeping, and who to call. */
struct virtqueue {
	unsigned int num;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	/* Free descriptors are chained through "next" from free_head. */
	unsigned int free_head, num_free;
	/* Added since the last kick, and how far we read the used ring. */
	unsigned int num_added;
	u16 last_used_idx;
	/* The driver's token for each chain, by its head. */
	void *data[VIRTQUEUE_MAX];
	/* The driver's function when the Launcher used buffers (may be NULL). */
	void (*callback)(struct virtqueue *vq);
	/* How to prod the Launcher, with its address and our interrupt. */
	void (*notify)(struct virtqueue *vq);
	u32 notify_addr;
	unsigned int irq;
	/* The driver's own pointer. */
	void *priv;
	/* Set when the Launcher handed back something impossible. */
	int broken;
};

/* virtio_ring.c */
void vring_new_virtqueue(struct virtqueue *vq, unsigned int num, void *pages,
			 void (*notify)(struct virtqueue *vq),
			 void (*callback)(struct virtqueue *vq));
int vring_add_buf(struct virtqueue *vq, const struct scatterlist sg[],
		  unsigned int out, unsigned int in, void *data);
void vring_kick(struct virtqueue *vq);
void *vring_get_buf(struct virtqueue *vq, u32 *len);
void vring_interrupt(struct virtqueue *vq);

/* lguest_device.c: one device on the page, as a driver sees it. */
struct virtio_device {
	unsigned int index;			/* its place on the page */
	struct lguest_device_desc *desc;
	const struct virtio_driver *driver;
};

struct virtio_driver {
	const char *name;
	u8 id;					/* VIRTIO_ID_* */
	int (*probe)(struct virtio_device *vdev);
	void (*remove)(struct virtio_device *vdev);	/* may be NULL */
};

int lg_feature(struct virtio_device *vdev, unsigned int fbit);
void lg_get_config(struct virtio_device *vdev, unsigned int offset, void *buf,
		   unsigned int len);
struct virtqueue *lg_find_vq(struct virtio_device *vdev, unsigned int index,
			     void (*callback)(struct virtqueue *vq));
void lguest_devices_init(void);
void lguest_devices_shutdown(void);
int lguest_devices_table(struct lg_device *table, unsigned int max);
void lguest_early_console(const char *buf, u32 len);

extern const struct virtio_driver virtio_console_driver, virtio_blk_driver,
	virtio_net_driver;

/* console.c: the line discipline, fed by whichever console driver we have. */
void console_receive(const char *buf, u32 len);

#endif /* VIRTIO_H */
