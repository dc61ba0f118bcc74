// SPDX-License-Identifier: GPL-2.0
/*
 * nft_raw - send hand-made nf_tables rule batches and report the errno.
 *
 * The tproxy and socket expression selftests need rule messages that the
 * nft tool never sends: missing, unknown or malformed expression
 * attributes, families that do not match the table, expressions on hooks
 * or behind jumps where they are not allowed.  This helper builds one
 * batch (table, chain(s), rule) with libmnl only, lets the kernel judge
 * it and prints exactly one result line on stdout:
 *
 *	OK			the batch was committed
 *	ERR <NAME> <errno>	first error the kernel reported in the batch
 *
 * so that the errno of the in-tree and of the out-of-tree expressions can
 * be compared (-d adds the rule's expressions, as the kernel dumps them,
 * after OK).  Run it as root, preferably inside "unshare -n".
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter_arp.h>
#include <linux/netlink.h>

#include "nft_netlink.h"

#define EXIT_ERR		1	/* the kernel rejected the batch */
#define EXIT_LOCAL		2	/* usage or local error */

#define CHAIN_NAME		"rawtest"
#define JUMP_CHAIN_NAME		"rawjump"
#define MAX_MSGS		16
#define MAX_HEX			256
#define ACK_TIMEOUT_MS		5000

enum attr_kind {
	AK_U8,
	AK_U16,
	AK_U32,
	AK_U64,
	AK_HEX,
	AK_EMPTY,
};

struct attr_spec {
	uint16_t type;
	enum attr_kind kind;
	uint64_t val;
	size_t len;			/* AK_HEX */
	unsigned char data[MAX_HEX];	/* AK_HEX */
};

struct imm_spec {
	uint32_t reg;
	size_t len;
	unsigned char data[MAX_HEX];
};

struct opts {
	const char *family_name;
	uint8_t family;
	const char *hook_name;
	const char *chain_type;		/* of the base chains */
	bool base;			/* tested chain is a base chain */
	uint32_t hook;
	int32_t prio;
	bool jump;
	uint32_t jump_hook;
	bool keep;
	bool dump;
	bool quiet;
	bool verbose;
	const char *table;
	const char *expr;
	bool nodata;
	struct imm_spec *imm;
	unsigned int n_imm;
	struct attr_spec *attr;
	unsigned int n_attr;
};

struct bmsg {
	uint32_t seq;
	bool need_ack;
	bool acked;
	char what[80];
};

struct batch {
	char *buf;
	size_t size;
	size_t len;
	bool overflow;
	unsigned int n;
	struct bmsg msg[MAX_MSGS];
};

struct kerr {
	int err;			/* positive errno */
	int idx;			/* index of the message in the batch */
	char extack[256];
};

static uint32_t next_seq;
static struct opts opt;
static unsigned char rbuf[65536];

static void usage(FILE *f)
{
	fprintf(f,
		"usage: nft_raw [options] EXPR_NAME [ATTR ...]\n"
		"  -f, --family ip|ip6|inet|bridge|arp|netdev  table family (default inet)\n"
		"  -H, --hook HOOK     prerouting|input|forward|output|postrouting or a\n"
		"                      number (default prerouting); \"none\" = regular chain\n"
		"  -p, --priority N    base chain priority (default -150)\n"
		"  -i, --imm REG=HEX   load HEX into register REG first (may repeat)\n"
		"  -j, --jump-from HOOK  base chain on HOOK jumping to the (-H none) chain\n"
		"  -k, --keep          keep the table after success\n"
		"  -d, --dump          dump the rule back after success\n"
		"  -t, --table NAME    table name (default nftraw)\n"
		"  -T, --type TYPE     base chain type: filter (default), nat, route\n"
		"  -q                  print nothing on success\n"
		"  -v                  trace every acknowledgment on stderr\n"
		"ATTR: NUM=u8:V NUM=u16:V NUM=u32:V NUM=u64:V NUM=hex:BYTES NUM=empty\n"
		"      tproxy: family=V reg_addr=V reg_port=V\n"
		"      socket: key=V dreg=V level=V\n"
		"      nodata  (no NFTA_EXPR_DATA at all)\n");
}

static void __attribute__((format(printf, 1, 2))) die_usage(const char *fmt,
							    ...)
{
	va_list ap;

	fputs("nft_raw: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_LOCAL);
}

static const char *errno_name(int err)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || \
			   (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	const char *name = strerrorname_np(err);

	return name ? name : "UNKNOWN";
#else
	static const struct {
		int err;
		const char *name;
	} tbl[] = {
		{ EPERM, "EPERM" },		{ ENOENT, "ENOENT" },
		{ E2BIG, "E2BIG" },		{ EBADF, "EBADF" },
		{ EAGAIN, "EAGAIN" },		{ ENOMEM, "ENOMEM" },
		{ EBUSY, "EBUSY" },		{ EEXIST, "EEXIST" },
		{ ENODEV, "ENODEV" },		{ EINVAL, "EINVAL" },
		{ ENOSPC, "ENOSPC" },		{ ERANGE, "ERANGE" },
		{ ENAMETOOLONG, "ENAMETOOLONG" },
		{ ELOOP, "ELOOP" },		{ ENODATA, "ENODATA" },
		{ EPROTO, "EPROTO" },		{ EOVERFLOW, "EOVERFLOW" },
		{ EMSGSIZE, "EMSGSIZE" },
		{ EPROTONOSUPPORT, "EPROTONOSUPPORT" },
		{ EOPNOTSUPP, "EOPNOTSUPP" },
		{ EAFNOSUPPORT, "EAFNOSUPPORT" },
		{ ENOBUFS, "ENOBUFS" },
		{ ETIMEDOUT, "ETIMEDOUT" },
		{ EMLINK, "EMLINK" },		{ ENOTSUP, "ENOTSUP" },
	};
	size_t i;

	for (i = 0; i < sizeof(tbl) / sizeof(tbl[0]); i++)
		if (tbl[i].err == err)
			return tbl[i].name;
	return "UNKNOWN";
#endif
}

/* Unsigned number, decimal or 0x-hex, at most @max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	int base = 10;
	char *end;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!isxdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

/* Like parse_u64, but "-N" gives the two's complement in @bits bits. */
static bool parse_num(const char *s, unsigned int bits, uint64_t *out)
{
	uint64_t max = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
	uint64_t v;

	if (s[0] == '-') {
		if (!parse_u64(s + 1, (max >> 1) + 1, &v))
			return false;
		*out = (0 - v) & max;
		return true;
	}
	return parse_u64(s, max, out);
}

static bool parse_hex(const char *s, unsigned char *buf, size_t *len)
{
	size_t n = strlen(s), i;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		n -= 2;
	}
	if (n % 2 || n / 2 > MAX_HEX)
		return false;
	for (i = 0; i < n / 2; i++) {
		char byte[3] = { s[2 * i], s[2 * i + 1], 0 };

		if (!isxdigit((unsigned char)byte[0]) ||
		    !isxdigit((unsigned char)byte[1]))
			return false;
		buf[i] = strtoul(byte, NULL, 16);
	}
	*len = n / 2;
	return true;
}

static int family_by_name(const char *name)
{
	static const struct {
		const char *name;
		int family;
	} tbl[] = {
		{ "ip", NFPROTO_IPV4 },
		{ "ip6", NFPROTO_IPV6 },
		{ "inet", NFPROTO_INET },
		{ "bridge", NFPROTO_BRIDGE },
		{ "arp", NFPROTO_ARP },
		{ "netdev", NFPROTO_NETDEV },
	};
	size_t i;

	for (i = 0; i < sizeof(tbl) / sizeof(tbl[0]); i++)
		if (!strcmp(tbl[i].name, name))
			return tbl[i].family;
	return -1;
}

/* Hook number for @name in @family; a plain number is taken as is. */
static bool hook_by_name(uint8_t family, const char *name, uint32_t *hook)
{
	static const char * const inet_hooks[] = {
		"prerouting", "input", "forward", "output", "postrouting",
	};
	uint64_t v;
	size_t i;

	if (parse_u64(name, UINT32_MAX, &v)) {
		*hook = v;
		return true;
	}
	if (family == NFPROTO_ARP) {
		if (!strcmp(name, "input"))
			*hook = NF_ARP_IN;
		else if (!strcmp(name, "output"))
			*hook = NF_ARP_OUT;
		else
			return false;
		return true;
	}
	/* ip, ip6, inet and bridge share the NF_INET_* numbering. */
	for (i = 0; i < sizeof(inet_hooks) / sizeof(inet_hooks[0]); i++) {
		if (!strcmp(inet_hooks[i], name)) {
			*hook = i;
			return true;
		}
	}
	return false;
}

static int named_attr(const char *expr, const char *name)
{
	static const struct {
		const char *expr;
		const char *name;
		int type;
	} tbl[] = {
		{ "tproxy", "family", NFTA_TPROXY_FAMILY },
		{ "tproxy", "reg_addr", NFTA_TPROXY_REG_ADDR },
		{ "tproxy", "reg_port", NFTA_TPROXY_REG_PORT },
		{ "socket", "key", NFTA_SOCKET_KEY },
		{ "socket", "dreg", NFTA_SOCKET_DREG },
		{ "socket", "level", NFTA_SOCKET_LEVEL },
	};
	size_t i;

	for (i = 0; i < sizeof(tbl) / sizeof(tbl[0]); i++)
		if (!strcmp(tbl[i].expr, expr) && !strcmp(tbl[i].name, name))
			return tbl[i].type;
	return -1;
}

/*
 * NUM=u32:V, NUM=hex:BYTES, NUM=empty, ... or NAME=V (u32) for the named
 * shortcuts; a named shortcut also takes the typed forms.
 */
static void parse_attr(const char *expr, const char *arg,
		       struct attr_spec *a)
{
	static const struct {
		const char *prefix;
		enum attr_kind kind;
		unsigned int bits;
	} kinds[] = {
		{ "u8:", AK_U8, 8 },	{ "u16:", AK_U16, 16 },
		{ "u32:", AK_U32, 32 },	{ "u64:", AK_U64, 64 },
	};
	const char *eq = strchr(arg, '=');
	const char *val;
	char key[64];
	uint64_t v;
	bool named;
	size_t i;
	int t;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key))
		die_usage("bad attribute '%s'", arg);
	memcpy(key, arg, eq - arg);
	key[eq - arg] = '\0';
	val = eq + 1;

	memset(a, 0, sizeof(*a));
	named = !isdigit((unsigned char)key[0]);
	if (named) {
		t = named_attr(expr, key);
		if (t < 0)
			die_usage("no attribute named '%s' for expression '%s'",
				  key, expr);
		a->type = t;
	} else {
		if (!parse_u64(key, UINT16_MAX, &v))
			die_usage("bad attribute number in '%s'", arg);
		a->type = v;
	}

	if (!strcmp(val, "empty")) {
		a->kind = AK_EMPTY;
		return;
	}
	if (!strncmp(val, "hex:", 4)) {
		a->kind = AK_HEX;
		if (!parse_hex(val + 4, a->data, &a->len))
			die_usage("bad hex bytes in '%s' (at most %d bytes)",
				  arg, MAX_HEX);
		return;
	}
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t plen = strlen(kinds[i].prefix);

		if (strncmp(val, kinds[i].prefix, plen))
			continue;
		a->kind = kinds[i].kind;
		if (!parse_num(val + plen, kinds[i].bits, &a->val))
			die_usage("bad value in '%s'", arg);
		return;
	}
	if (!named)
		die_usage("'%s': want NUM=uN:VALUE, NUM=hex:BYTES or NUM=empty",
			  arg);
	a->kind = AK_U32;
	if (!parse_num(val, 32, &a->val))
		die_usage("bad value in '%s'", arg);
}

static void parse_imm(const char *arg, struct imm_spec *imm)
{
	const char *eq = strchr(arg, '=');
	char reg[16];
	uint64_t v;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(reg))
		die_usage("bad immediate '%s', want REG=HEX", arg);
	memcpy(reg, arg, eq - arg);
	reg[eq - arg] = '\0';
	if (!parse_u64(reg, UINT32_MAX, &v))
		die_usage("bad register in '%s'", arg);
	imm->reg = v;
	if (!parse_hex(eq + 1, imm->data, &imm->len) || !imm->len)
		die_usage("bad hex data in '%s' (1..%d bytes)", arg, MAX_HEX);
}

/* ---- batch construction ------------------------------------------- */

static size_t room(const struct batch *b, const struct nlmsghdr *nlh)
{
	return b->buf + b->size - (const char *)nlh;
}

static struct nlmsghdr *msg_start(struct batch *b, uint16_t type,
				  uint8_t family, uint16_t flags,
				  uint16_t res_id, bool need_ack,
				  const char *what)
{
	size_t need = MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg));
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	struct bmsg *m;

	if (b->overflow || b->size - b->len < need || b->n == MAX_MSGS) {
		b->overflow = true;
		return NULL;
	}
	nlh = mnl_nlmsg_put_header(b->buf + b->len);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	nlh->nlmsg_seq = next_seq++;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = htons(res_id);

	m = &b->msg[b->n++];
	m->seq = nlh->nlmsg_seq;
	m->need_ack = need_ack;
	m->acked = false;
	snprintf(m->what, sizeof(m->what), "%s", what);
	return nlh;
}

static void msg_end(struct batch *b, struct nlmsghdr *nlh)
{
	if (nlh && !b->overflow)
		b->len += nlh->nlmsg_len;
}

static struct nlmsghdr *nft_msg(struct batch *b, uint8_t cmd, uint8_t family,
				uint16_t flags, const char *what)
{
	return msg_start(b, (NFNL_SUBSYS_NFTABLES << 8) | cmd, family, flags,
			 0, true, what);
}

static void put(struct batch *b, struct nlmsghdr *nlh, uint16_t type,
		size_t len, const void *data)
{
	if (!nlh || b->overflow)
		return;
	if (!mnl_attr_put_check(nlh, room(b, nlh), type, len, data))
		b->overflow = true;
}

static void put_be32(struct batch *b, struct nlmsghdr *nlh, uint16_t type,
		     uint32_t v)
{
	v = htonl(v);
	put(b, nlh, type, sizeof(v), &v);
}

static void put_str(struct batch *b, struct nlmsghdr *nlh, uint16_t type,
		    const char *s)
{
	put(b, nlh, type, strlen(s) + 1, s);
}

static struct nlattr *nest_start(struct batch *b, struct nlmsghdr *nlh,
				 uint16_t type)
{
	struct nlattr *nest;

	if (!nlh || b->overflow)
		return NULL;
	nest = mnl_attr_nest_start_check(nlh, room(b, nlh), type);
	if (!nest)
		b->overflow = true;
	return nest;
}

static void nest_end(struct batch *b, struct nlmsghdr *nlh,
		     struct nlattr *nest)
{
	if (nest && !b->overflow)
		mnl_attr_nest_end(nlh, nest);
}

static void batch_begin(struct batch *b)
{
	struct nlmsghdr *nlh;

	nlh = msg_start(b, NFNL_MSG_BATCH_BEGIN, AF_UNSPEC, 0,
			NFNL_SUBSYS_NFTABLES, false, "BATCH_BEGIN");
	msg_end(b, nlh);
}

static void batch_end(struct batch *b)
{
	struct nlmsghdr *nlh;

	nlh = msg_start(b, NFNL_MSG_BATCH_END, AF_UNSPEC, 0,
			NFNL_SUBSYS_NFTABLES, false, "BATCH_END");
	msg_end(b, nlh);
}

static void add_table(struct batch *b, const struct opts *o)
{
	struct nlmsghdr *nlh;

	nlh = nft_msg(b, NFT_MSG_NEWTABLE, o->family, NLM_F_CREATE,
		      "NEWTABLE");
	put_str(b, nlh, NFTA_TABLE_NAME, o->table);
	msg_end(b, nlh);
}

static void add_chain(struct batch *b, const struct opts *o,
		      const char *name, bool base, uint32_t hook)
{
	struct nlmsghdr *nlh;
	struct nlattr *nest;
	char what[80];

	snprintf(what, sizeof(what), "NEWCHAIN %s (%s)", name,
		 base ? "base chain" : "regular chain");
	nlh = nft_msg(b, NFT_MSG_NEWCHAIN, o->family, NLM_F_CREATE, what);
	put_str(b, nlh, NFTA_CHAIN_TABLE, o->table);
	put_str(b, nlh, NFTA_CHAIN_NAME, name);
	if (base) {
		nest = nest_start(b, nlh, NFTA_CHAIN_HOOK);
		put_be32(b, nlh, NFTA_HOOK_HOOKNUM, hook);
		put_be32(b, nlh, NFTA_HOOK_PRIORITY, (uint32_t)o->prio);
		nest_end(b, nlh, nest);
		put_str(b, nlh, NFTA_CHAIN_TYPE, o->chain_type);
	}
	msg_end(b, nlh);
}

/* NFTA_LIST_ELEM { NFTA_EXPR_NAME "immediate", NFTA_EXPR_DATA { ... } } */
static void add_immediate(struct batch *b, struct nlmsghdr *nlh,
			  uint32_t dreg, const void *data, size_t len,
			  const char *jump_to)
{
	struct nlattr *elem, *edata, *idata, *verdict;

	elem = nest_start(b, nlh, NFTA_LIST_ELEM);
	put_str(b, nlh, NFTA_EXPR_NAME, "immediate");
	edata = nest_start(b, nlh, NFTA_EXPR_DATA);
	put_be32(b, nlh, NFTA_IMMEDIATE_DREG, dreg);
	idata = nest_start(b, nlh, NFTA_IMMEDIATE_DATA);
	if (jump_to) {
		verdict = nest_start(b, nlh, NFTA_DATA_VERDICT);
		put_be32(b, nlh, NFTA_VERDICT_CODE, (uint32_t)NFT_JUMP);
		put_str(b, nlh, NFTA_VERDICT_CHAIN, jump_to);
		nest_end(b, nlh, verdict);
	} else {
		put(b, nlh, NFTA_DATA_VALUE, len, data);
	}
	nest_end(b, nlh, idata);
	nest_end(b, nlh, edata);
	nest_end(b, nlh, elem);
}

static void put_spec(struct batch *b, struct nlmsghdr *nlh,
		     const struct attr_spec *a)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (a->kind) {
	case AK_U8:
		u8 = a->val;
		put(b, nlh, a->type, sizeof(u8), &u8);
		break;
	case AK_U16:
		u16 = htons(a->val);
		put(b, nlh, a->type, sizeof(u16), &u16);
		break;
	case AK_U32:
		u32 = htonl(a->val);
		put(b, nlh, a->type, sizeof(u32), &u32);
		break;
	case AK_U64:
		u64 = ((uint64_t)htonl(a->val & 0xffffffff) << 32) |
		      htonl(a->val >> 32);
		put(b, nlh, a->type, sizeof(u64), &u64);
		break;
	case AK_HEX:
		put(b, nlh, a->type, a->len, a->data);
		break;
	case AK_EMPTY:
		put(b, nlh, a->type, 0, NULL);
		break;
	}
}

static void add_test_rule(struct batch *b, const struct opts *o)
{
	struct nlattr *exprs, *elem, *edata;
	struct nlmsghdr *nlh;
	unsigned int i;
	char what[80];

	snprintf(what, sizeof(what), "NEWRULE %s (%s rule)", CHAIN_NAME,
		 o->expr);
	nlh = nft_msg(b, NFT_MSG_NEWRULE, o->family,
		      NLM_F_CREATE | NLM_F_APPEND, what);
	put_str(b, nlh, NFTA_RULE_TABLE, o->table);
	put_str(b, nlh, NFTA_RULE_CHAIN, CHAIN_NAME);
	exprs = nest_start(b, nlh, NFTA_RULE_EXPRESSIONS);
	for (i = 0; i < o->n_imm; i++)
		add_immediate(b, nlh, o->imm[i].reg, o->imm[i].data,
			      o->imm[i].len, NULL);
	elem = nest_start(b, nlh, NFTA_LIST_ELEM);
	put_str(b, nlh, NFTA_EXPR_NAME, o->expr);
	if (!o->nodata) {
		edata = nest_start(b, nlh, NFTA_EXPR_DATA);
		for (i = 0; i < o->n_attr; i++)
			put_spec(b, nlh, &o->attr[i]);
		nest_end(b, nlh, edata);
	}
	nest_end(b, nlh, elem);
	nest_end(b, nlh, exprs);
	msg_end(b, nlh);
}

static void add_jump_rule(struct batch *b, const struct opts *o)
{
	struct nlmsghdr *nlh;
	struct nlattr *exprs;

	nlh = nft_msg(b, NFT_MSG_NEWRULE, o->family,
		      NLM_F_CREATE | NLM_F_APPEND,
		      "NEWRULE " JUMP_CHAIN_NAME " (jump " CHAIN_NAME " rule)");
	put_str(b, nlh, NFTA_RULE_TABLE, o->table);
	put_str(b, nlh, NFTA_RULE_CHAIN, JUMP_CHAIN_NAME);
	exprs = nest_start(b, nlh, NFTA_RULE_EXPRESSIONS);
	add_immediate(b, nlh, NFT_REG_VERDICT, NULL, 0, CHAIN_NAME);
	nest_end(b, nlh, exprs);
	msg_end(b, nlh);
}

static void build_test_batch(struct batch *b, const struct opts *o)
{
	batch_begin(b);
	add_table(b, o);
	add_chain(b, o, CHAIN_NAME, o->base, o->hook);
	add_test_rule(b, o);
	if (o->jump) {
		add_chain(b, o, JUMP_CHAIN_NAME, true, o->jump_hook);
		add_jump_rule(b, o);
	}
	batch_end(b);
}

static void build_cleanup_batch(struct batch *b, const struct opts *o)
{
	struct nlmsghdr *nlh;

	batch_begin(b);
	nlh = nft_msg(b, NFT_MSG_DELTABLE, o->family, 0, "DELTABLE");
	put_str(b, nlh, NFTA_TABLE_NAME, o->table);
	msg_end(b, nlh);
	batch_end(b);
}

/* ---- talking to the kernel ---------------------------------------- */

static int extack_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	uint16_t type = mnl_attr_get_type(attr);

	if (type <= NLMSGERR_ATTR_MAX)
		tb[type] = attr;
	return MNL_CB_OK;
}

static void parse_extack(const struct nlmsghdr *nlh, struct kerr *ke,
			 bool verbose)
{
	const struct nlattr *tb[NLMSGERR_ATTR_MAX + 1] = { NULL };
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	size_t hlen = sizeof(*e);

	ke->extack[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED))
		hlen += mnl_nlmsg_get_payload_len(&e->msg);
	if (mnl_attr_parse(nlh, hlen, extack_cb, tb) != MNL_CB_OK)
		return;
	if (tb[NLMSGERR_ATTR_MSG] &&
	    mnl_attr_validate(tb[NLMSGERR_ATTR_MSG], MNL_TYPE_NUL_STRING) == 0)
		snprintf(ke->extack, sizeof(ke->extack), "%s",
			 mnl_attr_get_str(tb[NLMSGERR_ATTR_MSG]));
	if (verbose && tb[NLMSGERR_ATTR_OFFS] &&
	    mnl_attr_validate(tb[NLMSGERR_ATTR_OFFS], MNL_TYPE_U32) == 0)
		fprintf(stderr, "nft_raw: extack offset %u\n",
			mnl_attr_get_u32(tb[NLMSGERR_ATTR_OFFS]));
}

static int find_msg(const struct batch *b, uint32_t seq)
{
	unsigned int i;

	for (i = 0; i < b->n; i++)
		if (b->msg[i].seq == seq)
			return i;
	return -1;
}

/* One reply to a batch; records the first error in @ke. */
static void handle_reply(struct batch *b, const struct nlmsghdr *nlh,
			 struct kerr *ke, unsigned int *pending, bool *failed,
			 bool verbose)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	int idx = find_msg(b, nlh->nlmsg_seq);
	int err;

	if (nlh->nlmsg_type != NLMSG_ERROR ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*e)) {
		if (verbose)
			fprintf(stderr,
				"nft_raw: ignoring message type %u seq %u\n",
				nlh->nlmsg_type, nlh->nlmsg_seq);
		return;
	}
	err = -e->error;
	if (verbose)
		fprintf(stderr, "nft_raw: ack %s: %d (%s)\n",
			idx < 0 ? "?" : b->msg[idx].what, err,
			err ? errno_name(err) : "ok");
	if (idx < 0)
		return;
	if (!err) {
		if (b->msg[idx].need_ack && !b->msg[idx].acked) {
			b->msg[idx].acked = true;
			(*pending)--;
		}
		return;
	}
	if (*failed)
		return;
	*failed = true;
	ke->err = err;
	ke->idx = idx;
	parse_extack(nlh, ke, verbose);
}

/*
 * Send @b and read acknowledgments until every message that must be
 * acknowledged is, or until the first error.  nfnetlink delivers the
 * per-message results in batch order once the whole batch has been
 * processed; a failing commit is reported against the batch header.
 * Newer kernels also acknowledge BATCH_BEGIN and BATCH_END; those acks
 * are not waited for, but whatever is already queued is read before
 * returning so that it cannot be mistaken for the answer to a later
 * request.  Returns 0 on success, 1 with @ke filled on a kernel error,
 * -1 on a local error.
 */
static int talk(struct mnl_socket *nl, struct batch *b, struct kerr *ke,
		bool verbose)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(nl), .events = POLLIN };
	unsigned int pending = 0, i;
	bool failed = false;
	int timeout = ACK_TIMEOUT_MS;

	if (b->overflow) {
		fprintf(stderr, "nft_raw: batch too large\n");
		return -1;
	}
	for (i = 0; i < b->n; i++)
		pending += b->msg[i].need_ack;

	if (mnl_socket_sendto(nl, b->buf, b->len) < 0) {
		perror("nft_raw: sendto");
		return -1;
	}

	for (;;) {
		struct nlmsghdr *nlh;
		ssize_t n;
		int ret, len;

		/* Once answered, only drain what is already queued. */
		if (!pending || failed)
			timeout = 0;
		ret = poll(&pfd, 1, timeout);
		if (ret < 0) {
			perror("nft_raw: poll");
			return -1;
		}
		if (!ret)
			break;
		n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		if (n < 0) {
			perror("nft_raw: recvfrom");
			return -1;
		}
		len = n;
		for (nlh = (struct nlmsghdr *)rbuf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len))
			handle_reply(b, nlh, ke, &pending, &failed, verbose);
	}
	if (failed)
		return 1;
	if (pending) {
		fprintf(stderr,
			"nft_raw: timeout, %u acknowledgment(s) missing\n",
			pending);
		return -1;
	}
	return 0;
}

/* ---- dumping the rule back ---------------------------------------- */

static void print_hex(const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++)
		printf("%02x", p[i]);
}

/* immediate's NFTA_IMMEDIATE_DATA: value:HEX, else the raw payload */
static void print_imm_data(const struct nlattr *nest)
{
	const struct nlattr *a;

	mnl_attr_for_each_nested(a, nest) {
		if (mnl_attr_get_type(a) == NFTA_DATA_VALUE) {
			printf("value:");
			print_hex(mnl_attr_get_payload(a),
				  mnl_attr_get_payload_len(a));
			return;
		}
	}
	print_hex(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest));
}

static void print_expr(const struct nlattr *elem)
{
	const struct nlattr *a, *name = NULL, *data = NULL;

	mnl_attr_for_each_nested(a, elem) {
		if (mnl_attr_get_type(a) == NFTA_EXPR_NAME)
			name = a;
		else if (mnl_attr_get_type(a) == NFTA_EXPR_DATA)
			data = a;
	}
	printf("expr %s",
	       name && !mnl_attr_validate(name, MNL_TYPE_NUL_STRING) ?
	       mnl_attr_get_str(name) : "?");
	if (data) {
		bool imm = name &&
			   !mnl_attr_validate(name, MNL_TYPE_NUL_STRING) &&
			   !strcmp(mnl_attr_get_str(name), "immediate");

		mnl_attr_for_each_nested(a, data) {
			uint16_t type = mnl_attr_get_type(a);
			uint16_t len = mnl_attr_get_payload_len(a);

			printf(" %u=", type);
			if (imm && type == NFTA_IMMEDIATE_DATA)
				print_imm_data(a);
			else if (len == 4)
				printf("0x%08x",
				       ntohl(mnl_attr_get_u32(a)));
			else
				print_hex(mnl_attr_get_payload(a), len);
		}
	}
	printf("\n");
}

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *a, *elem;
	unsigned int *nrules = data;

	(*nrules)++;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) != NFTA_RULE_EXPRESSIONS)
			continue;
		mnl_attr_for_each_nested(elem, a)
			if (mnl_attr_get_type(elem) == NFTA_LIST_ELEM)
				print_expr(elem);
	}
	return MNL_CB_OK;
}

/* One reply to the rule dump: 1 when the dump is over, -1 on error. */
static int dump_reply(const struct nlmsghdr *nlh, uint32_t seq,
		      unsigned int portid, unsigned int *nrules)
{
	const struct nlmsgerr *e;

	/* Late acks of the batch, if any, are not ours. */
	if (nlh->nlmsg_seq != seq || nlh->nlmsg_pid != portid)
		return 0;

	switch (nlh->nlmsg_type) {
	case NLMSG_DONE:
		return 1;
	case NLMSG_ERROR:
		e = mnl_nlmsg_get_payload(nlh);
		if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*e)) {
			fprintf(stderr, "nft_raw: truncated dump error\n");
			return -1;
		}
		if (!e->error)
			return 1;
		fprintf(stderr, "nft_raw: rule dump failed: %s\n",
			strerror(-e->error));
		return -1;
	case (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE:
		rule_cb(nlh, nrules);
		break;
	}
	return 0;
}

static int dump_rule(struct mnl_socket *nl, const struct opts *o)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(nl), .events = POLLIN };
	unsigned int portid = mnl_socket_get_portid(nl);
	unsigned int nrules = 0;
	struct nlmsghdr *nlh;
	struct nfgenmsg *nfg;
	char buf[1024] = { 0 };
	uint32_t seq;
	int ret = 0;

	if (strlen(o->table) > 256) {
		fprintf(stderr, "nft_raw: table name too long for -d\n");
		return -1;
	}
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	seq = next_seq++;
	nlh->nlmsg_seq = seq;
	nfg = mnl_nlmsg_put_extra_header(nlh, sizeof(*nfg));
	nfg->nfgen_family = o->family;
	nfg->version = NFNETLINK_V0;
	nfg->res_id = 0;
	mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, o->table);
	mnl_attr_put_strz(nlh, NFTA_RULE_CHAIN, CHAIN_NAME);

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		perror("nft_raw: sendto");
		return -1;
	}
	while (!ret) {
		ssize_t n;
		int len;

		if (poll(&pfd, 1, ACK_TIMEOUT_MS) <= 0) {
			fprintf(stderr, "nft_raw: rule dump timed out\n");
			return -1;
		}
		n = mnl_socket_recvfrom(nl, rbuf, sizeof(rbuf));
		if (n < 0) {
			perror("nft_raw: recvfrom");
			return -1;
		}
		len = n;
		for (nlh = (struct nlmsghdr *)rbuf;
		     !ret && mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len))
			ret = dump_reply(nlh, seq, portid, &nrules);
	}
	if (ret < 0)
		return -1;
	if (nrules != 1) {
		fprintf(stderr, "nft_raw: rule dump returned %u rules\n",
			nrules);
		return -1;
	}
	return 0;
}

/* ---- main ---------------------------------------------------------- */

static void free_opts(void)
{
	free(opt.imm);
	free(opt.attr);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "family", required_argument, NULL, 'f' },
		{ "hook", required_argument, NULL, 'H' },
		{ "priority", required_argument, NULL, 'p' },
		{ "imm", required_argument, NULL, 'i' },
		{ "jump-from", required_argument, NULL, 'j' },
		{ "keep", no_argument, NULL, 'k' },
		{ "dump", no_argument, NULL, 'd' },
		{ "table", required_argument, NULL, 't' },
		{ "type", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *jump_name = NULL;
	uint64_t v;
	int c, f, i;

	memset(o, 0, sizeof(*o));
	o->family_name = "inet";
	o->hook_name = "prerouting";
	o->prio = -150;
	o->table = "nftraw";
	o->chain_type = "filter";
	o->imm = calloc(argc, sizeof(*o->imm));
	o->attr = calloc(argc, sizeof(*o->attr));
	if (!o->imm || !o->attr)
		die_usage("out of memory");
	atexit(free_opts);

	while ((c = getopt_long(argc, argv, "f:H:p:i:j:kdt:T:qvh", lopts,
				NULL)) != -1) {
		switch (c) {
		case 'f':
			o->family_name = optarg;
			break;
		case 'H':
			o->hook_name = optarg;
			break;
		case 'p':
			if (!parse_num(optarg, 32, &v))
				die_usage("bad priority '%s'", optarg);
			o->prio = (int32_t)(uint32_t)v;
			break;
		case 'i':
			parse_imm(optarg, &o->imm[o->n_imm++]);
			break;
		case 'j':
			jump_name = optarg;
			break;
		case 'k':
			o->keep = true;
			break;
		case 'd':
			o->dump = true;
			break;
		case 't':
			o->table = optarg;
			break;
		case 'T':
			o->chain_type = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(EXIT_LOCAL);
		}
	}
	if (optind >= argc) {
		usage(stderr);
		exit(EXIT_LOCAL);
	}

	f = family_by_name(o->family_name);
	if (f < 0)
		die_usage("unknown family '%s'", o->family_name);
	o->family = f;

	o->base = strcmp(o->hook_name, "none") != 0;
	if (o->base && !hook_by_name(o->family, o->hook_name, &o->hook))
		die_usage("hook '%s' does not exist in family %s",
			  o->hook_name, o->family_name);
	if (jump_name) {
		if (o->base)
			die_usage("-j needs a regular rule chain (-H none)");
		if (!hook_by_name(o->family, jump_name, &o->jump_hook))
			die_usage("hook '%s' does not exist in family %s",
				  jump_name, o->family_name);
		o->jump = true;
	}
	if (o->family == NFPROTO_NETDEV && (o->base || o->jump))
		die_usage("netdev base chains need a device: use -H none");

	o->expr = argv[optind++];
	for (i = optind; i < argc; i++) {
		if (!strcmp(argv[i], "nodata")) {
			o->nodata = true;
			continue;
		}
		parse_attr(o->expr, argv[i], &o->attr[o->n_attr++]);
	}
	if (o->nodata && o->n_attr)
		die_usage("'nodata' cannot be combined with attributes");
}

static struct mnl_socket *open_socket(void)
{
	struct mnl_socket *nl;
	int one = 1;

	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (!nl) {
		perror("nft_raw: mnl_socket_open");
		return NULL;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		perror("nft_raw: mnl_socket_bind");
		mnl_socket_close(nl);
		return NULL;
	}
	/* Extended acks are best effort: old kernels lack them. */
	mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	return nl;
}

static bool batch_init(struct batch *b, size_t size)
{
	memset(b, 0, sizeof(*b));
	b->buf = calloc(1, size);
	b->size = size;
	return !!b->buf;
}

int main(int argc, char **argv)
{
	struct mnl_socket *nl;
	const struct opts *o = &opt;
	struct kerr ke = { 0 };
	struct batch b;
	size_t argbytes = 0;
	int i, ret, status = 0;

	parse_args(argc, argv, &opt);
	for (i = 0; i < argc; i++)
		argbytes += strlen(argv[i]) + 1;

	next_seq = time(NULL);
	nl = open_socket();
	if (!nl)
		return EXIT_LOCAL;
	if (!batch_init(&b, 16384 + 8 * argbytes)) {
		fprintf(stderr, "nft_raw: out of memory\n");
		status = EXIT_LOCAL;
		goto out;
	}

	build_test_batch(&b, o);
	ret = talk(nl, &b, &ke, o->verbose);
	if (ret < 0) {
		status = EXIT_LOCAL;
		goto out_batch;
	}
	if (ret > 0) {
		printf("ERR %s %d\n", errno_name(ke.err), ke.err);
		if (ke.extack[0])
			fprintf(stderr, "extack: %s\n", ke.extack);
		fprintf(stderr, "nft_raw: error on message %d of %u: %s\n",
			ke.idx + 1, b.n, b.msg[ke.idx].what);
		status = EXIT_ERR;
		goto out_batch;
	}

	if (!o->quiet)
		printf("OK\n");
	fflush(stdout);
	if (o->dump && dump_rule(nl, o) < 0)
		status = EXIT_LOCAL;
	fflush(stdout);

	if (!o->keep) {
		free(b.buf);
		if (!batch_init(&b, 16384 + 8 * argbytes)) {
			fprintf(stderr, "nft_raw: out of memory\n");
			status = EXIT_LOCAL;
			goto out;
		}
		build_cleanup_batch(&b, o);
		ret = talk(nl, &b, &ke, o->verbose);
		if (ret > 0)
			fprintf(stderr, "nft_raw: cleanup failed: %s %d\n",
				errno_name(ke.err), ke.err);
		if (ret)
			status = EXIT_LOCAL;
	}
out_batch:
	free(b.buf);
out:
	mnl_socket_close(nl);
	fflush(stdout);
	return status;
}
