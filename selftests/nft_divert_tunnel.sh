#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: divert routes a packet from a collect_md (external) tunnel as the
# stack would: its input route lookup sees the tunnel id, and a packet it
# refuses keeps the tunnel metadata for the stack's own lookup.  Policy
# routing by tunnel id then holds, IPv4 and IPv6.
#
#   client gre1, gre6 (key 5) == GRE over veth0 == gw gre1, gre6 (external)
#                                                   |
#                                                 server :81
#
# The gateway routes what tunnel 5 brings by its own table, ahead of the
# local routes (as VRF setups move the local rule), and has no route of
# its own to the server's address:
#
#	ip rule: 10 tun_id 5 lookup 200, 100 lookup local (moved from 0)
#	table 200: default via the server; main: blackhole SERVER/32 (/128)
#
# and on the gateway, a transparent UDP socket bound to the server's
# address and port 81 and connected to the client's port 5000 (the flow's
# own socket, as a proxy's would be), and
#
#	meta l4proto udp divert accept
#
# divert finds that socket for the client's datagrams from port 5000 to
# SERVER:81 and asks for a local input route: with the tunnel id, table 200 answers with
# a route to the server, not a local one, and divert must refuse; the
# stack's own lookup, with the tunnel id again, then forwards the datagram
# to the server.  A divert that lost the id would deliver the datagrams to
# the gateway's socket (the local rule answers), and a packet that lost its
# metadata after divert refused it would be blackholed.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

ECHO=$SELFTEST_DIR/tproxy_echo
N=10
GW_TUN_IP4=192.0.2.253
GW_TUN_IP6=2001:db8:9::1

checktool "nft --version" "run nft"
checktool "python3 -V" "run python3"
require_nft_patched
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }
setup_topology || exit "$ksft_fail"

# shellcheck disable=SC2154 # set by setup_topology
if ! ip -n "$gw" link add gre1 type gre external 2>/dev/null ||
   ! ip -n "$gw" link add gre6 type ip6gre external 2>/dev/null; then
	echo "SKIP: no external (collect_md) GRE devices: CONFIG_NET_IPGRE, CONFIG_IPV6_GRE"
	exit "$ksft_skip"
fi

# tunnels: the client's keyed GRE tunnels to the gateway, each the route
# to the server's address of its family.
tunnels()
{
	# shellcheck disable=SC2154
	ip -n "$client" link add gre1 type gre local "$CLIENT_IP4" \
		remote "$GW_CLIENT_IP4" key 5 &&
	ip -n "$client" link add gre6 type ip6gre local "$CLIENT_IP6" \
		remote "$GW_CLIENT_IP6" key 5 &&
	ip -n "$client" link set gre1 up &&
	ip -n "$client" link set gre6 up &&
	ip -n "$client" route add "$SERVER_IP4/32" dev gre1 src "$CLIENT_IP4" &&
	ip -n "$client" -6 route add "$SERVER_IP6/128" dev gre6 src "$CLIENT_IP6" &&
	ip -n "$gw" addr add "$GW_TUN_IP4/32" dev gre1 &&
	ip -n "$gw" addr add "$GW_TUN_IP6/128" dev gre6 nodad &&
	ip -n "$gw" link set gre1 up &&
	ip -n "$gw" link set gre6 up
}

# policy: tunnel 5's packets routed by table 200, before the local routes.
policy()
{
	local f

	for f in 4 6; do
		ip -n "$gw" -"$f" rule del pref 0 lookup local &&
		ip -n "$gw" -"$f" rule add pref 100 lookup local &&
		ip -n "$gw" -"$f" rule add pref 10 tun_id 5 lookup 200 || return 1
	done
	ip -n "$gw" route add default via "$SERVER_IP4" dev "$GW_SERVER_IF" table 200 &&
	ip -n "$gw" -6 route add default via "$SERVER_IP6" dev "$GW_SERVER_IF" table 200 &&
	ip -n "$gw" route add blackhole "$SERVER_IP4/32" &&
	ip -n "$gw" -6 route add blackhole "$SERVER_IP6/128"
}

if ! tunnels || ! policy; then
	log_fail "the tunnels and the gateway's policy routing are set up"
	exit "$ret"
fi

if ! nftp "$gw" -f - <<EOF
table inet t {
	counter taken { }
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		iifname { "gre1", "gre6" } meta l4proto udp counter name taken divert accept
	}
}
EOF
then
	log_fail "the gateway's divert rule loads"
	exit "$ret"
fi

# FLOW_SOCK LOCAL PEER LOG: a transparent UDP socket bound to LOCAL:81
# and connected to PEER:5000, logging a line per datagram.
FLOW_SOCK='
import socket, sys
six = ":" in sys.argv[1]
s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)
if six:
    s.setsockopt(socket.IPPROTO_IPV6, 75, 1)  # IPV6_TRANSPARENT
else:
    s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT
s.bind((sys.argv[1], 81))
s.connect((sys.argv[2], 5000))
with open(sys.argv[3], "a", buffering=1) as log:
    while True:
        s.recv(64)
        log.write("datagram\n")
'

# SEND ADDR N: N datagrams from port 5000 to ADDR:81.
SEND='
import socket, sys
six = ":" in sys.argv[1]
s = socket.socket(socket.AF_INET6 if six else socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("::" if six else "0.0.0.0", 5000))
for _ in range(int(sys.argv[2])):
    s.sendto(b"x\n", (sys.argv[1], 81))
'

rm -f "$gw.sock4.log" "$gw.sock6.log" "$server.server.log"
on_exit "rm -f '$gw.sock4.log' '$gw.sock6.log' '$gw.sock.err' '$server.server.log'"
ip netns exec "$gw" python3 -c "$FLOW_SOCK" "$SERVER_IP4" "$CLIENT_IP4" "$gw.sock4.log" \
	2>"$gw.sock.err" &
pids=$!
ip netns exec "$gw" python3 -c "$FLOW_SOCK" "$SERVER_IP6" "$CLIENT_IP6" "$gw.sock6.log" \
	2>>"$gw.sock.err" &
pids+=" $!"
ip netns exec "$server" "$ECHO" -6 -u -n -t server -p 81 \
	-o "$server.server.log" 2>/dev/null &
pids+=" $!"
on_exit "kill $pids 2>/dev/null"
# A connected socket does not listen: each opens its log once connected.
# Python takes up to 16 s to start in a loaded emulated guest.
if ! busywait $((3 * BUSYWAIT_TIMEOUT)) test -e "$gw.sock4.log" ||
   ! busywait $((3 * BUSYWAIT_TIMEOUT)) test -e "$gw.sock6.log" ||
   ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" 81 udp; then
	log_fail "the gateway's flow sockets are connected and the server listens"
	sed 's/^/    /' "$gw.sock.err"
	exit "$ret"
fi

# at_gw F: datagrams the gateway's IPv$F flow socket got.
at_gw()
{
	local n

	n=$(grep -c . "$gw.sock$1.log" 2>/dev/null)
	echo "${n:-0}"
}

# arrived ADDR F: all N datagrams to ADDR landed, at the server or the gateway.
arrived()
{
	[ $(( $(echo_logged "$server.server.log" udp "$1" 81) + $(at_gw "$2") )) -ge "$N" ]
}

for f in 4 6; do
	v=SERVER_IP$f
	z=${!v}
	t0=$(nft_counter "$gw" t taken)
	r0=$(nft_tproxy_stat "$gw" refused)
	ip netns exec "$client" python3 -c "$SEND" "$z" "$N"
	busywait 5000 arrived "$z" "$f"
	taken=$(( $(nft_counter "$gw" t taken) - t0 ))
	refused=$(( $(nft_tproxy_stat "$gw" refused) - r0 ))
	srv=$(echo_logged "$server.server.log" udp "$z" 81)
	sock=$(at_gw "$f")
	what="$N sent through tunnel 5, $taken taken by the divert rule, $refused refused, $srv at the server, $sock at the gateway's flow socket"
	if [ "$taken" -eq "$N" ] && [ "$refused" -eq "$N" ] &&
	   [ "$srv" -eq "$N" ] && [ "$sock" -eq 0 ]; then
		log_pass "ipv$f: routed by tunnel id, divert refuses and the server gets them: $what"
	else
		log_fail "ipv$f: routed by tunnel id, divert refuses and the server gets them: $what"
	fi
done
assert_ours_served tproxy

exit "$ret"
