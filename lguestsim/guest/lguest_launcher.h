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

/*: D:200 A "struct lguest_dma" describes one transfer: up to 16 pieces of
 * Guest memory, given by physical address and length.  A length of 0 ends
 * the list early.  No piece may be longer than a page or cross a page
 * boundary: the Host copies page by page and refuses anything else (it
 * kills the Guest).  For output the Guest sends one with SEND_DMA; for input
 * it binds an array of them to a key with BIND_DMA, and the Host writes the
 * number of bytes it put there into used_len before raising the interrupt. */
struct lguest_dma {
	u32 used_len;			/* 0: free; the Host fills it in */
	u32 addr[LGUEST_MAX_DMA_SECTIONS];	/* physical addresses */
	u16 len[LGUEST_MAX_DMA_SECTIONS];	/* lengths; 0 ends the list */
};
_Static_assert(__builtin_offsetof(struct lguest_dma, addr) == 4, "dma addr");
_Static_assert(__builtin_offsetof(struct lguest_dma, len) == 68, "dma len");
_Static_assert(sizeof(struct lguest_dma) == 100, "lguest_dma size");

/*: D:010 The Launcher describes each device with one of these.  An array of
 * LGUEST_MAX_DEVICES of them fills the page just above the top of the
 * Guest's RAM.  Type 0 means "no device here". */
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

/*: D:460 A block device's page.  The Launcher writes the size of the disk
 * into num_sectors before we start.  For each request we write the first
 * three fields and send a DMA to the page's address; the Launcher does the
 * work, writes "result" (1 done, 2 error) and interrupts us. */
struct lguest_block_page {
	int type;		/* 0 read, 1 write */
	u32 sector;		/* where the request starts, in 512-byte sectors */
	u32 bytes;		/* how many bytes it covers */
	int result;		/* 0 still going, 1 done, 2 failed */
	u32 num_sectors;	/* the size of the disk, from the Launcher */
};
_Static_assert(sizeof(struct lguest_block_page) == 20, "block page size");

/*: D:520 A network device's memory is a page (or more) of these, one slot
 * per machine on the network, where each publishes its Ethernet address.
 * A slot whose first byte is 0 is free: real addresses we use always have
 * the "locally assigned" bit (0x02) set there.  The lowest bit of that byte
 * would mean multicast in a real address; here it means "promiscuous: send
 * me every packet". */
struct lguest_net {
	u8 mac[6];
};
_Static_assert(sizeof(struct lguest_net) == 6, "lguest_net size");

#endif /* !__ASSEMBLER__ */
#endif /* LGUEST_LAUNCHER_H */
