#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: with divert, the proxy on X needs no ip rule, no route table and no
# mark; without it, the same rules deliver nothing to the proxy.
#
#   Y (client)                 X (gw, tproxy-relay :8080)            Z (server :80)
#   192.0.2.2     ------  192.0.2.1 | 198.51.100.1  ------  198.51.100.2
#   2001:db8:1::2 ------  2001:db8:1::1 | 2001:db8:2::1 ---  2001:db8:2::2
#
# The seeds' four proxy setups (relay_scenarios.sh: plain relay, -T, -t -T,
# -t), TCP and UDP, IPv4 and IPv6, with X's rules
#
#	meta l4proto P socket transparent 1 divert accept
#	meta l4proto P th dport 80 tproxy ip to :8080 divert accept
#	meta l4proto P th dport 80 tproxy ip6 to :8080 divert accept
#
# and X's policy routing left as a new namespace has it.  Then the control:
# the same rules without divert.  The diverted connections (-t) then never
# reach the proxy, and Z's answers to Y's address (-T) reach X but are
# routed to be forwarded, not delivered to the proxy's upstream socket (the
# forwarding path drops a packet that carries a socket): no answer.

source "$(dirname "$(readlink -f "$0")")/lib.sh"
# shellcheck source=relay_scenarios.sh
source "$SELFTEST_DIR/relay_scenarios.sh"

require_nft_patched

# X's routing policy is the default one, and nothing in its rules sets a mark.
no_policy_routing()
{
	local proto=$1 v4 v6 tables

	v4=$(ip -n "$gw" -4 rule show | awk '{ print $NF }' | tr '\n' ' ')
	v6=$(ip -n "$gw" -6 rule show | awk '{ print $NF }' | tr '\n' ' ')
	tables=$(ip -n "$gw" route show table all | grep -o 'table [a-z0-9]*' |
		 sort -u | tr '\n' ' ')
	tables+=$(ip -n "$gw" -6 route show table all | grep -o 'table [a-z0-9]*' |
		  sort -u | tr '\n' ' ')
	if [ "$v4" = "local main default " ] && [ "$v6" = "local main " ] &&
	   [ "$tables" = "table local table local " ] &&
	   ! nftp "$gw" list ruleset | grep -q mark; then
		log_pass "$proto: X has only the default ip rules, no table but main and local, no mark"
	else
		log_fail "$proto: X has only the default ip rules ($v4/ $v6), no other table ($tables), no mark"
	fi
}

# The packets from Z's service port that reached X for an address not X's.
from_z()
{
	ip netns exec "$gw" nft list chain inet watch prerouting |
		awk '/counter packets/ { print $(NF - 2) }'
}

# control PROTO: the divert ruleset without divert.  What must not come
# back is given 3 s (Z answers within milliseconds when it does).
control()
{
	# shellcheck disable=SC2034 # ASK_TIMEOUT: read by ask()
	local proto=$1 f x z out n0 n1 ASK_TIMEOUT=3

	RELAY_DELIVERY=none relay_setup "$proto"
	nft_in "$gw" <<EOF
table inet watch {
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		meta l4proto $proto th sport $SERVICE_PORT fib daddr type != local counter
	}
}
EOF
	for f in 4 6; do
		eval "x=\$GW_CLIENT_IP$f z=\$SERVER_IP$f"

		relay_start "$proto" -T -d "$(bracket "$z"):$SERVICE_PORT"
		n0=$(from_z)
		out=$(ask "$proto" "$x" "$RELAY_PORT")
		n1=$(from_z)
		# Y's request is addressed to X and reaches the proxy, which
		# connects to Z from Y's address; Z's answer reaches X,
		# addressed to Y, and is routed past the proxy.
		if grep -q '^server ' <<<"$out"; then
			log_fail "$proto ipv$f without divert, -T: Z's answer still reaches the proxy"
		elif [ "$n1" -le "$n0" ]; then
			log_fail "$proto ipv$f without divert, -T: no answer of Z reached X"
		else
			log_pass "$proto ipv$f without divert, -T: Z's answer to Y's address reaches X ($((n1 - n0)) packets) but not the proxy"
		fi
		relay_stop

		for opts in "-t -T" "-t"; do
			# shellcheck disable=SC2086 # two options
			relay_start "$proto" $opts
			out=$(ask "$proto" "$z" "$SERVICE_PORT")
			if grep -q '^server ' <<<"$out" || grep -q "^$proto client=" "$gw.relay.log"; then
				log_fail "$proto ipv$f without divert, $opts: the connection reaches the proxy"
			else
				log_pass "$proto ipv$f without divert, $opts: nothing reaches the proxy"
			fi
			relay_stop
		done
	done
}

for proto in tcp udp; do
	RELAY_DELIVERY=divert relay_scenarios "$proto"
	no_policy_routing "$proto"
	assert_ours_served tproxy
	cleanup_all_ns
done

for proto in tcp udp; do
	control "$proto"
	cleanup_all_ns
done

exit "$ret"
