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
# module know (no divert), no namespace churn, seeds SEED .. SEED+JOBS-1:
#   fuzz-cmp  every value;
#   fuzz-u8   the socket key and level and the tproxy family below 256.
# 6.1's in-tree modules keep those three in a u8 and truncate what they get
# (key 256 loads as transparent), where ours answer ERANGE as upstream does
# since 6.6: on such a kernel, which the intree run detects and reports,
# the fuzz-cmp lines may differ and the fuzz-u8 lines may not.
#
# Mode ours then runs every generator, divert and namespace churn included,
# and ends with rmmod of our modules, which must succeed once the fuzzers'
# namespaces are gone (the modules are loaded again for the tests that
# follow).
#
# Environment: NFT_TPROXY_FUZZ_MESSAGES (default 600, per run, split over
# the jobs), NFT_TPROXY_FUZZ_SEED (default 1), NFT_TPROXY_FUZZ_JOBS
# (default 1: fuzzers side by side, each with its seed, in its own netns).

source "$(dirname "$(readlink -f "$0")")/lib.sh"

FUZZ=$SELFTEST_DIR/nft_fuzz_netlink
MESSAGES=${NFT_TPROXY_FUZZ_MESSAGES:-600}
SEED=${NFT_TPROXY_FUZZ_SEED:-1}
JOBS=${NFT_TPROXY_FUZZ_JOBS:-1}
CMP_KINDS=tproxy,socket,chain,jump,vmap,replace,delete,abort

[ -x "$FUZZ" ] || { echo "SKIP: $FUZZ is not built (make -C selftests)"; exit "$ksft_skip"; }
require_nft_raw
for v in "$MESSAGES" "$SEED" "$JOBS"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "FAIL: not a number: '$v'"; exit "$ksft_fail"; }
done
[ "$JOBS" -ge 1 ] || JOBS=1

# fuzz NAME ARGS: JOBS fuzzers side by side, job j with seed SEED+j and
# its share of MESSAGES; prints "fuzz-NAME seed S: LINE" for the lines that
# depend only on the messages and the kernel's answers.
fuzz()
{
	local name=$1 j n s t0 ok=0 total=0 out
	local -a pids=()

	shift
	t0=$(__now_ms)
	for ((j = 0; j < JOBS; j++)); do
		n=$((MESSAGES / JOBS + (j < MESSAGES % JOBS)))
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
		log_pass "fuzz-$name: $MESSAGES messages, $JOBS job(s), seeds $SEED..$((SEED + JOBS - 1)): fuzzers ended cleanly"
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

fuzz cmp -N -k "$CMP_KINDS" || ret=$ksft_fail
fuzz u8 -N -u -k "$CMP_KINDS" || ret=$ksft_fail

if [ "$NFT_TPROXY_MODE" = ours ]; then
	fuzz all || ret=$ksft_fail

	reload_ours "the fuzzing"
fi

exit "$ret"
