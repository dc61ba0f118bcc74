#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the reference proxy, fully transparent (-t -T) on the gateway,
# holds 1000 connections open at once and answers all of them, and leaves no
# descriptor behind (its fd count returns to the idle value).  Under valgrind
# 250 connections at once show no invalid access and no leak: more than the
# proxy accepts in one wakeup (64) and keeps idle pipes for (64), so every
# path of the 1000, in a quarter of the time.  (Its throughput:
# nft_relay_throughput.sh.)
#
#   Y (client) ---- X (tproxy-relay -t -T :8080, under valgrind :8081) ---- Z (:80, :83)
#   Y -> Z:80 is diverted to :8080, Y -> Z:83 to :8081.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

RELAY=${NFT_TPROXY_RELAY:-$SELFTEST_DIR/../proxy/tproxy-relay}
CONNS=${CONNS:-1000}
VG_CONNS=${VG_CONNS:-250}

checktool "nft --version" "run nft"
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
		tcp dport 80 tproxy ip to :8080 meta mark set 1 accept
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

# A smaller flood through a second proxy under valgrind: no invalid access,
# no leak once it has exited on SIGTERM.
if command -v valgrind >/dev/null; then
	vg_log=$(mktemp)
	ip netns exec "$gw" valgrind --leak-check=full --show-leak-kinds=all \
		--errors-for-leak-kinds=all --error-exitcode=99 --log-file="$vg_log" \
		"$RELAY" -q -t -T -l "[::]:8081" &
	vg=$!
	if busywait $((BUSYWAIT_TIMEOUT * 3)) listener_ready "$gw" 8081 tcp; then
		out=$(ip netns exec "$client" python3 "$SELFTEST_DIR/conn_flood.py" flood "$SERVER_IP4" 83 "$VG_CONNS")
		kill -TERM "$vg"
		wait "$vg"
		vg_rc=$?
		summary=$(grep -E 'ERROR SUMMARY|definitely lost|All heap blocks' "$vg_log" | sed 's/^==[0-9]*== //' | tr '\n' ' ')
		if [ "$out" = "ok=$VG_CONNS failed=0" ] && [ "$vg_rc" -eq 0 ] &&
		   grep -q 'ERROR SUMMARY: 0 errors' "$vg_log"; then
			log_pass "under valgrind, $VG_CONNS connections answered, no error, no leak: $summary"
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

exit "$ret"
