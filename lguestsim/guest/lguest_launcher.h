/*
 * lguest_launcher.h: the Guest's contract with the Launcher.
 *
 * Devices are not the Host's business: the Launcher (a user program on the
 * Host) describes them in a page of memory it puts just above the Guest's
 * RAM, and serves them.  The Guest talks to them by DMA: it hands the Host a
 * list of buffers and a "key", and the Host copies the data to whoever has
 * buffers bound to that key, or hands it to the Launcher.  These structures
 * are laid out exactly as in Linux 2.6.23.
 */
#ifndef LGUEST_LAUNCHER_H
#define LGUEST_LAUNCHER_H

#include "lguest.h"

#define LGUEST_MAX_DMA_SECTIONS	16
#define LGUEST_MAX_DEVICES	16
/* Console output goes to this key; the console has no memory of its own. */
#define LGUEST_CONSOLE_DMA_KEY	0
/* Feature bits in a device descriptor.  The low bits belong to the device
 * type: a network device finds its slot on the shared page there. */
#define LGUEST_NET_F_NOCSUM		0x4000	/* no need to checksum packets */
#define LGUEST_DEVICE_F_RANDOMNESS	0x8000	/* its interrupts come at random times */

#ifndef __ASSEMBLER__

/*: D:200 All of a Guest's I/O goes through two hypercalls, and this
 * structure is what both of them carry.  A "struct lguest_dma" lists up to
 * 16 pieces of Guest memory by physical address and length; if there are
 * fewer, a length of 0 ends the list.  No piece may be longer than a page
 * or run over a page boundary: io.py checks every section before it copies
 * a byte, and kills the Guest over a bad one.
 *
 * Transfers are matched up by a "key".  SEND_DMA names a key and one of
 * these; BIND_DMA offers an array of them as receive buffers under a key,
 * with the interrupt to raise when one is filled.  The Host copies from the
 * sender's pieces into the first bound buffer whose used_len is 0, writes
 * the byte count into used_len on both sides and raises the interrupt; a
 * key in the Guest's private memory has no one but the Launcher behind it,
 * so that DMA is handed to the Launcher instead.  By convention a key is a
 * physical address inside the device's own memory, so two devices never
 * share one, and the Host can turn it into the identity of that memory,
 * the way futexes do (host/io.py). */
struct lguest_dma {
	u32 used_len;			/* 0: free; the Host fills it in */
	u32 addr[LGUEST_MAX_DMA_SECTIONS];	/* physical addresses */
	u16 len[LGUEST_MAX_DMA_SECTIONS];	/* lengths; 0 ends the list */
};
_Static_assert(__builtin_offsetof(struct lguest_dma, addr) == 4, "dma addr");
_Static_assert(__builtin_offsetof(struct lguest_dma, len) == 68, "dma len");
_Static_assert(sizeof(struct lguest_dma) == 100, "lguest_dma size");

#ifndef CONFIG_VIRTIO
/*: D:010 The Drivers.
 *
 * A Guest that cannot reach a disk, a network or even a console is not much
 * use, and it is never allowed near real hardware.  Emulating a PCI bus with
 * real-looking cards on it would mean a lot of work in the Host for a slow
 * result, so lguest invents a much simpler bus of its own, with one small
 * driver per kind of device.
 *
 * The whole bus is one page, written by the Launcher just above the top of
 * the Guest's RAM: an array of LGUEST_MAX_DEVICES (16) of these 12-byte
 * descriptors, where type 0 marks an empty slot.  lguestsim's Launcher
 * (launcher/devices.py) fills it in exactly this layout, and our kernel
 * reads it in lguest_bus.c.  The status bits only ever go up, and the Guest
 * is the one that sets them, except REMOVED, which belongs to the Host. */
struct lguest_device_desc {
	u16 type;
#define LGUEST_DEVICE_T_CONSOLE	1
#define LGUEST_DEVICE_T_NET	2
#define LGUEST_DEVICE_T_BLOCK	3
	u16 features;
	/* The Guest reports how far it got with each device in these bits,
	 * so the Launcher can tell what failed even without a console. */
	u16 status;
#define LGUEST_DEVICE_S_ACKNOWLEDGE	1	/* the Guest saw the device */
#define LGUEST_DEVICE_S_DRIVER		2	/* ... found a driver for it */
#define LGUEST_DEVICE_S_DRIVER_OK	4	/* ... and the driver is happy */
#define LGUEST_DEVICE_S_REMOVED		8
#define LGUEST_DEVICE_S_REMOVED_ACK	16
#define LGUEST_DEVICE_S_FAILED		128
	/* The device's own memory, if any: num_pages pages from page pfn. */
	u16 num_pages;
	u32 pfn;
};
_Static_assert(sizeof(struct lguest_device_desc) == 12, "device desc size");
#endif /* !CONFIG_VIRTIO */

/*: D:460 The one page a block device owns, shared between the Guest and the
 * Launcher.  Before the Guest runs, the Launcher writes the size of the disk
 * (its file's length in 512-byte sectors) into num_sectors.  For each request
 * the Guest fills in the first three fields and sends a DMA to the page's
 * own physical address; the Launcher does the reading or writing, stores 1
 * (done) or 2 (failed) in result, and interrupts the Guest through the reply
 * buffer bound at that same address.  block.c is the Guest side,
 * launcher/block.py the other. */
struct lguest_block_page {
	int type;		/* 0 read, 1 write */
	u32 sector;		/* where the request starts, in 512-byte sectors */
	u32 bytes;		/* how many bytes it covers */
	int result;		/* 0 still going, 1 done, 2 failed */
	u32 num_sectors;	/* the size of the disk, from the Launcher */
};
_Static_assert(sizeof(struct lguest_block_page) == 20, "block page size");

/*: D:520 A network device's memory is a page (or more) of these: one slot
 * per machine on the network, each holding the 6-byte Ethernet address that
 * machine publishes.  Everyone on the network maps the same page, so it is
 * the network's only directory.  A slot whose first byte is 0 is free;
 * real addresses we publish always have the "locally assigned" bit (0x02)
 * there, so they cannot be mistaken for it.  Bit 0x01 of that byte would
 * make a real address a multicast one, which no machine can own; here it
 * means "promiscuous: send me every packet". */
struct lguest_net {
	u8 mac[6];
};
_Static_assert(sizeof(struct lguest_net) == 6, "lguest_net size");

#ifdef CONFIG_VIRTIO
/*: D:700 What 2.6.25 changed: the device page.  Devices are virtio devices
 * now, and each descriptor is a short header followed by as much as the
 * device needs, so they are packed one after another and a type of 0 ends
 * the list.  The header: the device's virtio id, how many virtqueues it
 * has, how many bytes of feature bits (there are two such bitmaps: the
 * Launcher's offer, then our acceptance), how many bytes of configuration,
 * and the status bits the driver sets as it goes.  After the header come
 * one lguest_vqconfig per virtqueue (its size, its interrupt, the page its
 * ring starts on), the two bitmaps, and the configuration. */
struct lguest_device_desc {
	u8 type;
	u8 num_vq;
	u8 feature_len;
	u8 config_len;
	u8 status;
	u8 config[0];
} __attribute__((packed));
_Static_assert(sizeof(struct lguest_device_desc) == 5, "2.6.25 device desc size");

struct lguest_vqconfig {
	u16 num;	/* entries in the ring */
	u16 irq;	/* the interrupt the Launcher raises for it */
	u32 pfn;	/* the page where the ring starts */
} __attribute__((packed));
_Static_assert(sizeof(struct lguest_vqconfig) == 8, "vqconfig size");

#define VIRTIO_ID_NET		1
#define VIRTIO_ID_BLOCK		2
#define VIRTIO_ID_CONSOLE	3
#define VIRTIO_CONFIG_S_ACKNOWLEDGE	1	/* we saw the device */
#define VIRTIO_CONFIG_S_DRIVER		2	/* ... and have a driver for it */
#define VIRTIO_CONFIG_S_DRIVER_OK	4	/* ... which is happy */
#define VIRTIO_CONFIG_S_FAILED		0x80	/* ... or gave up */
#endif /* CONFIG_VIRTIO */

#endif /* !__ASSEMBLER__ */
#endif /* LGUEST_LAUNCHER_H */
