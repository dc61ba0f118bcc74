# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2154 # ksft_*, ret and the namespaces come from lib.sh
#
# Sourced by nft_relay_tcp.sh and nft_relay_udp.sh: the four proxy setups of
# the seed scenario, with the reference proxy (proxy/tproxy-relay) on X.
#
#   Y (client)                 X (gw, tproxy-relay :8080)            Z (server :80)
#   192.0.2.2     ------  192.0.2.1 | 198.51.100.1  ------  198.51.100.2
#   2001:db8:1::2 ------  2001:db8:1::1 | 2001:db8:2::1 ---  2001:db8:2::2
#
#   relay        Y -> X:8080, X -> Z:80 from X's address       Z sees X
#   -T           Y -> X:8080, X -> Z:80 from Y's address       Z sees Y
#   -t -T        Y -> Z:80 diverted on X, X -> Z from Y's      Z sees Y, Y sees Z
#   -t           Y -> Z:80 diverted on X, X -> Z from X's      Z sees X, Y sees Z
#
# Z routes Y's network through X, so Z's answers to Y's address cross X,
# where `socket transparent 1` marks them for the proxy's upstream socket
# and policy routing delivers them locally.  Z's endpoint answers every line
# with the peer address it saw; Y checks who answered and what Z saw.
#
# RELAY_DELIVERY says how X delivers what it diverts: "routing" (default),
# the mark and policy routing of the recipe; "divert", the divert statement
# instead of the mark, with no ip rule and no route table (needs the nft of
# make userspace); "none", the divert ruleset without divert, which must
# fail.

RELAY=${NFT_TPROXY_RELAY:-$SELFTEST_DIR/../proxy/tproxy-relay}
ECHO=$SELFTEST_DIR/tproxy_echo
SERVICE_PORT=80
RELAY_PORT=8080

relay_setup()
{
	local proto=$1

	checktool "nft --version" "run nft"
	checktool "socat -V" "run socat"
	for bin in "$RELAY" "$ECHO"; do
		if [ ! -x "$bin" ]; then
			echo "SKIP: $bin is not built"
			exit "$ksft_skip"
		fi
	done
	setup_topology || exit "$ksft_fail"
	if ! relay_rules "$proto"; then
		log_fail "$proto: the gateway ruleset loads"
		exit "$ret"
	fi

	local udp=""
	[ "$proto" = udp ] && udp=-u
	ip netns exec "$server" "$ECHO" -6 $udp -n -t server -p "$SERVICE_PORT" \
		>/dev/null 2>&1 &
	if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" "$SERVICE_PORT" "$proto"; then
		log_fail "$proto: the server listens"
		exit "$ret"
	fi
}

relay_rules()
{
	case ${RELAY_DELIVERY:-routing} in
	routing)
		tproxy_routing "$gw" &&
		tproxy_divert "$gw" "$1" "$SERVICE_PORT" "$RELAY_PORT" ;;
	divert)
		tproxy_divert "$gw" "$1" "$SERVICE_PORT" "$RELAY_PORT" divert ;;
	none)
		tproxy_divert "$gw" "$1" "$SERVICE_PORT" "$RELAY_PORT" "" ;;
	esac
}

# relay_start PROTO [tproxy-relay options]: one dual-stack relay on X.
relay_start()
{
	local proto=$1 udp=""
	shift

	[ "$proto" = udp ] && udp=-u
	ip netns exec "$gw" "$RELAY" $udp -l "[::]:$RELAY_PORT" "$@" \
		>"$gw.relay.log" 2>&1 &
	relay_pid=$!
	if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" "$RELAY_PORT" "$proto"; then
		log_fail "$proto: tproxy-relay $* listens"
		sed 's/^/    /' "$gw.relay.log"
		exit "$ret"
	fi
}

relay_stop()
{
	kill "$relay_pid" 2>/dev/null
	wait "$relay_pid" 2>/dev/null
	rm -f "$gw.relay.log"
}

# ask PROTO ADDR PORT: one line from Y; prints what came back within
# ASK_TIMEOUT seconds (10).
ask()
{
	local proto=$1 addr=$2 port=$3 family=4 line

	case $addr in
	*:*) family=6; addr="[$addr]" ;;
	esac
	if [ "$proto" = tcp ]; then
		echo one | ip netns exec "$client" timeout "${ASK_TIMEOUT:-10}" socat -t 3 - \
			"TCP$family:$addr:$port" 2>/dev/null
		return
	fi
	# Nothing closes a UDP flow: stop at the answer, not after socat's -t.
	coproc ASK { ip netns exec "$client" timeout "${ASK_TIMEOUT:-10}" socat -t 3 - \
		"UDP$family:$addr:$port" 2>/dev/null; }
	echo one >&"${ASK[1]}"
	read -r -t "${ASK_TIMEOUT:-10}" line <&"${ASK[0]}" && echo "$line"
	kill "$ASK_PID" 2>/dev/null
	wait "$ASK_PID" 2>/dev/null
}

# scenario PROTO NAME DST PORT SEEN [XSAW]: Y asks DST:PORT; Z must answer
# and must have seen SEEN as the peer; the proxy, unless dead, must have
# logged the client XSAW with DST:PORT as the original destination.
scenario()
{
	local proto=$1 name=$2 dst=$3 port=$4 seen=$5 xsaw=${6:-} out want

	out=$(ask "$proto" "$dst" "$port")
	case $seen in
	*:*) want="server peer=\\[$seen\\]:[0-9]* orig=.* line=one" ;;
	*) want="server peer=${seen//./\\.}:[0-9]* orig=.* line=one" ;;
	esac
	if grep -qx "$want" <<<"$out"; then
		log_pass "$proto $name: the server answers and sees $seen"
	else
		log_fail "$proto $name: the server answers and sees $seen: got '${out//$'\n'/ | }'"
		sed 's/^/    relay: /' "$gw.relay.log" 2>/dev/null
	fi
	[ -n "$xsaw" ] || return 0

	# What the proxy logged: the client's own address, and the address
	# the client connected to as the original destination.
	want="$proto client=$(addr_re "$xsaw"):[0-9]* orig=$(addr_re "$dst"):$port upstream=.*"
	if grep -qx "$want" "$gw.relay.log"; then
		log_pass "$proto $name: the proxy sees the client $xsaw and the original destination $dst:$port"
	else
		log_fail "$proto $name: the proxy sees the client $xsaw and the original destination $dst:$port:"
		sed 's/^/    relay: /' "$gw.relay.log"
	fi
}

relay_scenarios()
{
	local proto=$1 f y x xz z

	relay_setup "$proto"
	for f in 4 6; do
		eval "y=\$CLIENT_IP$f x=\$GW_CLIENT_IP$f xz=\$GW_SERVER_IP$f z=\$SERVER_IP$f"

		relay_start "$proto" -d "$(bracket "$z"):$SERVICE_PORT"
		scenario "$proto" "ipv$f relay without transparency" "$x" "$RELAY_PORT" "$xz" "$y"
		relay_stop

		relay_start "$proto" -T -d "$(bracket "$z"):$SERVICE_PORT"
		scenario "$proto" "ipv$f transparent upstream only (-T)" "$x" "$RELAY_PORT" "$y" "$y"
		relay_stop

		relay_start "$proto" -t -T
		scenario "$proto" "ipv$f full transparency (-t -T)" "$z" "$SERVICE_PORT" "$y" "$y"
		relay_stop

		relay_start "$proto" -t
		scenario "$proto" "ipv$f interception with the proxy's address upstream (-t)" "$z" "$SERVICE_PORT" "$xz" "$y"
		relay_stop

		# A dead proxy: no transparent listener, the tproxy rule does not
		# match, and the flow goes on to the server itself, unproxied.
		scenario "$proto" "ipv$f dead proxy: the flow falls through to the server" "$z" "$SERVICE_PORT" "$y"
	done
}

bracket()
{
	case $1 in
	*:*) printf '[%s]' "$1" ;;
	*) printf '%s' "$1" ;;
	esac
}
