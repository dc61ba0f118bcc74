#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make lint: checkpatch --strict, sparse and W=1 builds for each CI kernel
# and shellcheck over every script.  Exits non-zero on any finding.

set -u

top=$(dirname "$(readlink -f "$0")")/..
cd "$top" || exit 1
checkpatch=${CHECKPATCH:-/usr/local/lib/nft-tproxy/checkpatch/checkpatch.pl}
rc=0

step()
{
	printf 'lint: %s\n' "$1"
}

fail()
{
	printf 'lint: FAIL: %s\n' "$1"
	rc=1
}

# The steps are independent: each kernel's build runs in the background
# while checkpatch and shellcheck run, and all report in order at the end.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
kernels=$(scripts/kernels.sh) || fail "no CI kernel"
for k in $kernels; do
	# Not silent, whatever make -s we run under: the CHECK lines prove sparse ran.
	(env -u MAKEFLAGS -u MAKELEVEL make KVER="$k" modules-check >/dev/null 2>&1
	 echo $? >"$out/$k.rc") &
done

if [ ! -x "$checkpatch" ]; then
	fail "no checkpatch.pl at $checkpatch (make deps)"
else
	step "checkpatch --strict"
	"$checkpatch" --strict --no-tree -q --terse -f kernel/*.c kernel/*.h \
		kernel/include/uapi/linux/netfilter/*.h ||
		fail "checkpatch"
	# Userspace programs: kernel style, with the C library's types and idioms
	# (volatile sig_atomic_t is what a signal handler may write).
	"$checkpatch" --strict --no-tree -q --terse \
		--ignore PREFER_KERNEL_TYPES,ARRAY_SIZE,PREFER_DEFINED_ATTRIBUTE_MACRO,EMBEDDED_FUNCTION_NAME,VOLATILE \
		-f selftests/*.c proxy/*.c || fail "checkpatch (selftests, proxy)"
	# The compat shims take arguments that some kernels do not use.
	"$checkpatch" --strict --no-tree -q --terse --ignore MACRO_ARG_UNUSED \
		-f kernel/compat/compat.h || fail "checkpatch (compat)"
fi

if ! command -v shellcheck >/dev/null; then
	fail "no shellcheck (make deps)"
else
	step "shellcheck"
	shellcheck -x -P selftests scripts/*.sh selftests/*.sh \
		kernel/compat/gen-compat.sh .ci/run || fail "shellcheck"
fi

wait
for k in $kernels; do
	step "sparse (C=2) and W=1 build, warnings as errors, for $k"
	[ "$(cat "$out/$k.rc" 2>/dev/null)" = 0 ] ||
		{ fail "sparse/W=1 on $k:"; grep -E 'warning:|error:' "build/$k/kernel/lint.log"; }
	grep -q 'CHECK ' "build/$k/kernel/lint.log" 2>/dev/null ||
		fail "sparse did not run on $k"
done

[ $rc -eq 0 ] && step "clean"
exit $rc
