// SPDX-License-Identifier: GPL-2.0
/*
 * nf_tables "divert" expression, an nft-tproxy extension: delivery to a
 * transparent proxy without policy routing.
 *
 * In prerouting the packet gets a local input route, so that the socket
 * tproxy assigned to it (or, when none was assigned, the transparent socket
 * of its own established flow) receives it instead of it being forwarded.
 * This is the job of "ip rule add fwmark M lookup T" with "ip route add
 * local default dev lo table T" in the usual recipe, done without a mark, a
 * rule or a table.  The route is the one the input route lookup gives for a
 * local address of the receiving device: IPv4 keeps the source validation of
 * that device (rp_filter, martian sources) as the recipe does.
 *
 * In output a locally generated packet is routed through the loopback
 * device; it comes back through prerouting, where tproxy can take it.  This
 * replaces the mark and the routing rule of the usual output hairpin.
 */
#include <linux/inetdevice.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nft_tproxy_ext.h>
#include <net/dst_metadata.h>
#include <net/inet_sock.h>
#include <net/ip.h>
#include <net/route.h>
#include <net/tcp.h>
#include <net/netfilter/nf_tables.h>
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
#include <linux/ipv6_route.h>
#include <net/ip6_route.h>
#endif

#include "nft_oot.h"
#include "nft_tproxy.h"

/* The families to reassemble for a table's: NFPROTO_UNSPEC is both. */
static u8 nft_divert_defrag_family(u8 table_family)
{
	return table_family == NFPROTO_INET ? NFPROTO_UNSPEC : table_family;
}

/*
 * The transparent socket of the packet's own established flow, referenced,
 * for a packet that tproxy did not assign: "socket transparent 1 divert".
 */
static struct sock *nft_divert_lookup(const struct nft_pktinfo *pkt)
{
	struct sk_buff *skb = pkt->skb;
	struct nft_tproxy_l4 l4;
	struct sock *sk = NULL;

	if (!nft_tproxy_read_l4(pkt, &l4))
		return NULL;

	switch (nft_pf(pkt)) {
	case NFPROTO_IPV4:
		sk = nft_tproxy_get_sock_v4(nft_net(pkt), skb, &l4,
					    ip_hdr(skb)->saddr,
					    ip_hdr(skb)->daddr,
					    l4.ports->source, l4.ports->dest,
					    nft_in(pkt),
					    NFT_TPROXY_LOOKUP_ESTABLISHED);
		break;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		sk = nft_tproxy_get_sock_v6(nft_net(pkt), skb, &l4,
					    &ipv6_hdr(skb)->saddr,
					    &ipv6_hdr(skb)->daddr,
					    l4.ports->source, l4.ports->dest,
					    nft_in(pkt),
					    NFT_TPROXY_LOOKUP_ESTABLISHED);
		break;
#endif
	}

	if (!sk)
		return NULL;

	/*
	 * A new connection on the tuple of one in TIME_WAIT is not that
	 * flow's: the tproxy rule after this one decides where it goes.
	 */
	if (!inet_sk_transparent(sk) ||
	    (sk->sk_state == TCP_TIME_WAIT && l4.th &&
	     nft_tproxy_pure_syn(l4.th))) {
		sock_gen_put(sk);
		return NULL;
	}
	return sk;
}

static bool nft_divert_input4(struct sk_buff *skb)
{
	const struct iphdr *iph = ip_hdr(skb);
	struct net_device *dev = skb->dev;
	struct dst_entry *old = skb_dst(skb);
	bool old_ref = old && !skb_dst_is_noref(skb);
	__be32 laddr;
	int err;

	/* Sent through lo by divert in output: already local. */
	if (skb_valid_dst(skb) && skb_rtable(skb)->rt_type == RTN_LOCAL)
		return true;

	laddr = inet_select_addr(dev, 0, RT_SCOPE_LINK);
	if (!laddr)
		return false;

	/*
	 * The lookup reads a tunnel's metadata from the skb's dst, then drops
	 * it: lend it, and keep the reference, so that a packet divert
	 * leaves alone keeps what it came with.
	 */
	if (old)
		skb_dst_set_noref(skb, old);
#ifdef HAVE_IP_ROUTE_INPUT_DSCP
	err = ip_route_input_noref(skb, laddr, iph->saddr,
				   inet_dsfield_to_dscp(iph->tos), dev);
#else
	err = ip_route_input_noref(skb, laddr, iph->saddr, iph->tos, dev);
#endif
	if (err || skb_rtable(skb)->rt_type != RTN_LOCAL) {
		skb_dst_drop(skb);
		if (old_ref)
			skb_dst_set(skb, old);
		else if (old)
			skb_dst_set_noref(skb, old);
		return false;
	}
	if (old_ref)
		dst_release(old);
	return true;
}

static bool nft_divert_output4(struct net *net, struct sk_buff *skb)
{
	struct flowi4 fl4 = {
		.daddr		= htonl(INADDR_LOOPBACK),
		.flowi4_oif	= LOOPBACK_IFINDEX,
	};
	struct rtable *rt;

	if (skb_rtable(skb)->rt_type == RTN_LOCAL)
		return true;

	rt = ip_route_output_key(net, &fl4);
	if (IS_ERR(rt))
		return false;

	if (rt->rt_type != RTN_LOCAL) {
		ip_rt_put(rt);
		return false;
	}
	skb_dst_drop(skb);
	skb_dst_set(skb, &rt->dst);
	return true;
}

#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
static bool nft_divert_rt6_local(const struct dst_entry *dst)
{
	return container_of(dst, struct rt6_info, dst)->rt6i_flags & RTF_LOCAL;
}

/* Consumes @dst: the skb keeps it if it is a usable local route. */
static bool nft_divert_use_dst6(struct sk_buff *skb, struct dst_entry *dst)
{
	if (dst->error || !nft_divert_rt6_local(dst)) {
		dst_release(dst);
		return false;
	}
	skb_dst_drop(skb);
	skb_dst_set(skb, dst);
	return true;
}

static bool nft_divert_input6(struct sk_buff *skb)
{
	const struct ipv6hdr *iph = ipv6_hdr(skb);
	const struct ip_tunnel_info *tun_info;
	struct net_device *dev = skb->dev;
	struct flowi6 fl6 = {
		.flowi6_iif	= dev->ifindex,
		.flowi6_mark	= skb->mark,
		.flowi6_proto	= iph->nexthdr,
		.flowlabel	= ip6_flowinfo(iph),
		.saddr		= iph->saddr,
	};
	struct dst_entry *dst;

	if (skb_valid_dst(skb) && nft_divert_rt6_local(skb_dst(skb)))
		return true;

	if (!nft_tproxy_dev_addr6(dev, &fl6.daddr))
		return false;

	tun_info = skb_tunnel_info(skb);
	if (tun_info && !(tun_info->mode & IP_TUNNEL_INFO_TX))
		fl6.flowi6_tun_key.tun_id = tun_info->key.tun_id;

	/* Under RCU, as the input route lookup: no reference per packet. */
	dst = ip6_route_input_lookup(dev_net(dev), dev, &fl6, skb,
				     RT6_LOOKUP_F_HAS_SADDR |
				     RT6_LOOKUP_F_DST_NOREF);
	if (dst->error || !nft_divert_rt6_local(dst))
		return false;

	skb_dst_drop(skb);
	skb_dst_set_noref(skb, dst);
	return true;
}

static bool nft_divert_output6(struct net *net, struct sk_buff *skb)
{
	struct flowi6 fl6 = {
		.daddr		= in6addr_loopback,
		.flowi6_oif	= LOOPBACK_IFINDEX,
	};
	struct dst_entry *dst;

	if (nft_divert_rt6_local(skb_dst(skb)))
		return true;

	dst = ip6_route_output(net, NULL, &fl6);
	return nft_divert_use_dst6(skb, dst);
}
#endif

/*
 * The input route an established TCP socket cached from its own packets,
 * when early demux would take it for @skb: received on the same device,
 * still valid, of the packet's family, and local.  Then the flow's
 * packets skip the FIB lookup, as the recipe's do.  Never for UDP: an
 * unconnected socket's cached route does not say which device it was for.
 */
static struct dst_entry *nft_divert_rx_dst(const struct sk_buff *skb,
					   const struct sock *sk, u8 pf)
{
	struct dst_entry *dst;
	int ifindex;

	if (!sk_fullsock(sk) || sk->sk_protocol != IPPROTO_TCP ||
	    sk->sk_state != TCP_ESTABLISHED)
		return NULL;

#ifdef HAVE_SK_RX_DST_IFINDEX
	dst = rcu_dereference(sk->sk_rx_dst);
	ifindex = READ_ONCE(sk->sk_rx_dst_ifindex);
#else
	dst = READ_ONCE(sk->sk_rx_dst);
	ifindex = READ_ONCE(inet_sk(sk)->rx_dst_ifindex);
#endif
	if (!dst || ifindex != skb->skb_iif)
		return NULL;

	switch (pf) {
	case NFPROTO_IPV4:
		if (dst->ops->family != AF_INET)
			return NULL;
		dst = dst_check(dst, 0);
		if (!dst ||
		    container_of(dst, struct rtable, dst)->rt_type != RTN_LOCAL)
			return NULL;
		return dst;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		if (dst->ops->family != AF_INET6)
			return NULL;
#ifdef HAVE_SK_RX_DST_COOKIE
		dst = dst_check(dst, READ_ONCE(sk->sk_rx_dst_cookie));
#else
		dst = dst_check(dst, READ_ONCE(inet6_sk(sk)->rx_dst_cookie));
#endif
		if (!dst || !nft_divert_rt6_local(dst))
			return NULL;
		return dst;
#endif
	}
	return NULL;
}

/*
 * The list receive path (ip_list_rcv_finish(), ip6_list_rcv_finish()) lends
 * a packet's route to the next packets of its batch with the same
 * destination address, unless the namespace has ip rules; divert's has
 * none.  The local route divert gave one packet must never be lent to a
 * packet that no rule diverted: flag the packet the way the kernel flags a
 * route chosen among several paths, which it does not lend either.
 */
static void nft_divert_no_hint(struct sk_buff *skb, u8 pf)
{
	switch (pf) {
	case NFPROTO_IPV4:
#ifdef HAVE_IPSKB_MULTIPATH
		IPCB(skb)->flags |= IPSKB_MULTIPATH;
#endif
		break;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6) && defined(HAVE_IP6SKB_MULTIPATH)
	case NFPROTO_IPV6:
		IP6CB(skb)->flags |= IP6SKB_MULTIPATH;
		break;
#endif
	}
}

/*
 * A kernel without that flag lends routes unless the namespace has ip
 * rules: mark it as having some, as "ip rule add" does.  Route lookups
 * then go through the rules (the default rules give the same routes) and
 * no route is lent.  The mark stays, as it does after "ip rule del".
 */
static int nft_divert_hints_off(struct net *net, u8 family)
{
#ifndef HAVE_IPSKB_MULTIPATH
	if (family != NFPROTO_IPV6) {
#ifdef CONFIG_IP_MULTIPLE_TABLES
		WRITE_ONCE(net->ipv4.fib_has_custom_rules, true);
#else
		return -EOPNOTSUPP;
#endif
	}
#endif
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6) && !defined(HAVE_IP6SKB_MULTIPATH)
	if (family != NFPROTO_IPV4) {
#ifdef CONFIG_IPV6_MULTIPLE_TABLES
		WRITE_ONCE(net->ipv6.fib6_has_custom_rules, true);
#else
		return -EOPNOTSUPP;
#endif
	}
#endif
	return 0;
}

static bool nft_divert_input(const struct nft_pktinfo *pkt)
{
	struct sk_buff *skb = pkt->skb;
	struct dst_entry *rx_dst;
	struct sock *sk = NULL;
	bool local = false;

	/* No socket assigned: the flow's own, if transparent. */
	if (!skb->sk) {
		sk = nft_divert_lookup(pkt);
		if (!sk)
			return false;
	}

	rx_dst = skb_dst(skb) ? NULL :
		 nft_divert_rx_dst(skb, sk ?: skb->sk, nft_pf(pkt));
	if (rx_dst) {
		skb_dst_set_noref(skb, rx_dst);
		local = true;
	} else {
		switch (nft_pf(pkt)) {
		case NFPROTO_IPV4:
			local = nft_divert_input4(skb);
			break;
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
		case NFPROTO_IPV6:
			local = nft_divert_input6(skb);
			break;
#endif
		}
	}

	if (local)
		nft_divert_no_hint(skb, nft_pf(pkt));

	if (sk) {
		if (local)
			nft_tproxy_assign_sock(skb, sk);
		else
			sock_gen_put(sk);
	}
	return local;
}

static bool nft_divert_output(const struct nft_pktinfo *pkt)
{
	if (!skb_dst(pkt->skb))
		return false;

	switch (nft_pf(pkt)) {
	case NFPROTO_IPV4:
		return nft_divert_output4(nft_net(pkt), pkt->skb);
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	case NFPROTO_IPV6:
		return nft_divert_output6(nft_net(pkt), pkt->skb);
#endif
	}
	return false;
}

static void nft_divert_eval(const struct nft_expr *expr,
			    struct nft_regs *regs,
			    const struct nft_pktinfo *pkt)
{
	enum nft_tproxy_stat why = NFT_TPROXY_STAT_REFUSED;
	struct net *net = nft_net(pkt);

	switch (nft_hook(pkt)) {
	case NF_INET_PRE_ROUTING:
		/* br_netfilter would replace the route: not here. */
		if (nft_tproxy_bridged(pkt->skb)) {
			why = NFT_TPROXY_STAT_BRIDGED;
			break;
		}
		if (nft_divert_input(pkt)) {
			nft_tproxy_stat_inc(net, NFT_TPROXY_STAT_DELIVERED);
			return;
		}
		break;
	case NF_INET_LOCAL_OUT:
		if (nft_divert_output(pkt)) {
			nft_tproxy_stat_inc(net, NFT_TPROXY_STAT_LOOPED);
			return;
		}
		break;
	}

	nft_tproxy_stat_inc(net, why);
	regs->verdict.code = NFT_BREAK;
}

static int nft_divert_init(const struct nft_ctx *ctx,
			   const struct nft_expr *expr,
			   const struct nlattr * const tb[])
{
	int err;

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

	err = nft_divert_hints_off(ctx->net, ctx->family);
	if (err)
		return err;

	/*
	 * The lookup of a flow's own socket needs the ports of every packet,
	 * so fragments are reassembled first, as for tproxy.  Last: nothing
	 * can fail after it.
	 */
	return nft_tproxy_defrag_enable(ctx->net,
					nft_divert_defrag_family(ctx->family));
}

static void nft_divert_destroy(const struct nft_ctx *ctx,
			       const struct nft_expr *expr)
{
	nft_tproxy_defrag_disable(ctx->net,
				  nft_divert_defrag_family(ctx->family));
}

static int nft_divert_validate(const struct nft_ctx *ctx,
			       const struct nft_expr *expr)
{
	const struct nft_base_chain *basechain;

	if (ctx->family != NFPROTO_IPV4 &&
	    ctx->family != NFPROTO_IPV6 &&
	    ctx->family != NFPROTO_INET)
		return -EOPNOTSUPP;

	/* A nat chain sees only the first packet of a flow. */
	if (nft_is_base_chain(ctx->chain)) {
		basechain = nft_base_chain(ctx->chain);
		if (basechain->type->type == NFT_CHAIN_T_NAT)
			return -EOPNOTSUPP;
	}

	return nft_chain_validate_hooks(ctx->chain,
					(1 << NF_INET_PRE_ROUTING) |
					(1 << NF_INET_LOCAL_OUT));
}

NFT_COMPAT_VALIDATE(nft_divert_validate)

static struct nft_expr_type nft_divert_types[NFT_OOT_NTYPES];

static const struct nft_expr_ops nft_divert_ops = {
	.type		= &nft_divert_types[0],
	.size		= NFT_EXPR_SIZE(0),
	.eval		= nft_divert_eval,
	.init		= nft_divert_init,
	.destroy	= nft_divert_destroy,
	.validate	= nft_compat_validate(nft_divert_validate),
#ifdef HAVE_NFT_EXPR_OPS_REDUCE
	.reduce		= NFT_REDUCE_READONLY,
#endif
};

static struct nft_expr_type nft_divert_types[NFT_OOT_NTYPES] __read_mostly = {
	[0] = {
		.name		= NFT_DIVERT_EXPR_NAME,
		.ops		= &nft_divert_ops,
		.owner		= THIS_MODULE,
	},
};

int nft_divert_expr_init(void)
{
	return nft_oot_register(nft_divert_types);
}

void nft_divert_expr_exit(void)
{
	nft_oot_unregister(nft_divert_types, NFT_OOT_NTYPES);
}
