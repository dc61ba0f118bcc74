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
# The netlink fuzzer runs there too: its fuzz-cmp and fuzz-u8 lines are
# compared with ours.
INTREE_TESTS="$ABI_TESTS nft_divert_netlink.sh nft_fuzz_netlink.sh nft_tproxy_precedence.sh"
# The throughput ratio runs in a guest of its own under instruction counting
# (vm-run.sh --icount), one vCPU, where the guest's clock counts the guest's
# work: without it the ratio followed the host's load (0.70 to 1.04 seen).
ICOUNT_TESTS="nft_relay_throughput.sh"
# Churn on several CPUs (make matrix, make debug-test): a guest of its own
# with CHURN_CPUS vCPUs and the full count of cycles.
CHURN_TESTS="nft_churn.sh"
CHURN_CPUS=4
CHURN_ENV="--env NFT_TPROXY_CHURN_CYCLES=1000 --env NFT_TPROXY_CHURN_FLOWS=8"

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

# fuzz_lines KTAP RUN: what nft_fuzz_netlink.sh's RUN (cmp, u8) printed
# that depends only on the messages and the kernel's answers.
fuzz_lines()
{
	grep -E "^# fuzz-$2 seed [0-9]+: " "$1" | grep -v ': expressions: '
}

# fuzz_compare KVER: the netlink fuzzer's runs against the in-tree modules
# and ours.  fuzz-u8 must be identical; fuzz-cmp too, unless the in-tree
# socket expression truncates its key to a u8 (6.1), which the intree run
# reports.  Returns 1 on a difference that is not that one.
fuzz_compare()
{
	local k=$1 run n
	local in=build/vm/$k-intree/ktap.txt ours=build/vm/$k-ours/ktap.txt

	for run in u8 cmp; do
		n=$(fuzz_lines "$ours" "$run" | wc -l)
		if [ "$n" -eq 0 ]; then
			echo "run: FAIL: $k: no fuzz-$run lines from the run against ours"
			return 1
		fi
		if diff <(fuzz_lines "$in" "$run") <(fuzz_lines "$ours" "$run") \
			>"build/fuzz-diff-$k-$run.txt"; then
			echo "run: $k: netlink fuzz-$run: identical for the in-tree modules and ours ($n lines: errno histogram, hashes of the errnos and of the ruleset)"
		elif [ "$run" = cmp ] &&
		     grep -q '^# fuzz: the socket expression (intree) truncates key 256' "$in"; then
			echo "run: $k: netlink fuzz-cmp: differs, in the documented class only: the in-tree socket expression truncates key, level and family to a u8 (fuzz-u8, where those stay below 256, is identical):"
			sed 's/^/run:   /' "build/fuzz-diff-$k-$run.txt"
		else
			echo "run: FAIL: $k: netlink fuzz-$run: the in-tree modules (<) and ours (>) differ:"
			sed 's/^/run:   /' "build/fuzz-diff-$k-$run.txt"
			return 1
		fi
	done
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
#
# RUN_MODES (default "intree ours icount") chooses the runs: "all" is the
# whole suite against ours without instruction counting (the debug
# kernel), "churn" CHURN_TESTS on CHURN_CPUS vCPUs with CHURN_ENV.
# RUN_OPTS: more vm-run options for every run (words).
run_kernel()
{
	local k=$1 kimg=$2 intree_tests=$3 mode tests ours_tests log opts
	local pass=0 fail=0 skip=0 p f s extra

	read -ra extra <<<"${RUN_OPTS:-}"
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
	# instructions), all, churn.
	for mode in ${RUN_MODES:-intree ours icount}; do
		opts=(${kimg:+--kimg "$kimg"} --mode ours "${extra[@]}")
		case $mode in
		intree)
			[ -n "$intree_tests" ] || continue
			opts=(${kimg:+--kimg "$kimg"} --mode intree "${extra[@]}")
			tests=$intree_tests ;;
		ours)
			tests=$ours_tests ;;
		all)
			tests=""
			opts+=(--out "build/vm/$k-ours") ;;
		icount)
			tests=$ICOUNT_TESTS
			opts+=(--icount --cpus 1 --out "build/vm/$k-icount") ;;
		churn)
			tests=$CHURN_TESTS
			# shellcheck disable=SC2206 # options, one per word
			opts+=(--cpus "$CHURN_CPUS" $CHURN_ENV --out "build/vm/$k-churn") ;;
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
	case " $intree_tests " in
	*" nft_fuzz_netlink.sh "*)
		if fuzz_compare "$k"; then
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
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
