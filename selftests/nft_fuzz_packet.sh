#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: malformed and edge-case IPv4 and IPv6 traffic (nft_fuzz_packet)
# through rules that use tproxy, socket (every key) and divert, in
# prerouting and output, with conntrack and NAT present, leaves the kernel
# log clean, and every counter agrees with what was sent.
#
#   client (raw frames from 02:00:00:00:fa:22) ---- gw ---- server
#                                               rules       listeners
#                                               below       on 1234, 80
#
# The fuzzer runs twice: with transparent listeners on the gateway, then
# without them.  Its frames are truncated, oversized, badly sized; carry
# IP options and IPv6 extension-header chains; are fragments in and out of
# order and overlapping; ICMP and ICMPv6 errors quoting TCP and UDP flows
# of the gateway's, the server's and nobody's (the socket expression's
# ICMP path); TCP flag combinations, zero ports, multicast and broadcast
# destinations, the gateway's own addresses as destination and as source.
# The server's replies to what is forwarded come back through the
# gateway's masquerade (the socket expression's NAT reply path).
#
# Checked after each run:
#   - the gateway's ingress counted exactly the frames the fuzzer sent,
#     per family, and the probe rule exactly its probes (well-formed SYNs
#     to port 9 that no other class sends);
#   - mode ours: the tproxy outcomes of /proc/net/stat/nft_tproxy add up to
#     what the counters just before tproxy saw, the divert outcomes (with
#     the nft of make userspace) to what those before divert saw;
#   - the gateway still intercepts a TCP connection and forwards pings.
#
# Environment: NFT_TPROXY_FUZZ_PACKETS (default 2000 per run, split over
# the jobs), NFT_TPROXY_FUZZ_SEED (default 1), NFT_TPROXY_FUZZ_JOBS
# (default 1: fuzzers side by side, each with its seed).

source "$(dirname "$(readlink -f "$0")")/lib.sh"

FUZZ=$SELFTEST_DIR/nft_fuzz_packet
ECHO=$SELFTEST_DIR/tproxy_echo
STAT=/proc/net/stat/nft_tproxy
PACKETS=${NFT_TPROXY_FUZZ_PACKETS:-2000}
SEED=${NFT_TPROXY_FUZZ_SEED:-1}
JOBS=${NFT_TPROXY_FUZZ_JOBS:-1}
FUZZ_MAC=02:00:00:00:fa:22

checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
[ -x "$FUZZ" ] || { echo "SKIP: $FUZZ is not built (make -C selftests)"; exit "$ksft_skip"; }
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }
for v in "$PACKETS" "$SEED" "$JOBS"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "FAIL: not a number: '$v'"; exit "$ksft_fail"; }
done
[ "$JOBS" -ge 1 ] || JOBS=1

NFT=nft
DIVERT=""
if [ "$NFT_TPROXY_MODE" = ours ] && [ -x "$NFT_PATCHED" ]; then
	NFT=$NFT_PATCHED
	DIVERT=1
else
	echo "fuzz: no divert rules (mode $NFT_TPROXY_MODE, $NFT_PATCHED $([ -x "$NFT_PATCHED" ] || echo 'not built'))"
fi

work=$(mktemp -d) || exit "$ksft_fail"
on_exit "rm -rf $work"

setup_topology || exit "$ksft_fail"
tproxy_routing "$gw" 46 || { log_fail "policy routing on the gateway"; exit "$ret"; }
# Frames from many "hosts" at once: let no queue drop what the counters
# are compared with (the fuzzer also retries what the veth refuses).
sysctl -qw net.core.netdev_max_backlog=100000 2>/dev/null

# divert RULE...: RULE with the divert statement, if the extension is used.
divert()
{
	[ -n "$DIVERT" ] && echo "$* divert accept"
}

ip netns exec "$gw" "$NFT" -f - <<EOF || { log_fail "the gateway's ruleset loads"; exit "$ret"; }
table netdev fzin {
	chain in {
		type filter hook ingress device "$GW_CLIENT_IF" priority 0; policy accept;
		ether saddr $FUZZ_MAC ether type ip counter
		ether saddr $FUZZ_MAC ether type ip6 counter
	}
}
table inet fz {
	chain raw {
		type filter hook prerouting priority raw; policy accept;
		iifname "$GW_CLIENT_IF" tcp dport 9 counter
		ct state invalid counter
	}
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto { tcp, udp } socket transparent 1 counter meta mark set 1 accept
		socket mark 0x1 counter
		socket wildcard 1 counter
		socket wildcard 0 counter
		meta l4proto { tcp, udp } th dport 1234 counter tproxy to :1234 meta mark set 1 accept
		meta nfproto ipv4 meta l4proto tcp th dport 80 counter tproxy ip to 127.0.0.1:1234 meta mark set 1 accept
		meta nfproto ipv6 meta l4proto { tcp, udp } th dport 80 counter tproxy ip6 to [::1]:1234 meta mark set 1 accept
		$(divert "meta l4proto { tcp, udp } th dport 5353 counter tproxy to :1234 counter")
		$(divert "icmp type echo-request counter")
	}
	chain out {
		type filter hook output priority mangle; policy accept;
		socket transparent 1 counter
		socket wildcard 0 counter
		$(divert "meta l4proto udp th dport 7 counter")
	}
}
table ip nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "$GW_SERVER_IF" masquerade
	}
}
table ip6 nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "$GW_SERVER_IF" masquerade
	}
}
EOF

gw_mac=$(ip netns exec "$gw" cat "/sys/class/net/$GW_CLIENT_IF/address")
ip netns exec "$server" socat -u "TCP6-LISTEN:80,fork,reuseaddr,ipv6only=0" /dev/null &
ip netns exec "$server" socat -u "UDP6-RECVFROM:1234,fork,reuseaddr,ipv6only=0" /dev/null &

listeners()
{
	ip netns exec "$gw" "$ECHO" -6 -t tproxy -p 1234 >/dev/null 2>&1 &
	ip netns exec "$gw" "$ECHO" -6 -u -t tproxy -p 1234 >/dev/null 2>&1 &
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 1234 tcp &&
		busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 1234 udp
}

# counters FAMILY TABLE BEFORE AFTER: the packets of the counters of TABLE
# that come right after BEFORE or right before AFTER (regexes; "" for
# any), summed.
counters()
{
	ip netns exec "$gw" "$NFT" list table "$1" "$2" |
		grep -oE "$3 ?counter packets [0-9]+ bytes [0-9]+ ?$4" |
		sed -E 's/.*counter packets ([0-9]+) .*/\1/' |
		awk '{ s += $1 } END { print s + 0 }'
}

# run_fuzzer WHAT SEED: the fuzzer's jobs; checks the counters.
run_fuzzer()
{
	local what=$1 seed=$2 j n t0 ok=0 v4=0 v6=0 p4=0 p6=0 c v
	local -a pids=()

	local in4_0 in6_0 probe_0
	in4_0=$(counters netdev fzin 'ether type ip' '')
	in6_0=$(counters netdev fzin 'ether type ip6' '')
	probe_0=$(counters inet fz 'tcp dport 9' '')

	t0=$(__now_ms)
	for ((j = 0; j < JOBS; j++)); do
		n=$((PACKETS / JOBS + (j < PACKETS % JOBS)))
		ip netns exec "$client" "$FUZZ" -i "$CLIENT_IF" -m "$gw_mac" -M "$FUZZ_MAC" \
			-4 "$CLIENT_IP4,$GW_CLIENT_IP4,$SERVER_IP4" \
			-6 "$CLIENT_IP6,$GW_CLIENT_IP6,$SERVER_IP6" \
			-p 1234,80,5353 -s $((seed + j)) -n "$n" >"$work/out.$j" 2>&1 &
		pids+=($!)
	done
	for ((j = 0; j < JOBS; j++)); do
		if ! wait "${pids[j]}"; then
			log_fail "$what: fuzzer seed $((seed + j)) failed:"
			tail -n 10 "$work/out.$j" | sed 's/^/    /'
			ok=1
			continue
		fi
		v=$(sed -n 's/^family ipv4 sent \([0-9]*\)$/\1/p' "$work/out.$j"); v4=$((v4 + ${v:-0}))
		v=$(sed -n 's/^family ipv6 sent \([0-9]*\)$/\1/p' "$work/out.$j"); v6=$((v6 + ${v:-0}))
		v=$(sed -n 's/^probe ipv4 sent \([0-9]*\)$/\1/p' "$work/out.$j"); p4=$((p4 + ${v:-0}))
		v=$(sed -n 's/^probe ipv6 sent \([0-9]*\)$/\1/p' "$work/out.$j"); p6=$((p6 + ${v:-0}))
		grep -E '^(class|hash|rate)' "$work/out.$j" | sed "s/^/fuzz $what seed $((seed + j)): /"
	done
	echo "fuzz $what: $PACKETS frames in $(( ($(__now_ms) - t0) / 1000 )) s"
	[ "$ok" -eq 0 ] || return 1

	# The last frames may still be on their way through the gateway.
	settled()
	{
		[ $(($(counters netdev fzin 'ether type ip' '') - in4_0)) -ge "$v4" ] &&
			[ $(($(counters netdev fzin 'ether type ip6' '') - in6_0)) -ge "$v6" ]
	}
	busywait 5000 settled
	c=$(($(counters netdev fzin 'ether type ip' '') - in4_0))
	v=$(($(counters netdev fzin 'ether type ip6' '') - in6_0))
	if [ "$c" -eq "$v4" ] && [ "$v" -eq "$v6" ]; then
		log_pass "$what: the gateway's ingress counted the $v4 IPv4 and $v6 IPv6 frames sent"
	else
		log_fail "$what: the gateway's ingress counted $c IPv4 and $v IPv6 frames, the fuzzer sent $v4 and $v6"
		ok=1
	fi
	c=$(($(counters inet fz 'tcp dport 9' '') - probe_0))
	if [ "$c" -eq $((p4 + p6)) ]; then
		log_pass "$what: the probe rule counted the $((p4 + p6)) probes sent ($p4 IPv4, $p6 IPv6)"
	else
		log_fail "$what: the probe rule counted $c, the fuzzer sent $((p4 + p6)) probes ($p4 IPv4, $p6 IPv6)"
		ok=1
	fi
	return $ok
}

# Mode ours: the statistics add up to the counters before tproxy and
# divert, over both runs (neither is ever reset).
check_stats()
{
	local before after

	[ "$NFT_TPROXY_MODE" = ours ] || return 0
	before=$(counters inet fz '' 'tproxy')
	after=$(nft_tproxy_stats_sum "$gw" established listener tw_takeover no_socket not_transparent unhandled bridged)
	if [ "$before" -eq "$after" ] && [ "$before" -gt 0 ]; then
		log_pass "$1: the tproxy outcomes in $STAT add up to the $before packets the counters before tproxy saw"
	else
		log_fail "$1: the tproxy outcomes in $STAT add up to $after, the counters before tproxy saw $before"
	fi
	[ -n "$DIVERT" ] || return 0
	before=$(counters inet fz '' 'divert')
	after=$(nft_tproxy_stats_sum "$gw" delivered looped refused bridged)
	if [ "$before" -eq "$after" ]; then
		log_pass "$1: the divert outcomes in $STAT add up to the $before packets the counters before divert saw"
	else
		log_fail "$1: the divert outcomes in $STAT add up to $after, the counters before divert saw $before"
	fi
}

# The gateway still works: an intercepted TCP connection, a ping through.
still_works()
{
	local got

	got=$(echo hello | ip netns exec "$client" socat -t 2 - "TCP:$SERVER_IP4:1234" 2>&1)
	if [[ $got == "tproxy peer=$CLIENT_IP4:"*" orig=$SERVER_IP4:1234 line=hello" ]]; then
		log_pass "$1: a TCP connection to $SERVER_IP4:1234 is still intercepted by the transparent listener"
	else
		log_fail "$1: a TCP connection to $SERVER_IP4:1234 through the gateway: '$got'"
	fi
	if __ping_ok "$client" "$SERVER_IP6"; then
		log_pass "$1: $SERVER_IP6 still answers pings through the gateway"
	else
		log_fail "$1: $SERVER_IP6 does not answer pings through the gateway"
	fi
}

listeners || { log_fail "the gateway's transparent listeners"; exit "$ret"; }
assert_ours_served tproxy
assert_ours_served socket
run_fuzzer "with listeners" "$SEED" || ret=$ksft_fail
check_stats "with listeners"
still_works "with listeners"

for pid in $(ip netns pids "$gw"); do
	kill "$pid" 2>/dev/null
done
busywait "$BUSYWAIT_TIMEOUT" __ns_no_pids "$gw"
run_fuzzer "without listeners" $((SEED + 1000)) || ret=$ksft_fail
check_stats "without listeners"

exit "$ret"
