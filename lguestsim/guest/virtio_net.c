/*
 * virtio_net.c: the 2.6.25 network card, a virtio driver (Linux's
 * drivers/net/virtio_net.c, made small); only in guest-virtio.elf.
 *
 * Two virtqueues: receive buffers we offer the Launcher, and frames we
 * transmit.  Every frame travels behind a struct virtio_net_hdr (all zero
 * here: no checksum or segmentation offload).  Above it sits the same echo
 * protocol as 2.6.23's net.c (D:680), written again for this transport: the
 * 2.6.25 card sees no slots and no other Guests' addresses, only frames.
 */
#include "virtio.h"
#include "ether.h"

#define NUM_RX		8
#define VIRTIO_NET_F_MAC	5
#define PING_TIMEOUT_NS	10000000	/* 10 ms, as in net.c */

struct virtio_net_hdr {
	u8 flags;
	u8 gso_type;
	u16 hdr_len;
	u16 gso_size;
	u16 csum_start;
	u16 csum_offset;
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_net_hdr) == 10, "virtio_net_hdr");

/* One receive buffer: the header and a frame, each its own piece. */
struct rx_buf {
	struct virtio_net_hdr hdr;
	u8 frame[ETH_FRAME_LEN];
};

static struct {
	struct virtqueue *rvq, *svq;
	u8 mac[ETH_ALEN];
	struct rx_buf rx[NUM_RX];
	struct virtio_net_hdr tx_hdr;
	u32 rx_packets, tx_packets, rx_dropped;
} vnet;

static struct {
	volatile int active;
	u16 seq;
	volatile unsigned int got;
	struct lg_ping *result;
} ping;

/*: D:880 Transmitting: the header and the frame as two readable pieces,
 * a kick, and (like the console) a wait for the Launcher to hand the chain
 * back, which it does during the NOTIFY: the frame has been switched to the
 * other Guests' queues by then.  Interrupts stay off meanwhile, since a
 * receive interrupt may want to transmit an answer. */
static int start_xmit(const void *frame, u32 len)
{
	struct scatterlist sg[2];
	u32 flags, used;
	int ok = 0;

	sg[0].phys = __pa(&vnet.tx_hdr);
	sg[0].len = sizeof(vnet.tx_hdr);
	sg[1].phys = __pa(frame);
	sg[1].len = len;
	flags = save_fl();
	irq_disable();
	if (vring_add_buf(vnet.svq, sg, 2, 0, (void *)frame) == 0) {
		vring_kick(vnet.svq);
		while (!vring_get_buf(vnet.svq, &used) && !vnet.svq->broken)
			barrier();
		ok = !vnet.svq->broken;
		vnet.tx_packets += ok;
	}
	restore_fl(flags);
	return ok;
}

static void add_rx(struct rx_buf *buf)
{
	struct scatterlist sg[2] = {
		{ .phys = __pa(&buf->hdr), .len = sizeof(buf->hdr) },
		{ .phys = __pa(buf->frame), .len = sizeof(buf->frame) },
	};

	vring_add_buf(vnet.rvq, sg, 0, 2, buf);
}

static void ping_frame_in(struct ping_frame *p)
{
	char who[18];
	unsigned int n = ping.got;

	if (p->op == PING_REQUEST) {
		memcpy(p->h_dest, p->h_source, ETH_ALEN);
		memcpy(p->h_source, vnet.mac, ETH_ALEN);
		p->op = PING_REPLY;
		mac_to_str(who, p->h_dest);
		printk("virtio_net: echo request from %s (seq %u): %s\n", who, htons(p->seq),
		       start_xmit(p, sizeof(*p)) ? "answered" : "could not answer");
	} else if (p->op == PING_REPLY && ping.active && htons(p->seq) == ping.seq
		   && n < PING_MAX_REPLIES) {
		memcpy(ping.result->reply[n].mac, p->h_source, ETH_ALEN);
		ping.result->reply[n].seq = htons(p->seq);
		ping.result->reply[n].ns = tsc_to_ns(read_tsc() - p->stamp);
		ping.got = n + 1;
	}
}

/*: D:890 Receiving: every used receive buffer holds the header and a
 * frame (the used length counts both).  An echo frame for us is answered
 * or noted; the buffer then goes straight back on the receive queue, and
 * one kick returns them all. */
static void skb_recv_done(struct virtqueue *vq)
{
	struct rx_buf *buf;
	u32 len;
	int added = 0;

	while ((buf = vring_get_buf(vq, &len)) != NULL) {
		if (len < sizeof(buf->hdr) + ETH_HLEN || len > sizeof(*buf)) {
			vnet.rx_dropped++;
		} else {
			vnet.rx_packets++;
			if (len - sizeof(buf->hdr) >= sizeof(struct ping_frame)
			    && ((struct ping_frame *)buf->frame)->h_proto == htons(ETH_P_LGPING))
				ping_frame_in((struct ping_frame *)buf->frame);
		}
		add_rx(buf);
		added = 1;
	}
	if (added)
		vring_kick(vq);
}

static int virtnet_probe(struct virtio_device *vdev)
{
	char mac[18];
	unsigned int i;

	if (vnet.rvq) {
		printk("virtio_net: only one network device is supported\n");
		return -ENOMEM;
	}
	if (lg_feature(vdev, VIRTIO_NET_F_MAC)) {
		lg_get_config(vdev, 0, vnet.mac, ETH_ALEN);
	} else {
		/* A locally administered address from the time stamp counter. */
		u32 t = read_tsc();
		vnet.mac[0] = 0x02;
		vnet.mac[1] = 0x00;
		memcpy(&vnet.mac[2], &t, 4);
	}
	vnet.rvq = lg_find_vq(vdev, 0, skb_recv_done);
	vnet.svq = lg_find_vq(vdev, 1, NULL);
	if (!vnet.rvq || !vnet.svq) {
		vnet.rvq = vnet.svq = NULL;
		return -EINVAL;
	}
	for (i = 0; i < NUM_RX; i++)
		add_rx(&vnet.rx[i]);
	vring_kick(vnet.rvq);
	mac_to_str(mac, vnet.mac);
	printk("virtio_net: %s, %u receive buffers, irqs %u and %u\n", mac, NUM_RX,
	       vnet.rvq->irq, vnet.svq->irq);
	return 0;
}

const struct virtio_driver virtio_net_driver = {
	.name = "virtio_net",
	.id = VIRTIO_ID_NET,
	.probe = virtnet_probe,
};

/* The program's "net": a virtio card knows only its own address. */
int net_peers(struct net_peer *out, unsigned int max)
{
	if (!vnet.rvq)
		return -ENETDOWN;
	if (!max)
		return 0;
	out[0].slot = 0;
	memcpy(out[0].mac, vnet.mac, ETH_ALEN);
	out[0].me = 1;
	out[0].pad = 0;
	return 1;
}

/* 2.6.25's virtio network had no way to ask for promiscuous mode. */
int net_set_promisc(int on)
{
	(void)on;
	return vnet.rvq ? -EINVAL : -ENETDOWN;
}

/*: D:895 ping over virtio.  The request goes out once; since the card
 * cannot know how many Guests took it, we wait for the one answer a unicast
 * can bring, or for the whole timeout after a broadcast, and report
 * everyone who answered. */
int net_ping(const u8 dest[6], u32 seq, struct lg_ping *result)
{
	static struct ping_frame req;
	int broadcast = dest[0] & 1;
	u32 start;

	if (!vnet.rvq)
		return -ENETDOWN;
	memcpy(req.h_dest, dest, ETH_ALEN);
	memcpy(req.h_source, vnet.mac, ETH_ALEN);
	req.h_proto = htons(ETH_P_LGPING);
	req.op = PING_REQUEST;
	req.seq = htons(seq);
	memset(req.text, 0, sizeof(req.text));
	memcpy(req.text, "lguestsim ping", 14);
	ping.seq = seq;
	ping.got = 0;
	ping.result = result;
	ping.active = 1;
	req.stamp = read_tsc();
	result->timeout_ns = PING_TIMEOUT_NS;
	if (!start_xmit(&req, sizeof(req))) {
		ping.active = 0;
		result->sent_to = 0;
		return -EHOSTUNREACH;
	}
	start = jiffies;
	pv.set_next_event(PING_TIMEOUT_NS);
	wait_event((!broadcast && ping.got >= 1) || jiffies != start);
	pv.set_next_event(0);
	ping.active = 0;
	result->sent_to = broadcast ? ping.got : 1;
	return ping.got;
}
