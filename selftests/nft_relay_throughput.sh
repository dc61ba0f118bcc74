#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the reference proxy, fully transparent (-t -T) on the gateway,
# carries 50 MiB byte-identical (sha256 at both ends) at no less than 0.8
# of the throughput of a direct transfer between the same namespaces,
# measured in the same boot, best of ROUNDS each, the two paths alternated.
#
#   Y (client) ---- X (tproxy-relay -t -T :8080) ---- Z (socat :81, :82)
#   Y -> Z:81 is diverted to the proxy; Y -> Z:82 is forwarded as is.
#
# The window holds the sender's pipeline, both sha256sum and socat at both
# ends, as a user's transfer would; every binary is run once before the
# first measured window, and nothing inside a window reads the disk.  Under
# QEMU's instruction counting (vm-run.sh --icount, which make check uses)
# the guest's clock counts the guest's own work, so the ratio does not
# depend on the load of the host; on a real or KVM clock it does.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

RELAY=${NFT_TPROXY_RELAY:-$SELFTEST_DIR/../proxy/tproxy-relay}
MIB=${MIB:-50}
ROUNDS=${ROUNDS:-3}

checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
checktool "bc --version" "run bc"
[ -x "$RELAY" ] || { echo "SKIP: $RELAY is not built"; exit "$ksft_skip"; }

setup_topology || exit "$ksft_fail"
tproxy_routing "$gw" 4
if ! tproxy_divert "$gw" tcp 81 8080; then
	log_fail "the gateway ruleset loads"
	exit "$ret"
fi

ip netns exec "$gw" "$RELAY" -q -t -T -l "[::]:8080" &
busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp ||
	{ log_fail "the proxy listens on 8080"; exit "$ret"; }

sums=$(mktemp -d)
on_exit rm -rf "$sums"

# transfer PORT MIB: MIB MiB from Y to Z:PORT; prints
# "seconds sent-sha256 received-sha256".
transfer()
{
	local port=$1 mib=$2 t0 t1

	ip netns exec "$server" socat -u "TCP4-LISTEN:$port,reuseaddr" - |
		sha256sum >"$sums/recv" &
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" "$port" tcp
	t0=$EPOCHREALTIME
	head -c "${mib}M" /dev/zero | tr '\0' 'x' | tee >(sha256sum >"$sums/sent") |
		ip netns exec "$client" socat -u - "TCP4:$SERVER_IP4:$port"
	wait
	t1=$EPOCHREALTIME
	# The process substitution may still be writing its sum.
	busywait "$BUSYWAIT_TIMEOUT" test -s "$sums/sent"
	echo "$(echo "$t1 - $t0" | bc -l) $(cut -d' ' -f1 "$sums/sent") $(cut -d' ' -f1 "$sums/recv")"
	rm -f "$sums/sent" "$sums/recv"
}

# Warm up: every binary of the window, both paths, before measuring.
for port in 81 82; do
	read -r t s r <<<"$(transfer "$port" 1)"
	if [ -z "$s" ] || [ "$s" != "$r" ]; then
		log_fail "a 1 MiB warm-up transfer to port $port is byte-identical"
		exit "$ret"
	fi
done

# Alternate the two paths, and which goes first.
declare -A dur=([81]="" [82]="")
identical=1 sent="" recvd=""
for ((i = 1; i <= ROUNDS; i++)); do
	order="81 82"
	((i % 2)) || order="82 81"
	for port in $order; do
		read -r t s r <<<"$(transfer "$port" "$MIB")"
		if [ -z "$s" ] || [ "$s" != "$r" ]; then
			identical=0 sent=$s recvd=$r
		fi
		dur[$port]+="$t "
	done
done
if [ $identical = 1 ]; then
	log_pass "$((2 * ROUNDS)) times $MIB MiB, through the proxy and direct, arrive byte-identical (sha256 ${s:0:16}...)"
else
	log_fail "$MIB MiB arrive byte-identical: sent ${sent:-?}, received ${recvd:-?}"
fi

# least LIST: the shortest of a list of durations.
least() { tr ' ' '\n' <<<"$1" | grep . | sort -g | head -n 1; }
p_min=$(least "${dur[81]}")
d_min=$(least "${dur[82]}")
ratio=$(echo "scale=3; $d_min / $p_min" | bc -l)
what="throughput through the proxy is at least 0.8 of a direct transfer: $ratio (best of $ROUNDS, $MIB MiB, seconds: proxy ${dur[81]% }, direct ${dur[82]% })"
if [ "$(echo "$ratio >= 0.8" | bc -l)" = 1 ]; then
	log_pass "$what"
else
	log_fail "$what"
fi

exit "$ret"
