#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: what CI runs.  Installs the dependencies, lints, builds the
# modules for each CI kernel and runs the selftests in a VM per kernel: once
# the ABI tests against the kernel's own modules (mode intree), then the whole
# suite against ours with the in-tree modules blocked (mode ours).  The ABI
# results of both runs are compared line by line.
#
# Last line: "N passed, N failed, N skipped" over every test of every run,
# lint counting as one test.

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cd "$top" || exit 1
start=$(date +%s)
pass=0 fail=0 skip=0
ABI_TESTS="nft_tproxy_abi.sh nft_socket_abi.sh"
# In the run against the in-tree modules: the ABI tests, and the clash of
# ours with an in-tree module already loaded.
INTREE_TESTS="$ABI_TESTS nft_tproxy_precedence.sh"

count()
{
	local line

	line=$(grep -E '^vm-run: .*: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "check: no result line in $1: counted as a failure"
		fail=$((fail + 1))
		return
	fi
	line=${line##*: }
	read -r p _ f _ s _ <<<"${line//,/}"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

echo "check: make deps"
scripts/deps.sh || { echo "check: make deps failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

kernels=$(scripts/kernels.sh) || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
echo "check: kernels: ${kernels//$'\n'/ }"

echo "check: make lint"
if scripts/lint.sh; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi

# The PASS/FAIL/SKIP lines of the ABI tests in a run's KTAP.
abi()
{
	sed -n '/^# selftests: nft-tproxy: nft_.*_abi.sh/,/ok [0-9]* selftests: nft-tproxy: nft_.*_abi.sh/p' "$1" |
		grep -E '^# (PASS|FAIL|SKIP):'
}

# modules_selfcontained KVER: our modules depend on nothing beyond
# nf_tables and defrag, import none of the helpers of the in-tree support,
# and export nothing.
modules_selfcontained()
{
	local k=$1 ko deps bad ok=0

	for ko in "build/$k/kernel/nft_tproxy.ko" "build/$k/kernel/nft_socket.ko"; do
		deps=$(modinfo -F depends "$ko")
		bad=$(tr ',' '\n' <<<"$deps" | grep -vxE 'nf_tables|nf_defrag_ipv4|nf_defrag_ipv6|ipv6|' || true)
		bad="$bad $(nm -u "$ko" | grep -oE '\b(udp[46]_lib_lookup|nf_tproxy_[a-z0-9_]+|nf_sk_lookup_[a-z0-9_]+|nf_socket_[a-z0-9_]+)\b' | tr '\n' ' ')"
		bad="$bad $(nm "$ko" | grep -oE '__ksymtab_[a-z0-9_]+' | tr '\n' ' ')"
		if [ -n "${bad// /}" ]; then
			echo "check: FAIL: $ko: depends '$deps'; not allowed: $bad"
			ok=1
		else
			echo "check: $ko: depends: $deps; no in-tree tproxy/socket helper imported, nothing exported"
		fi
	done
	return $ok
}

# run_kernel KVER: build, inspect, then the two VM runs; prints its log and
# leaves "pass fail skip" in build/check-KVER.counts.
run_kernel()
{
	local k=$1 mode tests log

	pass=0 fail=0 skip=0
	if make -s KVER="$k" modules >"build/make-$k.log" 2>&1 && modules_selfcontained "$k"; then
		pass=$((pass + 1))
	else
		echo "check: FAIL: building or inspecting the modules for $k"
		fail=$((fail + 1))
	fi

	for mode in intree ours; do
		tests=""
		[ "$mode" = intree ] && tests=$INTREE_TESTS
		log=build/check-$k-$mode.log
		echo "check: $k, $mode modules"
		# shellcheck disable=SC2086 # a list of test names
		scripts/vm-test.sh --mode "$mode" "$k" $tests >"$log" 2>&1
		grep -vE '^# (tproxy|server|plain) (tcp|udp) ' "$log"
		count "$log"
	done

	# The ABI tests must say the same against the in-tree modules and ours;
	# each run already fails on an errno or listing other than upstream's.
	if [ -f "build/vm/$k-intree/ktap.txt" ] && [ -f "build/vm/$k-ours/ktap.txt" ]; then
		if diff <(abi "build/vm/$k-intree/ktap.txt") <(abi "build/vm/$k-ours/ktap.txt") \
			>"build/abi-diff-$k.txt"; then
			echo "check: $k: ABI results identical for the in-tree modules and ours ($(abi "build/vm/$k-ours/ktap.txt" | wc -l) checks)"
		else
			echo "check: $k: ABI results of the in-tree modules (<) and ours (>) differ:"
			cat "build/abi-diff-$k.txt"
		fi
	fi
	echo "$pass $fail $skip" >"build/check-$k.counts"
}

# The kernels run side by side, one vCPU each: the tests mostly wait on the
# network and on timers, so two guests share the two cores well.
mkdir -p build
if ! { make -s -C selftests && make -s -C proxy; } >build/selftests-build.log 2>&1; then
	echo "check: FAIL: building the selftest helpers:"
	cat build/selftests-build.log
	fail=$((fail + 1))
fi
export VM_RUN_CPUS=${VM_RUN_CPUS:-1}
for k in $kernels; do
	rm -f "build/check-$k.counts"
	run_kernel "$k" >"build/check-$k.out" 2>&1 &
done
wait
for k in $kernels; do
	cat "build/check-$k.out"
	if [ -r "build/check-$k.counts" ]; then
		read -r p f s <"build/check-$k.counts"
	else
		echo "check: FAIL: the run for $k did not finish"
		p=0 f=1 s=0
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done

echo "check: done in $(( $(date +%s) - start )) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
