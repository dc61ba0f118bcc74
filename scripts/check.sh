#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: what CI runs.  Installs the dependencies, lints, builds the
# modules for each CI kernel and runs the selftests in a VM per kernel: once
# the ABI tests against the kernel's own modules (mode intree), then the whole
# suite against ours with the in-tree modules blocked (mode ours).  The ABI
# results of both runs are compared line by line, and so are the netlink
# fuzzer's (a short run; make matrix and make debug-test run it at full
# size).  The kernels run side by side; each kernel's lane ends with the
# throughput test under instruction counting (ICOUNT_TESTS).
#
# Last line: "N passed, N failed, N skipped" over every test of every run,
# lint, the documentation build and make userspace counting as one test each.

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cd "$top" || exit 1
start=$(date +%s)
pass=0 fail=0 skip=0
# shellcheck source=scripts/runlib.sh
source scripts/runlib.sh

# A step's title, with the time since the start: where the time goes.
phase()
{
	echo "check: [$(( $(date +%s) - start )) s] $*"
}

build_modules()
{
	make -s KVER="$1" modules
}

# Nothing here may change how the host boots: the test kernels live in a
# cache, never installed.  Compared at the end.
mkdir -p build
scripts/hostboot.sh build/hostboot.before

phase "make deps"
scripts/deps.sh || { echo "check: make deps failed"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

kernels=$(scripts/kernels.sh) || { echo "0 passed, 1 failed, 0 skipped"; exit 1; }
echo "check: kernels: ${kernels//$'\n'/ }"

phase "make lint"
if scripts/lint.sh; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi

phase "make docs (Sphinx, warnings are errors)"
if make -s docs; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi

# make userspace: the patched nft that the extensions' tests use, its unit
# tests and tests/py in a VM per kernel (it builds our modules for them).
# Exit 4 (the upstream trees are absent) counts as a skip: the extensions'
# tests then skip too, saying why.
mkdir -p build
phase "make userspace (libnftnl and nft with our series; tests/py in VMs)"
scripts/userspace.sh >build/userspace.log 2>&1
rc=$?
sed -n '/^userspace: summary/,$p' build/userspace.log
case $rc in
0) pass=$((pass + 1)) ;;
4) skip=$((skip + 1)) ;;
*) fail=$((fail + 1)); echo "check: FAIL: make userspace (build/userspace.log)" ;;
esac

# The kernels run side by side, one vCPU each: the tests mostly wait on the
# network and on timers, so two guests share the two cores well.
if ! { make -s -C selftests && make -s -C proxy; } >build/selftests-build.log 2>&1; then
	echo "check: FAIL: building the selftest helpers:"
	cat build/selftests-build.log
	fail=$((fail + 1))
fi
export VM_RUN_CPUS=${VM_RUN_CPUS:-1}
phase "the selftests, one VM lane per kernel, side by side"
for k in $kernels; do
	run_kernel "$k" "" "$INTREE_TESTS" >"build/run-$k.out" 2>&1 &
done
wait
for k in $kernels; do
	cat "build/run-$k.out"
	collect "$k"
done

# The bench's smoke: one workload, one round, every variant, both kernels;
# the full make bench is not part of CI.
phase "make bench smoke (new connections, one round, every variant)"
# shellcheck disable=SC2086	# one argument per kernel
if scripts/bench.sh --smoke $kernels >build/bench-smoke.log 2>&1; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi
grep -E '^bench(-report)?: ' build/bench-smoke.log

phase "the host's boot (linux-image packages, /boot) against before make deps"
if scripts/hostboot.sh --same build/hostboot.before "check: "; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi

echo "check: done in $(( $(date +%s) - start )) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
