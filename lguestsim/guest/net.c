/*: D:500 The Guest network driver (net.c), the last of the three.
 *
 * A network here is a page of memory (or a few) that every machine on it
 * maps: other Guests, each through its own Launcher (--sharenet), or the
 * Launcher itself, standing in for the Host's side of a TAP device
 * (--tunnet).  The page is an array of slots, one per machine, where each
 * publishes its Ethernet address (D:520), and the Launcher tells us which
 * slot is ours.  There is no switch and no wire: to send a packet we look
 * through the slots ourselves and send a DMA straight to each machine that
 * should have it, at a key made from the page's address and its slot
 * number.  What others send us lands in the receive buffers we bound at
 * our own key, and the Host raises our interrupt.
 *
 * Linux hands the packets it receives to its network stack.  We have none,
 * so the end of this file is a protocol in miniature that the kernel
 * answers by itself, the way Linux answers a ping (D:680).
 */

#include "guest.h"
#include "lguest_launcher.h"
#include "ether.h"

#define NUM_SKBS	8	/* receive buffers, as in Linux's driver */

/* The bit that makes an Ethernet address a multicast (or broadcast) one.
 * Published in our slot, it means "promiscuous": send me everything. */
#define PROMISC_BIT	0x01

/* Waiting for echo replies: at most this long. */
#define PING_TIMEOUT_NS	10000000	/* 10 ms */

/*: M:011 The original driver drew a list of shortcomings from a networking
 * maintainer, and the list fits this one too.  Everything a packet causes
 * happens inside the interrupt handler, even sending the answer to an echo
 * request; Linux's "NAPI" would mask the interrupt (pv.mask_irq() exists)
 * and work through the buffers later, outside the handler, which keeps a
 * busy network from starving everything else.  The Ethernet address is
 * fixed at probe time, with no way to change it (a new system call would
 * have to republish the slot).  And there can be only one network device,
 * because its state is one static structure, where Linux allowed several,
 * each with its own page.  Any of the three makes a good exercise. */

/*: D:530 Everything we know about the network device.  The mapped page(s)
 * of slots and their physical address, which every key on this network is
 * made from; their size, which says how many slots there are; our own slot
 * and the address we publish in it; and the receive buffers with the array
 * of DMAs that describes them to the Host.  Linux keeps this beside its
 * "struct net_device"; we have just one of them, lguestnet. */
struct lguestnet_info {
	/* The mapped device page(s): an array of "struct lguest_net". */
	struct lguest_net *peer;
	/* Their physical address, and their size in bytes. */
	u32 peer_phys;
	u32 mapsize;
	/* The bus's device, for its interrupt number. */
	struct lguest_device *lgdev;
	/* Our slot in the array, and our own address. */
	unsigned int me;
	u8 dev_addr[ETH_ALEN];
	int promisc;
	/* The receive buffers, described to the Host by an array of DMAs. */
	u8 *skb[NUM_SKBS];
	struct lguest_dma dma[NUM_SKBS];
	/* Counting, as ifconfig would show. */
	u32 rx_packets, rx_bytes, tx_packets, tx_bytes, tx_carrier_errors, rx_dropped;
};
static struct lguestnet_info lguestnet;

/* The receive buffers themselves, 1536 bytes apart from the start of a
 * page: some of them cross a page boundary, so their DMAs need two
 * sections, just as Linux's packet buffers may. */
static u8 rx_buffers[NUM_SKBS][1536] __attribute__((aligned(PAGE_SIZE)));

static unsigned int num_slots(const struct lguestnet_info *info)
{
	return info->mapsize / sizeof(struct lguest_net);
}

/* How many bytes from "data" to the end of its page. */
static u32 rest_of_page(const void *data)
{
	return PAGE_SIZE - ((u32)data % PAGE_SIZE);
}

/*: D:650 A buffer in kernel memory as the sections of a DMA, one per page
 * it touches: the network's counterpart of the block driver's req_to_dma()
 * (D:480).  Linux's skb_to_dma() also has to handle packets in fragments;
 * our packets are always in one piece, but even one 1514-byte packet may
 * cross a page, and then it takes two sections.  If it uses fewer than 16,
 * a 0 length ends the list.  Both the receive buffers (fill_slot(), D:560)
 * and every packet we send (transfer_packet()) go through here. */
static void buf_to_dma(const void *data, u32 len, struct lguest_dma *dma)
{
	const u8 *p = data;
	u32 i, seg, piece;

	for (i = seg = 0; i < len && seg < LGUEST_MAX_DMA_SECTIONS; seg++, i += piece) {
		piece = rest_of_page(p + i);
		if (piece > len - i)
			piece = len - i;
		dma->addr[seg] = __pa(p + i);
		dma->len[seg] = piece;
	}
	if (seg < LGUEST_MAX_DMA_SECTIONS)
		dma->len[seg] = 0;
}

/*: D:570 Every machine on the network binds its receive buffers at its own
 * key: the physical address of the network page plus 4 times its slot
 * number, since the Host wants keys that are multiples of 4.  So sending to
 * slot n means SEND_DMA to peer_key(n), and receiving means binding at
 * peer_key(me).  Each Guest maps the page at its own physical address, but
 * the Host compares keys by the memory behind them, not by their value, so
 * all of them mean the same slot (host/io.py). */
static u32 peer_key(const struct lguestnet_info *info, unsigned int peernum)
{
	return info->peer_phys + 4 * peernum;
}

/*
 * Who should receive a packet: the questions lguestnet_start_xmit() (D:655)
 * asks of each slot.  First, our own promiscuous mode, which we publish in
 * our slot by setting bit 0x01 of the first byte (D:520).
 */
static void lguestnet_set_promisc(struct lguestnet_info *info, int on)
{
	info->promisc = on;
	if (on)
		info->peer[info->me].mac[0] |= PROMISC_BIT;
	else
		info->peer[info->me].mac[0] &= ~PROMISC_BIT;
}

static int promisc(const struct lguestnet_info *info, unsigned int peer)
{
	return info->peer[peer].mac[0] & PROMISC_BIT;
}

/* Does this peer publish this address?  The promiscuous bit is not part
 * of the address, so it is left out of the first byte. */
static int mac_eq(const u8 *mac, const struct lguestnet_info *info, unsigned int peer)
{
	unsigned int i;

	if ((info->peer[peer].mac[0] & ~PROMISC_BIT) != mac[0])
		return 0;
	for (i = 1; i < ETH_ALEN; i++)
		if (info->peer[peer].mac[i] != mac[i])
			return 0;
	return 1;
}

/* A slot is free when its first byte is 0: published addresses always
 * have the "locally assigned" bit (0x02) there. */
static int unused_peer(const struct lguestnet_info *info, unsigned int peer)
{
	return info->peer[peer].mac[0] == 0;
}

/*: D:660 One packet to one peer.  We describe the packet with a DMA and
 * send it to the peer's key; the Host copies it into one of the peer's
 * free receive buffers, raises the peer's interrupt, and writes the number
 * of bytes it copied into our used_len.  (The Launcher's slot on a --tunnet
 * network is a key in our private memory, so there the Launcher takes the
 * packet and fills in used_len itself.)  Less than the whole packet means
 * the peer had no free buffer, or has left; that counts as a carrier
 * error, as Linux counts it.  Returns 1 if the peer got it all. */
static int transfer_packet(struct lguestnet_info *info, const void *frame, u32 len,
			   unsigned int peernum)
{
	struct lguest_dma dma;

	buf_to_dma(frame, len, &dma);
	lguest_send_dma(peer_key(info, peernum), &dma);
	if (dma.used_len != len) {
		info->tx_carrier_errors++;
		return 0;
	}
	info->tx_bytes += len;
	info->tx_packets++;
	return 1;
}

/*: D:655 Sending a packet (Linux's start_xmit()).  A real card puts the
 * packet on the wire and lets each receiver decide whether it wants it; we
 * decide for them, by looking at the addresses published in the page.  A
 * broadcast (or multicast) packet goes to everyone; a peer that published
 * the promiscuous bit gets everything; the rest get only what is addressed
 * to them.  Free slots are skipped, and so is our own: a Guest cannot
 * send a DMA to itself.  Each peer that qualifies costs one SEND_DMA, so a
 * broadcast on a full network is many hypercalls.  Returns how many peers
 * took it. */
static unsigned int lguestnet_start_xmit(struct lguestnet_info *info, const void *frame,
					 u32 len)
{
	const u8 *dest = frame;		/* the frame starts with its destination */
	int broadcast = dest[0] & 0x01;	/* broadcast is a kind of multicast */
	unsigned int i, sent = 0;

	for (i = 0; i < num_slots(info); i++) {
		if (i == info->me || unused_peer(info, i))
			continue;
		if (!broadcast && !promisc(info, i) && !mac_eq(dest, info, i))
			continue;
		sent += transfer_packet(info, frame, len, i);
	}
	return sent;
}

/* The echo request we are waiting on, if any.  The receive interrupt fills
 * in the replies as they come. */
static struct {
	volatile int active;
	u16 seq;
	unsigned int expected;
	volatile unsigned int got;
	struct lg_ping *result;
} ping;

static int is_for_us(const struct lguestnet_info *info, const u8 *dest)
{
	unsigned int i;

	if (dest[0] & 0x01)
		return 1;
	for (i = 0; i < ETH_ALEN; i++)
		if (dest[i] != info->dev_addr[i])
			return 0;
	return 1;
}

/* A reply to the request we are waiting on: note who answered and how long
 * the round trip took, by our own clock (the stamp is ours, echoed). */
static void ping_reply(struct ping_frame *p)
{
	unsigned int n = ping.got;

	if (!ping.active || htons(p->seq) != ping.seq || n >= PING_MAX_REPLIES)
		return;
	memcpy(ping.result->reply[n].mac, p->h_source, ETH_ALEN);
	ping.result->reply[n].seq = htons(p->seq);
	ping.result->reply[n].ns = tsc_to_ns(read_tsc() - p->stamp);
	ping.got = n + 1;
}

/* An echo request: the answer is the same frame, turned round, sent from
 * the very buffer it arrived in (we do this before handing the buffer back
 * to the Host). */
static void ping_answer(struct lguestnet_info *info, struct ping_frame *p)
{
	char who[18];

	memcpy(p->h_dest, p->h_source, ETH_ALEN);
	memcpy(p->h_source, info->dev_addr, ETH_ALEN);
	p->op = PING_REPLY;
	mac_to_str(who, p->h_dest);
	printk("lguestnet: echo request from %s (seq %u): %s\n", who, htons(p->seq),
	       lguestnet_start_xmit(info, p, sizeof(*p)) ? "answered" : "could not answer");
}

/* Linux's netif_rx(): where a received frame goes up the stack.  Ours is
 * one protocol deep.  With promiscuous mode on we also see frames meant for
 * others: we say so, and leave them alone. */
static void netif_rx(struct lguestnet_info *info, u8 *frame, u32 len)
{
	struct ping_frame *p = (struct ping_frame *)frame;
	char from[18], to[18];

	if (!is_for_us(info, p->h_dest)) {
		mac_to_str(from, p->h_source);
		mac_to_str(to, p->h_dest);
		printk("lguestnet: overheard %u bytes from %s to %s\n", len, from, to);
		return;
	}
	if (len < sizeof(*p) || p->h_proto != htons(ETH_P_LGPING)) {
		info->rx_dropped++;
		return;
	}
	if (p->op == PING_REQUEST)
		ping_answer(info, p);
	else if (p->op == PING_REPLY)
		ping_reply(p);
}

/*: D:560 Receiving.  A slot of our receive array is the Host's to fill
 * whenever its used_len is 0, so handing a slot over takes two steps in a
 * fixed order: first describe its buffer (ETH_FRAME_LEN bytes, the largest
 * Ethernet frame), then clear used_len.  The barrier keeps the compiler
 * from swapping them.  Linux needs a real write barrier there (wmb()),
 * since the Host could be reading the array from another processor; our
 * simulated machine has only one. */
static void fill_slot(struct lguestnet_info *info, unsigned int slot)
{
	buf_to_dma(info->skb[slot], ETH_FRAME_LEN, &info->dma[slot]);
	barrier();
	info->dma[slot].used_len = 0;
}

/*: D:665 The receive interrupt: one or more buffers have a packet in them,
 * and each one's used_len says how long it is.  We look at every slot,
 * drop lengths no real frame could have, and hand each frame to netif_rx()
 * above, our network stack in miniature.  Linux refills the slot with a
 * fresh buffer before it passes the old one up; we deal with each packet
 * where it lies (an echo request is even answered from the very buffer),
 * and hand the slot back with fill_slot() only when we are done with it. */
static void lguestnet_rcv(unsigned int irq)
{
	struct lguestnet_info *info = &lguestnet;
	unsigned int i;
	u32 length;

	(void)irq;
	for (i = 0; i < NUM_SKBS; i++) {
		length = info->dma[i].used_len;
		if (length == 0)
			continue;
		if (length < ETH_HLEN || length > ETH_FRAME_LEN) {
			info->rx_dropped++;
		} else {
			info->rx_packets++;
			info->rx_bytes += length;
			netif_rx(info, info->skb[i], length);
		}
		fill_slot(info, i);
	}
}

/*: D:550 Bringing the device up.  We publish our address in our slot, so
 * that others can find us (and our promiscuous bit, if we already want
 * everything), get every receive buffer ready, and bind the array of them
 * at our own key, asking for the device's interrupt when a packet arrives.
 * Linux does this when the interface is brought up with ifconfig; we do it
 * at the end of the probe, and the probe fails if the Host refuses the
 * buffers. */
static int lguestnet_open(struct lguestnet_info *info)
{
	unsigned int i;

	memcpy(info->peer[info->me].mac, info->dev_addr, ETH_ALEN);
	lguestnet_set_promisc(info, info->promisc);
	for (i = 0; i < NUM_SKBS; i++) {
		info->skb[i] = rx_buffers[i];
		fill_slot(info, i);
	}
	return lguest_bind_dma(peer_key(info, info->me), info->dma, NUM_SKBS,
			       lgdev_irq(info->lgdev));
}

/*: D:670 And down, just before power-off (the bus's shutdown, D:150): we
 * clear our slot and unbind the receive buffers.  The other machines on the
 * page then skip our slot as free; one that sends to our key anyway finds
 * nothing bound there, and its transfer_packet() counts a carrier error,
 * instead of the Host filling memory that nobody watches any more. */
static void lguestnet_close(struct lguest_device *dev)
{
	struct lguestnet_info *info = &lguestnet;

	(void)dev;
	memset(&info->peer[info->me], 0, sizeof(info->peer[info->me]));
	lguest_unbind_dma(peer_key(info, info->me), info->dma);
	printk("lguestnet: left the network (slot %u cleared)\n", info->me);
}

/*: D:510 The probe.  The descriptor tells us where the network page is
 * (pfn and num_pages) and which slot is ours: the low bits of its features,
 * masked by the size of the network's memory.  The high bits are flags,
 * such as LGUEST_NET_F_NOCSUM, "no need for checksums", which matters to
 * Linux's stack and not to ours.  Our Ethernet address is made as Linux's
 * driver makes it: 02 (locally assigned), 00, the two bytes of the Guest
 * id the Host gave us at LGUEST_INIT, then 00 00, so Guests on one Host
 * never clash.  Then we take the interrupt and bring the device up. */
static int lguestnet_probe(struct lguest_device *dev)
{
	struct lguestnet_info *info = &lguestnet;
	char mac[18];

	if (info->peer) {
		printk("lguestnet: only one network device is supported\n");
		return -ENOMEM;
	}
	info->lgdev = dev;
	info->mapsize = PAGE_SIZE * dev->desc->num_pages;
	info->peer_phys = dev->desc->pfn << PAGE_SHIFT;
	info->me = dev->desc->features & (info->mapsize - 1);
	if (!info->mapsize || info->me >= num_slots(info)) {
		printk("lguestnet: slot %u does not fit in %u pages\n", info->me,
		       dev->desc->num_pages);
		return -EINVAL;
	}
	info->peer = map_device_pages(dev->desc->pfn, dev->desc->num_pages);

	info->dev_addr[0] = 0x02;
	info->dev_addr[1] = 0x00;
	memcpy(&info->dev_addr[2], &lguest_data.guestid, 2);
	info->dev_addr[4] = 0x00;
	info->dev_addr[5] = 0x00;

	request_irq(lgdev_irq(dev), lguestnet_rcv);
	if (lguestnet_open(info) != 0) {
		/* Leave no trace: others would see our MAC in the slot and send to
		 * a key nobody listens on, and our own net commands would think the
		 * device works. */
		printk("lguestnet: the Host refused our receive buffers\n");
		memset(&info->peer[info->me], 0, sizeof(info->peer[info->me]));
		free_irq(lgdev_irq(dev));
		info->peer = NULL;
		return -ENOMEM;
	}
	mac_to_str(mac, info->dev_addr);
	printk("lguestnet: %s in slot %u of %u, %u buffers at key %x, irq %u\n", mac, info->me,
	       num_slots(info), NUM_SKBS, peer_key(info, info->me), lgdev_irq(dev));
	return 0;
}

struct lguest_driver net_driver = {
	.name = "lguestnet",
	.device_type = LGUEST_DEVICE_T_NET,
	.probe = lguestnet_probe,
	.shutdown = lguestnet_close,
};

/*
 * What the system calls ask of the network (process.c).
 */

/* The slots in use, ours marked. */
int net_peers(struct net_peer *out, unsigned int max)
{
	struct lguestnet_info *info = &lguestnet;
	unsigned int i, n = 0;

	if (!info->peer)
		return -ENETDOWN;
	for (i = 0; i < num_slots(info) && n < max; i++) {
		if (unused_peer(info, i))
			continue;
		out[n].slot = i;
		memcpy(out[n].mac, info->peer[i].mac, ETH_ALEN);
		out[n].me = (i == info->me);
		out[n].pad = 0;
		n++;
	}
	return n;
}

int net_set_promisc(int on)
{
	if (!lguestnet.peer)
		return -ENETDOWN;
	lguestnet_set_promisc(&lguestnet, on != 0);
	return 0;
}

/*: D:690 The ping system call (process.c): send an echo request to "dest"
 * (one address, or the broadcast address ff:ff:ff:ff:ff:ff) and wait for the
 * replies, as many as the peers that took the request, or until 10 ms of
 * simulated time have passed.  We get ready for replies before the request
 * goes out, because a peer can answer before SEND_DMA even returns: the
 * Launcher, serving a --tunnet peer, does exactly that.  The wait is a halt,
 * like every wait in this kernel: replies and the timer are interrupts, and
 * the timer is set to the timeout just for this.  Returns how many replies
 * came, each with the sender and the round trip in nanoseconds. */
int net_ping(const u8 dest[6], u32 seq, struct lg_ping *result)
{
	static struct ping_frame req;
	struct lguestnet_info *info = &lguestnet;
	u32 start;

	if (!info->peer)
		return -ENETDOWN;
	memcpy(req.h_dest, dest, ETH_ALEN);
	memcpy(req.h_source, info->dev_addr, ETH_ALEN);
	req.h_proto = htons(ETH_P_LGPING);
	req.op = PING_REQUEST;
	req.seq = htons(seq);
	memset(req.text, 0, sizeof(req.text));
	memcpy(req.text, "lguestsim ping", 14);

	/* Ready for replies before the request goes: a peer may answer
	 * before SEND_DMA even returns (the Launcher can). */
	ping.seq = seq;
	ping.got = 0;
	ping.result = result;
	ping.active = 1;
	req.stamp = read_tsc();
	ping.expected = lguestnet_start_xmit(info, &req, sizeof(req));
	result->sent_to = ping.expected;
	result->timeout_ns = PING_TIMEOUT_NS;
	if (!ping.expected) {
		ping.active = 0;
		return -EHOSTUNREACH;
	}

	start = jiffies;
	pv.set_next_event(PING_TIMEOUT_NS);
	wait_event(ping.got >= ping.expected || jiffies != start);
	pv.set_next_event(0);
	ping.active = 0;
	return ping.got;
}

/*: D:580 That is the last of lguest's drivers.  Between them the console,
 * the disk and the network use nothing but two hypercalls, keys that are
 * addresses, and interrupts numbered by the bus.  What a device actually
 * does is done on the other side of a key, by another Guest or, mostly, by
 * the Launcher, and the Launcher is where the story goes next.
 *
 * Before it, the passages numbered from D:600 go back over what lguestsim
 * tells on its own in these drivers: the terminal in miniature, the block
 * driver's reads, the paths a packet takes through this file, and the echo
 * protocol. */
