/*: D:400
 * block.c: the Guest block driver.
 *
 * A disk is a file on the Launcher's side (--block=FILE), and each one has
 * a page of memory shared with the Launcher: a "struct lguest_block_page"
 * (lguest_launcher.h).  A request goes like this: we write what we want
 * into the page (read or write, which sector, how many bytes), then send a
 * DMA to the page's own address.  For a write the DMA carries the data; for
 * a read it is an empty "ping", and the Launcher puts the data into a
 * buffer we bound to the same key beforehand.  Either way the Launcher
 * writes the result into the page and interrupts us.
 *
 * Linux's driver sits under the block layer, which queues requests and
 * hands them over one at a time.  Ours is called by the read() and write()
 * system calls on a disk's file descriptor (process.c), which have already
 * cut the request into pieces of physical memory.  The shape is the same:
 * one request in flight, finished by the interrupt.
 */
#include "guest.h"
#include "lguest_launcher.h"

#define MAX_DISKS	4

/*: D:420 Everything we know about one disk.  The single bound reply
 * buffer lives here, and so does a pointer to the request in flight (at
 * most one at a time), so the interrupt handler knows what it finished. */
struct blockdev {
	char name[8];			/* "lgba", "lgbb", ... */
	unsigned int irq;
	/* The physical address of the device's page: both where we send our
	 * requests and where we bind the reply buffer (keys are addresses). */
	u32 phys_addr;
	/* The same page, mapped so we can read and write it. */
	struct lguest_block_page *lb_page;
	/* The reply buffer bound at phys_addr, and the request in flight. */
	struct lguest_dma dma;
	struct blk_request *volatile req;
};

static struct blockdev disks[MAX_DISKS];
static unsigned int num_disks;

/*: D:495 Finishing a request.  Linux first ended a request one chunk at a
 * time, then learned to end the whole request in one go, which made the
 * disk 130% faster.  Ours is never more than a page, so ending it is one
 * store, which wakes whoever is waiting for it. */
static void end_entire_request(struct blk_request *req, int uptodate)
{
	req->result = uptodate ? 1 : 2;
}

/*: D:490 The interrupt: the Launcher has finished our request and written
 * the result into the page.  We end the request, forget it, and hand the
 * reply buffer back (used_len = 0) for the next one. */
static void lgb_irq(unsigned int irq)
{
	struct blockdev *bd = NULL;
	unsigned int i;

	for (i = 0; i < num_disks; i++)
		if (disks[i].irq == irq)
			bd = &disks[i];
	if (!bd || !bd->req) {
		printk("lgb: interrupt %u, but no request in flight\n", irq);
		return;
	}
	if (!bd->lb_page->result) {
		printk("%s: interrupt, but no result yet\n", bd->name);
		return;
	}
	end_entire_request(bd->req, bd->lb_page->result == 1);
	bd->req = NULL;
	bd->dma.used_len = 0;
}

/*: D:480 A request's pieces become the sections of a "struct lguest_dma":
 * each piece is already within one page, as the Host insists.  A piece of
 * length 0 would end the list early, so there are none.  We return the
 * total length. */
static u32 req_to_dma(const struct blk_request *req, struct lguest_dma *dma)
{
	unsigned int i;
	u32 len = 0;

	for (i = 0; i < req->pieces; i++) {
		dma->addr[i] = req->phys[i];
		dma->len[i] = req->len[i];
		len += req->len[i];
	}
	if (i < LGUEST_MAX_DMA_SECTIONS)
		dma->len[i] = 0;
	return len;
}

/* An empty DMA: something to send when we have nothing to say but "go". */
static void empty_dma(struct lguest_dma *dma)
{
	dma->len[0] = 0;
}

/*: D:470 Setting up a request: what, where, how much, and "not done yet"
 * in the page; the request itself where the interrupt will find it. */
static void setup_req(struct blockdev *bd, int type, struct blk_request *req,
		      struct lguest_dma *dma)
{
	bd->lb_page->type = type;
	bd->lb_page->sector = req->sector;
	bd->lb_page->result = 0;
	bd->req = req;
	bd->lb_page->bytes = req_to_dma(req, dma);
}

/*: D:450 A write: the request's memory goes in the DMA we send. */
static void do_write(struct blockdev *bd, struct blk_request *req)
{
	struct lguest_dma send;

	setup_req(bd, 1, req, &send);
	lguest_send_dma(bd->phys_addr, &send);
}

/* A read: the request's memory goes in the reply buffer we bound, and what
 * we send is empty, just to say a request is waiting. */
static void do_read(struct blockdev *bd, struct blk_request *req)
{
	struct lguest_dma ping;

	setup_req(bd, 0, req, &bd->dma);
	empty_dma(&ping);
	lguest_send_dma(bd->phys_addr, &ping);
}

/*: D:440 Where requests come in.  One at a time: if one is still in
 * flight we wait for it to end first (with one process that never happens,
 * but this is the rule that lets the device page hold a single request).
 * Then we send it and sleep until the interrupt handler has ended it.
 *
 * The sleep is short: the DMA went to the Launcher, which serves it before
 * the Host runs us again, so by the time SEND_DMA returns, the answer is in
 * memory and the interrupt is waiting for us. */
int lgb_do_request(unsigned int disk, struct blk_request *req)
{
	struct blockdev *bd;

	if (disk >= num_disks)
		return -ENODEV;
	bd = &disks[disk];
	wait_event(!bd->req);

	req->result = 0;
	if (req->write)
		do_write(bd, req);
	else
		do_read(bd, req);
	wait_event(req->result);
	return req->result == 1 ? 0 : -EIO;
}

/*: D:430 Linux gives each disk a table of operations for the rest of the
 * kernel, and it is nearly empty.  Ours have even less: their size, which
 * the Launcher wrote into the page before we started. */
int lgb_num_sectors(unsigned int disk, u32 *num_sectors)
{
	if (disk >= num_disks)
		return -ENODEV;
	*num_sectors = disks[disk].lb_page->num_sectors;
	return 0;
}

/*: D:425 The bus found a disk.  We map its page (its physical page number
 * is in the descriptor), take its interrupt, and bind our one reply buffer
 * at the page's address, which is the key for this disk in both
 * directions.  Linux would also tell the random number pool about the
 * interrupt if the descriptor has LGUEST_DEVICE_F_RANDOMNESS; we have no
 * such pool. */
static int lguestblk_probe(struct lguest_device *dev)
{
	struct blockdev *bd;
	u32 sectors;

	if (num_disks == MAX_DISKS) {
		printk("lgb: only %u disks are supported\n", MAX_DISKS);
		return -ENOMEM;
	}
	bd = &disks[num_disks];
	bd->name[0] = 'l';
	bd->name[1] = 'g';
	bd->name[2] = 'b';
	bd->name[3] = 'a' + num_disks;
	bd->name[4] = '\0';
	bd->irq = lgdev_irq(dev);
	bd->req = NULL;
	bd->dma.used_len = 0;
	bd->dma.len[0] = 0;
	bd->phys_addr = dev->desc->pfn << PAGE_SHIFT;
	bd->lb_page = map_device_pages(dev->desc->pfn, 1);

	request_irq(bd->irq, lgb_irq);
	if (lguest_bind_dma(bd->phys_addr, &bd->dma, 1, bd->irq) != 0) {
		printk("%s: the Host refused our reply buffer\n", bd->name);
		return -ENOMEM;
	}
	num_disks++;
	sectors = bd->lb_page->num_sectors;
	printk("%s: %u sectors (%u KiB), key %x, irq %u\n", bd->name, sectors, sectors / 2,
	       bd->phys_addr, bd->irq);
	return 0;
}

/*: D:410 And the driver, as the bus sees it. */
struct lguest_driver block_driver = {
	.name = "lguestblk",
	.device_type = LGUEST_DEVICE_T_BLOCK,
	.probe = lguestblk_probe,
};
