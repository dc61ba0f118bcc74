#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Helpers shared by the nft-tproxy selftests; every nft_*.sh sources this file.
#
# The conventions are those of the kernel's tools/testing/selftests/net/lib.sh
# so that the tests could move under tools/testing/selftests/ unchanged:
# kselftest exit codes, namespaces with random suffixes that are removed on
# exit, polling instead of sleeping, and one "PASS: / FAIL: / SKIP: " line per
# checked claim.
#
# Environment:
#   NFT_TPROXY_MODE    "ours" (default): our nft_tproxy/nft_socket modules
#                      must be the ones serving the rules; "intree": the
#                      kernel's own modules are expected instead.
#   NFT_TPROXY_MODDIR  directory holding our nft_tproxy.ko and nft_socket.ko
#                      (default: <repo>/build/<uname -r>/kernel).
#   WAIT_TIMEOUT       seconds allowed to busywait-based checks (default 20).
#
# Addresses: only the documentation ranges 192.0.2.0/24, 198.51.100.0/24 and
# 2001:db8::/32, and only inside the namespaces created here.

# Variables defined here are used by the tests that source this file.
# shellcheck disable=SC2034

# kselftest exit codes.
ksft_pass=0
ksft_fail=1
ksft_xfail=2
ksft_skip=4

: "${WAIT_TIMEOUT:=20}"
BUSYWAIT_TIMEOUT=$((WAIT_TIMEOUT * 1000))	# milliseconds

SELFTEST_DIR=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

: "${NFT_TPROXY_MODE:=ours}"
: "${NFT_TPROXY_MODDIR:=$(readlink -m "$SELFTEST_DIR/../build/$(uname -r)/kernel")}"

# Modules of the kernel that our package replaces: none of them may be loaded
# while our modules serve the rules.
NFT_TPROXY_INTREE_HELPERS="nf_tproxy_ipv4 nf_tproxy_ipv6 nf_socket_ipv4 nf_socket_ipv6 xt_TPROXY xt_socket"

# Overall status of the test; log_pass/log_fail/log_skip fold into it.
ret=$ksft_pass

# Namespaces created by setup_ns, removed by cleanup_all_ns.
NS_LIST=()

# Commands registered with on_exit, run (last registered first) on exit.
ON_EXIT_CMDS=()

##############################################################################
# Results

# ksft_status_merge A B: print the status that wins, fail > skip > xfail > pass.
ksft_status_merge()
{
	local a=$1 b=$2 w
	local -A weight=([$ksft_pass]=0 [$ksft_xfail]=1 [$ksft_skip]=2 [$ksft_fail]=3)

	w=${weight[$a]:-3}
	if (( w >= ${weight[$b]:-3} )); then
		echo "$a"
	else
		echo "$b"
	fi
}

log_pass()
{
	echo "PASS: $*"
	ret=$(ksft_status_merge "$ret" "$ksft_pass")
}

log_fail()
{
	echo "FAIL: $*"
	ret=$(ksft_status_merge "$ret" "$ksft_fail")
}

log_skip()
{
	echo "SKIP: $*"
	ret=$(ksft_status_merge "$ret" "$ksft_skip")
}

# checktool "CMD ARGS" "WHAT": skip the whole test unless CMD runs (once
# per test: setup_topology asks every time).
declare -gA __CHECKED_TOOLS=()
checktool()
{
	[ -z "${__CHECKED_TOOLS[$1]:-}" ] || return 0
	# Word splitting of $1 is wanted: it is a command with its arguments.
	# shellcheck disable=SC2086
	if ! $1 > /dev/null 2>&1; then
		echo "SKIP: Could not $2"
		exit $ksft_skip
	fi
	__CHECKED_TOOLS[$1]=1
}

##############################################################################
# Waiting

__now_ms()
{
	local t=${EPOCHREALTIME/[.,]/}

	echo $((t / 1000))
}

# busywait TIMEOUT_MS CMD...: run CMD until it succeeds; fail after TIMEOUT_MS.
busywait()
{
	local timeout_ms=$1 start
	shift

	start=$(__now_ms)
	while true; do
		"$@" && return 0
		(( $(__now_ms) - start >= timeout_ms )) && return 1
		sleep 0.1
	done
}

# __ns_pids NS [1]: the processes of NS (at most one with "1") in the array
# NS_PIDS, found without running a program: under emulation each program
# costs a tenth of a second or more, ss nearly half a second.
__ns_pids()
{
	local p

	NS_PIDS=()
	for p in /proc/[0-9]*; do
		[ "$p/ns/net" -ef "/run/netns/$1" ] || continue
		NS_PIDS+=("${p#/proc/}")
		[ "${2:-}" = 1 ] && break
	done
	[ ${#NS_PIDS[@]} -gt 0 ]
}

# listener_ready NS PORT tcp|udp: a socket of NS listens on (is bound to)
# PORT: a listening TCP socket, or an unconnected UDP one, in the /proc/net
# tables as a process of NS sees them.
listener_ready()
{
	local ns=$1 port=$2 proto=${3:-tcp} state hex f sl laddr raddr st rest

	case $proto in
	tcp) state=0A ;;	# TCP_LISTEN
	udp) state=07 ;;	# TCP_CLOSE: bound, not connected
	*) echo "listener_ready: unknown protocol '$proto'" >&2; return 1 ;;
	esac
	printf -v hex ':%04X' "$port"
	__ns_pids "$ns" 1 || return 1
	for f in "/proc/${NS_PIDS[0]}/net/$proto" "/proc/${NS_PIDS[0]}/net/${proto}6"; do
		[ -r "$f" ] || continue
		# shellcheck disable=SC2034	# sl, raddr, rest: the other columns
		while read -r sl laddr raddr st rest; do
			[[ $laddr == *"$hex" && $st == "$state" ]] && return 0
		done 2>/dev/null <"$f"
	done
	return 1
}

##############################################################################
# Namespaces

ns_exec()
{
	local ns=$1
	shift

	ip netns exec "$ns" "$@"
}

# nft_in NS: load the ruleset read from stdin into NS.
nft_in()
{
	ip netns exec "$1" nft -f -
}

# setup_ns VAR...: create namespace <var>-XXXXXX for each VAR, store its name
# in VAR, bring lo up and remember it for cleanup_all_ns.
setup_ns()
{
	local var name old olds=() names=()

	for var in "$@"; do
		if [[ ! $var =~ ^[A-Za-z_][A-Za-z0-9_]*$ || $var == var ||
		      $var == name || $var == old || $var == olds ||
		      $var == names ]]; then
			echo "setup_ns: invalid variable name '$var'" >&2
			return $ksft_fail
		fi
		# Setting up the same variable again replaces its namespace.
		old=${!var:-}
		if [ -n "$old" ] && __ns_known "$old"; then
			olds+=("$old")
		fi
	done
	[ ${#olds[@]} -eq 0 ] || cleanup_ns "${olds[@]}"

	for var in "$@"; do
		printf -v name '%s-%06x' "${var,,}" $((SRANDOM & 0xffffff))
		names+=("$name")
	done
	if ! printf 'netns add %s\n' "${names[@]}" | ip -b -; then
		echo "setup_ns: cannot create network namespaces ${names[*]}" >&2
		return $ksft_fail
	fi
	for var in "$@"; do
		name=${names[0]}
		names=("${names[@]:1}")
		NS_LIST+=("$name")
		printf -v "$var" '%s' "$name"
		ip -n "$name" link set lo up
	done
}

__ns_known()
{
	local ns

	for ns in "${NS_LIST[@]}"; do
		[ "$ns" = "$1" ] && return 0
	done
	return 1
}

# cleanup_ns NS...: kill the processes of each NS, then delete it.
cleanup_ns()
{
	local ns keep=() n gone=()

	for ns in "$@"; do
		[ -n "$ns" ] || continue
		if __ns_pids "$ns"; then
			kill "${NS_PIDS[@]}" 2>/dev/null
			busywait 2000 __ns_no_pids "$ns" ||
				{ ! __ns_pids "$ns" || kill -KILL "${NS_PIDS[@]}" 2>/dev/null; }
		fi
		gone+=("$ns")
	done
	# One process for them all; -force goes on past one already gone.
	[ ${#gone[@]} -eq 0 ] ||
		printf 'netns delete %s\n' "${gone[@]}" | ip -force -b - 2>/dev/null
	for n in "${NS_LIST[@]}"; do
		for ns in "$@"; do
			[ "$n" = "$ns" ] && continue 2
		done
		keep+=("$n")
	done
	NS_LIST=("${keep[@]}")
	return 0
}

__ns_no_pids()
{
	! __ns_pids "$1" 1
}

# on_exit "CMD": run CMD (through eval) on exit, before the namespaces are
# removed; the last command registered runs first.
on_exit()
{
	ON_EXIT_CMDS=("$*" "${ON_EXIT_CMDS[@]}")
}

# cleanup_all_ns: the default EXIT trap. Runs the on_exit commands, kills the
# processes left in our namespaces and deletes them. A test that installs its
# own EXIT trap calls cleanup_all_ns from it.
cleanup_all_ns()
{
	local cmd

	for cmd in "${ON_EXIT_CMDS[@]}"; do
		eval "$cmd" || true
	done
	ON_EXIT_CMDS=()
	cleanup_ns "${NS_LIST[@]}"
	return 0
}

trap cleanup_all_ns EXIT

##############################################################################
# Topology
#
#   client                     gw                          server
#   veth0 ------------------- veth0    veth1 ---------------- veth0
#   192.0.2.2/24    192.0.2.1/24    198.51.100.1/24    198.51.100.2/24
#   2001:db8:1::2/64  2001:db8:1::1/64  2001:db8:2::1/64  2001:db8:2::2/64
#
# client and server route everything through gw; gw forwards both families.

CLIENT_IP4=192.0.2.2
GW_CLIENT_IP4=192.0.2.1
GW_SERVER_IP4=198.51.100.1
SERVER_IP4=198.51.100.2
CLIENT_IP6=2001:db8:1::2
GW_CLIENT_IP6=2001:db8:1::1
GW_SERVER_IP6=2001:db8:2::1
SERVER_IP6=2001:db8:2::2
CLIENT_NET4=192.0.2.0/24
SERVER_NET4=198.51.100.0/24
CLIENT_NET6=2001:db8:1::/64
SERVER_NET6=2001:db8:2::/64
CLIENT_IF=veth0		# in client, towards gw
GW_CLIENT_IF=veth0	# in gw, towards client
GW_SERVER_IF=veth1	# in gw, towards server
SERVER_IF=veth0		# in server, towards gw

__ping_ok()
{
	ip netns exec "$1" ping -q -c 1 -W 1 "$2" > /dev/null 2>&1
}

# setup_topology: create namespaces $client, $gw and $server as drawn above and
# wait until client and server reach each other over IPv4 and IPv6.
# rp_filter is off everywhere so that tests start from a known state.
# shellcheck disable=SC2154	# client, gw, server are set by setup_ns
setup_topology()
{
	local ns addr

	checktool "ip -V" "run ip (iproute2)"
	checktool "ping -V" "run ping"

	setup_ns client gw server || return $ksft_fail

	# Before the links, which take the defaults.  No duplicate address
	# detection, for the link-local addresses either: until it ends, the
	# first IPv6 exchange fails and the ping below waits out its timeout.
	for ns in "$client" "$server"; do
		ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
			net.ipv4.conf.default.rp_filter=0 \
			net.ipv6.conf.default.accept_dad=0 > /dev/null
	done
	ip netns exec "$gw" sysctl -qw net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.ip_forward=1 \
		net.ipv6.conf.all.forwarding=1 \
		net.ipv6.conf.default.accept_dad=0 > /dev/null

	# One ip process per namespace: under emulation each process costs
	# a tenth of a second, and a topology used to take forty of them.
	# (The family of "default via" is the gateway's.)
	if ! ip -n "$client" -b - <<-EOF ||
		link add $CLIENT_IF type veth peer name $GW_CLIENT_IF netns $gw
		addr add $CLIENT_IP4/24 dev $CLIENT_IF
		addr add $CLIENT_IP6/64 dev $CLIENT_IF nodad
		link set dev $CLIENT_IF up
		route add default via $GW_CLIENT_IP4
		route add default via $GW_CLIENT_IP6
		EOF
	   ! ip -n "$server" -b - <<-EOF ||
		link add $SERVER_IF type veth peer name $GW_SERVER_IF netns $gw
		addr add $SERVER_IP4/24 dev $SERVER_IF
		addr add $SERVER_IP6/64 dev $SERVER_IF nodad
		link set dev $SERVER_IF up
		route add default via $GW_SERVER_IP4
		route add default via $GW_SERVER_IP6
		EOF
	   ! ip -n "$gw" -b - <<-EOF
		addr add $GW_CLIENT_IP4/24 dev $GW_CLIENT_IF
		addr add $GW_CLIENT_IP6/64 dev $GW_CLIENT_IF nodad
		addr add $GW_SERVER_IP4/24 dev $GW_SERVER_IF
		addr add $GW_SERVER_IP6/64 dev $GW_SERVER_IF nodad
		link set dev $GW_CLIENT_IF up
		link set dev $GW_SERVER_IF up
		EOF
	then
		log_fail "setup_topology: cannot create the links, addresses and routes"
		return $ksft_fail
	fi

	for addr in "$SERVER_IP4" "$SERVER_IP6"; do
		if ! busywait "$BUSYWAIT_TIMEOUT" __ping_ok "$client" "$addr"; then
			log_fail "setup_topology: client cannot ping $addr"
			return $ksft_fail
		fi
	done
	for addr in "$CLIENT_IP4" "$CLIENT_IP6"; do
		if ! busywait "$BUSYWAIT_TIMEOUT" __ping_ok "$server" "$addr"; then
			log_fail "setup_topology: server cannot ping $addr"
			return $ksft_fail
		fi
	done
	return 0
}

# tproxy_routing NS [4|6|46]: the policy routing of the tproxy recipe in NS:
# packets marked 1 are looked up in table 100, which delivers everything
# locally (default: both families).
tproxy_routing()
{
	local ns=$1 families=${2:-46}

	if [[ $families == *4* ]]; then
		ip -n "$ns" rule add fwmark 1 lookup 100 &&
		ip -n "$ns" route add local 0.0.0.0/0 dev lo table 100 || return 1
	fi
	if [[ $families == *6* ]]; then
		ip -n "$ns" -6 rule add fwmark 1 lookup 100 &&
		ip -n "$ns" -6 route add local ::/0 dev lo table 100 || return 1
	fi
}

# tproxy_divert NS PROTO PORT TO [DELIVERY]: the prerouting half of the
# recipe in NS, table inet proxy: packets of established transparent PROTO
# flows, and new PROTO flows to PORT diverted to the transparent listener on
# port TO, get DELIVERY: "meta mark set 1" (the default, for
# tproxy_routing), "divert" (the extension, loaded with the patched nft) or
# "" (nothing).
tproxy_divert()
{
	local delivery=${5-meta mark set 1} nft=nft

	[[ $delivery != *divert* ]] || nft=$NFT_PATCHED
	ip netns exec "$1" "$nft" -f - <<EOF
table inet proxy {
	chain divert {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto $2 socket transparent 1 $delivery accept
		meta l4proto $2 th dport $3 tproxy ip to :$4 $delivery accept
		meta l4proto $2 th dport $3 tproxy ip6 to :$4 $delivery accept
	}
}
EOF
}

##############################################################################
# Which module serves the rules

__module_loaded()
{
	grep -q "^$1 " /proc/modules
}

# Build ID of a module file (.ko, .ko.xz, .ko.zst, .ko.gz).
__ko_build_id()
{
	local ko=$1 tmp id

	case $ko in
	*.ko)
		readelf -n "$ko" 2>/dev/null | awk '/Build ID:/ { print $3; exit }'
		return
		;;
	esac
	tmp=$(mktemp) || return 1
	case $ko in
	*.xz) xz -dc "$ko" > "$tmp" ;;
	*.zst) zstd -qdc "$ko" > "$tmp" ;;
	*.gz) gzip -dc "$ko" > "$tmp" ;;
	esac 2>/dev/null
	id=$(readelf -n "$tmp" 2>/dev/null | awk '/Build ID:/ { print $3; exit }')
	rm -f "$tmp"
	echo "$id"
}

# Build ID of a loaded module, from its ELF note in sysfs: 12 bytes of note
# header and "GNU\0", then the ID itself.
__sys_build_id()
{
	local note=/sys/module/$1/notes/.note.gnu.build-id hex

	[ -r "$note" ] || return 1
	hex=$(od -An -v -tx1 "$note" | tr -d ' \n')
	echo "${hex:32}"
}

# __mod_is_ours MODULE: the loaded MODULE is the one built in NFT_TPROXY_MODDIR.
# Compares srcversion (present when the module has MODULE_VERSION) or else the
# build ID. Sets __mod_why to the evidence or to the reason of the mismatch.
__mod_why=""
__mod_is_ours()
{
	local m=$1 ko=$NFT_TPROXY_MODDIR/$1.ko want got

	if [ ! -d "/sys/module/$m" ]; then
		__mod_why="$m is not loaded"
		return 1
	fi
	if [ ! -r "$ko" ]; then
		__mod_why="$ko not found"
		return 1
	fi
	want=$(modinfo -F srcversion "$ko" 2>/dev/null)
	if [ -n "$want" ]; then
		got=$(cat "/sys/module/$m/srcversion" 2>/dev/null)
		if [ "$got" = "$want" ]; then
			__mod_why="srcversion $got"
			return 0
		fi
		__mod_why="loaded $m has srcversion '${got:-none}', ours is $want"
		return 1
	fi
	want=$(__ko_build_id "$ko")
	got=$(__sys_build_id "$m")
	if [ -z "$want" ] || [ -z "$got" ]; then
		__mod_why="cannot identify $m: no srcversion and no build ID"
		return 1
	fi
	if [ "$got" = "$want" ]; then
		__mod_why="build ID $got"
		return 0
	fi
	__mod_why="loaded $m has build ID $got, ours is $want"
	return 1
}

# __mod_is_intree MODULE: the loaded MODULE is the kernel's own.
__mod_is_intree()
{
	local m=$1 path kdir want got ours

	kdir=/lib/modules/$(uname -r)/kernel/
	if grep -qs "/$m\.ko" "/lib/modules/$(uname -r)/modules.builtin"; then
		__mod_why="$m is built into the kernel"
		return 0
	fi
	if [ ! -d "/sys/module/$m" ]; then
		__mod_why="$m is not loaded"
		return 1
	fi
	if grep -q O "/sys/module/$m/taint" 2>/dev/null; then
		__mod_why="loaded $m is out-of-tree (taint $(cat "/sys/module/$m/taint"))"
		return 1
	fi
	ours=$(modinfo -F srcversion "$NFT_TPROXY_MODDIR/$m.ko" 2>/dev/null)
	got=$(cat "/sys/module/$m/srcversion" 2>/dev/null)
	if [ -n "$ours" ] && [ "$got" = "$ours" ]; then
		__mod_why="loaded $m has our srcversion $ours"
		return 1
	fi
	path=$(modinfo -n "$m" 2>/dev/null)
	if [[ $path != "$kdir"* ]]; then
		__mod_why="modinfo resolves $m to '${path:-nothing}', not under $kdir"
		return 1
	fi
	want=$(__ko_build_id "$path")
	got=$(__sys_build_id "$m")
	if [ -n "$want" ] && [ -n "$got" ] && [ "$want" != "$got" ]; then
		__mod_why="loaded $m has build ID $got, $path has $want"
		return 1
	fi
	__mod_why="$path${got:+, build ID $got}"
	return 0
}

__intree_helpers_loaded()
{
	local m found=""

	for m in $NFT_TPROXY_INTREE_HELPERS; do
		__module_loaded "$m" && found="$found $m"
	done
	echo "${found# }"
}

# assert_ours_served EXPR: call while a rule using EXPR is loaded. Mode ours:
# nft_EXPR is our module and holds a reference, no in-tree helper is loaded.
# Mode intree: nft_EXPR is the kernel's own module.
assert_ours_served()
{
	local expr=$1 m=nft_$1 refcnt helpers

	if [ "$NFT_TPROXY_MODE" = intree ]; then
		if __mod_is_intree "$m"; then
			log_pass "$expr: served by the in-tree $m ($__mod_why)"
			return 0
		fi
		log_fail "$expr: not served by the in-tree $m: $__mod_why"
		return 1
	fi

	if ! __mod_is_ours "$m"; then
		log_fail "$expr: not served by our $m: $__mod_why"
		return 1
	fi
	refcnt=$(cat "/sys/module/$m/refcnt" 2>/dev/null)
	if [ "${refcnt:-0}" -le 0 ]; then
		log_fail "$expr: our $m holds no reference (refcnt ${refcnt:-?}): no rule uses it"
		return 1
	fi
	helpers=$(__intree_helpers_loaded)
	if [ -n "$helpers" ]; then
		log_fail "$expr: in-tree modules loaded beside ours: $helpers"
		return 1
	fi
	log_pass "$expr: served by our $m ($__mod_why, refcnt $refcnt)"
	return 0
}

##############################################################################
# ABI checks (nft_*_abi.sh)
#
# Their PASS lines must read the same whichever module answers, so that the
# runs against the in-tree modules and against ours can be compared line by
# line: nothing mode-dependent goes after PASS:.

NFT_RAW=$SELFTEST_DIR/nft_raw

# require_nft_raw: skip the test unless the nft_raw helper is built.
# The nft built by "make userspace": libnftnl and nft with the patch series
# of libnftnl-patch/ and nft-patch/, which know the extensions' syntax.
: "${NFT_PATCHED:=$(readlink -m "$SELFTEST_DIR/../build/userspace/prefix/sbin/nft")}"

# FIB_TRACE: where fib_trace_on finds the trace buffer.
FIB_TRACE=/sys/kernel/tracing

# fib_trace_on WHY: turn the fib:fib_table_lookup and fib6:fib6_table_lookup
# tracepoints on until the test exits (they see every namespace), or SKIP,
# saying WHY the test needs them.  Turning a tracepoint on or off rewrites
# kernel text while the other CPU may run it; under QEMU's software
# emulation that is not safe for code that runs all the time, so the
# command names are not recorded (that would turn the scheduler's
# tracepoints on), and the FIB ones are turned on once, before any traffic.
fib_trace_on()
{
	local t=$FIB_TRACE o

	[ -w "$t/trace" ] || mount -t tracefs nodev "$t" 2>/dev/null
	if [ ! -d "$t/events/fib/fib_table_lookup" ] ||
	   [ ! -d "$t/events/fib6/fib6_table_lookup" ]; then
		echo "SKIP: no FIB lookup tracepoints in $t: $1"
		exit "$ksft_skip"
	fi
	for o in record-cmd record-tgid; do
		[ -w "$t/options/$o" ] || continue
		on_exit "echo $(cat "$t/options/$o") >$t/options/$o"
		echo 0 >"$t/options/$o"
	done
	echo 1 >"$t/events/fib/fib_table_lookup/enable"
	echo 1 >"$t/events/fib6/fib6_table_lookup/enable"
	on_exit "echo 0 >$t/events/fib/fib_table_lookup/enable; echo 0 >$t/events/fib6/fib6_table_lookup/enable"
}

# addr_re ADDR: ADDR as a regular expression, as the programs print it.
addr_re()
{
	case $1 in
	*:*) printf '\\[%s\\]' "$1" ;;
	*) printf '%s' "${1//./\\.}" ;;
	esac
}

# echo_logged FILE PROTO ADDR PORT: the lines tproxy_echo -o wrote to FILE
# for PROTO flows to ADDR:PORT (0 when there is no FILE yet).
echo_logged()
{
	local n

	n=$(grep -c -- " $2 peer=.* orig=$(addr_re "$3"):$4\$" "$1" 2>/dev/null)
	echo "${n:-0}"
}

# nft_counter NS TABLE NAME: the packets counted so far by the named
# counter NAME of the inet table TABLE in NS.
nft_counter()
{
	ip netns exec "$1" nft list counter inet "$2" "$3" |
		awk '/packets/ { print $2 }'
}

# nft_tproxy_stat NS NAME: the counter NAME of /proc/net/stat/nft_tproxy in
# NS, summed over the CPUs.
nft_tproxy_stat()
{
	local names vals i col="" sum=0

	{
		read -r -a names
		for i in "${!names[@]}"; do
			[ "${names[i]}" = "$2" ] && col=$i
		done
		while read -r -a vals; do
			sum=$(( sum + 16#${vals[${col:-0}]} ))
		done
	} < <(ip netns exec "$1" cat /proc/net/stat/nft_tproxy)
	[ -n "$col" ] || sum=0
	echo "$sum"
}

# nft_tproxy_stats_sum NS NAME...: the counters NAME... of NS's
# /proc/net/stat/nft_tproxy, summed over them and the CPUs.
nft_tproxy_stats_sum()
{
	local ns=$1 n t=0

	shift
	for n in "$@"; do
		t=$((t + $(nft_tproxy_stat "$ns" "$n")))
	done
	echo "$t"
}

__unload_ours()
{
	rmmod nft_socket 2>/dev/null
	rmmod nft_tproxy 2>/dev/null
	! grep -qE '^nft_(tproxy|socket) ' /proc/modules
}

# unload_ours AFTER: in mode ours, once the rules are gone, our modules
# must unload, once the namespaces that held rules are (they go in a
# workqueue).  PASS or FAIL "... after AFTER"; returns 1 on FAIL.
unload_ours()
{
	if busywait 30000 __unload_ours; then
		log_pass "our modules unload after $1"
		return 0
	fi
	log_fail "our modules do not unload after $1: $(grep -E '^nft_(tproxy|socket) ' /proc/modules | tr '\n' ' ')"
	return 1
}

# reload_ours AFTER: at the end of a test (mode ours) whose rules are
# gone: unload_ours AFTER, then our modules are loaded again for the tests
# that follow.
reload_ours()
{
	local m

	unload_ours "$1"
	for m in nft_tproxy nft_socket; do
		grep -q "^$m " /proc/modules || insmod "$NFT_TPROXY_MODDIR/$m.ko" ||
			log_fail "insmod $m after $1"
	done
}

require_nft_patched()
{
	if [ ! -x "$NFT_PATCHED" ]; then
		echo "SKIP: $NFT_PATCHED is not built (make userspace)"
		exit $ksft_skip
	fi
}

# nftp NS ARGS...: the patched nft in NS.
nftp()
{
	local ns=$1
	shift

	ip netns exec "$ns" "$NFT_PATCHED" "$@"
}

require_nft_raw()
{
	if [ ! -x "$NFT_RAW" ]; then
		echo "SKIP: $NFT_RAW is not built (make -C selftests)"
		exit $ksft_skip
	fi
}

# Elements of a set are listed in the order of its hash table, which differs
# between kernels: sort them within each set.
__abi_normalize()
{
	awk '
	/^\telement / { elem[n++] = $0; next }
	{ flush(); print }
	END { flush() }
	function flush(  i, j, t) {
		for (i = 1; i < n; i++)
			for (j = i; j > 0 && elem[j - 1] > elem[j]; j--) {
				t = elem[j]; elem[j] = elem[j - 1]; elem[j - 1] = t
			}
		for (i = 0; i < n; i++)
			print elem[i]
		n = 0
	}' "$@"
}

# abi_forms EXPR NS: load golden/nft_EXPR_forms.nft into NS; "nft list
# ruleset" must print golden/nft_EXPR_forms.list and "nft --debug=netlink
# list ruleset" golden/nft_EXPR_forms.netlink (both recorded from the in-tree
# module). Checks which module served the rules, then flushes the ruleset.
abi_forms()
{
	local expr=$1 ns=$2 golden=$SELFTEST_DIR/golden/nft_$1_forms out rules

	out=$(mktemp) || return 1
	if ! ip netns exec "$ns" nft -f "$golden.nft" > "$out" 2>&1; then
		log_fail "$expr: the rule forms of golden/${golden##*/}.nft are refused:"
		sed 's/^/    /' "$out"
		rm -f "$out"
		return 1
	fi
	rules=$(grep -c '^[a-z0-9]* [^ ]* [^ ]* [0-9]' "$golden.netlink")

	ip netns exec "$ns" nft list ruleset > "$out" 2>&1
	if diff -u "$golden.list" "$out" > "$out.diff"; then
		log_pass "$expr: nft list ruleset prints the $rules rule forms as upstream"
	else
		log_fail "$expr: nft list ruleset differs from golden/${golden##*/}.list:"
		sed 's/^/    /' "$out.diff"
	fi

	ip netns exec "$ns" nft --debug=netlink list ruleset > "$out" 2>&1
	if diff -u <(__abi_normalize "$golden.netlink") <(__abi_normalize "$out") \
		> "$out.diff"; then
		log_pass "$expr: the netlink dump of the $rules rule forms is upstream's"
	else
		log_fail "$expr: the netlink dump differs from golden/${golden##*/}.netlink:"
		sed 's/^/    /' "$out.diff"
	fi

	# Which module answered: only a mismatch prints a result line.
	if [ "$NFT_TPROXY_MODE" = intree ]; then
		if __mod_is_intree "nft_$expr"; then
			echo "served by the in-tree nft_$expr: $__mod_why"
		else
			log_fail "$expr: rules not served by the in-tree nft_$expr: $__mod_why"
		fi
	elif __mod_is_ours "nft_$expr"; then
		echo "served by our nft_$expr: $__mod_why"
	else
		log_fail "$expr: rules not served by our nft_$expr: $__mod_why"
	fi

	ip netns exec "$ns" nft flush ruleset
	rm -f "$out" "$out.diff"
}

# abi_raw_case NS NAME WANT ALT NFT_RAW_ARGS...: send the hand-made batch of
# nft_raw NFT_RAW_ARGS in NS; the kernel must answer WANT (OK or an errno
# name; "A/B" when the answer depends on the nf_tables core of the kernel,
# not on the expression module).  ALT, when not empty, is also accepted from
# the in-tree module (mode intree): a documented difference of older in-tree
# modules.  The PASS line says what the kernel answered, so that comparing
# the lines of the two modes shows any difference.
abi_raw_case()
{
	local ns=$1 name=$2 want=$3 alt=$4 res got
	shift 4

	res=$(ip netns exec "$ns" "$NFT_RAW" "$@" 2>&1)
	got=$(printf '%s\n' "$res" | awk '$1 == "OK" { print "OK"; exit }
					  $1 == "ERR" { print $2; exit }')
	ip netns exec "$ns" nft flush ruleset 2>/dev/null
	if [[ -n "$got" && "/$want/" == *"/$got/"* ]]; then
		log_pass "$name: $got"
		return 0
	fi
	if [ -n "$alt" ] && [ "$NFT_TPROXY_MODE" = intree ] && [ "$got" = "$alt" ]; then
		log_pass "$name: $got (upstream now: $want)"
		return 0
	fi
	log_fail "$name: want $want${alt:+ (in-tree: $alt)}, got ${got:-nothing}:"
	printf '%s\n' "$res" | sed 's/^/    /'
	return 1
}
