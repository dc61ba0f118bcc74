#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the nft-tproxy selftests and report them in KTAP, the way
# tools/testing/selftests/kselftest/runner.sh does.
#
#   run.sh [TEST ...]     run the given tests (default: TEST_PROGS of Makefile)
#   run.sh --list         print the tests that would run, one per line
#
# Each test runs from this directory under "timeout --foreground <timeout>",
# <timeout> coming from ./settings (timeout=NNN), or from
# kselftest_override_timeout as in the kernel's runner. Exit codes: 0 pass, 4 skip,
# 124 timeout, anything else fail. The last line is
# "N passed, N failed, N skipped"; the exit status is 0 unless a test failed.
#
# Environment:
#   KTAP_OUT=FILE           also write the KTAP (and the last line) to FILE
#   kselftest_override_timeout=SEC  every test's limit, instead of settings
#   NFT_TPROXY_SKIP_BUILD=1 do not run "make -C selftests" first (the helpers
#                           were built already, e.g. on the host of a VM)

set -u

dir=$(dirname "$(readlink -f "$0")")
suite=nft-tproxy
skip_rc=4
timeout_rc=124

# Tests named by TEST_PROGS in the Makefile (continuation lines joined);
# every nft_*.sh when the Makefile names none.
default_tests()
{
	local list=""

	if [ -r "$dir/Makefile" ]; then
		list=$(sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba' -e '}' "$dir/Makefile" |
		       sed -n -e 's/#.*//' \
			   -e 's/^[[:space:]]*TEST_PROGS[[:space:]]*[:+?]*=//p' |
		       tr -s ' \t' '\n' | grep -v -e '^$' -e '\$')
	fi
	if [ -z "$list" ]; then
		list=$(cd "$dir" && find . -maxdepth 1 -name 'nft_*.sh' -printf '%f\n' | sort)
	fi
	printf '%s\n' "$list"
}

settings_timeout()
{
	local t

	t=$(sed -n 's/^[[:space:]]*timeout[[:space:]]*=[[:space:]]*\([0-9]\+\).*/\1/p' \
		"$dir/settings" 2>/dev/null | tail -n 1)
	echo "${t:-45}"
}

if [ $# -gt 0 ] && [ "$1" = "--list" ]; then
	default_tests
	exit 0
fi

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
	mapfile -t tests < <(default_tests)
fi

if [ -n "${KTAP_OUT:-}" ]; then
	exec 3> "$KTAP_OUT" || exit 1
else
	exec 3> /dev/null
fi

emit()
{
	printf '%s\n' "$*"
	printf '%s\n' "$*" >&3
}

emit_prefixed()
{
	local line

	while IFS= read -r line || [ -n "$line" ]; do
		emit "# $line"
	done
}

out=$(mktemp) || exit 1
trap 'rm -f "$out"' EXIT

kselftest_timeout=${kselftest_override_timeout:-$(settings_timeout)}

emit "TAP version 13"
[ -z "${kselftest_override_timeout:-}" ] ||
	emit "# overriding timeout to $kselftest_timeout"

# Build the C helpers when the Makefile has something to build.
if [ "${NFT_TPROXY_SKIP_BUILD:-0}" != 1 ] && [ -r "$dir/Makefile" ] &&
   grep -q '^all[[:space:]]*:' "$dir/Makefile"; then
	if ! make -s -C "$dir" > "$out" 2>&1; then
		emit "# make -C $dir failed:"
		emit_prefixed < "$out"
	fi
fi

emit "1..${#tests[@]}"

pass=0
fail=0
skip=0
num=0
for t in "${tests[@]}"; do
	num=$((num + 1))
	hdr="selftests: $suite: $t"
	emit "# $hdr"

	path=$dir/$t
	if [ ! -e "$path" ]; then
		emit "# Warning: file $t is missing!"
		emit "not ok $num $hdr # exit=127"
		fail=$((fail + 1))
		continue
	fi
	cmd=("./$t")
	if [ ! -x "$path" ]; then
		emit "# Warning: file $t is not executable"
		cmd=(bash "./$t")
	fi

	t0=$EPOCHSECONDS
	(cd "$dir" && timeout --foreground "$kselftest_timeout" "${cmd[@]}") \
		< /dev/null > "$out" 2>&1
	rc=$?
	emit_prefixed < "$out"
	emit "# $t took $((EPOCHSECONDS - t0)) s"

	case $rc in
	0)
		emit "ok $num $hdr"
		pass=$((pass + 1))
		;;
	"$skip_rc")
		emit "ok $num $hdr # SKIP"
		skip=$((skip + 1))
		;;
	"$timeout_rc")
		emit "not ok $num $hdr # TIMEOUT $kselftest_timeout seconds"
		fail=$((fail + 1))
		;;
	*)
		emit "not ok $num $hdr # exit=$rc"
		fail=$((fail + 1))
		;;
	esac
done

emit "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
