// SPDX-License-Identifier: GPL-2.0
/*
 * nf_tables "tproxy" expression: assigns a packet to a transparent socket
 * (an established one for its own tuple, else a listener at the target
 * address and port) so that it is delivered to that socket without NAT.
 *
 * Same netlink ABI and behaviour as the in-tree nft_tproxy, self-contained:
 * it needs neither nf_tproxy_ipv{4,6} nor udp{4,6}_lib_lookup().
 */
#include <linux/module.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/inetdevice.h>
#include <net/netfilter/nf_tables.h>
#include <net/netfilter/nf_tables_core.h>
#include <net/netfilter/ipv4/nf_defrag_ipv4.h>
#include <net/inet_sock.h>
#include <net/tcp.h>
#include <net/udp.h>
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
#include <net/netfilter/ipv6/nf_defrag_ipv6.h>
#include <net/addrconf.h>
#endif

#include "nft_oot.h"
#include "nft_tproxy.h"

struct nft_tproxy {
	u8	sreg_addr;
	u8	sreg_port;
	u8	family;
};

bool nft_tproxy_read_l4(const struct nft_pktinfo *pkt,
			struct nft_tproxy_l4 *l4)
{
	int thoff = nft_thoff(pkt);

	/* Non-first fragments carry no ports to look a socket up with. */
	if (nft_compat_fragoff(pkt))
		return false;

	switch (pkt->tprot) {
	case IPPROTO_TCP:
		l4->th = skb_header_pointer(pkt->skb, thoff, sizeof(l4->buf.tcp),
					    &l4->buf.tcp);
		if (!l4->th)
			return false;
		l4->ports = (const struct udphdr *)l4->th;
		l4->doff = thoff + __tcp_hdrlen(l4->th);
		return true;
	case IPPROTO_UDP:
		l4->th = NULL;
		l4->ports = skb_header_pointer(pkt->skb, thoff,
					       sizeof(l4->buf.udp),
					       &l4->buf.udp);
		l4->doff = thoff + sizeof(struct udphdr);
		return l4->ports;
	}
	return false;
}

/*
 * A UDP socket counts as established only when it is connected and bound
 * to a specific address; a listener is any socket that is not connected.
 */
static bool nft_tproxy_udp_fits(const struct sock *sk, bool wildcard,
				enum nft_tproxy_lookup type)
{
	bool connected = sk->sk_state == TCP_ESTABLISHED;

	if (type == NFT_TPROXY_LOOKUP_ESTABLISHED)
		return connected && !wildcard;
	return !connected;
}

/* Consumes the reference of a timewait socket. */
static void nft_tproxy_twsk_deschedule_put(struct inet_timewait_sock *tw)
{
	local_bh_disable();
	inet_twsk_deschedule_put(tw);
	local_bh_enable();
}

/* Consumes @sk's reference: the skb keeps it until it is freed. */
void nft_tproxy_assign_sock(struct sk_buff *skb, struct sock *sk)
{
	skb_orphan(skb);
	skb->sk = sk;
	skb->destructor = sock_edemux;
}

/*
 * The end of a lookup: assigns @sk to the packet if it is transparent, else
 * puts it, and counts the outcome (@hit: which kind of socket it was).
 */
static bool nft_tproxy_take(struct net *net, struct sk_buff *skb,
			    struct sock *sk, enum nft_tproxy_stat hit)
{
	if (!sk) {
		nft_tproxy_stat_inc(net, NFT_TPROXY_STAT_NO_SOCKET);
		return false;
	}
	if (!inet_sk_transparent(sk)) {
		nft_tproxy_stat_inc(net, NFT_TPROXY_STAT_NOT_TRANSPARENT);
		sock_gen_put(sk);
		return false;
	}
	/* Assigned as upstream does, but it will not last. */
	if (nft_tproxy_bridged(skb))
		hit = NFT_TPROXY_STAT_BRIDGED;
	nft_tproxy_stat_inc(net, hit);
	nft_tproxy_assign_sock(skb, sk);
	return true;
}

struct sock *nft_tproxy_get_sock_v4(struct net *net, struct sk_buff *skb,
				    const struct nft_tproxy_l4 *l4,
				    __be32 saddr, __be32 daddr,
				    __be16 sport, __be16 dport,
				    const struct net_device *in,
				    enum nft_tproxy_lookup type)
{
	struct sock *sk;

	if (l4->th) {
		if (type == NFT_TPROXY_LOOKUP_ESTABLISHED)
			return nft_sk_tcp4_established(net, saddr, sport,
						       daddr, dport,
						       in->ifindex);
		return nft_sk_tcp4_listener(net, skb, l4->doff, saddr, sport,
					    daddr, dport, in->ifindex);
	}

	sk = nft_sk_udp4_lookup(net, saddr, sport, daddr, dport, in->ifindex);
	if (sk && !nft_tproxy_udp_fits(sk, !inet_sk(sk)->inet_rcv_saddr, type)) {
		sock_put(sk);
		sk = NULL;
	}
	return sk;
}

/* The target address: the one given, else the input device's primary one. */
static __be32 nft_tproxy_laddr4(const struct net_device *in, __be32 user_laddr,
				__be32 daddr)
{
	const struct in_ifaddr *ifa;
	struct in_device *indev;

	if (user_laddr)
		return user_laddr;

	indev = __in_dev_get_rcu(in);
	if (!indev)
		return daddr;

	in_dev_for_each_ifa_rcu(ifa, indev) {
		if (ifa->ifa_flags & IFA_F_SECONDARY)
			continue;
		return ifa->ifa_local;
	}
	return daddr;
}

/*
 * A new SYN for a tuple in TIME_WAIT goes to the listener at the target
 * when there is one, and the timewait socket is retired (its reference
 * consumed); anything else stays with the timewait socket.
 */
static struct sock *
nft_tproxy_time_wait4(struct net *net, struct sk_buff *skb,
		      const struct nft_tproxy_l4 *l4, __be32 laddr,
		      __be16 lport, struct sock *sk,
		      const struct net_device *in)
{
	struct sock *listener;

	if (!nft_tproxy_pure_syn(l4->th))
		return sk;

	listener = nft_tproxy_get_sock_v4(net, skb, l4, ip_hdr(skb)->saddr,
					  laddr, l4->th->source, lport, in,
					  NFT_TPROXY_LOOKUP_LISTENER);
	if (!listener)
		return sk;

	nft_tproxy_twsk_deschedule_put(inet_twsk(sk));
	return listener;
}

static void nft_tproxy_eval_v4(const struct nft_expr *expr,
			       struct nft_regs *regs,
			       const struct nft_pktinfo *pkt)
{
	const struct nft_tproxy *priv = nft_expr_priv(expr);
	const struct net_device *in = nft_in(pkt);
	struct sk_buff *skb = pkt->skb;
	const struct iphdr *iph = ip_hdr(skb);
	enum nft_tproxy_stat hit = NFT_TPROXY_STAT_ESTABLISHED;
	struct nft_tproxy_l4 l4;
	__be32 taddr = 0;
	__be16 tport = 0;
	struct sock *sk;

	if (!nft_tproxy_read_l4(pkt, &l4)) {
		nft_tproxy_stat_inc(nft_net(pkt), NFT_TPROXY_STAT_UNHANDLED);
		goto out_break;
	}

	/* A packet of a flow that was already diverted finds its socket. */
	sk = nft_tproxy_get_sock_v4(nft_net(pkt), skb, &l4, iph->saddr,
				    iph->daddr, l4.ports->source,
				    l4.ports->dest, in,
				    NFT_TPROXY_LOOKUP_ESTABLISHED);
	if (sk && sk->sk_state != TCP_TIME_WAIT)
		goto take;

	/* The target matters only to a new flow. */
	if (priv->sreg_addr)
		taddr = nft_reg_load_be32(&regs->data[priv->sreg_addr]);
	taddr = nft_tproxy_laddr4(in, taddr, iph->daddr);

	if (priv->sreg_port)
		tport = nft_reg_load_be16(&regs->data[priv->sreg_port]);
	if (!tport)
		tport = l4.ports->dest;

	/* The flow's socket is in TIME_WAIT: a new SYN may take it over. */
	if (sk) {
		struct sock *tw = sk;

		sk = nft_tproxy_time_wait4(nft_net(pkt), skb, &l4, taddr,
					   tport, sk, in);
		if (sk != tw)
			hit = NFT_TPROXY_STAT_TW_TAKEOVER;
	} else {
		sk = nft_tproxy_get_sock_v4(nft_net(pkt), skb, &l4, iph->saddr,
					    taddr, l4.ports->source, tport, in,
					    NFT_TPROXY_LOOKUP_LISTENER);
		hit = NFT_TPROXY_STAT_LISTENER;
	}
take:
	if (nft_tproxy_take(nft_net(pkt), skb, sk, hit))
		return;
out_break:
	regs->verdict.code = NFT_BREAK;
}

#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
struct sock *nft_tproxy_get_sock_v6(struct net *net, struct sk_buff *skb,
				    const struct nft_tproxy_l4 *l4,
				    const struct in6_addr *saddr,
				    const struct in6_addr *daddr,
				    __be16 sport, __be16 dport,
				    const struct net_device *in,
				    enum nft_tproxy_lookup type)
{
	struct sock *sk;

	if (l4->th) {
		if (type == NFT_TPROXY_LOOKUP_ESTABLISHED)
			return nft_sk_tcp6_established(net, saddr, sport,
						       daddr, dport,
						       in->ifindex);
		return nft_sk_tcp6_listener(net, skb, l4->doff, saddr, sport,
					    daddr, dport, in->ifindex);
	}

	sk = nft_sk_udp6_lookup(net, saddr, sport, daddr, dport, in->ifindex);
	if (sk && !nft_tproxy_udp_fits(sk, ipv6_addr_any(&sk->sk_v6_rcv_saddr),
				       type)) {
		sock_put(sk);
		sk = NULL;
	}
	return sk;
}

/*
 * The first usable address of @dev (addresses are kept sorted by scope,
 * global first), in @addr; false if there is none.
 */
bool nft_tproxy_dev_addr6(const struct net_device *dev, struct in6_addr *addr)
{
	const struct inet6_ifaddr *ifa;
	struct inet6_dev *idev;
	bool found = false;

	idev = __in6_dev_get(dev);
	if (!idev)
		return false;

	/* Called under RCU: the address list is an RCU list. */
	list_for_each_entry_rcu(ifa, &idev->addr_list, if_list) {
		if (READ_ONCE(ifa->flags) & (IFA_F_TENTATIVE | IFA_F_DEPRECATED))
			continue;
		*addr = ifa->addr;
		found = true;
		break;
	}
	return found;
}

/* The target address: the one given, else the input device's first one. */
static void nft_tproxy_laddr6(const struct net_device *in,
			      struct in6_addr *taddr,
			      const struct in6_addr *daddr)
{
	if (!ipv6_addr_any(taddr))
		return;

	if (!nft_tproxy_dev_addr6(in, taddr))
		*taddr = *daddr;
}

static struct sock *
nft_tproxy_time_wait6(struct net *net, struct sk_buff *skb,
		      const struct nft_tproxy_l4 *l4,
		      const struct in6_addr *laddr, __be16 lport,
		      struct sock *sk, const struct net_device *in)
{
	struct sock *listener;

	if (!nft_tproxy_pure_syn(l4->th))
		return sk;

	listener = nft_tproxy_get_sock_v6(net, skb, l4, &ipv6_hdr(skb)->saddr,
					  laddr, l4->th->source, lport, in,
					  NFT_TPROXY_LOOKUP_LISTENER);
	if (!listener)
		return sk;

	nft_tproxy_twsk_deschedule_put(inet_twsk(sk));
	return listener;
}

static void nft_tproxy_eval_v6(const struct nft_expr *expr,
			       struct nft_regs *regs,
			       const struct nft_pktinfo *pkt)
{
	const struct nft_tproxy *priv = nft_expr_priv(expr);
	const struct net_device *in = nft_in(pkt);
	struct sk_buff *skb = pkt->skb;
	const struct ipv6hdr *iph = ipv6_hdr(skb);
	enum nft_tproxy_stat hit = NFT_TPROXY_STAT_ESTABLISHED;
	struct in6_addr taddr = {};
	struct nft_tproxy_l4 l4;
	__be16 tport = 0;
	struct sock *sk;

	if (!nft_tproxy_read_l4(pkt, &l4)) {
		nft_tproxy_stat_inc(nft_net(pkt), NFT_TPROXY_STAT_UNHANDLED);
		goto out_break;
	}

	sk = nft_tproxy_get_sock_v6(nft_net(pkt), skb, &l4, &iph->saddr,
				    &iph->daddr, l4.ports->source,
				    l4.ports->dest, in,
				    NFT_TPROXY_LOOKUP_ESTABLISHED);
	if (sk && sk->sk_state != TCP_TIME_WAIT)
		goto take;

	if (priv->sreg_addr)
		memcpy(&taddr, &regs->data[priv->sreg_addr], sizeof(taddr));
	nft_tproxy_laddr6(in, &taddr, &iph->daddr);

	if (priv->sreg_port)
		tport = nft_reg_load_be16(&regs->data[priv->sreg_port]);
	if (!tport)
		tport = l4.ports->dest;

	/* The flow's socket is in TIME_WAIT: a new SYN may take it over. */
	if (sk) {
		struct sock *tw = sk;

		sk = nft_tproxy_time_wait6(nft_net(pkt), skb, &l4, &taddr,
					   tport, sk, in);
		if (sk != tw)
			hit = NFT_TPROXY_STAT_TW_TAKEOVER;
	} else {
		sk = nft_tproxy_get_sock_v6(nft_net(pkt), skb, &l4, &iph->saddr,
					    &taddr, l4.ports->source, tport, in,
					    NFT_TPROXY_LOOKUP_LISTENER);
		hit = NFT_TPROXY_STAT_LISTENER;
	}
take:
	if (nft_tproxy_take(nft_net(pkt), skb, sk, hit))
		return;
out_break:
	regs->verdict.code = NFT_BREAK;
}
#endif

static void nft_tproxy_eval(const struct nft_expr *expr,
			    struct nft_regs *regs,
			    const struct nft_pktinfo *pkt)
{
	const struct nft_tproxy *priv = nft_expr_priv(expr);

	switch (nft_pf(pkt)) {
	case NFPROTO_IPV4:
		if (priv->family == NFPROTO_IPV4 ||
		    priv->family == NFPROTO_UNSPEC) {
			nft_tproxy_eval_v4(expr, regs, pkt);
			return;
		}
		break;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		if (priv->family == NFPROTO_IPV6 ||
		    priv->family == NFPROTO_UNSPEC) {
			nft_tproxy_eval_v6(expr, regs, pkt);
			return;
		}
		break;
#endif
	}
	/* A "tproxy ip" rule in an inet table, for an IPv6 packet. */
	nft_tproxy_stat_inc(nft_net(pkt), NFT_TPROXY_STAT_UNHANDLED);
	regs->verdict.code = NFT_BREAK;
}

static const struct nla_policy nft_tproxy_policy[NFTA_TPROXY_MAX + 1] = {
#ifdef HAVE_NLA_BE_RANGE
	[NFTA_TPROXY_FAMILY]	= NLA_POLICY_MAX(NLA_BE32, 255),
#else
	[NFTA_TPROXY_FAMILY]	= { .type = NLA_U32 },
#endif
	[NFTA_TPROXY_REG_ADDR]	= { .type = NLA_U32 },
	[NFTA_TPROXY_REG_PORT]	= { .type = NLA_U32 },
};

int nft_tproxy_defrag_enable(struct net *net, u8 family)
{
	int err;

	if (family == NFPROTO_IPV4 || family == NFPROTO_UNSPEC) {
		err = nf_defrag_ipv4_enable(net);
		if (err)
			return err;
	}
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	if (family == NFPROTO_IPV6 || family == NFPROTO_UNSPEC) {
		err = nf_defrag_ipv6_enable(net);
		if (err) {
			if (family == NFPROTO_UNSPEC)
				nf_defrag_ipv4_disable(net);
			return err;
		}
	}
#endif
	return 0;
}

void nft_tproxy_defrag_disable(struct net *net, u8 family)
{
	if (family == NFPROTO_IPV4 || family == NFPROTO_UNSPEC)
		nf_defrag_ipv4_disable(net);
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	if (family == NFPROTO_IPV6 || family == NFPROTO_UNSPEC)
		nf_defrag_ipv6_disable(net);
#endif
}

static int nft_tproxy_init(const struct nft_ctx *ctx,
			   const struct nft_expr *expr,
			   const struct nlattr * const tb[])
{
	struct nft_tproxy *priv = nft_expr_priv(expr);
	unsigned int alen;
	u32 family;
	int err;

	if (!tb[NFTA_TPROXY_FAMILY] ||
	    (!tb[NFTA_TPROXY_REG_ADDR] && !tb[NFTA_TPROXY_REG_PORT]))
		return -EINVAL;

	family = ntohl(nla_get_be32(tb[NFTA_TPROXY_FAMILY]));
#ifndef HAVE_NLA_BE_RANGE
	if (family > 255)
		return -ERANGE;
#endif

	switch (ctx->family) {
	case NFPROTO_IPV4:
		if (family != NFPROTO_IPV4)
			return -EINVAL;
		break;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		if (family != NFPROTO_IPV6)
			return -EINVAL;
		break;
#endif
	case NFPROTO_INET:
		break;
	default:
		return -EOPNOTSUPP;
	}

	switch (family) {
	case NFPROTO_IPV4:
		alen = sizeof_field(union nf_inet_addr, in);
		break;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		alen = sizeof_field(union nf_inet_addr, in6);
		break;
#endif
	case NFPROTO_UNSPEC:
		/* Without a family only the port can be given. */
		if (tb[NFTA_TPROXY_REG_ADDR])
			return -EINVAL;
		alen = 0;
		break;
	default:
		return -EOPNOTSUPP;
	}
	priv->family = family;

	if (tb[NFTA_TPROXY_REG_ADDR]) {
		err = nft_parse_register_load(ctx, tb[NFTA_TPROXY_REG_ADDR],
					      &priv->sreg_addr, alen);
		if (err < 0)
			return err;
	}

	if (tb[NFTA_TPROXY_REG_PORT]) {
		err = nft_parse_register_load(ctx, tb[NFTA_TPROXY_REG_PORT],
					      &priv->sreg_port, sizeof(u16));
		if (err < 0)
			return err;
	}

	/* Last: nothing can fail after it, so no error path has to undo it. */
	return nft_tproxy_defrag_enable(ctx->net, priv->family);
}

static void nft_tproxy_destroy(const struct nft_ctx *ctx,
			       const struct nft_expr *expr)
{
	const struct nft_tproxy *priv = nft_expr_priv(expr);

	nft_tproxy_defrag_disable(ctx->net, priv->family);
}

static int nft_tproxy_dump(struct sk_buff *skb,
			   const struct nft_expr *expr, bool reset)
{
	const struct nft_tproxy *priv = nft_expr_priv(expr);

	if (nla_put_be32(skb, NFTA_TPROXY_FAMILY, htonl(priv->family)))
		return -1;

	if (priv->sreg_addr &&
	    nft_dump_register(skb, NFTA_TPROXY_REG_ADDR, priv->sreg_addr))
		return -1;

	if (priv->sreg_port &&
	    nft_dump_register(skb, NFTA_TPROXY_REG_PORT, priv->sreg_port))
		return -1;

	return 0;
}

NFT_COMPAT_DUMP(nft_tproxy_dump)

static int nft_tproxy_validate(const struct nft_ctx *ctx,
			       const struct nft_expr *expr)
{
	if (ctx->family != NFPROTO_IPV4 &&
	    ctx->family != NFPROTO_IPV6 &&
	    ctx->family != NFPROTO_INET)
		return -EOPNOTSUPP;

	/* In other hooks there may be no input device to look sockets up on. */
	return nft_chain_validate_hooks(ctx->chain, 1 << NF_INET_PRE_ROUTING);
}

NFT_COMPAT_VALIDATE(nft_tproxy_validate)

static struct nft_expr_type nft_tproxy_types[NFT_OOT_NTYPES];

static const struct nft_expr_ops nft_tproxy_ops = {
	.type		= &nft_tproxy_types[0],
	.size		= NFT_EXPR_SIZE(sizeof(struct nft_tproxy)),
	.eval		= nft_tproxy_eval,
	.init		= nft_tproxy_init,
	.destroy	= nft_tproxy_destroy,
	.dump		= nft_compat_dump(nft_tproxy_dump),
	.validate	= nft_compat_validate(nft_tproxy_validate),
#ifdef HAVE_NFT_EXPR_OPS_REDUCE
	.reduce		= NFT_REDUCE_READONLY,
#endif
};

static struct nft_expr_type nft_tproxy_types[NFT_OOT_NTYPES] __read_mostly = {
	[0] = {
		.name		= "tproxy",
		.ops		= &nft_tproxy_ops,
		.policy		= nft_tproxy_policy,
		.maxattr	= NFTA_TPROXY_MAX,
		.owner		= THIS_MODULE,
	},
};

int nft_tproxy_expr_init(void)
{
	return nft_oot_register(nft_tproxy_types);
}

void nft_tproxy_expr_exit(void)
{
	nft_oot_unregister(nft_tproxy_types, NFT_OOT_NTYPES);
}
