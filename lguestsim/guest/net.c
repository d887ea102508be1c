/*: D:500
 * net.c: the Guest network driver.
 *
 * A network here is a page of memory (or a few) that several machines map:
 * other Guests, each through its own Launcher (--sharenet), and perhaps the
 * Launcher itself standing in for the Host's side of a tun device.  The
 * page is an array of slots, one per machine, where each publishes its
 * Ethernet address.  The Launcher tells us which slot is ours.  There is no
 * switch and no wire: to send a packet we look through the slots and send
 * a DMA straight to each machine that should have it, at a key made from
 * the page's address and its slot number.  What others send us lands in
 * receive buffers we bound at our own key.
 *
 * Linux hands the packets it receives to its network stack.  We have none,
 * so this file ends with a protocol in miniature, which the kernel answers
 * by itself the way Linux answers an ICMP echo request ("ping"):
 *
 *   an Ethernet header (destination, source, type 0x88B5, which IEEE keeps
 *   for local experiments), then
 *     u8  op      1 = echo request, 2 = echo reply
 *     u8  zero
 *     u16 seq     sequence number (big-endian, as on a wire)
 *     u32 stamp   the requester's time stamp counter; the reply echoes it
 *     38 bytes    "lguestsim ping", padded with zeros
 *   60 bytes in all, the smallest Ethernet frame.
 *
 * A reply is the request sent back: addresses swapped, op 2, the rest
 * unchanged.
 */
#include "guest.h"
#include "lguest_launcher.h"

#define ETH_ALEN	6
#define ETH_HLEN	14
#define ETH_DATA_LEN	1500
#define ETH_FRAME_LEN	(ETH_HLEN + ETH_DATA_LEN)	/* 1514 */
#define NUM_SKBS	8	/* receive buffers, as in Linux's driver */

/* The bit that makes an Ethernet address a multicast (or broadcast) one.
 * Published in our slot, it means "promiscuous": send me everything. */
#define PROMISC_BIT	0x01

/* Waiting for echo replies: at most this long. */
#define PING_TIMEOUT_NS	10000000	/* 10 ms */

/*: D:530 Everything we know about the network device (we drive one). */
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

static u16 htons(u16 x)
{
	return (u16)((x << 8) | (x >> 8));
}

static void mac_to_str(char buf[18], const u8 *mac)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

static unsigned int num_slots(const struct lguestnet_info *info)
{
	return info->mapsize / sizeof(struct lguest_net);
}

/* How many bytes from "data" to the end of its page. */
static u32 rest_of_page(const void *data)
{
	return PAGE_SIZE - ((u32)data % PAGE_SIZE);
}

/* A buffer in kernel memory as the sections of a DMA: one per page it
 * touches (Linux's skb_to_dma(), for a packet all in one piece). */
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

/*: D:570 Where a peer's receive buffers are bound: the address of the
 * network page plus 4 times its slot number (the Host wants keys that are
 * multiples of 4).  Every machine on the network computes the same keys,
 * and since they all map the same page, the Host sees the same memory
 * behind them (io.c's futex-style keys). */
static u32 peer_key(const struct lguestnet_info *info, unsigned int peernum)
{
	return info->peer_phys + 4 * peernum;
}

/*
 * Sending.  A real card puts the packet on the wire and lets the receivers
 * decide; we decide for them, by looking at the addresses in the page.  A
 * broadcast (or multicast) packet goes to everyone; a peer that asked for
 * everything (promiscuous) gets everything; the rest get what is addressed
 * to them.
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

/* One packet to one peer.  The Host copies it into one of the peer's free
 * receive buffers and writes how much it copied into used_len: less than
 * the whole packet means the peer had no free buffer, or has gone.
 * Returns 1 if the peer got it all. */
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

/* Linux's start_xmit(): send one Ethernet frame to whoever should have it.
 * We cannot send to ourselves (and the Host would not let us). Returns how
 * many peers took it. */
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

/*
 * The echo protocol (described at the top of this file).
 */
#define ETH_P_LGPING	0x88B5
#define PING_REQUEST	1
#define PING_REPLY	2

struct ping_frame {
	u8 h_dest[ETH_ALEN];
	u8 h_source[ETH_ALEN];
	u16 h_proto;
	u8 op;
	u8 zero;
	u16 seq;
	u32 stamp;
	char text[38];
} __attribute__((packed));
_Static_assert(sizeof(struct ping_frame) == 60, "ping frame size");

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

/*: D:560 Receiving.  A slot of the receive array is ready for the Host
 * when its DMA describes its buffer and its used_len is 0; the order
 * matters, which is what the barrier says (on one processor, to the
 * compiler). */
static void fill_slot(struct lguestnet_info *info, unsigned int slot)
{
	buf_to_dma(info->skb[slot], ETH_FRAME_LEN, &info->dma[slot]);
	barrier();
	info->dma[slot].used_len = 0;
}

/* The receive interrupt: one or more buffers have a packet in them (their
 * used_len says how long).  Linux refills a slot with a fresh buffer before
 * it passes the old one up; we handle each packet where it lies, then hand
 * its buffer back. */
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

/*: D:550 Bringing the device up: publish our address in our slot, so
 * others can find us, and bind the receive buffers at our key, asking for
 * the device's interrupt when something arrives.  (Linux does this when
 * the interface is brought up; we do it right after the probe.) */
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

/* And down, before we power off: our slot is cleared, so no one sends to
 * us, and the buffers are unbound. */
static void lguestnet_close(struct lguest_device *dev)
{
	struct lguestnet_info *info = &lguestnet;

	(void)dev;
	memset(&info->peer[info->me], 0, sizeof(info->peer[info->me]));
	lguest_unbind_dma(peer_key(info, info->me), info->dma);
	printk("lguestnet: left the network (slot %u cleared)\n", info->me);
}

/*: D:510 The probe: the device's page(s) and our slot come from the
 * descriptor (the slot is in the low bits of the features; the high bits
 * are flags such as LGUEST_NET_F_NOCSUM, "no need for checksums", which
 * matters to Linux's stack and not to ours).  Our Ethernet address is made
 * as Linux's driver makes it: 02 (locally assigned), 00, then the two bytes
 * of the Guest id the Host gave us, then 00 00.  So Guests on one Host
 * differ. */
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
		printk("lguestnet: the Host refused our receive buffers\n");
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

/* Send an echo request to "dest" and wait for the replies: as many as the
 * peers that took the request, or until the timer says we have waited long
 * enough.  We wait by halting, like every wait in this kernel; the replies
 * (and the timer) are interrupts.  Returns how many replies came. */
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

/*: D:580 That is the last driver.  Between them, the console, the disk and
 * the network use nothing but the two DMA hypercalls, keys that are
 * addresses, and interrupts numbered by the bus; the rest is the Launcher's
 * business, which is where the story goes next. */
