#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: while the rules that use socket, tproxy and divert change CYCLES
# times, on every CPU of the guest, the flows they do not touch lose no
# byte, and the modules unload at the end.
#
#   client ---------------- gw ---------------- server
#   senders, one per CPU    tproxy-relay :8080   socat -u per port
#                           table keep: tcp dport 81-88 tproxy (stable)
#                           tables churn, churn2: replaced, flushed,
#                           deleted, made again
#
# FLOWS TCP flows run for the whole churn, one sender per flow pinned to
# CPU i mod N: the odd ones go to ports 81.. and are intercepted by the
# relay through the stable rule, the even ones to ports 91.. and are
# forwarded.  Every packet of theirs crosses the churned chains: socket
# lookups of every key in prerouting and output, and a tproxy and a divert
# rule for a port no flow uses.  One churn cycle is one transaction:
#   - the socket rule and the tproxy rule are replaced by handle (every
#     cycle), and the divert rule (with the patched nft);
#   - chain pre2 is flushed and filled again (every 10th);
#   - table churn2, with base chains in prerouting and output, is deleted
#     and made again (every 50th).
# The senders stream a 1 MiB random block again and again until the churn
# ends; each flow's sha256 and byte count at the sender and at the receiver
# must be equal.
#
# make check runs it on one vCPU with 30 cycles; make matrix and make
# debug-test on 4 vCPUs with 1000 (NFT_TPROXY_CHURN_CYCLES, and
# NFT_TPROXY_CHURN_FLOWS, default 4).  Mode ours only: it unloads the
# modules at the end (and loads them again).

source "$(dirname "$(readlink -f "$0")")/lib.sh"

RELAY=${NFT_TPROXY_RELAY:-$SELFTEST_DIR/../proxy/tproxy-relay}
CYCLES=${NFT_TPROXY_CHURN_CYCLES:-30}
FLOWS=${NFT_TPROXY_CHURN_FLOWS:-4}

if [ "${NFT_TPROXY_MODE:-ours}" != ours ]; then
	echo "SKIP: unloads our modules at the end, mode is ${NFT_TPROXY_MODE}"
	exit "$ksft_skip"
fi
checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
checktool "taskset -V" "run taskset"
[ -x "$RELAY" ] || { echo "SKIP: $RELAY is not built"; exit "$ksft_skip"; }
if ! [[ $CYCLES =~ ^[1-9][0-9]*$ && $FLOWS =~ ^[1-9]$ ]]; then
	echo "FAIL: CYCLES '$CYCLES' or FLOWS '$FLOWS' (1..9)"
	exit "$ksft_fail"
fi

NCPU=$(nproc)
NFT=nft
DIVERT=""
if [ -x "$NFT_PATCHED" ]; then
	NFT=$NFT_PATCHED
	DIVERT=1
else
	log_skip "divert's rules are not churned: $NFT_PATCHED is not built (make userspace)"
fi
echo "churn: $CYCLES cycles, $FLOWS flows, $NCPU CPU(s)"

work=$(mktemp -d) || exit "$ksft_fail"
on_exit "rm -rf $work"

setup_topology || exit "$ksft_fail"
tproxy_routing "$gw" 46 || { log_fail "policy routing on the gateway"; exit "$ret"; }

ip netns exec "$gw" "$NFT" -f - <<EOF || { log_fail "the stable ruleset loads"; exit "$ret"; }
table inet keep {
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp socket transparent 1 meta mark set 1 accept
		tcp dport 81-88 tproxy to :8080 meta mark set 1 accept
	}
}
EOF

# The churned rules: prerouting runs before keep's chain, output too;
# nothing here changes a verdict or a mark of the flows.
divert_rule()
{
	[ -n "$DIVERT" ] || return 0
	echo "add rule inet churn $1 meta l4proto udp udp dport 7 divert counter"
}
ip netns exec "$gw" "$NFT" -f - <<EOF || { log_fail "the churned ruleset loads"; exit "$ret"; }
table inet churn {
	chain pre {
		type filter hook prerouting priority mangle - 5; policy accept;
		meta l4proto tcp socket transparent 1 counter
		tcp dport 7 tproxy ip to :8080 counter
	}
	chain out {
		type filter hook output priority mangle - 5; policy accept;
		meta l4proto tcp socket wildcard 0 counter
	}
	chain pre2 {
		type filter hook prerouting priority mangle - 4; policy accept;
	}
}
$(divert_rule pre)
$(divert_rule out)
EOF

assert_ours_served tproxy || ret=$ksft_fail
assert_ours_served socket || ret=$ksft_fail

# handle CHAIN N: the handle of the Nth rule of chain CHAIN of table churn.
handle()
{
	ip netns exec "$gw" "$NFT" -a list chain inet churn "$1" |
		sed -n 's/.* # handle \([0-9]*\)$/\1/p' | sed -n "$(($2 + 1))p"
}
h_sock=$(handle pre 1) h_tp=$(handle pre 2) h_dv=$(handle pre 3) h_out=$(handle out 1)
if [ -z "$h_sock" ] || [ -z "$h_tp" ] || [ -z "$h_out" ]; then
	log_fail "the handles of the churned rules: '$h_sock' '$h_tp' '$h_out'"
	exit "$ret"
fi

ip netns exec "$gw" "$RELAY" -q -t -T -l "[::]:8080" &
busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp ||
	{ log_fail "the relay listens on 8080"; exit "$ret"; }

head -c 1M /dev/urandom >"$work/block"

# Flow i: port 80+i (odd i: intercepted, 81..) or 90+i (forwarded).
flow_port()
{
	if (($1 % 2)); then echo $((80 + $1)); else echo $((90 + $1)); fi
}
for ((i = 1; i <= FLOWS; i++)); do
	p=$(flow_port "$i")
	ip netns exec "$server" socat -u "TCP6-LISTEN:$p,reuseaddr,ipv6only=0" - |
		tee >(sha256sum >"$work/recv.$i.sum") | wc -c >"$work/recv.$i.len" &
done
for ((i = 1; i <= FLOWS; i++)); do
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" "$(flow_port "$i")" tcp ||
		{ log_fail "the server listens on $(flow_port "$i")"; exit "$ret"; }
done

for ((i = 1; i <= FLOWS; i++)); do
	cpu=$((i % NCPU))
	addr=$SERVER_IP4
	((i % 4 < 2)) || addr="[$SERVER_IP6]"
	(
		while [ ! -e "$work/stop" ]; do
			cat "$work/block"
		done | tee >(sha256sum >"$work/sent.$i.sum") |
			tee >(wc -c >"$work/sent.$i.len") |
			ip netns exec "$client" taskset -c "$cpu" \
				socat -u - "TCP:$addr:$(flow_port "$i")"
	) &
done

# The churn: one transaction per line, in one nft process.
socket_rule()
{
	case $(($1 % 3)) in
	0) echo "meta l4proto tcp socket transparent 1 counter" ;;
	1) echo "meta l4proto tcp socket mark 0x5 counter" ;;
	2) echo "socket wildcard 1 counter" ;;
	esac
}
for ((c = 1; c <= CYCLES; c++)); do
	line="replace rule inet churn pre handle $h_sock $(socket_rule "$c")"
	line+="; replace rule inet churn pre handle $h_tp tcp dport 7 tproxy $( ((c % 2)) && echo ip6 || echo ip) to :$((8080 + c % 2)) counter"
	line+="; replace rule inet churn out handle $h_out $(socket_rule $((c + 1)))"
	[ -z "$DIVERT" ] || [ -z "$h_dv" ] ||
		line+="; replace rule inet churn pre handle $h_dv meta l4proto udp udp dport $((7 + c % 2)) divert counter"
	if ((c % 10 == 0)); then
		line+="; flush chain inet churn pre2"
		line+="; add rule inet churn pre2 $(socket_rule "$c")"
		line+="; add rule inet churn pre2 tcp dport 7 tproxy to :8080"
	fi
	if ((c % 50 == 0)); then
		line+="; delete table inet churn2"
	fi
	if ((c % 50 == 0 || c == 1)); then
		line+="; add table inet churn2"
		line+="; add chain inet churn2 pre { type filter hook prerouting priority raw; }"
		line+="; add chain inet churn2 out { type filter hook output priority raw; }"
		line+="; add rule inet churn2 pre $(socket_rule $((c + 2)))"
		line+="; add rule inet churn2 out $(socket_rule "$c")"
	fi
	echo "$line"
done >"$work/churn.nft"

# Let every flow start before the churn.
sleep 1
t0=$(__now_ms)
ip netns exec "$gw" "$NFT" -i <"$work/churn.nft" >"$work/churn.out" 2>&1
t1=$(__now_ms)
touch "$work/stop"
if grep -q . "$work/churn.out"; then
	log_fail "the churn's transactions: $(grep -c Error "$work/churn.out") errors:"
	head -n 10 "$work/churn.out" | sed 's/^/    /'
else
	log_pass "$CYCLES churn transactions committed in $(((t1 - t0) / 1000)) s, none refused"
fi
echo "churn: $(wc -l <"$work/churn.nft") transactions, $(grep -o 'replace rule\|flush chain\|add rule\|delete table' "$work/churn.nft" | wc -l) rule/chain/table changes"

wait_flows()
{
	local i

	for ((i = 1; i <= FLOWS; i++)); do
		[ -s "$work/sent.$i.len" ] && [ -s "$work/sent.$i.sum" ] &&
			[ -s "$work/recv.$i.len" ] && [ -s "$work/recv.$i.sum" ] || return 1
	done
}
if ! busywait 60000 wait_flows; then
	log_fail "every flow ended within 60 s of the churn's end"
fi
total=0
for ((i = 1; i <= FLOWS; i++)); do
	what=forwarded
	((i % 2)) && what="through the relay"
	s=$(cut -d' ' -f1 "$work/sent.$i.sum" 2>/dev/null)
	r=$(cut -d' ' -f1 "$work/recv.$i.sum" 2>/dev/null)
	sl=$(cat "$work/sent.$i.len" 2>/dev/null)
	rl=$(cat "$work/recv.$i.len" 2>/dev/null)
	if [ -n "$s" ] && [ "$s" = "$r" ] && [ "${sl:-0}" -gt 0 ] && [ "$sl" = "$rl" ]; then
		log_pass "flow $i ($what, port $(flow_port "$i"), CPU $((i % NCPU))): $sl bytes arrive byte-identical (sha256 ${s:0:16}...)"
		total=$((total + sl))
	else
		log_fail "flow $i ($what, port $(flow_port "$i")): sent ${sl:-?} bytes sha256 ${s:-?}, received ${rl:-?} bytes sha256 ${r:-?}"
	fi
done
echo "churn: $total bytes compared over $FLOWS flows"

# The rules used the churned expressions: their counters moved.
n=$(ip netns exec "$gw" "$NFT" list chain inet churn out | grep -o 'packets [0-9]*' | head -n 1)
echo "churn: the output chain's socket rule counted ${n:-nothing} since its last replacement"

ip netns exec "$gw" "$NFT" flush ruleset
reload_ours "the churn"

exit "$ret"
