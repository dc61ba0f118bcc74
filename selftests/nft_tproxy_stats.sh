#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: /proc/net/stat/nft_tproxy counts why each packet was or was not
# intercepted, one counter per reason, exactly, and per network namespace.
#
#   client 192.0.2.2 ---- gw (rules below, tproxy_echo listeners) ---- server
#
# Each case sends one UDP datagram (TCP where only TCP has the state) that
# only its own rule matches, and the counters of the gateway, summed over
# the CPUs, must move by exactly what the case says and nothing else:
#
#   no_socket        tproxy to a port where nothing listens
#   not_transparent  tproxy to a listener without IP_TRANSPARENT
#   listener         tproxy to a transparent listener (+ delivered: divert)
#   established      tproxy, the datagram's own connected transparent socket
#   tw_takeover      TCP: a new SYN for a tuple in TIME_WAIT on the gateway
#   looped           divert in output: the gateway's own datagram through lo
#   refused          divert after tproxy, the source fails rp_filter
#   unhandled        tproxy: an IPv6 packet for "tproxy ip", a short TCP header
#
# Over the whole run, the tproxy counters add up to the packets an nft
# counter just before tproxy saw, and the divert counters to those before
# divert.
#
# The server's namespace then counts its own case, and the two namespaces'
# counters stay apart.  The rules use divert: this needs the nft of
# "make userspace".

source "$(dirname "$(readlink -f "$0")")/lib.sh"

ECHO=$SELFTEST_DIR/tproxy_echo
STAT=/proc/net/stat/nft_tproxy

checktool "socat -V" "run socat"
checktool "python3 -V" "run python3"
require_nft_patched
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }

setup_topology || exit "$ksft_fail"

# stats NS: "name=sum ..." of every counter of NS, summed over the CPUs.
stats()
{
	local ns=$1 names vals sums=() i

	{
		read -r -a names
		while read -r -a vals; do
			for i in "${!vals[@]}"; do
				sums[i]=$(( ${sums[i]:-0} + 16#${vals[i]} ))
			done
		done
	} < <(ip netns exec "$ns" cat "$STAT")
	for i in "${!names[@]}"; do
		printf '%s=%s ' "${names[i]}" "${sums[i]:-0}"
	done
}

# delta BEFORE AFTER: the counters that changed, "name=+N ...".
delta()
{
	local -A before
	local kv out=""

	for kv in $1; do
		before[${kv%%=*}]=${kv#*=}
	done
	for kv in $2; do
		local n=${kv%%=*} v=${kv#*=}
		[ "$v" = "${before[$n]:-0}" ] || out+="$n=+$((v - ${before[$n]:-0})) "
	done
	printf '%s' "${out% }"
}

counter_moved()
{
	[ "$(stats "$1")" != "$2" ]
}

# expect_delta NS NAME WANT CMD...: run CMD; the counters of NS must change
# by exactly WANT ("name=+N ..." in the file's column order).
expect_delta()
{
	local ns=$1 name=$2 want=$3 before got
	shift 3

	before=$(stats "$ns")
	"$@"
	busywait "$BUSYWAIT_TIMEOUT" counter_moved "$ns" "$before"
	sleep 0.5	# nothing else may follow
	got=$(delta "$before" "$(stats "$ns")")
	if [ "$got" = "$want" ]; then
		log_pass "$name: $want"
	else
		log_fail "$name: want '$want', got '${got:-no change}'"
	fi
}

# send NS SPORT DST DPORT [SRC]: one UDP datagram, from SRC if given.
send()
{
	local from="sourceport=$2"

	[ -z "${5:-}" ] || from="bind=$5:$2"
	echo x | ip netns exec "$1" socat -u - "UDP4-SENDTO:$3:$4,$from"
}

connected_ready()
{
	ss -N "$1" -Hun state established "sport = :$2" 2>/dev/null | grep -q .
}

# shellcheck disable=SC2154 # set by setup_topology
if ! nftp "$gw" -f - <<EOF
table inet stats {
	counter tp { }
	counter dv { }
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		udp dport 7001 counter name tp tproxy ip to :8001
		udp dport 7002 counter name tp tproxy ip to :8002
		udp dport 7003 counter name tp tproxy ip to :8003 counter name dv divert
		udp dport 7006 counter name tp tproxy ip to :8006
		udp dport 7007 counter name tp tproxy ip to :8003
		udp dport 7008 counter name tp tproxy ip to :8003 counter name dv divert
		tcp dport 7009 counter name tp tproxy ip to :8009 counter name dv divert
		tcp dport 7012 counter name tp tproxy ip to :8009
	}
	chain out {
		type filter hook output priority mangle; policy accept;
		udp dport 7007 counter name dv divert
	}
}
EOF
then
	log_fail "the gateway's ruleset loads"
	exit "$ret"
fi
assert_ours_served tproxy

ip netns exec "$gw" "$ECHO" -4 -u -n -p 8002 >/dev/null 2>&1 &
ip netns exec "$gw" "$ECHO" -4 -u -p 8003 >/dev/null 2>&1 &
ip netns exec "$gw" socat TCP4-LISTEN:8009,ip-transparent,reuseaddr,fork \
	SYSTEM:'echo hello' 2>/dev/null &
# The connected, transparent socket of a flow the proxy already serves:
# bound to the original destination, connected to the client.
ip netns exec "$gw" python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, 19, 1)	# IP_TRANSPARENT
s.bind(("198.51.100.2", 7006))
s.connect(("192.0.2.2", 5006))
time.sleep(3600)' &
for p in 8002 8003; do
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" "$p" udp ||
		log_fail "the gateway's UDP listener on port $p is ready"
done
busywait "$BUSYWAIT_TIMEOUT" connected_ready "$gw" 7006 ||
	log_fail "the gateway's connected UDP socket is ready"
busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8009 tcp ||
	log_fail "the gateway's TCP listener on port 8009 is ready"

expect_delta "$gw" "nothing listens at the target" "no_socket=+1" \
	send "$client" 5001 "$SERVER_IP4" 7001
expect_delta "$gw" "the listener lacks IP_TRANSPARENT" "not_transparent=+1" \
	send "$client" 5002 "$SERVER_IP4" 7002
expect_delta "$gw" "a transparent listener, then divert" "listener=+1 delivered=+1" \
	send "$client" 5003 "$SERVER_IP4" 7003
expect_delta "$gw" "the flow's own connected transparent socket" "established=+1" \
	send "$client" 5006 "$SERVER_IP4" 7006
# Sent by the gateway itself: divert in output, then tproxy on lo.
expect_delta "$gw" "the gateway's own datagram through lo" "listener=+1 looped=+1" \
	send "$gw" 5007 "$SERVER_IP4" 7007

# What tproxy does not handle: an IPv6 datagram for the "tproxy ip" rule,
# a TCP packet too short for its header.
expect_delta "$gw" "an IPv6 datagram for a tproxy ip rule" "unhandled=+1" \
	ip netns exec "$client" socat -u - "UDP6-SENDTO:[$SERVER_IP6]:7001,sourceport=5011" <<<x
short_tcp()
{
	ip netns exec "$client" python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.sendto(struct.pack("!HH", 5012, 7012), (sys.argv[1], 0))' "$SERVER_IP4"
}
expect_delta "$gw" "a TCP packet of 4 bytes" "unhandled=+1" short_tcp

# A source the gateway routes through the other interface fails strict
# rp_filter: tproxy assigns the listener, divert finds no input route.
ip -n "$client" addr add 198.51.100.77/32 dev "$CLIENT_IF"
ip netns exec "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=1
expect_delta "$gw" "the source fails rp_filter" "listener=+1 refused=+1" \
	send "$client" 5008 "$SERVER_IP4" 7008 198.51.100.77
ip netns exec "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=0

# TIME_WAIT: the listener answers and closes first, so the gateway keeps the
# tuple in TIME_WAIT; the client's next SYN from the same port takes it over.
# Only tw_takeover is counted exactly: the other packets of the two
# connections are counted too.
tcp_once()
{
	ip netns exec "$client" timeout 5 socat -u \
		"TCP4:$SERVER_IP4:7009,sourceport=40009,reuseaddr" - >/dev/null 2>&1
}
tw_on_gw()
{
	ip netns exec "$gw" ss -Htan state time-wait | grep -q ':40009\b'
}
tcp_once
if busywait "$BUSYWAIT_TIMEOUT" tw_on_gw; then
	before=$(stats "$gw")
	tcp_once
	got=$(delta "$before" "$(stats "$gw")")
	if [[ " $got " == *" tw_takeover=+1 "* ]]; then
		log_pass "a SYN for a tuple in TIME_WAIT: tw_takeover=+1 ($got)"
	else
		log_fail "a SYN for a tuple in TIME_WAIT: want tw_takeover=+1, got '$got'"
	fi
else
	log_fail "the gateway holds the first connection in TIME_WAIT"
fi

# Per namespace: the server counts its own misses, the gateway none of them.
before_gw=$(stats "$gw")
nftp "$server" -f - <<EOF
table ip stats {
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		udp dport 7010 tproxy to :8010
	}
}
EOF
two()
{
	send "$client" 5010 "$SERVER_IP4" 7010
	send "$client" 5011 "$SERVER_IP4" 7010
}
expect_delta "$server" "the server's namespace counts its own two" "no_socket=+2" two
got=$(delta "$before_gw" "$(stats "$gw")")
if [ -z "$got" ]; then
	log_pass "the gateway's counters did not move for the server's packets"
else
	log_fail "the gateway's counters moved for the server's packets: $got"
fi
# Over everything the gateway saw above, each packet that reached tproxy,
# and each that reached divert, is in exactly one counter.
tp=$(nft_counter "$gw" stats tp)
tps=$(nft_tproxy_stats_sum "$gw" established listener tw_takeover no_socket not_transparent unhandled)
if [ "$tp" -gt 0 ] && [ "$tps" -eq "$tp" ]; then
	log_pass "every packet tproxy evaluated is counted once: $tps counted, $tp evaluated ($(stats "$gw"))"
else
	log_fail "every packet tproxy evaluated is counted once: $tps counted, $tp evaluated ($(stats "$gw"))"
fi
dv=$(nft_counter "$gw" stats dv)
dvs=$(nft_tproxy_stats_sum "$gw" delivered looped refused)
if [ "$dv" -gt 0 ] && [ "$dvs" -eq "$dv" ]; then
	log_pass "every packet divert evaluated is counted once: $dvs counted, $dv evaluated"
else
	log_fail "every packet divert evaluated is counted once: $dvs counted, $dv evaluated"
fi

got=$(stats "$client")
if [[ $got == *"bridged=0 "* && ! $got =~ =[1-9] ]]; then
	log_pass "the client's namespace, without rules, counts nothing"
else
	log_fail "the client's namespace, without rules, counts nothing: $got"
fi

exit "$ret"
