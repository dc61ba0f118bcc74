#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The part of `make demo` that runs inside the VM (scripts/demo.sh).
#
#   client 192.0.2.2 ---- 192.0.2.1 gw 198.51.100.1 ---- 198.51.100.2 server
#   2001:db8:1::2 ----- 2001:db8:1::1 | 2001:db8:2::1 ----- 2001:db8:2::2
#
# The gateway diverts TCP port 80 to a transparent listener (socat with
# ip-transparent) on its port 8080.  The client connects to the server's
# port 80; the gateway's listener answers and tells which client address and
# which original destination it saw, though nothing was NATed.

set -u
# shellcheck source=selftests/lib.sh
source "$(dirname "$(readlink -f "$0")")/../selftests/lib.sh"

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
		meta l4proto tcp socket transparent 1 meta mark set 1 accept
		tcp dport 80 tproxy ip to :8080 meta mark set 1 accept
		tcp dport 80 tproxy ip6 to :8080 meta mark set 1 accept
	}
}
EOF
tproxy_routing "$gw"
echo
echo "gateway ruleset:"
ip netns exec "$gw" nft list ruleset | sed 's/^/    /'

# One listener per family, so that IPv4 addresses print as such.
for listen in TCP4-LISTEN:8080 TCP6-LISTEN:8080,ipv6-v6only=1; do
	# shellcheck disable=SC2016 # expanded by the shell socat starts
	ip netns exec "$gw" socat "$listen,ip-transparent,reuseaddr,fork" \
		SYSTEM:'echo "gateway listener on port 8080: client $SOCAT_PEERADDR port $SOCAT_PEERPORT, original destination $SOCAT_SOCKADDR port $SOCAT_SOCKPORT"' \
		2>/dev/null &
done
busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp || { echo "demo: no listener"; exit 1; }

echo
for dst in "$SERVER_IP4" "[$SERVER_IP6]"; do
	echo "client $CLIENT_IP4 / $CLIENT_IP6 connects to $dst port 80 (the server runs nothing):"
	# shellcheck disable=SC2154 # set by setup_topology
	printf '    %s\n' "$(ip netns exec "$client" timeout 5 socat -u "TCP:$dst:80" - 2>&1)"
done
echo
echo "served by our module: $(cat /sys/module/nft_tproxy/refcnt) rule reference(s) on nft_tproxy $(cat /sys/module/nft_tproxy/version);" \
	"in-tree helpers loaded: $(grep -cE '^(nf_tproxy_ipv4|nf_tproxy_ipv6|nf_socket_ipv4|nf_socket_ipv6) ' /proc/modules)"
echo "=== demo ends"
