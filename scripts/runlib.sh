# shellcheck shell=bash disable=SC2034
# SPDX-License-Identifier: GPL-2.0
#
# What make check and make matrix share: one kernel's build inspection, VM
# runs and counts.  Sourced, with $top set to the source tree and the
# current directory there.  The caller defines build_modules KVER, which
# builds build/KVER/kernel/*.ko for that kernel.

ABI_TESTS="nft_tproxy_abi.sh nft_socket_abi.sh"
# Against a kernel's own modules: the ABI tests, the refusal of every divert
# rule by a kernel without the extension, and the clash of ours with an
# in-tree module already loaded.
INTREE_TESTS="$ABI_TESTS nft_divert_netlink.sh nft_tproxy_precedence.sh"
# The throughput ratio runs in a guest of its own under instruction counting
# (vm-run.sh --icount), one vCPU, where the guest's clock counts the guest's
# work: without it the ratio followed the host's load (0.70 to 1.04 seen).
ICOUNT_TESTS="nft_relay_throughput.sh"

# run_counts LOG: "passed failed skipped" from a vm-run log; a log without
# its result line counts as one failure.
run_counts()
{
	local line p f s

	line=$(grep -E '^vm-run: .*: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$1" | tail -n 1)
	if [ -z "$line" ]; then
		echo "0 1 0"
		return
	fi
	line=${line##*: }
	read -r p _ f _ s _ <<<"${line//,/}"
	echo "$p $f $s"
}

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
			echo "run: FAIL: $ko: depends '$deps'; not allowed: $bad"
			ok=1
		else
			echo "run: $ko: depends: $deps; no in-tree tproxy/socket helper imported, nothing exported"
		fi
	done
	return $ok
}

# run_kernel KVER KIMG INTREE_TESTS: build and inspect our modules, run
# INTREE_TESTS against the kernel's own modules (none: no such run), then the
# suite but ICOUNT_TESTS against ours, then ICOUNT_TESTS against ours under
# instruction counting; if both first runs had the ABI tests, compare their
# results.  KIMG is the kernel image ("" for /boot/vmlinuz-KVER).  Prints
# its log; leaves "passed failed skipped" in build/run-KVER.counts and the
# build's outcome in build/run-KVER.build.
run_kernel()
{
	local k=$1 kimg=$2 intree_tests=$3 mode tests ours_tests log opts
	local pass=0 fail=0 skip=0 p f s

	rm -f "build/run-$k.counts" "build/run-$k.build"
	if build_modules "$k" >"build/make-$k.log" 2>&1 && modules_selfcontained "$k"; then
		pass=$((pass + 1))
		echo ok >"build/run-$k.build"
	else
		echo "run: FAIL: building or inspecting the modules for $k:"
		tail -n 30 "build/make-$k.log"
		fail=$((fail + 1))
		echo FAIL >"build/run-$k.build"
		echo "$pass $fail $skip" >"build/run-$k.counts"
		return
	fi

	ours_tests=$(selftests/run.sh --list | grep -vxF -f <(tr ' ' '\n' <<<"$ICOUNT_TESTS"))
	# Modes: intree (the kernel's own modules), ours, icount (ours, counting
	# instructions).
	for mode in intree ours icount; do
		opts=(${kimg:+--kimg "$kimg"} --mode "$mode")
		case $mode in
		intree)
			[ -n "$intree_tests" ] || continue
			tests=$intree_tests ;;
		ours)
			tests=$ours_tests ;;
		icount)
			tests=$ICOUNT_TESTS
			opts=(${kimg:+--kimg "$kimg"} --mode ours --icount --cpus 1
			      --out "build/vm/$k-icount") ;;
		esac
		log=build/run-$k-$mode.log
		echo "run: $k, $mode"
		# shellcheck disable=SC2086 # a list of test names
		scripts/vm-run.sh "${opts[@]}" "$k" $tests >"$log" 2>&1
		grep -vE '^# (tproxy|server|plain) (tcp|udp) ' "$log"
		read -r p f s <<<"$(run_counts "$log")"
		pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	done

	# The ABI tests must say the same against the in-tree modules and ours;
	# each run already fails on an errno or listing other than upstream's.
	case " $intree_tests " in
	*" nft_tproxy_abi.sh "*)
		if diff <(abi "build/vm/$k-intree/ktap.txt") <(abi "build/vm/$k-ours/ktap.txt") \
			>"build/abi-diff-$k.txt"; then
			echo "run: $k: ABI results identical for the in-tree modules and ours ($(abi "build/vm/$k-ours/ktap.txt" | wc -l) checks)"
		else
			echo "run: $k: ABI results of the in-tree modules (<) and ours (>) differ:"
			cat "build/abi-diff-$k.txt"
		fi
		;;
	esac
	echo "$pass $fail $skip" >"build/run-$k.counts"
}

# kernel_counts KVER: "passed failed skipped" of a kernel; a run that did
# not finish counts as one failure.
kernel_counts()
{
	cat "build/run-$1.counts" 2>/dev/null || echo "0 1 0"
}

# collect KVER: add a kernel's counts to pass/fail/skip.
collect()
{
	local p f s

	[ -r "build/run-$1.counts" ] || echo "run: FAIL: the run for $1 did not finish"
	read -r p f s <<<"$(kernel_counts "$1")"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}
