# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash disable=SC2154 # ksft_*, ret and the namespaces come from lib.sh
#
# Sourced by nft_tproxy_tcp.sh and nft_tproxy_udp.sh: the traffic scenarios
# of the tproxy expression, for one transport protocol.
#
#   client                      gw                           server
#   192.0.2.2     ---   192.0.2.1 | 198.51.100.1   ---   198.51.100.2
#   2001:db8:1::2 ---   2001:db8:1::1 | 2001:db8:2::1 --- 2001:db8:2::2
#                       tproxy_echo :8080 (transparent)   tproxy_echo :80
#
# gw diverts port 80 with the recipe of Documentation/networking/tproxy.rst:
# `socket transparent 1` and `tproxy to :8080`, both marking 1, fwmark 1
# looked up in table 100, which routes everything locally; locally generated
# packets to port 80 are marked in a route chain so that they loop through lo
# into prerouting.  Every endpoint answers each line with its tag, the peer
# address it saw and the destination address of the connection (for UDP the
# original destination from IP(V6)_ORIGDSTADDR), so the client's output says
# who answered and what that one saw.

ECHO=$SELFTEST_DIR/tproxy_echo
PROXY_PORT=8080
SERVICE_PORT=80

# tproxy_setup PROTO: topology, servers, policy routing and the ruleset.
tproxy_setup()
{
	local proto=$1

	checktool "nft --version" "run nft"
	checktool "socat -V" "run socat"
	if [ ! -x "$ECHO" ]; then
		echo "SKIP: $ECHO is not built (make -C selftests)"
		exit "$ksft_skip"
	fi
	setup_topology || exit "$ksft_fail"

	# shellcheck disable=SC2154 # set by setup_topology
	tproxy_routing "$gw"

	if ! tproxy_divert "$gw" "$proto" "$SERVICE_PORT" "$PROXY_PORT" ||
	   ! ip netns exec "$gw" nft -f - <<EOF
table inet proxy {
	chain reroute {
		type route hook output priority mangle; policy accept;
		ip daddr $SERVER_IP4 meta l4proto $proto th dport $SERVICE_PORT meta mark set 1
		ip6 daddr $SERVER_IP6 meta l4proto $proto th dport $SERVICE_PORT meta mark set 1
	}
}
EOF
	then
		log_fail "$proto: the tproxy ruleset loads"
		exit "$ret"
	fi
	assert_ours_served tproxy
	assert_ours_served socket

	# shellcheck disable=SC2154 # set by setup_topology
	echo_start "$server" server "$proto" "$SERVICE_PORT" -n
}

# echo_start NS TAG PROTO PORT [tproxy_echo options]: a dual-stack endpoint.
echo_start()
{
	local ns=$1 tag=$2 proto=$3 port=$4 udp=""
	shift 4

	[ "$proto" = udp ] && udp=-u
	ip netns exec "$ns" "$ECHO" -6 $udp -t "$tag" -p "$port" "$@" \
		2>/dev/null &
	echo_pid=$!
	if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$ns" "$port" "$proto"; then
		log_fail "$proto: $tag endpoint listens on port $port"
		exit "$ret"
	fi
}

echo_stop()
{
	kill "$echo_pid" 2>/dev/null
	wait "$echo_pid" 2>/dev/null
}

# talk NS PROTO ADDR: two lines over one connection (for UDP from one
# socket), the second one only once the first was answered (or after 5 s;
# for UDP, 0.2 s after);
# prints what came back within TALK_TIMEOUT seconds (10).  Waiting matters for UDP: tproxy_echo answers from
# a short-lived transparent socket bound to the original destination, and a
# datagram that arrives while that socket exists belongs to it.
talk()
{
	local ns=$1 proto=$2 addr=$3 family=4 udp_opt="" line wfd

	case $addr in
	*:*) family=6; addr="[$addr]" ;;
	esac
	[ "$proto" = udp ] && udp_opt=",sourceport=40000,reuseaddr"
	coproc TALK { ip netns exec "$ns" timeout "${TALK_TIMEOUT:-10}" socat -t 2 - \
		"${proto^^}$family:$addr:$SERVICE_PORT$udp_opt" 2>/dev/null; }
	echo one >&"${TALK[1]}"
	read -r -t 5 line <&"${TALK[0]}" && echo "$line" &&
		{ [ "$proto" = tcp ] || sleep 0.2; }
	wfd=${TALK[1]}
	echo two >&"$wfd"
	exec {wfd}>&-
	if [ "$proto" = udp ]; then
		# Nothing closes a UDP flow: socat would wait out its -t.
		read -r -t 5 line <&"${TALK[0]}" && echo "$line"
		kill "$TALK_PID" 2>/dev/null
	else
		cat <&"${TALK[0]}"
	fi
	wait "$TALK_PID" 2>/dev/null
}

# expect WHAT OUTPUT TAG PEER ORIG: both lines were answered by TAG, which saw
# PEER as the source and ORIG:80 as the destination.
expect()
{
	local what=$1 out=$2 tag=$3 peer=$4 orig=$5 want line n=0

	for line in one two; do
		want="$tag peer=$(addr_re "$peer"):[0-9]* orig=$(addr_re "$orig"):$SERVICE_PORT line=$line"
		grep -qx "$want" <<<"$out" && n=$((n + 1))
	done
	if [ $n -eq 2 ]; then
		log_pass "$what"
	else
		log_fail "$what: got '${out//$'\n'/ | }'"
	fi
}

# tproxy_scenarios PROTO
tproxy_scenarios()
{
	local proto=$1 f client_ip gw_ip server_ip out

	tproxy_setup "$proto"

	# A transparent listener on the gateway gets the diverted flows.
	echo_start "$gw" tproxy "$proto" "$PROXY_PORT"
	for f in 4 6; do
		eval "client_ip=\$CLIENT_IP$f gw_ip=\$GW_SERVER_IP$f server_ip=\$SERVER_IP$f"
		out=$(talk "$client" "$proto" "$server_ip")
		expect "$proto ipv$f forwarded: the transparent listener gets the flow, sees the client and the original destination, and the established flow follows its socket" \
			"$out" tproxy "$client_ip" "$server_ip"
		out=$(talk "$gw" "$proto" "$server_ip")
		expect "$proto ipv$f local: the gateway's own flow loops through lo into the transparent listener" \
			"$out" tproxy "$gw_ip" "$server_ip"
	done
	echo_stop

	# tproxy only assigns transparent sockets: a plain listener on the
	# port is passed over, the rule does not match and the packet is
	# forwarded to the server unchanged.
	echo_start "$gw" plain "$proto" "$PROXY_PORT" -n
	for f in 4 6; do
		eval "client_ip=\$CLIENT_IP$f server_ip=\$SERVER_IP$f"
		out=$(talk "$client" "$proto" "$server_ip")
		expect "$proto ipv$f: a non-transparent listener on the target port is not chosen; the server gets the flow unchanged" \
			"$out" server "$client_ip" "$server_ip"
	done
	echo_stop

	# No listener at all: the rule does not match, nothing is dropped.
	for f in 4 6; do
		eval "client_ip=\$CLIENT_IP$f server_ip=\$SERVER_IP$f"
		out=$(talk "$client" "$proto" "$server_ip")
		expect "$proto ipv$f: with no listener the packet falls through to the server unchanged" \
			"$out" server "$client_ip" "$server_ip"
	done

	assert_ours_served tproxy
}
