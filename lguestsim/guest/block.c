/*: D:400 The Guest block driver (block.c).
 *
 * A disk is a file on the Launcher's side (--block=FILE), and each disk
 * owns one page of memory shared with the Launcher, laid out as a "struct
 * lguest_block_page" (D:460).  A request always goes the same way: we write
 * what we want into the page (read or write, the first sector, how many
 * bytes), then send a DMA to the page's own physical address.  For a write
 * that DMA carries the data; for a read it carries nothing and only says
 * "look at the page", and the Launcher puts the data into a reply buffer we
 * bound at the same address beforehand.  Either way it writes the result
 * into the page and raises our interrupt.
 *
 * Linux's driver sits under the block layer, which queues requests and
 * hands them to the driver one at a time.  Ours is called by the read() and
 * write() system calls on a disk's file descriptor (process.c), which have
 * already cut the request into pieces of physical memory; the disks appear
 * to the program as file descriptors 3 onwards, not as /dev/lgba.  The
 * shape is the same as Linux's: one request in flight per disk, finished by
 * the interrupt.
 */

#include "guest.h"
#include "lguest_launcher.h"

#define MAX_DISKS	4

/*: D:420 Everything we keep about one disk.  Linux's version also holds a
 * lock, a gendisk and a major number for the block layer; we keep the name
 * (for messages), the interrupt, the page's physical address (which is the
 * disk's key in both directions) and the page itself, mapped.  Then the one
 * reply buffer, bound at that key for reads, and the request in flight,
 * which the interrupt handler needs to find.  There are at most MAX_DISKS
 * of these, in a static array. */
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

/*: D:495 Ending a request.  Linux's driver first used end_request(), which
 * turned out to end only the first piece of a request, so a request of
 * three pieces made the driver go round three times; ending the whole
 * request at once made its disk well over twice as fast.  Ours is never
 * more than a page and is ended in one go anyway: ending it is a single
 * store into result, which the sleeping lgb_do_request() is waiting to
 * see. */
static void end_entire_request(struct blk_request *req, int uptodate)
{
	req->result = uptodate ? 1 : 2;
}

/*: D:490 The disk's interrupt: the Launcher has finished our request and
 * written the result into the page.  Linux passes the handler its disk as
 * an argument; ours gets only the interrupt number, so it looks the disk up
 * by it.  An interrupt with no request in flight, or with no result in the
 * page yet, is not for us, and we say so rather than guess.  Otherwise we
 * end the request (result 1 means it worked, 2 that it failed), forget it,
 * and hand the reply buffer back (used_len = 0) for the next read. */
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

/*: D:480 A request's memory becomes the sections of a "struct lguest_dma".
 * Linux has to walk the block layer's bios and bio_vecs to find the pieces,
 * having told the block layer to give it no more than 16 pieces, none
 * crossing a page; our "struct blk_request" (guest.h) already is a list of
 * such pieces, built by process.c from the program's pages.  A piece of
 * length 0 would look like the end of the list, so there are none, and if
 * the list is not full, a 0 length ends it.  We return the total, which
 * setup_req() writes into the page as the request's size. */
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

/*: D:470 Setting up a request, the part reads and writes share: in the
 * page, the type (1 write, 0 read), the first sector and result 0, "not
 * finished"; in the blockdev, the request, so the interrupt handler can end
 * it; and in the DMA we are given, the request's memory, whose total length
 * goes into the page as the number of bytes.  Everything the Launcher needs
 * is now in the page. */
static void setup_req(struct blockdev *bd, int type, struct blk_request *req,
		      struct lguest_dma *dma)
{
	bd->lb_page->type = type;
	bd->lb_page->sector = req->sector;
	bd->lb_page->result = 0;
	bd->req = req;
	bd->lb_page->bytes = req_to_dma(req, dma);
}

/*: D:450 A write: the request's memory goes into the DMA we send to the
 * disk's key, so the Launcher finds the data in the very DMA that tells it
 * what to do.  The DMA can live on our stack, because SEND_DMA to the
 * Launcher does not return until the Launcher has taken it. */
static void do_write(struct blockdev *bd, struct blk_request *req)
{
	struct lguest_dma send;

	setup_req(bd, 1, req, &send);
	lguest_send_dma(bd->phys_addr, &send);
}

/*: D:640 A read, the other half of D:450.  Here the request's memory goes
 * into the reply buffer we bound at the disk's key, and what we send is an
 * empty DMA (one 0 length, see empty_dma() above), just to say that a
 * request is waiting in the page.  The Launcher asks the Host for our bound
 * buffer with LHREQ_GETDMA, reads the file straight into the pieces it
 * lists (the program's own pages), and raises the interrupt whose number
 * the Host left in its used_len. */
static void do_read(struct blockdev *bd, struct blk_request *req)
{
	struct lguest_dma ping;

	setup_req(bd, 0, req, &bd->dma);
	empty_dma(&ping);
	lguest_send_dma(bd->phys_addr, &ping);
}

/* Set by the word "endfirstpiece" on the command line (D:496). */
static int end_first_piece;

/* The part of "req" from byte "skip" on, as a request of its own. */
static void rest_of(const struct blk_request *req, u32 skip, struct blk_request *part)
{
	unsigned int i;

	part->write = req->write;
	part->sector = req->sector + skip / SECTOR_SIZE;
	part->pieces = 0;
	for (i = 0; i < req->pieces; i++) {
		if (skip >= req->len[i]) {
			skip -= req->len[i];
			continue;
		}
		part->phys[part->pieces] = req->phys[i] + skip;
		part->len[part->pieces] = req->len[i] - skip;
		part->pieces++;
		skip = 0;
	}
}

/*: D:496 How lguest's driver went before D:495's fix, kept to measure it:
 * the word "endfirstpiece" on the command line.  Then finishing a request
 * ends only its first piece, and the rest comes back to the driver as a
 * request again, which the Launcher carries out again in full: a request
 * of three pieces moves six, in three trips.  Ours is at most two pieces
 * (one page, process.c), so a request that crosses a page boundary costs
 * two trips instead of one.  The disk works in whole sectors, so what is
 * ended is the first piece rounded up to a sector; the data is right all
 * along, since the first trip already moved all of it. */
static int do_request_piece_by_piece(struct blockdev *bd, struct blk_request *req)
{
	struct blk_request part;
	u32 done = 0, total = 0;
	unsigned int i;

	for (i = 0; i < req->pieces; i++)
		total += req->len[i];
	while (done < total) {
		rest_of(req, done, &part);
		part.result = 0;
		if (part.write)
			do_write(bd, &part);
		else
			do_read(bd, &part);
		wait_event(part.result);
		if (part.result != 1)
			return -EIO;
		done += part.len[0] + SECTOR_SIZE - 1;
		done -= done % SECTOR_SIZE;
	}
	return 0;
}

/*: D:440 Where requests come in, from process.c's read() and write() on a
 * disk.  Only one may be in flight per disk, because the page holds only
 * one: if another is still going we wait for it to end (with one process
 * that never happens, but it is the rule that keeps the page consistent).
 * Linux's version gets requests from the block layer's queue and stops the
 * queue until the interrupt; ours sends the request and then sleeps until
 * the interrupt handler has ended it.
 *
 * The sleep is short, if it happens at all.  The DMA went to a key in our
 * private memory, so the Host stops running us and our Launcher serves the
 * request before we run again.  By the time SEND_DMA returns, the answer is
 * in memory and the interrupt is pending; a system call runs with
 * interrupts on, so the Host usually delivers it at once, and wait_event()
 * finds the request already ended. */
int lgb_do_request(unsigned int disk, struct blk_request *req)
{
	struct blockdev *bd;

	if (disk >= num_disks)
		return -ENODEV;
	bd = &disks[disk];
	wait_event(!bd->req);

	if (end_first_piece)
		return do_request_piece_by_piece(bd, req);
	req->result = 0;
	if (req->write)
		do_write(bd, req);
	else
		do_read(bd, req);
	wait_event(req->result);
	return req->result == 1 ? 0 : -EIO;
}

/*: D:430 Linux gives each disk a table of operations for the rest of the
 * kernel, and the lguest disk's table is nearly empty.  Our disks offer
 * even less: apart from lgb_do_request(), just their size, which the
 * Launcher wrote into the page before we started.  process.c uses it to
 * decide whether a file descriptor is a disk at all, and where it ends. */
int lgb_num_sectors(unsigned int disk, u32 *num_sectors)
{
	if (disk >= num_disks)
		return -ENODEV;
	*num_sectors = disks[disk].lb_page->num_sectors;
	return 0;
}

/*: D:425 The bus has found a disk.  The descriptor gives its page's
 * physical page number: we map the page, take the device's interrupt for
 * lgb_irq(), and bind our one reply buffer at the page's address, which is
 * this disk's key for requests going out and for replies coming back.
 * Linux's probe is mostly block-layer setup (a major number, a gendisk, a
 * queue limited to 16 pieces that never cross a page) and also feeds the
 * interrupt's timing to the random number pool when the descriptor has
 * LGUEST_DEVICE_F_RANDOMNESS, as disks always do; we have no such pool.
 * Disks are named lgba, lgbb and so on in the order the bus finds them. */
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
		free_irq(bd->irq);
		return -ENOMEM;
	}
	num_disks++;
	end_first_piece = cmdline_has("endfirstpiece");
	if (end_first_piece)
		printk("%s: ending one piece of a request at a time (endfirstpiece)\n", bd->name);
	sectors = bd->lb_page->num_sectors;
	printk("%s: %u sectors (%u KiB), key %x, irq %u\n", bd->name, sectors, sectors / 2,
	       bd->phys_addr, bd->irq);
	return 0;
}

/*: D:410 And the driver, as the bus sees it, in the same form as the
 * console's (D:360).  Like the console, the disk has nothing to undo before
 * power-off. */
struct lguest_driver block_driver = {
	.name = "lguestblk",
	.device_type = LGUEST_DEVICE_T_BLOCK,
	.probe = lguestblk_probe,
};
