#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: every command block of Documentation/ that is marked runnable
# (".. test: SCENARIOS NS [fails]" before ".. code-block:: sh") runs as
# written on the box it names, and leads to the outcome its text promises:
# each scenario runs its blocks in a fresh topology, then check_SCENARIO
# below tests that outcome.  A block marked "fails" must fail; any other
# must succeed.  A scenario without a check fails.
#
#   client ---- gw ---- server      (lib.sh's topology, the docs' addresses)
#
# The block extraction is doc_blocks.py; what a proxy reads is doc_probe.py.

source "$(dirname "$(readlink -f "$0")")/lib.sh"
source "$SELFTEST_DIR/tproxy_traffic.sh"

DOCS=${NFT_TPROXY_DOCS:-$SELFTEST_DIR/../Documentation}
RELAY=${NFT_TPROXY_RELAY:-$SELFTEST_DIR/../proxy/tproxy-relay}
PROBE=$SELFTEST_DIR/doc_probe.py

checktool "nft --version" "run nft"
checktool "socat -V" "run socat"
checktool "python3 -V" "run python3"
checktool "iptables --version" "run iptables"
[ -d "$DOCS" ] || { echo "SKIP: no documentation at $DOCS"; exit "$ksft_skip"; }
[ -x "$ECHO" ] || { echo "SKIP: $ECHO is not built"; exit "$ksft_skip"; }
[ -x "$RELAY" ] || { echo "SKIP: $RELAY is not built"; exit "$ksft_skip"; }

work=$(mktemp -d)
on_exit rm -rf "$work"
if ! python3 "$SELFTEST_DIR/doc_blocks.py" "$work/blocks" "$DOCS"/*.rst >"$work/index"; then
	log_fail "the runnable blocks of the documentation are well formed"
	exit "$ret"
fi

##############################################################################
# Helpers of the checks

pids=()
# spawn NS CMD...: start CMD in NS in the background; stopped after the check.
spawn()
{
	local ns=$1
	shift
	ip netns exec "$ns" "$@" &
	pids+=($!)
}

stop_all()
{
	[ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null
	wait "${pids[@]}" 2>/dev/null
	pids=()
}

# echo_on NS TAG PROTO PORT [options]: tproxy_traffic.sh's endpoint, logging
# to $work/TAG.PROTO.log, stopped after the check.
echo_on()
{
	: >"$work/$2.$3.log"
	echo_start "$@" -o "$work/$2.$3.log"
	pids+=("$echo_pid")
}

# diverted PROTO FAMILY [FROM-NS]: the proxy endpoint (tag tproxy) answers
# a flow to the server's port 80 and sees the client and the original
# destination.
diverted()
{
	local proto=$1 f=$2 from=${3:-$client} peer server_ip

	eval "server_ip=\$SERVER_IP$f peer=\$CLIENT_IP$f"
	[ "$from" = "$client" ] || eval "peer=\$GW_SERVER_IP$f"
	expect "$scen: $proto ipv$f: the proxy gets the flow, sees $peer and the original destination" \
		"$(talk "$from" "$proto" "$server_ip")" tproxy "$peer" "$server_ip"
}

# nothing_arrives PROTO FAMILY: a flow to the server's port 80 gets no answer.
nothing_arrives()
{
	local out server_ip

	eval "server_ip=\$SERVER_IP$2"
	out=$(TALK_TIMEOUT=4 talk "$client" "$1" "$server_ip")
	if [ -z "$out" ]; then
		log_pass "$scen: $1 ipv$2: nothing arrives"
	else
		log_fail "$scen: $1 ipv$2: nothing arrives: got '${out//$'\n'/ | }'"
	fi
}

# refused PROTO: the client's flow to the server's port 80 is refused
# (TCP reset, or ICMP port unreachable for UDP), and the server's log
# stays empty.
refused()
{
	local proto=$1 err

	err=$(echo one | ip netns exec "$client" timeout 10 socat -T 2 - \
	      "${proto^^}4:$SERVER_IP4:$SERVICE_PORT" 2>&1 >/dev/null)
	if [[ $err == *"Connection refused"* ]] && [ ! -s "$work/server.$proto.log" ]; then
		log_pass "$scen: $proto: the client is refused, the server sees nothing"
	else
		log_fail "$scen: $proto: the client is refused, the server sees nothing: '$err', server log '$(cat "$work/server.$proto.log")'"
	fi
}

# martians: the in_martian_src counter of the gateway, summed over CPUs
# (one hexadecimal line per CPU under a header line).
martians()
{
	local -a head row
	local i c=-1 n=0

	{
		read -r -a head
		for i in "${!head[@]}"; do
			[ "${head[$i]}" = in_martian_src ] && c=$i
		done
		while read -r -a row; do
			[ "$c" -ge 0 ] && n=$((n + 16#${row[$c]}))
		done
	} < <(ip netns exec "$gw" cat /proc/net/stat/rt_cache)
	echo "$n"
}

# probe_says TRANSPARENT WANT: doc_probe.py on the gateway's port 8080
# reports WANT (a regular expression) for a connection to the server.
probe_says()
{
	local out

	spawn "$gw" python3 "$PROBE" 8080 ${1:+"$1"}
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp
	out=$(ip netns exec "$client" timeout 10 socat -T 5 - "TCP4:$SERVER_IP4:80" </dev/null 2>&1)
	if [[ $out =~ $2 ]]; then
		log_pass "$scen: the proxy reads: $out"
	else
		log_fail "$scen: the proxy reads /$2/: got '$out'"
	fi
	stop_all
}

##############################################################################
# One check per scenario: what the text around its blocks promises.

check_redirect()
{
	probe_says "" "^peer=$CLIENT_IP4:[0-9]+ sockname=$GW_CLIENT_IP4:8080 origdst=$SERVER_IP4:80\$"
}

check_tproxy-view()
{
	probe_says transparent "^peer=$CLIENT_IP4:[0-9]+ sockname=$SERVER_IP4:80 origdst=(ENOENT|ENOPROTOOPT)\$"
}

# With conntrack in the namespace, SO_ORIGINAL_DST answers, and says what
# getsockname() says.
check_tproxy-view-ct()
{
	probe_says transparent "^peer=$CLIENT_IP4:[0-9]+ sockname=$SERVER_IP4:80 origdst=$SERVER_IP4:80\$"
}

# all_diverted: the proxy endpoint on the gateway's port 8080 gets TCP and
# UDP flows over both families.
all_diverted()
{
	local p f

	for p in tcp udp; do
		echo_on "$gw" tproxy "$p" 8080
	done
	for p in tcp udp; do
		for f in 4 6; do
			diverted "$p" "$f"
		done
	done
}

check_gateway()
{
	all_diverted
	assert_ours_served tproxy
	assert_ours_served socket
	if [ "$(ip netns exec "$gw" sysctl -n net.ipv4.conf.all.route_localnet)" = 0 ]; then
		log_pass "$scen: route_localnet is 0"
	else
		log_fail "$scen: route_localnet is 0"
	fi
	# Without the local route, the assigned packet is forwarded, and
	# dropped there; the IPv6 half still works.
	ip -n "$gw" route del local 0.0.0.0/0 dev lo table 100
	nothing_arrives tcp 4
	diverted tcp 6
	stop_all
}

check_loopback-listener()
{
	spawn "$gw" "$ECHO" -4 -t tproxy -b 127.0.0.1 -p 8080
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp
	diverted tcp 4
	stop_all
}

# other_port SCEN-TEXT TAG PROTO FAMILY: a flow to the server's port 8080
# is answered by TAG (tproxy: the gateway's proxy; server: the server).
other_port()
{
	local what=$1 tag=$2 proto=$3 f=$4 server_ip peer

	eval "server_ip=\$SERVER_IP$f peer=\$CLIENT_IP$f"
	SERVICE_PORT=8080 expect "$scen: $proto ipv$f: $what" \
		"$(SERVICE_PORT=8080 talk "$client" "$proto" "$server_ip")" \
		"$tag" "$peer" "$server_ip"
}

# wildcard_setup: the proxy endpoint on the gateway's [::]:8080, and a
# plain one on the server's port 8080.
wildcard_setup()
{
	local p

	for p in tcp udp; do
		echo_on "$gw" tproxy "$p" 8080
		echo_on "$server" server "$p" 8080 -n
	done
}

# The recipe as written: the proxy's wildcard listener takes flows to
# other hosts' port 8080.
check_wildcard()
{
	local p f

	wildcard_setup
	for p in tcp udp; do
		for f in 4 6; do
			other_port "a flow to the server's port 8080 lands at the proxy (the recipe as written)" tproxy "$p" "$f"
		done
	done
	stop_all
}

# With socket wildcard 0: such flows reach the server, the proxy's own
# still reach the proxy.
check_wildcard-fixed()
{
	local p f

	wildcard_setup
	for p in tcp udp; do
		for f in 4 6; do
			other_port "a flow to the server's port 8080 reaches the server" server "$p" "$f"
			diverted "$p" "$f"
		done
	done
	stop_all
}

check_local()
{
	local f server_ip gw_ip out

	echo_on "$server" server tcp 80 -n
	spawn "$gw" "$RELAY" -t -U nobody -l "[::]:8080" >"$work/relay.log" 2>&1
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp
	for f in 4 6; do
		eval "server_ip=\$SERVER_IP$f gw_ip=\$GW_SERVER_IP$f"
		out=$(talk "$gw" tcp "$server_ip")
		expect "$scen: ipv$f: the gateway's own connection reaches the server, which sees the gateway" \
			"$out" server "$gw_ip" "$server_ip"
		if grep -q "^tcp client=.* orig=$(addr_re "$server_ip"):80 " "$work/relay.log"; then
			log_pass "$scen: ipv$f: ... through the proxy, which logged the original destination"
		else
			log_fail "$scen: ipv$f: the proxy logged the connection: $(tr '\n' '|' <"$work/relay.log")"
		fi
	done
	stop_all
}

check_marks()
{
	# Another tool's bits, set before the recipe's chain; counted after.
	nft_in "$gw" <<EOF
table ip other {
	chain prerouting {
		type filter hook prerouting priority mangle - 10; policy accept;
		meta mark set 0x5
	}
	chain input {
		type filter hook input priority filter; policy accept;
		tcp dport 80 meta mark 0x200005 counter
	}
}
EOF
	echo_on "$gw" tproxy tcp 8080
	diverted tcp 4
	if ip netns exec "$gw" nft list chain ip other input | grep -q 'counter packets [1-9]'; then
		log_pass "$scen: the other tool's bits 0x5 survive beside 0x200000"
	else
		log_fail "$scen: the other tool's bits 0x5 survive beside 0x200000"
	fi
	stop_all
}

check_rp-filter()
{
	ip netns exec "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=1 \
		net.ipv4.conf.default.rp_filter=1 net.ipv4.conf.veth0.rp_filter=1 \
		net.ipv4.conf.veth1.rp_filter=1 net.ipv4.conf.lo.rp_filter=1
	echo_on "$gw" tproxy tcp 8080
	diverted tcp 4
	stop_all
}

check_src-valid-mark()
{
	local before

	echo_on "$gw" tproxy tcp 8080
	ip netns exec "$gw" sysctl -qw net.ipv4.conf.all.src_valid_mark=1 \
		net.ipv4.conf.veth0.src_valid_mark=0
	before=$(martians)
	nothing_arrives tcp 4
	if [ "$(martians)" -gt "$before" ]; then
		log_pass "$scen: in_martian_src counts the drops ($before -> $(martians))"
	else
		log_fail "$scen: in_martian_src counts the drops (stays $before)"
	fi
	diverted tcp 6
	run_block "$last_block"
	diverted tcp 4
	stop_all
}

check_input()
{
	echo_on "$gw" tproxy tcp 8080
	diverted tcp 4
	ip netns exec "$gw" nft flush chain inet filter input
	ip netns exec "$gw" nft add rule inet filter input iif lo accept
	nothing_arrives tcp 4
	stop_all
}

check_mark-first()
{
	local err

	echo_on "$server" server tcp 80 -n
	nothing_arrives tcp 4
	err=$(echo one | ip netns exec "$client" timeout 10 socat -T 2 - \
	      "TCP6:[$SERVER_IP6]:$SERVICE_PORT" 2>&1 >/dev/null)
	if [[ $err == *"Connection refused"* ]]; then
		log_pass "$scen: tcp ipv6: the client is refused at once, in the server's name"
	else
		log_fail "$scen: tcp ipv6: the client is refused at once, in the server's name: '$err'"
	fi
	if [ ! -s "$work/server.tcp.log" ]; then
		log_pass "$scen: the server sees nothing"
	else
		log_fail "$scen: the server sees nothing: $(cat "$work/server.tcp.log")"
	fi
	stop_all
}

check_fail-closed()
{
	local p

	for p in tcp udp; do
		echo_on "$server" server "$p" 80 -n
	done
	refused tcp
	refused udp
	for p in tcp udp; do
		echo_on "$gw" tproxy "$p" 8080
		diverted "$p" 4
	done
	stop_all
}

# open_then_proxy: a client connection to the server made while no proxy
# then the proxy started, then a second line on that connection; leaves
# the two answers in $answer1 and $answer2, both in $answers.
open_then_proxy()
{
	local rfd wfd

	# socat may be gone when a line is written: no SIGPIPE for the test.
	trap '' PIPE
	coproc OPEN { ip netns exec "$client" timeout 30 socat -t 2 - \
		"TCP4:$SERVER_IP4:$SERVICE_PORT" 2>/dev/null; }
	rfd=${OPEN[0]} wfd=${OPEN[1]}
	echo one >&"$wfd"
	answer1="" answer2=""
	read -r -t 5 answer1 <&"$rfd"
	echo_on "$gw" tproxy tcp 8080
	{ echo two >&"$wfd"; } 2>/dev/null
	read -r -t 5 answer2 <&"$rfd"
	answers="$answer1 | $answer2"
	exec {wfd}>&-
	wait "$OPEN_PID" 2>/dev/null
	trap - PIPE
}

check_offload()
{
	local out

	echo_on "$server" server tcp 80 -n
	open_then_proxy
	out=$answers
	if [[ $answer1 == "server "*"line=one" && $answer2 == "server "*"line=two" ]]; then
		log_pass "$scen: a connection offloaded before the proxy started still reaches the server"
	else
		log_fail "$scen: a connection offloaded before the proxy started still reaches the server: '$out'"
	fi
	diverted tcp 4
	stop_all
	# The same without the flowtable: the proxy's listener takes the
	# second line, which belongs to no connection of its own.
	echo_on "$server" server tcp 80 -n
	ip netns exec "$gw" nft delete table inet fastpath
	open_then_proxy
	out=$answers
	if [[ $answer1 == "server "*"line=one" && -z $answer2 ]]; then
		log_pass "$scen: without the flowtable, the same connection loses its second line to the proxy"
	else
		log_fail "$scen: without the flowtable, the same connection loses its second line to the proxy: '$out'"
	fi
	stop_all
}

# divert: the gateway recipe without policy routing, then with forwarding
# off, strict rp_filter and conntrack in use, one at a time.
check_divert-gateway()
{
	local v4 v6 base=$scen

	all_diverted
	v4=$(ip -n "$gw" -4 rule show | wc -l)
	v6=$(ip -n "$gw" -6 rule show | wc -l)
	if [ "$v4" = 3 ] && [ "$v6" = 2 ]; then
		log_pass "$scen: the gateway has only its default ip rules"
	else
		log_fail "$scen: the gateway has only its default ip rules ($v4 IPv4, $v6 IPv6)"
	fi

	scen="$base, forwarding off"
	ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
	diverted tcp 4
	diverted udp 6
	ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1

	scen="$base, strict rp_filter"
	ip netns exec "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=1 \
		net.ipv4.conf.default.rp_filter=1 net.ipv4.conf.veth0.rp_filter=1 \
		net.ipv4.conf.veth1.rp_filter=1 net.ipv4.conf.lo.rp_filter=1
	diverted tcp 4
	diverted udp 4
	ip netns exec "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=0

	scen="$base, conntrack in use"
	nft_in "$gw" <<EOF
table inet tracking {
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
		ct state new counter
	}
}
EOF
	diverted tcp 4
	diverted udp 6
	if ip netns exec "$gw" nft list table inet tracking | grep -q 'counter packets [1-9]'; then
		log_pass "$scen: conntrack saw the flows"
	else
		log_fail "$scen: conntrack saw the flows"
	fi
	scen=$base
	stop_all
}

check_divert-local() { check_local; }
check_divert-idioms() { check_fail-closed; }

# stat_of NAME: the counter NAME as the statistics page's reading block
# (the scenario's first) sums it.
stat_of()
{
	run_block "${blocks_of[$scen]%% *}"
	awk -v n="$1" '$1 == n { print $2 }' "$last_out"
}

# grows NAME CMD...: CMD makes counter NAME grow.
grows()
{
	local name=$1 before after
	shift

	before=$(stat_of "$name")
	"$@"
	after=$(stat_of "$name")
	if [ -n "$before" ] && [ "${after:-0}" -gt "$before" ]; then
		log_pass "$scen: $name grows ($before -> $after)"
	else
		log_fail "$scen: $name grows ('$before' -> '$after')"
	fi
}

# In a subshell: talk writes to a client that a reset may have ended.
quiet_talk()
{
	(talk "$client" tcp "$SERVER_IP4") >/dev/null 2>&1
}

check_stats()
{
	grows no_socket quiet_talk
	echo_on "$gw" plain tcp 8080 -n
	grows not_transparent quiet_talk
	stop_all
	echo_on "$gw" tproxy tcp 8080
	grows listener diverted tcp 4
	grows established diverted tcp 4
	grows delivered diverted tcp 4
	stop_all
}

# says TEXT: the scenario's last block printed TEXT.
says()
{
	if grep -qF "$1" "$last_out"; then
		log_pass "$scen: nft says: $1"
	else
		log_fail "$scen: nft says: $1: got '$(tr '\n' '|' <"$last_out")'"
	fi
}

check_table-name() { says 'Error: syntax error, unexpected tproxy, expecting string'; }
check_hooks() { says 'Error: Could not process rule: Operation not supported'; }
check_iptables-tproxy() { says 'Warning: Extension TPROXY revision 0 not supported, missing kernel module?'; }

##############################################################################
# Run

# run_block NNN: run one block where its marker says; its output goes to
# $work/NNN.out, and last_out names that file.
run_block()
{
	local n=$1 ns
	local -A place=([gw]=$gw [client]=$client [server]=$server)

	ns=${place[${where[$n]}]}
	last_out=$work/$n.out
	PATH=$(block_path "$n") ip netns exec "$ns" \
		bash -e -o pipefail "$work/blocks/$n.sh" >"$last_out" 2>&1
}

# The pages of the extensions need the nft of make userspace; the others
# run with the distribution's.
EXT_PAGES="divert.rst statistics.rst"
block_path()
{
	if [[ " $EXT_PAGES " == *" ${origin[$1]%%:*} "* ]]; then
		echo "${NFT_PATCHED%/*}:$PATH"
	else
		echo "$PATH"
	fi
}

needs_patched()
{
	local n

	for n in ${blocks_of[$1]}; do
		[[ " $EXT_PAGES " != *" ${origin[$n]%%:*} "* ]] || return 0
	done
	return 1
}

declare -A where expect_of origin
scenarios=()
declare -A blocks_of
while read -r n scens ns expect origin_; do
	where[$n]=$ns expect_of[$n]=$expect origin[$n]=$origin_
	for s in ${scens//,/ }; do
		[ -n "${blocks_of[$s]:-}" ] || scenarios+=("$s")
		blocks_of[$s]+="$n "
	done
done <"$work/index"
nblocks=$(wc -l <"$work/index")
if [ "$nblocks" -eq 0 ]; then
	log_fail "the documentation has runnable blocks"
	exit "$ret"
fi
echo "$nblocks runnable blocks in ${#scenarios[@]} scenarios"

for scen in "${scenarios[@]}"; do
	if ! declare -F "check_$scen" >/dev/null; then
		log_fail "$scen: a check exists for the scenario (blocks ${blocks_of[$scen]})"
		continue
	fi
	if [ ! -x "$NFT_PATCHED" ] && needs_patched "$scen"; then
		log_skip "$scen: its blocks need the nft of make userspace ($NFT_PATCHED)"
		continue
	fi
	setup_topology || exit "$ksft_fail"
	ok=1
	for n in ${blocks_of[$scen]}; do
		run_block "$n"
		rc=$?
		last_block=$n
		if { [ "${expect_of[$n]}" = succeeds ] && [ $rc -ne 0 ]; } ||
		   { [ "${expect_of[$n]}" = fails ] && [ $rc -eq 0 ]; }; then
			log_fail "$scen: the block at ${origin[$n]} ${expect_of[$n]} (exit $rc)"
			sed 's/^/    /' "$last_out"
			ok=0
		fi
	done
	# shellcheck disable=SC2206	# the block numbers, one per word
	nblocks=(${blocks_of[$scen]})
	[ $ok = 1 ] && log_pass "$scen: its blocks (${#nblocks[@]}) run as written"
	"check_$scen"
done

exit "$ret"
