#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make check: what CI runs.  Installs the dependencies, lints, builds the
# modules for each CI kernel and runs the selftests in a VM per kernel: once
# the ABI tests against the kernel's own modules (mode intree), then the whole
# suite against ours with the in-tree modules blocked (mode ours).  The ABI
# results of both runs are compared line by line.  The kernels run side by
# side; each kernel's lane ends with the throughput test under instruction
# counting (ICOUNT_TESTS).
#
# Last line: "N passed, N failed, N skipped" over every test of every run,
# lint and the documentation build counting as one test each.

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cd "$top" || exit 1
start=$(date +%s)
pass=0 fail=0 skip=0
# shellcheck source=scripts/runlib.sh
source scripts/runlib.sh

build_modules()
{
	make -s KVER="$1" modules
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

echo "check: make docs (Sphinx, warnings are errors)"
if make -s docs; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi

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
	run_kernel "$k" "" "$INTREE_TESTS" >"build/run-$k.out" 2>&1 &
done
wait
for k in $kernels; do
	cat "build/run-$k.out"
	collect "$k"
done

echo "check: done in $(( $(date +%s) - start )) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
