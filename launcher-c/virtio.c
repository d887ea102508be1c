/*
 * virtio.c: 2.6.25's devices, over virtqueues.
 *
 * The page above Guest memory now holds packed, variable-length
 * descriptors, ended by a type of 0: {u8 type, num_vq, feature_len,
 * config_len, status}, then num_vq x {u16 num, u16 irq, u32 pfn}, then the
 * Launcher's feature bits and the Guest's, then the device's configuration.
 * Each virtqueue is a vring in pages above: descriptors {u64 addr, u32 len,
 * u16 flags, u16 next}, the ring of chains the Guest made available, and
 * (on the next page boundary) the ring of chains the Launcher has used.
 * The Guest adds chains and NOTIFYs the vring's address; read() hands the
 * address to us, we take every chain, serve it, put it in the used ring and
 * raise the queue's interrupt.
 *
 * Devices, in the order the Guest finds them: the console, then each
 * --block and each --sharenet.  Disk requests are served at once when the
 * Guest NOTIFYs (2.6.25's Launcher had an I/O thread for them).
 */
#define _GNU_SOURCE
#include "lguest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define VIRTQUEUE_NUM		128
#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VIRTIO_ID_NET		1
#define VIRTIO_ID_BLOCK		2
#define VIRTIO_ID_CONSOLE	3
#define VIRTIO_CONFIG_S_FAILED	0x80
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_SCSI_CMD	2
#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_S_IOERR	1
#define VIRTIO_BLK_S_UNSUPP	2
#define VIRTIO_BLK_F_SEG_MAX	2
#define VIRTIO_NET_F_MAC	5
#define VIRTIO_NET_HDR_SIZE	10

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags, next;
};

struct piece {
	u8 *p;
	u32 len;
	bool write;
};

struct device;

struct virtqueue {
	unsigned long base;		/* Guest-physical: its first page */
	unsigned int num, irq;
	u16 last_avail_idx;		/* how far into the available ring we read */
	struct device *dev;
	void (*handle)(struct virtqueue *vq);
};

struct device {
	const char *name;
	unsigned long desc;		/* Guest-physical address of its descriptor */
	struct virtqueue vqs[2];
	unsigned int num_vq, feature_len, config_len;
	int fd;				/* input, or the disk */
	bool input_ended;
	bool is_net;
	unsigned long size;		/* a disk's size */
	struct wire wire;		/* a network's wire */
	u8 mac[6];
};

#define MAX_DEVICES 16
static struct device devices[MAX_DEVICES];
static int num_devices;
static unsigned long desc_end;		/* the first free byte of the device page */
static unsigned int next_irq = 1;	/* irq 0 is the timer */

static struct vring_desc *vring_desc(struct virtqueue *vq)
{
	return (struct vring_desc *)(guest_base + vq->base);
}

static u16 *vring_avail(struct virtqueue *vq)	/* flags, idx, ring[num] */
{
	return (u16 *)(guest_base + vq->base + 16 * vq->num);
}

static u32 *vring_used(struct virtqueue *vq)	/* {flags, idx}, {id, len}[num] */
{
	unsigned long end = vq->base + 16 * vq->num + 2 * (2 + vq->num);

	return (u32 *)(guest_base + ((end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1ul)));
}

static unsigned long vring_size(unsigned int num)
{
	unsigned long avail_end = 16 * num + 2 * (2 + num);

	return ((avail_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1ul)) + 4 + 8 * num;
}

void virtio_setup(void)
{
	desc_end = guest_mem;
	guest_limit = guest_mem + PAGE_SIZE;
}

static unsigned long get_pages(unsigned int num)
{
	unsigned long addr = guest_limit;

	if (guest_limit + num * PAGE_SIZE > guest_max)
		die(2, "Not enough memory for devices");
	guest_limit += num * PAGE_SIZE;
	return addr;
}

/* A descriptor can only grow while it is the last one on the page. */
static void grow(const void *data, unsigned int len)
{
	if (desc_end + len + 1 > guest_mem + PAGE_SIZE)
		die(2, "Too many devices");
	memcpy(guest_base + desc_end, data, len);
	desc_end += len;
}

static struct device *new_device(const char *name, u8 type)
{
	u8 header[5] = { type, 0, 0, 0, 0 };
	struct device *dev;

	if (num_devices == MAX_DEVICES)
		die(2, "Too many devices");
	dev = &devices[num_devices++];
	memset(dev, 0, sizeof(*dev));
	dev->name = name;
	dev->desc = desc_end;
	dev->fd = -1;
	grow(header, sizeof(header));
	return dev;
}

/* A vring of VIRTQUEUE_NUM entries in fresh pages, and the next interrupt. */
static void add_virtqueue(struct device *dev, void (*handle)(struct virtqueue *vq))
{
	struct virtqueue *vq = &dev->vqs[dev->num_vq];
	struct { u16 num, irq; u32 pfn; } cfg;

	vq->num = VIRTQUEUE_NUM;
	vq->base = get_pages((vring_size(vq->num) + PAGE_SIZE - 1) / PAGE_SIZE);
	vq->irq = next_irq++;
	vq->dev = dev;
	vq->handle = handle;
	cfg.num = vq->num;
	cfg.irq = vq->irq;
	cfg.pfn = vq->base / PAGE_SIZE;
	grow(&cfg, sizeof(cfg));
	guest_base[dev->desc + 1] = ++dev->num_vq;
}

static unsigned long features_at(struct device *dev)
{
	return dev->desc + 5 + 8 * dev->num_vq;
}

/* One feature (the Launcher's half of the bitmap; the Guest's half follows). */
static void add_feature(struct device *dev, unsigned int bit)
{
	u8 zeroes[2] = { 0, 0 };

	dev->feature_len = bit / 8 + 1;
	while (desc_end < features_at(dev) + 2 * dev->feature_len)
		grow(zeroes, 1);
	guest_base[dev->desc + 2] = dev->feature_len;
	guest_base[features_at(dev) + bit / 8] |= 1 << (bit % 8);
}

static void set_config(struct device *dev, const void *conf, unsigned int len)
{
	grow(conf, len);
	dev->config_len = len;
	guest_base[dev->desc + 3] = len;
}

/*
 * Taking a chain the Guest made available, with every check lguest makes:
 * the available index moves forward by no more than the ring holds; the
 * head and every "next" are descriptor numbers; a chain longer than the
 * ring is a loop; writable pieces all come after the readable ones; each
 * piece lies in Guest memory.  Returns the head, or vq->num for none.
 */
static unsigned int get_vq_desc(struct virtqueue *vq, struct piece pieces[], unsigned int *n)
{
	u16 *avail = vring_avail(vq), idx = avail[1];
	struct vring_desc *d = vring_desc(vq);
	unsigned int head, i;

	if ((u16)(idx - vq->last_avail_idx) > vq->num)
		die(1, "Guest moved used index from %u to %u", vq->last_avail_idx, idx);
	if (idx == vq->last_avail_idx)
		return vq->num;
	head = avail[2 + vq->last_avail_idx % vq->num];
	vq->last_avail_idx++;
	if (head >= vq->num)
		die(1, "Guest says index %u is available", head);
	*n = 0;
	for (i = head;; i = d[i].next) {
		bool write = d[i].flags & VRING_DESC_F_WRITE;

		if (*n && !write && pieces[*n - 1].write)
			die(1, "Descriptor has out after in");
		if (*n == vq->num)
			die(1, "Looped descriptor");
		if (d[i].addr > 0xFFFFFFFFull)
			die(1, "the Guest handed over an invalid address %#llx", d[i].addr);
		pieces[*n].p = check_pointer(d[i].addr, d[i].len);
		pieces[*n].len = d[i].len;
		pieces[*n].write = write;
		(*n)++;
		if (!(d[i].flags & VRING_DESC_F_NEXT))
			return head;
		if (d[i].next >= vq->num)
			die(1, "Desc next is %u", d[i].next);
	}
}

/* Hand a chain back: the entry first, then the index that shows it (the
 * barrier keeps the compiler from swapping the two stores). */
static void add_used(struct virtqueue *vq, unsigned int head, u32 len)
{
	u32 *used = vring_used(vq);
	u16 *idx = (u16 *)used + 1;

	used[1 + 2 * (*idx % vq->num)] = head;
	used[2 + 2 * (*idx % vq->num)] = len;
	__sync_synchronize();
	(*idx)++;
}

static void trigger_vq_irq(struct virtqueue *vq)
{
	if (!(vring_avail(vq)[0] & VRING_AVAIL_F_NO_INTERRUPT))
		trigger_irq(vq->irq);
}

static bool vq_has_chain(struct virtqueue *vq)
{
	return vring_avail(vq)[1] != vq->last_avail_idx;
}

/* The Guest added receive buffers: input that had none may go in again. */
static void enable_input(struct virtqueue *vq)
{
	if (vq->dev->fd >= 0 && !vq->dev->input_ended)
		watch_device_fd_again(vq->dev->fd);
}

/* The console: queue 0 takes input, queue 1 carries output. */
static void handle_console_output(struct virtqueue *vq)
{
	struct piece pieces[VIRTQUEUE_NUM];
	unsigned int head, n, i;

	while ((head = get_vq_desc(vq, pieces, &n)) != vq->num) {
		for (i = 0; i < n; i++) {
			if (pieces[i].write)
				die(1, "Input buffers in output queue?");
			write_console(pieces[i].p, pieces[i].len);
		}
		add_used(vq, head, 0);
	}
	trigger_vq_irq(vq);
}

/* Input goes into a chain from queue 0; with none there the console is not
 * watched until the Guest adds one (enable_input), so nothing is lost.  The
 * end of the input is passed on as an empty buffer, and then no more. */
static bool handle_console_input(struct device *dev)
{
	struct virtqueue *vq = &dev->vqs[0];
	struct piece pieces[VIRTQUEUE_NUM];
	unsigned int head, n, i;
	size_t room = 0, len, done = 0, c;
	u8 buf[1024];

	if (!vq_has_chain(vq))
		return false;
	head = get_vq_desc(vq, pieces, &n);
	for (i = 0; i < n; i++) {
		if (!pieces[i].write)
			die(1, "Output buffers in console in queue?");
		room += pieces[i].len;
	}
	len = read_console(dev->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	for (i = 0; i < n && done < len; i++) {
		c = len - done < pieces[i].len ? len - done : pieces[i].len;
		memcpy(pieces[i].p, buf + done, c);
		done += c;
	}
	add_used(vq, head, len);
	trigger_vq_irq(vq);
	if (!len)
		dev->input_ended = true;
	return len != 0;
}

void virtio_setup_console(void)
{
	struct device *dev = new_device("console", VIRTIO_ID_CONSOLE);

	add_virtqueue(dev, enable_input);
	add_virtqueue(dev, handle_console_output);
	dev->fd = STDIN_FILENO;
	if (console_has_input())
		add_device_fd(dev->fd);
	else
		dev->input_ended = true;
	verbose_say("device %#lx: console\n", dev->desc);
}

/*
 * A disk request is one chain: a readable header {u32 type, u32 ioprio, u64
 * sector}, the data (readable for a write, writable for a read), and last a
 * writable status byte.  A request reaching past the end of the file is
 * refused with IOERR and never grows the file.
 */
static void service_io(struct virtqueue *vq)
{
	struct device *dev = vq->dev;
	struct piece pieces[VIRTQUEUE_NUM];
	unsigned int head, n, i, outs;
	struct { u32 type, ioprio; u64 sector; } hdr;

	while ((head = get_vq_desc(vq, pieces, &n)) != vq->num) {
		struct piece *status;
		unsigned long long off, want = 0;
		u32 written = 0;
		u8 result = VIRTIO_BLK_S_OK;

		for (outs = 0; outs < n && !pieces[outs].write; outs++)
			;
		if (outs == 0 || outs == n || pieces[0].len < sizeof(hdr) || pieces[n - 1].len < 1)
			die(1, "Bad virtblk cmd %u out=%u in=%u", outs, outs, n - outs);
		memcpy(&hdr, pieces[0].p, sizeof(hdr));
		status = &pieces[n - 1];
		off = hdr.sector * 512;
		if (hdr.type & VIRTIO_BLK_T_SCSI_CMD) {
			result = VIRTIO_BLK_S_UNSUPP;
		} else if (hdr.type & VIRTIO_BLK_T_OUT) {
			for (i = 1; i < outs; i++)
				want += pieces[i].len;
			if (off + want > dev->size) {
				fprintf(stderr, "lguest: virtblk: write past end %llu+%llu refused\n",
					off, want);
				result = VIRTIO_BLK_S_IOERR;
			} else {
				for (i = 1; i < outs; off += pieces[i].len, i++)
					if (pwrite(dev->fd, pieces[i].p, pieces[i].len, off) !=
					    (ssize_t)pieces[i].len)
						result = VIRTIO_BLK_S_IOERR;
			}
		} else {
			/* The data pieces, and all but the last byte of the status piece. */
			for (i = outs; i < n - 1; i++)
				want += pieces[i].len;
			want += status->len - 1;
			if (off + want > dev->size) {
				fprintf(stderr, "lguest: virtblk: read past end %llu+%llu refused\n",
					off, want);
				result = VIRTIO_BLK_S_IOERR;
			} else {
				for (i = outs; i < n; i++) {
					u32 len = i == n - 1 ? status->len - 1 : pieces[i].len;

					if (len && pread(dev->fd, pieces[i].p, len, off) != (ssize_t)len)
						result = VIRTIO_BLK_S_IOERR;
					off += len;
				}
				written = want;
			}
		}
		status->p[status->len - 1] = result;
		add_used(vq, head, written + 1);
	}
	trigger_vq_irq(vq);
}

void virtio_setup_block(const char *filename)
{
	struct device *dev = new_device("block", VIRTIO_ID_BLOCK);
	struct { u64 capacity; u32 size_max, seg_max; } __attribute__((packed)) conf;

	dev->fd = open_disk(filename, &dev->size);
	add_virtqueue(dev, service_io);
	add_feature(dev, VIRTIO_BLK_F_SEG_MAX);
	conf.capacity = dev->size / 512;
	conf.size_max = 0;
	conf.seg_max = VIRTQUEUE_NUM - 2;
	set_config(dev, &conf, sizeof(conf));
	verbose_say("device %#lx: virtblock %llu sectors\n", dev->desc, conf.capacity);
}

/*
 * A network: 2.6.25's Guests share no page, so Launchers carry the frames.
 * Each Launcher naming the same --sharenet PATH is a port on one wire
 * (net.c); our Guest's address is 02:00:00:00:00:<port>, offered in the
 * device's configuration.  Every frame the Guest transmits goes down the
 * wire (without its virtio_net header), and a frame from the wire that is a
 * broadcast or names our Guest goes into a chain from its receive queue,
 * after a zeroed header (no checksum offload, no segmentation).
 */
static void handle_net_output(struct virtqueue *vq)
{
	struct piece pieces[VIRTQUEUE_NUM];
	unsigned int head, n, i;
	u8 data[VIRTIO_NET_HDR_SIZE + 1514];
	size_t len, c;

	while ((head = get_vq_desc(vq, pieces, &n)) != vq->num) {
		for (len = 0, i = 0; i < n && len < sizeof(data); i++) {
			if (pieces[i].write)
				die(1, "Input buffers in network transmit queue?");
			c = pieces[i].len < sizeof(data) - len ? pieces[i].len : sizeof(data) - len;
			memcpy(data + len, pieces[i].p, c);
			len += c;
		}
		if (len >= VIRTIO_NET_HDR_SIZE + 14)
			wire_send(&vq->dev->wire, data + VIRTIO_NET_HDR_SIZE,
				  len - VIRTIO_NET_HDR_SIZE);
		add_used(vq, head, 0);
	}
	trigger_vq_irq(vq);
}

static bool handle_net_input(struct device *dev)
{
	struct virtqueue *vq = &dev->vqs[0];
	struct piece pieces[VIRTQUEUE_NUM];
	u8 data[VIRTIO_NET_HDR_SIZE + 1514] = { 0 };
	unsigned int head, n, i;
	size_t len, done = 0, c;
	ssize_t got;

	if (!vq_has_chain(vq))
		return false;		/* until the Guest adds receive buffers */
	got = wire_receive(&dev->wire, data + VIRTIO_NET_HDR_SIZE, 1514);
	if (got < 0)
		return errno == EAGAIN;
	if (got < 14 || (!(data[VIRTIO_NET_HDR_SIZE] & 1) &&
			 memcmp(data + VIRTIO_NET_HDR_SIZE, dev->mac, 6)))
		return true;		/* not for us */
	head = get_vq_desc(vq, pieces, &n);
	len = VIRTIO_NET_HDR_SIZE + got;
	for (i = 0; i < n && done < len; i++) {
		if (!pieces[i].write)
			die(1, "Output buffers in network receive queue?");
		c = len - done < pieces[i].len ? len - done : pieces[i].len;
		memcpy(pieces[i].p, data + done, c);
		done += c;
	}
	add_used(vq, head, done);
	trigger_vq_irq(vq);
	return true;
}

void virtio_setup_net(const char *path)
{
	struct device *dev = new_device("net", VIRTIO_ID_NET);

	wire_join(&dev->wire, path);
	dev->fd = dev->wire.fd;
	dev->is_net = true;
	dev->mac[0] = 0x02;
	dev->mac[5] = dev->wire.port;
	add_virtqueue(dev, enable_input);
	add_virtqueue(dev, handle_net_output);
	add_feature(dev, VIRTIO_NET_F_MAC);
	set_config(dev, dev->mac, 6);
	add_device_fd(dev->fd);
	verbose_say("device %#lx: net %02x:00:00:00:00:%02x on %s\n", dev->desc, dev->mac[0],
		    dev->mac[5], path);
}

bool virtio_handle_input(int fd)
{
	int i;

	for (i = 0; i < num_devices; i++) {
		if (devices[i].fd != fd)
			continue;
		if (devices[i].is_net)
			return handle_net_input(&devices[i]);
		return handle_console_input(&devices[i]);
	}
	return false;
}

/* A status change.  0 is a reset: the vrings are zeroed, how far we read
 * them forgotten, and the Guest's half of the feature bits cleared, so a
 * reloaded driver starts clean. */
static void update_device_status(struct device *dev)
{
	u8 status = guest_base[dev->desc + 4];
	unsigned int i;

	if (status == 0) {
		verbose_say("Resetting device %s\n", dev->name);
		for (i = 0; i < dev->num_vq; i++) {
			memset(guest_base + dev->vqs[i].base, 0, vring_size(dev->vqs[i].num));
			dev->vqs[i].last_avail_idx = 0;
		}
		memset(guest_base + features_at(dev) + dev->feature_len, 0, dev->feature_len);
	} else if (status & VIRTIO_CONFIG_S_FAILED) {
		fprintf(stderr, "lguest: Device %s configuration FAILED\n", dev->name);
	} else {
		verbose_say("Device %s status %#x\n", dev->name, status);
	}
}

/*
 * What the Guest NOTIFYed: a device descriptor's address (its status
 * changed), an address in a vring's first page (it added buffers there), or
 * else, below the top of its memory, a string for the early console.
 */
void virtio_handle_notify(u32 addr)
{
	unsigned int i, q;
	const char *s;

	for (i = 0; i < (unsigned int)num_devices; i++) {
		struct device *dev = &devices[i];

		if (addr == dev->desc) {
			update_device_status(dev);
			return;
		}
		for (q = 0; q < dev->num_vq; q++) {
			if (dev->vqs[q].base / PAGE_SIZE != addr / PAGE_SIZE)
				continue;
			if (guest_base[dev->desc + 4] == 0)
				fprintf(stderr, "lguest: %s gave early output\n", dev->name);
			else
				dev->vqs[q].handle(&dev->vqs[q]);
			return;
		}
	}
	if (addr >= guest_mem)
		die(1, "Bad NOTIFY %#x", addr);
	s = (const char *)guest_base + addr;
	write_console(s, strnlen(s, guest_mem - addr < 256 ? guest_mem - addr : 256));
}
