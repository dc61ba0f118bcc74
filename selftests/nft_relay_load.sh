#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the reference proxy, fully transparent (-t -T) on the gateway,
# holds 1000 connections open at once and answers all of them, carries
# 100 MiB byte-identical (sha256 at both ends) at no less than 0.8 of the
# throughput of a direct transfer between the same namespaces, measured in
# the same run, and leaves no descriptor behind (its fd count returns to the
# idle value).  Under valgrind the same 1000 connections show no invalid
# access and no leak.
#
#   Y (client) ---- X (tproxy-relay -t -T :8080) ---- Z (servers :80, :81, :82)
#   Y -> Z:80 and Z:81 are diverted to the proxy; Y -> Z:82 is not.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

RELAY=${NFT_TPROXY_RELAY:-$SELFTEST_DIR/../proxy/tproxy-relay}
CONNS=${CONNS:-1000}
MIB=${MIB:-100}
ROUNDS=${ROUNDS:-5}

checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
checktool "python3 -V" "run python3"
[ -x "$RELAY" ] || { echo "SKIP: $RELAY is not built"; exit "$ksft_skip"; }
ulimit -n "$(ulimit -Hn)"

setup_topology || exit "$ksft_fail"
tproxy_routing "$gw" 4
if ! ip netns exec "$gw" nft -f - <<EOF
table inet relay {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp socket transparent 1 meta mark set 1 accept
		tcp dport { 80, 81 } tproxy ip to :8080 meta mark set 1 accept
		tcp dport 83 tproxy ip to :8081 meta mark set 1 accept
	}
}
EOF
then
	log_fail "the gateway ruleset loads"
	exit "$ret"
fi

for port in 80 83; do
	ip netns exec "$server" python3 "$SELFTEST_DIR/conn_flood.py" serve $port &
done
ip netns exec "$gw" "$RELAY" -q -t -T -l "[::]:8080" &
relay=$!
for probe in "$server 80" "$gw 8080"; do
	# shellcheck disable=SC2086 # namespace and port
	busywait "$BUSYWAIT_TIMEOUT" listener_ready $probe tcp ||
		{ log_fail "listener $probe"; exit "$ret"; }
done

fds() { find "/proc/$relay/fd" -mindepth 1 -maxdepth 1 | wc -l; }
idle=$(fds)

out=$(ip netns exec "$client" python3 "$SELFTEST_DIR/conn_flood.py" flood "$SERVER_IP4" 80 "$CONNS")
if [ "$out" = "ok=$CONNS failed=0" ]; then
	log_pass "$CONNS connections open at once through the proxy are all answered"
else
	log_fail "$CONNS connections open at once through the proxy are all answered: $out"
fi

# Every descriptor of those connections goes away.
fds_idle() { [ "$(fds)" -eq "$idle" ]; }
if busywait "$BUSYWAIT_TIMEOUT" fds_idle; then
	log_pass "the proxy is back to its $idle descriptors"
else
	log_fail "the proxy is back to its $idle descriptors: it has $(fds)"
fi

# The same flood through a second proxy under valgrind: no invalid access,
# no leak once it has exited on SIGTERM.
if command -v valgrind >/dev/null; then
	vg_log=$(mktemp)
	ip netns exec "$gw" valgrind --leak-check=full --show-leak-kinds=all \
		--errors-for-leak-kinds=all --error-exitcode=99 --log-file="$vg_log" \
		"$RELAY" -q -t -T -l "[::]:8081" &
	vg=$!
	if busywait $((BUSYWAIT_TIMEOUT * 3)) listener_ready "$gw" 8081 tcp; then
		out=$(ip netns exec "$client" python3 "$SELFTEST_DIR/conn_flood.py" flood "$SERVER_IP4" 83 "$CONNS")
		kill -TERM "$vg"
		wait "$vg"
		vg_rc=$?
		summary=$(grep -E 'ERROR SUMMARY|definitely lost|All heap blocks' "$vg_log" | sed 's/^==[0-9]*== //' | tr '\n' ' ')
		if [ "$out" = "ok=$CONNS failed=0" ] && [ "$vg_rc" -eq 0 ] &&
		   grep -q 'ERROR SUMMARY: 0 errors' "$vg_log"; then
			log_pass "under valgrind, $CONNS connections answered, no error, no leak: $summary"
		else
			log_fail "under valgrind ($out, exit $vg_rc): $summary"
			sed 's/^/    /' "$vg_log" | tail -n 40
		fi
	else
		log_fail "the proxy starts under valgrind"
	fi
	rm -f "$vg_log"
else
	log_skip "valgrind is not installed"
fi

# transfer PORT: MIB MiB from Y to Z:PORT; prints "seconds sent-sha256 received-sha256".
transfer()
{
	local port=$1 t0 t1 sent recv

	ip netns exec "$server" socat -u "TCP4-LISTEN:$port,reuseaddr" - |
		sha256sum >"$server.$port.sum" &
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" "$port" tcp
	t0=$EPOCHREALTIME
	head -c "${MIB}M" /dev/zero | tr '\0' 'x' | tee >(sha256sum >"$client.$port.sum") |
		ip netns exec "$client" socat -u - "TCP4:$SERVER_IP4:$port"
	wait
	t1=$EPOCHREALTIME
	sent=$(cut -d' ' -f1 "$client.$port.sum")
	recv=$(cut -d' ' -f1 "$server.$port.sum")
	rm -f "$client.$port.sum" "$server.$port.sum"
	echo "$(echo "$t1 - $t0" | bc -l) $sent $recv"
}

# least A [B]: the smaller of two durations (B may be empty).
least()
{
	if [ -z "$2" ] || [ "$(echo "$1 < $2" | bc -l)" = 1 ]; then
		echo "$1"
	else
		echo "$2"
	fi
}

# one PORT ROUND: a transfer through the proxy (81) or straight to the
# server (82), into the best time of its path.
one()
{
	local t s r same=0

	read -r t s r <<<"$(transfer "$1")"
	if [ -n "$s" ] && [ "$s" = "$r" ]; then
		same=1
	fi
	if [ "$1" = 81 ]; then
		[ $same = 1 ] || identical=0
		s1=$s r1=$r
		t_proxy=$(least "$t" "$t_proxy")
	else
		[ $same = 1 ] || log_fail "the direct transfer $2 is byte-identical"
		t_direct=$(least "$t" "$t_direct")
	fi
}

# Alternate the two paths, and which goes first; the best of ROUNDS each:
# noise (another guest on the same cores) only slows a transfer down.
t_proxy="" t_direct="" identical=1 s1="" r1=""
for ((i = 1; i <= ROUNDS; i++)); do
	if ((i % 2)); then
		one 81 "$i"
		one 82 "$i"
	else
		one 82 "$i"
		one 81 "$i"
	fi
done
if [ $identical = 1 ]; then
	log_pass "$ROUNDS times $MIB MiB through the proxy arrive byte-identical (sha256 ${s1:0:16}...)"
else
	log_fail "$MIB MiB through the proxy arrive byte-identical: sent ${s1:-?}, received ${r1:-?}"
fi
ratio=$(echo "scale=3; $t_direct / $t_proxy" | bc -l)
what="throughput through the proxy is at least 0.8 of a direct transfer: $ratio (best of $ROUNDS: $MIB MiB in ${t_proxy} s vs ${t_direct} s, same run)"
if [ "$(echo "$ratio >= 0.8" | bc -l)" = 1 ]; then
	log_pass "$what"
else
	log_fail "$what"
fi

if busywait "$BUSYWAIT_TIMEOUT" fds_idle; then
	log_pass "no descriptor left after the transfer"
else
	log_fail "no descriptor left after the transfer: $(fds), idle $idle"
fi

exit "$ret"
