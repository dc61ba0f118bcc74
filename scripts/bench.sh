#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make bench: what interception costs, every variant side by side, in one
# boot per kernel.
#
#   scripts/bench.sh [--smoke|--profile] [KVER ...]
#
# Default kernels: the CI pair (scripts/kernels.sh).  Each kernel boots once
# (vm-run.sh --mode intree: the kernel's own modules load as B and C need
# them, ours are loaded with insmod for E and F) and scripts/bench-guest.sh
# measures every variant there.  Without KVM, QEMU counts instructions
# (-icount shift=0,sleep=off) on one vCPU: the guest's clock is then a count
# of the guest's own work, and the kernels run side by side since the
# host's load does not change the figures.  With a usable /dev/kvm the
# guests run one after the other on the real clock, reported as such.
#
# Results: build/bench/results.md, results.json, ratios.png and scale.png
# (scripts/bench-report.py); the previous results.json is kept as
# results.prev.json and compared.  Exit 1 when a run fails, a spread is too
# wide (CV over 1 % under instruction counting) or ours did not serve E/F.
#
# --smoke: one workload (new connections), one round, every variant; results
# in build/bench-smoke/.  make check runs it so that the bench cannot rot.
#
# --profile: A and F only, every workload once, under perf record in the
# guest; scripts/bench-profile.py then says where F's cost beyond A's goes,
# symbol by symbol.  Results in build/bench-profile/.

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cd "$top" || exit 1

kind=""
dir=build/bench
report=results.md
case ${1:-} in
--smoke)
	kind=smoke
	dir=build/bench-smoke
	shift ;;
--profile)
	kind=profile
	dir=build/bench-profile
	report=profile.md
	shift ;;
esac

say() { echo "bench: $*"; }

scripts/deps.sh >/dev/null || { say "FAIL: make deps"; exit 1; }
if [ $# -gt 0 ]; then
	kernels="$*"
else
	kernels=$(scripts/kernels.sh) || exit 1
fi

# The same test as vm-run.sh's.
mode=icount
if [ "${VM_RUN_KVM:-auto}" = 1 ] ||
   { [ "${VM_RUN_KVM:-auto}" = auto ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
     grep -qwE 'vmx|svm' /proc/cpuinfo; }; then
	mode=kvm
fi
say "kernels: ${kernels//$'\n'/ }; mode: $mode"

mkdir -p "$dir"
if ! { make -s -C selftests && make -s -C proxy; } >"$dir/build.log" 2>&1; then
	say "FAIL: building the helpers (see $dir/build.log)"
	exit 1
fi
for k in $kernels; do
	if ! make -s KVER="$k" modules >>"$dir/build.log" 2>&1; then
		say "FAIL: building our modules for $k (see $dir/build.log)"
		exit 1
	fi
done
# Variant F needs the patched nft; without the upstream trees it is skipped,
# and the guest says why.
if [ ! -x build/userspace/prefix/sbin/nft ]; then
	say "building the patched nft for variant F (make userspace, without VMs)"
	USERSPACE_VM=0 scripts/userspace.sh >"$dir/userspace.log" 2>&1 </dev/null
	say "make userspace: exit $? (see $dir/userspace.log)"
fi

# run_one KVER: one boot, all the variants.
run_one()
{
	local k=$1 o=$top/$dir/$1

	rm -rf "$o"
	mkdir -p "$o"
	echo "$mode" >"$o/mode"
	scripts/vm-run.sh --mode intree --icount --cpus 1 --memory 2G \
		--timeout 5400 --out "$o" \
		--exec "bash $top/scripts/bench-guest.sh $o $kind" "$k" >"$o/vm-run.log" 2>&1
}

status=0
if [ "$mode" = icount ]; then
	for k in $kernels; do
		run_one "$k" &
	done
	wait
else
	for k in $kernels; do
		run_one "$k"
	done
fi
for k in $kernels; do
	grep -E '^(bench|vm-run): ' "$dir/$k/vm-run.log" | grep -vE 'round [0-9]+ of|: [A-F+ct]* done$'
	tail -n 1 "$dir/$k/vm-run.log" | grep -q ' 0 failed, 0 skipped$' || status=1
done

if [ "$kind" = profile ]; then
	# shellcheck disable=SC2086	# one argument per kernel
	python3 scripts/bench-profile.py "$dir" $kernels >"$dir/$report" ||
		status=1
	cat "$dir/$report"
else
	[ ! -e "$dir/results.json" ] || mv "$dir/results.json" "$dir/results.prev.json"
	# shellcheck disable=SC2086	# one argument per kernel
	python3 scripts/bench-report.py "$dir" $kernels || status=1
fi
if [ "$status" = 0 ]; then
	say "PASS: $dir/$report"
else
	say "FAIL: see above"
fi
exit "$status"
