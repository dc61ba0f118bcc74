#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the packets of an established TCP flow that divert delivers take
# the input route their socket cached, as early demux gives the recipe's:
# divert looks a route up only for the first packets of a connection, not
# for every packet.  IPv4 and IPv6.
#
#   client ---------------- gw: divert, tproxy_echo :8080 ------ server
#
# divert's own route lookups are for the gateway's address on its client
# side (the fib:fib_table_lookup and fib6:fib6_table_lookup tracepoints);
# the packets it delivered are counted in the gateway's input chain.  Each
# connection sends 8 packets; the first ones (the SYN, the handshake's ACK
# and the first segments, before the socket cached a route) take a lookup:
# 3 per connection on 6.12, 4 for IPv6 on 5.10.  At most 4 per connection
# are allowed.  Before the socket's route was used, every packet took one:
# 40 for 40 on 6.12.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

ECHO=$SELFTEST_DIR/tproxy_echo
BURST=$SELFTEST_DIR/batch_burst.py
TRACE=$FIB_TRACE
CONNS=5

checktool "nft --version" "run nft"
checktool "python3 -V" "run python3"
require_nft_patched
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }
setup_topology || exit "$ksft_fail"

fib_trace_on "cannot count divert's route lookups"

# shellcheck disable=SC2154 # set by setup_topology
if ! nftp "$gw" -f - <<NFT
table inet proxy {
	counter in4 { }
	counter in6 { }
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp divert accept
		tcp dport 80 tproxy ip to :8080 divert accept
		tcp dport 80 tproxy ip6 to :8080 divert accept
	}
	chain input {
		type filter hook input priority filter; policy accept;
		meta nfproto ipv4 tcp dport 80 counter name in4
		meta nfproto ipv6 tcp dport 80 counter name in6
	}
}
NFT
then
	log_fail "the gateway's divert ruleset loads"
	exit "$ret"
fi

ip netns exec "$gw" "$ECHO" -6 -t proxy -p 8080 2>/dev/null &
if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp; then
	log_fail "the proxy listens on the gateway"
	exit "$ret"
fi

for f in 4 6; do
	if [ $f = 4 ]; then
		z=$SERVER_IP4 laddr=$GW_CLIENT_IP4
	else
		z=$SERVER_IP6 laddr=$GW_CLIENT_IP6
	fi
	p0=$(nft_counter "$gw" proxy "in$f")
	echo >"$TRACE/trace"
	out=$(ip netns exec "$client" python3 "$BURST" tcp "$z" "$CONNS" 80:proxy)
	p=$(( $(nft_counter "$gw" proxy "in$f") - p0 ))
	l=$(grep -c -- "-> ${laddr//./\\.}/" "$TRACE/trace")
	what="$CONNS connections ($out), $p packets delivered, $l route lookups by divert"
	if [ "$out" = "80 good=$CONNS/$CONNS" ] && [ "$p" -ge $((6 * CONNS)) ] &&
	   [ "$l" -le $((4 * CONNS)) ]; then
		log_pass "ipv$f: established flows take their cached route: $what"
	else
		log_fail "ipv$f: established flows take their cached route: $what (want at most $((4 * CONNS)) lookups)"
	fi
done
assert_ours_served tproxy

exit "$ret"
