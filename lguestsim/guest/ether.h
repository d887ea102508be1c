/*
 * ether.h: what both generations' network drivers share (net.c for
 * 2.6.23's lguest bus, virtio_net.c for 2.6.25's virtio): Ethernet's sizes,
 * byte order and address printing, and the small echo protocol the Guests
 * answer in their kernels, so that a ping works the same over either card.
 */
#ifndef LGUESTSIM_ETHER_H
#define LGUESTSIM_ETHER_H

#define ETH_ALEN	6
#define ETH_HLEN	14
#define ETH_DATA_LEN	1500
#define ETH_FRAME_LEN	(ETH_HLEN + ETH_DATA_LEN)	/* 1514 */

static inline u16 htons(u16 x)
{
	return (u16)((x << 8) | (x >> 8));
}

static inline void mac_to_str(char buf[18], const u8 *mac)
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

/* The echo protocol's Ethernet type and its two operations (D:680). */
#define ETH_P_LGPING	0x88B5
#define PING_REQUEST	1
#define PING_REPLY	2

/*: D:680 A protocol in miniature, so that the network has something to
 * carry: every Guest's kernel answers it by itself, the way Linux answers
 * an ICMP echo request ("ping").  A frame is 60 bytes, the smallest an
 * Ethernet frame may be:
 *
 *     destination and source addresses, 6 bytes each
 *     type 0x88B5 (one of the two types IEEE keeps for local experiments)
 *     op: 1 = echo request, 2 = echo reply; then a zero byte
 *     seq: a 16-bit sequence number, big-endian as on a real wire
 *     stamp: the sender's time stamp counter, which the reply echoes
 *     "lguestsim ping", padded with zeros to 38 bytes
 *
 * A reply is the request turned round: addresses swapped, op 2, the rest
 * unchanged, so the requester can time the round trip by its own clock.
 * netif_rx() below delivers frames of this type, ping_answer() turns
 * requests round and ping_reply() records replies. */
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

#endif
