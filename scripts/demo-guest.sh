#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The part of `make demo` that runs inside the VM (scripts/demo.sh): the
# seed scenario with full transparency.
#
#   Y (client)  192.0.2.2     ---- 192.0.2.1  X (gateway) 198.51.100.1 ---- 198.51.100.2  Z (server)
#               2001:db8:1::2 ---- 2001:db8:1::1        2001:db8:2::1  ---- 2001:db8:2::2
#
# X diverts port 80 to the reference proxy (tproxy-relay -t -T on port
# 8080): nft tproxy, no NAT.  The proxy connects on to Z from Y's own
# address.  Every program logs what it saw; the table at the end is made
# from those logs.

set -u
# shellcheck source=selftests/lib.sh
source "$(dirname "$(readlink -f "$0")")/../selftests/lib.sh"

RELAY=$SELFTEST_DIR/../proxy/tproxy-relay
ECHO=$SELFTEST_DIR/tproxy_echo
logs=$(mktemp -d)

echo "=== demo begins"
echo "kernel $(uname -r); nft_tproxy $(cat /sys/module/nft_tproxy/version 2>/dev/null) from $NFT_TPROXY_MODDIR"
if modprobe nf_tproxy_ipv4 2>/dev/null; then
	echo "in-tree nf_tproxy_ipv4: loadable (not blocked)"
else
	echo "in-tree modules blocked: modprobe nf_tproxy_ipv4 is refused"
fi
setup_topology >/dev/null || { echo "demo: topology failed"; exit 1; }

# shellcheck disable=SC2154 # set by setup_topology
ip netns exec "$gw" nft -f - <<EOF
table inet demo {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto { tcp, udp } socket transparent 1 meta mark set 1 accept
		meta l4proto { tcp, udp } th dport 80 tproxy ip to :8080 meta mark set 1 accept
		meta l4proto { tcp, udp } th dport 80 tproxy ip6 to :8080 meta mark set 1 accept
	}
}
EOF
tproxy_routing "$gw"
echo
echo "X's ruleset (plus: ip rule fwmark 1 lookup 100; ip route add local 0.0.0.0/0 dev lo table 100, and the same for IPv6):"
ip netns exec "$gw" nft list ruleset | sed 's/^/    /'

for proto in tcp udp; do
	udp=""
	[ "$proto" = udp ] && udp=-u
	ip netns exec "$gw" "$RELAY" $udp -t -T -l "[::]:8080" >"$logs/relay.$proto" 2>&1 &
	# shellcheck disable=SC2154 # set by setup_topology
	ip netns exec "$server" "$ECHO" -6 $udp -n -t Z -p 80 -o "$logs/server.$proto" 2>/dev/null &
	if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 "$proto" ||
	   ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" 80 "$proto"; then
		echo "demo: no $proto listeners"
		exit 1
	fi
done

echo
printf '%-4s %-4s | %-34s | %-58s | %s\n' proto ip "Y sent to / got an answer from" \
	"X (proxy) saw: client, original destination, upstream" "Z (server) saw"
for proto in tcp udp; do
	for f in 4 6; do
		eval "z=\$SERVER_IP$f"
		[ $f = 6 ] && z="[$z]"
		# shellcheck disable=SC2154 # set by setup_topology
		answer=$(echo hello | ip netns exec "$client" timeout 5 socat -t 2 - "${proto^^}$f:$z:80" 2>&1)
		xsaw=$(grep "^$proto client=" "$logs/relay.$proto" | tail -n 1 | sed 's/^[a-z]* //')
		zsaw=$(grep "^Z $proto " "$logs/server.$proto" | tail -n 1 | sed 's/^Z [a-z]* //')
		from="(no answer: $answer)"
		[[ "$answer" == "Z peer="* ]] && from="$z:80"
		printf '%-5s %-4s | %-34s | %-58s | %s\n' "$proto" "ipv$f" "$z:80 / $from" "$xsaw" "$zsaw"
	done
done
echo
echo "Y believes it talks to Z; Z sees Y's own address; X relays without NAT."
echo "served by our module: $(cat /sys/module/nft_tproxy/refcnt) rule reference(s) on nft_tproxy $(cat /sys/module/nft_tproxy/version);" \
	"in-tree helpers loaded: $(grep -cE '^(nf_tproxy_ipv4|nf_tproxy_ipv6|nf_socket_ipv4|nf_socket_ipv6) ' /proc/modules)"
echo "=== demo ends"
rm -rf "$logs"
