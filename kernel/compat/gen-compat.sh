#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Compile probes against a kernel tree and write compat_autoconf.h.
#
#   gen-compat.sh KDIR OUTDIR
#
# Each probe is a tiny translation unit that compiles only if the target
# kernel has a given API.  All probes are compiled in one kbuild pass; the
# header defines HAVE_<NAME> for every probe that compiled.  A probe that
# fails for an unexpected reason (anything but the usual "undeclared",
# "no member", "incompatible pointer type", "too many/few arguments"
# diagnostics) aborts the build, so that a broken toolchain cannot pass for
# an old kernel.  Version numbers are never used: the stable lines mix old
# and new nf_tables APIs (6.1.y took several 6.12 changes).

set -eu

KDIR=${1:?usage: gen-compat.sh KDIR OUTDIR}
OUT=${2:?usage: gen-compat.sh KDIR OUTDIR}
PROBES="$OUT/probes"
HDR="$OUT/compat_autoconf.h"

rm -rf "$PROBES"
mkdir -p "$PROBES"
names=""

# probe NAME "upstream change it tracks" <<'EOF' ...C body... EOF
probe() {
	local name=$1 why=$2

	names="$names $name"
	printf '%s\n' "$why" >"$PROBES/$name.why"
	{
		echo '// SPDX-License-Identifier: GPL-2.0'
		echo '#include <linux/module.h>'
		echo '#include <linux/netfilter.h>'
		echo '#include <net/netfilter/nf_tables.h>'
		cat
	} >"$PROBES/$name.c"
}

probe SANITY "toolchain and headers work at all (must compile)" <<'EOF'
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <net/udp.h>
int probe(void) { return 0; }
EOF

probe NFT_VALIDATE_DATA_ARG \
"nft_expr_ops.validate lost its third argument in 6.12 (\"netfilter: nf_tables: drop unused 3rd argument from validate callback ops\"), backported to 6.1.184" <<'EOF'
static int f(const struct nft_ctx *ctx, const struct nft_expr *expr,
	     const struct nft_data **data) { return 0; }
const struct nft_expr_ops probe_ops = { .validate = f };
EOF

probe NFT_DUMP_RESET \
"nft_expr_ops.dump gained 'bool reset' in 6.2 (\"netfilter: nf_tables: Extend nft_expr_ops::dump callback parameters\"), backported to 6.1.191" <<'EOF'
static int f(struct sk_buff *skb, const struct nft_expr *expr, bool reset)
{ return 0; }
const struct nft_expr_ops probe_ops = { .dump = f };
EOF

probe NFT_EXPR_OPS_REDUCE \
"nft_expr_ops.reduce added in 5.17, removed in 7.1 and 6.12.101 (\"netfilter: nf_tables: remove register tracking infrastructure\")" <<'EOF'
const struct nft_expr_ops probe_ops = { .reduce = NULL };
EOF

probe NFT_PARSE_REGISTER_LOAD \
"nft_parse_register_load() added in 5.12, backported to 5.10.y: the floor of the supported window" <<'EOF'
void *probe(void) { return nft_parse_register_load; }
EOF

probe NFT_PARSE_REGISTER_LOAD_CTX \
"nft_parse_register_load() takes the nft_ctx since 6.12 (\"netfilter: nf_tables: pass context structure to nft_parse_register_load\"), backported to 6.1.184" <<'EOF'
int probe(const struct nft_ctx *ctx, const struct nlattr *a, u8 *r)
{ return nft_parse_register_load(ctx, a, r, 4); }
EOF

probe NFT_REG_LOAD_BE16 \
"nft_reg_load_be16() added in 6.0" <<'EOF'
__be16 probe(const u32 *r) { return nft_reg_load_be16(r); }
EOF

probe NFT_THOFF \
"nft_thoff() added in 5.14, backported to 5.10.y" <<'EOF'
int probe(const struct nft_pktinfo *pkt) { return nft_thoff(pkt); }
EOF

probe NFT_PKTINFO_FRAGOFF \
"struct nft_pktinfo.fragoff replaced pkt->xt.fragoff in 5.14" <<'EOF'
int probe(const struct nft_pktinfo *pkt) { return pkt->fragoff; }
EOF

probe INET_LOOKUP_HASHINFO \
"the inet socket lookups take a struct inet_hashinfo * up to 6.17; 6.18 dropped it" <<'EOF'
#include <net/inet_hashtables.h>
struct sock *probe(struct net *net, struct inet_hashinfo *h)
{ return __inet_lookup_established(net, h, 0, 0, 0, 0, 0, 0); }
EOF

probe NETNS_TCP_HASHINFO \
"net->ipv4.tcp_death_row.hashinfo: an embedded struct pointing at tcp_hashinfo up to 5.18, the per-netns ehash since 6.1 (\"tcp: Introduce optional per-netns ehash\"); 5.19 and 6.0 hold a pointer there: &tcp_hashinfo" <<'EOF'
#include <net/inet_hashtables.h>
struct inet_hashinfo *probe(struct net *net)
{ return net->ipv4.tcp_death_row.hashinfo; }
EOF

probe UDP_LOOKUP_TABLE_ARG \
"__udp4_lib_lookup() took a struct udp_table * until 7.1" <<'EOF'
#include <net/udp.h>
struct sock *probe(struct net *net, struct udp_table *t)
{ return __udp4_lib_lookup(net, 0, 0, 0, 0, 0, 0, t, NULL); }
EOF

probe NETNS_UDP_TABLE \
"per-netns UDP hash table since 6.2: net->ipv4.udp_table (before: &udp_table)" <<'EOF'
#include <net/udp.h>
struct udp_table *probe(struct net *net) { return net->ipv4.udp_table; }
EOF

probe NF_DEFRAG_DISABLE \
"nf_defrag_ipv{4,6}_disable() added in 5.13/5.14 (\"netfilter: disable defrag once it's no longer needed\")" <<'EOF'
#include <net/netfilter/ipv4/nf_defrag_ipv4.h>
void probe(struct net *net) { nf_defrag_ipv4_disable(net); }
EOF

probe NFT_SOCKET_CGROUPV2 \
"uapi NFT_SOCKET_CGROUPV2 and NFTA_SOCKET_LEVEL added in 5.13 (\"netfilter: nft_socket: add support for cgroupsv2\")" <<'EOF'
int probe(void) { return NFT_SOCKET_CGROUPV2 + NFTA_SOCKET_LEVEL; }
EOF

probe NLA_BE_RANGE \
"range validation of NLA_BE16/NLA_BE32 policy attributes since 6.1, backported to 5.10.y (5.10.262 has it)" <<'EOF'
static const struct nla_policy p[2] = { [1] = NLA_POLICY_MAX(NLA_BE32, 255) };
const struct nla_policy *probe(void) { return p; }
typedef char probe_be_is_uint[__NLA_IS_UINT_TYPE(NLA_BE32) ? 1 : -1];
EOF

probe IP_ROUTE_INPUT_DSCP \
"ip_route_input_noref() takes a dscp_t and returns a drop reason since 6.13 (\"ipv4: Convert ip_route_input_noref() to dscp_t\", \"net: ip: make ip_route_input_noref() return drop reasons\")" <<'EOF'
#include <net/route.h>
typedef char probe_reason[__builtin_types_compatible_p(
	__typeof__(ip_route_input_noref(NULL, 0, 0, 0, NULL)),
	enum skb_drop_reason) ? 1 : -1];
dscp_t probe(u8 tos) { return inet_dsfield_to_dscp(tos); }
EOF

probe IPSKB_MULTIPATH \
"ip_extract_route_hint() does not lend the route of a packet flagged IPSKB_MULTIPATH to the rest of its receive batch (6.12; in 6.1.y and 5.10.y by backport)" <<'EOF'
#include <net/ip.h>
int probe(struct sk_buff *skb) { return IPCB(skb)->flags & IPSKB_MULTIPATH; }
EOF

probe IP6SKB_MULTIPATH \
"ip6_extract_route_hint() does not lend the route of a packet flagged IP6SKB_MULTIPATH to the rest of its receive batch (6.12; in 6.1.y by backport, not in 5.10.y)" <<'EOF'
#include <linux/ipv6.h>
int probe(struct sk_buff *skb) { return IP6CB(skb)->flags & IP6SKB_MULTIPATH; }
EOF

probe SK_RX_DST_IFINDEX \
"the input device of a socket's cached input route moved from inet_sk(sk)->rx_dst_ifindex to sk->sk_rx_dst_ifindex, and sk_rx_dst became __rcu, in 5.16" <<'EOF'
#include <net/sock.h>
int probe(const struct sock *sk) { return sk->sk_rx_dst_ifindex; }
EOF

probe SK_RX_DST_COOKIE \
"the cookie of an IPv6 socket's cached input route moved from inet6_sk(sk)->rx_dst_cookie to sk->sk_rx_dst_cookie in 5.16" <<'EOF'
#include <net/sock.h>
u32 probe(const struct sock *sk) { return sk->sk_rx_dst_cookie; }
EOF

{
	echo '# SPDX-License-Identifier: GPL-2.0'
	echo "obj-m := $(for n in $names; do printf '%s.o ' "$n"; done)"
	echo 'ccflags-y := -Werror=incompatible-pointer-types -Werror=implicit-function-declaration -Werror=int-conversion -Wno-missing-prototypes -Wno-missing-declarations'
} >"$PROBES/Kbuild"

targets=""
for n in $names; do
	targets="$targets $n.o"
done

# One kbuild pass; -k keeps going past the probes that fail.
# shellcheck disable=SC2086
make -s -k -C "$KDIR" M="$PROBES" $targets >"$PROBES/build.log" 2>&1 || true

if [ ! -f "$PROBES/SANITY.o" ]; then
	echo "gen-compat: the sanity probe does not compile against $KDIR:" >&2
	cat "$PROBES/build.log" >&2
	exit 1
fi

expected='undeclared|has no member|incompatible pointer type|too many arguments|too few arguments|incompatible type for argument|unknown field|makes pointer from integer|makes integer from pointer|implicit declaration|No such file or directory|#error|not a member|initialization of .* from|size of array .* is negative'
for n in $names; do
	[ -f "$PROBES/$n.o" ] && continue
	errs=$(grep -E "$n\.c:[0-9]+:[0-9]+: (fatal )?error:" "$PROBES/build.log" || true)
	# A probe's first error says why it failed; follow-on errors do not count.
	if ! printf '%s\n' "$errs" | head -n 1 | grep -Eq "$expected"; then
		echo "gen-compat: probe $n failed for an unexpected reason:" >&2
		grep -E "$n\.c" "$PROBES/build.log" >&2 || cat "$PROBES/build.log" >&2
		exit 1
	fi
done

{
	echo '/* SPDX-License-Identifier: GPL-2.0 */'
	echo "/* Generated by kernel/compat/gen-compat.sh for $KDIR. Do not edit. */"
	echo '#ifndef _NFT_TPROXY_COMPAT_AUTOCONF_H'
	echo '#define _NFT_TPROXY_COMPAT_AUTOCONF_H'
	for n in $names; do
		[ "$n" = SANITY ] && continue
		echo
		echo "/* $(cat "$PROBES/$n.why") */"
		if [ -f "$PROBES/$n.o" ]; then
			echo "#define HAVE_$n 1"
		else
			echo "/* #undef HAVE_$n */"
		fi
	done
	echo
	echo '#endif'
} >"$HDR.tmp"
mv "$HDR.tmp" "$HDR"
