#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: a packet that divert delivers locally never lends its route to
# the packets received in the same batch: in one receive batch, the
# packets to the same address that no rule diverts are forwarded to the
# server, TCP and UDP, IPv4 and IPv6.
#
#   client ---------------------- gw -------------------------- server
#   veth0: netem slot 20ms        veth0: NAPI (GRO on, or an     :81 endpoint
#   (bursts), TSO/GSO off         XDP_PASS program), forwards    "server"
#                                 tproxy_echo :8080 "proxy"
#
# The list receive path (ip_list_rcv_finish, ip6_list_rcv_finish) gives the
# next packets of a batch the route of the packet before them when their
# destination address (and IPv4 TOS) is the same and the namespace has no
# ip rules: the route hint.  divert's namespace has none, and the local
# route divert gives one packet must not be copied to the others.
#
# First the batches are shown to form: with no rule on the gateway, a burst
# of datagrams to the server costs fewer FIB lookups than packets forwarded
# (the fib:fib_table_lookup and fib6:fib6_table_lookup tracepoints), which
# only route hints, hence batches, explain.  Then, with the rules
#
#	meta l4proto { tcp, udp } divert accept
#	meta l4proto { tcp, udp } th dport 80 tproxy ip to :8080 divert accept
#	meta l4proto { tcp, udp } th dport 80 tproxy ip6 to :8080 divert accept
#
# the client sends, interleaved in bursts, flows to the server's port 80
# (diverted to the proxy) and port 81 (not diverted): UDP, 20 rounds of one
# datagram to :80 and two to :81; TCP, 20 connections to each port opened
# at once, then three lines on every connection.  Every :80 flow must reach
# the proxy and every :81 flow the server; none may be delivered to the
# gateway itself; and over IPv4 the forwarded packets must again have cost
# fewer lookups than their number, so that the batches formed in that very
# burst (over IPv6 a kernel without IP6SKB_MULTIPATH takes no route hints
# once divert is loaded, see divert.rst).

source "$(dirname "$(readlink -f "$0")")/lib.sh"

ECHO=$SELFTEST_DIR/tproxy_echo
BURST=$SELFTEST_DIR/batch_burst.py
XDP_PASS=$SELFTEST_DIR/xdp_pass
TRACE=$FIB_TRACE
ROUNDS=20

checktool "nft --version" "run nft"
checktool "ethtool --version" "run ethtool"
checktool "tc -V" "run tc"
checktool "python3 -V" "run python3"
require_nft_patched
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }
setup_topology || exit "$ksft_fail"

fib_trace_on "cannot show that batches form"

# The client's qdisc holds each burst and releases it at once; the
# gateway's receiving veth runs NAPI, which hands the stack lists.
# shellcheck disable=SC2154 # set by setup_topology
ip netns exec "$client" ethtool -K "$CLIENT_IF" tso off gso off >/dev/null 2>&1
tc -n "$client" qdisc add dev "$CLIENT_IF" root netem slot 20ms 20ms

nft_in "$gw" <<EOF
table inet watch {
	counter fwd4 { }
	counter fwd6 { }
	counter local81 { }
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr $SERVER_IP4 counter name fwd4
		ip6 daddr $SERVER_IP6 counter name fwd6
	}
	chain input {
		type filter hook input priority filter; policy accept;
		meta l4proto { tcp, udp } th dport 81 counter name local81
	}
}
EOF

# counter NAME: packets counted so far by the gateway's counter NAME.
counter()
{
	nft_counter "$gw" watch "$1"
}

# lookups ADDR: the FIB lookups traced since the last trace_clear that
# forwarded a packet received on the gateway's client side to ADDR: only
# the gateway routes out of its $GW_SERVER_IF (the tracepoints see every
# namespace), and the input interface leaves out the source validation of
# the server's answers, a lookup from lo towards ADDR.
# shellcheck disable=SC2154 # set by setup_topology
gw_client_ifindex=$(ip netns exec "$gw" cat "/sys/class/net/$GW_CLIENT_IF/ifindex")
lookups()
{
	grep -c -- "iif $gw_client_ifindex .*-> ${1//./\\.}/[0-9]* .*==> dev $GW_SERVER_IF " "$TRACE/trace"
}

trace_clear()
{
	echo >"$TRACE/trace"
}

# batched F LABEL CMD...: run CMD (traffic to the server over IPv$F, its
# output in $gw.out); say how many packets were
# forwarded and looked up, and succeed if fewer were looked up: route hints
# served the others, so batches formed.
batched()
{
	local f=$1 label=$2 z n0 n1 l
	shift 2

	eval "z=\$SERVER_IP$f"
	n0=$(counter "fwd$f")
	trace_clear
	"$@" >"$gw.out"
	n1=$(counter "fwd$f")
	l=$(lookups "$z")
	echo "$label ipv$f: $((n1 - n0)) packets forwarded to $z, $l FIB lookups"
	[ "$l" -lt $((n1 - n0)) ]
}

udp_burst()
{
	ip netns exec "$client" python3 "$BURST" udp "$@"
}

# calibrate: with no rule on the gateway, does a burst form batches?
calibrate()
{
	local f z ok=0

	for f in 4 6; do
		eval "z=\$SERVER_IP$f"
		batched "$f" "calibration" udp_burst "$z" "$ROUNDS" 81 82 &&
			ok=$((ok + 1))
	done
	[ $ok -eq 2 ]
}

# NAPI on the gateway's client side: GRO (veth since 5.13), else a
# program that passes every packet (veth's XDP mode).
batch_mode=gro
ip netns exec "$gw" ethtool -K "$GW_CLIENT_IF" gro on >/dev/null 2>&1
if ! calibrate; then
	ip netns exec "$gw" ethtool -K "$GW_CLIENT_IF" gro off >/dev/null 2>&1
	batch_mode=xdp
	if [ ! -x "$XDP_PASS" ] ||
	   ! ip netns exec "$gw" "$XDP_PASS" "$GW_CLIENT_IF" || ! calibrate; then
		log_fail "no receive batch formed on the gateway (GRO, then XDP): the test would prove nothing"
		exit "$ret"
	fi
fi
log_pass "receive batches form on the gateway ($batch_mode): fewer FIB lookups than packets forwarded"

if ! nftp "$gw" -f - <<EOF
table inet proxy {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto { tcp, udp } divert accept
		meta l4proto { tcp, udp } th dport 80 tproxy ip to :8080 divert accept
		meta l4proto { tcp, udp } th dport 80 tproxy ip6 to :8080 divert accept
	}
}
EOF
then
	log_fail "the gateway's divert ruleset loads"
	exit "$ret"
fi

# endpoints PROTO: the proxy on the gateway and the server's :81, logging
# one line per connection or datagram.
endpoints()
{
	local udp=""

	[ "$1" = udp ] && udp=-u
	# shellcheck disable=SC2086 # no pid yet, or two
	[ -z "${echo_pids:-}" ] || { kill $echo_pids; wait $echo_pids; } 2>/dev/null
	rm -f "$gw.proxy.log" "$server.server.log"
	ip netns exec "$gw" "$ECHO" -6 $udp -t proxy -p 8080 \
		-o "$gw.proxy.log" 2>/dev/null &
	echo_pids=$!
	ip netns exec "$server" "$ECHO" -6 $udp -n -t server -p 81 \
		-o "$server.server.log" 2>/dev/null &
	echo_pids+=" $!"
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 "$1" &&
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" 81 "$1"
}
on_exit "rm -f '$gw.proxy.log' '$server.server.log' '$gw.out'"

local_delta()
{
	echo $(( $(counter local81) - $1 ))
}

# udp_landed ADDR A0 B0: every datagram of the burst reached its endpoint.
udp_landed()
{
	[ $(( $(echo_logged "$gw.proxy.log" udp "$1" 80) - $2 )) -ge "$ROUNDS" ] &&
	[ $(( $(echo_logged "$server.server.log" udp "$1" 81) - $3 )) -ge $((2 * ROUNDS)) ]
}

for proto in udp tcp; do
	if ! endpoints "$proto"; then
		log_fail "$proto: the proxy and the server listen"
		continue
	fi
	for f in 4 6; do
		eval "z=\$SERVER_IP$f"
		l0=$(counter local81)
		if [ "$proto" = udp ]; then
			a0=$(echo_logged "$gw.proxy.log" udp "$z" 80)
			b0=$(echo_logged "$server.server.log" udp "$z" 81)
			formed=yes
			batched "$f" "udp" udp_burst "$z" "$ROUNDS" 80 81 81 || formed=no
			busywait 5000 udp_landed "$z" "$a0" "$b0"
			a=$(( $(echo_logged "$gw.proxy.log" udp "$z" 80) - a0 ))
			b=$(( $(echo_logged "$server.server.log" udp "$z" 81) - b0 ))
			what="$a/$ROUNDS datagrams to :80 at the proxy, $b/$((2 * ROUNDS)) to :81 at the server"
			good=$(( a == ROUNDS && b == 2 * ROUNDS ))
		else
			formed=yes
			batched "$f" "tcp" ip netns exec "$client" \
				python3 "$BURST" tcp "$z" "$ROUNDS" 80:proxy 81:server ||
				formed=no
			out=$(cat "$gw.out")
			what=$(echo "$out" | sed 's/^80 /:80 at the proxy /; s/^81 /:81 at the server /' |
			       tr '\n' ' ')
			good=0
			grep -qx "80 good=$ROUNDS/$ROUNDS" <<<"$out" &&
				grep -qx "81 good=$ROUNDS/$ROUNDS" <<<"$out" && good=1
		fi
		l=$(local_delta "$l0")
		# Without IP6SKB_MULTIPATH (5.10) divert turns IPv6 route hints
		# off in the namespace: there only the calibration shows batches.
		[ "$f" = 4 ] || [ "$formed" = yes ] || formed="no (IPv6 may take no hints)"
		if [ "$good" = 1 ] && [ "$l" -eq 0 ] && [[ $formed != no ]]; then
			log_pass "$proto ipv$f: in bursts, diverted flows reach the proxy and the others the server: $what"
		else
			log_fail "$proto ipv$f: in bursts, diverted flows reach the proxy and the others the server: $what; $l packets to :81 delivered to the gateway itself; batches formed (fewer lookups than packets forwarded): $formed"
		fi
	done
done
assert_ours_served tproxy

exit "$ret"
