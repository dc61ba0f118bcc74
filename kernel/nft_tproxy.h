/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inside the nft_tproxy module: the tproxy expression's socket lookups,
 * which divert reuses, and the per-namespace statistics both of them keep.
 */
#ifndef _NFT_TPROXY_H
#define _NFT_TPROXY_H

#include <linux/netfilter_bridge.h>
#include <linux/percpu.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/netfilter/nf_tables.h>

enum nft_tproxy_lookup {
	NFT_TPROXY_LOOKUP_LISTENER,
	NFT_TPROXY_LOOKUP_ESTABLISHED,
};

/* The transport header of a packet, read once. */
struct nft_tproxy_l4 {
	union {
		struct tcphdr	tcp;
		struct udphdr	udp;
	} buf;
	const struct udphdr	*ports;	/* TCP has its ports where UDP does */
	const struct tcphdr	*th;	/* TCP only */
	int			doff;	/* end of the transport header */
};

bool nft_tproxy_read_l4(const struct nft_pktinfo *pkt,
			struct nft_tproxy_l4 *l4);

/* A SYN that opens a connection, the only one that may replace TIME_WAIT. */
static inline bool nft_tproxy_pure_syn(const struct tcphdr *th)
{
	return th->syn && !th->rst && !th->ack && !th->fin;
}

void nft_tproxy_assign_sock(struct sk_buff *skb, struct sock *sk);
struct sock *nft_tproxy_get_sock_v4(struct net *net, struct sk_buff *skb,
				    const struct nft_tproxy_l4 *l4,
				    __be32 saddr, __be32 daddr,
				    __be16 sport, __be16 dport,
				    const struct net_device *in,
				    enum nft_tproxy_lookup type);
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
struct sock *nft_tproxy_get_sock_v6(struct net *net, struct sk_buff *skb,
				    const struct nft_tproxy_l4 *l4,
				    const struct in6_addr *saddr,
				    const struct in6_addr *daddr,
				    __be16 sport, __be16 dport,
				    const struct net_device *in,
				    enum nft_tproxy_lookup type);
bool nft_tproxy_dev_addr6(const struct net_device *dev, struct in6_addr *addr);
#endif
int nft_tproxy_defrag_enable(struct net *net, u8 family);
void nft_tproxy_defrag_disable(struct net *net, u8 family);

/*
 * Why a packet was or was not intercepted, per CPU and per network
 * namespace, shown in /proc/net/stat/nft_tproxy in this order.
 */
enum nft_tproxy_stat {
	NFT_TPROXY_STAT_ESTABLISHED,	/* tproxy: the flow's own socket */
	NFT_TPROXY_STAT_LISTENER,	/* tproxy: a listener at the target */
	NFT_TPROXY_STAT_TW_TAKEOVER,	/* tproxy: a SYN took a TIME_WAIT tuple */
	NFT_TPROXY_STAT_NO_SOCKET,	/* tproxy: nothing at the target */
	NFT_TPROXY_STAT_NOT_TRANSPARENT, /* tproxy: a socket without IP_TRANSPARENT */
	NFT_TPROXY_STAT_DELIVERED,	/* divert: prerouting, delivered locally */
	NFT_TPROXY_STAT_LOOPED,		/* divert: output, sent through lo */
	NFT_TPROXY_STAT_REFUSED,	/* divert: left the packet alone */
	NFT_TPROXY_STAT_UNHANDLED,	/* tproxy: no ports, or another family */
	NFT_TPROXY_STAT_BRIDGED,	/* both: in br_netfilter's pass, see below */
	__NFT_TPROXY_STAT_MAX
};

struct nft_tproxy_stats {
	unsigned int	count[__NFT_TPROXY_STAT_MAX];
};

struct nft_tproxy_net {
	struct nft_tproxy_stats __percpu	*stats;
};

extern unsigned int nft_tproxy_net_id;

static inline void nft_tproxy_stat_inc(const struct net *net,
				       enum nft_tproxy_stat stat)
{
	struct nft_tproxy_net *tn = net_generic(net, nft_tproxy_net_id);

	this_cpu_inc(tn->stats->count[stat]);
}

/*
 * br_netfilter runs the ip hooks over a frame while it is still being
 * bridged (bridge-nf-call-iptables).  A socket assigned then is orphaned
 * when the frame reaches IP, and prerouting does not run a second time
 * (ip_sabotage_in()); br_netfilter also replaces the packet's route.
 */
static inline bool nft_tproxy_bridged(const struct sk_buff *skb)
{
#if IS_ENABLED(CONFIG_BRIDGE_NETFILTER)
	const struct nf_bridge_info *nf_bridge = nf_bridge_info_get(skb);

	return nf_bridge && nf_bridge->in_prerouting;
#else
	return false;
#endif
}

int nft_tproxy_stats_init(void);
void nft_tproxy_stats_exit(void);

int nft_tproxy_expr_init(void);
void nft_tproxy_expr_exit(void);
int nft_divert_expr_init(void);
void nft_divert_expr_exit(void);

#endif /* _NFT_TPROXY_H */
