// SPDX-License-Identifier: GPL-2.0
/*
 * nft_fuzz_packet - seeded, reproducible packet fuzzer for the tproxy and
 * socket expressions.
 *
 * It runs in a client network namespace and sends malformed and edge-case
 * IPv4 and IPv6 traffic through the client's veth to a gateway whose
 * prerouting and output rules use tproxy, socket and divert:
 *
 *	nft_fuzz_packet -i IFNAME -m GW_MAC [-M SRC_MAC]
 *			-4 CLIENT4,GW4,SERVER4 -6 CLIENT6,GW6,SERVER6
 *			[-p PORTS] [-s SEED] [-n PACKETS] [-r RATE] [-v]
 *
 * Frames leave through an AF_PACKET raw socket bound to IFNAME, whole
 * Ethernet frames to GW_MAC from SRC_MAC (default 02:00:00:00:fa:22, the
 * "fuzzer" MAC address a test matches on), 14 to 1514 bytes, ethertype
 * IPv4 or IPv6.  CLIENT is this side's address, GW the gateway's own
 * address (its /24 gives the subnet broadcast), SERVER an address routed
 * through the gateway; either of -4 and -6 may be left out, and then only
 * the other family is sent.  PORTS (comma separated, default 1234) are
 * those with listeners behind the gateway, so that some packets hit live
 * sockets (listener and established lookups, ICMP errors quoting a live
 * socket's addresses and ports) and others do not.
 *
 * Each packet, or burst of fragments, is of one class, picked by weight
 * ("-h" lists the classes and their weights); everything else is random
 * within the class.  Checksums (IPv4 header, TCP, UDP, ICMP, ICMPv6 with
 * their pseudo-headers) are right unless a class breaks them on purpose:
 * broken structure reaches further into the stack than a bad checksum.
 *
 * The probe class is the control: a well-formed TCP SYN from CLIENT to
 * SERVER port 9, source port 1024 or above, TTL (hop limit) 64, without
 * options.  No other class ever sends TCP to port 9: transport headers
 * are built without it, and a last check rewrites any frame outside the
 * probe class where the kernel could read TCP destination port 9 (at the
 * IPv4 header length, or after the IPv6 extension headers).  So a rule
 * on the gateway like
 *
 *	tcp dport 9 tcp flags syn counter
 *
 * counts exactly the probes, and one in a netdev ingress chain like
 *
 *	ether saddr 02:00:00:00:fa:22 ether type ip counter
 *
 * exactly the IPv4 frames sent (most of the malformed ones never reach
 * prerouting).
 *
 * Everything sent depends only on the options: the same seed and options
 * give the same frames, byte for byte, and "-n N" sends exactly the first
 * N frames of a longer run with the same other options (a burst of
 * fragments may be cut short at the end), so bisecting N finds the frame
 * that made the gateway complain; "-v" prints every frame in hex.
 *
 * "-r RATE" limits the frames per second (0, the default, is no limit).
 * A send failing with ENOBUFS or EAGAIN is retried after a millisecond.
 * Printed on stdout, one item per line, all but the last stable:
 *
 *	nft_fuzz_packet: seed S packets N
 *	class NAME sent N		(every class, also when 0)
 *	family ipv4 sent N		(by ethertype)
 *	family ipv6 sent N
 *	probe ipv4 sent N
 *	probe ipv6 sent N
 *	hash 0x%016llx			(FNV-1a 64 of every frame's length,
 *					 16 bits big endian, and bytes)
 *	rate: N packets/s		(wall clock)
 *
 * Exit status: 0, or 2 on a usage or socket error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <sys/socket.h>

#include "fuzz_rng.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

#define PROG			"nft_fuzz_packet"
#define EXIT_LOCAL		2

#define ETH_HDR			14
#define MTU			1500
#define FRAME_MAX		(ETH_HDR + MTU)
#define IP4_HDR			20
#define IP6_HDR			40
#define MAX_BURST		16	/* frames built at once (fragments) */
#define MAX_FRAGS		(MAX_BURST - 2)	/* fragments of a datagram */
#define HDR_MAX			1280	/* IPv4 options, IPv6 ext headers */
#define L4_MAX			24576	/* transport segment (fragmented) */
#define DGRAM_MAX		(IP6_HDR + HDR_MAX + L4_MAX)
#define MAX_DEPTH		3	/* ICMP errors quoting ICMP errors */
#define MAX_PORTS		64
#define MAX_EXT			48	/* IPv6 extension headers in a chain */
#define PROBE_PORT		9
#define RETRY_MAX		5000	/* ENOBUFS/EAGAIN retries, 1 ms apart */

#define FNV_INIT		0xcbf29ce484222325ULL

#define F4			1
#define F6			2

#define IP_DF			0x4000
#define IP_MF			0x2000

#define TF_FIN			0x01
#define TF_SYN			0x02
#define TF_RST			0x04
#define TF_PSH			0x08
#define TF_ACK			0x10
#define TF_URG			0x20
#define TF_ECE			0x40
#define TF_CWR			0x80

enum { A_CLIENT, A_GW, A_SERVER, NADDR };

struct cfg {
	uint8_t gw_mac[6];
	uint8_t src_mac[6];
	unsigned int fams;		/* F4 | F6 */
	uint8_t a4[NADDR][4];
	uint8_t a6[NADDR][16];
	uint16_t ports[MAX_PORTS];
	unsigned int nports;
};

/* An IP packet being built: header fields, options, transport segment. */
struct pk {
	bool v6;
	uint8_t src[16];
	uint8_t dst[16];
	uint8_t ttl;			/* or hop limit */
	uint8_t tos;			/* or traffic class */
	uint16_t id;			/* IPv4 identification */
	uint16_t frag;			/* IPv4 flags and fragment offset */
	uint32_t flow;			/* IPv6 flow label */
	uint8_t proto;			/* transport protocol */
	uint8_t nh0;			/* IPv6: next header of the fixed one */
	size_t hlen;			/* bytes in hdr */
	uint8_t hdr[HDR_MAX];		/* IPv4 options or IPv6 ext headers */
	size_t l4len;
	uint8_t l4[L4_MAX];
};

/* The offsets and types of the extension headers of a chain. */
struct chain {
	unsigned int n;
	uint16_t off[MAX_EXT];
	uint8_t type[MAX_EXT];
};

struct burst {
	unsigned int n;
	uint16_t len[MAX_BURST];
	uint8_t f[MAX_BURST][FRAME_MAX];
};

struct fz {
	uint64_t rng;
	struct cfg cfg;
	struct burst b;
	struct pk pk[MAX_DEPTH + 1];
	uint8_t dg[MAX_DEPTH + 1][DGRAM_MAX];
	uint8_t scratch[L4_MAX];
};

/* ---- random numbers, bytes, checksums ------------------------------- */

/* 0 .. n - 1 (0 when n is 0) */
static uint32_t rnd(struct fz *fz, uint32_t n)
{
	return fuzz_below(&fz->rng, n);
}

/* lo .. hi */
static uint32_t rnd_range(struct fz *fz, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(((splitmix64(&fz->rng) >> 32) *
				((uint64_t)hi - lo + 1)) >> 32);
}

static uint32_t rnd32(struct fz *fz)
{
	return splitmix64(&fz->rng) >> 32;
}

static bool chance(struct fz *fz, unsigned int percent)
{
	return rnd(fz, 100) < percent;
}

static void rnd_bytes(struct fz *fz, uint8_t *p, size_t len)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (!(i & 7))
			v = splitmix64(&fz->rng);
		p[i] = v;
		v >>= 8;
	}
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void fnv(uint64_t *h, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		*h ^= p[i];
		*h *= 0x100000001b3ULL;
	}
}

/* One's complement sum; @len is odd only for the last piece. */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* Where a transport protocol keeps its checksum, or -1. */
static int csum_off(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 2;
	}
	return -1;
}

/*
 * Checksum the @len bytes of transport segment @l4 in place, with the
 * pseudo-header of @src, @dst and @proto (none for ICMPv4); nothing when
 * the segment is too short to hold its checksum.
 */
static void l4_csum(bool v6, const uint8_t *src, const uint8_t *dst,
		    uint8_t proto, uint8_t *l4, size_t len)
{
	int off = csum_off(proto);
	uint64_t sum = 0;
	uint16_t c;

	if (off < 0 || len < (size_t)off + 2)
		return;
	put16(l4 + off, 0);
	if (proto != IPPROTO_ICMP) {
		sum = csum_add(sum, src, v6 ? 16 : 4);
		sum = csum_add(sum, dst, v6 ? 16 : 4);
		sum += proto + (len >> 16) + (len & 0xffff);
	}
	c = csum_fold(csum_add(sum, l4, len));
	if (proto == IPPROTO_UDP && !c)
		c = 0xffff;
	put16(l4 + off, c);
}

/* IPv4 header checksum of the header at @ip, @avail bytes present. */
static void ip4_csum(uint8_t *ip, size_t avail)
{
	size_t hl = (ip[0] & 0x0f) * 4;

	if (hl < IP4_HDR)
		hl = IP4_HDR;
	if (hl > avail)
		hl = avail;
	if (hl < 12)
		return;
	put16(ip + 10, 0);
	put16(ip + 10, csum_fold(csum_add(0, ip, hl)));
}

/* ---- addresses and ports -------------------------------------------- */

static size_t alen(bool v6)
{
	return v6 ? 16 : 4;
}

static const uint8_t *addr(const struct fz *fz, bool v6, unsigned int which)
{
	return v6 ? fz->cfg.a6[which] : fz->cfg.a4[which];
}

static void set_addr(struct fz *fz, bool v6, unsigned int which,
		     uint8_t *out)
{
	memcpy(out, addr(fz, v6, which), alen(v6));
}

/* A random host in the /24 (IPv4) or /64 (IPv6) of one of ours. */
static void addr_near(struct fz *fz, bool v6, unsigned int which,
		      uint8_t *out)
{
	if (v6) {
		memcpy(out, fz->cfg.a6[which], 8);
		rnd_bytes(fz, out + 8, 8);
	} else {
		memcpy(out, fz->cfg.a4[which], 3);
		out[3] = 1 + rnd(fz, 254);
	}
}

static void addr4(uint8_t *out, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	out[0] = a;
	out[1] = b;
	out[2] = c;
	out[3] = d;
}

/* ffXX::YYYY with @low random bytes at the end. */
static void addr6_mc(struct fz *fz, uint8_t *out, uint8_t flags_scope,
		     unsigned int low)
{
	memset(out, 0, 16);
	out[0] = 0xff;
	out[1] = flags_scope;
	if (low)
		rnd_bytes(fz, out + 16 - low, low);
	else
		out[15] = 1;
}

/* An address no sane host sends from or to. */
static void addr_special(struct fz *fz, bool v6, uint8_t *out)
{
	const uint8_t *gw = addr(fz, v6, A_GW);

	if (!v6) {
		switch (rnd(fz, 6)) {
		case 0:
			addr4(out, 0, 0, 0, 0);
			break;
		case 1:
			addr4(out, 127, 0, 0, 1);
			break;
		case 2:
			addr4(out, 255, 255, 255, 255);
			break;
		case 3:
			addr4(out, 224, 0, 0, 1);
			break;
		case 4:
			addr4(out, 239, rnd(fz, 256), rnd(fz, 256),
			      rnd(fz, 256));
			break;
		default:
			addr4(out, gw[0], gw[1], gw[2], 255);
			break;
		}
		return;
	}
	memset(out, 0, 16);
	switch (rnd(fz, 6)) {
	case 0:				/* :: */
		break;
	case 1:				/* ::1 */
		out[15] = 1;
		break;
	case 2:				/* ff02::1 */
		addr6_mc(fz, out, 0x02, 0);
		break;
	case 3:				/* ff05::x */
		addr6_mc(fz, out, 0x05, 2);
		break;
	case 4:				/* ::ffff:CLIENT4 or random */
		out[10] = 0xff;
		out[11] = 0xff;
		if (fz->cfg.fams & F4)
			memcpy(out + 12, fz->cfg.a4[rnd(fz, NADDR)], 4);
		else
			rnd_bytes(fz, out + 12, 4);
		break;
	default:			/* fe80::x */
		out[0] = 0xfe;
		out[1] = 0x80;
		rnd_bytes(fz, out + 8, 8);
		break;
	}
}

/* Anything a header may carry as an address: mostly ours. */
static void addr_any(struct fz *fz, bool v6, uint8_t *out)
{
	unsigned int r = rnd(fz, 10);

	if (r < 6)
		set_addr(fz, v6, r % NADDR, out);
	else if (r < 8)
		addr_near(fz, v6, rnd(fz, NADDR), out);
	else
		addr_special(fz, v6, out);
}

static void pick_dst(struct fz *fz, bool v6, uint8_t *out)
{
	unsigned int r = rnd(fz, 100);

	if (r < 70)
		set_addr(fz, v6, A_SERVER, out);
	else if (r < 85)
		set_addr(fz, v6, A_GW, out);
	else
		addr_near(fz, v6, A_SERVER, out);
}

/* A port with a listener behind the gateway. */
static uint16_t live_port(struct fz *fz)
{
	return fz->cfg.ports[rnd(fz, fz->cfg.nports)];
}

static uint16_t rnd_port(struct fz *fz)
{
	return 1 + rnd(fz, 65535);
}

static uint16_t eph_port(struct fz *fz)
{
	return rnd_range(fz, 1024, 65535);
}

/* Half the time a live port. */
static uint16_t any_port(struct fz *fz)
{
	return chance(fz, 50) ? live_port(fz) : rnd_port(fz);
}

/* TCP destination ports: port 9 belongs to the probes. */
static uint16_t no_probe(uint16_t port)
{
	return port == PROBE_PORT ? PROBE_PORT + 1 : port;
}

/* ---- transport headers ---------------------------------------------- */

static const uint8_t tcp_flag_sets[] = {
	TF_SYN, TF_SYN | TF_ACK, TF_ACK, TF_RST, TF_RST | TF_ACK, TF_FIN,
	TF_FIN | TF_ACK, TF_SYN | TF_FIN, TF_SYN | TF_RST, 0xff, 0x3f, 0,
	TF_URG | TF_ACK, TF_PSH | TF_ACK, TF_SYN | TF_ECE | TF_CWR,
	TF_FIN | TF_PSH | TF_URG,
};

static uint8_t pick_flags(struct fz *fz)
{
	if (chance(fz, 90))
		return tcp_flag_sets[rnd(fz, ARRAY_SIZE(tcp_flag_sets))];
	return rnd(fz, 256);
}

/*
 * TCP options, at most 40 bytes, a multiple of 4: MSS, window scale,
 * SACK permitted, SACK blocks, timestamps, MD5, fast open, NOP; with
 * @bad also lengths 0 and 1, overlong ones and garbage after EOL.
 */
static size_t tcp_opts(struct fz *fz, uint8_t *p, bool bad)
{
	static const uint16_t mss[] = { 0, 1, 88, 536, 1220, 1440, 1460,
					65535 };
	unsigned int k, cnt = 1 + rnd(fz, 6);
	size_t n = 0, olen;

	for (k = 0; k < cnt && n < 40; k++) {
		size_t left = 40 - n;

		switch (rnd(fz, bad ? 11 : 8)) {
		case 0:
			if (left < 4)
				goto nop;
			p[n] = 2;
			p[n + 1] = 4;
			put16(p + n + 2, chance(fz, 80) ?
			      mss[rnd(fz, ARRAY_SIZE(mss))] : rnd(fz, 65536));
			n += 4;
			break;
		case 1:
			if (left < 3)
				goto nop;
			p[n] = 3;
			p[n + 1] = 3;
			p[n + 2] = chance(fz, 80) ? rnd(fz, 15) : rnd(fz, 256);
			n += 3;
			break;
		case 2:
			if (left < 2)
				goto nop;
			p[n] = 4;
			p[n + 1] = 2;
			n += 2;
			break;
		case 3:
			if (left < 10)
				goto nop;
			p[n] = 8;
			p[n + 1] = 10;
			rnd_bytes(fz, p + n + 2, 8);
			n += 10;
			break;
		case 4:
			if (left < 10)
				goto nop;
			olen = 2 + 8 * rnd_range(fz, 1, (left - 2) / 8);
			p[n] = 5;
			p[n + 1] = olen;
			rnd_bytes(fz, p + n + 2, olen - 2);
			n += olen;
			break;
		case 5:			/* MD5 signature or fast open */
			if (left < 18)
				goto nop;
			olen = chance(fz, 50) ? 18 : rnd_range(fz, 2, 18);
			p[n] = olen == 18 && chance(fz, 50) ? 19 : 34;
			p[n + 1] = olen;
			rnd_bytes(fz, p + n + 2, olen - 2);
			n += olen;
			break;
		case 6:
		case 7:
nop:
			p[n++] = 1;
			break;
		case 8:			/* length 0 or 1 */
		case 9:
			if (left < 2)
				goto nop;
			p[n] = chance(fz, 50) ? 2 + rnd(fz, 8) : rnd(fz, 256);
			p[n + 1] = rnd(fz, 2);
			n += 2;
			break;
		default:		/* runs past the options */
			if (left < 2)
				goto nop;
			p[n] = 2 + rnd(fz, 40);
			p[n + 1] = left + 1 + rnd(fz, 40);
			rnd_bytes(fz, p + n + 2, left - 2);
			n = 40;
			break;
		}
	}
	while (n & 3) {
		if (bad && chance(fz, 30)) {
			p[n] = 0;
			rnd_bytes(fz, p + n + 1, 3 - (n & 3));
			n = (n + 3) & ~(size_t)3;
		} else {
			p[n++] = chance(fz, 50) ? 0 : 1;
		}
	}
	return n;
}

/*
 * A TCP header and @pay payload bytes at @p; @opt: 0 no options, 1 valid
 * ones, 2 malformed ones.  Checksum left to the caller.
 */
static size_t mk_tcp(struct fz *fz, uint8_t *p, uint16_t sport,
		     uint16_t dport, uint8_t flags, unsigned int opt,
		     size_t pay)
{
	size_t ol = opt ? tcp_opts(fz, p + 20, opt > 1) : 0;

	put16(p, sport);
	put16(p + 2, no_probe(dport));
	put32(p + 4, rnd32(fz));
	put32(p + 8, flags & TF_ACK || chance(fz, 10) ? rnd32(fz) : 0);
	p[12] = (5 + ol / 4) << 4 | (chance(fz, 5) ? rnd(fz, 16) : 0);
	p[13] = flags;
	put16(p + 14, chance(fz, 10) ? rnd(fz, 65536) : 64240);
	put16(p + 16, 0);
	put16(p + 18, flags & TF_URG || chance(fz, 3) ? rnd(fz, 65536) : 0);
	rnd_bytes(fz, p + 20 + ol, pay);
	return 20 + ol + pay;
}

static size_t mk_udp(struct fz *fz, uint8_t *p, uint16_t sport,
		     uint16_t dport, size_t pay)
{
	put16(p, sport);
	put16(p + 2, dport);
	put16(p + 4, 8 + pay);
	put16(p + 6, 0);
	rnd_bytes(fz, p + 8, pay);
	return 8 + pay;
}

/* ICMP(v6) echo request or reply. */
static size_t mk_echo(struct fz *fz, uint8_t *p, bool v6, size_t pay)
{
	bool reply = chance(fz, 20);

	p[0] = v6 ? (reply ? 129 : 128) : (reply ? 0 : 8);
	p[1] = chance(fz, 95) ? 0 : rnd(fz, 256);
	put16(p + 2, 0);
	put32(p + 4, rnd32(fz));
	rnd_bytes(fz, p + 8, pay);
	return 8 + pay;
}

/* A payload length: mostly small. */
static size_t small_pay(struct fz *fz, size_t max)
{
	unsigned int r = rnd(fz, 100);

	if (r < 70)
		return min_sz(rnd(fz, 33), max);
	if (r < 95)
		return min_sz(rnd(fz, 257), max);
	return rnd(fz, max + 1);
}

static uint8_t pick_l4(struct fz *fz, bool v6)
{
	unsigned int r = rnd(fz, 100);

	if (r < 45)
		return IPPROTO_TCP;
	if (r < 85)
		return IPPROTO_UDP;
	return v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
}

/* ---- IP packets and frames ------------------------------------------ */

static struct pk *pk_init(struct fz *fz, unsigned int depth, bool v6)
{
	struct pk *pk = &fz->pk[depth];

	pk->v6 = v6;
	if (chance(fz, 90))
		set_addr(fz, v6, A_CLIENT, pk->src);
	else
		addr_near(fz, v6, A_CLIENT, pk->src);
	pick_dst(fz, v6, pk->dst);
	pk->ttl = chance(fz, 85) ? 64 : rnd(fz, 256);
	pk->tos = chance(fz, 85) ? 0 : rnd(fz, 256);
	pk->id = rnd(fz, 65536);
	pk->frag = chance(fz, 50) ? IP_DF : 0;
	pk->flow = rnd(fz, 1 << 20);
	pk->proto = IPPROTO_TCP;
	pk->nh0 = IPPROTO_TCP;
	pk->hlen = 0;
	pk->l4len = 0;
	return pk;
}

/* Transport room left in an MTU sized packet. */
static size_t l4_room(const struct pk *pk)
{
	return MTU - (pk->v6 ? IP6_HDR : IP4_HDR) - pk->hlen;
}

static void pk_csum(struct pk *pk)
{
	l4_csum(pk->v6, pk->src, pk->dst, pk->proto, pk->l4, pk->l4len);
}

/* A well-formed, checksummed segment of @proto, at most @max bytes. */
static void pk_l4(struct fz *fz, struct pk *pk, uint8_t proto, size_t max,
		  size_t pay)
{
	uint16_t sport = chance(fz, 15) ? live_port(fz) : eph_port(fz);
	uint16_t dport = any_port(fz);
	size_t n;

	pk->proto = proto;
	switch (proto) {
	case IPPROTO_TCP:
		n = mk_tcp(fz, pk->l4, sport, dport, pick_flags(fz),
			   chance(fz, 30), pay);
		break;
	case IPPROTO_UDP:
		n = mk_udp(fz, pk->l4, sport, dport, pay);
		break;
	default:
		n = mk_echo(fz, pk->l4, pk->v6, pay);
		break;
	}
	pk->l4len = min_sz(n, max);
	pk_csum(pk);
}

/* The datagram of @pk at @d, lengths and IPv4 checksum right. */
static size_t pk_dgram(const struct pk *pk, uint8_t *d)
{
	size_t hl = (pk->v6 ? IP6_HDR : IP4_HDR) + pk->hlen;
	size_t n = hl + pk->l4len;

	if (pk->v6) {
		put32(d, 6u << 28 | (uint32_t)pk->tos << 20 |
		      (pk->flow & 0xfffff));
		put16(d + 4, n - IP6_HDR);
		d[6] = pk->hlen ? pk->nh0 : pk->proto;
		d[7] = pk->ttl;
		memcpy(d + 8, pk->src, 16);
		memcpy(d + 24, pk->dst, 16);
	} else {
		d[0] = 0x40 | hl / 4;
		d[1] = pk->tos;
		put16(d + 2, n);
		put16(d + 4, pk->id);
		put16(d + 6, pk->frag);
		d[8] = pk->ttl;
		d[9] = pk->proto;
		memcpy(d + 12, pk->src, 4);
		memcpy(d + 16, pk->dst, 4);
	}
	memcpy(d + (pk->v6 ? IP6_HDR : IP4_HDR), pk->hdr, pk->hlen);
	if (!pk->v6)
		ip4_csum(d, hl);
	memcpy(d + hl, pk->l4, pk->l4len);
	return n;
}

/* The next frame of the burst, its Ethernet header written. */
static uint8_t *frame_new(struct fz *fz, uint16_t type)
{
	uint8_t *f = fz->b.f[fz->b.n];

	memcpy(f, fz->cfg.gw_mac, 6);
	memcpy(f + 6, fz->cfg.src_mac, 6);
	put16(f + 12, type);
	return f;
}

static uint8_t *emit_type(struct fz *fz, struct pk *pk, uint16_t type)
{
	uint8_t *f = frame_new(fz, type);
	size_t n = pk_dgram(pk, fz->dg[0]);

	n = min_sz(n, MTU);
	memcpy(f + ETH_HDR, fz->dg[0], n);
	fz->b.len[fz->b.n++] = ETH_HDR + n;
	return f;
}

static uint8_t *emit(struct fz *fz, struct pk *pk)
{
	return emit_type(fz, pk, pk->v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
}

/* Offset of the transport header in a frame emitted from @pk. */
static size_t l4_off(const struct pk *pk)
{
	return ETH_HDR + (pk->v6 ? IP6_HDR : IP4_HDR) + pk->hlen;
}

/* ---- IPv4 options --------------------------------------------------- */

static const uint8_t ip_opt_types[] = { 0, 1, 7, 68, 130, 131, 133, 134,
					136, 137, 145, 148, 149, 152 };

/*
 * Exactly @room bytes (a multiple of 4, at most 40) of IPv4 options:
 * NOP, EOL, record route, timestamps, loose and strict source routes
 * with right and bogus pointers, router alert, security, CIPSO, stream
 * ID, unknown types, lengths 0 and 1 and options running past the end.
 */
static size_t ip_opts(struct fz *fz, uint8_t *p, size_t room)
{
	static const uint8_t ts_flags[] = { 0, 1, 3 };
	size_t n = 0, len, k, i, per;
	uint8_t flag;

	while (n < room) {
		size_t left = room - n;
		unsigned int r = rnd(fz, 14);

		switch (r) {
		case 0:
		case 1:
nop:
			p[n++] = 1;
			break;
		case 2:			/* EOL, then zeroes or garbage */
			p[n++] = 0;
			if (chance(fz, 50))
				memset(p + n, 0, room - n);
			else
				rnd_bytes(fz, p + n, room - n);
			n = room;
			break;
		case 3:			/* RR, LSRR, SSRR */
		case 4:
		case 5:
			if (left < 7)
				goto nop;
			k = rnd_range(fz, 1, (left - 3) / 4);
			len = 3 + 4 * k;
			p[n] = r == 3 ? 7 : r == 4 ? 131 : 137;
			p[n + 1] = len;
			p[n + 2] = chance(fz, 60) ? 4 + 4 * rnd(fz, k + 1) :
				   rnd(fz, 256);
			for (i = 0; i < k; i++)
				addr_any(fz, false, p + n + 3 + 4 * i);
			n += len;
			break;
		case 6:			/* timestamps */
			flag = chance(fz, 80) ? ts_flags[rnd(fz, 3)] :
			       rnd(fz, 16);
			per = flag ? 8 : 4;
			if (left < 4 + per)
				goto nop;
			k = rnd_range(fz, 1, (left - 4) / per);
			len = 4 + per * k;
			p[n] = 68;
			p[n + 1] = len;
			p[n + 2] = chance(fz, 60) ? 5 + per * rnd(fz, k + 1) :
				   rnd(fz, 256);
			p[n + 3] = rnd(fz, 16) << 4 | flag;
			rnd_bytes(fz, p + n + 4, len - 4);
			for (i = 0; flag == 3 && i < k; i++)
				addr_any(fz, false, p + n + 4 + 8 * i);
			n += len;
			break;
		case 7:			/* router alert */
			if (left < 4)
				goto nop;
			p[n] = 148;
			p[n + 1] = 4;
			put16(p + n + 2, chance(fz, 70) ? 0 : rnd(fz, 65536));
			n += 4;
			break;
		case 8:			/* security (11), CIPSO, stream ID */
			if (left < 4)
				goto nop;
			r = rnd(fz, 3);
			len = r == 0 ? 11 : r == 1 ? rnd_range(fz, 2, 40) : 4;
			if (len > left)
				len = left;
			p[n] = r == 0 ? 130 : r == 1 ? 134 : 136;
			p[n + 1] = len;
			rnd_bytes(fz, p + n + 2, len - 2);
			n += len;
			break;
		case 9:			/* length 0 or 1 */
		case 10:
			if (left < 2)
				goto nop;
			p[n] = ip_opt_types[rnd(fz, ARRAY_SIZE(ip_opt_types))];
			p[n + 1] = r - 9;
			n += 2;
			break;
		case 11:		/* runs past the options */
			if (left < 2)
				goto nop;
			p[n] = chance(fz, 70) ?
			       ip_opt_types[rnd(fz, ARRAY_SIZE(ip_opt_types))] :
			       rnd(fz, 256);
			p[n + 1] = left + 1 + rnd(fz, 40);
			rnd_bytes(fz, p + n + 2, left - 2);
			n = room;
			break;
		default:		/* some other type */
			if (left < 2)
				goto nop;
			len = rnd_range(fz, 2, min_sz(left, 12));
			p[n] = rnd_range(fz, 2, 255);
			p[n + 1] = len;
			rnd_bytes(fz, p + n + 2, len - 2);
			n += len;
			break;
		}
	}
	return n;
}

/* ---- IPv6 extension headers ----------------------------------------- */

/*
 * Exactly @len bytes of hop-by-hop or destination options: Pad1, PadN
 * (sometimes not zero or too long), router alert, jumbo payload, tunnel
 * encapsulation limit, home address, CALIPSO, IOAM, unknown types of
 * every action, and options running past the header.
 */
static void tlv_opts(struct fz *fz, uint8_t *p, size_t len, bool hbh)
{
	static const uint8_t past[] = { 0x01, 0x05, 0xc2, 0x04, 0xc9, 0x1e,
					0x5e, 0x9e };
	size_t n = 0;

	while (n < len) {
		size_t left = len - n, olen;
		unsigned int r = rnd(fz, 12);
		uint8_t type;

		if (left < 2 || r == 0) {
			p[n++] = 0;
			continue;
		}
		switch (r) {
		case 1:
		case 2:
			type = 1;
			olen = chance(fz, 90) ? rnd(fz, 6) : rnd(fz, 256);
			break;
		case 3:
			type = hbh ? 5 : rnd(fz, 256);
			olen = chance(fz, 90) ? 2 : rnd(fz, 5);
			break;
		case 4:
			type = 0xc2;
			olen = chance(fz, 90) ? 4 : rnd(fz, 8);
			break;
		case 5:
			type = 4;
			olen = chance(fz, 90) ? 1 : rnd(fz, 4);
			break;
		case 6:
			type = 201;
			olen = chance(fz, 90) ? 16 : rnd(fz, 24);
			break;
		case 7:
			type = chance(fz, 50) ? 7 : 0x31;
			olen = rnd(fz, 32);
			break;
		case 8:
		case 9:
		case 10:
			/* Unknown, with the action bits (skip .. ICMP). */
			type = rnd(fz, 4) << 6 | (chance(fz, 30) ? 0x20 : 0) |
			       (0x1e + rnd(fz, 2));
			olen = rnd(fz, 16);
			break;
		default:
			/* Running past the header. */
			p[n] = past[rnd(fz, ARRAY_SIZE(past))];
			p[n + 1] = min_sz(left - 1 + rnd(fz, 40), 255);
			rnd_bytes(fz, p + n + 2, left - 2);
			return;
		}
		if (olen > left - 2) {
			type = 1;
			olen = left - 2;
		}
		p[n] = type;
		p[n + 1] = olen;
		if (type == 1 && chance(fz, 90))
			memset(p + n + 2, 0, olen);
		else if (type == 201 && olen == 16)
			addr_any(fz, true, p + n + 2);
		else
			rnd_bytes(fz, p + n + 2, olen);
		n += 2 + olen;
	}
}

/* A routing header: types 0, 2, 3 (RPL), 4 (SRH) and others. */
static size_t rh_write(struct fz *fz, uint8_t *p, size_t left)
{
	static const uint8_t types[] = { 0, 0, 2, 2, 3, 4, 4, 4, 1, 5, 253 };
	uint8_t type = types[rnd(fz, ARRAY_SIZE(types))];
	size_t k, i, len;

	k = type == 2 && chance(fz, 90) ? 1 : rnd(fz, 5);
	while (k && 8 + 16 * k > left)
		k--;
	len = 8 + 16 * k;
	if (len > left)
		return 0;
	p[1] = 2 * k;
	p[2] = type;
	p[3] = chance(fz, 40) ? 0 : chance(fz, 80) ? 1 + rnd(fz, k ? k : 1) :
	       rnd(fz, 256);
	put32(p + 4, 0);
	if (type == 4) {
		p[4] = chance(fz, 80) ? (k ? k - 1 : 0) : rnd(fz, 256);
		p[5] = chance(fz, 80) ? 0 : rnd(fz, 256);
		put16(p + 6, rnd(fz, 65536));
	} else if (type == 3 || chance(fz, 10)) {
		rnd_bytes(fz, p + 4, 4);
	}
	for (i = 0; i < k; i++) {
		if (type == 3 && chance(fz, 50))
			rnd_bytes(fz, p + 8 + 16 * i, 16);
		else
			addr_any(fz, true, p + 8 + 16 * i);
	}
	return len;
}

/*
 * Extension header @type at @p, at most @left bytes, its next header
 * left to the caller; its length, or 0 when it does not fit.
 */
static size_t ext_write(struct fz *fz, uint8_t type, uint8_t *p,
			size_t left, bool many)
{
	size_t x, len;

	if (left < 8)
		return 0;
	switch (type) {
	case IPPROTO_ROUTING:
		return rh_write(fz, p, left);
	case IPPROTO_FRAGMENT:
		p[1] = chance(fz, 90) ? 0 : rnd(fz, 256);
		/* Mostly atomic (offset 0, no more fragments). */
		put16(p + 2, chance(fz, 70) ? 0 : rnd(fz, 65536));
		put32(p + 4, rnd32(fz));
		return 8;
	case IPPROTO_AH:
		x = 2 * rnd_range(fz, 1, 3);	/* 16, 24 or 32 bytes */
		len = (x + 2) * 4;
		if (len > left)
			return 0;
		p[1] = x;
		put16(p + 2, 0);
		rnd_bytes(fz, p + 4, len - 4);
		return len;
	default:			/* HBH, DST, mobility, ... */
		x = many ? rnd(fz, 2) : chance(fz, 85) ? rnd(fz, 3) :
		    rnd(fz, 32);
		while (x && 8 * (x + 1) > left)
			x--;
		len = 8 * (x + 1);
		p[1] = x;
		if (type == IPPROTO_HOPOPTS || type == IPPROTO_DSTOPTS)
			tlv_opts(fz, p + 2, len - 2, type == IPPROTO_HOPOPTS);
		else
			rnd_bytes(fz, p + 2, len - 2);
		return len;
	}
}

static uint8_t pick_ext(struct fz *fz, unsigned int i)
{
	unsigned int r = rnd(fz, 100);

	if (!i && r < 50)
		return IPPROTO_HOPOPTS;
	r = rnd(fz, 100);
	if (r < 38)
		return IPPROTO_DSTOPTS;
	if (r < 65)
		return IPPROTO_ROUTING;
	if (r < 80)
		return IPPROTO_FRAGMENT;
	if (r < 90)
		return IPPROTO_AH;
	if (r < 97)
		return IPPROTO_HOPOPTS;	/* not first: misplaced */
	return 135;			/* mobility: upper layer to Linux */
}

/*
 * Up to @count extension headers in pk->hdr, at most @room bytes, the
 * last one's next header @last; sets pk->nh0 and pk->hlen.  @many: the
 * same header again and again, mostly, as a long, loop-like chain.
 */
static void v6_chain(struct fz *fz, struct pk *pk, size_t room, uint8_t last,
		     unsigned int count, bool many, struct chain *ch)
{
	static const uint8_t reps[] = { IPPROTO_DSTOPTS, IPPROTO_DSTOPTS,
					IPPROTO_HOPOPTS, IPPROTO_FRAGMENT,
					IPPROTO_ROUTING, 0xff };
	uint8_t rep = reps[rnd(fz, ARRAY_SIZE(reps))], type;
	uint8_t *prev = &pk->nh0;
	unsigned int i;
	size_t n = 0, len;

	if (room > HDR_MAX)
		room = HDR_MAX;
	if (ch)
		ch->n = 0;
	for (i = 0; i < count && i < MAX_EXT; i++) {
		type = many && rep != 0xff ? rep : pick_ext(fz, i);
		len = ext_write(fz, type, pk->hdr + n, room - n, many);
		if (!len)
			break;
		*prev = type;
		prev = &pk->hdr[n];
		if (ch) {
			ch->off[ch->n] = n;
			ch->type[ch->n++] = type;
		}
		n += len;
	}
	*prev = last;
	pk->hlen = n;
	if (!n)
		pk->proto = last;
}

/* ---- the classes ---------------------------------------------------- */

static void gen_probe(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	uint8_t *t = pk->l4;

	set_addr(fz, v6, A_CLIENT, pk->src);
	set_addr(fz, v6, A_SERVER, pk->dst);
	pk->ttl = 64;
	pk->tos = 0;
	pk->frag = IP_DF;
	pk->proto = IPPROTO_TCP;
	memset(t, 0, 20);
	put16(t, eph_port(fz));
	put16(t + 2, PROBE_PORT);
	put32(t + 4, rnd32(fz));
	t[12] = 5 << 4;
	t[13] = TF_SYN;
	put16(t + 14, 64240);
	pk->l4len = 20;
	pk_csum(pk);
	emit(fz, pk);
}

static void gen_trunc_l3(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	uint8_t proto = pick_l4(fz, v6);

	if (chance(fz, 15)) {
		if (v6)
			v6_chain(fz, pk, 128, proto, 1 + rnd(fz, 3), false,
				 NULL);
		else
			pk->hlen = ip_opts(fz, pk->hdr, 4 * rnd_range(fz, 1, 10));
	}
	pk_l4(fz, pk, proto, l4_room(pk), small_pay(fz, 64));
	emit(fz, pk);
	fz->b.len[fz->b.n - 1] = ETH_HDR + rnd(fz, v6 ? IP6_HDR : IP4_HDR);
}

static void gen_bad_ihl(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, false);
	unsigned int cur, ihl;
	uint8_t *f;

	(void)v6;
	if (chance(fz, 30))
		pk->hlen = ip_opts(fz, pk->hdr, 4 * rnd_range(fz, 1, 10));
	pk_l4(fz, pk, chance(fz, 50) ? IPPROTO_TCP : IPPROTO_UDP, l4_room(pk),
	      small_pay(fz, 256));
	f = emit(fz, pk);
	cur = 5 + pk->hlen / 4;
	if (cur < 15 && chance(fz, 50))
		ihl = rnd_range(fz, cur + 1, 15);
	else
		ihl = rnd(fz, 5);
	f[ETH_HDR] = 0x40 | ihl;
	if (chance(fz, 90))
		ip4_csum(f + ETH_HDR, fz->b.len[fz->b.n - 1] - ETH_HDR);
}

static void gen_bad_totlen(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, false);
	size_t hl, l3, tot;
	uint8_t *f;

	(void)v6;
	if (chance(fz, 20))
		pk->hlen = ip_opts(fz, pk->hdr, 4 * rnd_range(fz, 1, 10));
	pk_l4(fz, pk, pick_l4(fz, false), l4_room(pk), small_pay(fz, 256));
	f = emit(fz, pk);
	hl = IP4_HDR + pk->hlen;
	l3 = fz->b.len[fz->b.n - 1] - ETH_HDR;
	switch (rnd(fz, 5)) {
	case 0:			/* beyond the frame */
		tot = rnd_range(fz, l3 + 1, 65535);
		break;
	case 1:			/* shorter than the header */
		tot = rnd(fz, hl);
		break;
	case 2:
		tot = 0;
		break;
	case 3:			/* cuts into the transport header */
		tot = hl + rnd(fz, l3 - hl + 1);
		break;
	default:		/* a little beyond */
		tot = l3 + 1 + rnd(fz, 8);
		break;
	}
	put16(f + ETH_HDR + 2, tot);
	if (chance(fz, 95))
		ip4_csum(f + ETH_HDR, l3);
}

static void gen_bad_payload_len(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, true);
	unsigned int mode = rnd(fz, 5);
	size_t actual, plen;
	uint32_t jumbo;
	uint8_t proto = pick_l4(fz, true);
	uint8_t *f;

	(void)v6;
	if (mode == 2) {
		/* hop-by-hop jumbo payload option */
		pk->nh0 = IPPROTO_HOPOPTS;
		pk->hdr[0] = proto;
		pk->hdr[1] = 0;
		pk->hdr[2] = 0xc2;
		pk->hdr[3] = 4;
		switch (rnd(fz, 4)) {
		case 0:
			jumbo = rnd_range(fz, 65536, 0x7fffffff);
			break;
		case 1:
			jumbo = rnd(fz, 65536);
			break;
		case 2:
			jumbo = 0xffffffff;
			break;
		default:
			jumbo = 0;
			break;
		}
		put32(pk->hdr + 4, jumbo);
		pk->hlen = 8;
	} else if (chance(fz, 30)) {
		v6_chain(fz, pk, 128, proto, 1 + rnd(fz, 3), false, NULL);
	}
	pk_l4(fz, pk, proto, l4_room(pk), small_pay(fz, 256));
	f = emit(fz, pk);
	actual = pk->hlen + pk->l4len;
	switch (mode) {
	case 0:			/* beyond the frame */
		plen = rnd_range(fz, actual + 1, 65535);
		break;
	case 1:			/* 0 without a jumbo option */
		plen = 0;
		break;
	case 2:			/* 0 with one, or not 0 with one */
		plen = chance(fz, 70) ? 0 : actual;
		break;
	case 3:			/* shorter than the packet */
		plen = rnd(fz, actual);
		break;
	default:		/* shorter than the extension headers */
		plen = pk->hlen ? rnd(fz, pk->hlen) : rnd(fz, 8);
		break;
	}
	put16(f + ETH_HDR + 4, plen);
}

static void gen_bad_csum(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	uint8_t proto = pick_l4(fz, v6);
	size_t off;
	uint8_t *f;

	pk_l4(fz, pk, proto, l4_room(pk), small_pay(fz, 256));
	if (proto == IPPROTO_TCP && chance(fz, 50)) {
		/* A SYN to a live port, else all right. */
		put16(pk->l4 + 2, no_probe(live_port(fz)));
		pk->l4[13] = TF_SYN;
		pk_csum(pk);
	}
	f = emit(fz, pk);
	if (!v6 && chance(fz, 60)) {
		f[ETH_HDR + 10] ^= 1 + rnd(fz, 255);
		return;
	}
	off = l4_off(pk) + csum_off(proto);
	if (proto == IPPROTO_UDP && v6 && chance(fz, 30))
		put16(f + off, 0);	/* not allowed over IPv6 */
	else
		put16(f + off, get16(f + off) ^ rnd_range(fz, 1, 65535));
}

static void gen_bad_version(struct fz *fz, bool v6)
{
	bool other = fz->cfg.fams == (F4 | F6) && chance(fz, 30);
	struct pk *pk = pk_init(fz, 0, other ? !v6 : v6);
	uint8_t *f;
	unsigned int ver;

	pk_l4(fz, pk, pick_l4(fz, pk->v6), l4_room(pk), small_pay(fz, 128));
	if (other) {
		/* IPv6 packet as ethertype IPv4, or the other way round */
		emit_type(fz, pk, v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
		return;
	}
	f = emit(fz, pk);
	if (chance(fz, 50))
		ver = v6 ? 4 : 6;
	else
		ver = ((v6 ? 6 : 4) + rnd_range(fz, 1, 15)) & 0x0f;
	f[ETH_HDR] = (f[ETH_HDR] & 0x0f) | ver << 4;
	if (!v6)
		ip4_csum(f + ETH_HDR, fz->b.len[fz->b.n - 1] - ETH_HDR);
}

static void gen_ip_options(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, false);
	unsigned int r = rnd(fz, 100);
	uint8_t proto;

	(void)v6;
	pk->hlen = ip_opts(fz, pk->hdr, 4 * rnd_range(fz, 1, 10));
	proto = r < 50 ? IPPROTO_TCP : r < 85 ? IPPROTO_UDP : IPPROTO_ICMP;
	pk_l4(fz, pk, proto, l4_room(pk), small_pay(fz, 256));
	emit(fz, pk);
}

static void gen_ipv6_ext(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, true);
	unsigned int end = rnd(fz, 100), idx;
	bool many = chance(fz, 15);
	struct chain ch;
	uint8_t last;
	size_t room, cut, k;
	uint8_t *f, *h;

	(void)v6;
	if (end < 35)
		last = IPPROTO_TCP;
	else if (end < 65)
		last = IPPROTO_UDP;
	else if (end < 80)
		last = IPPROTO_ICMPV6;
	else if (end < 90)
		last = IPPROTO_NONE;
	else
		last = pick_l4(fz, true);	/* cut short below */
	v6_chain(fz, pk, many ? 1200 : 400, last,
		 many ? rnd_range(fz, 8, 40) : rnd_range(fz, 1, 5), many, &ch);
	room = l4_room(pk);
	if (last == IPPROTO_NONE) {
		pk->proto = last;
		pk->l4len = chance(fz, 50) ? 0 : rnd(fz, min_sz(room, 64));
		rnd_bytes(fz, pk->l4, pk->l4len);
	} else {
		pk_l4(fz, pk, last, room, small_pay(fz, room - 60));
	}
	idx = fz->b.n;
	f = emit(fz, pk);
	if (end >= 90) {
		/* Cut inside the chain or the transport header. */
		cut = rnd(fz, pk->hlen + min_sz(pk->l4len, 24));
		fz->b.len[idx] = ETH_HDR + IP6_HDR + cut;
	} else if (ch.n && chance(fz, 20)) {
		/* A header claims more than there is. */
		k = rnd(fz, ch.n);
		h = f + ETH_HDR + IP6_HDR + ch.off[k];
		if (h[1] < 255)
			h[1] = rnd_range(fz, h[1] + 1, 255);
		if (chance(fz, 50))
			fz->b.len[idx] = h + 8 - f;
	}
}

static void gen_trunc_l4(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	uint16_t sport = eph_port(fz);
	uint16_t dport = chance(fz, 60) ? live_port(fz) : rnd_port(fz);
	uint8_t flags = chance(fz, 50) ? TF_SYN : pick_flags(fz);
	size_t n;

	switch (rnd(fz, 9)) {
	case 0:			/* TCP header cut short */
		pk->proto = IPPROTO_TCP;
		mk_tcp(fz, pk->l4, sport, dport, flags, 0, 0);
		pk->l4len = rnd(fz, 20);
		break;
	case 1:			/* data offset below 5 */
		pk->proto = IPPROTO_TCP;
		pk->l4len = mk_tcp(fz, pk->l4, sport, dport, flags,
				   chance(fz, 30), small_pay(fz, 64));
		pk->l4[12] = (pk->l4[12] & 0x0f) | rnd(fz, 5) << 4;
		break;
	case 2:			/* data offset beyond the segment */
		pk->proto = IPPROTO_TCP;
		n = mk_tcp(fz, pk->l4, sport, dport, flags, 0, rnd(fz, 40));
		pk->l4[12] = (pk->l4[12] & 0x0f) |
			     rnd_range(fz, n / 4 + 1, 15) << 4;
		pk->l4len = n;
		break;
	case 3:			/* UDP header cut short */
		pk->proto = IPPROTO_UDP;
		mk_udp(fz, pk->l4, sport, dport, 0);
		pk->l4len = rnd(fz, 8);
		break;
	case 4:			/* UDP length 0, 1 .. 7, too long, short */
	case 5:
	case 6:
	case 7:
		pk->proto = IPPROTO_UDP;
		n = mk_udp(fz, pk->l4, sport, dport, 1 + small_pay(fz, 256));
		pk->l4len = n;
		switch (rnd(fz, 4)) {
		case 0:
			put16(pk->l4 + 4, 0);
			break;
		case 1:
			put16(pk->l4 + 4, rnd_range(fz, 1, 7));
			break;
		case 2:
			put16(pk->l4 + 4, rnd_range(fz, n + 1, 65535));
			break;
		default:
			put16(pk->l4 + 4, rnd_range(fz, 8, n - 1));
			break;
		}
		break;
	default:		/* ICMP header cut short */
		pk->proto = v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
		mk_echo(fz, pk->l4, v6, 0);
		pk->l4len = rnd(fz, 8);
		break;
	}
	pk_csum(pk);
	emit(fz, pk);
}

/* One fragment: @len bytes of @data at offset @off of the datagram. */
static void frag_emit(struct fz *fz, const struct pk *pk, uint32_t id,
		      size_t off, const uint8_t *data, size_t len, bool mf)
{
	uint8_t *f = frame_new(fz, pk->v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
	uint8_t *d = f + ETH_HDR, *fh;
	size_t hl;

	if (pk->v6) {
		hl = IP6_HDR + pk->hlen + 8;
		put32(d, 6u << 28 | (uint32_t)pk->tos << 20 |
		      (pk->flow & 0xfffff));
		put16(d + 4, hl - IP6_HDR + len);
		d[6] = pk->hlen ? pk->nh0 : IPPROTO_FRAGMENT;
		d[7] = pk->ttl;
		memcpy(d + 8, pk->src, 16);
		memcpy(d + 24, pk->dst, 16);
		memcpy(d + IP6_HDR, pk->hdr, pk->hlen);
		fh = d + IP6_HDR + pk->hlen;
		fh[0] = pk->proto;
		fh[1] = 0;
		put16(fh + 2, (off & 0xfff8) | mf);
		put32(fh + 4, id);
	} else {
		hl = IP4_HDR + pk->hlen;
		d[0] = 0x40 | hl / 4;
		d[1] = pk->tos;
		put16(d + 2, hl + len);
		put16(d + 4, id);
		put16(d + 6, (mf ? IP_MF : 0) | ((off >> 3) & 0x1fff));
		d[8] = pk->ttl;
		d[9] = pk->proto;
		memcpy(d + 12, pk->src, 4);
		memcpy(d + 16, pk->dst, 4);
		memcpy(d + IP4_HDR, pk->hdr, pk->hlen);
		ip4_csum(d, hl);
	}
	memcpy(d + hl, data, len);
	fz->b.len[fz->b.n++] = ETH_HDR + hl + len;
}

/* Fragment @k of @pk's segment cut in pieces of @unit bytes. */
static void frag_nth(struct fz *fz, const struct pk *pk, uint32_t id,
		     size_t unit, size_t k)
{
	size_t off = k * unit;

	frag_emit(fz, pk, id, off, pk->l4 + off, min_sz(unit, pk->l4len - off),
		  off + unit < pk->l4len);
}

enum {
	FR_FIRST, FR_NONFIRST, FR_ALL, FR_SHUFFLE, FR_OVERLAP, FR_DUP,
	FR_TINY, FR_BEYOND, FR_NMODE
};

static void gen_frag(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	unsigned int mode = rnd(fz, FR_NMODE), nfr, i, j, at;
	size_t hdr, maxunit, unit, total, min_unit, off, len, shift;
	unsigned int order[MAX_BURST];
	uint8_t *data = fz->scratch;
	uint8_t proto;
	uint32_t id;

	if (v6 && chance(fz, 20))
		v6_chain(fz, pk, 64, IPPROTO_FRAGMENT, rnd_range(fz, 1, 2),
			 false, NULL);
	else if (!v6 && chance(fz, 10))
		pk->hlen = ip_opts(fz, pk->hdr, 4 * rnd_range(fz, 1, 3));
	hdr = v6 ? IP6_HDR + pk->hlen + 8 : IP4_HDR + pk->hlen;
	maxunit = (MTU - hdr) & ~(size_t)7;

	/* The datagram, checksummed whole. */
	proto = mode == FR_TINY ? IPPROTO_TCP : pick_l4(fz, v6);
	total = 8 + rnd(fz, chance(fz, 70) ? 3000 : MAX_FRAGS * maxunit - 8);
	if (proto == IPPROTO_TCP && total < 20)
		total = 20;
	pk->proto = proto;
	if (proto == IPPROTO_TCP)
		mk_tcp(fz, pk->l4, eph_port(fz), any_port(fz), pick_flags(fz),
		       0, total - 20);
	else if (proto == IPPROTO_UDP)
		mk_udp(fz, pk->l4, eph_port(fz), any_port(fz), total - 8);
	else
		mk_echo(fz, pk->l4, v6, total - 8);
	pk->l4len = total;
	pk_csum(pk);

	unit = chance(fz, 50) ? maxunit : 8 * rnd_range(fz, 1, maxunit / 8);
	min_unit = ((total + MAX_FRAGS - 1) / MAX_FRAGS + 7) & ~(size_t)7;
	if (unit < min_unit)
		unit = min_unit;
	nfr = (total + unit - 1) / unit;
	id = v6 ? rnd32(fz) : rnd(fz, 65536);

	switch (mode) {
	case FR_FIRST:
		frag_emit(fz, pk, id, 0, pk->l4, min_sz(unit, total), true);
		break;
	case FR_NONFIRST:
		if (nfr > 1) {
			j = rnd_range(fz, 1, nfr - 1);
			frag_nth(fz, pk, id, unit, j);
		} else {
			off = 8 * rnd_range(fz, 1, 64);
			rnd_bytes(fz, data, total);
			frag_emit(fz, pk, id, off, data, total, chance(fz, 50));
		}
		break;
	case FR_ALL:
		for (i = 0; i < nfr; i++)
			frag_nth(fz, pk, id, unit, i);
		break;
	case FR_SHUFFLE:
		for (i = 0; i < nfr; i++)
			order[i] = i;
		for (i = nfr; i > 1; i--) {
			j = rnd(fz, i);
			at = order[i - 1];
			order[i - 1] = order[j];
			order[j] = at;
		}
		for (i = 0; i < nfr; i++)
			frag_nth(fz, pk, id, unit, order[i]);
		break;
	case FR_DUP:
		j = rnd(fz, nfr);
		at = chance(fz, 50) ? j : nfr - 1;
		for (i = 0; i < nfr; i++) {
			frag_nth(fz, pk, id, unit, i);
			if (i == at)
				frag_nth(fz, pk, id, unit, j);
		}
		break;
	case FR_OVERLAP:
		/*
		 * One more fragment, starting inside the one before.  Its
		 * bytes are the datagram's, or past the transport header
		 * different ones.
		 */
		if (nfr < 2) {
			frag_nth(fz, pk, id, unit, 0);
			frag_nth(fz, pk, id, unit, 0);
			break;
		}
		j = rnd_range(fz, 1, nfr - 1);
		shift = 8 * rnd_range(fz, 1, min_sz(unit / 8, 8));
		off = j * unit - shift;
		len = min_sz(unit, total - off);
		memcpy(data, pk->l4 + off, len);
		if (chance(fz, 30)) {
			size_t from = off < 24 ? 24 - off : 0;

			if (from < len)
				rnd_bytes(fz, data + from, len - from);
		}
		at = rnd(fz, nfr + 1);
		for (i = 0; i <= nfr; i++) {
			if (i == at)
				frag_emit(fz, pk, id, off, data, len,
					  off + len < total);
			if (i < nfr)
				frag_nth(fz, pk, id, unit, i);
		}
		break;
	case FR_TINY:
		/* 8 bytes first: ports and sequence number, no flags */
		frag_emit(fz, pk, id, 0, pk->l4, 8, true);
		if (chance(fz, 30))
			break;
		for (off = 8; off < total; off += unit)
			frag_emit(fz, pk, id, off, pk->l4 + off,
				  min_sz(unit, total - off), off + unit < total);
		break;
	default:		/* FR_BEYOND: offset + length past 65535 */
		if (chance(fz, 40))
			frag_emit(fz, pk, id, 0, pk->l4, min_sz(unit, total), true);
		off = 65528 - 8 * rnd(fz, 8);
		len = min_sz(maxunit, 65536 - off + 8 * rnd_range(fz, 1, 64));
		rnd_bytes(fz, data, len);
		frag_emit(fz, pk, id, off, data, len, chance(fz, 50));
		break;
	}
}

/* An ICMP(v6) error header, checksum and quote left to the caller. */
static void icmp_err_hdr(struct fz *fz, bool v6, uint8_t *p)
{
	static const uint32_t mtu6[] = { 0, 68, 1279, 1280, 1500, 65535,
					 0xffffffff };
	static const uint16_t mtu4[] = { 0, 68, 576, 1280, 1500, 65535 };
	static const uint8_t unreach[] = { 0, 1, 3, 3 };
	unsigned int r = rnd(fz, 10);

	memset(p, 0, 8);
	if (!v6) {
		if (r < 4) {
			p[0] = 3;
			r = rnd(fz, 100);
			p[1] = r < 60 ? unreach[rnd(fz, 4)] : r < 80 ? 4 :
			       rnd(fz, 16);
			if (p[1] == 4)
				put16(p + 6, chance(fz, 80) ?
				      mtu4[rnd(fz, ARRAY_SIZE(mtu4))] :
				      rnd(fz, 65536));
		} else if (r < 6) {
			p[0] = 11;
			p[1] = rnd(fz, 2);
		} else if (r < 8) {
			p[0] = 12;
			p[1] = rnd(fz, 3);
			p[4] = chance(fz, 80) ? rnd(fz, 64) : rnd(fz, 256);
		} else if (r < 9) {
			p[0] = 5;
			p[1] = rnd(fz, 4);
			addr_any(fz, false, p + 4);
		} else {
			p[0] = chance(fz, 50) ? 4 : rnd(fz, 256);
			p[1] = rnd(fz, 256);
			rnd_bytes(fz, p + 4, 4);
		}
		return;
	}
	if (r < 4) {
		p[0] = 1;
		p[1] = chance(fz, 50) ? 4 : rnd(fz, 8);
	} else if (r < 6) {
		p[0] = 2;
		put32(p + 4, chance(fz, 80) ? mtu6[rnd(fz, ARRAY_SIZE(mtu6))] :
		      rnd32(fz));
	} else if (r < 7) {
		p[0] = 3;
		p[1] = rnd(fz, 2);
	} else if (r < 9) {
		p[0] = 4;
		p[1] = rnd(fz, 4);
		put32(p + 4, chance(fz, 80) ? rnd(fz, 80) : rnd32(fz));
	} else {
		p[0] = rnd(fz, 128);
		p[1] = rnd(fz, 256);
		rnd_bytes(fz, p + 4, 4);
	}
}

/*
 * An ICMP(v6) error at nesting @depth, at most @room bytes at @p: its
 * header and the quoted packet as the gateway side sent it, from a local
 * address and a live port to the client or not, truncated or whole, with
 * options or extension headers, quoting an ICMP error again or another
 * protocol.  Checksum left to the caller.
 */
static size_t icmp_err(struct fz *fz, unsigned int depth, bool v6,
		       uint8_t *p, size_t room)
{
	/* GRE, SCTP, ESP, IPIP, IPv6, ICMP, ICMPv6, UDP-Lite, 254 */
	static const uint8_t others[] = { 47, 132, 50, 4, 41, 1, 58, 136,
					  254 };
	bool iv6 = fz->cfg.fams == (F4 | F6) && chance(fz, 3) ? !v6 : v6;
	struct pk *in = pk_init(fz, depth + 1, iv6);
	uint8_t *dg = fz->dg[depth + 1], *ih;
	unsigned int r = rnd(fz, 100);
	uint16_t sport, dport;
	size_t n, q, ihl;
	uint8_t proto;

	icmp_err_hdr(fz, v6, p);
	if (r < 50)
		set_addr(fz, iv6, A_SERVER, in->src);
	else if (r < 75)
		set_addr(fz, iv6, A_GW, in->src);
	else
		addr_any(fz, iv6, in->src);
	if (chance(fz, 80))
		set_addr(fz, iv6, A_CLIENT, in->dst);
	else
		addr_any(fz, iv6, in->dst);

	r = rnd(fz, 100);
	if (r < 42)
		proto = IPPROTO_TCP;
	else if (r < 84)
		proto = IPPROTO_UDP;
	else if (r < 92 && depth + 1 < MAX_DEPTH)
		proto = iv6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	else
		proto = others[rnd(fz, ARRAY_SIZE(others))];
	if (proto == IPPROTO_ICMP && iv6)
		proto = IPPROTO_ICMPV6;
	if (proto == IPPROTO_ICMPV6 && !iv6)
		proto = IPPROTO_ICMP;

	if (chance(fz, 20)) {
		if (iv6)
			v6_chain(fz, in, 96, proto, rnd_range(fz, 1, 3), false,
				 NULL);
		else
			in->hlen = ip_opts(fz, in->hdr, 4 * rnd_range(fz, 1, 10));
	}
	in->proto = proto;

	r = rnd(fz, 100);
	if (r < 60) {		/* from a live socket */
		sport = live_port(fz);
		dport = eph_port(fz);
	} else if (r < 75) {	/* to one */
		sport = eph_port(fz);
		dport = live_port(fz);
	} else {
		sport = rnd_port(fz);
		dport = rnd_port(fz);
	}
	switch (proto) {
	case IPPROTO_TCP:
		in->l4len = mk_tcp(fz, in->l4, sport, dport,
				   chance(fz, 50) ? TF_SYN | TF_ACK :
				   pick_flags(fz), chance(fz, 20),
				   small_pay(fz, 512));
		break;
	case IPPROTO_UDP:
		in->l4len = mk_udp(fz, in->l4, sport, dport,
				   small_pay(fz, 512));
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (depth + 1 < MAX_DEPTH && chance(fz, 75))
			in->l4len = icmp_err(fz, depth + 1, iv6, in->l4, 1200);
		else
			in->l4len = mk_echo(fz, in->l4, iv6,
					    small_pay(fz, 256));
		break;
	default:
		in->l4len = rnd_range(fz, 8, 64);
		rnd_bytes(fz, in->l4, in->l4len);
		break;
	}
	pk_csum(in);
	n = pk_dgram(in, dg);

	/* How much of it the error quotes. */
	ihl = (iv6 ? IP6_HDR : IP4_HDR) + in->hlen;
	r = rnd(fz, 100);
	if (r < 40)
		q = iv6 ? n : ihl + 8;
	else if (r < 60)
		q = ihl + rnd(fz, 8);	/* 0 .. 7 bytes of transport */
	else if (r < 70)
		q = rnd_range(fz, ihl > 8 ? ihl - 8 : 0, ihl);
	else if (r < 85)
		q = n;
	else
		q = rnd_range(fz, ihl, n);
	q = min_sz(q, n);
	q = min_sz(q, room - 8);
	memcpy(p + 8, dg, q);

	/* Sometimes the quoted header lies. */
	ih = p + 8;
	if (q >= 20 && chance(fz, 10)) {
		if (iv6 && q >= IP6_HDR) {
			if (chance(fz, 50))
				put16(ih + 4, rnd(fz, 65536));
			else
				ih[6] = rnd(fz, 256);
		} else if (!iv6) {
			r = rnd(fz, 3);
			if (r == 0)
				put16(ih + 2, rnd(fz, 65536));
			else if (r == 1)
				ih[0] = 0x40 | rnd(fz, 16);
			else
				ih[9] = rnd(fz, 256);
			if (chance(fz, 50))
				ip4_csum(ih, q);
		}
	}
	return 8 + q;
}

static void gen_icmp_err(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	unsigned int r = rnd(fz, 100);

	if (r < 35)
		set_addr(fz, v6, A_GW, pk->dst);
	else if (r < 85)
		set_addr(fz, v6, A_SERVER, pk->dst);
	pk->proto = v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	pk->l4len = icmp_err(fz, 0, v6, pk->l4, l4_room(pk));
	pk_csum(pk);
	emit(fz, pk);
}

static void gen_tcp_flags(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	uint16_t sport = chance(fz, 20) ? live_port(fz) : eph_port(fz);
	uint16_t dport = chance(fz, 60) ? live_port(fz) : rnd_port(fz);
	uint8_t flags = pick_flags(fz);
	unsigned int opt = chance(fz, 50) ? 0 : chance(fz, 75) ? 1 : 2;
	size_t pay = chance(fz, 60) ? 0 : rnd(fz, 512);

	pk->proto = IPPROTO_TCP;
	pk->l4len = mk_tcp(fz, pk->l4, sport, dport, flags, opt, pay);
	pk_csum(pk);
	emit(fz, pk);
}

static void gen_zero_port(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	unsigned int which = rnd(fz, 3);
	uint16_t sport = which == 1 ? eph_port(fz) : 0;
	uint16_t dport = which == 0 ? any_port(fz) : 0;
	size_t pay = small_pay(fz, 256);

	if (chance(fz, 50)) {
		pk->proto = IPPROTO_TCP;
		pk->l4len = mk_tcp(fz, pk->l4, sport, dport,
				   chance(fz, 60) ? TF_SYN : pick_flags(fz),
				   chance(fz, 20), pay);
	} else {
		pk->proto = IPPROTO_UDP;
		pk->l4len = mk_udp(fz, pk->l4, sport, dport, pay);
	}
	pk_csum(pk);
	emit(fz, pk);
}

/* A multicast or broadcast destination (or source). */
static void addr_mcast(struct fz *fz, bool v6, uint8_t *out)
{
	const uint8_t *gw = addr(fz, v6, A_GW);

	if (!v6) {
		switch (rnd(fz, 7)) {
		case 0:
			addr4(out, 224, 0, 0, 1);
			break;
		case 1:
			addr4(out, 224, 0, 0, 2 + rnd(fz, 254));
			break;
		case 2:
			addr4(out, 239, rnd(fz, 256), rnd(fz, 256),
			      rnd(fz, 256));
			break;
		case 3:
			addr4(out, 255, 255, 255, 255);
			break;
		case 4:
			addr4(out, gw[0], gw[1], gw[2], 255);
			break;
		case 5:
			addr4(out, 224, 0, 0, 251);
			break;
		default:
			addr4(out, 232, rnd(fz, 256), rnd(fz, 256),
			      rnd(fz, 256));
			break;
		}
		return;
	}
	switch (rnd(fz, 8)) {
	case 0:
		addr6_mc(fz, out, 0x02, 0);
		break;
	case 1:
		addr6_mc(fz, out, 0x02, 0);
		out[15] = 2;
		break;
	case 2:				/* solicited node */
		addr6_mc(fz, out, 0x02, 3);
		out[11] = 1;
		out[12] = 0xff;
		break;
	case 3:
		addr6_mc(fz, out, 0x05, 2);
		break;
	case 4:
		addr6_mc(fz, out, 0x0e, 4);
		break;
	case 5:
		addr6_mc(fz, out, 0x01, 0);
		break;
	case 6:				/* reserved scope 0 */
		addr6_mc(fz, out, 0x00, 2);
		break;
	default:			/* transient */
		addr6_mc(fz, out, 0x12, 4);
		break;
	}
}

static void gen_mcast_bcast(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	unsigned int r = rnd(fz, 100);

	addr_mcast(fz, v6, pk->dst);
	if (chance(fz, 20))
		addr_mcast(fz, v6, pk->src);
	if (chance(fz, 50))
		pk->ttl = chance(fz, 50) ? 1 : 255;
	pk_l4(fz, pk, r < 60 ? IPPROTO_UDP : r < 85 ? IPPROTO_TCP :
		      v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP,
	      l4_room(pk), small_pay(fz, 512));
	if (pk->proto == IPPROTO_TCP && chance(fz, 60)) {
		pk->l4[13] = TF_SYN;
		pk_csum(pk);
	}
	emit(fz, pk);
}

static void gen_own_addr(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	unsigned int r = rnd(fz, 100);
	unsigned int which = rnd(fz, 7);
	uint8_t proto, *a;

	switch (which) {
	case 0:			/* to the gateway itself */
		set_addr(fz, v6, A_GW, pk->dst);
		break;
	case 1:			/* from the gateway's own address */
		set_addr(fz, v6, A_GW, pk->src);
		set_addr(fz, v6, chance(fz, 50) ? A_GW : A_SERVER, pk->dst);
		break;
	case 2:			/* from loopback */
	case 4:			/* to loopback */
		a = which == 2 ? pk->src : pk->dst;
		memset(a, 0, alen(v6));
		if (v6)
			a[15] = 1;
		else if (chance(fz, 70))
			addr4(a, 127, 0, 0, 1);
		else
			addr4(a, 127, rnd(fz, 256), rnd(fz, 256), rnd(fz, 256));
		break;
	case 3:			/* from the unspecified address */
		memset(pk->src, 0, alen(v6));
		break;
	case 5:			/* from the server's address */
		set_addr(fz, v6, A_SERVER, pk->src);
		break;
	default:		/* mapped IPv4 (IPv6), 0.x.y.z (IPv4) */
		if (v6) {
			memset(pk->src, 0, 10);
			pk->src[10] = 0xff;
			pk->src[11] = 0xff;
			if (fz->cfg.fams & F4)
				memcpy(pk->src + 12,
				       fz->cfg.a4[rnd(fz, NADDR)], 4);
			else
				rnd_bytes(fz, pk->src + 12, 4);
		} else {
			addr4(pk->src, 0, rnd(fz, 256), rnd(fz, 256),
			      rnd(fz, 256));
		}
		break;
	}
	if (which != 0 && which != 4 && chance(fz, 30))
		set_addr(fz, v6, A_GW, pk->dst);
	proto = r < 50 ? IPPROTO_TCP : r < 90 ? IPPROTO_UDP :
		v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
	pk_l4(fz, pk, proto, l4_room(pk), small_pay(fz, 256));
	if (proto == IPPROTO_TCP && chance(fz, 70)) {
		pk->l4[13] = TF_SYN;
		pk_csum(pk);
	}
	emit(fz, pk);
}

static void gen_udp(struct fz *fz, bool v6)
{
	struct pk *pk = pk_init(fz, 0, v6);
	size_t max = l4_room(pk) - 8, pay;
	unsigned int r = rnd(fz, 100);
	uint16_t sport, dport;

	if (chance(fz, 80))
		set_addr(fz, v6, A_SERVER, pk->dst);
	dport = chance(fz, 60) ? live_port(fz) : rnd_port(fz);
	sport = chance(fz, 80) ? eph_port(fz) : rnd_port(fz);
	if (r < 40)
		pay = rnd(fz, 65);
	else if (r < 75)
		pay = rnd(fz, 513);
	else if (r < 90)
		pay = rnd(fz, max + 1);
	else
		pay = max;
	pk->proto = IPPROTO_UDP;
	pk->l4len = mk_udp(fz, pk->l4, sport, dport, pay);
	pk_csum(pk);
	r = rnd(fz, 100);
	if (r < 15)
		put16(pk->l4 + 6, 0);
	else if (r < 30)
		put16(pk->l4 + 6, get16(pk->l4 + 6) ^ rnd_range(fz, 1, 65535));
	emit(fz, pk);
}

/* ---- the class table ------------------------------------------------ */

enum {
	C_TRUNC_L3, C_BAD_IHL, C_BAD_TOTLEN, C_BAD_PAYLOAD_LEN, C_BAD_CSUM,
	C_BAD_VERSION, C_IP_OPTIONS, C_IPV6_EXT, C_TRUNC_L4, C_FRAG,
	C_ICMP_ERR, C_TCP_FLAGS, C_ZERO_PORT, C_MCAST_BCAST, C_OWN_ADDR,
	C_UDP, C_PROBE, NCLASS
};

static const struct {
	const char *name;
	unsigned int weight;
	unsigned int fams;
	void (*gen)(struct fz *fz, bool v6);
	const char *help;
} classes[NCLASS] = {
	[C_TRUNC_L3] = { "trunc_l3", 4, F4 | F6, gen_trunc_l3,
		"frame ends inside the IP header" },
	[C_BAD_IHL] = { "bad_ihl", 3, F4, gen_bad_ihl,
		"IPv4 header length below 5 or past the options" },
	[C_BAD_TOTLEN] = { "bad_totlen", 3, F4, gen_bad_totlen,
		"IPv4 total length past the frame, short, 0" },
	[C_BAD_PAYLOAD_LEN] = { "bad_payload_len", 3, F6, gen_bad_payload_len,
		"IPv6 payload length past the frame, short, 0, jumbo" },
	[C_BAD_CSUM] = { "bad_csum", 3, F4 | F6, gen_bad_csum,
		"bad IPv4 header or transport checksum" },
	[C_BAD_VERSION] = { "bad_version", 2, F4 | F6, gen_bad_version,
		"IP version not the ethertype's" },
	[C_IP_OPTIONS] = { "ip_options", 8, F4, gen_ip_options,
		"IPv4 options, right and malformed" },
	[C_IPV6_EXT] = { "ipv6_ext", 10, F6, gen_ipv6_ext,
		"IPv6 extension header chains" },
	[C_TRUNC_L4] = { "trunc_l4", 7, F4 | F6, gen_trunc_l4,
		"short TCP/UDP/ICMP headers, bad doff, bad UDP length" },
	[C_FRAG] = { "frag", 5, F4 | F6, gen_frag,
		"fragments: partial, shuffled, overlapping, tiny, too far" },
	[C_ICMP_ERR] = { "icmp_err", 14, F4 | F6, gen_icmp_err,
		"ICMP errors quoting live flows or not" },
	[C_TCP_FLAGS] = { "tcp_flags", 14, F4 | F6, gen_tcp_flags,
		"TCP flag combinations and options" },
	[C_ZERO_PORT] = { "zero_port", 4, F4 | F6, gen_zero_port,
		"TCP/UDP source or destination port 0" },
	[C_MCAST_BCAST] = { "mcast_bcast", 5, F4 | F6, gen_mcast_bcast,
		"multicast and broadcast destinations and sources" },
	[C_OWN_ADDR] = { "own_addr", 6, F4 | F6, gen_own_addr,
		"the gateway's own, loopback, unspecified addresses" },
	[C_UDP] = { "udp", 7, F4 | F6, gen_udp,
		"UDP to the server, checksums right, 0, bad" },
	[C_PROBE] = { "probe", 2, F4 | F6, gen_probe,
		"control: TCP SYN from client to server port 9" },
};

/* ---- sending -------------------------------------------------------- */

/*
 * Where the kernel reads a TCP destination port, make it not 9: at the
 * IPv4 header length, or after the IPv6 extension headers the way
 * ipv6_find_hdr() skips them.  The TCP checksum is kept in step.
 */
static void guard(uint8_t *f, size_t len)
{
	uint16_t type = get16(f + 12);
	size_t off;
	uint8_t nh;
	unsigned int i;

	if (type == ETHERTYPE_IP) {
		if (len < ETH_HDR + IP4_HDR || (f[ETH_HDR] & 0x0f) < 5)
			return;
		nh = f[ETH_HDR + 9];
		off = ETH_HDR + (f[ETH_HDR] & 0x0f) * 4;
	} else if (type == ETHERTYPE_IPV6) {
		if (len < ETH_HDR + IP6_HDR)
			return;
		nh = f[ETH_HDR + 6];
		off = ETH_HDR + IP6_HDR;
		for (i = 0; i < 256 && off + 8 <= len; i++) {
			if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
			    nh == IPPROTO_DSTOPTS) {
				nh = f[off];
				off += (f[off + 1] + 1) * 8;
			} else if (nh == IPPROTO_FRAGMENT) {
				nh = f[off];
				off += 8;
			} else if (nh == IPPROTO_AH) {
				nh = f[off];
				off += (f[off + 1] + 2) * 4;
			} else {
				break;
			}
		}
	} else {
		return;
	}
	if (nh != IPPROTO_TCP || off + 4 > len ||
	    get16(f + off + 2) != PROBE_PORT)
		return;
	put16(f + off + 2, PROBE_PORT + 1);
	if (off + 18 <= len) {
		/* RFC 1624: HC' = ~(~HC + ~m + m') */
		uint32_t s = (uint16_t)~get16(f + off + 16) +
			     (uint16_t)~PROBE_PORT + PROBE_PORT + 1;

		s = (s & 0xffff) + (s >> 16);
		s = (s & 0xffff) + (s >> 16);
		put16(f + off + 16, ~s);
	}
}

static int send_frame(int fd, const uint8_t *f, size_t len,
		      unsigned long long *retries)
{
	unsigned int tries = 0;
	ssize_t r;

	for (;;) {
		r = send(fd, f, len, 0);
		if (r == (ssize_t)len)
			return 0;
		if (r >= 0) {
			errno = EMSGSIZE;
			return -1;
		}
		if (errno == EINTR)
			continue;
		if ((errno == ENOBUFS || errno == EAGAIN ||
		     errno == EWOULDBLOCK) && tries++ < RETRY_MAX) {
			(*retries)++;
			poll(NULL, 0, 1);
			continue;
		}
		return -1;
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void pace(uint64_t t0, unsigned long long sent, unsigned long long rate)
{
	uint64_t due = t0 + (uint64_t)((double)sent * 1e9 / rate);
	struct timespec ts;

	if (now_ns() >= due)
		return;
	ts.tv_sec = due / 1000000000ULL;
	ts.tv_nsec = due % 1000000000ULL;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static void dump_frame(unsigned long long i, unsigned int c,
		       const uint8_t *f, size_t len)
{
	size_t k;

	printf("frame %llu %s len %zu ", i, classes[c].name, len);
	for (k = 0; k < len; k++)
		printf("%02x", f[k]);
	printf("\n");
}

/* ---- main ----------------------------------------------------------- */

static void usage(FILE *f)
{
	unsigned int c;

	fprintf(f,
		"usage: " PROG " -i IFNAME -m GW_MAC [-M SRC_MAC] -4 CLIENT4,GW4,SERVER4\n"
		"       -6 CLIENT6,GW6,SERVER6 [-p PORTS] [-s SEED] [-n PACKETS] [-r RATE] [-v]\n"
		"  -i IFNAME   interface toward the gateway (AF_PACKET)\n"
		"  -m GW_MAC   destination MAC address of every frame\n"
		"  -M SRC_MAC  source MAC address (default 02:00:00:00:fa:22)\n"
		"  -4 C,G,S    client, gateway, server IPv4 addresses\n"
		"  -6 C,G,S    client, gateway, server IPv6 addresses\n"
		"              (at least one of -4, -6)\n"
		"  -p PORTS    ports with listeners, comma separated (default 1234)\n"
		"  -s SEED     seed (uint64, default 1)\n"
		"  -n PACKETS  frames to send (default 10000)\n"
		"  -r RATE     at most RATE frames per second (default 0, no limit)\n"
		"  -v          print every frame in hex\n"
		"classes (weight):\n");
	for (c = 0; c < NCLASS; c++)
		fprintf(f, "  %-16s %2u  %s\n", classes[c].name,
			classes[c].weight, classes[c].help);
}

static bool parse_u64(const char *s, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && *s && *s != '-' && !*end;
}

static bool parse_mac(const char *s, uint8_t *mac)
{
	unsigned int b[6], i;
	char tail;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3],
		   &b[4], &b[5], &tail) != 6)
		return false;
	for (i = 0; i < 6; i++) {
		if (b[i] > 255)
			return false;
		mac[i] = b[i];
	}
	return true;
}

/* "CLIENT,GW,SERVER" */
static bool parse_addrs(const char *s, int af, uint8_t *out, size_t len)
{
	char *copy = strdup(s), *tok, *save = NULL;
	unsigned int n = 0;
	bool ok = copy;

	for (tok = ok ? strtok_r(copy, ",", &save) : NULL; tok && ok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (n == NADDR || inet_pton(af, tok, out + n * len) != 1)
			ok = false;
		n++;
	}
	free(copy);
	return ok && n == NADDR;
}

static bool parse_ports(const char *s, struct cfg *cfg)
{
	char *copy = strdup(s), *tok, *save = NULL;
	unsigned long long v;
	bool ok = copy;

	cfg->nports = 0;
	for (tok = ok ? strtok_r(copy, ",", &save) : NULL; tok && ok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (cfg->nports == MAX_PORTS || !parse_u64(tok, &v) || !v ||
		    v > 65535)
			ok = false;
		else
			cfg->ports[cfg->nports++] = v;
	}
	free(copy);
	return ok && cfg->nports;
}

int main(int argc, char **argv)
{
	unsigned long long seed = 1, count = 10000, rate = 0, sent = 0;
	unsigned long long csent[NCLASS] = { 0 }, fsent[2] = { 0 };
	unsigned long long psent[2] = { 0 }, retries = 0;
	unsigned int weight[NCLASS], total = 0, c, i, r;
	const char *ifname = NULL;
	bool verbose = false, have_gw = false, v6;
	struct sockaddr_ll sll;
	uint64_t hash = FNV_INIT, t0, t1;
	struct fz *fz;
	double secs;
	int opt, fd;

	fz = calloc(1, sizeof(*fz));
	if (!fz) {
		fprintf(stderr, PROG ": out of memory\n");
		return EXIT_LOCAL;
	}
	parse_mac("02:00:00:00:fa:22", fz->cfg.src_mac);
	fz->cfg.ports[0] = 1234;
	fz->cfg.nports = 1;
	while ((opt = getopt(argc, argv, "i:m:M:4:6:p:s:n:r:vh")) != -1) {
		switch (opt) {
		case 'i':
			ifname = optarg;
			break;
		case 'm':
			if (!parse_mac(optarg, fz->cfg.gw_mac))
				goto bad;
			have_gw = true;
			break;
		case 'M':
			if (!parse_mac(optarg, fz->cfg.src_mac))
				goto bad;
			break;
		case '4':
			if (!parse_addrs(optarg, AF_INET, fz->cfg.a4[0], 4))
				goto bad;
			fz->cfg.fams |= F4;
			break;
		case '6':
			if (!parse_addrs(optarg, AF_INET6, fz->cfg.a6[0], 16))
				goto bad;
			fz->cfg.fams |= F6;
			break;
		case 'p':
			if (!parse_ports(optarg, &fz->cfg))
				goto bad;
			break;
		case 's':
			if (!parse_u64(optarg, &seed))
				goto bad;
			break;
		case 'n':
			if (!parse_u64(optarg, &count))
				goto bad;
			break;
		case 'r':
			if (!parse_u64(optarg, &rate))
				goto bad;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_LOCAL;
		}
	}
	if (optind != argc || !ifname || !have_gw || !fz->cfg.fams) {
		fprintf(stderr, PROG ": -i, -m and -4 or -6 are needed\n");
		usage(stderr);
		return EXIT_LOCAL;
	}

	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		perror(PROG ": socket(AF_PACKET)");
		return EXIT_LOCAL;
	}
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = 0;		/* send only, receive nothing */
	sll.sll_ifindex = if_nametoindex(ifname);
	if (!sll.sll_ifindex) {
		fprintf(stderr, PROG ": %s: %s\n", ifname, strerror(errno));
		return EXIT_LOCAL;
	}
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		perror(PROG ": bind");
		return EXIT_LOCAL;
	}

	for (c = 0; c < NCLASS; c++) {
		weight[c] = classes[c].fams & fz->cfg.fams ?
			    classes[c].weight : 0;
		total += weight[c];
	}
	/* The first draw of the seed is the generator's state. */
	fz->rng = seed;
	splitmix64(&fz->rng);

	t0 = now_ns();
	while (sent < count) {
		r = rnd(fz, total);
		for (c = 0; r >= weight[c]; c++)
			r -= weight[c];
		switch (classes[c].fams & fz->cfg.fams) {
		case F4:
			v6 = false;
			break;
		case F6:
			v6 = true;
			break;
		default:
			v6 = chance(fz, 50);
			break;
		}
		fz->b.n = 0;
		classes[c].gen(fz, v6);
		for (i = 0; i < fz->b.n && sent < count; i++) {
			uint8_t *f = fz->b.f[i];
			size_t len = fz->b.len[i];
			uint8_t lb[2] = { len >> 8, len };

			if (len < ETH_HDR || len > FRAME_MAX) {
				fprintf(stderr, PROG ": frame %llu of %zu bytes\n",
					sent, len);
				return EXIT_LOCAL;
			}
			if (c != C_PROBE)
				guard(f, len);
			fnv(&hash, lb, 2);
			fnv(&hash, f, len);
			if (verbose)
				dump_frame(sent, c, f, len);
			if (rate)
				pace(t0, sent, rate);
			if (send_frame(fd, f, len, &retries) < 0) {
				fprintf(stderr, PROG ": send (frame %llu): %s\n",
					sent, strerror(errno));
				return EXIT_LOCAL;
			}
			sent++;
			csent[c]++;
			fsent[get16(f + 12) == ETHERTYPE_IPV6]++;
			if (c == C_PROBE)
				psent[v6]++;
		}
	}
	t1 = now_ns();
	close(fd);

	printf(PROG ": seed %llu packets %llu\n", seed, count);
	for (c = 0; c < NCLASS; c++)
		printf("class %s sent %llu\n", classes[c].name, csent[c]);
	printf("family ipv4 sent %llu\n", fsent[0]);
	printf("family ipv6 sent %llu\n", fsent[1]);
	printf("probe ipv4 sent %llu\n", psent[0]);
	printf("probe ipv6 sent %llu\n", psent[1]);
	printf("hash 0x%016llx\n", (unsigned long long)hash);
	secs = (t1 - t0) / 1e9;
	printf("rate: %.0f packets/s\n", secs > 0 ? sent / secs : 0.0);
	if (retries)
		fprintf(stderr, PROG ": %llu sends retried (ENOBUFS/EAGAIN)\n",
			retries);
	free(fz);
	return 0;

bad:
	fprintf(stderr, PROG ": bad -%c argument '%s'\n", opt, optarg);
	usage(stderr);
	return EXIT_LOCAL;
}
