#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: our modules cannot be unloaded while a rule uses them (the kernel
# refuses, the rules stay and keep working), and 25 cycles of load, add
# rules, traffic, flush, unload leave the kernel log clean (scanned by the
# VM runner after the suite).
#
#   client ---- gw (tproxy_echo :8080, transparent) ---- server
#
# With the nft of "make userspace", the cycles use the extensions too:
# divert in prerouting and in output (a datagram of the gateway's own
# through lo), and a read of /proc/net/stat/nft_tproxy, whose counters
# start again from zero with every load.
#
# Runs in mode ours only: it loads and unloads the modules it tests.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

CYCLES=${CYCLES:-25}
ECHO=$SELFTEST_DIR/tproxy_echo

if [ "${NFT_TPROXY_MODE:-ours}" != ours ]; then
	echo "SKIP: loads and unloads our modules, mode is ${NFT_TPROXY_MODE}"
	exit "$ksft_skip"
fi
checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }
for m in nft_tproxy nft_socket; do
	[ -f "$NFT_TPROXY_MODDIR/$m.ko" ] ||
		{ echo "SKIP: $NFT_TPROXY_MODDIR/$m.ko is not built"; exit "$ksft_skip"; }
done

# Leave the modules loaded for the tests that follow, whatever happens.
load_ours()
{
	local m

	for m in nft_tproxy nft_socket; do
		grep -q "^$m " /proc/modules || insmod "$NFT_TPROXY_MODDIR/$m.ko" || return 1
	done
}
on_exit load_ours

setup_topology || exit "$ksft_fail"
# shellcheck disable=SC2154 # set by setup_topology
tproxy_routing "$gw" 4
ip netns exec "$gw" "$ECHO" -6 -t tproxy -p 8080 >/dev/null 2>&1 &
busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp ||
	{ log_fail "tproxy_echo listens on the gateway"; exit "$ret"; }

add_rules()
{
	ip netns exec "$gw" nft -f - <<EOF
table inet proxy {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp socket transparent 1 meta mark set 1 accept
		tcp dport 80 tproxy ip to :8080 meta mark set 1 accept
	}
}
EOF
}

# The extensions' cycle: no mark, no policy routing (nothing to undo: the
# routing of tproxy_routing above is simply not used).
add_divert_rules()
{
	nftp "$gw" -f - <<EOF
table inet proxy {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto { tcp, udp } socket transparent 1 divert accept
		meta l4proto { tcp, udp } th dport 80 tproxy ip to :8080 divert accept
		meta l4proto { tcp, udp } th dport 80 tproxy ip6 to :8080 divert accept
	}
	chain output {
		type filter hook output priority mangle; policy accept;
		udp dport 80 divert
	}
}
EOF
}

# shellcheck disable=SC2154 # set by setup_topology
intercepted()
{
	echo x | ip netns exec "$client" timeout 5 socat -t 2 - \
		"TCP4:$SERVER_IP4:80" 2>/dev/null | grep -q '^tproxy '
}

# The gateway's own datagram, looped through lo to the UDP listener: the
# fresh counters show it diverted in output and delivered once.
looped()
{
	local names vals i n=0

	echo x | ip netns exec "$gw" timeout 5 socat -t 0.5 - \
		"UDP4:$SERVER_IP4:80" 2>/dev/null | grep -q '^tproxy ' || return 1
	{
		read -r -a names
		while read -r -a vals; do
			for i in "${!names[@]}"; do
				[ "${names[i]}" != looped ] || n=$((n + 16#${vals[i]}))
			done
		done
	} < <(ip netns exec "$gw" cat /proc/net/stat/nft_tproxy)
	[ "$n" -eq 1 ]
}

add=add_rules extra=true
if [ -x "$NFT_PATCHED" ]; then
	add=add_divert_rules extra=looped
	kind="divert in prerouting and output, statistics"
	ip netns exec "$gw" "$ECHO" -6 -u -t tproxy -p 8080 >/dev/null 2>&1 &
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 udp ||
		{ log_fail "tproxy_echo listens for UDP on the gateway"; exit "$ret"; }
else
	kind="marks and policy routing (the extensions need make userspace)"
fi

load_ours || { log_fail "our modules load"; exit "$ret"; }
add_rules || { log_fail "the rules load"; exit "$ret"; }
assert_ours_served tproxy

for m in nft_tproxy nft_socket; do
	if rmmod "$m" 2>/dev/null; then
		log_fail "$m: unloading while a rule uses it is refused"
		load_ours
	elif ! grep -q "^$m " /proc/modules; then
		log_fail "$m: still loaded after the refused unload"
	else
		log_pass "$m: unloading while a rule uses it is refused (refcount $(cat /sys/module/$m/refcnt))"
	fi
done
if intercepted && ip netns exec "$gw" nft list ruleset | grep -q 'tproxy ip to :8080'; then
	log_pass "the rules are intact and intercept after the refused unloads"
else
	log_fail "the rules are intact and intercept after the refused unloads"
fi

failed=0
for ((i = 1; i <= CYCLES; i++)); do
	ip netns exec "$gw" nft flush ruleset
	# Rules are destroyed by a deferred work: the references go shortly after.
	if ! busywait "$BUSYWAIT_TIMEOUT" __unload_ours; then
		echo "cycle $i: rmmod failed"
		failed=$i
		break
	fi
	if ! load_ours || ! $add || ! intercepted || ! $extra; then
		echo "cycle $i: load, add or traffic failed"
		failed=$i
		break
	fi
done
if [ "$failed" -eq 0 ]; then
	log_pass "$CYCLES cycles of load, add rules, traffic, flush, unload ($kind)"
else
	log_fail "$CYCLES cycles of load, add rules, traffic, flush, unload ($kind): cycle $failed failed"
fi
ip netns exec "$gw" nft flush ruleset

exit "$ret"
