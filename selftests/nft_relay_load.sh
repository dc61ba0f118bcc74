#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the reference proxy, fully transparent (-t -T) on the gateway,
# holds 1000 connections open at once and answers all of them, carries
# 100 MiB byte-identical (sha256 at both ends) at no less than 0.8 of the
# throughput of a direct transfer between the same namespaces, measured in
# the same run, and leaves no descriptor behind (its fd count returns to the
# idle value).
#
#   Y (client) ---- X (tproxy-relay -t -T :8080) ---- Z (servers :80, :81, :82)
#   Y -> Z:80 and Z:81 are diverted to the proxy; Y -> Z:82 is not.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

RELAY=${NFT_TPROXY_RELAY:-$SELFTEST_DIR/../proxy/tproxy-relay}
CONNS=${CONNS:-1000}
MIB=${MIB:-100}

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
	}
}
EOF
then
	log_fail "the gateway ruleset loads"
	exit "$ret"
fi

ip netns exec "$server" python3 "$SELFTEST_DIR/conn_flood.py" serve 80 &
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

read -r t_proxy s1 r1 <<<"$(transfer 81)"
read -r t_direct s2 r2 <<<"$(transfer 82)"
if [ -n "$s1" ] && [ "$s1" = "$r1" ]; then
	log_pass "$MIB MiB through the proxy arrive byte-identical (sha256 ${s1:0:16}...)"
else
	log_fail "$MIB MiB through the proxy arrive byte-identical: sent ${s1:-?}, received ${r1:-?}"
fi
[ "$s2" = "$r2" ] || log_fail "the direct transfer is byte-identical"
ratio=$(echo "scale=3; $t_direct / $t_proxy" | bc -l)
what="throughput through the proxy is at least 0.8 of a direct transfer: $ratio ($MIB MiB in ${t_proxy} s vs ${t_direct} s, same run)"
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
