#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: on a gateway whose clients arrive through a bridge, with
# br_netfilter calling the ip hooks for bridged frames
# (net.bridge.bridge-nf-call-iptables=1, as Docker sets it):
#
#  - the recipe's rules run while the frame is still being bridged; the
#    socket tproxy assigns there is dropped when the frame reaches IP
#    (ip_rcv_core() and ip6_rcv_core() orphan it) and prerouting does not run
#    again (br_netfilter's ip_sabotage_in()): the proxy gets nothing;
#  - our statistics count it as "bridged", and divert refuses in that pass
#    (its route would be replaced by br_netfilter's), counted the same way;
#  - with bridge-nf-call-iptables=0 and bridge-nf-call-ip6tables=0 the same
#    rules intercept, tproxy with its marks and divert alike.
#
#   client ---- [veth0 in br0] gw 192.0.2.1, 2001:db8:1::1 ---- server
#               tproxy_echo :8080 (transparent)                tproxy_echo :80

source "$(dirname "$(readlink -f "$0")")/lib.sh"
# shellcheck source=tproxy_traffic.sh
source "$SELFTEST_DIR/tproxy_traffic.sh"

checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }
if ! modprobe br_netfilter 2>/dev/null; then
	echo "SKIP: br_netfilter cannot be loaded"
	exit "$ksft_skip"
fi

setup_topology || exit "$ksft_fail"
# The gateway's client side becomes a bridge port; its addresses move to
# the bridge, as on a Docker host (docker0) or a home router (br-lan).
# shellcheck disable=SC2154 # set by setup_topology
if ! ip -n "$gw" addr flush dev "$GW_CLIENT_IF" ||
   ! ip -n "$gw" link add br0 type bridge ||
   ! ip -n "$gw" link set "$GW_CLIENT_IF" master br0 ||
   ! ip -n "$gw" addr add "$GW_CLIENT_IP4/24" dev br0 ||
   ! ip -n "$gw" addr add "$GW_CLIENT_IP6/64" dev br0 nodad ||
   ! ip -n "$gw" link set br0 up; then
	log_fail "the gateway's client side is a bridge"
	exit "$ret"
fi
if ! ip netns exec "$gw" test -w /proc/sys/net/bridge/bridge-nf-call-iptables; then
	echo "SKIP: no bridge-nf-call-iptables in the gateway's namespace"
	exit "$ksft_skip"
fi
ip -n "$client" neigh flush all
# shellcheck disable=SC2154 # set by setup_topology
for addr in "$SERVER_IP4" "$SERVER_IP6"; do
	busywait "$BUSYWAIT_TIMEOUT" __ping_ok "$client" "$addr" ||
		{ log_fail "the client reaches $addr through the bridge"; exit "$ret"; }
done

tproxy_routing "$gw"
echo_start "$server" server tcp "$SERVICE_PORT" -n
server_tcp=$echo_pid
echo_start "$server" server udp "$SERVICE_PORT" -n
echo_start "$gw" tproxy tcp "$PROXY_PORT"
echo_start "$gw" tproxy udp "$PROXY_PORT"

call_iptables()
{
	ip netns exec "$gw" sysctl -qw \
		"net.bridge.bridge-nf-call-iptables=$1" \
		"net.bridge.bridge-nf-call-ip6tables=$1" >/dev/null
}

# rules DELIVERY: the recipe's ruleset, delivering with DELIVERY.
rules()
{
	ip netns exec "$gw" nft flush ruleset
	tproxy_divert "$gw" "{ tcp, udp }" "$SERVICE_PORT" "$PROXY_PORT" "$1"
}

# traffic WHAT WHO: TCP over IPv4 and IPv6 and UDP over IPv4, each answered
# by WHO (tproxy: the proxy, with the original destination; server: the
# server itself; nobody: no answer at all).
traffic()
{
	local what=$1 who=$2 proto addr peer out

	for proto in tcp udp; do
		for addr in "$SERVER_IP4" "$SERVER_IP6"; do
			[ "$proto$addr" != "udp$SERVER_IP6" ] || continue
			peer=$CLIENT_IP4
			[[ $addr != *:* ]] || peer=$CLIENT_IP6
			out=$(talk "$client" "$proto" "$addr")
			if [ "$who" != nobody ]; then
				expect "$what: $proto $addr: answered by the $who" \
					"$out" "$who" "$peer" "$addr"
			elif [ -z "$out" ]; then
				log_pass "$what: $proto $addr: nobody answers"
			else
				log_fail "$what: $proto $addr: nobody answers: got '${out//$'\n'/ | }'"
			fi
		done
	done
}

# counted WHAT STAT: /proc/net/stat/nft_tproxy's STAT grew during WHAT.
counted()
{
	local n

	n=$(nft_tproxy_stat "$gw" "$2")
	if [ "$n" -gt "${3:-0}" ]; then
		log_pass "$1: counted as $2 ($n)"
	else
		log_fail "$1: counted as $2 ($n)"
	fi
}

rules "meta mark set 1" || { log_fail "the recipe's rules load"; exit "$ret"; }
assert_ours_served tproxy
assert_ours_served socket

call_iptables 1
before=$(nft_tproxy_stat "$gw" bridged)
traffic "tproxy, bridge-nf-call-iptables=1" nobody
counted "tproxy, bridge-nf-call-iptables=1" bridged "$before"

call_iptables 0
traffic "tproxy, bridge-nf-call-iptables=0" tproxy

if [ -x "$NFT_PATCHED" ]; then
	rules divert || { log_fail "the divert rules load"; exit "$ret"; }
	call_iptables 1
	before=$(nft_tproxy_stat "$gw" bridged)
	delivered=$(nft_tproxy_stat "$gw" delivered)
	traffic "divert, bridge-nf-call-iptables=1" server
	counted "divert, bridge-nf-call-iptables=1" bridged "$before"
	if [ "$(nft_tproxy_stat "$gw" delivered)" -eq "$delivered" ]; then
		log_pass "divert, bridge-nf-call-iptables=1: nothing counted as delivered"
	else
		log_fail "divert, bridge-nf-call-iptables=1: $(( $(nft_tproxy_stat "$gw" delivered) - delivered )) counted as delivered"
	fi
	call_iptables 0
	traffic "divert, bridge-nf-call-iptables=0" tproxy
else
	log_skip "divert: the extension's rules need the nft of make userspace"
fi

kill "$server_tcp" 2>/dev/null
exit "$ret"
