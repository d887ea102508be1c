/*
 * dma.c: 2.6.23's devices, on the lguest bus.
 *
 * The Guest learns its devices from one page just above its memory: sixteen
 * 12-byte descriptors (type, features, status, pages, first page frame).  A
 * device that shares memory with the Launcher gets whole pages above that.
 * The Guest talks to a device by DMA: it sends a "struct lguest_dma" (up to
 * 16 pieces of its memory) to a key, a Guest-physical address; a key no
 * other Guest has bound is the Launcher's, and read() hands it over.  For
 * input the Launcher asks the Host for a buffer the Guest bound at a key
 * (LHREQ_GETDMA), fills it and raises the interrupt that came with it.
 *
 * Devices, in the order the Guest finds them: each --block (a file), each
 * --sharenet (a network whose other machines are reached through the
 * Launcher, see dma_setup_net), then the console.
 */
#define _GNU_SOURCE
#include "lguest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define LGUEST_MAX_DEVICES	16
#define LGUEST_MAX_DMA_SECTIONS	16
#define LGUEST_DEVICE_T_CONSOLE	1
#define LGUEST_DEVICE_T_NET	2
#define LGUEST_DEVICE_T_BLOCK	3
#define LGUEST_DEVICE_F_RANDOMNESS 0x8000
#define NET_PEERNUM		1	/* the Guest's slot on a Launcher-served network */
#define NET_PROMISC		0x01

struct lguest_device_desc {
	u16 type, features, status, num_pages;
	u32 pfn;
};

struct lguest_dma {
	u32 used_len;
	u32 addr[LGUEST_MAX_DMA_SECTIONS];
	u16 len[LGUEST_MAX_DMA_SECTIONS];
};

struct lguest_block_page {
	int type;		/* 0 read, 1 write */
	u32 sector;
	u32 bytes;
	int result;		/* 0 pending, 1 done, 2 error */
	u32 num_sectors;
};

_Static_assert(sizeof(struct lguest_device_desc) == 12, "device descriptor");
_Static_assert(sizeof(struct lguest_dma) == 100, "struct lguest_dma");
_Static_assert(sizeof(struct lguest_block_page) == 20, "block page");

/* The Launcher's record of a device: where the Guest sends its output (the
 * key) and what serves it; where its input comes from. */
struct device {
	const char *name;
	unsigned long mem;		/* Guest-physical address of its pages */
	u32 watch_key;
	u32 (*handle_output)(struct device *dev, struct iovec *iov, int num);
	bool (*handle_input)(struct device *dev);
	int fd;				/* input (or the disk), -1 if none */
	unsigned long size;		/* a disk's size in bytes */
	struct wire wire;		/* a network's wire */
	bool seen_output;
	bool waiting, input_ended;	/* the console's input: see below */
};

static struct device devices[LGUEST_MAX_DEVICES];
static int num_devices;
static struct lguest_device_desc *descs;

unsigned long dma_device_pages(int nblock, int nnet)
{
	return PAGE_SIZE * (1 + nblock + nnet);
}

void dma_setup(void)
{
	guest_limit = guest_mem + PAGE_SIZE;
	descs = check_pointer(guest_mem, PAGE_SIZE - 1);
}

/* A descriptor in the first free slot, and the device's pages at the top,
 * which then moves up past them: the Guest's reach grows with each device. */
static struct device *new_device(const char *name, u16 type, u16 features, u16 pages,
				 u32 watch_off)
{
	struct device *dev;
	int i;

	for (i = 0; i < LGUEST_MAX_DEVICES && descs[i].type; i++)
		;
	if (i == LGUEST_MAX_DEVICES || num_devices == LGUEST_MAX_DEVICES)
		die(2, "too many devices (at most %d)", LGUEST_MAX_DEVICES);
	if (guest_limit + pages * PAGE_SIZE > guest_max)
		die(2, "no room above Guest memory for %s's pages", name);
	descs[i].type = type;
	descs[i].features = features;
	descs[i].num_pages = pages;
	descs[i].pfn = pages ? guest_limit / PAGE_SIZE : 0;
	dev = &devices[num_devices++];
	memset(dev, 0, sizeof(*dev));
	dev->name = name;
	dev->mem = pages ? guest_limit : 0;
	dev->watch_key = dev->mem + watch_off;
	dev->fd = -1;
	guest_limit += pages * PAGE_SIZE;
	return dev;
}

/* A struct lguest_dma, checked and turned into an iovec: every section
 * must lie in Guest memory; the list ends at the first length of 0. */
static int dma2iov(u32 dma, struct iovec iov[], u32 **used_len)
{
	struct lguest_dma *d = check_pointer(dma, sizeof(*d));
	int i;

	for (i = 0; i < LGUEST_MAX_DMA_SECTIONS && d->len[i]; i++) {
		iov[i].iov_base = check_pointer(d->addr[i], d->len[i]);
		iov[i].iov_len = d->len[i];
	}
	*used_len = &d->used_len;
	return i;
}

/* A buffer the Guest bound at key, for input: the Host hands back its
 * address and leaves the interrupt to raise in its used_len.  -1: none. */
static int get_dma_buffer(u32 key, struct iovec iov[], u32 **used_len, u32 *irq)
{
	u32 req[2] = { LHREQ_GETDMA, key };
	ssize_t dma = write(lguest_fd, req, sizeof(req));
	int num;

	if (dma < 0)
		return -1;
	num = dma2iov((u32)dma, iov, used_len);
	*irq = **used_len;
	return num;
}

static size_t iov_length(const struct iovec iov[], int num)
{
	size_t len = 0;
	int i;

	for (i = 0; i < num; i++)
		len += iov[i].iov_len;
	return len;
}

/* Copy len bytes of data into the sections, in order. */
static size_t scatter(struct iovec iov[], int num, const u8 *data, size_t len)
{
	size_t done = 0, n;
	int i;

	for (i = 0; i < num && done < len; i++) {
		n = len - done < iov[i].iov_len ? len - done : iov[i].iov_len;
		memcpy(iov[i].iov_base, data + done, n);
		done += n;
	}
	return done;
}

/* read() returned {dma, key}: the device watching that key serves it, and
 * what it returns goes into used_len, where the Guest's driver looks. */
void dma_handle_output(u32 dma, u32 key)
{
	struct iovec iov[LGUEST_MAX_DMA_SECTIONS];
	u32 *used_len;
	int i, num = dma2iov(dma, iov, &used_len);

	for (i = 0; i < num_devices; i++) {
		if (devices[i].handle_output && devices[i].watch_key == key) {
			*used_len = devices[i].handle_output(&devices[i], iov, num);
			return;
		}
	}
	fprintf(stderr, "lguest: Pending dma %#x, key %#x\n", dma, key);
}

bool dma_handle_input(int fd)
{
	int i;

	for (i = 0; i < num_devices; i++)
		if (devices[i].fd == fd && devices[i].handle_input)
			return devices[i].handle_input(&devices[i]);
	return false;
}

/*
 * The console: no pages, output sent to key 0 and written to standard
 * output, input into the one buffer the Guest binds at key 0.  From a
 * terminal the bytes go in as typed; from a pipe or file one line at a
 * time, so a script's lines reach the Guest's shell as separate lines.
 * Three ^C within a second end the Launcher (^C is only a byte now).
 */
static u32 handle_console_output(struct device *dev, struct iovec *iov, int num)
{
	int i;
	u32 len = 0;

	/* A Guest that printed has likely taken the last line: look again. */
	if (dev->waiting && !dev->input_ended) {
		dev->waiting = false;
		watch_device_fd_again(dev->fd);
	}
	for (i = 0; i < num; i++) {
		write_console(iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	return len;
}

static bool handle_console_input(struct device *dev)
{
	struct iovec iov[LGUEST_MAX_DMA_SECTIONS];
	u8 buf[1024];
	u32 *used_len, irq;
	int num = get_dma_buffer(0, iov, &used_len, &irq);
	size_t len;

	if (num < 0) {
		/* No buffer.  A script's next line waits until the Guest has
		 * printed something (it has read the last one, then); what is
		 * typed at a terminal lguest throws away, and so do we. */
		if (!isatty(dev->fd)) {
			dev->waiting = true;
			return false;
		}
		len = read_console(dev->fd, buf, sizeof(buf));
		if (len)
			fprintf(stderr, "lguest: console: no dma buffer! (%zu bytes of input "
				"discarded)\n", len);
		return len != 0;
	}
	len = read_console(dev->fd, buf, iov_length(iov, num) < sizeof(buf) ?
			   iov_length(iov, num) : sizeof(buf));
	*used_len = scatter(iov, num, buf, len);
	trigger_irq(irq);
	dev->input_ended = len == 0;
	return len != 0;
}

void dma_setup_console(void)
{
	struct device *dev = new_device("console", LGUEST_DEVICE_T_CONSOLE, 0, 0, 0);

	dev->handle_output = handle_console_output;
	dev->handle_input = handle_console_input;
	dev->fd = STDIN_FILENO;
	if (console_has_input())
		add_device_fd(dev->fd);
	else
		dev->input_ended = true;
	verbose_say("device %#lx: console\n", dev->mem);
}

/*
 * A block device: a file, and one shared page (struct lguest_block_page)
 * where the Launcher writes the disk's size before the Guest runs and the
 * Guest writes each request before it sends a DMA to the page's address.
 * A write's DMA carries the data; a read's is empty, and the data goes into
 * the reply buffer the Guest bound at the same key.  The result goes in the
 * page (1 done, 2 error) and the reply buffer's interrupt tells the Guest.
 * Like lguestsim's Python Launcher, a request outside the file is refused
 * (result 2, a message) and the file is never written past its end.
 */
static u32 handle_block_output(struct device *dev, struct iovec *iov, int num)
{
	struct lguest_block_page *p = check_pointer(dev->mem, sizeof(*p));
	struct iovec reply[LGUEST_MAX_DMA_SECTIONS];
	unsigned long long off = (unsigned long long)p->sector * 512;
	u32 *used_len, irq, len = 0;
	int result = 2, rnum = get_dma_buffer(dev->mem, reply, &used_len, &irq), i;
	size_t want;
	ssize_t n;

	if (rnum < 0)
		die(1, "Block request didn't give us a dma buffer");
	verbose_say("Block: %s at offset %llu\n", p->type ? "WRITE" : "READ", off);
	if (off >= dev->size) {
		fprintf(stderr, "lguest: block: %s at sector %u is past the end of the "
			"disk (%lu bytes): refused\n", p->type ? "write" : "read",
			p->sector, dev->size);
	} else if (p->type) {
		want = iov_length(iov, num);
		if (off + want > dev->size) {
			fprintf(stderr, "lguest: block: write of %zu bytes at sector %u would "
				"run past the end of the disk: refused\n", want, p->sector);
		} else {
			n = pwritev(dev->fd, iov, num, off);
			result = n >= 0 && (u32)n == p->bytes ? 1 : 2;
		}
	} else {
		for (i = 0; i < rnum; i++) {
			n = pread(dev->fd, reply[i].iov_base, reply[i].iov_len, off + len);
			if (n <= 0)
				break;
			len += n;
			if ((size_t)n < reply[i].iov_len)
				break;
		}
		result = len == p->bytes ? 1 : 2;
	}
	*used_len = p->type ? 0 : len;
	p->result = result;
	trigger_irq(irq);
	return 0;
}

/* Open a disk read-write and learn its size by seeking to its end, which
 * works for a file and a real disk alike.  Both generations use this. */
int open_disk(const char *filename, unsigned long *size)
{
	int fd = open(filename, O_RDWR);
	off_t end;

	if (fd < 0)
		die(2, "Failed to open %s: %s", filename, strerror(errno));
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		die(2, "Failed to find the size of %s: %s", filename, strerror(errno));
	*size = end;
	return fd;
}

void dma_setup_block(const char *filename)
{
	struct device *dev = new_device("block", LGUEST_DEVICE_T_BLOCK,
					LGUEST_DEVICE_F_RANDOMNESS, 1, 0);
	struct lguest_block_page *p = check_pointer(dev->mem, sizeof(*p));

	dev->fd = open_disk(filename, &dev->size);
	dev->handle_output = handle_block_output;
	p->num_sectors = dev->size / 512;
	verbose_say("device %#lx: block %u sectors\n", dev->mem, p->num_sectors);
}

/*
 * A network.  2.6.23's --sharenet mapped one file into every Guest's memory
 * as the network's page, and the Host carried frames from Guest to Guest.
 * Through the native door each Launcher's memory is its own, so here the
 * Launcher stands on the network instead, as --tunnet's does: our address
 * in slot 0 with the promiscuous bit, so the Guest (slot 1) sends us every
 * frame as DMA to the page's own address; we pass them down a wire to the
 * other Launchers (net.c), and put the frames they pass us, if they are
 * for our Guest, into a buffer it bound at its own key (page + 4).
 */
static const u8 launcher_mac[6] = { 0x02, 0x00, 0x00, 0xaa, 0x00, 0x00 };

static u32 handle_net_output(struct device *dev, struct iovec *iov, int num)
{
	u8 frame[1514];
	size_t len = 0, n;
	int i;

	for (i = 0; i < num && len < sizeof(frame); i++) {
		n = iov[i].iov_len < sizeof(frame) - len ? iov[i].iov_len : sizeof(frame) - len;
		memcpy(frame + len, iov[i].iov_base, n);
		len += n;
	}
	dev->seen_output = true;
	wire_send(&dev->wire, frame, len);
	return len;
}

static bool handle_net_input(struct device *dev)
{
	struct iovec iov[LGUEST_MAX_DMA_SECTIONS];
	const u8 *slot = guest_base + dev->mem + 6 * NET_PEERNUM;
	u8 frame[1514];
	u32 *used_len, irq;
	ssize_t len = wire_receive(&dev->wire, frame, sizeof(frame));
	int num;

	if (len < 0)
		return errno == EAGAIN;
	/* Only broadcasts and frames for our Guest's own address go in. */
	if (len < 14 || (!(frame[0] & 1) && ((frame[0] ^ slot[0]) & ~NET_PROMISC ||
					      memcmp(frame + 1, slot + 1, 5))))
		return true;
	num = get_dma_buffer(dev->mem + 4 * NET_PEERNUM, iov, &used_len, &irq);
	if (num < 0) {
		if (dev->seen_output)
			fprintf(stderr, "lguest: network: no dma buffer! (%zd byte frame "
				"discarded)\n", len);
		return true;
	}
	*used_len = scatter(iov, num, frame, len);
	trigger_irq(irq);
	return true;
}

void dma_setup_net(const char *path)
{
	struct device *dev = new_device("net", LGUEST_DEVICE_T_NET,
					NET_PEERNUM | LGUEST_DEVICE_F_RANDOMNESS, 1, 0);
	u8 *page = check_pointer(dev->mem, 6);

	memcpy(page, launcher_mac, 6);
	page[0] |= NET_PROMISC;
	wire_join(&dev->wire, path);
	dev->fd = dev->wire.fd;
	dev->handle_output = handle_net_output;
	dev->handle_input = handle_net_input;
	add_device_fd(dev->fd);
	verbose_say("device %#lx: net on %s, port %d\n", dev->mem, path, dev->wire.port);
}
