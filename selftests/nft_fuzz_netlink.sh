#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: nf_tables messages of every shape for tproxy, socket and divert
# (nft_fuzz_netlink) leave the kernel log clean and the modules unloadable,
# and the in-tree modules and ours answer every message alike.
#
#   +---------------------------------------+
#   | one fresh netns per fuzzer process     |  no traffic: netlink only
#   +---------------------------------------+
#
# Two runs are compared across modes, line by line, by make check and make
# matrix (scripts/runlib.sh), and so print the same "fuzz-cmp" and
# "fuzz-u8" lines whichever module answers: the generators both kinds of
# module know (no divert), no namespace churn, interval maps (a hash map's
# random seed decides which of two errors in a batch the kernel reports;
# nft_fuzz_netlink -o), seeds SEED .. SEED+JOBS-1:
#   fuzz-cmp  every value;
#   fuzz-u8   the socket key and level and the tproxy family below 256.
# 6.1's in-tree modules keep those three in a u8 and truncate what they get
# (key 256 loads as transparent), where ours answer ERANGE as upstream does
# since 6.6: on such a kernel, which the intree run detects and reports,
# the fuzz-cmp lines may differ and the fuzz-u8 lines may not.
#
# Mode ours then runs every generator, divert and namespace churn included,
# and then rmmod of our modules, which must succeed once the fuzzers'
# namespaces are gone; a short run then loads them again through modprobe,
# and they must unload once more (and are loaded again for the tests that
# follow).
#
# Most names the fuzzer gives the kernel (expressions, chain types,
# families) are unknown on purpose, and the kernel asks userspace for a
# module at each one: a modprobe process per message, 40% of a guest's
# CPU under emulation.  The runs above therefore take place with the
# modules they can use already loaded and the usermode modprobe off
# (kernel.modprobe empty: the kernel still records each request and
# replays the batch, as it does after a failed modprobe), and with
# expedited RCU grace periods (each aborted batch waits for one).  Both
# are restored afterwards, and mode ours ends with a short run through
# the real modprobe ("autoload"), which loads what a batch names while the
# batch waits.  Together they made a 1-vCPU guest answer 8 times faster.
#
# Environment: NFT_TPROXY_FUZZ_MESSAGES (default 20000, per run, split over
# the jobs), NFT_TPROXY_FUZZ_SEED (default 1), NFT_TPROXY_FUZZ_JOBS
# (default 1: fuzzers side by side, each with its seed, in its own netns),
# NFT_TPROXY_FUZZ_RUNS (default cmp,u8,all,autoload; all and autoload in
# mode ours only), NFT_TPROXY_FUZZ_AUTOLOAD (default 100 messages).

source "$(dirname "$(readlink -f "$0")")/lib.sh"

FUZZ=$SELFTEST_DIR/nft_fuzz_netlink
MESSAGES=${NFT_TPROXY_FUZZ_MESSAGES:-20000}
SEED=${NFT_TPROXY_FUZZ_SEED:-1}
JOBS=${NFT_TPROXY_FUZZ_JOBS:-1}
RUNS=,${NFT_TPROXY_FUZZ_RUNS:-cmp,u8,all,autoload},
AUTOLOAD=${NFT_TPROXY_FUZZ_AUTOLOAD:-100}
CMP_KINDS=tproxy,socket,chain,jump,vmap,replace,delete,abort

[ -x "$FUZZ" ] || { echo "SKIP: $FUZZ is not built (make -C selftests)"; exit "$ksft_skip"; }
require_nft_raw
for v in "$MESSAGES" "$SEED" "$JOBS" "$AUTOLOAD"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "FAIL: not a number: '$v'"; exit "$ksft_fail"; }
done
[ "$JOBS" -ge 1 ] || JOBS=1

# fuzz NAME [-n MESSAGES] ARGS: JOBS fuzzers side by side, job j with seed
# SEED+j and its share of MESSAGES; prints "fuzz-NAME seed S: LINE" for the
# lines that depend only on the messages and the kernel's answers.  Nothing
# unless NAME is in RUNS.
fuzz()
{
	local name=$1 messages=$MESSAGES j n s t0 ok=0 total=0 out
	local -a pids=()

	[[ $RUNS == *",$name,"* ]] || return 0
	shift
	if [ "${1:-}" = -n ]; then
		messages=$2
		shift 2
	fi
	t0=$(__now_ms)
	for ((j = 0; j < JOBS; j++)); do
		n=$((messages / JOBS + (j < messages % JOBS)))
		"$FUZZ" -s $((SEED + j)) -n "$n" "$@" >"$TMPDIR_FUZZ/$name.$j" 2>&1 &
		pids+=($!)
	done
	for ((j = 0; j < JOBS; j++)); do
		out=$TMPDIR_FUZZ/$name.$j
		s=$((SEED + j))
		if ! wait "${pids[j]}"; then
			log_fail "fuzz-$name seed $s: the fuzzer failed:"
			tail -n 20 "$out" | sed 's/^/    /'
			ok=1
			continue
		fi
		if ! grep -q '^cleanup: .* 0 refused, 0 left$' "$out"; then
			log_fail "fuzz-$name seed $s: its tables were not all deleted: $(grep '^cleanup:' "$out")"
			ok=1
		fi
		grep -E '^(expressions|errno [0-9]+|batches|state|errno-hash|state-hash):? ' "$out" |
			sed "s/^/fuzz-$name seed $s: /"
		n=$(sed -n 's/^rate: \([0-9]*\) messages.*/\1/p' "$out")
		total=$((total + ${n:-0}))
	done
	[ "$ok" -ne 0 ] ||
		log_pass "fuzz-$name: $messages messages, $JOBS job(s), seeds $SEED..$((SEED + JOBS - 1)): fuzzers ended cleanly"
	echo "fuzz-$name: $total messages in $(( ($(__now_ms) - t0) / 1000 )) s"
	return $ok
}

TMPDIR_FUZZ=$(mktemp -d) || exit "$ksft_fail"
on_exit "rm -rf $TMPDIR_FUZZ"

# Does the kernel's socket expression truncate its key to a u8?  Key 256
# then loads as transparent.
setup_ns probe
# shellcheck disable=SC2154 # set by setup_ns
if ip netns exec "$probe" "$NFT_RAW" -f inet socket key=256 dreg=1 level=0 >/dev/null 2>&1; then
	echo "fuzz: the socket expression ($NFT_TPROXY_MODE) truncates key 256 to a u8: fuzz-cmp may differ from the other mode's"
else
	echo "fuzz: the socket expression ($NFT_TPROXY_MODE) refuses key 256"
fi
# Which modules answer: the fuzzers' namespaces come and go, so ask with a
# rule of each in this one.
if ip netns exec "$probe" nft -f - <<EOF; then
table inet served {
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp socket transparent 1 tproxy to :1234
	}
}
EOF
	assert_ours_served tproxy || ret=$ksft_fail
	assert_ours_served socket || ret=$ksft_fail
else
	log_fail "a tproxy and socket rule loads"
fi
cleanup_ns "$probe"

# What the generators can use besides tproxy and socket (and divert, in
# our nft_tproxy): the nat chain type, and what the mutated names hit.
modprobe -qa nft_chain_nat nft_nat nft_meta_bridge 2>/dev/null
modprobe_path=$(cat /proc/sys/kernel/modprobe)
expedited=$(cat /sys/kernel/rcu_expedited 2>/dev/null)
# restore: kernel.modprobe and rcu_expedited as they were.
restore()
{
	printf '%s\n' "$modprobe_path" >/proc/sys/kernel/modprobe
	[ -z "$expedited" ] || echo "$expedited" >/sys/kernel/rcu_expedited
}
on_exit restore
echo >/proc/sys/kernel/modprobe
[ -z "$expedited" ] || echo 1 >/sys/kernel/rcu_expedited
echo "fuzz: usermode modprobe off (kernel.modprobe '$(cat /proc/sys/kernel/modprobe)')," \
     "rcu_expedited $(cat /sys/kernel/rcu_expedited 2>/dev/null || echo absent) (was ${expedited:-absent})"

fuzz cmp -N -o -k "$CMP_KINDS" || ret=$ksft_fail
fuzz u8 -N -o -u -k "$CMP_KINDS" || ret=$ksft_fail

if [ "$NFT_TPROXY_MODE" = ours ]; then
	fuzz all || ret=$ksft_fail

	# Our modules out, then a run through modprobe, which loads them
	# again while the batch that names them waits.  The guest's
	# modprobe.d refuses the in-tree names (vm-run): the kernel's
	# modprobe here loads ours for their aliases, as modprobe does once
	# ours are installed, and asks the real one for anything else.
	restore
	cat >"$TMPDIR_FUZZ/modprobe" <<EOF
#!/bin/sh
for alias; do :; done
case \$alias in
nft-expr-tproxy|nft-expr-*-tproxy|nft-expr-divert|nft-expr-*-divert)
	exec insmod $NFT_TPROXY_MODDIR/nft_tproxy.ko ;;
nft-expr-socket|nft-expr-*-socket)
	exec insmod $NFT_TPROXY_MODDIR/nft_socket.ko ;;
esac
exec $modprobe_path "\$@"
EOF
	chmod +x "$TMPDIR_FUZZ/modprobe"
	unload_ours "the fuzzing" || ret=$ksft_fail
	if [[ $RUNS == *,autoload,* ]]; then
		echo "$TMPDIR_FUZZ/modprobe" >/proc/sys/kernel/modprobe
		fuzz autoload -n "$AUTOLOAD" || ret=$ksft_fail
		restore
		for m in nft_tproxy nft_socket; do
			if __mod_is_ours "$m"; then
				log_pass "fuzz-autoload: modprobe loaded our $m ($__mod_why)"
			else
				log_fail "fuzz-autoload: $m is not ours: $__mod_why"
				ret=$ksft_fail
			fi
		done
	fi

	reload_ours "the autoload run"
fi

exit "$ret"
