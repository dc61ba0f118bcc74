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

for f in 4 6; do
	eval "dst=\$SERVER_IP$f"
	[ $f = 6 ] && dst="[$dst]"
	port=$((40000 + f))
	# shellcheck disable=SC2154 # set by setup_topology
	connect="ip netns exec $client timeout 5 socat -u TCP$f:$dst:80,sourceport=$port,reuseaddr -"
	if [ "$($connect 2>/dev/null)" != hello ]; then
		log_fail "ipv$f: the first connection is intercepted"
		continue
	fi
	if ! busywait "$BUSYWAIT_TIMEOUT" time_wait_on_gw "$port"; then
		log_fail "ipv$f: the gateway holds the connection in TIME_WAIT"
		continue
	fi
	if [ "$($connect 2>/dev/null)" = hello ]; then
		log_pass "ipv$f: a new SYN for a tuple in TIME_WAIT reaches the transparent listener"
	else
		log_fail "ipv$f: a new SYN for a tuple in TIME_WAIT reaches the transparent listener"
	fi
done

exit "$ret"
