/*
 * virtio_blk.c: the 2.6.25 disk, a virtio driver (Linux's
 * drivers/block/virtio_blk.c, made small); only in guest-virtio.elf.
 *
 * It offers process.c the same two calls as 2.6.23's block.c
 * (lgb_num_sectors, lgb_do_request), with a virtqueue underneath.
 */
#include "virtio.h"

#define MAX_DISKS	4
#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_F_SEG_MAX	2

/* The header at the front of every request, and the disk's configuration. */
struct virtio_blk_outhdr {
	u32 type;
	u32 ioprio;
	u64 sector;
};

struct virtio_blk_config {
	u64 capacity;		/* in 512-byte sectors */
	u32 size_max;
	u32 seg_max;		/* pieces of data in one request, at most */
} __attribute__((packed));

struct virtio_blk {
	struct virtqueue *vq;
	u32 sectors;
	u32 seg_max;
	/* The request in flight (one at a time) and its header and status. */
	struct virtio_blk_outhdr out_hdr;
	volatile u8 status;
	struct blk_request *volatile req;
};

static struct virtio_blk disks[MAX_DISKS];
static unsigned int num_disks;

/*: D:850 The queue's callback: each used chain is a finished request, and
 * its status byte says how it went.  Linux's blk_done() ends the request
 * whole, as 2.6.23's driver learned to (D:430). */
static void blk_done(struct virtqueue *vq)
{
	struct virtio_blk *vblk = vq->priv;
	struct blk_request *req;
	u32 len;

	while ((req = vring_get_buf(vq, &len)) != NULL) {
		req->result = (len >= 1 && vblk->status == VIRTIO_BLK_S_OK) ? 1 : 2;
		vblk->req = NULL;
	}
}

/*: D:860 A request is one chain: the header (readable), the data pieces
 * (readable for a write, writable for a read), and the status byte
 * (writable), which the Launcher fills in last.  One kick sends it. */
int lgb_do_request(unsigned int disk, struct blk_request *req)
{
	struct scatterlist sg[2 + LGUEST_MAX_DMA_SECTIONS];
	struct virtio_blk *vblk;
	unsigned int i, out, in;

	if (disk >= num_disks)
		return -ENODEV;
	vblk = &disks[disk];
	if (req->pieces == 0 || req->pieces > vblk->seg_max || req->pieces > LGUEST_MAX_DMA_SECTIONS)
		return -EINVAL;
	wait_event(!vblk->req);
	vblk->req = req;
	req->result = 0;
	vblk->out_hdr.type = req->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
	vblk->out_hdr.ioprio = 0;
	vblk->out_hdr.sector = req->sector;
	vblk->status = 0xFF;
	sg[0].phys = __pa(&vblk->out_hdr);
	sg[0].len = sizeof(vblk->out_hdr);
	for (i = 0; i < req->pieces; i++) {
		sg[1 + i].phys = req->phys[i];
		sg[1 + i].len = req->len[i];
	}
	sg[1 + i].phys = __pa(&vblk->status);
	sg[1 + i].len = 1;
	out = req->write ? 1 + req->pieces : 1;
	in = req->write ? 1 : 1 + req->pieces;
	if (vring_add_buf(vblk->vq, sg, out, in, req) != 0) {
		vblk->req = NULL;
		return -EIO;
	}
	vring_kick(vblk->vq);
	wait_event(req->result || vblk->vq->broken);
	if (!req->result) {
		vblk->req = NULL;
		return -EIO;
	}
	return req->result == 1 ? 0 : -EIO;
}

int lgb_num_sectors(unsigned int disk, u32 *num_sectors)
{
	if (disk >= num_disks)
		return -ENODEV;
	*num_sectors = disks[disk].sectors;
	return 0;
}

/*: D:870 The probe: one virtqueue, and the configuration, where the
 * Launcher wrote the disk's size (and, if it offers SEG_MAX, how many data
 * pieces a request may have). */
static int virtblk_probe(struct virtio_device *vdev)
{
	struct virtio_blk *vblk;
	struct virtio_blk_config config;

	if (num_disks == MAX_DISKS) {
		printk("virtio_blk: only %u disks are supported\n", MAX_DISKS);
		return -ENOMEM;
	}
	vblk = &disks[num_disks];
	lg_get_config(vdev, 0, &config, sizeof(config));
	vblk->seg_max = lg_feature(vdev, VIRTIO_BLK_F_SEG_MAX) ? config.seg_max : 1;
	if (config.capacity > 0xFFFFFFFFull) {
		printk("virtio_blk: %u KiB is too big for us\n", (u32)(config.capacity >> 1));
		return -EINVAL;
	}
	vblk->sectors = (u32)config.capacity;
	vblk->vq = lg_find_vq(vdev, 0, blk_done);
	if (!vblk->vq)
		return -EINVAL;
	vblk->vq->priv = vblk;
	vblk->req = NULL;
	printk("vd%c: %u sectors (%u KiB), at most %u pieces a request, irq %u\n",
	       'a' + num_disks, vblk->sectors, vblk->sectors / 2, vblk->seg_max, vblk->vq->irq);
	num_disks++;
	return 0;
}

const struct virtio_driver virtio_blk_driver = {
	.name = "virtio_blk",
	.id = VIRTIO_ID_BLOCK,
	.probe = virtblk_probe,
};
