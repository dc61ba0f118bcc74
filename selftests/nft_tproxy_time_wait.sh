#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: a new SYN for a 4-tuple that is in TIME_WAIT on the gateway reaches
# the transparent listener: tproxy retires the timewait socket and assigns
# the listener (without that, the timewait socket would take the SYN and,
# finding no listener on the original destination, answer with a reset).
#
#   client :4000x ---- gw (socat :8080 ip-transparent, closes first) ---- server
#
# socat answers and closes first, so the gateway's side of the connection
# (original destination <-> client:4000x) stays in TIME_WAIT; the client
# connects again from the same port.
#
# Twice: with the policy-routing recipe, then with divert and no policy
# routing, where the flow's own socket is looked up first
# ("socket transparent 1 divert accept", then the bare "meta l4proto tcp
# divert accept", before the tproxy rules): divert's lookup must not give
# the SYN to the timewait socket, so that the tproxy rule after it takes
# the tuple over.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
setup_topology || exit "$ksft_fail"

# shellcheck disable=SC2154 # set by setup_topology
tproxy_routing "$gw"
# No `socket transparent 1` rule here, unlike tproxy_divert: it would match
# the SYN on the timewait socket first and tproxy would never see it.
if ! ip netns exec "$gw" nft -f - <<EOF
table inet proxy {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		tcp dport 80 tproxy ip to :8080 meta mark set 1 accept
		tcp dport 80 tproxy ip6 to :8080 meta mark set 1 accept
	}
}
EOF
then
	log_fail "the ruleset loads"
	exit "$ret"
fi
assert_ours_served tproxy

ip netns exec "$gw" socat TCP6-LISTEN:8080,ip-transparent,ipv6-v6only=0,reuseaddr,fork \
	SYSTEM:'echo hello' 2>/dev/null &
if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp; then
	log_fail "socat listens on the gateway"
	exit "$ret"
fi

time_wait_on_gw()
{
	ip netns exec "$gw" ss -Htan state time-wait | grep -q ":$1\\b"
}

# retrans NS: the TCP segments NS retransmitted so far.  A SYN that the
# timewait socket took is answered with an ACK, not a SYN-ACK: the client
# resets it and connects again a second later, with a retransmitted SYN.
retrans()
{
	# shellcheck disable=SC2016 # awk's own fields
	ip netns exec "$1" awk '/^Tcp:/ {
		if (!n) { for (i = 1; i <= NF; i++) if ($i == "RetransSegs") c = i; n = 1 }
		else print $c }' /proc/net/snmp
}

# reconnect MODE BASE: for IPv4 and IPv6, connect from port BASE + family
# twice, the second time while the first connection is in TIME_WAIT.
reconnect()
{
	local mode=$1 base=$2 f dst port connect r0 r out

	for f in 4 6; do
	eval "dst=\$SERVER_IP$f"
	[ $f = 6 ] && dst="[$dst]"
	port=$((base + f))
	# shellcheck disable=SC2154 # set by setup_topology
	connect="ip netns exec $client timeout 5 socat -u TCP$f:$dst:80,sourceport=$port,reuseaddr -"
	if [ "$($connect 2>/dev/null)" != hello ]; then
		log_fail "ipv$f: the first connection is intercepted"
		continue
	fi
	if ! busywait "$BUSYWAIT_TIMEOUT" time_wait_on_gw "$port"; then
		log_fail "$mode: ipv$f: the gateway holds the connection in TIME_WAIT"
		continue
	fi
	r0=$(retrans "$client")
	out=$($connect 2>/dev/null)
	r=$(( $(retrans "$client") - r0 ))
	if [ "$out" = hello ] && [ "$r" -eq 0 ]; then
		log_pass "$mode: ipv$f: a new SYN for a tuple in TIME_WAIT reaches the transparent listener, first time"
	else
		log_fail "$mode: ipv$f: a new SYN for a tuple in TIME_WAIT reaches the transparent listener, first time (answer '$out', $r segments retransmitted)"
	fi
	done
}

reconnect recipe 40000

if [ ! -x "$NFT_PATCHED" ]; then
	echo "SKIP: divert: $NFT_PATCHED is not built (make userspace)"
	exit "$ret"
fi
ip -n "$gw" rule del fwmark 1 lookup 100
ip -n "$gw" -6 rule del fwmark 1 lookup 100

# divert_with FIRST BASE: the flow's own socket found by FIRST, then tproxy.
divert_with()
{
	local tw0 tw

	ip netns exec "$gw" nft delete table inet proxy
	if ! nftp "$gw" -f - <<EOF
table inet proxy {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		$1 accept
		tcp dport 80 tproxy ip to :8080 divert accept
		tcp dport 80 tproxy ip6 to :8080 divert accept
	}
}
EOF
	then
		log_fail "divert: '$1': the ruleset loads"
		return
	fi
	tw0=$(nft_tproxy_stat "$gw" tw_takeover)
	reconnect "divert after '$1'" "$2"
	tw=$(( $(nft_tproxy_stat "$gw" tw_takeover) - tw0 ))
	if [ "$tw" -eq 2 ]; then
		log_pass "divert after '$1': tproxy counted both takeovers (tw_takeover +$tw)"
	else
		log_fail "divert after '$1': tproxy counted both takeovers (tw_takeover +$tw)"
	fi
}
divert_with "socket transparent 1 divert" 40010
divert_with "meta l4proto tcp divert" 40020

exit "$ret"
