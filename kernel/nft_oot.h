/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the out-of-tree tproxy and socket expressions share: socket lookups
 * on core exports, and a registration that wins the expression type lookup.
 *
 * Socket lookups.
 * Built on the core exports only (__inet_lookup_*, inet6_lookup_listener,
 * __udp{4,6}_lib_lookup): udp{4,6}_lib_lookup() and the nf_tproxy/nf_socket
 * helpers exist only on kernels that have the in-tree support this package
 * replaces.  Callers run under rcu_read_lock(), as netfilter hooks do.  Every
 * socket returned holds a reference, which may be a full, request or
 * timewait socket: release it with sock_gen_put().
 */
#ifndef _NFT_OOT_H
#define _NFT_OOT_H

#include <net/sock.h>
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <net/udp.h>
#include <net/netfilter/nf_tables.h>

/* Returns a referenced socket (full, request or timewait) or NULL. */
static inline struct sock *
nft_sk_tcp4_established(struct net *net, __be32 saddr, __be16 sport,
			__be32 daddr, __be16 dport, int dif)
{
#ifdef HAVE_INET_LOOKUP_HASHINFO
	return __inet_lookup_established(net, nft_compat_hashinfo(net),
					 saddr, sport, daddr, ntohs(dport),
					 dif, 0);
#else
	return __inet_lookup_established(net, saddr, sport, daddr,
					 ntohs(dport), dif, 0);
#endif
}

/* Listeners are not refcounted by the lookup: take a reference here. */
static inline struct sock *
nft_sk_tcp4_listener(struct net *net, struct sk_buff *skb, int doff,
		     __be32 saddr, __be16 sport, __be32 daddr,
		     __be16 dport, int dif)
{
	struct sock *sk;

#ifdef HAVE_INET_LOOKUP_HASHINFO
	sk = __inet_lookup_listener(net, nft_compat_hashinfo(net), skb, doff,
				    saddr, sport, daddr, ntohs(dport), dif, 0);
#else
	sk = __inet_lookup_listener(net, skb, doff, saddr, sport, daddr,
				    ntohs(dport), dif, 0);
#endif
	if (sk && !refcount_inc_not_zero(&sk->sk_refcnt))
		sk = NULL;
	return sk;
}

static inline struct sock *
nft_sk_udp4_lookup(struct net *net, __be32 saddr, __be16 sport,
		   __be32 daddr, __be16 dport, int dif)
{
	struct sock *sk;

#ifdef HAVE_UDP_LOOKUP_TABLE_ARG
	sk = __udp4_lib_lookup(net, saddr, sport, daddr, dport, dif, 0,
			       nft_compat_udptable(net), NULL);
#else
	sk = __udp4_lib_lookup(net, saddr, sport, daddr, dport, dif, 0, NULL);
#endif
	if (sk && !refcount_inc_not_zero(&sk->sk_refcnt))
		sk = NULL;
	return sk;
}

#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
static inline struct sock *
nft_sk_tcp6_established(struct net *net, const struct in6_addr *saddr,
			__be16 sport, const struct in6_addr *daddr,
			__be16 dport, int dif)
{
#ifdef HAVE_INET_LOOKUP_HASHINFO
	return __inet6_lookup_established(net, nft_compat_hashinfo(net),
					  saddr, sport, daddr, ntohs(dport),
					  dif, 0);
#else
	return __inet6_lookup_established(net, saddr, sport, daddr,
					  ntohs(dport), dif, 0);
#endif
}

static inline struct sock *
nft_sk_tcp6_listener(struct net *net, struct sk_buff *skb, int doff,
		     const struct in6_addr *saddr, __be16 sport,
		     const struct in6_addr *daddr, __be16 dport, int dif)
{
	struct sock *sk;

#ifdef HAVE_INET_LOOKUP_HASHINFO
	sk = inet6_lookup_listener(net, nft_compat_hashinfo(net), skb, doff,
				   saddr, sport, daddr, ntohs(dport), dif, 0);
#else
	sk = inet6_lookup_listener(net, skb, doff, saddr, sport, daddr,
				   ntohs(dport), dif, 0);
#endif
	if (sk && !refcount_inc_not_zero(&sk->sk_refcnt))
		sk = NULL;
	return sk;
}

static inline struct sock *
nft_sk_udp6_lookup(struct net *net, const struct in6_addr *saddr,
		   __be16 sport, const struct in6_addr *daddr,
		   __be16 dport, int dif)
{
	struct sock *sk;

#ifdef HAVE_UDP_LOOKUP_TABLE_ARG
	sk = __udp6_lib_lookup(net, saddr, sport, daddr, dport, dif, 0,
			       nft_compat_udptable(net), NULL);
#else
	sk = __udp6_lib_lookup(net, saddr, sport, daddr, dport, dif, 0, NULL);
#endif
	if (sk && !refcount_inc_not_zero(&sk->sk_refcnt))
		sk = NULL;
	return sk;
}
#endif

/*
 * nf_tables picks, for a rule in a table of family F, a type registered for
 * F over one registered for any family (NFPROTO_UNSPEC), whatever the load
 * order.  Registering per family makes these expressions serve new rules
 * even where the kernel has its own built in; the NFPROTO_UNSPEC entry
 * answers the other table families with the same errors as upstream.
 */
static const u8 nft_oot_families[] = {
	NFPROTO_UNSPEC,
	NFPROTO_IPV4,
#if IS_ENABLED(CONFIG_NF_TABLES_IPV6)
	NFPROTO_IPV6,
#endif
	NFPROTO_INET,
};

#define NFT_OOT_NTYPES	ARRAY_SIZE(nft_oot_families)

static inline void nft_oot_unregister(struct nft_expr_type *types,
				      unsigned int n)
{
	while (n--)
		nft_unregister_expr(&types[n]);
}

/* types[0] is the template; the others are filled in from it. */
static inline int nft_oot_register(struct nft_expr_type *types)
{
	unsigned int i;
	int err;

	for (i = 0; i < NFT_OOT_NTYPES; i++) {
		if (i)
			types[i] = types[0];
		types[i].family = nft_oot_families[i];
		err = nft_register_expr(&types[i]);
		if (err < 0) {
			nft_oot_unregister(types, i);
			return err;
		}
	}
	return 0;
}

#endif /* _NFT_OOT_H */
