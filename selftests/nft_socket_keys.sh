#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: on real traffic the socket expression reads the properties of the
# local socket a packet belongs to, in prerouting, input and output, for
# IPv4 and IPv6: transparent, mark (SO_MARK), wildcard bind; and a packet
# with no local socket matches no socket rule, not even "transparent 0".
#
#   client ---- gw ---- server
#                       :81 bound to ::, SO_MARK 42, not transparent
#                       :82 bound to the server's addresses
#                       :83 nothing
#
# Counters on the server's rules must be hit (or not) as the sockets say.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
setup_topology || exit "$ksft_fail"

# shellcheck disable=SC2154 # set by setup_topology
if ! ip netns exec "$server" nft -f - <<EOF
table inet sk {
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		tcp dport 81 socket transparent 0 counter name pre_t0
		tcp dport 81 socket transparent 1 counter name pre_t1
	}
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport 81 socket mark 42 counter name in_mark42
		tcp dport 81 socket mark 7 counter name in_mark7
		tcp dport 81 socket wildcard 1 counter name in_wild1
		tcp dport 82 socket wildcard 0 counter name in_wild0
		tcp dport 82 socket wildcard 1 counter name in_wild82
		tcp dport 83 socket transparent 0 counter name in_none
	}
	chain out {
		type filter hook output priority 0; policy accept;
		tcp sport 81 socket mark 42 counter name out_mark42
		tcp sport 81 socket transparent 0 counter name out_t0
	}
	counter pre_t0 {}
	counter pre_t1 {}
	counter in_mark42 {}
	counter in_mark7 {}
	counter in_wild1 {}
	counter in_wild0 {}
	counter in_wild82 {}
	counter in_none {}
	counter out_mark42 {}
	counter out_t0 {}
}
EOF
then
	log_fail "the socket ruleset loads"
	exit "$ret"
fi
assert_ours_served socket

ip netns exec "$server" socat TCP6-LISTEN:81,ipv6-v6only=0,reuseaddr,fork,setsockopt-int=1:36:42 \
	SYSTEM:'echo 81' 2>/dev/null &
ip netns exec "$server" socat "TCP4-LISTEN:82,bind=$SERVER_IP4,reuseaddr,fork" \
	SYSTEM:'echo 82' 2>/dev/null &
ip netns exec "$server" socat "TCP6-LISTEN:82,bind=[$SERVER_IP6],reuseaddr,fork" \
	SYSTEM:'echo 82' 2>/dev/null &
for port in 81 82; do
	if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" $port tcp; then
		log_fail "the listener on the server's port $port"
		exit "$ret"
	fi
done

for dst in "$SERVER_IP4" "[$SERVER_IP6]"; do
	for port in 81 82; do
		# shellcheck disable=SC2154 # set by setup_topology
		out=$(ip netns exec "$client" timeout 5 socat -u "TCP:$dst:$port" - 2>/dev/null)
		[ "$out" = "$port" ] || log_fail "connection to $dst:$port answered '$out'"
	done
	ip netns exec "$client" timeout 5 socat -u "TCP:$dst:83" - >/dev/null 2>&1
done

packets()
{
	nft_counter "$server" sk "$1"
}

# counter NAME hit|none WHAT
counter()
{
	local n

	n=$(packets "$1")
	if { [ "$2" = hit ] && [ "${n:-0}" -gt 0 ]; } ||
	   { [ "$2" = none ] && [ "${n:-1}" -eq 0 ]; }; then
		log_pass "$3 ($1: $n packets)"
	else
		log_fail "$3 ($1: ${n:-?} packets, want $2)"
	fi
}

counter pre_t0 hit "prerouting: socket transparent 0 matches a plain socket"
counter pre_t1 none "prerouting: socket transparent 1 does not"
counter in_mark42 hit "input: socket mark reads the listener's SO_MARK 42"
counter in_mark7 none "input: socket mark 7 does not match it"
counter in_wild1 hit "input: socket wildcard 1 matches a socket bound to ::"
counter in_wild0 hit "input: socket wildcard 0 matches a socket bound to an address"
counter in_wild82 none "input: socket wildcard 1 does not match it"
counter in_none none "input: with no local socket, socket transparent 0 does not match"
counter out_mark42 hit "output: socket mark reads the sending socket's mark"
counter out_t0 hit "output: socket transparent 0 matches the sending socket"

exit "$ret"
