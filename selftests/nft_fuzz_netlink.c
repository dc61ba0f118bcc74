// SPDX-License-Identifier: GPL-2.0
/*
 * nft_fuzz_netlink - seeded, structure-aware nf_tables netlink fuzzer for
 * the tproxy, socket and divert expressions.
 *
 * It builds nf_tables batches from a small model of what it has committed:
 * tables of every family, base chains on every hook and of every chain
 * type, regular chains reached through jumps, gotos and verdict maps, and
 * rules carrying tproxy, socket and divert, their attributes valid or
 * malformed (missing, wrong value, wrong length or type, unknown, badly
 * nested), their registers valid, out of range, too small, loaded by an
 * earlier immediate, meta or payload expression or never loaded.  Around
 * them: rule replacement and insertion by handle, rule deletion, chain
 * and table flushes and deletion, batches that abort on a last invalid
 * message, batches without an end that the kernel only validates, and
 * child processes that load rules in a network namespace of their own and
 * exit with them loaded.  "-h" lists the generators.
 *
 * A batch is clean (valid as far as the model knows, few mistakes: it
 * commits and the state grows), dirty (many malformed items: the kernel
 * answers each message, even after an error, and an aborted batch costs
 * it an RCU grace period whatever its size) or an abort batch.  The
 * model also keeps the clean batches from putting an expression where a
 * jump or map leads from a hook it refuses, and from closing loops.
 *
 * Every message asks for an acknowledgment and its errno is counted,
 * whatever it is: a kernel errno is never a failure by itself.  What a
 * run is checked for is the kernel log (BUG, WARNING, KASAN, refcount)
 * and that the fuzzer ends cleanly.
 *
 * The messages depend only on the options and on the kernel's answers,
 * and the run takes place in a network namespace of its own (unshared at
 * start), so two runs with the same options on one kernel print the same
 * lines but the last one, "rate:".  Printed, one item per line: which of
 * the three expressions the kernel has, the errno histogram, per
 * generator the messages sent, acknowledged without error and committed,
 * the batches, a hash (FNV-1a 64) of the sequence of errnos, and a hash
 * of the ruleset left at the end: tables, chains, rules and sets as
 * dumped, leaving out only the generation id (nfgenmsg res_id) and a
 * table's owner port id (NFTA_TABLE_OWNER), which depend on the process
 * and not on the messages.  Handles are kept: a fresh namespace numbers
 * them alike every time.  The tables are then deleted.
 *
 * To reproduce a finding, the options are enough: "-s SEED -n N" sends
 * exactly the first N messages that a longer run with the same other
 * options sends, so bisecting N finds the message after which the kernel
 * complained, and "-v" shows each message with its errno and extended
 * ack ("-d DIR" keeps the errnos in a file, to diff runs):
 *
 *	unshare -n ./nft_fuzz_netlink -s 7 -n 20000
 *	./nft_fuzz_netlink -s 7 -n 13412 -v | tail
 *
 * "-N" leaves out the namespace churn, for runs compared across kernels;
 * "-u" keeps the values 6.1's in-tree modules truncate to a u8 below 256
 * (the socket key and level, the tproxy family), for runs compared with
 * those modules; "-o" makes the verdict maps interval maps (an rbtree),
 * for every run compared with another.  The kernel validates a batch by
 * walking the chains and the maps' elements and answers with the first
 * error it meets; a hash map's elements come in an order that its random
 * seed decides, so a batch with two errors behind one map is answered
 * either way (seen: EMLINK in one run, EOPNOTSUPP in the next, for the
 * same message, on in-tree modules alone).  An rbtree walks in key order.
 * Exit status: 0, or 2 on a local error (usage, socket, lost ack).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>

#include "fuzz_rng.h"
#include "nft_netlink.h"

#ifndef NLM_F_NONREC
#define NLM_F_NONREC		0x100
#endif
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#endif

/* Newer than the oldest uapi headers this builds with (6.1). */
#define FZ_TABLE_F_PERSIST	0x4
#define FZ_MSG_DESTROYTABLE	26
#define FZ_MSG_DESTROYCHAIN	27
#define FZ_MSG_DESTROYRULE	28
#define FZ_MSG_DESTROYSET	29
#define FZ_MSG_DESTROYSETELEM	30

#define EXIT_LOCAL		2

#define NTAB			3	/* tables per family */
#define NCHAIN			8	/* chains per table */
#define NSET			2	/* verdict maps per table */
#define NKEY			8	/* map keys are 1 .. NKEY */
#define MAX_RULES		4096	/* rule handles remembered */
#define MAX_BATCH		64	/* messages in a batch */
#define ITEM_ROOM		40	/* no new item in a batch fuller than this */
#define BATCH_SIZE		(256 * 1024)
#define RBUF_SIZE		(64 * 1024)
#define ACK_TIMEOUT_MS		5000
#define MAX_ERRNO		4096
#define WHAT_LEN		64
#define EXTACK_LEN		112

/* Register numbers as netlink carries them. */
#define REG32(n)		(8 + (n))	/* NFT_REG32_00 + n */

#define M(x)			(1u << (x))

/* ---- what is fuzzed ------------------------------------------------ */

enum {
	FAM_IP, FAM_IP6, FAM_INET, FAM_BRIDGE, FAM_NETDEV, FAM_ARP, NFAM
};

#define IP_FAMS			(M(FAM_IP) | M(FAM_IP6) | M(FAM_INET))

static const char * const inet_hooks[] = {
	"prerouting", "input", "forward", "output", "postrouting", "ingress",
};

static const char * const arp_hooks[] = { "input", "output", "forward" };
static const char * const netdev_hooks[] = { "ingress", "egress" };

static const struct family {
	const char *name;
	uint8_t nfproto;
	uint8_t nhooks;		/* the hooks 0 .. nhooks - 1 exist */
	uint8_t nnames;
	const char * const *hooks;
} fams[NFAM] = {
	[FAM_IP]	= { "ip", NFPROTO_IPV4, 5, 6, inet_hooks },
	[FAM_IP6]	= { "ip6", NFPROTO_IPV6, 5, 6, inet_hooks },
	[FAM_INET]	= { "inet", NFPROTO_INET, 6, 6, inet_hooks },
	[FAM_BRIDGE]	= { "bridge", NFPROTO_BRIDGE, 5, 6, inet_hooks },
	[FAM_NETDEV]	= { "netdev", NFPROTO_NETDEV, 2, 2, netdev_hooks },
	[FAM_ARP]	= { "arp", NFPROTO_ARP, 2, 3, arp_hooks },
};

enum { CT_FILTER, CT_NAT, CT_ROUTE, NCT };

static const char * const ctypes[NCT] = { "filter", "nat", "route" };

static const char * const tab_names[NTAB] = { "fz0", "fz1", "fz2" };
static const char * const chain_names[NCHAIN] = {
	"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7",
};

static const char * const set_names[NSET] = { "m0", "m1" };

/* The generators; "setup" marks the tables and chains they need. */
enum {
	K_SETUP, K_TPROXY, K_SOCKET, K_DIVERT, K_CHAIN, K_JUMP, K_VMAP,
	K_REPLACE, K_DELETE, K_ABORT, K_NETNS, NKIND
};

/* Generators that make an item of a batch; the others make batches. */
#define ITEM_KINDS		(M(K_TPROXY) | M(K_SOCKET) | M(K_DIVERT) | \
				 M(K_CHAIN) | M(K_JUMP) | M(K_VMAP) | \
				 M(K_REPLACE) | M(K_DELETE))
#define ALL_KINDS		(ITEM_KINDS | M(K_ABORT) | M(K_NETNS))

static const struct kind {
	const char *name;
	unsigned int weight;
	const char *help;
} kinds[NKIND] = {
	[K_SETUP]	= { "setup", 0, "" },
	[K_TPROXY]	= { "tproxy", 18,
			    "rules with tproxy: attributes, registers, loads" },
	[K_SOCKET]	= { "socket", 16,
			    "rules with socket: keys, dreg, level, cmp" },
	[K_DIVERT]	= { "divert", 10,
			    "rules with divert: hooks, chain types, attributes" },
	[K_CHAIN]	= { "chain", 10,
			    "tables, base chains of every hook and type" },
	[K_JUMP]	= { "jump", 10,
			    "jumps and gotos to chains holding the expressions" },
	[K_VMAP]	= { "vmap", 9,
			    "verdict maps, elements and lookups to those chains" },
	[K_REPLACE]	= { "replace", 9,
			    "rule replace and insert by handle" },
	[K_DELETE]	= { "delete", 10,
			    "rule, chain, table, set deletion and flushes" },
	[K_ABORT]	= { "abort", 6,
			    "batches ending in an invalid message, or unended" },
	[K_NETNS]	= { "netns", 1,
			    "a child loads rules in a new netns and exits" },
};

/* Expressions a chain has been given, in the model. */
enum { EX_TPROXY, EX_SOCKET, EX_DIVERT, NEX };

static const uint8_t ex_kind[NEX] = { K_TPROXY, K_SOCKET, K_DIVERT };

/* Where an expression is meant to be accepted. */
static const struct want {
	uint8_t fams;
	uint8_t hooks;
	uint8_t types;
} wants[NEX] = {
	[EX_TPROXY] = { IP_FAMS, M(NF_INET_PRE_ROUTING),
			M(CT_FILTER) | M(CT_NAT) },
	[EX_SOCKET] = { IP_FAMS, M(NF_INET_PRE_ROUTING) | M(NF_INET_LOCAL_IN) |
			M(NF_INET_LOCAL_OUT), M(CT_FILTER) | M(CT_ROUTE) },
	[EX_DIVERT] = { IP_FAMS, M(NF_INET_PRE_ROUTING) | M(NF_INET_LOCAL_OUT),
			M(CT_FILTER) },
};

/* ---- model ---------------------------------------------------------- */

/*
 * What the generators believe the kernel has, as far as it matters for
 * making a batch that commits: jumps, gotos and map lookups, so that an
 * expression is put in a regular chain only if the base chains it is
 * reached from suit it, and a jump closes no loop.  Rules deleted by
 * handle leave their jumps in the model: it errs on the side of caution.
 */
struct mchain {
	bool exists;
	bool base;
	bool odd;		/* made by a mutated message: unknown */
	uint8_t hook;
	uint8_t type;
	int32_t prio;
	uint8_t content;	/* M(EX_*) of the rules put in it */
	uint8_t jumps;		/* M(chain) it jumps or goes to */
	uint8_t lookups;	/* M(set) it looks up */
	uint8_t rhooks;		/* regular: the hooks and types of the ... */
	uint8_t rtypes;		/* ... base chains it is reached from */
};

struct mset {
	bool exists;
	uint8_t keys;		/* M(key - 1) of its elements */
	uint8_t targets;	/* M(chain) its elements lead to */
};

struct mtable {
	bool exists;
	uint32_t flags;
	struct mchain chain[NCHAIN];
	struct mset set[NSET];
};

struct world {
	struct mtable t[NFAM][NTAB];
};

struct loc {
	uint8_t fam;
	uint8_t tab;
	uint8_t chain;
};

struct mrule {
	struct loc l;
	uint64_t handle;
};

/* What a committed message removes from the list of rule handles. */
enum { DEL_NONE, DEL_HANDLE, DEL_CHAIN, DEL_TABLE, DEL_FAMILY, DEL_ALL };

struct bmsg {
	uint32_t seq;
	uint32_t off;		/* in the batch buffer */
	uint16_t type;		/* NFT_MSG_* */
	uint8_t kind;
	uint8_t del;		/* DEL_*, applied to the model on commit */
	struct mrule target;	/* of del */
	bool echoed;
	struct mrule added;	/* the rule the kernel echoed */
	int err;		/* -1 until acknowledged */
	char what[WHAT_LEN];
	char extack[EXTACK_LEN];
};

struct batch {
	char *buf;
	size_t len;
	bool overflow;
	bool check_only;	/* no BATCH_END: validated, then aborted */
	uint8_t mode;		/* BM_* */
	uint32_t begin_seq;
	int err;		/* reported against the batch itself */
	char extack[EXTACK_LEN];
	unsigned int n;
	struct bmsg msg[MAX_BATCH];
};

struct stats {
	uint64_t hist[MAX_ERRNO + 1];	/* the last one: anything else */
	uint64_t sent[NKIND];
	uint64_t ok[NKIND];
	uint64_t committed[NKIND];
	uint64_t msgs;
	uint64_t batches;
	uint64_t batch_commit;
	uint64_t batch_check;
	uint64_t batch_err;
	uint64_t netns;
	uint64_t netns_msgs;
	uint64_t errno_hash;
	FILE *errlog;
	bool verbose;
};

/* A child's report of one message (type REC_BATCH: of one batch). */
#define REC_BATCH		0xffff

struct rec {
	uint16_t type;
	uint8_t kind;
	uint8_t state;
	uint8_t mode;
	int32_t err;
	char what[WHAT_LEN];
	char extack[EXTACK_LEN];
};

enum { BS_COMMIT, BS_ABORT, BS_CHECK };

static const char * const bs_names[] = { "commit", "abort", "check" };

/* How a batch was meant: to commit, full of mutations, to abort. */
enum { BM_CLEAN, BM_DIRTY, BM_ABORT };

static const char * const bm_names[] = { "clean", "dirty", "abort" };

struct fz {
	uint64_t rng;
	struct mnl_socket *nl;
	int sink;		/* in a child: the pipe to the parent */
	unsigned int kinds;	/* M(K_*) in use */
	unsigned int have;	/* M(EX_*) the kernel has */
	uint64_t left;		/* messages still to send */
	uint32_t seq;
	uint32_t set_id;
	struct world w;		/* as committed */
	struct world st;	/* as the batch being built leaves it */
	struct mrule rules[MAX_RULES];
	unsigned int nrules;
	struct batch b;
	struct nlmsghdr *nlh;	/* message being built */
	uint8_t kind;		/* generator of the item being built */
	bool dirty;		/* a batch of many mutated items */
	bool u8vals;		/* -u: key, family, level values below 256 */
	bool ordered;		/* -o: maps the kernel walks in key order */
	bool narrow;		/* the u32 being put must stay below 256 */
	struct stats *stats;
	unsigned char rbuf[RBUF_SIZE];
};

/* ---- helpers -------------------------------------------------------- */

/* 0 .. n - 1 */
static uint32_t rnd(struct fz *fz, uint32_t n)
{
	return fuzz_below(&fz->rng, n);
}

static bool chance(struct fz *fz, unsigned int percent)
{
	return rnd(fz, 100) < percent;
}

/* One of the bits set in @mask, which must not be 0. */
static unsigned int pick_bit(struct fz *fz, unsigned int mask)
{
	unsigned int n = __builtin_popcount(mask), i = rnd(fz, n), b;

	for (b = 0; ; b++)
		if (mask & M(b) && !i--)
			return b;
}

/*
 * Whether to get something wrong on purpose, @percent standing for the
 * usual rate: a clean batch, meant to commit, has few such items, a dirty
 * one many (the kernel checks and answers each message of a batch, even
 * after an error, and every aborted batch costs an RCU grace period).
 */
static bool mutating(struct fz *fz, unsigned int percent)
{
	return chance(fz, fz->dirty ? 2 * percent : percent / 5);
}

/* Whether to place an expression where it belongs. */
static bool good_place(struct fz *fz)
{
	return chance(fz, fz->dirty ? 60 : 95);
}

/* 1 to 3 of @n mutations, as a mask. */
static uint32_t pick_mut(struct fz *fz, unsigned int n)
{
	unsigned int i, k = 1 + rnd(fz, 3);
	uint32_t m = 0;

	for (i = 0; i < k; i++)
		m |= M(rnd(fz, n));
	return m;
}

static void fnv(uint64_t *h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		*h ^= p[i];
		*h *= 0x100000001b3ULL;
	}
}

static void fnv_u32(uint64_t *h, uint32_t v)
{
	unsigned char b[4] = { v, v >> 8, v >> 16, v >> 24 };

	fnv(h, b, sizeof(b));
}

#define FNV_INIT		0xcbf29ce484222325ULL

static const char *errno_name(int err)
{
	const char *name = NULL;

	if (!err)
		return "OK";
#if defined(__GLIBC__) && (__GLIBC__ > 2 || \
			   (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	name = strerrorname_np(err);
#endif
	return name ? name : "?";
}

static const char *op_name(uint16_t type)
{
	static const char * const names[] = {
		"NEWTABLE", "GETTABLE", "DELTABLE", "NEWCHAIN", "GETCHAIN",
		"DELCHAIN", "NEWRULE", "GETRULE", "DELRULE", "NEWSET",
		"GETSET", "DELSET", "NEWSETELEM", "GETSETELEM", "DELSETELEM",
		"NEWGEN", "GETGEN", "TRACE", "NEWOBJ", "GETOBJ", "DELOBJ",
		"GETOBJ_RESET", "NEWFLOWTABLE", "GETFLOWTABLE", "DELFLOWTABLE",
		"GETRULE_RESET", "DESTROYTABLE", "DESTROYCHAIN", "DESTROYRULE",
		"DESTROYSET", "DESTROYSETELEM",
	};

	return type < ARRAY_SIZE(names) ? names[type] : "?";
}

static const char *hook_name(unsigned int fam, uint32_t hook)
{
	return hook < fams[fam].nnames ? fams[fam].hooks[hook] : "badhook";
}

/* Table and chain names of ours, as indexes. */
static int name_index(const char *s, const char *prefix, int n)
{
	size_t plen = strlen(prefix);

	if (strncmp(s, prefix, plen) || !s[plen] || s[plen + 1] ||
	    s[plen] < '0' || s[plen] >= '0' + n)
		return -1;
	return s[plen] - '0';
}

static int fam_index(uint8_t nfproto)
{
	unsigned int f;

	for (f = 0; f < NFAM; f++)
		if (fams[f].nfproto == nfproto)
			return f;
	return -1;
}

/* ---- building messages ---------------------------------------------- */

static size_t room(const struct fz *fz)
{
	return fz->b.buf + BATCH_SIZE - (char *)fz->nlh;
}

static void a_put(struct fz *fz, uint16_t type, size_t len, const void *data)
{
	if (!fz->nlh || fz->b.overflow)
		return;
	if (!mnl_attr_put_check(fz->nlh, room(fz), type, len, data))
		fz->b.overflow = true;
}

static void a_u32(struct fz *fz, uint16_t type, uint32_t v)
{
	v = htonl(v);
	a_put(fz, type, sizeof(v), &v);
}

static void a_u64(struct fz *fz, uint16_t type, uint64_t v)
{
	v = htobe64(v);
	a_put(fz, type, sizeof(v), &v);
}

static void a_str(struct fz *fz, uint16_t type, const char *s)
{
	a_put(fz, type, strlen(s) + 1, s);
}

static struct nlattr *a_nest(struct fz *fz, uint16_t type)
{
	struct nlattr *nest;

	if (!fz->nlh || fz->b.overflow)
		return NULL;
	nest = mnl_attr_nest_start_check(fz->nlh, room(fz), type);
	if (!nest)
		fz->b.overflow = true;
	return nest;
}

static void a_end(struct fz *fz, struct nlattr *nest)
{
	if (nest && !fz->b.overflow)
		mnl_attr_nest_end(fz->nlh, nest);
}

/* Four bytes that start an attribute longer than what is left. */
static void a_truncated(struct fz *fz)
{
	struct nlattr hdr = { .nla_len = 64, .nla_type = 1 };

	if (!fz->nlh || fz->b.overflow)
		return;
	if (room(fz) < fz->nlh->nlmsg_len + sizeof(hdr)) {
		fz->b.overflow = true;
		return;
	}
	memcpy(mnl_nlmsg_get_payload_tail(fz->nlh), &hdr, sizeof(hdr));
	fz->nlh->nlmsg_len += sizeof(hdr);
}

/* A string of @len letters, no longer than @max. */
static void a_long_str(struct fz *fz, uint16_t type, size_t len)
{
	char s[320];

	if (len >= sizeof(s))
		len = sizeof(s) - 1;
	memset(s, 'x', len);
	s[len] = '\0';
	a_str(fz, type, s);
}

/*
 * The big-endian u32 @val as @type, or, for @bad, one of the ways to get
 * it wrong: short, long, empty, a string, flagged nested or net byte
 * order, twice, in host byte order.
 */
static void a_u32_maybe_bad(struct fz *fz, uint16_t type, uint32_t val,
			    bool bad)
{
	uint32_t be = htonl(val);
	unsigned char buf[8];
	uint16_t be16;

	if (!bad) {
		a_put(fz, type, sizeof(be), &be);
		return;
	}
	switch (rnd(fz, 9)) {
	case 0:
		buf[0] = val;
		a_put(fz, type, 1, buf);
		break;
	case 1:
		be16 = htons(val);
		a_put(fz, type, sizeof(be16), &be16);
		break;
	case 2:
		memcpy(buf, &be, sizeof(be));
		memset(buf + 4, 0, 4);
		a_put(fz, type, 8, buf);
		break;
	case 3:
		a_put(fz, type, 0, NULL);
		break;
	case 4:
		a_str(fz, type, "1");
		break;
	case 5:
		a_put(fz, type | NLA_F_NESTED, sizeof(be), &be);
		break;
	case 6:
		a_put(fz, type | NLA_F_NET_BYTEORDER, sizeof(be), &be);
		break;
	case 7:
		a_put(fz, type, sizeof(be), &be);
		a_u32(fz, type, rnd(fz, 32));
		break;
	default:
		/* host byte order, unless it must stay below 256 */
		a_put(fz, type, sizeof(val), fz->narrow ? &be : &val);
		break;
	}
}

/*
 * The socket key and level and the tproxy family: 6.1's in-tree modules
 * keep them in a u8 and truncate the u32 they get (256 reads as 0), where
 * ours and upstream since 6.6 refuse what does not fit.  With -u every
 * value sent for them, host byte order included, stays below 256, so that
 * a run on 6.1 compares equal; the refusal itself is nft_socket_abi.sh's.
 */
static void a_u32_narrow(struct fz *fz, uint16_t type, uint32_t val,
			 bool bad)
{
	if (fz->u8vals && val > 255)
		val = 255;
	fz->narrow = fz->u8vals;
	a_u32_maybe_bad(fz, type, val, bad);
	fz->narrow = false;
}

/* An attribute the expression does not declare. */
static void a_unknown(struct fz *fz, uint16_t max)
{
	static const uint16_t types[] = { 0, 1, 2, 0x3fff };
	unsigned char junk[16];
	uint16_t type;
	struct nlattr *n;
	unsigned int i;
	bool narrow;

	if (chance(fz, 60))
		type = max + 1 + rnd(fz, 4);
	else
		type = types[rnd(fz, ARRAY_SIZE(types))] + (max > 2 ? max : 0);
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = rnd(fz, 256);
	/*
	 * With -u, a type that is in fact declared (the socket level) reads
	 * below 256 too: junk that starts with three zero bytes, no nest.
	 */
	narrow = fz->u8vals && type <= max;
	if (narrow)
		memset(junk, 0, 3);
	switch (rnd(fz, 4)) {
	case 0:
		a_u32(fz, type, rnd(fz, 64));
		break;
	case 1:
		a_put(fz, type, 0, NULL);
		break;
	case 2:
		a_put(fz, type, 1 + rnd(fz, sizeof(junk)), junk);
		break;
	default:
		if (narrow) {
			a_u32(fz, type, rnd(fz, 64));
			break;
		}
		n = a_nest(fz, type);
		a_u32(fz, 1, rnd(fz, 64));
		a_end(fz, n);
		break;
	}
}

static void __attribute__((format(printf, 6, 7)))
msg_begin(struct fz *fz, uint16_t cmd, uint8_t nfproto, uint16_t flags,
	  uint8_t kind, const char *fmt, ...)
{
	struct batch *b = &fz->b;
	struct nfgenmsg *nfg;
	struct bmsg *m;
	va_list ap;

	fz->nlh = NULL;
	if (b->overflow || b->n == MAX_BATCH || BATCH_SIZE - b->len < 1024) {
		b->overflow = true;
		return;
	}
	fz->nlh = mnl_nlmsg_put_header(b->buf + b->len);
	fz->nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | cmd;
	fz->nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	fz->nlh->nlmsg_seq = ++fz->seq;
	nfg = mnl_nlmsg_put_extra_header(fz->nlh, sizeof(*nfg));
	nfg->nfgen_family = nfproto;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;

	m = &b->msg[b->n++];
	memset(m, 0, sizeof(*m));
	m->seq = fz->nlh->nlmsg_seq;
	m->off = b->len;
	m->type = cmd;
	m->kind = kind;
	m->err = -1;
	va_start(ap, fmt);
	vsnprintf(m->what, sizeof(m->what), fmt, ap);
	va_end(ap);
}

static void msg_end(struct fz *fz)
{
	if (fz->nlh && !fz->b.overflow)
		fz->b.len += fz->nlh->nlmsg_len;
	fz->nlh = NULL;
}

static struct bmsg *last_msg(struct fz *fz)
{
	static struct bmsg none;

	return fz->b.n ? &fz->b.msg[fz->b.n - 1] : &none;
}

/* More about the last message, for -v. */
static void __attribute__((format(printf, 2, 3)))
what_add(struct fz *fz, const char *fmt, ...)
{
	struct bmsg *m = last_msg(fz);
	size_t len = strlen(m->what);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->what + len, sizeof(m->what) - len, fmt, ap);
	va_end(ap);
}

static void batch_frame(struct fz *fz, uint16_t type)
{
	struct batch *b = &fz->b;
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;

	if (BATCH_SIZE - b->len < 64) {
		b->overflow = true;
		return;
	}
	nlh = mnl_nlmsg_put_header(b->buf + b->len);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = ++fz->seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = AF_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(NFNL_SUBSYS_NFTABLES);
	b->len += nlh->nlmsg_len;
	if (type == NFNL_MSG_BATCH_BEGIN)
		b->begin_seq = nlh->nlmsg_seq;
}

static void batch_start(struct fz *fz)
{
	struct batch *b = &fz->b;

	b->len = 0;
	b->n = 0;
	b->overflow = false;
	b->check_only = false;
	b->err = 0;
	b->extack[0] = '\0';
	fz->st = fz->w;
	batch_frame(fz, NFNL_MSG_BATCH_BEGIN);
}

/* ---- expressions ---------------------------------------------------- */

/* How an expression's list element is laid out. */
enum {
	SH_OK,		/* NAME, DATA { attributes } */
	SH_FLAT,	/* NAME, attributes: no DATA */
	SH_DOUBLE,	/* NAME, DATA { DATA { attributes } } */
	SH_NAME_LAST,	/* DATA { attributes }, NAME */
	SH_NONAME,	/* DATA { attributes } */
	SH_BADNAME,	/* another expression's name, or none known */
	SH_UNTERM,	/* NAME without its NUL */
	SH_LONGNAME,	/* NAME longer than NFT_NAME_MAXLEN */
	SH_TRAILER,	/* DATA { attributes, truncated attribute } */
	SH_NOTELEM,	/* the element is not an NFTA_LIST_ELEM */
	NSH
};

struct expr {
	struct nlattr *elem;
	struct nlattr *data;
	struct nlattr *inner;
	const char *name;
	int shape;
};

static void e_name(struct fz *fz, const struct expr *e)
{
	static const char * const bad[] = {
		"tproxy", "socket", "divert", "TPROXY", "sock", "tproxy6",
		"", "immediate", "nat",
	};
	const char *name;

	switch (e->shape) {
	case SH_NONAME:
		break;
	case SH_BADNAME:
		name = bad[rnd(fz, ARRAY_SIZE(bad))];
		/* divert only where its generator is in use (-k) */
		if (!strcmp(name, "divert") && !(fz->kinds & M(K_DIVERT)))
			name = "tproxy6";
		/*
		 * -u: another body named socket reads its attribute 1 as
		 * the key and 3 as the level, and those values were not
		 * kept below 256 (tproxy's port register, in host byte
		 * order: 6.1's in-tree socket truncates it and accepts).
		 */
		if (fz->u8vals && !strcmp(name, "socket") &&
		    strcmp(e->name, "socket"))
			name = "sock";
		a_str(fz, NFTA_EXPR_NAME, name);
		break;
	case SH_UNTERM:
		a_put(fz, NFTA_EXPR_NAME, strlen(e->name), e->name);
		break;
	case SH_LONGNAME:
		a_long_str(fz, NFTA_EXPR_NAME, NFT_NAME_MAXLEN + rnd(fz, 8));
		break;
	default:
		a_str(fz, NFTA_EXPR_NAME, e->name);
		break;
	}
}

static void e_begin(struct fz *fz, struct expr *e, const char *name,
		    int shape)
{
	uint16_t type = NFTA_LIST_ELEM;

	e->name = name;
	e->shape = shape;
	e->data = NULL;
	e->inner = NULL;
	if (shape == SH_NOTELEM)
		type = chance(fz, 50) ? NFTA_LIST_UNSPEC : NFTA_LIST_ELEM + 1;
	e->elem = a_nest(fz, type);
	if (shape != SH_NAME_LAST)
		e_name(fz, e);
	if (shape == SH_FLAT)
		return;
	e->data = a_nest(fz, NFTA_EXPR_DATA);
	if (shape == SH_DOUBLE)
		e->inner = a_nest(fz, NFTA_EXPR_DATA);
}

static void e_end(struct fz *fz, struct expr *e)
{
	a_end(fz, e->inner);
	if (e->shape == SH_TRAILER)
		a_truncated(fz);
	a_end(fz, e->data);
	if (e->shape == SH_NAME_LAST)
		a_str(fz, NFTA_EXPR_NAME, e->name);
	a_end(fz, e->elem);
}

static int pick_shape(struct fz *fz)
{
	return 1 + rnd(fz, NSH - 1);
}

static void e_immediate(struct fz *fz, uint32_t dreg, const void *data,
			size_t len)
{
	struct nlattr *d;
	struct expr e;

	e_begin(fz, &e, "immediate", SH_OK);
	a_u32(fz, NFTA_IMMEDIATE_DREG, dreg);
	d = a_nest(fz, NFTA_IMMEDIATE_DATA);
	a_put(fz, NFTA_DATA_VALUE, len, data);
	a_end(fz, d);
	e_end(fz, &e);
}

static void put_verdict(struct fz *fz, uint16_t type, int32_t code,
			const char *chain)
{
	struct nlattr *d, *v;

	d = a_nest(fz, type);
	v = a_nest(fz, NFTA_DATA_VERDICT);
	a_u32(fz, NFTA_VERDICT_CODE, (uint32_t)code);
	if (chain)
		a_str(fz, NFTA_VERDICT_CHAIN, chain);
	a_end(fz, v);
	a_end(fz, d);
}

static void e_verdict(struct fz *fz, uint32_t dreg, int32_t code,
		      const char *chain)
{
	struct expr e;

	e_begin(fz, &e, "immediate", SH_OK);
	a_u32(fz, NFTA_IMMEDIATE_DREG, dreg);
	put_verdict(fz, NFTA_IMMEDIATE_DATA, code, chain);
	e_end(fz, &e);
}

static void e_meta(struct fz *fz, uint32_t key, uint32_t dreg)
{
	struct expr e;

	e_begin(fz, &e, "meta", SH_OK);
	a_u32(fz, NFTA_META_KEY, key);
	a_u32(fz, NFTA_META_DREG, dreg);
	e_end(fz, &e);
}

static void e_payload(struct fz *fz, uint32_t dreg, uint32_t base,
		      uint32_t offset, uint32_t len)
{
	struct expr e;

	e_begin(fz, &e, "payload", SH_OK);
	a_u32(fz, NFTA_PAYLOAD_DREG, dreg);
	a_u32(fz, NFTA_PAYLOAD_BASE, base);
	a_u32(fz, NFTA_PAYLOAD_OFFSET, offset);
	a_u32(fz, NFTA_PAYLOAD_LEN, len);
	e_end(fz, &e);
}

static void e_cmp(struct fz *fz, uint32_t sreg, const void *data, size_t len)
{
	struct nlattr *d;
	struct expr e;

	e_begin(fz, &e, "cmp", SH_OK);
	a_u32(fz, NFTA_CMP_SREG, sreg);
	a_u32(fz, NFTA_CMP_OP, NFT_CMP_EQ);
	d = a_nest(fz, NFTA_CMP_DATA);
	a_put(fz, NFTA_DATA_VALUE, len, data);
	a_end(fz, d);
	e_end(fz, &e);
}

/* ---- registers ------------------------------------------------------ */

/* Highest 32-bit register that holds @len bytes (of 64 for data). */
static unsigned int reg32_last(unsigned int len)
{
	return (64 - len) / 4;
}

/* First and last 32-bit word of register @reg, in nft_regs.data. */
static bool reg_words(uint32_t reg, unsigned int len, unsigned int *lo,
		      unsigned int *hi)
{
	if (reg >= 1 && reg <= 4)
		*lo = reg * 4;
	else if (reg >= REG32(0) && reg <= REG32(15))
		*lo = reg - REG32(0) + 4;
	else
		return false;
	*hi = *lo + (len + 3) / 4 - 1;
	return true;
}

static bool regs_overlap(uint32_t a, unsigned int alen, uint32_t b,
			 unsigned int blen)
{
	unsigned int alo, ahi, blo, bhi;

	if (!alen || !blen || !reg_words(a, alen, &alo, &ahi) ||
	    !reg_words(b, blen, &blo, &bhi))
		return false;
	return alo <= bhi && blo <= ahi;
}

/* A register that holds @len bytes: 128-bit or 32-bit. */
static uint32_t good_reg(struct fz *fz, unsigned int len)
{
	if (chance(fz, 40))
		return 1 + rnd(fz, 4);
	return REG32(rnd(fz, reg32_last(len) + 1));
}

/* A good register for @len bytes that does not overlap @other. */
static uint32_t good_reg_beside(struct fz *fz, unsigned int len,
				uint32_t other, unsigned int olen)
{
	uint32_t reg = good_reg(fz, len);
	unsigned int i;

	for (i = 0; i < 8 && regs_overlap(reg, len, other, olen); i++)
		reg = good_reg(fz, len);
	return reg;
}

/* The verdict register, a hole, out of range, or too high for @len. */
static uint32_t bad_reg(struct fz *fz, unsigned int len)
{
	static const uint32_t bad[] = {
		0, 5, 6, 7, 24, 25, 64, 0xff, 0x100, 0xffff, 0x7fffffff,
		0xffffffff,
	};
	unsigned int last = reg32_last(len);

	if (last < 15 && chance(fz, 30))
		return REG32(last + 1 + rnd(fz, 15 - last));
	return bad[rnd(fz, ARRAY_SIZE(bad))];
}

enum { LD_ADDR4, LD_ADDR6, LD_PORT };

/* Load @reg as an immediate, meta or payload expression would. */
static void load_reg(struct fz *fz, uint32_t reg, int what)
{
	static const unsigned char addr4[4] = { 192, 0, 2, 1 };
	static const unsigned char addr6[16] = {
		0x20, 0x01, 0x0d, 0xb8, [15] = 1,
	};
	static const unsigned char port[2] = { 0x1f, 0x90 };
	unsigned int how = rnd(fz, 10);

	switch (what) {
	case LD_ADDR4:
		if (how < 6)
			e_immediate(fz, reg, addr4, sizeof(addr4));
		else if (how < 8)
			e_payload(fz, reg, NFT_PAYLOAD_NETWORK_HEADER, 16, 4);
		else
			e_meta(fz, NFT_META_MARK, reg);
		break;
	case LD_ADDR6:
		if (how < 7)
			e_immediate(fz, reg, addr6, sizeof(addr6));
		else
			e_payload(fz, reg, NFT_PAYLOAD_NETWORK_HEADER, 24, 16);
		break;
	default:
		if (how < 6)
			e_immediate(fz, reg, port, sizeof(port));
		else if (how < 8)
			e_payload(fz, reg, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
		else
			e_meta(fz, NFT_META_MARK, reg);
		break;
	}
}

/* ---- the expressions under test ------------------------------------- */

enum {
	TP_NO_FAMILY, TP_FAMILY_VALUE, TP_FAMILY_BAD, TP_ADDR_UNSPEC,
	TP_ADDR_REG, TP_ADDR_BAD, TP_PORT_REG, TP_PORT_BAD, TP_NO_REGS,
	TP_NO_LOADS, TP_LOAD_OTHER, TP_UNKNOWN, TP_SHAPE, TP_NMUT
};

static uint32_t body_tproxy(struct fz *fz, const struct loc *l, bool mutate)
{
	static const uint32_t odd_fams[] = {
		NFPROTO_UNSPEC, NFPROTO_INET, NFPROTO_IPV4, NFPROTO_ARP,
		NFPROTO_BRIDGE, NFPROTO_IPV6, 12, 0xffffffff,
	};
	static const uint32_t inet_fams[] = {
		NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_UNSPEC,
	};
	uint32_t m = mutate ? pick_mut(fz, TP_NMUT) : 0;
	uint32_t tfam, areg, preg;
	bool use_addr, use_port;
	unsigned int alen;
	struct expr e;

	if (l->fam == FAM_IP)
		tfam = NFPROTO_IPV4;
	else if (l->fam == FAM_IP6)
		tfam = NFPROTO_IPV6;
	else
		tfam = inet_fams[rnd(fz, ARRAY_SIZE(inet_fams))];
	alen = tfam == NFPROTO_IPV4 ? 4 : 16;
	use_addr = tfam != NFPROTO_UNSPEC && chance(fz, 70);
	use_port = !use_addr || chance(fz, 70);
	if (m & M(TP_ADDR_UNSPEC)) {
		tfam = NFPROTO_UNSPEC;
		use_addr = true;
	}
	if (m & (M(TP_ADDR_REG) | M(TP_ADDR_BAD)))
		use_addr = true;
	if (m & (M(TP_PORT_REG) | M(TP_PORT_BAD)))
		use_port = true;
	if (m & M(TP_NO_REGS)) {
		use_addr = false;
		use_port = false;
	}
	if (m & M(TP_FAMILY_VALUE))
		tfam = odd_fams[rnd(fz, ARRAY_SIZE(odd_fams))];

	areg = m & M(TP_ADDR_REG) ? bad_reg(fz, alen) : good_reg(fz, alen);
	if (m & M(TP_PORT_REG))
		preg = bad_reg(fz, 2);
	else
		preg = good_reg_beside(fz, 2, areg, use_addr ? alen : 0);

	/* An invalid register cannot be loaded: its load would fail. */
	if (!(m & M(TP_NO_LOADS))) {
		int what = alen == 4 ? LD_ADDR4 : LD_ADDR6;
		uint32_t delta = m & M(TP_LOAD_OTHER) ? 1 : 0;

		if (use_addr && !(m & M(TP_ADDR_REG)))
			load_reg(fz, areg + delta, what);
		if (use_port && !(m & M(TP_PORT_REG)))
			load_reg(fz, preg + delta, LD_PORT);
	}

	e_begin(fz, &e, "tproxy", m & M(TP_SHAPE) ? pick_shape(fz) : SH_OK);
	if (!(m & M(TP_NO_FAMILY)))
		a_u32_narrow(fz, NFTA_TPROXY_FAMILY, tfam,
			     m & M(TP_FAMILY_BAD));
	if (use_addr)
		a_u32_maybe_bad(fz, NFTA_TPROXY_REG_ADDR, areg,
				m & M(TP_ADDR_BAD));
	if (use_port)
		a_u32_maybe_bad(fz, NFTA_TPROXY_REG_PORT, preg,
				m & M(TP_PORT_BAD));
	if (m & M(TP_UNKNOWN))
		a_unknown(fz, NFTA_TPROXY_MAX);
	e_end(fz, &e);
	if (chance(fz, 30))
		e_verdict(fz, 0, NF_ACCEPT, NULL);
	return m;
}

enum {
	SK_NO_KEY, SK_KEY_VALUE, SK_KEY_BAD, SK_NO_DREG, SK_DREG_REG,
	SK_DREG_BAD, SK_NO_LEVEL, SK_LEVEL_VALUE, SK_LEVEL_BAD, SK_UNKNOWN,
	SK_SHAPE, SK_CMP_LONG, SK_NMUT
};

static uint32_t body_socket(struct fz *fz, bool mutate)
{
	static const unsigned int key_len[] = { 1, 4, 1, 8 };
	static const uint32_t bad_keys[] = {
		4, 5, 0x7f, 0xff, 0x10000, 0x7fffffff, 0xffffffff,
	};
	static const uint32_t bad_levels[] = { 256, 1000, 0xffffffff };
	uint32_t m = mutate ? pick_mut(fz, SK_NMUT) : 0;
	uint32_t key = rnd(fz, ARRAY_SIZE(key_len)), dreg, level;
	unsigned char val[16] = { 1 };
	unsigned int len;
	struct expr e;

	if (m & (M(SK_NO_LEVEL) | M(SK_LEVEL_VALUE)))
		key = NFT_SOCKET_CGROUPV2;
	len = key_len[key];
	dreg = m & M(SK_DREG_REG) ? bad_reg(fz, len) : good_reg(fz, len);
	level = m & M(SK_LEVEL_VALUE) ?
		bad_levels[rnd(fz, ARRAY_SIZE(bad_levels))] : rnd(fz, 4);
	if (m & M(SK_KEY_VALUE))
		key = bad_keys[rnd(fz, ARRAY_SIZE(bad_keys))];

	e_begin(fz, &e, "socket", m & M(SK_SHAPE) ? pick_shape(fz) : SH_OK);
	if (!(m & M(SK_NO_KEY)))
		a_u32_narrow(fz, NFTA_SOCKET_KEY, key, m & M(SK_KEY_BAD));
	if (!(m & M(SK_NO_DREG)))
		a_u32_maybe_bad(fz, NFTA_SOCKET_DREG, dreg,
				m & M(SK_DREG_BAD));
	if (!(m & M(SK_NO_LEVEL)) &&
	    (key == NFT_SOCKET_CGROUPV2 || chance(fz, 15)))
		a_u32_narrow(fz, NFTA_SOCKET_LEVEL, level,
			     m & M(SK_LEVEL_BAD));
	if (m & M(SK_UNKNOWN))
		a_unknown(fz, NFTA_SOCKET_MAX);
	e_end(fz, &e);

	if (m & M(SK_CMP_LONG))
		e_cmp(fz, dreg, val, 16);
	else if (chance(fz, 70))
		e_cmp(fz, dreg, val, len);
	if (chance(fz, 30))
		e_verdict(fz, 0, chance(fz, 50) ? NF_ACCEPT : NF_DROP, NULL);
	return m;
}

enum { DV_ATTRS, DV_UNKNOWN, DV_SHAPE, DV_SOCKET, DV_NMUT };

static uint32_t body_divert(struct fz *fz, bool mutate)
{
	uint32_t m = mutate ? pick_mut(fz, DV_NMUT) : 0;
	unsigned int i, n, type, val;
	unsigned char one = 1;
	struct expr e;
	int shape;

	/* As a rule would match transparent sockets before divert. */
	if (m & M(DV_SOCKET) || chance(fz, 15)) {
		e_begin(fz, &e, "socket", SH_OK);
		a_u32(fz, NFTA_SOCKET_KEY, NFT_SOCKET_TRANSPARENT);
		a_u32(fz, NFTA_SOCKET_DREG, REG32(0));
		e_end(fz, &e);
		e_cmp(fz, REG32(0), &one, 1);
	}
	if (m & M(DV_SHAPE))
		shape = pick_shape(fz);
	else
		shape = chance(fz, 50) ? SH_OK : SH_FLAT;
	e_begin(fz, &e, "divert", shape);
	if (m & M(DV_ATTRS)) {
		n = 1 + rnd(fz, 3);
		for (i = 0; i < n; i++) {
			type = 1 + rnd(fz, 4);
			val = rnd(fz, 16);
			a_u32_maybe_bad(fz, type, val, chance(fz, 30));
		}
	}
	if (m & M(DV_UNKNOWN))
		a_unknown(fz, 0);
	e_end(fz, &e);
	if (chance(fz, 30))
		e_verdict(fz, 0, NF_ACCEPT, NULL);
	return m;
}

/* ---- the model: where a packet goes --------------------------------- */

/* The hooks and chain types a packet enters the chain from. */
static void reach_of(const struct mchain *ch, uint8_t *hooks, uint8_t *types)
{
	if (ch->base) {
		*hooks = M(ch->hook);
		*types = M(ch->type);
	} else {
		*hooks = ch->rhooks;
		*types = ch->rtypes;
	}
}

/* Whether expressions @content may run where @hooks and @types lead. */
static bool fits(unsigned int fam, uint8_t content, uint8_t hooks,
		 uint8_t types)
{
	unsigned int ex;

	for (ex = 0; ex < NEX; ex++) {
		if (!(content & M(ex)))
			continue;
		if (!(wants[ex].fams & M(fam)) || hooks & ~wants[ex].hooks ||
		    types & ~wants[ex].types)
			return false;
	}
	return true;
}

/* Where all of @content may run, or NULL when it is empty. */
static const struct want *want_for(struct want *w, uint8_t content)
{
	unsigned int ex;

	if (!content)
		return NULL;
	w->fams = 0xff;
	w->hooks = 0xff;
	w->types = 0xff;
	for (ex = 0; ex < NEX; ex++) {
		if (!(content & M(ex)))
			continue;
		w->fams &= wants[ex].fams;
		w->hooks &= wants[ex].hooks;
		w->types &= wants[ex].types;
	}
	return w;
}

/* The chains @c leads to: its jumps and gotos, and its maps' elements. */
static uint8_t edges(const struct mtable *t, unsigned int c)
{
	uint8_t to = t->chain[c].jumps;
	unsigned int s;

	for (s = 0; s < NSET; s++)
		if (t->chain[c].lookups & M(s))
			to |= t->set[s].targets;
	return to;
}

/* @c and every chain it leads to. */
static uint8_t reachable(const struct mtable *t, unsigned int c)
{
	uint8_t seen = M(c), todo = M(c), next;
	unsigned int i;

	while (todo) {
		i = __builtin_ctz(todo);
		todo &= ~M(i);
		next = edges(t, i) & ~seen;
		seen |= next;
		todo |= next;
	}
	return seen;
}

/* What a packet entering @c may run: its rules' and those it leads to. */
static uint8_t deep_content(const struct mtable *t, unsigned int c)
{
	uint8_t r = reachable(t, c), content = 0;
	unsigned int i;

	for (i = 0; i < NCHAIN; i++)
		if (r & M(i))
			content |= t->chain[i].content;
	return content;
}

/* Whether a jump, goto or map element leads to @c. */
static bool referenced(const struct mtable *t, unsigned int c)
{
	unsigned int i;

	for (i = 0; i < NCHAIN; i++)
		if (t->chain[i].exists && t->chain[i].jumps & M(c))
			return true;
	for (i = 0; i < NSET; i++)
		if (t->set[i].exists && t->set[i].targets & M(c))
			return true;
	return false;
}

/* Whether a lookup uses map @s. */
static bool bound(const struct mtable *t, unsigned int s)
{
	unsigned int i;

	for (i = 0; i < NCHAIN; i++)
		if (t->chain[i].exists && t->chain[i].lookups & M(s))
			return true;
	return false;
}

/* Recompute what every regular chain is reached from. */
static void update_reach(struct mtable *t)
{
	bool changed = true;
	unsigned int c, d, i;
	uint8_t h, ty, to;

	for (c = 0; c < NCHAIN; c++) {
		t->chain[c].rhooks = 0;
		t->chain[c].rtypes = 0;
	}
	for (i = 0; i <= NCHAIN && changed; i++) {
		changed = false;
		for (c = 0; c < NCHAIN; c++) {
			if (!t->chain[c].exists)
				continue;
			reach_of(&t->chain[c], &h, &ty);
			to = edges(t, c);
			for (d = 0; d < NCHAIN; d++) {
				struct mchain *dc = &t->chain[d];

				if (!(to & M(d)) || !dc->exists || dc->base)
					continue;
				if ((dc->rhooks | h) == dc->rhooks &&
				    (dc->rtypes | ty) == dc->rtypes)
					continue;
				dc->rhooks |= h;
				dc->rtypes |= ty;
				changed = true;
			}
		}
	}
}

/* Whether chain @c of @l's table may get @content: always, if dirty. */
static bool takes(const struct fz *fz, const struct loc *l, unsigned int c,
		  uint8_t content)
{
	const struct mchain *ch = &fz->st.t[l->fam][l->tab].chain[c];
	uint8_t h, ty;

	if (fz->dirty)
		return true;
	reach_of(ch, &h, &ty);
	return fits(l->fam, content, h, ty);
}

/* Whether @from may jump to chain @to: no loop, what @to runs fits. */
static bool can_jump(const struct fz *fz, const struct loc *from,
		     unsigned int to)
{
	const struct mtable *t = &fz->st.t[from->fam][from->tab];

	if (fz->dirty)
		return true;
	if (!t->chain[to].exists || t->chain[to].base ||
	    reachable(t, to) & M(from->chain))
		return false;
	return takes(fz, from, from->chain, deep_content(t, to));
}

/* ---- tables, chains, rules ------------------------------------------ */

static void put_table(struct fz *fz, unsigned int fam, unsigned int tab,
		      uint8_t kind, uint16_t flags, bool has_flags,
		      uint32_t tflags)
{
	struct mtable *t = &fz->st.t[fam][tab];

	msg_begin(fz, NFT_MSG_NEWTABLE, fams[fam].nfproto, flags, kind,
		  "%s %s", fams[fam].name, tab_names[tab]);
	a_str(fz, NFTA_TABLE_NAME, tab_names[tab]);
	if (has_flags) {
		a_u32(fz, NFTA_TABLE_FLAGS, tflags);
		what_add(fz, " flags %#x", tflags);
	}
	msg_end(fz);
	if (!t->exists) {
		memset(t, 0, sizeof(*t));
		t->exists = true;
		t->flags = has_flags ? tflags : 0;
	} else if (has_flags) {
		t->flags = tflags;
	}
}

static void ensure_table(struct fz *fz, unsigned int fam, unsigned int tab)
{
	if (!fz->st.t[fam][tab].exists)
		put_table(fz, fam, tab, K_SETUP, NLM_F_CREATE, false, 0);
}

struct chainspec {
	bool base;
	uint32_t hook;
	int type;
	int32_t prio;
	bool policy;
	uint32_t verdict;
};

enum {
	CH_NO_HOOKNUM, CH_NO_PRIO, CH_HOOKNUM, CH_PRIO_BAD, CH_NO_TYPE,
	CH_TYPE, CH_POLICY, CH_HOOK_FLAT, CH_NAME, CH_FLAGS, CH_DEV,
	CH_UNKNOWN, CH_NMUT
};

static bool needs_dev(unsigned int fam, uint32_t hook)
{
	return fam == FAM_NETDEV || (fam == FAM_INET && hook == NF_INET_INGRESS);
}

static void put_chain(struct fz *fz, const struct loc *l,
		      const struct chainspec *cs, uint16_t flags, uint32_t m,
		      uint8_t kind)
{
	static const char * const bad_types[] = { "bogus", "", "FILTER" };
	static const char * const bad_devs[] = { "fzdev0", "", "lo0" };
	struct mchain *ch = &fz->st.t[l->fam][l->tab].chain[l->chain];
	struct nlattr *hook;

	msg_begin(fz, NFT_MSG_NEWCHAIN, fams[l->fam].nfproto, flags, kind,
		  "%s %s %s", fams[l->fam].name, tab_names[l->tab],
		  chain_names[l->chain]);
	if (cs->base)
		what_add(fz, " %s %s %d", hook_name(l->fam, cs->hook),
			 ctypes[cs->type], cs->prio);
	if (m)
		what_add(fz, " mut %#x", m);
	a_str(fz, NFTA_CHAIN_TABLE, tab_names[l->tab]);
	if (m & M(CH_NAME)) {
		if (chance(fz, 50))
			a_long_str(fz, NFTA_CHAIN_NAME,
				   NFT_NAME_MAXLEN + rnd(fz, 8));
	} else {
		a_str(fz, NFTA_CHAIN_NAME, chain_names[l->chain]);
	}
	if (cs->base) {
		if (m & M(CH_HOOK_FLAT)) {
			a_u32(fz, NFTA_CHAIN_HOOK, cs->hook);
		} else {
			hook = a_nest(fz, NFTA_CHAIN_HOOK);
			if (!(m & M(CH_NO_HOOKNUM)))
				a_u32_maybe_bad(fz, NFTA_HOOK_HOOKNUM,
						cs->hook, m & M(CH_HOOKNUM));
			if (!(m & M(CH_NO_PRIO)))
				a_u32_maybe_bad(fz, NFTA_HOOK_PRIORITY,
						(uint32_t)cs->prio,
						m & M(CH_PRIO_BAD));
			if (m & M(CH_DEV)) {
				if (chance(fz, 50))
					a_str(fz, NFTA_HOOK_DEV,
					      bad_devs[rnd(fz, 3)]);
				else if (chance(fz, 50))
					a_long_str(fz, NFTA_HOOK_DEV, 20);
			} else if (needs_dev(l->fam, cs->hook)) {
				a_str(fz, NFTA_HOOK_DEV, "lo");
			}
			a_end(fz, hook);
		}
		if (m & M(CH_TYPE))
			a_str(fz, NFTA_CHAIN_TYPE,
			      bad_types[rnd(fz, ARRAY_SIZE(bad_types))]);
		else if (!(m & M(CH_NO_TYPE)))
			a_str(fz, NFTA_CHAIN_TYPE, ctypes[cs->type]);
	}
	if (m & M(CH_POLICY))
		a_u32(fz, NFTA_CHAIN_POLICY, NF_STOLEN + rnd(fz, 4));
	else if (cs->policy)
		a_u32(fz, NFTA_CHAIN_POLICY, cs->verdict);
	if (m & M(CH_FLAGS))
		a_u32(fz, NFTA_CHAIN_FLAGS, M(rnd(fz, 8)));
	if (m & M(CH_UNKNOWN))
		a_unknown(fz, NFTA_CHAIN_MAX);
	msg_end(fz);

	if (!ch->exists) {
		memset(ch, 0, sizeof(*ch));
		ch->exists = true;
		ch->base = cs->base;
		/* Out of range hooks are refused: keep the shifts defined. */
		ch->hook = cs->hook < 8 ? cs->hook : 7;
		ch->type = cs->type;
		ch->prio = cs->prio;
		ch->odd = m != 0;
	}
}

static int32_t good_prio(struct fz *fz, int type)
{
	static const int32_t filter[] = { -300, -150, 0, 10, 100 };
	static const int32_t nat[] = { -100, 100 };

	if (type == CT_NAT)
		return nat[rnd(fz, ARRAY_SIZE(nat))];
	if (type == CT_ROUTE)
		return chance(fz, 50) ? -150 : 0;
	return filter[rnd(fz, ARRAY_SIZE(filter))];
}

static int32_t any_prio(struct fz *fz)
{
	static const int32_t prios[] = {
		INT32_MIN, -400, -300, -200, -150, -100, 0, 100, 300,
		INT32_MAX,
	};

	return prios[rnd(fz, ARRAY_SIZE(prios))];
}

static int good_type(struct fz *fz, const struct want *w, uint32_t hook)
{
	if (w->types & M(CT_NAT) && hook != NF_INET_FORWARD && chance(fz, 15))
		return CT_NAT;
	if (w->types & M(CT_ROUTE) && hook == NF_INET_LOCAL_OUT &&
	    chance(fz, 20))
		return CT_ROUTE;
	return CT_FILTER;
}

/* A base chain where @w says the expression belongs. */
static void good_base(struct fz *fz, const struct want *w,
		      struct chainspec *cs)
{
	memset(cs, 0, sizeof(*cs));
	cs->base = true;
	cs->hook = pick_bit(fz, w->hooks);
	cs->type = good_type(fz, w, cs->hook);
	cs->prio = good_prio(fz, cs->type);
}

/*
 * A base chain on any hook of the family, of any type: in a clean batch
 * one the family has (nat: ip, ip6, inet, not forward nor ingress; route:
 * output of ip, ip6, inet).
 */
static void any_base(struct fz *fz, unsigned int fam, struct chainspec *cs)
{
	unsigned int t = rnd(fz, 10);

	memset(cs, 0, sizeof(*cs));
	cs->base = true;
	cs->hook = rnd(fz, fams[fam].nhooks);
	cs->type = t < 6 ? CT_FILTER : t < 8 ? CT_NAT : CT_ROUTE;
	if (!fz->dirty && cs->type == CT_NAT &&
	    (!(IP_FAMS & M(fam)) || cs->hook == NF_INET_FORWARD ||
	     cs->hook == NF_INET_INGRESS))
		cs->type = CT_FILTER;
	if (!fz->dirty && cs->type == CT_ROUTE &&
	    (!(IP_FAMS & M(fam)) || cs->hook != NF_INET_LOCAL_OUT))
		cs->type = CT_FILTER;
	if (!fz->dirty || chance(fz, 70))
		cs->prio = good_prio(fz, cs->type);
	else
		cs->prio = any_prio(fz);
	if (chance(fz, 10)) {
		cs->policy = true;
		cs->verdict = chance(fz, 50) ? NF_ACCEPT : NF_DROP;
	}
}

static bool chain_fits(const struct mchain *ch, const struct want *w,
		       bool regular)
{
	if (ch->odd)
		return false;
	if (!ch->exists || regular)
		return ch->exists && !ch->base;
	if (!ch->base)
		return false;
	return !w || (w->hooks & M(ch->hook) && w->types & M(ch->type));
}

/* A free chain slot of the table, or -1. */
static int free_chain(struct fz *fz, const struct loc *l)
{
	const struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int i, start = rnd(fz, NCHAIN);

	for (i = 0; i < NCHAIN; i++)
		if (!t->chain[(start + i) % NCHAIN].exists)
			return (start + i) % NCHAIN;
	return -1;
}

/*
 * A chain of the table that fits @w and may get @need, or -1; @not is
 * left out, one holding @prefer is preferred.
 */
static int find_chain(struct fz *fz, const struct loc *l,
		      const struct want *w, bool regular, int not,
		      uint8_t prefer, uint8_t need)
{
	const struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int i, c, start = rnd(fz, NCHAIN);
	int any = -1;

	for (i = 0; i < NCHAIN; i++) {
		c = (start + i) % NCHAIN;
		if ((int)c == not || !chain_fits(&t->chain[c], w, regular) ||
		    !takes(fz, l, c, need))
			continue;
		if (!prefer || t->chain[c].content & prefer)
			return c;
		if (any < 0)
			any = c;
	}
	return any;
}

/*
 * Chain @l->chain of the table for a rule that needs @need: one that
 * exists and fits, or a new one (setup messages), or, the table being
 * full, whatever is there.
 */
static void get_chain(struct fz *fz, struct loc *l, const struct want *w,
		      bool regular, int not, uint8_t need)
{
	struct chainspec cs;
	struct want nw;
	int c = find_chain(fz, l, w, regular, not, 0, need), f;

	if (c >= 0 && chance(fz, 75)) {
		l->chain = c;
		return;
	}
	f = free_chain(fz, l);
	if (f < 0) {
		l->chain = c >= 0 ? (uint32_t)c : rnd(fz, NCHAIN);
		return;
	}
	l->chain = f;
	if (!w && !fz->dirty)
		w = want_for(&nw, need);
	/* Clean: the hooks and types of another family are no guide. */
	if (w && !fz->dirty && !(w->fams & M(l->fam)))
		w = NULL;
	if (regular)
		memset(&cs, 0, sizeof(cs));
	else if (w)
		good_base(fz, w, &cs);
	else
		any_base(fz, l->fam, &cs);
	put_chain(fz, l, &cs, NLM_F_CREATE, 0, K_SETUP);
}

/* Whether @l's table has a chain for a rule needing @need, or room. */
static bool table_fits(const struct fz *fz, const struct loc *l,
		       const struct want *w, bool regular, uint8_t need)
{
	const struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int c;

	for (c = 0; c < NCHAIN; c++)
		if (!t->chain[c].exists ||
		    (chain_fits(&t->chain[c], w, regular) &&
		     takes(fz, l, c, need)))
			return true;
	return false;
}

/*
 * A table of a family @w likes (mostly), made if need be; in a clean
 * batch, one with a chain for a rule needing @need or room for one.
 */
static void get_table_for(struct fz *fz, struct loc *l, const struct want *w,
			  bool regular, uint8_t need)
{
	unsigned int i;

	for (i = 0; i < 4; i++) {
		if (w && good_place(fz))
			l->fam = pick_bit(fz, w->fams);
		else
			l->fam = rnd(fz, NFAM);
		l->tab = rnd(fz, NTAB);
		if (fz->dirty || table_fits(fz, l, w, regular, need))
			break;
	}
	ensure_table(fz, l->fam, l->tab);
}

static void get_table(struct fz *fz, struct loc *l, const struct want *w)
{
	get_table_for(fz, l, w, true, 0);
}

/* Rule-level ways to go wrong. */
enum {
	RS_OK, RS_NOTABLE, RS_NOCHAIN, RS_FAMILY, RS_USERDATA, RS_BIGUDATA,
	RS_JUNK, RS_MANY, RS_NOEXPRS, NRS
};

struct rule {
	struct nlattr *exprs;
	int shape;
};

static void rule_begin(struct fz *fz, struct rule *r, const struct loc *l,
		       uint16_t flags, uint8_t kind, uint64_t handle,
		       uint64_t pos, int shape)
{
	uint8_t nfproto = fams[l->fam].nfproto;

	if (shape == RS_FAMILY)
		nfproto = fams[(l->fam + 1 + rnd(fz, NFAM - 1)) % NFAM].nfproto;
	r->shape = shape;
	msg_begin(fz, NFT_MSG_NEWRULE, nfproto, NLM_F_ECHO | flags, kind,
		  "%s %s %s", fams[l->fam].name, tab_names[l->tab],
		  chain_names[l->chain]);
	if (handle)
		what_add(fz, " handle %llu", (unsigned long long)handle);
	if (pos)
		what_add(fz, " pos %llu", (unsigned long long)pos);
	if (shape)
		what_add(fz, " shape %d", shape);
	if (shape != RS_NOTABLE)
		a_str(fz, NFTA_RULE_TABLE, tab_names[l->tab]);
	if (shape != RS_NOCHAIN)
		a_str(fz, NFTA_RULE_CHAIN, chain_names[l->chain]);
	if (handle)
		a_u64(fz, NFTA_RULE_HANDLE, handle);
	if (pos)
		a_u64(fz, NFTA_RULE_POSITION, pos);
	r->exprs = shape == RS_NOEXPRS ? NULL :
		   a_nest(fz, NFTA_RULE_EXPRESSIONS);
}

static void rule_end(struct fz *fz, struct rule *r)
{
	unsigned char udata[300];
	unsigned int i;

	if (r->shape == RS_JUNK)
		a_u32(fz, NFTA_LIST_ELEM + 1 + rnd(fz, 3), 0);
	if (r->shape == RS_MANY)
		for (i = 0; i < 130; i++)
			e_meta(fz, NFT_META_MARK, REG32(i % 16));
	a_end(fz, r->exprs);
	if (r->shape == RS_USERDATA || r->shape == RS_BIGUDATA) {
		for (i = 0; i < sizeof(udata); i++)
			udata[i] = i;
		a_put(fz, NFTA_RULE_USERDATA, r->shape == RS_USERDATA ?
		      1 + rnd(fz, NFT_USERDATA_MAXLEN) :
		      NFT_USERDATA_MAXLEN + 1 + rnd(fz, 40), udata);
	}
	msg_end(fz);
}

/* A rule holding expression @ex, as generator @kind makes it. */
static void put_expr_rule(struct fz *fz, const struct loc *l, int ex,
			  uint8_t kind, bool mutate, uint16_t flags,
			  uint64_t handle, uint64_t pos)
{
	int shape = RS_OK;
	struct rule r;
	uint32_t m;

	if (mutate && chance(fz, 10))
		shape = 1 + rnd(fz, NRS - 1);
	rule_begin(fz, &r, l, NLM_F_CREATE | flags, kind, handle, pos, shape);
	if (ex == EX_TPROXY)
		m = body_tproxy(fz, l, mutate);
	else if (ex == EX_SOCKET)
		m = body_socket(fz, mutate);
	else
		m = body_divert(fz, mutate);
	rule_end(fz, &r);
	/* Which mutations, for -v: bits of TP_*, SK_* or DV_*. */
	if (m)
		what_add(fz, " mut %#x", m);
	fz->st.t[l->fam][l->tab].chain[l->chain].content |= M(ex);
}

/* A jump or goto from @from to chain @to, or to @name if not ours. */
static void put_jump_rule(struct fz *fz, const struct loc *from, int to,
			  const char *name, int32_t code, uint8_t kind)
{
	struct mtable *t = &fz->st.t[from->fam][from->tab];
	struct rule r;

	if (to >= 0)
		name = chain_names[to];
	rule_begin(fz, &r, from, NLM_F_CREATE | NLM_F_APPEND, kind, 0, 0,
		   RS_OK);
	what_add(fz, " %s %.16s", code == NFT_GOTO ? "goto" : "jump",
		 name ? name : "-");
	e_verdict(fz, 0, code, name);
	rule_end(fz, &r);
	if (to >= 0) {
		t->chain[from->chain].jumps |= M(to);
		update_reach(t);
	}
}

/*
 * A base chain of the table jumping to @l->chain: one where the chain's
 * expressions and @extra may run (in a dirty batch, often any).
 */
static void jump_from_base(struct fz *fz, const struct loc *l, uint8_t extra,
			   uint8_t kind)
{
	const struct mtable *t = &fz->st.t[l->fam][l->tab];
	uint8_t need = deep_content(t, l->chain) | extra;
	const struct want *w;
	struct loc from = *l;
	int32_t code;
	struct want nw;

	w = !fz->dirty || chance(fz, 60) ? want_for(&nw, need) : NULL;
	get_chain(fz, &from, w, false, l->chain, need);
	code = chance(fz, 70) ? NFT_JUMP : NFT_GOTO;
	if (!can_jump(fz, &from, l->chain) ||
	    (!fz->dirty && !takes(fz, &from, from.chain, need)))
		return;
	put_jump_rule(fz, &from, l->chain, NULL, code, kind);
}

/* ---- generators ----------------------------------------------------- */

/* tproxy, socket, divert: a rule in a chain that suits it, mostly. */
static void gen_expr(struct fz *fz, int ex)
{
	const struct want *w = &wants[ex];
	bool regular = chance(fz, 30);
	bool jump = regular && chance(fz, 60);
	bool before = chance(fz, 40);
	bool good = good_place(fz);
	bool mutate = mutating(fz, 40);
	uint16_t flags = chance(fz, 20) ? 0 : NLM_F_APPEND;
	struct loc l;

	get_table_for(fz, &l, good ? w : NULL, regular, M(ex));
	get_chain(fz, &l, good ? w : NULL, regular, -1, M(ex));
	if (jump && before)
		jump_from_base(fz, &l, M(ex), fz->kind);
	put_expr_rule(fz, &l, ex, fz->kind, mutate, flags, 0, 0);
	if (jump && !before)
		jump_from_base(fz, &l, 0, fz->kind);
}

static void gen_table(struct fz *fz, const struct loc *l)
{
	static const uint32_t flags[] = {
		0, NFT_TABLE_F_DORMANT, NFT_TABLE_F_OWNER,
		NFT_TABLE_F_OWNER | FZ_TABLE_F_PERSIST, 0x80, 0x80000000,
	};
	const struct mtable *t = &fz->st.t[l->fam][l->tab];
	uint16_t nlflags = NLM_F_CREATE;
	unsigned int f = rnd(fz, 100);
	uint32_t tflags;

	if (!fz->dirty) {
		/* New: any flags but PERSIST (6.9); else wake or sleep. */
		if (!t->exists)
			tflags = flags[rnd(fz, 3)];
		else
			tflags = (t->flags & NFT_TABLE_F_OWNER) |
				 (chance(fz, 50) ? NFT_TABLE_F_DORMANT : 0);
		if (!t->exists && chance(fz, 20))
			nlflags |= NLM_F_EXCL;
		put_table(fz, l->fam, l->tab, K_CHAIN, nlflags, chance(fz, 80),
			  tflags);
		return;
	}
	if (chance(fz, 10))
		nlflags |= NLM_F_EXCL;
	if (chance(fz, 3))
		nlflags |= NLM_F_REPLACE;
	if (f < 30) {
		put_table(fz, l->fam, l->tab, K_CHAIN, nlflags, false, 0);
	} else if (f < 94) {
		f = f < 60 ? 0 : f < 80 ? 1 : f < 88 ? 2 : 3;
		put_table(fz, l->fam, l->tab, K_CHAIN, nlflags, true,
			  flags[f]);
	} else {
		put_table(fz, l->fam, l->tab, K_CHAIN, nlflags, true,
			  flags[4 + rnd(fz, 2)]);
	}
	if (chance(fz, 10)) {
		msg_begin(fz, NFT_MSG_NEWTABLE, fams[l->fam].nfproto,
			  NLM_F_CREATE, K_CHAIN, "%s long or no name",
			  fams[l->fam].name);
		if (chance(fz, 50))
			a_long_str(fz, NFTA_TABLE_NAME,
				   NFT_NAME_MAXLEN + rnd(fz, 8));
		a_unknown(fz, NFTA_TABLE_MAX);
		msg_end(fz);
	}
}

static void put_delchain(struct fz *fz, const struct loc *l, uint16_t cmd,
			 uint16_t flags, uint8_t kind)
{
	struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int i;

	msg_begin(fz, cmd, fams[l->fam].nfproto, flags, kind, "%s %s %s",
		  fams[l->fam].name, tab_names[l->tab],
		  chain_names[l->chain]);
	a_str(fz, NFTA_CHAIN_TABLE, tab_names[l->tab]);
	a_str(fz, NFTA_CHAIN_NAME, chain_names[l->chain]);
	msg_end(fz);
	last_msg(fz)->del = DEL_CHAIN;
	last_msg(fz)->target.l = *l;
	memset(&t->chain[l->chain], 0, sizeof(struct mchain));
	for (i = 0; i < NCHAIN; i++)
		t->chain[i].jumps &= ~M(l->chain);
	for (i = 0; i < NSET; i++)
		t->set[i].targets &= ~M(l->chain);
	update_reach(t);
}

/* A chain of unknown shape, in a clean batch: gone, unless referenced. */
static void del_chain_at(struct fz *fz, const struct loc *l)
{
	if (!referenced(&fz->st.t[l->fam][l->tab], l->chain))
		put_delchain(fz, l, NFT_MSG_DELCHAIN, 0, K_CHAIN);
}

static void gen_chain(struct fz *fz)
{
	struct chainspec cs;
	unsigned int op = rnd(fz, 100);
	uint32_t m = mutating(fz, 20) ? pick_mut(fz, CH_NMUT) : 0;
	uint16_t flags = NLM_F_CREATE;
	struct mchain *ch;
	struct loc l;
	int c;

	get_table(fz, &l, chance(fz, 50) ? &wants[EX_SOCKET] : NULL);
	if (op < 20) {
		gen_table(fz, &l);
		return;
	}
	c = free_chain(fz, &l);
	if (c >= 0 && (!fz->dirty || chance(fz, 80)))
		l.chain = c;
	else
		l.chain = rnd(fz, NCHAIN);
	ch = &fz->st.t[l.fam][l.tab].chain[l.chain];
	if (ch->odd && !fz->dirty) {
		del_chain_at(fz, &l);
		return;
	}
	if (chance(fz, 5) && (fz->dirty || !ch->exists))
		flags |= NLM_F_EXCL;
	if (ch->exists && (ch->base || !fz->dirty) &&
	    (op < 50 || !fz->dirty)) {
		/* An update: the policy, or (mutated) the hook or type. */
		memset(&cs, 0, sizeof(cs));
		cs.base = ch->base;
		cs.hook = ch->hook;
		cs.type = ch->type;
		cs.prio = ch->prio;
		cs.policy = ch->base;
		cs.verdict = chance(fz, 50) ? NF_ACCEPT : NF_DROP;
		if (m) {
			cs.hook = rnd(fz, fams[l.fam].nhooks);
			cs.type = rnd(fz, NCT);
		}
	} else if (op < 35) {
		memset(&cs, 0, sizeof(cs));
	} else if (!fz->dirty || chance(fz, 70)) {
		any_base(fz, l.fam, &cs);
	} else {
		any_base(fz, l.fam, &cs);
		cs.hook = rnd(fz, 8);
		if (chance(fz, 20))
			cs.hook = 0xffffffff;
	}
	put_chain(fz, &l, &cs, flags, m, K_CHAIN);
}

enum {
	JM_BASE, JM_MISSING, JM_SELF, JM_NOCHAIN, JM_CODE, JM_DREG,
	JM_LONGNAME, JM_NMUT
};

/*
 * An expression for a jump or map target reached from @hooks and @types:
 * one the kernel has and whose generator is in use, if any, so that what
 * the target is for is whether the chains reaching it are a good place
 * for the expression.  -1: none fits (clean batch).
 */
static int target_expr(struct fz *fz, unsigned int fam, uint8_t hooks,
		       uint8_t types)
{
	unsigned int ex, mask = 0;

	for (ex = 0; ex < NEX; ex++)
		if (fz->kinds & M(ex_kind[ex]))
			mask |= M(ex);
	if (mask & fz->have)
		mask &= fz->have;
	else if (fz->have)
		mask = fz->have;
	if (!mask)
		mask = M(NEX) - 1;
	if (fz->dirty)
		return pick_bit(fz, mask);
	for (ex = 0; ex < NEX; ex++)
		if (!fits(fam, M(ex), hooks, types))
			mask &= ~M(ex);
	return mask ? (int)pick_bit(fz, mask) : -1;
}

/*
 * A regular chain holding one of the expressions, for a jump or a map
 * element from chains reached from @hooks and @types; made if need be.
 */
static void get_target(struct fz *fz, struct loc *l, int not, uint8_t hooks,
		       uint8_t types)
{
	const struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int i, c, start = rnd(fz, NCHAIN);
	const struct mchain *ch;
	int found = -1, f, ex;

	for (i = 0; i < NCHAIN && found < 0; i++) {
		c = (start + i) % NCHAIN;
		ch = &t->chain[c];
		if ((int)c == not || !ch->exists || ch->base || !ch->content)
			continue;
		if (fz->dirty ||
		    fits(l->fam, deep_content(t, c), hooks | ch->rhooks,
			 types | ch->rtypes))
			found = c;
	}
	if (found >= 0 && chance(fz, 70)) {
		l->chain = found;
		return;
	}
	f = free_chain(fz, l);
	if (f < 0 && found >= 0) {
		l->chain = found;
		return;
	}
	if (f >= 0) {
		struct chainspec cs = { .base = false };

		l->chain = f;
		put_chain(fz, l, &cs, NLM_F_CREATE, 0, K_SETUP);
	} else {
		get_chain(fz, l, NULL, true, not, 0);
	}
	ch = &t->chain[l->chain];
	ex = target_expr(fz, l->fam, hooks | ch->rhooks, types | ch->rtypes);
	if (ex >= 0 && (!ch->content || chance(fz, 30)) &&
	    takes(fz, l, l->chain, M(ex)))
		put_expr_rule(fz, l, ex, ex_kind[ex], false, NLM_F_APPEND, 0,
			      0);
}

static void gen_jump(struct fz *fz)
{
	uint32_t m = mutating(fz, 20) ? pick_mut(fz, JM_NMUT) : 0;
	int32_t code = chance(fz, 70) ? NFT_JUMP : NFT_GOTO;
	const struct want *w = &wants[rnd(fz, NEX)], *fw;
	bool regular = chance(fz, fz->dirty ? 40 : 15);
	struct loc to, from, mid;
	const struct mtable *t;
	const char *name = NULL;
	struct rule r;
	char big[300];
	struct want nw;
	int c, f;

	get_table(fz, &to, w);
	t = &fz->st.t[to.fam][to.tab];
	get_target(fz, &to, -1, w->hooks, w->types);
	from = to;
	fw = chance(fz, 50) ? w : want_for(&nw, deep_content(t, to.chain));
	get_chain(fz, &from, fw, regular, to.chain,
		  deep_content(t, to.chain));
	if (chance(fz, 25)) {
		/* Through a new regular chain: from -> mid -> to. */
		f = free_chain(fz, &to);
		if (f >= 0 && f != from.chain) {
			struct chainspec cs = { .base = false };

			mid = to;
			mid.chain = f;
			put_chain(fz, &mid, &cs, NLM_F_CREATE, 0, K_SETUP);
			put_jump_rule(fz, &mid, to.chain, NULL, code, K_JUMP);
			to = mid;
		}
	}
	if (!m) {
		if (can_jump(fz, &from, to.chain))
			put_jump_rule(fz, &from, to.chain, NULL, code, K_JUMP);
		else
			put_jump_rule(fz, &from, -1, NULL, NF_ACCEPT, K_JUMP);
		return;
	}
	name = chain_names[to.chain];
	if (m & M(JM_BASE)) {
		c = find_chain(fz, &to, NULL, false, -1, 0, 0);
		if (c >= 0)
			name = chain_names[c];
	}
	if (m & M(JM_MISSING))
		name = "nochain";
	if (m & M(JM_SELF))
		name = chain_names[from.chain];
	if (m & M(JM_LONGNAME)) {
		memset(big, 'c', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		name = big;
	}
	if (m & M(JM_NOCHAIN))
		name = NULL;
	if (m & M(JM_CODE))
		code = chance(fz, 50) ? NFT_RETURN - 1 : 0x12345;
	if (!(m & M(JM_DREG))) {
		put_jump_rule(fz, &from, -1, name, code, K_JUMP);
		what_add(fz, " mut %#x", m);
		return;
	}
	rule_begin(fz, &r, &from, NLM_F_CREATE | NLM_F_APPEND, K_JUMP, 0, 0,
		   RS_OK);
	what_add(fz, " verdict to a data register, mut %#x", m);
	e_verdict(fz, 1 + rnd(fz, 4), code, name);
	rule_end(fz, &r);
}

enum {
	VM_NO_KEYLEN, VM_KEYLEN, VM_NOMAP, VM_NODTYPE, VM_DTYPE, VM_SFLAGS,
	VM_ELEM_KEYLEN, VM_ELEM_NODATA, VM_ELEM_BASE, VM_ELEM_MISSING,
	VM_LK_DREG, VM_LK_SREG, VM_LK_SET, VM_LK_FLAGS, VM_NMUT
};

#define VM_SET_MUTS	(M(VM_NO_KEYLEN) | M(VM_KEYLEN) | M(VM_NOMAP) | \
			 M(VM_NODTYPE) | M(VM_DTYPE) | M(VM_SFLAGS))

static void put_set(struct fz *fz, const struct loc *l, unsigned int s,
		    uint32_t m, uint8_t kind)
{
	static const uint32_t keylens[] = { 0, 65, 0xffffffff, 2 };
	struct mset *set = &fz->st.t[l->fam][l->tab].set[s];
	uint32_t flags = NFT_SET_MAP;

	msg_begin(fz, NFT_MSG_NEWSET, fams[l->fam].nfproto, NLM_F_CREATE,
		  kind, "%s %s %s", fams[l->fam].name, tab_names[l->tab],
		  set_names[s]);
	if (m)
		what_add(fz, " mut %#x", m);
	a_str(fz, NFTA_SET_TABLE, tab_names[l->tab]);
	a_str(fz, NFTA_SET_NAME, set_names[s]);
	if (fz->ordered)
		flags |= NFT_SET_INTERVAL;
	if (m & M(VM_NOMAP))
		flags = 0;
	if (m & M(VM_SFLAGS))
		flags |= M(12 + rnd(fz, 20));
	a_u32(fz, NFTA_SET_FLAGS, flags);
	/* The key type of a map does not change: it is not a mutation. */
	a_u32(fz, NFTA_SET_KEY_TYPE, s ? 19 : 0);
	if (m & M(VM_KEYLEN))
		a_u32(fz, NFTA_SET_KEY_LEN,
		      keylens[rnd(fz, ARRAY_SIZE(keylens))]);
	else if (!(m & M(VM_NO_KEYLEN)))
		a_u32(fz, NFTA_SET_KEY_LEN, 4);
	if (m & M(VM_DTYPE))
		a_u32(fz, NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT + 1);
	else if (!(m & M(VM_NODTYPE)))
		a_u32(fz, NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
	if (chance(fz, 50))
		a_u32(fz, NFTA_SET_DATA_LEN, 16);
	a_u32(fz, NFTA_SET_ID, ++fz->set_id);
	msg_end(fz);
	if (!set->exists) {
		memset(set, 0, sizeof(*set));
		set->exists = true;
	}
}

/* The chains looking map @s up, and what they are reached from. */
static uint8_t set_reach(const struct mtable *t, unsigned int s,
			 uint8_t *hooks, uint8_t *types)
{
	uint8_t lookers = 0, h, ty;
	unsigned int c;

	*hooks = 0;
	*types = 0;
	for (c = 0; c < NCHAIN; c++) {
		if (!t->chain[c].exists || !(t->chain[c].lookups & M(s)))
			continue;
		reach_of(&t->chain[c], &h, &ty);
		*hooks |= h;
		*types |= ty;
		lookers |= M(c);
	}
	return lookers;
}

static void put_elems(struct fz *fz, const struct loc *l, unsigned int s,
		      uint32_t m)
{
	struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int i, n = 1 + rnd(fz, 3), k[3];
	struct nlattr *list, *elem, *key;
	uint8_t hooks, types, lookers;
	const char *chains[3];
	int32_t codes[3];
	int c;

	/* Keys the map has not (clean), and targets first: setup. */
	lookers = set_reach(t, s, &hooks, &types);
	for (i = 0; i < n; i++) {
		struct loc to = *l;

		k[i] = 1 + rnd(fz, NKEY);
		if (!fz->dirty && t->set[s].keys & M(k[i] - 1))
			k[i] = 0;
		chains[i] = NULL;
		codes[i] = chance(fz, 50) ? NF_ACCEPT : NF_DROP;
		if (chance(fz, 70)) {
			get_target(fz, &to, -1, hooks, types);
			chains[i] = chain_names[to.chain];
			codes[i] = chance(fz, 70) ? NFT_JUMP : NFT_GOTO;
			/* Clean: no loop through the map, what it runs fits. */
			if (!fz->dirty &&
			    (reachable(t, to.chain) & lookers ||
			     !fits(l->fam, deep_content(t, to.chain),
				   hooks | t->chain[to.chain].rhooks,
				   types | t->chain[to.chain].rtypes)))
				k[i] = 0;
		}
	}
	for (i = 0; i < n; i++)
		for (c = 0; c < (int)i; c++)
			if (k[c] == k[i])
				k[i] = 0;
	if (m & M(VM_ELEM_BASE)) {
		c = find_chain(fz, l, NULL, false, -1, 0, 0);
		chains[0] = c >= 0 ? chain_names[c] : "c0";
		codes[0] = NFT_JUMP;
	}
	if (m & M(VM_ELEM_MISSING)) {
		chains[0] = "nochain";
		codes[0] = NFT_GOTO;
	}
	for (i = c = 0; i < n; i++)
		c += k[i] != 0;
	if (!c)
		return;

	msg_begin(fz, NFT_MSG_NEWSETELEM, fams[l->fam].nfproto, NLM_F_CREATE,
		  K_VMAP, "%s %s %s %d elements", fams[l->fam].name,
		  tab_names[l->tab], set_names[s], c);
	if (m)
		what_add(fz, " mut %#x", m);
	a_str(fz, NFTA_SET_ELEM_LIST_TABLE, tab_names[l->tab]);
	a_str(fz, NFTA_SET_ELEM_LIST_SET, set_names[s]);
	list = a_nest(fz, NFTA_SET_ELEM_LIST_ELEMENTS);
	for (i = 0; i < n; i++) {
		uint32_t kv = htonl(k[i]);

		if (!k[i])
			continue;
		elem = a_nest(fz, NFTA_LIST_ELEM);
		key = a_nest(fz, NFTA_SET_ELEM_KEY);
		a_put(fz, NFTA_DATA_VALUE,
		      m & M(VM_ELEM_KEYLEN) ? 2 : sizeof(kv), &kv);
		a_end(fz, key);
		if (!(m & M(VM_ELEM_NODATA)))
			put_verdict(fz, NFTA_SET_ELEM_DATA, codes[i],
				    chains[i]);
		a_end(fz, elem);
		t->set[s].keys |= M(k[i] - 1);
		c = name_index(chains[i] ? chains[i] : "", "c", NCHAIN);
		if (c >= 0)
			t->set[s].targets |= M(c);
	}
	a_end(fz, list);
	msg_end(fz);
	update_reach(t);
}

/* Whether a lookup of map @s from @from could run what the map leads to. */
static bool can_look_up(const struct fz *fz, const struct loc *from,
			unsigned int s)
{
	const struct mtable *t = &fz->st.t[from->fam][from->tab];
	uint8_t content = 0;
	unsigned int c;

	if (fz->dirty)
		return true;
	for (c = 0; c < NCHAIN; c++) {
		if (!(t->set[s].targets & M(c)))
			continue;
		if (reachable(t, c) & M(from->chain))
			return false;
		content |= deep_content(t, c);
	}
	return takes(fz, from, from->chain, content);
}

static void gen_vmap(struct fz *fz)
{
	uint32_t m = mutating(fz, 25) ? pick_mut(fz, VM_NMUT) : 0;
	const struct want *w = &wants[rnd(fz, NEX)], *fw;
	uint32_t sreg = REG32(rnd(fz, 16));
	unsigned int s = rnd(fz, NSET), c;
	uint8_t need = 0;
	struct loc l, from;
	struct mtable *t;
	struct want nw;
	struct expr e;
	struct rule r;
	bool regular;

	get_table(fz, &l, w);
	t = &fz->st.t[l.fam][l.tab];
	if (!t->set[s].exists || (fz->dirty && chance(fz, 10)) ||
	    m & VM_SET_MUTS)
		put_set(fz, &l, s, m, K_VMAP);
	if (chance(fz, 85))
		put_elems(fz, &l, s, m);
	if (!chance(fz, 70))
		return;

	for (c = 0; c < NCHAIN; c++)
		if (t->set[s].targets & M(c))
			need |= deep_content(t, c);
	from = l;
	fw = chance(fz, 60) ? w : want_for(&nw, need);
	regular = chance(fz, 15);
	get_chain(fz, &from, fw, regular, -1, need);
	if (!can_look_up(fz, &from, s))
		return;
	rule_begin(fz, &r, &from, NLM_F_CREATE | NLM_F_APPEND, K_VMAP, 0, 0,
		   RS_OK);
	what_add(fz, " vmap %s", set_names[s]);
	if (m)
		what_add(fz, " mut %#x", m);
	e_meta(fz, NFT_META_MARK, sreg);
	e_begin(fz, &e, "lookup", SH_OK);
	if (m & M(VM_LK_SET))
		a_str(fz, NFTA_LOOKUP_SET, "nomap");
	else
		a_str(fz, NFTA_LOOKUP_SET, set_names[s]);
	a_u32(fz, NFTA_LOOKUP_SREG, m & M(VM_LK_SREG) ? bad_reg(fz, 4) : sreg);
	a_u32(fz, NFTA_LOOKUP_DREG, m & M(VM_LK_DREG) ? 1 + rnd(fz, 4) : 0);
	if (m & M(VM_LK_FLAGS))
		a_u32(fz, NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV | M(rnd(fz, 4)));
	e_end(fz, &e);
	rule_end(fz, &r);
	t->chain[from.chain].lookups |= M(s);
	update_reach(t);
}

/* Whether the batch being built deletes rule @r. */
static bool rule_doomed(const struct fz *fz, const struct mrule *r)
{
	const struct mrule *t;
	unsigned int i;

	for (i = 0; i < fz->b.n; i++) {
		t = &fz->b.msg[i].target;
		if (fz->b.msg[i].del == DEL_NONE ||
		    t->l.fam != r->l.fam || t->l.tab != r->l.tab)
			continue;
		switch (fz->b.msg[i].del) {
		case DEL_HANDLE:
			if (t->handle == r->handle)
				return true;
			break;
		case DEL_CHAIN:
			if (t->l.chain == r->l.chain)
				return true;
			break;
		default:
			return true;
		}
	}
	return false;
}

/* A rule of the committed model that the batch still has. */
static const struct mrule *pick_rule(struct fz *fz)
{
	unsigned int i, start;
	const struct mrule *r;

	if (!fz->nrules)
		return NULL;
	start = rnd(fz, fz->nrules);
	for (i = 0; i < fz->nrules; i++) {
		r = &fz->rules[(start + i) % fz->nrules];
		if (fz->st.t[r->l.fam][r->l.tab].chain[r->l.chain].exists &&
		    !rule_doomed(fz, r))
			return r;
	}
	return NULL;
}

static uint64_t bogus_handle(struct fz *fz)
{
	static const uint64_t handles[] = {
		1ULL << 40, UINT64_MAX, 0x7fffffffffffffffULL,
	};

	if (chance(fz, 50))
		return 1 + rnd(fz, 4096);
	return handles[rnd(fz, ARRAY_SIZE(handles))];
}

static void gen_replace(struct fz *fz)
{
	const struct mrule *old = pick_rule(fz);
	unsigned int how = rnd(fz, fz->dirty ? 100 : 88), ex;
	bool mutate = mutating(fz, 30);
	uint64_t handle, pos = 0;
	uint8_t fit = 0;
	uint16_t flags = 0;
	struct bmsg *msg;
	struct rule r;
	struct loc l;
	int body, c;

	if (old && (!fz->dirty || chance(fz, 80))) {
		l = old->l;
		handle = old->handle;
	} else {
		get_table(fz, &l, &wants[rnd(fz, NEX)]);
		get_chain(fz, &l, NULL, chance(fz, 30), -1, 0);
		/* No rule to replace: a plain add, in a clean batch. */
		handle = fz->dirty ? bogus_handle(fz) : 0;
		if (!handle)
			how = 100;
	}
	if (how == 100) {
		flags = NLM_F_CREATE | NLM_F_APPEND;
	} else if (how < 70) {
		flags = NLM_F_REPLACE;
	} else if (how < 88) {
		/* Add (append) or insert next to the rule. */
		pos = handle;
		handle = 0;
		flags = NLM_F_CREATE | (chance(fz, 50) ? NLM_F_APPEND : 0);
	} else if (how < 94) {
		flags = NLM_F_REPLACE;
		handle = 0;
	} else {
		flags = NLM_F_CREATE | NLM_F_EXCL;
	}

	/* The new rule: an expression that may run there, a jump, accept. */
	for (ex = 0; ex < NEX; ex++)
		if (fz->have & M(ex) && takes(fz, &l, l.chain, M(ex)))
			fit |= M(ex);
	body = rnd(fz, NEX + 2);
	/* Never an expression whose generator is not in use (-k). */
	if (body < NEX && !(fz->kinds & M(ex_kind[body])))
		body = NEX + 1;
	if (body < NEX && !fz->dirty && !(fit & M(body)))
		body = fit ? (int)pick_bit(fz, fit) : NEX + 1;
	if (body < NEX) {
		put_expr_rule(fz, &l, body, K_REPLACE, mutate, flags, handle,
			      pos);
	} else {
		c = find_chain(fz, &l, NULL, true, l.chain, 0, 0);
		rule_begin(fz, &r, &l, flags, K_REPLACE, handle, pos, RS_OK);
		if (body == NEX && c >= 0 && can_jump(fz, &l, c)) {
			e_verdict(fz, 0, NFT_JUMP, chain_names[c]);
			fz->st.t[l.fam][l.tab].chain[l.chain].jumps |= M(c);
			update_reach(&fz->st.t[l.fam][l.tab]);
		} else {
			e_verdict(fz, 0, NF_ACCEPT, NULL);
		}
		rule_end(fz, &r);
	}
	msg = last_msg(fz);
	if (flags & NLM_F_REPLACE && handle) {
		msg->del = DEL_HANDLE;
		msg->target.l = l;
		msg->target.handle = handle;
	}
}

/* A table that exists in the batch's model, or false. */
static bool pick_table(struct fz *fz, struct loc *l)
{
	unsigned int i, start = rnd(fz, NFAM * NTAB);

	for (i = 0; i < NFAM * NTAB; i++) {
		unsigned int k = (start + i) % (NFAM * NTAB);

		if (fz->st.t[k / NTAB][k % NTAB].exists) {
			l->fam = k / NTAB;
			l->tab = k % NTAB;
			return true;
		}
	}
	return false;
}

/* The model after a chain's rules are gone. */
static void chain_flushed(struct mtable *t, unsigned int c)
{
	t->chain[c].content = 0;
	t->chain[c].jumps = 0;
	t->chain[c].lookups = 0;
}

static void del_rules(struct fz *fz)
{
	uint16_t cmd = NFT_MSG_DELRULE;
	const struct mrule *old = pick_rule(fz);
	unsigned int op = rnd(fz, 100);
	struct mtable *t;
	struct bmsg *msg;
	uint64_t handle;
	bool chain = true;
	struct loc l;
	int c;

	if (fz->dirty && chance(fz, 15))
		cmd = FZ_MSG_DESTROYRULE;
	if (op < 55 && old) {
		l = old->l;
		handle = old->handle;
	} else if ((fz->dirty && op < 62) || !pick_table(fz, &l)) {
		if (!pick_table(fz, &l)) {
			l.fam = rnd(fz, NFAM);
			l.tab = rnd(fz, NTAB);
		}
		l.chain = rnd(fz, NCHAIN);
		handle = bogus_handle(fz);
	} else {
		/* A flush: of a chain, or of the whole table. */
		c = find_chain(fz, &l, NULL, chance(fz, 50), -1, 0, 0);
		l.chain = c >= 0 ? c : 0;
		handle = 0;
		chain = c >= 0 && chance(fz, 75);
	}
	/* A handle without a chain flushes the whole table. */
	if (handle && fz->dirty && chance(fz, 5))
		chain = false;

	msg_begin(fz, cmd, fams[l.fam].nfproto, 0, K_DELETE, "%s %s %s",
		  fams[l.fam].name, tab_names[l.tab],
		  chain ? chain_names[l.chain] : "-");
	if (handle)
		what_add(fz, " handle %llu", (unsigned long long)handle);
	a_str(fz, NFTA_RULE_TABLE, tab_names[l.tab]);
	if (chain)
		a_str(fz, NFTA_RULE_CHAIN, chain_names[l.chain]);
	if (handle)
		a_u64(fz, NFTA_RULE_HANDLE, handle);
	msg_end(fz);

	msg = last_msg(fz);
	msg->target.l = l;
	msg->target.handle = handle;
	t = &fz->st.t[l.fam][l.tab];
	/* A rule deleted by handle keeps its jumps in the model: safe. */
	if (!chain) {
		msg->del = DEL_TABLE;
		for (c = 0; c < NCHAIN; c++)
			chain_flushed(t, c);
	} else if (!handle) {
		msg->del = DEL_CHAIN;
		chain_flushed(t, l.chain);
	} else {
		msg->del = DEL_HANDLE;
	}
	update_reach(t);
}

static void del_chain(struct fz *fz, struct loc *l)
{
	struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int i, start = rnd(fz, NCHAIN), c;
	uint16_t cmd = NFT_MSG_DELCHAIN, flags = 0;
	int pick = -1;

	if (fz->dirty && chance(fz, 15))
		cmd = FZ_MSG_DESTROYCHAIN;
	if (fz->dirty && chance(fz, 20))
		flags = NLM_F_NONREC;
	/* Clean: an existing chain no jump or map element leads to. */
	for (i = 0; i < NCHAIN && pick < 0; i++) {
		c = (start + i) % NCHAIN;
		if (t->chain[c].exists &&
		    (fz->dirty || !referenced(t, c)))
			pick = c;
	}
	if (pick < 0 && !fz->dirty) {
		del_rules(fz);
		return;
	}
	l->chain = pick >= 0 ? (uint32_t)pick : rnd(fz, NCHAIN);
	put_delchain(fz, l, cmd, flags, K_DELETE);
}

static void del_set(struct fz *fz, const struct loc *l)
{
	struct mtable *t = &fz->st.t[l->fam][l->tab];
	unsigned int s = rnd(fz, NSET), op = rnd(fz, 3);
	struct nlattr *list, *elem, *key;
	uint32_t k = 1 + rnd(fz, NKEY), kv = htonl(k);
	uint16_t cmd;

	if (!fz->dirty) {
		/* Only what exists, and no map a lookup uses. */
		if (!t->set[s].exists) {
			del_rules(fz);
			return;
		}
		if (op == 0 && bound(t, s))
			op = 2;
		if (op == 1 && !(t->set[s].keys & M(k - 1)))
			op = 2;
	}
	switch (op) {
	case 0:
		cmd = fz->dirty && chance(fz, 20) ? FZ_MSG_DESTROYSET :
						    NFT_MSG_DELSET;
		msg_begin(fz, cmd, fams[l->fam].nfproto, 0, K_DELETE,
			  "%s %s %s", fams[l->fam].name, tab_names[l->tab],
			  set_names[s]);
		a_str(fz, NFTA_SET_TABLE, tab_names[l->tab]);
		a_str(fz, NFTA_SET_NAME, set_names[s]);
		msg_end(fz);
		memset(&t->set[s], 0, sizeof(t->set[s]));
		update_reach(t);
		break;
	case 1:
		cmd = fz->dirty && chance(fz, 20) ? FZ_MSG_DESTROYSETELEM :
						    NFT_MSG_DELSETELEM;
		msg_begin(fz, cmd, fams[l->fam].nfproto, 0, K_DELETE,
			  "%s %s %s key %u", fams[l->fam].name,
			  tab_names[l->tab], set_names[s], k);
		a_str(fz, NFTA_SET_ELEM_LIST_TABLE, tab_names[l->tab]);
		a_str(fz, NFTA_SET_ELEM_LIST_SET, set_names[s]);
		list = a_nest(fz, NFTA_SET_ELEM_LIST_ELEMENTS);
		elem = a_nest(fz, NFTA_LIST_ELEM);
		key = a_nest(fz, NFTA_SET_ELEM_KEY);
		a_put(fz, NFTA_DATA_VALUE, sizeof(kv), &kv);
		a_end(fz, key);
		a_end(fz, elem);
		a_end(fz, list);
		msg_end(fz);
		t->set[s].keys &= ~M(k - 1);
		break;
	default:
		/* No element list: flush the map. */
		msg_begin(fz, NFT_MSG_DELSETELEM, fams[l->fam].nfproto, 0,
			  K_DELETE, "%s %s %s flush", fams[l->fam].name,
			  tab_names[l->tab], set_names[s]);
		a_str(fz, NFTA_SET_ELEM_LIST_TABLE, tab_names[l->tab]);
		a_str(fz, NFTA_SET_ELEM_LIST_SET, set_names[s]);
		msg_end(fz);
		t->set[s].keys = 0;
		break;
	}
}

/*
 * In a clean batch with nothing to delete, something to: a table, a
 * chain, a rule, made in the same batch.
 */
static void something_to_delete(struct fz *fz)
{
	struct loc l;

	if (fz->dirty || pick_table(fz, &l))
		return;
	get_table(fz, &l, NULL);
	get_chain(fz, &l, NULL, chance(fz, 50), -1, 0);
	put_jump_rule(fz, &l, -1, NULL, NF_ACCEPT, K_SETUP);
}

static void gen_delete(struct fz *fz)
{
	unsigned int op = rnd(fz, 100), f;
	struct loc l;

	something_to_delete(fz);
	if (op < 50) {
		del_rules(fz);
		return;
	}
	if (op < 97 && !pick_table(fz, &l)) {
		if (!fz->dirty) {
			del_rules(fz);
			return;
		}
		l.fam = rnd(fz, NFAM);
		l.tab = rnd(fz, NTAB);
	}
	if (op < 70) {
		del_chain(fz, &l);
	} else if (op < 80) {
		del_set(fz, &l);
	} else if (op < 97) {
		msg_begin(fz, fz->dirty && chance(fz, 20) ?
			  FZ_MSG_DESTROYTABLE : NFT_MSG_DELTABLE,
			  fams[l.fam].nfproto, 0, K_DELETE, "%s %s",
			  fams[l.fam].name, tab_names[l.tab]);
		a_str(fz, NFTA_TABLE_NAME, tab_names[l.tab]);
		msg_end(fz);
		last_msg(fz)->del = DEL_TABLE;
		last_msg(fz)->target.l = l;
		memset(&fz->st.t[l.fam][l.tab], 0, sizeof(struct mtable));
	} else if (op < 99) {
		/* DELTABLE without a name: every table of the family. */
		f = rnd(fz, NFAM);
		msg_begin(fz, NFT_MSG_DELTABLE, fams[f].nfproto, 0, K_DELETE,
			  "%s flush", fams[f].name);
		msg_end(fz);
		last_msg(fz)->del = DEL_FAMILY;
		last_msg(fz)->target.l.fam = f;
		memset(&fz->st.t[f], 0, sizeof(fz->st.t[f]));
	} else {
		msg_begin(fz, NFT_MSG_DELTABLE, NFPROTO_UNSPEC, 0, K_DELETE,
			  "flush ruleset");
		msg_end(fz);
		last_msg(fz)->del = DEL_ALL;
		memset(&fz->st, 0, sizeof(fz->st));
	}
}

static unsigned int item_kinds(const struct fz *fz)
{
	return fz->kinds & ITEM_KINDS ? fz->kinds & ITEM_KINDS : ITEM_KINDS;
}

/* Item generators whose rules the kernel can accept. */
static unsigned int clean_kinds(const struct fz *fz)
{
	unsigned int mask = item_kinds(fz), ex;

	for (ex = 0; ex < NEX; ex++)
		if (!(fz->have & M(ex)) && mask & ~M(ex_kind[ex]))
			mask &= ~M(ex_kind[ex]);
	return mask;
}

static unsigned int pick_weighted(struct fz *fz, unsigned int mask)
{
	unsigned int total = 0, k, r;

	for (k = 0; k < NKIND; k++)
		if (mask & M(k))
			total += kinds[k].weight;
	r = rnd(fz, total);
	for (k = 0; k < NKIND; k++) {
		if (!(mask & M(k)))
			continue;
		if (r < kinds[k].weight)
			return k;
		r -= kinds[k].weight;
	}
	return K_TPROXY;
}

static void gen_item(struct fz *fz, unsigned int k)
{
	fz->kind = k;
	switch (k) {
	case K_TPROXY:
		gen_expr(fz, EX_TPROXY);
		break;
	case K_SOCKET:
		gen_expr(fz, EX_SOCKET);
		break;
	case K_DIVERT:
		gen_expr(fz, EX_DIVERT);
		break;
	case K_CHAIN:
		gen_chain(fz);
		break;
	case K_JUMP:
		gen_jump(fz);
		break;
	case K_VMAP:
		gen_vmap(fz);
		break;
	case K_REPLACE:
		gen_replace(fz);
		break;
	default:
		gen_delete(fz);
		break;
	}
}

/* Items, then a message the kernel must refuse, or no batch end. */
static void gen_abort(struct fz *fz)
{
	unsigned int i, n = 1 + rnd(fz, 4);
	struct rule r;
	struct loc l;

	for (i = 0; i < n && fz->b.n < ITEM_ROOM; i++)
		gen_item(fz, pick_weighted(fz, clean_kinds(fz)));
	if (chance(fz, 25)) {
		fz->b.check_only = true;
		return;
	}
	l.fam = rnd(fz, NFAM);
	l.tab = rnd(fz, NTAB);
	l.chain = rnd(fz, NCHAIN);
	switch (rnd(fz, 4)) {
	case 0:
		msg_begin(fz, NFT_MSG_NEWRULE, fams[l.fam].nfproto,
			  NLM_F_CREATE | NLM_F_APPEND, K_ABORT,
			  "%s fzmissing", fams[l.fam].name);
		a_str(fz, NFTA_RULE_TABLE, "fzmissing");
		a_str(fz, NFTA_RULE_CHAIN, chain_names[l.chain]);
		r.exprs = a_nest(fz, NFTA_RULE_EXPRESSIONS);
		r.shape = RS_OK;
		e_verdict(fz, 0, NF_ACCEPT, NULL);
		rule_end(fz, &r);
		break;
	case 1:
		put_table(fz, l.fam, l.tab, K_ABORT, NLM_F_CREATE, true,
			  0x80000000);
		break;
	case 2:
		msg_begin(fz, NFT_MSG_DELTABLE, fams[l.fam].nfproto, 0,
			  K_ABORT, "%s fzmissing", fams[l.fam].name);
		a_str(fz, NFTA_TABLE_NAME, "fzmissing");
		msg_end(fz);
		break;
	default:
		msg_begin(fz, NFT_MSG_NEWSETELEM, fams[l.fam].nfproto,
			  NLM_F_CREATE, K_ABORT, "%s fzmissing nomap",
			  fams[l.fam].name);
		a_str(fz, NFTA_SET_ELEM_LIST_TABLE, "fzmissing");
		a_str(fz, NFTA_SET_ELEM_LIST_SET, "nomap");
		msg_end(fz);
		break;
	}
}

/* ---- accounting ----------------------------------------------------- */

static int write_rec(int fd, const struct rec *r)
{
	const char *p = (const char *)r;
	size_t done = 0;
	ssize_t n;

	while (done < sizeof(*r)) {
		n = write(fd, p + done, sizeof(*r) - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

static void note_msg(struct fz *fz, uint8_t kind, uint16_t type, int err,
		     bool committed, const char *what, const char *extack,
		     bool child)
{
	struct stats *s = fz->stats;
	struct rec r;

	if (fz->sink >= 0) {
		memset(&r, 0, sizeof(r));
		r.type = type;
		r.kind = kind;
		r.state = committed;
		r.err = err;
		snprintf(r.what, sizeof(r.what), "%s", what);
		snprintf(r.extack, sizeof(r.extack), "%s", extack);
		if (write_rec(fz->sink, &r) < 0)
			_exit(EXIT_LOCAL);
		return;
	}
	s->msgs++;
	s->hist[err >= 0 && err < MAX_ERRNO ? err : MAX_ERRNO]++;
	s->sent[kind]++;
	if (!err)
		s->ok[kind]++;
	if (committed)
		s->committed[kind]++;
	if (child)
		s->netns_msgs++;
	fnv_u32(&s->errno_hash, err);
	if (s->errlog)
		fprintf(s->errlog, "%llu %s %s %d\n",
			(unsigned long long)s->msgs, kinds[kind].name,
			op_name(type), err);
	if (s->verbose)
		printf("msg %llu%s %s %s %s: %d %s%s%s%s\n",
		       (unsigned long long)s->msgs, child ? " netns" : "",
		       kinds[kind].name, op_name(type), what, err,
		       errno_name(err), *extack ? " \"" : "", extack,
		       *extack ? "\"" : "");
}

static void note_batch(struct fz *fz, int err, int state, int mode,
		       bool batch_err, const char *extack, bool child)
{
	struct stats *s = fz->stats;
	struct rec r;

	if (fz->sink >= 0) {
		memset(&r, 0, sizeof(r));
		r.type = REC_BATCH;
		r.state = state;
		r.mode = mode;
		r.kind = batch_err;
		r.err = err;
		snprintf(r.extack, sizeof(r.extack), "%s", extack);
		if (write_rec(fz->sink, &r) < 0)
			_exit(EXIT_LOCAL);
		return;
	}
	s->batches++;
	if (state == BS_COMMIT)
		s->batch_commit++;
	if (state == BS_CHECK)
		s->batch_check++;
	if (batch_err) {
		s->batch_err++;
		fnv_u32(&s->errno_hash, 0x80000000u | err);
	}
	if (s->verbose)
		printf("batch %llu%s %s: %s, errno %d %s%s%s%s%s\n",
		       (unsigned long long)s->batches, child ? " netns" : "",
		       bm_names[mode], bs_names[state], err, errno_name(err),
		       batch_err ? " (batch)" : "", *extack ? " \"" : "",
		       extack, *extack ? "\"" : "");
}

/* ---- talking to the kernel ------------------------------------------ */

static void get_extack(const struct nlmsghdr *nlh, char *buf, size_t size)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t off = sizeof(*e);
	const struct nlattr *a;
	const char *msg = NULL;
	uint32_t offs = 0;

	buf[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		off += mnl_nlmsg_get_payload_len(&e->msg);
	if (MNL_NLMSG_HDRLEN + MNL_ALIGN(off) > nlh->nlmsg_len)
		return;
	mnl_attr_for_each(a, nlh, off) {
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
		    !mnl_attr_validate(a, MNL_TYPE_NUL_STRING))
			msg = mnl_attr_get_str(a);
		if (mnl_attr_get_type(a) == NLMSGERR_ATTR_OFFS &&
		    !mnl_attr_validate(a, MNL_TYPE_U32))
			offs = mnl_attr_get_u32(a);
	}
	/* The message, and where in ours the offending attribute was. */
	if (msg && offs)
		snprintf(buf, size, "%s, at %u", msg, offs);
	else if (msg)
		snprintf(buf, size, "%s", msg);
	else if (offs)
		snprintf(buf, size, "at %u", offs);
}

/* The NEWRULE the kernel echoes: where the rule went, its handle. */
static void echo_rule(struct bmsg *m, const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	int fam = fam_index(nfg->nfgen_family), tab = -1, chain = -1;
	const struct nlattr *a;
	uint64_t handle = 0;

	mnl_attr_for_each(a, nlh, sizeof(*nfg)) {
		switch (mnl_attr_get_type(a)) {
		case NFTA_RULE_TABLE:
			if (!mnl_attr_validate(a, MNL_TYPE_NUL_STRING))
				tab = name_index(mnl_attr_get_str(a), "fz",
						 NTAB);
			break;
		case NFTA_RULE_CHAIN:
			if (!mnl_attr_validate(a, MNL_TYPE_NUL_STRING))
				chain = name_index(mnl_attr_get_str(a), "c",
						   NCHAIN);
			break;
		case NFTA_RULE_HANDLE:
			if (!mnl_attr_validate(a, MNL_TYPE_U64))
				handle = be64toh(mnl_attr_get_u64(a));
			break;
		}
	}
	if (fam < 0 || tab < 0 || chain < 0 || !handle)
		return;
	m->echoed = true;
	m->added.l.fam = fam;
	m->added.l.tab = tab;
	m->added.l.chain = chain;
	m->added.handle = handle;
}

static void handle_reply(struct fz *fz, const struct nlmsghdr *nlh,
			 unsigned int *pending)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	struct batch *b = &fz->b;
	struct bmsg *m = NULL;
	uint32_t idx;

	if (b->n) {
		idx = nlh->nlmsg_seq - b->msg[0].seq;
		if (idx < b->n)
			m = &b->msg[idx];
	}
	if (nlh->nlmsg_type == NLMSG_ERROR) {
		if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
			return;
		if (nlh->nlmsg_seq == b->begin_seq) {
			if (e->error && !b->err) {
				b->err = -e->error;
				get_extack(nlh, b->extack, sizeof(b->extack));
			}
			return;
		}
		if (!m || m->err >= 0)
			return;
		m->err = -e->error;
		if (m->err)
			get_extack(nlh, m->extack, sizeof(m->extack));
		(*pending)--;
		return;
	}
	if (m && nlh->nlmsg_type ==
	    ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE))
		echo_rule(m, nlh);
}

/* Read what the kernel answered to the batch: it is all queued. */
static int collect(struct fz *fz)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(fz->nl),
			      .events = POLLIN };
	unsigned int pending = fz->b.n;
	struct nlmsghdr *nlh;
	ssize_t n;
	int len;

	for (;;) {
		n = recv(pfd.fd, fz->rbuf, sizeof(fz->rbuf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (!pending || fz->b.err)
				return 0;
			n = poll(&pfd, 1, ACK_TIMEOUT_MS);
			if (n > 0 || (n < 0 && errno == EINTR))
				continue;
			fprintf(stderr,
				"nft_fuzz_netlink: %u acknowledgments missing\n",
				pending);
			return -1;
		}
		if (n < 0) {
			perror("nft_fuzz_netlink: recv");
			return -1;
		}
		len = n;
		for (nlh = (struct nlmsghdr *)fz->rbuf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len))
			handle_reply(fz, nlh, &pending);
	}
}

static void remove_rules(struct fz *fz, int what, const struct mrule *t)
{
	unsigned int i, j = 0;

	for (i = 0; i < fz->nrules; i++) {
		const struct mrule *r = &fz->rules[i];
		bool gone;

		switch (what) {
		case DEL_HANDLE:
			gone = r->l.fam == t->l.fam && r->l.tab == t->l.tab &&
			       r->handle == t->handle;
			break;
		case DEL_CHAIN:
			gone = r->l.fam == t->l.fam && r->l.tab == t->l.tab &&
			       r->l.chain == t->l.chain;
			break;
		case DEL_TABLE:
			gone = r->l.fam == t->l.fam && r->l.tab == t->l.tab;
			break;
		case DEL_FAMILY:
			gone = r->l.fam == t->l.fam;
			break;
		case DEL_ALL:
			gone = true;
			break;
		default:
			gone = !fz->w.t[r->l.fam][r->l.tab].chain[r->l.chain].exists;
			break;
		}
		if (!gone)
			fz->rules[j++] = *r;
	}
	fz->nrules = j;
}

static void commit_model(struct fz *fz)
{
	unsigned int i;

	for (i = 0; i < fz->b.n; i++) {
		const struct bmsg *m = &fz->b.msg[i];

		if (m->del != DEL_NONE)
			remove_rules(fz, m->del, &m->target);
		if (m->echoed && fz->nrules < MAX_RULES)
			fz->rules[fz->nrules++] = m->added;
	}
	fz->w = fz->st;
	remove_rules(fz, DEL_NONE, NULL);
}

/* End, send, and collect the answers; a message without any gets the batch's. */
static int batch_xmit(struct fz *fz)
{
	struct batch *b = &fz->b;
	unsigned int i;

	if (!b->check_only)
		batch_frame(fz, NFNL_MSG_BATCH_END);
	if (b->overflow) {
		fprintf(stderr, "nft_fuzz_netlink: batch overflow\n");
		return -1;
	}
	if (mnl_socket_sendto(fz->nl, b->buf, b->len) < 0) {
		perror("nft_fuzz_netlink: sendto");
		return -1;
	}
	if (collect(fz) < 0)
		return -1;
	for (i = 0; i < b->n; i++)
		if (b->msg[i].err < 0)
			b->msg[i].err = b->err;
	return 0;
}

/*
 * Which expressions the kernel has: one valid rule of each, in a batch
 * without its end, so that nothing is committed; ENOENT means missing.
 * Those whose generator is not in use are not asked for and count as
 * missing: what is sent must not depend on them (runs without divert are
 * compared between kernels with and without it).
 */
static int probe(struct fz *fz)
{
	static const unsigned char port[2] = { 0x1f, 0x90 };
	struct chainspec cs = {
		.base = true, .hook = NF_INET_PRE_ROUTING, .type = CT_FILTER,
	};
	struct loc l = { FAM_IP, 0, 0 };
	unsigned int ex;
	struct expr e;
	struct rule r;

	for (ex = 0; ex < NEX; ex++) {
		if (!(fz->kinds & M(ex_kind[ex])))
			continue;
		batch_start(fz);
		fz->b.check_only = true;
		put_table(fz, l.fam, l.tab, K_SETUP, NLM_F_CREATE, false, 0);
		put_chain(fz, &l, &cs, NLM_F_CREATE, 0, K_SETUP);
		rule_begin(fz, &r, &l, NLM_F_CREATE, K_SETUP, 0, 0, RS_OK);
		if (ex == EX_TPROXY) {
			e_immediate(fz, REG32(0), port, sizeof(port));
			e_begin(fz, &e, "tproxy", SH_OK);
			a_u32(fz, NFTA_TPROXY_FAMILY, NFPROTO_IPV4);
			a_u32(fz, NFTA_TPROXY_REG_PORT, REG32(0));
		} else if (ex == EX_SOCKET) {
			e_begin(fz, &e, "socket", SH_OK);
			a_u32(fz, NFTA_SOCKET_KEY, NFT_SOCKET_TRANSPARENT);
			a_u32(fz, NFTA_SOCKET_DREG, REG32(0));
		} else {
			e_begin(fz, &e, "divert", SH_OK);
		}
		e_end(fz, &e);
		rule_end(fz, &r);
		if (batch_xmit(fz) < 0)
			return -1;
		if (fz->b.msg[2].err != ENOENT)
			fz->have |= M(ex);
	}
	return 0;
}

/*
 * Send the batch (its first @fz->left messages at most), collect one
 * acknowledgment per message, account for them and, when the batch was
 * committed, let the model follow.  Returns -1 on a local error.
 */
static int batch_send(struct fz *fz)
{
	struct batch *b = &fz->b;
	bool committed;
	int state, err = 0;
	unsigned int i;

	if (!b->n)
		return 0;
	if (b->n > fz->left) {
		b->len = b->msg[fz->left].off;
		b->n = fz->left;
	}
	if (batch_xmit(fz) < 0)
		return -1;

	for (i = 0; i < b->n; i++)
		if (b->msg[i].err && !err)
			err = b->msg[i].err;
	if (b->err)
		err = b->err;
	committed = !err && !b->check_only;
	for (i = 0; i < b->n; i++)
		note_msg(fz, b->msg[i].kind, b->msg[i].type, b->msg[i].err,
			 committed, b->msg[i].what, b->msg[i].extack, false);
	state = committed ? BS_COMMIT : b->check_only ? BS_CHECK : BS_ABORT;
	note_batch(fz, err, state, b->mode, b->err, b->err ? b->extack : "",
		   false);
	if (committed)
		commit_model(fz);
	fz->left -= b->n;
	return 0;
}

static struct mnl_socket *open_socket(void)
{
	int one = 1, size = 4 << 20;
	struct mnl_socket *nl;
	int fd;

	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl) {
		perror("nft_fuzz_netlink: mnl_socket_open");
		return NULL;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		perror("nft_fuzz_netlink: mnl_socket_bind");
		mnl_socket_close(nl);
		return NULL;
	}
	fd = mnl_socket_get_fd(nl);
	/* Room for a batch's acks and echoes; best effort. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)))
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)))
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	return nl;
}

/* ---- namespaces ----------------------------------------------------- */

static int fuzz_loop(struct fz *fz);

/*
 * In the child: a namespace of its own, a few batches, and exit with the
 * rules loaded, so that the namespace is torn down with them.
 */
static int child_main(struct fz *parent, uint64_t seed, uint64_t n, int fd)
{
	struct fz *fz;

	mnl_socket_close(parent->nl);
	if (unshare(CLONE_NEWNET) < 0) {
		perror("nft_fuzz_netlink: child: unshare");
		return EXIT_LOCAL;
	}
	fz = calloc(1, sizeof(*fz));
	if (!fz)
		return EXIT_LOCAL;
	fz->b.buf = calloc(1, BATCH_SIZE);
	if (!fz->b.buf)
		return EXIT_LOCAL;
	fz->rng = seed;
	fz->sink = fd;
	fz->kinds = item_kinds(parent) | (parent->kinds & M(K_ABORT));
	fz->have = parent->have;
	fz->left = n;
	fz->nl = open_socket();
	if (!fz->nl)
		return EXIT_LOCAL;
	if (fuzz_loop(fz) < 0)
		return EXIT_LOCAL;
	return 0;
}

static ssize_t read_rec(int fd, struct rec *r)
{
	char *p = (char *)r;
	size_t done = 0;
	ssize_t n;

	while (done < sizeof(*r)) {
		n = read(fd, p + done, sizeof(*r) - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (!n)
			break;
		done += n;
	}
	return done;
}

static int run_netns(struct fz *fz)
{
	uint64_t seed = splitmix64(&fz->rng);
	uint64_t n = 8 + rnd(fz, 56), sent = 0;
	int pfd[2], status;
	struct rec r;
	pid_t pid;
	ssize_t len;

	if (n > fz->left)
		n = fz->left;
	if (pipe(pfd) < 0) {
		perror("nft_fuzz_netlink: pipe");
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if (fz->stats->errlog)
		fflush(fz->stats->errlog);
	pid = fork();
	if (pid < 0) {
		perror("nft_fuzz_netlink: fork");
		return -1;
	}
	if (!pid) {
		close(pfd[0]);
		_exit(child_main(fz, seed, n, pfd[1]));
	}
	close(pfd[1]);
	while ((len = read_rec(pfd[0], &r)) == sizeof(r)) {
		r.what[sizeof(r.what) - 1] = '\0';
		r.extack[sizeof(r.extack) - 1] = '\0';
		if (r.type == REC_BATCH) {
			note_batch(fz, r.err, r.state % 3, r.mode % 3, r.kind,
				   r.extack, true);
			continue;
		}
		note_msg(fz, r.kind < NKIND ? r.kind : K_SETUP, r.type, r.err,
			 r.state, r.what, r.extack, true);
		sent++;
	}
	close(pfd[0]);
	if (waitpid(pid, &status, 0) < 0) {
		perror("nft_fuzz_netlink: waitpid");
		return -1;
	}
	if (len != 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "nft_fuzz_netlink: netns child failed (%d)\n",
			status);
		return -1;
	}
	fz->stats->netns++;
	fz->left -= sent < fz->left ? sent : fz->left;
	return 0;
}

static int fuzz_loop(struct fz *fz)
{
	unsigned int k, n;

	while (fz->left) {
		k = pick_weighted(fz, fz->kinds);
		if (k == K_NETNS) {
			if (run_netns(fz) < 0)
				return -1;
			continue;
		}
		batch_start(fz);
		fz->dirty = k != K_ABORT &&
			    (chance(fz, 35) || !(clean_kinds(fz) & M(k)));
		fz->b.mode = k == K_ABORT ? BM_ABORT :
			     fz->dirty ? BM_DIRTY : BM_CLEAN;
		if (k == K_ABORT) {
			fz->kind = K_ABORT;
			gen_abort(fz);
		} else if (fz->dirty) {
			gen_item(fz, k);
			n = 2 + rnd(fz, 10);
			while (n-- && fz->b.n < ITEM_ROOM)
				gen_item(fz, pick_weighted(fz, item_kinds(fz)));
		} else {
			gen_item(fz, k);
			while (fz->b.n < ITEM_ROOM && chance(fz, 30))
				gen_item(fz, pick_weighted(fz, clean_kinds(fz)));
		}
		if (batch_send(fz) < 0)
			return -1;
	}
	return 0;
}

/* ---- the state left, and cleanup ------------------------------------ */

struct tlist {
	unsigned int n;
	struct {
		uint8_t nfproto;
		char name[NFT_NAME_MAXLEN];
	} t[64];
};

struct dump {
	uint64_t hash;
	unsigned int count;
	struct tlist *tables;
};

static void dump_obj(struct dump *d, const struct nlmsghdr *nlh)
{
	const struct nfgenmsg *nfg = mnl_nlmsg_get_payload(nlh);
	uint8_t cmd = nlh->nlmsg_type & 0xff;
	const struct nlattr *a;
	struct tlist *tl = d->tables;

	d->count++;
	fnv(&d->hash, &cmd, 1);
	fnv(&d->hash, &nfg->nfgen_family, 1);
	mnl_attr_for_each(a, nlh, sizeof(*nfg)) {
		uint16_t type = mnl_attr_get_type(a);

		if (cmd == NFT_MSG_NEWTABLE && type == NFTA_TABLE_OWNER)
			continue;
		fnv(&d->hash, a, a->nla_len);
		if (tl && cmd == NFT_MSG_NEWTABLE && type == NFTA_TABLE_NAME &&
		    tl->n < ARRAY_SIZE(tl->t) &&
		    !mnl_attr_validate(a, MNL_TYPE_NUL_STRING)) {
			tl->t[tl->n].nfproto = nfg->nfgen_family;
			snprintf(tl->t[tl->n].name, NFT_NAME_MAXLEN, "%s",
				 mnl_attr_get_str(a));
			tl->n++;
		}
	}
}

static int dump(struct fz *fz, uint8_t cmd, struct dump *d)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(fz->nl),
			      .events = POLLIN };
	char req[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	const struct nlmsgerr *e;
	uint32_t seq = ++fz->seq;
	ssize_t n;
	int len;

	nlh = mnl_nlmsg_put_header(req);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | cmd;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = NFPROTO_UNSPEC;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	if (mnl_socket_sendto(fz->nl, nlh, nlh->nlmsg_len) < 0) {
		perror("nft_fuzz_netlink: sendto");
		return -1;
	}
	for (;;) {
		if (poll(&pfd, 1, ACK_TIMEOUT_MS) <= 0) {
			fprintf(stderr, "nft_fuzz_netlink: dump timed out\n");
			return -1;
		}
		n = recv(pfd.fd, fz->rbuf, sizeof(fz->rbuf), 0);
		if (n < 0) {
			perror("nft_fuzz_netlink: recv");
			return -1;
		}
		len = n;
		for (nlh = (struct nlmsghdr *)fz->rbuf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			if (nlh->nlmsg_seq != seq)
				continue;
			if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) {
				fprintf(stderr,
					"nft_fuzz_netlink: dump interrupted\n");
				return -1;
			}
			if (nlh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (nlh->nlmsg_type == NLMSG_ERROR) {
				e = mnl_nlmsg_get_payload(nlh);
				fprintf(stderr,
					"nft_fuzz_netlink: dump failed: %s\n",
					strerror(-e->error));
				return -1;
			}
			dump_obj(d, nlh);
		}
	}
}

/* Dump, hash and print the ruleset left; @tl gets the tables. */
static int final_state(struct fz *fz, struct tlist *tl)
{
	static const uint8_t cmds[] = {
		NFT_MSG_GETTABLE, NFT_MSG_GETCHAIN, NFT_MSG_GETRULE,
		NFT_MSG_GETSET,
	};
	unsigned int count[ARRAY_SIZE(cmds)];
	struct dump d = { .hash = FNV_INIT };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		d.count = 0;
		d.tables = i ? NULL : tl;
		if (dump(fz, cmds[i], &d) < 0)
			return -1;
		count[i] = d.count;
	}
	printf("state: tables %u chains %u rules %u sets %u\n", count[0],
	       count[1], count[2], count[3]);
	printf("state-hash: 0x%016llx\n", (unsigned long long)d.hash);
	return 0;
}

static int cleanup(struct fz *fz, const struct tlist *tl)
{
	struct dump d = { .hash = FNV_INIT };
	unsigned int i, failed = 0;

	batch_start(fz);
	for (i = 0; i < tl->n; i++) {
		msg_begin(fz, NFT_MSG_DELTABLE, tl->t[i].nfproto, 0, K_SETUP,
			  "cleanup");
		a_str(fz, NFTA_TABLE_NAME, tl->t[i].name);
		msg_end(fz);
	}
	if (fz->b.n) {
		if (batch_xmit(fz) < 0) {
			fprintf(stderr, "nft_fuzz_netlink: cleanup failed\n");
			return -1;
		}
		for (i = 0; i < fz->b.n; i++)
			failed += fz->b.msg[i].err != 0;
	}
	if (dump(fz, NFT_MSG_GETTABLE, &d) < 0)
		return -1;
	printf("cleanup: %u tables deleted, %u refused, %u left\n", tl->n,
	       failed, d.count);
	return 0;
}

/* ---- main ----------------------------------------------------------- */

static const char *have_name(const struct fz *fz, unsigned int ex)
{
	if (!(fz->kinds & M(ex_kind[ex])))
		return "unused";
	return fz->have & M(ex) ? "yes" : "missing";
}

static void usage(FILE *f)
{
	unsigned int k;

	fprintf(f,
		"usage: nft_fuzz_netlink [-s SEED] [-n MESSAGES] [-k KINDS] [-N] [-u] [-o] [-v]\n"
		"                        [-d DIR]\n"
		"  -s SEED      seed of the generator (uint64, default 1)\n"
		"  -n MESSAGES  messages to send (default 10000)\n"
		"  -k KINDS     generators to use, comma separated (default all)\n"
		"  -N           no namespace churn (same as leaving out netns)\n"
		"  -u           socket key and level, tproxy family below 256\n"
		"               (what 6.1's in-tree modules truncate to a u8)\n"
		"  -o           interval maps, which the kernel walks in key order\n"
		"  -v           print every message, its errno and extack\n"
		"  -d DIR       write the errno of each message to\n"
		"               DIR/nft_fuzz_SEED_MESSAGES.errnos\n"
		"generators:\n");
	for (k = K_TPROXY; k < NKIND; k++)
		fprintf(f, "  %-8s %s\n", kinds[k].name, kinds[k].help);
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && *s && *s != '-' && !*end;
}

static bool parse_kinds(const char *arg, unsigned int *mask)
{
	char *copy = strdup(arg), *tok, *save = NULL;
	unsigned int k;
	bool ok = true;

	if (!copy)
		return false;
	*mask = 0;
	for (tok = strtok_r(copy, ",", &save); tok && ok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (k = K_TPROXY; k < NKIND; k++)
			if (!strcmp(tok, kinds[k].name))
				break;
		if (k == NKIND)
			ok = false;
		else
			*mask |= M(k);
	}
	free(copy);
	return ok && *mask;
}

static void print_results(const struct fz *fz, uint64_t seed,
			  uint64_t count)
{
	const struct stats *s = fz->stats;
	unsigned int e, k;
	bool first = true;

	printf("nft_fuzz_netlink: seed %llu messages %llu kinds ",
	       (unsigned long long)seed, (unsigned long long)count);
	for (k = K_TPROXY; k < NKIND; k++) {
		if (!(fz->kinds & M(k)))
			continue;
		printf("%s%s", first ? "" : ",", kinds[k].name);
		first = false;
	}
	printf("\n");
	printf("expressions: tproxy %s socket %s divert %s\n",
	       have_name(fz, EX_TPROXY), have_name(fz, EX_SOCKET),
	       have_name(fz, EX_DIVERT));
	for (e = 0; e <= MAX_ERRNO; e++) {
		if (!s->hist[e])
			continue;
		if (e == MAX_ERRNO)
			printf("errno other: %llu\n",
			       (unsigned long long)s->hist[e]);
		else
			printf("errno %u (%s): %llu\n", e, errno_name(e),
			       (unsigned long long)s->hist[e]);
	}
	for (k = 0; k < NKIND; k++) {
		if (!s->sent[k])
			continue;
		printf("kind %s: sent %llu ok %llu (%.1f%%) committed %llu (%.1f%%)\n",
		       kinds[k].name, (unsigned long long)s->sent[k],
		       (unsigned long long)s->ok[k],
		       100.0 * s->ok[k] / s->sent[k],
		       (unsigned long long)s->committed[k],
		       100.0 * s->committed[k] / s->sent[k]);
	}
	printf("batches: %llu committed %llu aborted %llu checked %llu batch-errors %llu\n",
	       (unsigned long long)s->batches,
	       (unsigned long long)s->batch_commit,
	       (unsigned long long)(s->batches - s->batch_commit -
				    s->batch_check),
	       (unsigned long long)s->batch_check,
	       (unsigned long long)s->batch_err);
	printf("netns: %llu children, %llu messages\n",
	       (unsigned long long)s->netns,
	       (unsigned long long)s->netns_msgs);
	printf("errno-hash: 0x%016llx\n", (unsigned long long)s->errno_hash);
}

int main(int argc, char **argv)
{
	uint64_t seed = 1, count = 10000;
	struct timespec t0, t1;
	const char *dir = NULL;
	struct stats stats;
	struct tlist tl;
	struct fz *fz;
	double secs;
	int c, ret;

	memset(&stats, 0, sizeof(stats));
	stats.errno_hash = FNV_INIT;
	fz = calloc(1, sizeof(*fz));
	if (!fz) {
		fprintf(stderr, "nft_fuzz_netlink: out of memory\n");
		return EXIT_LOCAL;
	}
	fz->kinds = ALL_KINDS;
	fz->sink = -1;
	fz->stats = &stats;
	while ((c = getopt(argc, argv, "s:n:k:Nuovd:h")) != -1) {
		switch (c) {
		case 's':
			if (!parse_u64(optarg, &seed)) {
				fprintf(stderr, "nft_fuzz_netlink: bad seed\n");
				return EXIT_LOCAL;
			}
			break;
		case 'n':
			if (!parse_u64(optarg, &count)) {
				fprintf(stderr, "nft_fuzz_netlink: bad count\n");
				return EXIT_LOCAL;
			}
			break;
		case 'k':
			if (!parse_kinds(optarg, &fz->kinds)) {
				fprintf(stderr,
					"nft_fuzz_netlink: bad generator list '%s'\n",
					optarg);
				usage(stderr);
				return EXIT_LOCAL;
			}
			break;
		case 'N':
			fz->kinds &= ~M(K_NETNS);
			break;
		case 'u':
			fz->u8vals = true;
			break;
		case 'o':
			fz->ordered = true;
			break;
		case 'v':
			stats.verbose = true;
			break;
		case 'd':
			dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_LOCAL;
		}
	}
	if (optind != argc || !fz->kinds) {
		usage(stderr);
		return EXIT_LOCAL;
	}
	if (dir) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/nft_fuzz_%llu_%llu.errnos",
			 dir, (unsigned long long)seed,
			 (unsigned long long)count);
		stats.errlog = fopen(path, "w");
		if (!stats.errlog) {
			perror(path);
			return EXIT_LOCAL;
		}
	}

	if (unshare(CLONE_NEWNET) < 0) {
		perror("nft_fuzz_netlink: unshare(CLONE_NEWNET)");
		return EXIT_LOCAL;
	}
	fz->b.buf = calloc(1, BATCH_SIZE);
	fz->nl = open_socket();
	if (!fz->b.buf || !fz->nl)
		return EXIT_LOCAL;
	/* The first draw of the seed is the generator's state. */
	fz->rng = seed;
	splitmix64(&fz->rng);
	fz->left = count;
	if (probe(fz) < 0)
		return EXIT_LOCAL;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = fuzz_loop(fz);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fflush(stdout);
	if (ret < 0)
		return EXIT_LOCAL;

	print_results(fz, seed, count);
	memset(&tl, 0, sizeof(tl));
	if (final_state(fz, &tl) < 0 || cleanup(fz, &tl) < 0)
		return EXIT_LOCAL;
	secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("rate: %llu messages in %.3f s, %.0f messages/s\n",
	       (unsigned long long)stats.msgs, secs,
	       secs > 0 ? stats.msgs / secs : 0.0);
	if (stats.errlog && fclose(stats.errlog)) {
		perror("nft_fuzz_netlink: errno list");
		return EXIT_LOCAL;
	}
	mnl_socket_close(fz->nl);
	free(fz->b.buf);
	free(fz);
	return 0;
}
