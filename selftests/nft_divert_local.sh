#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: divert in output intercepts the proxy host's own connections, and
# a container's behind it, with no policy routing, and the proxy's own
# upstream connections are left alone (no loop).
#
#                    C (container) 192.0.2.130/25, 2001:db8:3::2
#                      |
#   Y (client) ---- X (gw: tproxy-relay -t as nobody, on :8080) ---- Z (server :80)
#
# X's rules: prerouting as in nft_divert_relay.sh, and
#
#	chain output { type filter hook output priority mangle;
#		meta skuid nobody return
#		meta l4proto P th dport 80 divert }
#
# A process on X and one in C connect to Z:80 (TCP and UDP, IPv4 and IPv6).
# The proxy must log each of them once, with the original destination, and
# Z must see each once, from X's address: the proxy's own connection to Z
# is not diverted back into the proxy.  No ip rule, route table or mark.

source "$(dirname "$(readlink -f "$0")")/lib.sh"
# shellcheck source=relay_scenarios.sh
source "$SELFTEST_DIR/relay_scenarios.sh"

require_nft_patched

CONTAINER_IP4=192.0.2.130
CONTAINER_GW4=192.0.2.129
CONTAINER_IP6=2001:db8:3::2
CONTAINER_GW6=2001:db8:3::1

# A namespace behind X on a veth pair of its own, as a container runtime
# would attach it.
setup_container()
{
	setup_ns container || return 1
	# shellcheck disable=SC2154 # set by setup_ns
	ip -n "$container" link add veth0 type veth peer name vethc netns "$gw" &&
	ip -n "$container" addr add "$CONTAINER_IP4/25" dev veth0 &&
	ip -n "$container" addr add "$CONTAINER_IP6/64" dev veth0 nodad &&
	ip -n "$gw" addr add "$CONTAINER_GW4/25" dev vethc &&
	ip -n "$gw" addr add "$CONTAINER_GW6/64" dev vethc nodad &&
	ip -n "$container" link set veth0 up &&
	ip -n "$gw" link set vethc up &&
	ip -n "$container" route add default via "$CONTAINER_GW4" &&
	ip -n "$container" -6 route add default via "$CONTAINER_GW6" &&
	busywait "$BUSYWAIT_TIMEOUT" __ping_ok "$container" "$SERVER_IP4" &&
	busywait "$BUSYWAIT_TIMEOUT" __ping_ok "$container" "$SERVER_IP6"
}

output_rules()
{
	nftp "$gw" -f - <<EOF
table inet proxy {
	chain output {
		type filter hook output priority mangle; policy accept;
		meta skuid nobody return
		meta l4proto $1 th dport $SERVICE_PORT divert
	}
}
EOF
}

# from NS PROTO F SEEN: one request from NS to Z over IPv$F; Z must answer,
# having seen SEEN; the proxy must have logged exactly one more connection,
# from the requester, for Z:80.
from()
{
	local ns=$1 proto=$2 f=$3 seen=$4 who=$5 z src n0 n1 out

	eval "z=\$SERVER_IP$f"
	n0=$(grep -c "^$proto client=" "$gw.relay.log")
	out=$(client=$ns ask "$proto" "$z" "$SERVICE_PORT")
	n1=$(grep -c "^$proto client=" "$gw.relay.log")
	if grep -qx "server peer=$(addr_re "$seen"):[0-9]* orig=.* line=one" <<<"$out"; then
		log_pass "$proto ipv$f $who: Z answers through the proxy and sees $seen"
	else
		log_fail "$proto ipv$f $who: Z answers through the proxy and sees $seen: got '${out//$'\n'/ | }'"
	fi
	src=$(grep "^$proto client=" "$gw.relay.log" | tail -n 1)
	if [ $((n1 - n0)) -eq 1 ] &&
	   grep -q "orig=$(addr_re "$z"):$SERVICE_PORT " <<<"$src"; then
		log_pass "$proto ipv$f $who: the proxy logged it once, for $z:$SERVICE_PORT"
	else
		log_fail "$proto ipv$f $who: the proxy logged it once, for $z:$SERVICE_PORT ($((n1 - n0)) new):"
		sed 's/^/    relay: /' "$gw.relay.log"
	fi
}

for proto in tcp udp; do
	RELAY_DELIVERY=divert relay_setup "$proto"
	if ! output_rules "$proto"; then
		log_fail "$proto: X's output rules load"
		exit "$ret"
	fi
	setup_container || { log_fail "the container reaches Z"; exit "$ret"; }
	relay_start "$proto" -t -U nobody
	for f in 4 6; do
		eval "xz=\$GW_SERVER_IP$f"
		from "$gw" "$proto" "$f" "$xz" "a process on X"
		from "$container" "$proto" "$f" "$xz" "a process in the container"
	done
	# Z saw one connection per request (4), not one per loop of the
	# proxy's own connection through itself.
	n=$(grep -c "^$proto client=" "$gw.relay.log")
	if [ "$n" -eq 4 ]; then
		log_pass "$proto: 4 requests, 4 proxied connections: the proxy's own are not diverted"
	else
		log_fail "$proto: 4 requests, $n proxied connections"
	fi
	relay_stop
	assert_ours_served tproxy
	cleanup_all_ns
done

exit "$ret"
