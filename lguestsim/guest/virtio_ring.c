/*
 * virtio_ring.c: the Guest's half of a virtqueue (Linux 2.6.25's
 * drivers/virtio/virtio_ring.c, made small).
 *
 * A driver adds a buffer (a chain of descriptors, readable pieces first,
 * then writable ones) with vring_add_buf(), makes everything it added
 * visible with vring_kick(), which NOTIFYs the Launcher, and gets buffers
 * back with vring_get_buf() once the Launcher has put them in the used
 * ring.  Only in guest-virtio.elf.
 */
#include "virtio.h"

/*: D:720 Setting up a ring: the three parts laid out in the pages the
 * Launcher gave us, every descriptor chained into the free list, and, for a
 * queue nobody needs to hear back from (the console's output), the
 * NO_INTERRUPT flag in the available ring so the Launcher does not bother
 * interrupting us. */
void vring_new_virtqueue(struct virtqueue *vq, unsigned int num, void *pages,
			 void (*notify)(struct virtqueue *vq),
			 void (*callback)(struct virtqueue *vq))
{
	unsigned int i;

	vq->num = num;
	vq->desc = pages;
	vq->avail = (void *)((u8 *)pages + num * sizeof(struct vring_desc));
	vq->used = (void *)PAGE_ALIGN((u32)&vq->avail->ring[num]);
	vq->free_head = 0;
	vq->num_free = num;
	vq->num_added = 0;
	vq->last_used_idx = 0;
	vq->notify = notify;
	vq->callback = callback;
	vq->broken = 0;
	if (!callback)
		vq->avail->flags |= VRING_AVAIL_F_NO_INTERRUPT;
	for (i = 0; i < num; i++) {
		vq->data[i] = NULL;
		vq->desc[i].next = i + 1;
	}
}

/*: D:730 Adding a buffer.  Descriptors come off the free list, the
 * readable ("out") pieces first and the writable ("in") ones after, each
 * pointing to the next; the last one ends the chain.  The chain's head goes
 * into the next slot of the available ring, but the ring's index does not
 * move yet: the Launcher sees nothing until vring_kick().  The token `data`
 * is what vring_get_buf() will hand back for this buffer. */
int vring_add_buf(struct virtqueue *vq, const struct scatterlist sg[],
		  unsigned int out, unsigned int in, void *data)
{
	unsigned int i, head, prev = 0, n;

	if (!data || out + in == 0 || vq->num_free < out + in)
		return -ENOSPC;
	vq->num_free -= out + in;
	head = i = vq->free_head;
	for (n = 0; n < out + in; n++) {
		vq->desc[i].flags = VRING_DESC_F_NEXT | (n >= out ? VRING_DESC_F_WRITE : 0);
		vq->desc[i].addr = sg[n].phys;
		vq->desc[i].len = sg[n].len;
		prev = i;
		i = vq->desc[i].next;
	}
	vq->desc[prev].flags &= ~VRING_DESC_F_NEXT;
	vq->free_head = i;
	vq->data[head] = data;
	vq->avail->ring[(vq->avail->idx + vq->num_added++) % vq->num] = head;
	return 0;
}

/*: D:740 Kicking: first the new available entries become visible by
 * moving the index (after a barrier, so the Launcher can never see the
 * index before the entries), then, unless the Launcher said it does not
 * need telling, the NOTIFY hypercall.  The Launcher serves the queue before
 * the hypercall returns, so by the time we run again the used ring may
 * already hold the answer. */
void vring_kick(struct virtqueue *vq)
{
	barrier();
	vq->avail->idx += vq->num_added;
	vq->num_added = 0;
	barrier();
	if (!(vq->used->flags & VRING_USED_F_NO_NOTIFY))
		vq->notify(vq);
}

/* A chain goes back on the free list, whole. */
static void detach_buf(struct virtqueue *vq, unsigned int head)
{
	unsigned int i = head;

	vq->data[head] = NULL;
	while (vq->desc[i].flags & VRING_DESC_F_NEXT) {
		i = vq->desc[i].next;
		vq->num_free++;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = head;
	vq->num_free++;
}

/*: D:750 Getting a buffer back.  If the Launcher's used index has moved
 * past ours, the next used entry names the head of a chain and how many
 * bytes were written into it.  We trust none of it blindly: a head out of
 * range, or one that is not a chain we have out, marks the ring broken and
 * the driver gets nothing more from it. */
void *vring_get_buf(struct virtqueue *vq, u32 *len)
{
	struct vring_used_elem *e;
	unsigned int i;
	void *ret;

	if (vq->broken || vq->last_used_idx == vq->used->idx)
		return NULL;
	barrier();
	e = &vq->used->ring[vq->last_used_idx % vq->num];
	i = e->id;
	*len = e->len;
	if (i >= vq->num || !vq->data[i]) {
		printk("virtio: used id %u is not a buffer of ours: ring broken\n", i);
		vq->broken = 1;
		return NULL;
	}
	ret = vq->data[i];
	detach_buf(vq, i);
	vq->last_used_idx++;
	return ret;
}

/* The queue's interrupt: if anything was used, tell the driver. */
void vring_interrupt(struct virtqueue *vq)
{
	if (vq->broken || vq->last_used_idx == vq->used->idx)
		return;
	if (vq->callback)
		vq->callback(vq);
}
