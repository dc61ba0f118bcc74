// SPDX-License-Identifier: GPL-2.0
/*
 * nf_tables "socket" expression: loads a property of the local socket a
 * packet belongs to (transparent, mark, wildcard bind, cgroupv2 ancestor)
 * into a register.
 *
 * Same netlink ABI and behaviour as the in-tree nft_socket, self-contained:
 * it needs neither nf_socket_ipv{4,6} nor udp{4,6}_lib_lookup().
 */
#include <linux/module.h>
#include <linux/cgroup.h>
#include <linux/icmp.h>
#include <linux/netfilter/nf_tables.h>
#include <net/netfilter/nf_tables.h>
#include <net/netfilter/nf_tables_core.h>
#include <net/inet_sock.h>
#include <net/icmp.h>
#include <net/tcp.h>
#include <net/udp.h>
#include <net/ipv6.h>
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
#include <net/netfilter/nf_conntrack.h>
#endif

#include "nft_oot.h"

struct nft_socket {
	enum nft_socket_keys	key:8;
	u8			level;		/* absolute cgroupv2 level */
	u8			level_user;	/* level as userspace gave it */
	u8			len;
	u8			dreg;
};

/* The tuple to look a local socket up with, seen from the packet. */
struct nft_socket_tuple {
	u8			protocol;
	__be16			sport;
	__be16			dport;
	struct sk_buff		*skb;	/* for reuseport, NULL for ICMP */
	int			doff;
};

/*
 * ICMP errors quote the packet that our side sent: its source is the local
 * end, so the lookup swaps the quoted addresses and ports.
 */
static bool nft_socket_icmp4_tuple(const struct sk_buff *skb,
				   struct nft_socket_tuple *t,
				   __be32 *saddr, __be32 *daddr)
{
	unsigned int off = ip_hdrlen(skb);
	struct iphdr _inner, *inner;
	struct icmphdr _icmph, *icmph;
	__be16 _ports[2], *ports;

	icmph = skb_header_pointer(skb, off, sizeof(_icmph), &_icmph);
	if (!icmph || !icmp_is_err(icmph->type))
		return false;

	off += sizeof(_icmph);
	inner = skb_header_pointer(skb, off, sizeof(_inner), &_inner);
	if (!inner || (inner->protocol != IPPROTO_TCP &&
		       inner->protocol != IPPROTO_UDP))
		return false;

	ports = skb_header_pointer(skb, off + (inner->ihl << 2),
				   sizeof(_ports), &_ports);
	if (!ports)
		return false;

	t->protocol = inner->protocol;
	*saddr = inner->daddr;
	t->sport = ports[1];
	*daddr = inner->saddr;
	t->dport = ports[0];
	return true;
}

static struct sock *nft_socket_lookup_v4(struct net *net,
					 struct sk_buff *skb,
					 const struct net_device *indev)
{
	const struct iphdr *iph = ip_hdr(skb);
	struct nft_socket_tuple t = {};
	__be32 saddr, daddr;
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	enum ip_conntrack_info ctinfo;
	const struct nf_conn *ct;
#endif

	/* Non-first fragments have no ports. */
	if (iph->frag_off & htons(IP_OFFSET))
		return NULL;

	if (iph->protocol == IPPROTO_TCP || iph->protocol == IPPROTO_UDP) {
		struct tcphdr _th;
		struct udphdr *hp;

		hp = skb_header_pointer(skb, ip_hdrlen(skb),
					iph->protocol == IPPROTO_UDP ?
					sizeof(*hp) : sizeof(_th), &_th);
		if (!hp)
			return NULL;

		t.protocol = iph->protocol;
		saddr = iph->saddr;
		t.sport = hp->source;
		daddr = iph->daddr;
		t.dport = hp->dest;
		t.skb = skb;
		t.doff = ip_hdrlen(skb) + (iph->protocol == IPPROTO_TCP ?
					   __tcp_hdrlen((struct tcphdr *)hp) :
					   sizeof(*hp));
	} else if (iph->protocol == IPPROTO_ICMP) {
		if (!nft_socket_icmp4_tuple(skb, &t, &saddr, &daddr))
			return NULL;
	} else {
		return NULL;
	}

#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	/*
	 * A reply of a source-NATed connection is addressed to the NAT
	 * address: the local socket is bound to the original source.
	 */
	ct = nf_ct_get(skb, &ctinfo);
	if (ct && (ct->status & IPS_SRC_NAT_DONE) &&
	    ((iph->protocol != IPPROTO_ICMP &&
	      ctinfo == IP_CT_ESTABLISHED_REPLY) ||
	     (iph->protocol == IPPROTO_ICMP &&
	      ctinfo == IP_CT_RELATED_REPLY))) {
		const struct nf_conntrack_tuple *orig;

		orig = &ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple;
		daddr = orig->src.u3.ip;
		t.dport = t.protocol == IPPROTO_TCP ? orig->src.u.tcp.port :
						      orig->src.u.udp.port;
	}
#endif

	switch (t.protocol) {
	case IPPROTO_TCP: {
		struct sock *sk;

		sk = nft_sk_tcp4_established(net, saddr, t.sport, daddr,
					     t.dport, indev->ifindex);
		if (sk)
			return sk;
		return nft_sk_tcp4_listener(net, t.skb, t.doff, saddr, t.sport,
					    daddr, t.dport, indev->ifindex);
	}
	case IPPROTO_UDP:
		return nft_sk_udp4_lookup(net, saddr, t.sport, daddr, t.dport,
					  indev->ifindex);
	}
	return NULL;
}

#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
static bool nft_socket_icmp6_tuple(const struct sk_buff *skb,
				   unsigned int off,
				   struct nft_socket_tuple *t,
				   struct ipv6hdr *inner,
				   const struct in6_addr **saddr,
				   const struct in6_addr **daddr)
{
	struct icmp6hdr _icmph, *icmph;
	__be16 _ports[2], *ports;
	__be16 inner_fragoff;
	u8 inner_nexthdr;
	int inner_off;

	icmph = skb_header_pointer(skb, off, sizeof(_icmph), &_icmph);
	if (!icmph || (icmph->icmp6_type & ICMPV6_INFOMSG_MASK))
		return false;

	off += sizeof(_icmph);
	if (skb_copy_bits(skb, off, inner, sizeof(*inner)) < 0)
		return false;

	inner_nexthdr = inner->nexthdr;
	inner_off = ipv6_skip_exthdr(skb, off + sizeof(*inner),
				     &inner_nexthdr, &inner_fragoff);
	if (inner_off < 0 || (inner_nexthdr != IPPROTO_TCP &&
			      inner_nexthdr != IPPROTO_UDP))
		return false;

	ports = skb_header_pointer(skb, inner_off, sizeof(_ports), &_ports);
	if (!ports)
		return false;

	t->protocol = inner_nexthdr;
	*saddr = &inner->daddr;
	t->sport = ports[1];
	*daddr = &inner->saddr;
	t->dport = ports[0];
	return true;
}

static struct sock *nft_socket_lookup_v6(struct net *net,
					 struct sk_buff *skb,
					 const struct net_device *indev)
{
	const struct in6_addr *saddr, *daddr;
	const struct ipv6hdr *iph = ipv6_hdr(skb);
	struct nft_socket_tuple t = {};
	unsigned short fragoff = 0;
	struct ipv6hdr inner;
	int thoff = 0;
	int tproto;
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	enum ip_conntrack_info ctinfo;
	const struct nf_conn *ct;
#endif

	/* fragoff is set for non-first fragments only: they have no ports. */
	tproto = ipv6_find_hdr(skb, &thoff, -1, &fragoff, NULL);
	if (tproto < 0 || fragoff)
		return NULL;

	if (tproto == IPPROTO_TCP || tproto == IPPROTO_UDP) {
		struct tcphdr _th;
		struct udphdr *hp;

		hp = skb_header_pointer(skb, thoff, tproto == IPPROTO_UDP ?
					sizeof(*hp) : sizeof(_th), &_th);
		if (!hp)
			return NULL;

		t.protocol = tproto;
		saddr = &iph->saddr;
		t.sport = hp->source;
		daddr = &iph->daddr;
		t.dport = hp->dest;
		t.skb = skb;
		t.doff = thoff + (tproto == IPPROTO_TCP ?
				  __tcp_hdrlen((struct tcphdr *)hp) :
				  sizeof(*hp));
	} else if (tproto == IPPROTO_ICMPV6) {
		if (!nft_socket_icmp6_tuple(skb, thoff, &t, &inner,
					    &saddr, &daddr))
			return NULL;
	} else {
		return NULL;
	}

#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	ct = nf_ct_get(skb, &ctinfo);
	if (ct && (ct->status & IPS_SRC_NAT_DONE) &&
	    ((tproto != IPPROTO_ICMPV6 &&
	      ctinfo == IP_CT_ESTABLISHED_REPLY) ||
	     (tproto == IPPROTO_ICMPV6 &&
	      ctinfo == IP_CT_RELATED_REPLY))) {
		const struct nf_conntrack_tuple *orig;

		orig = &ct->tuplehash[IP_CT_DIR_ORIGINAL].tuple;
		daddr = &orig->src.u3.in6;
		t.dport = t.protocol == IPPROTO_TCP ? orig->src.u.tcp.port :
						      orig->src.u.udp.port;
	}
#endif

	switch (t.protocol) {
	case IPPROTO_TCP: {
		struct sock *sk;

		sk = nft_sk_tcp6_established(net, saddr, t.sport, daddr,
					     t.dport, indev->ifindex);
		if (sk)
			return sk;
		return nft_sk_tcp6_listener(net, t.skb, t.doff, saddr, t.sport,
					    daddr, t.dport, indev->ifindex);
	}
	case IPPROTO_UDP:
		return nft_sk_udp6_lookup(net, saddr, t.sport, daddr, t.dport,
					  indev->ifindex);
	}
	return NULL;
}
#endif

/* Returns a referenced socket, or NULL. */
static struct sock *nft_socket_do_lookup(const struct nft_pktinfo *pkt)
{
	const struct net_device *indev = nft_in(pkt);

	/* Output has no input device; the sending socket is skb->sk there. */
	if (!indev)
		return NULL;

	switch (nft_pf(pkt)) {
	case NFPROTO_IPV4:
		return nft_socket_lookup_v4(nft_net(pkt), pkt->skb, indev);
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		return nft_socket_lookup_v6(nft_net(pkt), pkt->skb, indev);
#endif
	}
	return NULL;
}

static bool nft_socket_wildcard(const struct nft_pktinfo *pkt,
				const struct sock *sk, u32 *dest)
{
	switch (nft_pf(pkt)) {
	case NFPROTO_IPV4:
		nft_reg_store8(dest, inet_sk(sk)->inet_rcv_saddr == 0);
		return true;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		nft_reg_store8(dest, ipv6_addr_any(&sk->sk_v6_rcv_saddr));
		return true;
#endif
	}
	return false;
}

#ifdef CONFIG_SOCK_CGROUP_DATA
static noinline bool nft_socket_cgroupv2(u32 *dest, struct sock *sk,
					 u8 level)
{
	struct cgroup *cgrp = sock_cgroup_ptr(&sk->sk_cgrp_data);
	u64 cgid;

	cgrp = cgroup_ancestor(cgrp, level);
	if (!cgrp)
		return false;
	cgid = cgroup_id(cgrp);
	memcpy(dest, &cgid, sizeof(cgid));
	return true;
}

/*
 * The level of the caller's cgroup namespace root: rule levels count from
 * there.  Process context only (current->nsproxy).
 */
static int nft_socket_cgroup_root_level(void)
{
	struct cgroup *cgrp = cgroup_get_from_path("/");
	int level;

	if (IS_ERR(cgrp))
		return PTR_ERR(cgrp);

	level = cgrp->level;
	cgroup_put(cgrp);

	return level > 255 ? -ERANGE : level;
}
#endif

static void nft_socket_eval(const struct nft_expr *expr,
			    struct nft_regs *regs,
			    const struct nft_pktinfo *pkt)
{
	const struct nft_socket *priv = nft_expr_priv(expr);
	struct sk_buff *skb = pkt->skb;
	u32 *dest = &regs->data[priv->dreg];
	struct sock *sk = skb->sk;
	bool found = true;

	/* A socket from another namespace says nothing about this one. */
	if (sk && !net_eq(nft_net(pkt), sock_net(sk)))
		sk = NULL;
	if (!sk)
		sk = nft_socket_do_lookup(pkt);
	if (!sk) {
		regs->verdict.code = NFT_BREAK;
		return;
	}

	switch (priv->key) {
	case NFT_SOCKET_TRANSPARENT:
		nft_reg_store8(dest, inet_sk_transparent(sk));
		break;
	case NFT_SOCKET_MARK:
		found = sk_fullsock(sk);
		if (found)
			*dest = READ_ONCE(sk->sk_mark);
		break;
	case NFT_SOCKET_WILDCARD:
		found = sk_fullsock(sk) && nft_socket_wildcard(pkt, sk, dest);
		break;
#ifdef CONFIG_SOCK_CGROUP_DATA
	case NFT_SOCKET_CGROUPV2:
		found = sk_fullsock(sk) &&
			nft_socket_cgroupv2(dest, sk, priv->level);
		break;
#endif
	default:
		found = false;
		break;
	}

	if (!found)
		regs->verdict.code = NFT_BREAK;

	/* Only a socket that the lookup returned holds our reference. */
	if (sk != skb->sk)
		sock_gen_put(sk);
}

static const struct nla_policy nft_socket_policy[NFTA_SOCKET_MAX + 1] = {
#ifdef HAVE_NLA_BE_RANGE
	[NFTA_SOCKET_KEY]	= NLA_POLICY_MAX(NLA_BE32, 255),
	[NFTA_SOCKET_LEVEL]	= NLA_POLICY_MAX(NLA_BE32, 255),
#else
	[NFTA_SOCKET_KEY]	= { .type = NLA_U32 },
	[NFTA_SOCKET_LEVEL]	= { .type = NLA_U32 },
#endif
	[NFTA_SOCKET_DREG]	= { .type = NLA_U32 },
};

static int nft_socket_init(const struct nft_ctx *ctx,
			   const struct nft_expr *expr,
			   const struct nlattr * const tb[])
{
	struct nft_socket *priv = nft_expr_priv(expr);
	unsigned int len;
	u32 key;

	if (!tb[NFTA_SOCKET_DREG] || !tb[NFTA_SOCKET_KEY])
		return -EINVAL;

	switch (ctx->family) {
	case NFPROTO_IPV4:
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
#endif
	case NFPROTO_INET:
		break;
	default:
		return -EOPNOTSUPP;
	}

	key = ntohl(nla_get_be32(tb[NFTA_SOCKET_KEY]));
#ifndef HAVE_NLA_BE_RANGE
	if (key > 255)
		return -ERANGE;
#endif
	switch (key) {
	case NFT_SOCKET_TRANSPARENT:
	case NFT_SOCKET_WILDCARD:
		len = sizeof(u8);
		break;
	case NFT_SOCKET_MARK:
		len = sizeof(u32);
		break;
#ifdef CONFIG_SOCK_CGROUP_DATA
	case NFT_SOCKET_CGROUPV2: {
		u32 level;
		int root;

		if (!tb[NFTA_SOCKET_LEVEL])
			return -EINVAL;

		/* The policy checks this where the kernel can. */
		level = ntohl(nla_get_be32(tb[NFTA_SOCKET_LEVEL]));
		if (level > 255)
			return -ERANGE;

		root = nft_socket_cgroup_root_level();
		if (root < 0)
			return root;

		/* Only a cgroup tree deeper than 255 levels gets here. */
		if (level + root > 255)
			return -EOPNOTSUPP;

		priv->level_user = level;
		priv->level = level + root;
		len = sizeof(u64);
		break;
	}
#endif
	default:
		return -EOPNOTSUPP;
	}

	priv->key = key;
	priv->len = len;
	return nft_parse_register_store(ctx, tb[NFTA_SOCKET_DREG], &priv->dreg,
					NULL, NFT_DATA_VALUE, len);
}

static int nft_socket_dump(struct sk_buff *skb,
			   const struct nft_expr *expr, bool reset)
{
	const struct nft_socket *priv = nft_expr_priv(expr);

	if (nla_put_be32(skb, NFTA_SOCKET_KEY, htonl(priv->key)))
		return -1;
	if (nft_dump_register(skb, NFTA_SOCKET_DREG, priv->dreg))
		return -1;
	if (priv->key == NFT_SOCKET_CGROUPV2 &&
	    nla_put_be32(skb, NFTA_SOCKET_LEVEL, htonl(priv->level_user)))
		return -1;
	return 0;
}

NFT_COMPAT_DUMP(nft_socket_dump)

static int nft_socket_validate(const struct nft_ctx *ctx,
			       const struct nft_expr *expr)
{
	if (ctx->family != NFPROTO_IPV4 &&
	    ctx->family != NFPROTO_IPV6 &&
	    ctx->family != NFPROTO_INET)
		return -EOPNOTSUPP;

	return nft_chain_validate_hooks(ctx->chain,
					(1 << NF_INET_PRE_ROUTING) |
					(1 << NF_INET_LOCAL_IN) |
					(1 << NF_INET_LOCAL_OUT));
}

NFT_COMPAT_VALIDATE(nft_socket_validate)

#ifdef HAVE_NFT_EXPR_OPS_REDUCE
/* Never elide a socket load: just forget what the register held. */
static bool nft_socket_reduce(struct nft_regs_track *track,
			      const struct nft_expr *expr)
{
	const struct nft_socket *priv = nft_expr_priv(expr);

	nft_reg_track_cancel(track, priv->dreg, priv->len);
	return false;
}
#endif

static struct nft_expr_type nft_socket_types[NFT_OOT_NTYPES];

static const struct nft_expr_ops nft_socket_ops = {
	.type		= &nft_socket_types[0],
	.size		= NFT_EXPR_SIZE(sizeof(struct nft_socket)),
	.eval		= nft_socket_eval,
	.init		= nft_socket_init,
	.dump		= nft_compat_dump(nft_socket_dump),
	.validate	= nft_compat_validate(nft_socket_validate),
#ifdef HAVE_NFT_EXPR_OPS_REDUCE
	.reduce		= nft_socket_reduce,
#endif
};

static struct nft_expr_type nft_socket_types[NFT_OOT_NTYPES] __read_mostly = {
	[0] = {
		.name		= "socket",
		.ops		= &nft_socket_ops,
		.policy		= nft_socket_policy,
		.maxattr	= NFTA_SOCKET_MAX,
		.owner		= THIS_MODULE,
	},
};

static int __init nft_socket_module_init(void)
{
	return nft_oot_register(nft_socket_types);
}

static void __exit nft_socket_module_exit(void)
{
	nft_oot_unregister(nft_socket_types, NFT_OOT_NTYPES);
}

module_init(nft_socket_module_init);
module_exit(nft_socket_module_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("nf_tables socket match support, self-contained (nft-tproxy)");
MODULE_VERSION(NFT_TPROXY_VERSION);
MODULE_ALIAS_NFT_EXPR("socket");
MODULE_ALIAS_NFT_AF_EXPR(2, "socket");
MODULE_ALIAS_NFT_AF_EXPR(10, "socket");
MODULE_ALIAS_NFT_AF_EXPR(1, "socket");
