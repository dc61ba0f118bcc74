#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The guest half of make bench (scripts/bench.sh boots the VM and runs this
# with vm-run.sh --mode intree --exec): measures what interception costs,
# variant by variant, in one boot, and writes the raw figures to OUT/raw.txt.
#
#   bench-guest.sh OUT [smoke|profile]
#
#   Y (client, netperf) ---- X (gateway) ---- Z (server)
#
# Variants (ports of their own each, so no 4-tuple is reused across them):
#   A    no interception: Y talks to servers on X's own address
#   B    in-tree nft_tproxy + nft_socket, policy-routing recipe
#   C    iptables (iptables-nft: xt_TPROXY and xt_socket through nft_compat),
#        same recipe
#   D    nft redirect (NAT, conntrack)
#   E    ours, policy-routing recipe
#   F    ours, divert (no ip rule, no mark, no route table)
#   B+ct, E+ct   B and E with conntrack active in X (one ct rule)
# In B to F, Y talks to Z's address and X's servers take the connections:
# netserver, made transparent with transparent_preload.so.
#
# Phase fwd (forwarded, not intercepted): X set up as E (the recipe: its
# ip rule, table 100 and tproxy rules for other ports) and as F (divert's
# rules for other ports), while Y talks to netserver on Z itself on ports no
# rule takes: what each setup costs the rest of the gateway's traffic.
#
# profile: A and F once each, every workload, under perf record (cpu-clock,
# the whole guest): OUT/profile-WORKLOAD-VARIANT.txt, for
# scripts/bench-profile.py.  Under instruction counting a sample is a slice
# of the guest's work, so the samples of a symbol are what it costs.
#
# Method: every figure is a count of the guest's work when QEMU counts
# instructions (make bench boots it so): netperf times its own
# window with an in-process clock; nothing inside a window writes to the
# console or reads from the host; every binary runs once before the first
# window; results are kept in /run and written to OUT after the last one.
#
# Environment: BENCH_REPS (5), BENCH_CRR (TCP_CRR transactions), BENCH_RR
# (TCP_RR and UDP_RR transactions), BENCH_BULK (TCP_STREAM bytes),
# BENCH_PHASES (main estab vmap relay fwd).

set -u

out=${1:?usage: bench-guest.sh OUT [smoke|profile]}
kind=${2:-}
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
# shellcheck source=selftests/lib.sh
source "$root/selftests/lib.sh"

REPS=${BENCH_REPS:-5}
CRR=${BENCH_CRR:-1000}
RR=${BENCH_RR:-3000}
BULK=${BENCH_BULK:-268435456}
PHASES=${BENCH_PHASES:-main estab vmap relay fwd}
VARIANTS="A B C D E F B+ct E+ct"
WORKLOADS="conn tcp_rr udp_rr bulk"
case $kind in
smoke) REPS=1 CRR=100 PHASES=main WORKLOADS=conn ;;
profile) REPS=1 PHASES=profile CRR=$((5 * CRR)) RR=$((5 * RR)) ;;
esac
SHIM=$root/selftests/transparent_preload.so
RELAY=$root/proxy/tproxy-relay
FLOWS=$root/scripts/bench_flows.py
moddir=$NFT_TPROXY_MODDIR	# lib.sh's default, or vm-run's
raw=/run/bench.raw
log=/run/bench.log
: >"$raw"
: >"$log"

say() { echo "bench: $*"; }
die() { say "FAIL: $*"; cp "$log" "$out/guest.log"; cp "$raw" "$out/raw.txt"; exit 1; }

for t in netperf netserver python3 iptables; do
	command -v "$t" >/dev/null || die "$t is not installed (make deps)"
done
[ -r "$SHIM" ] || die "$SHIM is not built (make -C selftests)"
[ -x "$RELAY" ] || die "$RELAY is not built (make -C proxy)"
have_divert=1
divert_why=""
if [ ! -x "$NFT_PATCHED" ]; then
	have_divert=0
	divert_why="the patched nft ($NFT_PATCHED) is not built: make userspace"
elif [ ! -r "$moddir/nft_tproxy.ko" ] ||
     ! modinfo "$moddir/nft_tproxy.ko" | grep -q 'alias:.*nft-expr-divert'; then
	have_divert=0
	divert_why="our nft_tproxy.ko has no divert expression"
fi

# Figures per variant index: each variant owns ports 10000 + 1000 * phase
# + 20 * index + k.
vindex()
{
	local i=0 v

	for v in $VARIANTS; do
		[ "$v" = "$1" ] && { echo $i; return; }
		i=$((i + 1))
	done
	echo 99
}

# --- modules --------------------------------------------------------------

# use_modules intree|ours: nft_tproxy and nft_socket of that kind loaded,
# the other kind unloaded (they share names).  No rule may use them then.
use_modules()
{
	local want=$1 m cur

	for m in nft_tproxy nft_socket; do
		cur=$(module_kind "$m")
		[ "$cur" = "$want" ] && continue
		[ "$cur" = none ] || rmmod "$m" || return 1
		if [ "$want" = ours ]; then
			insmod "$moddir/$m.ko" || return 1
		else
			modprobe "$m" || return 1
		fi
	done
}

# module_kind MOD: ours, intree, none or unknown (lib.sh's tests).
module_kind()
{
	if ! __module_loaded "$1"; then
		echo none
	elif __mod_is_ours "$1"; then
		echo ours
	elif __mod_is_intree "$1"; then
		echo intree
	else
		echo unknown
	fi
}

# --- rulesets -------------------------------------------------------------

# ports_rules DELIVERY PORT...: one tproxy rule per port, each to itself.
ports_rules()
{
	local d=$1 p
	shift

	for p in "$@"; do
		echo "meta l4proto { tcp, udp } th dport $p tproxy ip to :$p $d accept"
	done
}

# tproxy_table DELIVERY PORT...: the recipe's prerouting chain.
tproxy_table()
{
	local d=$1 own
	shift

	# The flow's own socket: divert looks it up itself.
	own="socket transparent 1 $d"
	[ "$d" != divert ] || own=divert
	cat <<-EOF
	table inet bench {
		chain pre {
			type filter hook prerouting priority mangle; policy accept;
			meta l4proto { tcp, udp } $own accept
			$(ports_rules "$d" "$@")
		}
	}
	EOF
}

# vmap_table VARIANT N CTRL DATA: a plain rule for netperf's control port
# CTRL; DATA and N - 1 other ports in one verdict map, each to a chain with
# its target (the others all to one chain, to port 9).
vmap_table()
{
	local v=$1 n=$2 ctrl=$3 data=$4 d="meta mark set 1" p i stmt

	[ "$v" != F ] || d=divert
	echo "table inet bench {"
	for p in "$ctrl" "$data" 9; do
		if [ "$v" = D ]; then
			stmt="meta l4proto tcp redirect to :$p"
		else
			stmt="meta l4proto tcp tproxy ip to :$p $d accept"
		fi
		echo "chain t_$p { $stmt; }"
	done
	echo "map ports { type inet_service : verdict; elements = {"
	echo " $data : jump t_$data,"
	for ((i = 1; i < n; i++)); do
		echo " $((40000 + i)) : jump t_9,"
	done
	echo "}"; echo "}"
	if [ "$v" = D ]; then
		echo "chain pre { type nat hook prerouting priority dstnat; policy accept;"
	else
		echo "chain pre { type filter hook prerouting priority mangle; policy accept;"
		if [ "$v" = F ]; then
			echo "meta l4proto tcp divert accept"
		else
			echo "meta l4proto tcp socket transparent 1 $d accept"
		fi
	fi
	echo "tcp dport $ctrl jump t_$ctrl"
	echo "tcp dport vmap @ports; }"
	echo "}"
}

# use_topo VARIANT: client, gw and server of the topology VARIANT runs in.
use_topo()
{
	case $1 in
	A|D|F|direct) client=$c2 gw=$g2 server=$s2 ;;
	*) client=$c1 gw=$g1 server=$s1 ;;
	esac
}

# setup_variant VARIANT PHASE PORT...: X intercepts PORTs (new flows to Z's
# address) as VARIANT does; PHASE vmap:N puts them in an N-port map.
setup_variant()
{
	local v=$1 phase=$2 p nft=nft
	shift 2

	use_topo "$v"
	ip netns exec "$gw" nft flush ruleset
	case $v in
	B|B+ct|C) use_modules intree ;;
	E|E+ct|F) use_modules ours ;;
	esac || return 1
	case $v in
	B|B+ct|C|E|E+ct) tproxy_routing "$gw" 4 || return 1 ;;
	esac
	[ "$v" != F ] || nft=$NFT_PATCHED
	if [[ $phase == vmap:* ]]; then
		vmap_table "$v" "${phase#vmap:}" "$@" | ip netns exec "$gw" "$nft" -f - || return 1
	else
		case $v in
		A) ;;
		B|B+ct|E|E+ct)
			tproxy_table "meta mark set 1" "$@" | ip netns exec "$gw" nft -f - || return 1 ;;
		F)
			tproxy_table divert "$@" | ip netns exec "$gw" "$nft" -f - || return 1 ;;
		C)
			# shellcheck disable=SC2016	# expanded by that sh
			ip netns exec "$gw" sh -e -c '
				iptables -t mangle -N DIVERT
				iptables -t mangle -A DIVERT -j MARK --set-mark 1
				iptables -t mangle -A DIVERT -j ACCEPT
				for proto in tcp udp; do
					iptables -t mangle -A PREROUTING -p $proto -m socket --transparent -j DIVERT
				done
				for p in "$@"; do
					for proto in tcp udp; do
						iptables -t mangle -A PREROUTING -p $proto --dport $p -j TPROXY --on-port $p --tproxy-mark 1/1
					done
				done' sh "$@" || return 1 ;;
		D)
			{
				echo "table inet bench { chain pre {"
				echo "type nat hook prerouting priority dstnat; policy accept;"
				for p in "$@"; do
					echo "meta l4proto { tcp, udp } th dport $p redirect to :$p"
				done
				echo "}"; echo "}"
			} | ip netns exec "$gw" nft -f - || return 1 ;;
		esac
	fi
	if [[ $v == *+ct ]]; then
		ip netns exec "$gw" nft -f - <<-EOF || return 1
		table inet bench_ct {
			chain in {
				type filter hook input priority filter; policy accept;
				ct state invalid drop
			}
		}
		EOF
	fi
	return 0
}

teardown_variant()
{
	ip netns exec "$gw" nft flush ruleset
	ip -n "$gw" rule del fwmark 1 lookup 100 2>/dev/null
	ip -n "$gw" route flush table 100 2>/dev/null
	return 0
}

# facts PHASE VARIANT: what serves VARIANT's rules in X now, for the report:
# the module of its tproxy (MODULE:ours|intree|none|unknown) and X's hooks,
# from which the report tells whether conntrack is active.
facts()
{
	local mod=none

	case $2 in
	B|B+ct|E|E+ct|F|relay) mod=nft_tproxy:$(module_kind nft_tproxy) ;;
	C) mod=xt_TPROXY:$(module_kind xt_TPROXY) ;;
	esac
	echo "meta $1 $2 module=$mod" >>"$raw"
	echo "hooks $1 $2 $(ip netns exec "$gw" nft list hooks 2>&1 | tr -s '\n\t ' ' ')" >>"$raw"
}

# --- workloads --------------------------------------------------------------

# target VARIANT: the address Y uses.
target()
{
	if [ "$1" = A ]; then echo "$GW_CLIENT_IP4"; else echo "$SERVER_IP4"; fi
}

# netperf_once HOST CTRL TEST COUNT DATA: transactions per second.
netperf_once()
{
	ip netns exec "$client" timeout 300 netperf -H "$1" -p "$2" -P 0 -t "$3" \
		-l "-$4" -- -P ",$5" -o THROUGHPUT 2>>"$log" | tail -n 1
}

# stream_once HOST CTRL BYTES DATA: 10^6 bits per second of a TCP_STREAM of
# BYTES.  4 MiB socket buffers at both ends: with the defaults the sender
# waits on the receiver in ways that the instruction count does not
# reproduce (spreads of 2 to 15 % between identical windows, against 0.1 %).
stream_once()
{
	ip netns exec "$client" timeout 300 netperf -H "$1" -p "$2" -P 0 \
		-t TCP_STREAM -l "-$3" -- -P ",$4" -s 4194304 -S 4194304 \
		-o THROUGHPUT 2>>"$log" | tail -n 1
}

# record PHASE WORKLOAD VARIANT REP VALUE UNIT: one figure; a value that is
# not a positive number fails the bench.
record()
{
	if ! [[ $5 =~ ^[0-9]*\.?[0-9]+$ ]] || [ "$(echo "$5 > 0" | bc -l)" != 1 ]; then
		die "$1 $2 $3 rep $4: no figure ('$5'), see guest.log"
	fi
	echo "fig $1 $2 $3 $4 $5 $6" >>"$raw"
}

# settle: every window starts from the same state: the TIME-WAIT sockets of
# the windows before it (each leaves hundreds in Y or X, and connect() pays
# for each one sharing its port) have expired.  Idle guest time is skipped
# under instruction counting, so the wait costs little real time.  Sockets
# left after 91 s are noted, and the report fails on the note.
settle()
{
	local i

	sleep 61
	for ((i = 0; i < 30; i++)); do
		[ -z "$(for ns in "$c1" "$g1" "$c2" "$g2"; do
			ss -N "$ns" -Htan state time-wait; done)" ] && return 0
		sleep 1
	done
	echo "note TIME-WAIT sockets remained 91 s before a window of $*" >>"$raw"
}

# cost RATE UNIT: a netperf rate as a cost in UNIT: us/conn and us/trans from
# transactions per second, ns/byte from 10^6 bits per second.
cost()
{
	case $2 in
	ns/byte) echo "8000 / ${1:-0}" ;;
	*) echo "1000000 / ${1:-0}" ;;
	esac | bc -l 2>/dev/null
}

# window HOST BASE WORKLOAD: one run of WORKLOAD against the netserver on
# BASE, printed as "COST UNIT".
window()
{
	local host=$1 base=$2 r unit

	case $3 in
	conn) r=$(netperf_once "$host" "$base" TCP_CRR "$CRR" $((base + 1))) unit=us/conn ;;
	tcp_rr) r=$(netperf_once "$host" "$base" TCP_RR "$RR" $((base + 2))) unit=us/trans ;;
	udp_rr) r=$(netperf_once "$host" "$base" UDP_RR "$RR" $((base + 3))) unit=us/trans ;;
	bulk) r=$(stream_once "$host" "$base" "$BULK" $((base + 4))) unit=ns/byte ;;
	esac
	echo "$(cost "$r" "$unit") $unit"
}

# measure PHASE WORKLOAD VARIANT REP BASE: one window, recorded as a cost.
measure()
{
	local cu

	settle "$1 $2 $3"
	cu=$(window "$(target "$3")" "$5" "$2")
	# shellcheck disable=SC2086	# "COST UNIT"
	record "$1" "$2" "$3" "$4" $cu
}

# servers BASE VARIANT: netserver on BASE in VARIANT's X, transparent.
servers()
{
	use_topo "$2"
	ip netns exec "$gw" env LD_PRELOAD="$SHIM" netserver -D -p "$1" >>"$log" 2>&1 &
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" "$1" tcp
}

# warm VARIANT BASE WORKLOADS: one unmeasured window of each, as large as
# the measured ones: the first window of a kind in a boot is off by up to
# 5 % even after a short one.
warm()
{
	local w

	for w in $3; do
		window "$(target "$1")" "$2" "$w" >/dev/null
	done
}

# rotate N LIST: LIST starting at its (N mod length)th element.
rotate()
{
	local n=$1 a
	shift
	read -r -a a <<<"$*"
	n=$((n % ${#a[@]}))
	echo "${a[*]:n} ${a[*]:0:n}"
}

base_port() { echo $((10000 + 1000 * $1 + 20 * $(vindex "$2"))); }

# run_set PHASE PHASEIDX SETUP VARIANTS WORKLOADS: REPS rounds, variants
# alternated (the first one rotates); each round sets each variant up anew.
run_set()
{
	local phase=$1 pi=$2 setup=$3 vs=$4 wl=$5 rep v base ports

	for ((rep = 1; rep <= REPS; rep++)); do
		for v in $(rotate $((rep - 1)) "$vs"); do
			base=$(base_port "$pi" "$v")
			if [ "$wl" = conn ]; then
				ports="$base $((base + 1))"
			else
				ports="$base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4))"
			fi
			# shellcheck disable=SC2086
			setup_variant "$v" "$setup" $ports || die "$phase: setting up $v"
			if [ "$rep" = 1 ]; then
				facts "$phase" "$v"
				warm "$v" "$base" "$wl"
			fi
			for w in $wl; do
				measure "$phase" "$w" "$v" "$rep" "$base"
			done
			teardown_variant
		done
		say "$phase: round $rep of $REPS done"
	done
}

# --- the run ----------------------------------------------------------------

# Two topologies, the same addresses in each: the variants that use policy
# routing run in the first, the others (A, D, F, the direct transfer) in the
# second.  A namespace that ever had an ip rule keeps routing through the
# rules (fib_has_custom_rules is never reset), which made A 3 % dearer after
# the first round: each variant must find the FIB its own recipe leaves.
setup_topology >>"$log" 2>&1 || die "setup_topology"
c1=$client g1=$gw s1=$server
client="" gw="" server=""	# setup_ns would replace the namespaces they name
setup_topology >>"$log" 2>&1 || die "setup_topology"
c2=$client g2=$gw s2=$server
for ns in "$c1" "$c2"; do
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="20000 65000"
done
for ns in "$c1" "$g1" "$s1" "$c2" "$g2" "$s2"; do
	# tcp_no_metrics_save: no connection starts from what an earlier one
	# to the same peer learnt.
	ip netns exec "$ns" sysctl -qw net.core.somaxconn=16384 \
		net.ipv4.tcp_max_syn_backlog=16384 \
		net.ipv4.tcp_no_metrics_save=1 >/dev/null
done
# The relay's sockets: fixed 4 MiB buffers, as netperf's -s/-S give the
# endpoints (with autotuning, transfers spread over 1 % between rounds).
for ns in "$g1" "$g2"; do
	ip netns exec "$ns" sysctl -qw net.ipv4.tcp_rmem="4194304 4194304 4194304" \
		net.ipv4.tcp_wmem="4194304 4194304 4194304" >/dev/null
done
ulimit -n 65536

all_variants=$VARIANTS
if [ "$have_divert" = 0 ]; then
	all_variants=${VARIANTS/ F/}
	echo "skip F $divert_why" >>"$raw"
	say "SKIP: variant F: $divert_why"
fi
{
	# No khugepaged scans or compaction in the middle of a window.
	for f in enabled defrag; do
		echo never >"/sys/kernel/mm/transparent_hugepage/$f"
	done
	modprobe -a nf_tables nf_conntrack nf_nat nf_defrag_ipv4 nf_defrag_ipv6 iptable_mangle
	sysctl -qw net.netfilter.nf_conntrack_max=262144
} 2>>"$log"

{
	echo "kernel $(uname -r)"
	echo "tool netperf $(netperf -V 2>&1 | head -n 1)"
	echo "tool nft $(nft --version 2>&1)"
	echo "tool iptables $(iptables -V 2>&1)"
	echo "tool python3 $(python3 --version 2>&1)"
	echo "param reps $REPS"
	echo "param crr $CRR"
	echo "param rr $RR"
	echo "param bulk $BULK"
	echo "vcpus $(nproc)"
	echo "clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
} >>"$raw"

# Phase index: the ports of phase PI are 10000 + 1000 * PI + ...
ESTAB_N=${BENCH_ESTAB_N:-10 1000 10000}
VMAP_N=${BENCH_VMAP_N:-1 100 10000}
ESTAB_VARIANTS="A B D E F"
VMAP_VARIANTS="B D E F"
FWD_VARIANTS="E F"
phase_variants()
{
	case $1 in
	main) echo "$all_variants" ;;
	estab) echo "$ESTAB_VARIANTS" ;;
	vmap) echo "$VMAP_VARIANTS" ;;
	fwd) echo "$FWD_VARIANTS" ;;
	profile) echo "A F" ;;
	esac | if [ "$have_divert" = 0 ]; then sed 's/ F\b//'; else cat; fi
}

# estab_set N PI: cost per new connection with N established flows through
# X, per variant: the flows are opened once, then REPS windows.
estab_set()
{
	local n=$1 pi=$2 v base rep ready

	for v in $(phase_variants estab); do
		base=$(base_port "$pi" "$v")
		setup_variant "$v" main "$base" $((base + 1)) $((base + 5)) ||
			die "estab $n: setting up $v"
		facts "estab:$n" "$v"
		ip netns exec "$gw" python3 "$FLOWS" serve $((base + 5)) >>"$log" 2>&1 &
		busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" $((base + 5)) tcp ||
			die "estab $n $v: the flow server does not listen"
		ready=/run/flows.$base
		ip netns exec "$client" python3 "$FLOWS" hold "$(target "$v")" \
			$((base + 5)) "$n" "$ready" >>"$log" 2>&1 &
		busywait 600000 test -s "$ready" ||
			die "estab $n $v: $n flows not established in time"
		[ "$(cat "$ready")" = "ok $n" ] ||
			die "estab $n $v: flows: $(cat "$ready")"
		warm "$v" "$base" conn
		for ((rep = 1; rep <= REPS; rep++)); do
			measure "estab:$n" conn "$v" "$rep" "$base"
		done
		pkill -f "$FLOWS"
		busywait "$BUSYWAIT_TIMEOUT" sh -c "! pgrep -f '$FLOWS' >/dev/null"
		teardown_variant
		say "estab $n: $v done"
	done
}

# relay_set: the reference proxy (ours, recipe, tproxy-relay -t -T) against
# a direct, forwarded transfer from Y to Z, netserver at Z.
relay_set()
{
	local rep w r direct=17000 relay=17020

	use_topo direct
	ip netns exec "$server" netserver -D -p "$direct" >>"$log" 2>&1 &
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" "$direct" tcp ||
		die "relay: netserver"
	use_topo relay
	ip netns exec "$server" netserver -D -p "$relay" >>"$log" 2>&1 &
	ip netns exec "$gw" "$RELAY" -q -t -T -l "[::]:8080" >>"$log" 2>&1 &
	if ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" "$relay" tcp ||
	   ! busywait "$BUSYWAIT_TIMEOUT" listener_ready "$gw" 8080 tcp; then
		die "relay: servers"
	fi
	for ((rep = 0; rep <= REPS; rep++)); do
		for w in $(rotate "$rep" "direct relay"); do
			use_topo "$w"
			teardown_variant
			if [ "$w" = relay ]; then
				if ! use_modules ours || ! tproxy_routing "$gw" 4 ||
				   ! tproxy_divert "$gw" tcp "{ $relay, $((relay + 4)) }" 8080; then
					die "relay: ruleset"
				fi
			fi
			settle "relay bulk $w"
			[ "$rep$w" != 1relay ] || facts relay relay
			r=$(stream_once "$SERVER_IP4" "${!w}" "$BULK" $((${!w} + 4)))
			# Round 0 warms up.
			[ "$rep" = 0 ] ||
				record relay bulk "$w" "$rep" "$(cost "$r" ns/byte)" ns/byte
		done
		[ "$rep" = 0 ] || say "relay: round $rep of $REPS done"
	done
	use_topo relay
	teardown_variant
}

# The fwd phase: index 8, variants E and F, netserver on Z.
FWD_PI=8
fwd_variants() { phase_variants fwd; }

# fwd_servers BASE VARIANT: netserver on BASE in VARIANT's Z.
fwd_servers()
{
	use_topo "$2"
	ip netns exec "$server" netserver -D -p "$1" >>"$log" 2>&1 &
	busywait "$BUSYWAIT_TIMEOUT" listener_ready "$server" "$1" tcp
}

# fwd_set: REPS rounds of every workload, Y to netserver on Z through X set
# up as E and as F, alternated; the rules intercept two other ports.
fwd_set()
{
	local rep v w base

	for ((rep = 1; rep <= REPS; rep++)); do
		for v in $(rotate $((rep - 1)) "$(fwd_variants)"); do
			base=$(base_port "$FWD_PI" "$v")
			setup_variant "$v" main $((base + 10)) $((base + 11)) ||
				die "fwd: setting up $v"
			if [ "$rep" = 1 ]; then
				facts fwd "$v"
				warm "$v" "$base" "$WORKLOADS"
			fi
			for w in $WORKLOADS; do
				measure fwd "$w" "$v" "$rep" "$base"
			done
			teardown_variant
		done
		say "fwd: round $rep of $REPS done"
	done
}

# profile_set: A and F, one window of each workload under perf record.
# Every window runs a fixed number of transactions (or bytes), so the two
# variants' samples compare directly: a sample every 20 us of CPU time,
# windows five times the usual size.  perf starts before the window and
# stops after it: the idle time around it is left out by the report.
profile_set()
{
	local v w base cu pid data ready=/run/perf.ready fifo=/run/perf.fifo

	command -v perf >/dev/null || die "profile: perf is not installed (make deps)"
	for v in A F; do
		base=$(base_port 0 "$v")
		setup_variant "$v" main "$base" $((base + 1)) $((base + 2)) \
			$((base + 3)) $((base + 4)) || die "profile: setting up $v"
		facts profile "$v"
		warm "$v" "$base" "$WORKLOADS"
		for w in $WORKLOADS; do
			settle "profile $w $v"
			data=/run/perf.$w.$v
			# perf's workload waits on a FIFO: once it runs, the
			# events are on; when it ends, perf writes its data.
			rm -f "$ready" "$fifo"
			mkfifo "$fifo" || die "profile: mkfifo"
			perf record -q -a -e cpu-clock -c 20000 -o "$data" -- \
				sh -c "touch $ready; read -r x <$fifo" \
				>/dev/null 2>>"$log" &
			pid=$!
			busywait 600000 test -e "$ready" ||
				die "profile: perf record did not start"
			cu=$(window "$(target "$v")" "$base" "$w")
			echo >"$fifo"
			wait "$pid" || die "profile: perf record of $w $v failed"
			# shellcheck disable=SC2086	# "COST UNIT"
			record profile "$w" "$v" 1 $cu
			perf report -i "$data" --stdio -q -n --sort sym \
				--percent-limit 0 >"/run/profile-$w-$v.txt" 2>>"$log" ||
				die "profile: perf report of $w $v"
			rm -f "$data"
		done
		teardown_variant
		say "profile: $v done"
	done
}

# Servers of every phase and variant, started before any window.
for phase in $PHASES; do
	case $phase in
	main|profile) pis=0 ;; estab) pis="1 2 3" ;; vmap) pis="4 5 6" ;; relay) continue ;;
	fwd)
		for v in $(fwd_variants); do
			fwd_servers "$(base_port "$FWD_PI" "$v")" "$v" ||
				die "fwd: servers of $v"
		done
		continue ;;
	*) die "unknown phase $phase" ;;
	esac
	for pi in $pis; do
		for v in $(phase_variants "$phase"); do
			servers "$(base_port "$pi" "$v")" "$v" || die "servers of $v"
		done
	done
done

for phase in $PHASES; do
	case $phase in
	main)
		run_set main 0 main "$(phase_variants main)" "$WORKLOADS" ;;
	estab)
		pi=1
		for n in $ESTAB_N; do
			estab_set "$n" "$pi"
			pi=$((pi + 1))
		done ;;
	vmap)
		pi=4
		for n in $VMAP_N; do
			run_set "vmap:$n" "$pi" "vmap:$n" "$(phase_variants vmap)" conn
			pi=$((pi + 1))
		done ;;
	relay)
		relay_set ;;
	fwd)
		fwd_set ;;
	profile)
		profile_set ;;
	esac
done

echo "done" >>"$raw"
cp "$log" "$out/guest.log" || die "writing $out"
cp "$raw" "$out/raw.txt" || die "writing $out"
for f in /run/profile-*.txt; do
	[ ! -e "$f" ] || cp "$f" "$out/" || die "writing $out"
done
say "figures in $out/raw.txt"
