#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make matrix: one source tree, built and tested on every kernel line Debian
# ships and on a kernel without any tproxy support.
#
#   5.10        bullseye's newest, built with bullseye's gcc-10 and headers in
#               a debootstrap chroot
#   6.1, 6.12   the CI pair, as make check runs them (in-tree ABI run, clash,
#               then the whole suite against ours)
#   7.2         sid's newest, built with sid's gcc and headers in a chroot
#   notproxy    built here from Debian's linux-source-6.12 with virtme-ng's
#               minimal config, NFT_TPROXY, NFT_SOCKET, xt_TPROXY and
#               xt_socket off
#   debug       the same with the kernel's bug finders on (KASAN, KFENCE,
#               kmemleak, lockdep, RCU checking, reference trackers, ...):
#               the whole suite on 2 vCPUs, the fuzzers at full size
#               (make debug-test runs this lane alone)
#
# Every kernel runs the whole suite against our modules, then the churn
# test on 4 vCPUs with 1000 cycles; those that ship their own modules also
# run the ABI tests, the netlink fuzzer (compared with ours) and the clash
# test against them.  The fuzzers run MATRIX_FUZZ_MESSAGES netlink
# messages (default 1000000) and MATRIX_FUZZ_PACKETS packets (default
# 1000000) per run, on 2 jobs.  Chroots, images
# and the kernel build are cached in $MATRIX_CACHE (default
# /var/lib/nft-tproxy/matrix) and remade only when missing or when the
# package version changed.  Not under /var/cache: virtme-ng mounts a tmpfs
# there in the guest, which would hide the kernels' modules.  Ends with a table kernel x build x tests and the
# line "N passed, N failed, N skipped".
#
# Environment: MATRIX_CACHE, MATRIX_BULLSEYE (release pattern, default
# '5\.10\.0-[0-9]+-amd64'), MATRIX_SID (default '7\.2\.[0-9]+\+deb[0-9]+-amd64'),
# MATRIX_SOURCE (linux-source line, default 6.12), VM_RUN_CPUS (default 1:
# two kernels run side by side), MATRIX_LANES (default "ci bullseye sid
# notproxy debug": the CI pair, 5.10, 7.2, the kernel without tproxy and
# the debug kernel; a subset runs only those), MATRIX_FUZZ_MESSAGES,
# MATRIX_FUZZ_PACKETS.

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cd "$top" || exit 1
start=$(date +%s)
pass=0 fail=0 skip=0
CACHE=${MATRIX_CACHE:-/var/lib/nft-tproxy/matrix}
BULLSEYE=${MATRIX_BULLSEYE:-'5\.10\.0-[0-9]+-amd64'}
SID=${MATRIX_SID:-'7\.2\.[0-9]+\+deb[0-9]+-amd64'}
SOURCE=${MATRIX_SOURCE:-6.12}
LANES=2
MATRIX_LANES=${MATRIX_LANES:-ci bullseye sid notproxy debug}
FUZZ_MESSAGES=${MATRIX_FUZZ_MESSAGES:-1000000}
FUZZ_PACKETS=${MATRIX_FUZZ_PACKETS:-1000000}
lane() { [[ " $MATRIX_LANES " == *" $1 "* ]]; }
# shellcheck source=scripts/runlib.sh
source scripts/runlib.sh

declare -A kind kimg from intree modes opts
order=()
problems=()

# add KVER KIND KIMG FROM INTREE_TESTS [MODES [VM-RUN OPTIONS]]
add()
{
	order+=("$1")
	kind[$1]=$2 kimg[$1]=$3 from[$1]=$4 intree[$1]=$5
	modes[$1]=${6:-intree ours icount churn}
	opts[$1]="$FUZZ_OPTS ${7:-}"
}

# Each kernel's own compiler, at W=1, warnings as errors.
build_modules()
{
	local w=(W=1 KCFLAGS=-Werror)

	rm -f "build/$1/kernel/"*.o "build/$1/kernel/"*.ko
	case ${kind[$1]} in
	host)
		make -s KVER="$1" "${w[@]}" modules ;;
	chroot:*)
		scripts/matrix-chroot.sh --run "$CACHE" "${kind[$1]#chroot:}" \
			make -s -C "$top" KVER="$1" NFT_TPROXY_VERSION="$version" "${w[@]}" modules ;;
	kdir:*)
		make -s KDIR="${kind[$1]#kdir:}" "${w[@]}" modules ;;
	esac
}

# symvers_evidence TREE: the tree exports none of the tproxy pieces, and
# the core lookups ours use.
symvers_evidence()
{
	local symvers=$1/Module.symvers absent present s ok=0

	absent=$(grep -oE '\s(udp[46]_lib_lookup|nf_tproxy_[a-z0-9_]+|nf_sk_lookup_[a-z0-9_]+|nf_socket_[a-z0-9_]+)\s' "$symvers" | tr -d '[:space:]')
	for s in __udp4_lib_lookup __udp6_lib_lookup __inet_lookup_established \
		 __inet_lookup_listener __inet6_lookup_established inet6_lookup_listener \
		 nf_defrag_ipv4_enable nf_defrag_ipv6_enable; do
		if grep -qE "\s$s\s" "$symvers"; then
			present="${present:-}${present:+ }$s"
		else
			echo "matrix: $symvers: $s is not exported"
			ok=1
		fi
	done
	echo "matrix: $symvers: $(wc -l <"$symvers") exports;" \
	     "udp4_lib_lookup, udp6_lib_lookup, nf_tproxy_*, nf_sk_lookup_*, nf_socket_*:" \
	     "${absent:-none}"
	echo "matrix: $symvers: exported, used by ours: $present"
	grep -E '^CONFIG_(NFT_TPROXY|NFT_SOCKET|NETFILTER_XT_TARGET_TPROXY|NETFILTER_XT_MATCH_SOCKET|NF_TPROXY_IPV[46]|NF_SOCKET_IPV[46])[= ]|^# CONFIG_(NFT_TPROXY|NFT_SOCKET|NETFILTER_XT_TARGET_TPROXY|NETFILTER_XT_MATCH_SOCKET|NF_TPROXY_IPV[46]|NF_SOCKET_IPV[46]) ' \
		"$1/.config" | sed 's/^/matrix: .config: /'
	[ -z "$absent" ] && return $ok
	return 1
}

echo "matrix: make deps (with what the matrix needs)"
if ! scripts/deps.sh --matrix; then
	echo "matrix: make deps failed"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
mkdir -p build "$CACHE"
version=$(make -s version)
# The fuzzers at full size; the limit of settings (600 s) is for make
# check's short runs.  One netlink fuzzer per vCPU: a second one on a
# 1-vCPU guest only adds switches.
FUZZ_OPTS="--env NFT_TPROXY_FUZZ_MESSAGES=$FUZZ_MESSAGES --env NFT_TPROXY_FUZZ_PACKETS=$FUZZ_PACKETS"
FUZZ_OPTS+=" --env kselftest_override_timeout=36000"

# The kernel build takes the CPU while the chroots wait on the network.
echo "matrix: preparing the kernels in $CACHE (logs in build/matrix-*.log)"
notproxy_pid=""
if lane notproxy || lane debug; then
	# One after the other: each takes both CPUs.
	(
		rc=0
		if lane notproxy; then
			scripts/matrix-notproxy.sh "$CACHE" "$SOURCE" >build/matrix-notproxy.log 2>&1 || rc=1
		fi
		if lane debug; then
			scripts/matrix-notproxy.sh "$CACHE" "$SOURCE" debug >build/matrix-debug.log 2>&1 || rc=1
		fi
		exit $rc
	) &
	notproxy_pid=$!
fi

if lane ci; then
	for k in $(scripts/kernels.sh); do
		add "$k" host "" "bookworm linux-image $(dpkg-query -W -f='${Version}' "linux-image-$k")" \
		    "$INTREE_TESTS"
	done
fi

for spec in "bullseye:$BULLSEYE" "sid:$SID"; do
	suite=${spec%%:*}
	lane "$suite" || continue
	if scripts/matrix-chroot.sh "$CACHE" "$suite" "${spec#*:}" >"build/matrix-$suite.log" 2>&1; then
		k=$(tail -n 1 "build/matrix-$suite.log")
		grep '^matrix-chroot:' "build/matrix-$suite.log" | sed 's/^/matrix: /'
		add "$k" "chroot:$suite" "$CACHE/$suite/img/boot/vmlinuz-$k" \
		    "$suite $(cut -d' ' -f2 "$CACHE/$suite/stamp")" nft_tproxy_precedence.sh
	else
		problems+=("$suite: preparing the chroot and kernel failed (build/matrix-$suite.log)")
		tail -n 20 "build/matrix-$suite.log"
	fi
done

[ -z "$notproxy_pid" ] || wait "$notproxy_pid"
for flavour in notproxy debug; do
	lane "$flavour" || continue
	log=build/matrix-$flavour.log
	d=$CACHE/$flavour
	if ! [ -f "$d/kver" ] || [ "$(tail -n 1 "$log" 2>/dev/null)" != "$(cat "$d/kver")" ]; then
		problems+=("$flavour: building the kernel failed ($log)")
		tail -n 30 "$log"
		continue
	fi
	k=$(cat "$d/kver")
	grep '^matrix-notproxy:' "$log" | sed 's/^/matrix: /'
	if [ "$flavour" = notproxy ]; then
		add "$k" "kdir:$d/linux" "$d/img/boot/vmlinuz-$k" \
		    "$(cut -d' ' -f1,2 "$d/stamp"), no tproxy" ""
	else
		# Two vCPUs, two netlink fuzzers; KASAN's shadow and kmemleak's
		# objects want memory.  Everything is slower there (python3
		# took more than the 20 s the tests wait for a listener):
		# longer waits.  No in-tree modules to compare with: only the
		# netlink fuzzer's runs that are not for comparing.
		add "$k" "kdir:$d/linux" "$d/img/boot/vmlinuz-$k" \
		    "$(cut -d' ' -f1,2 "$d/stamp"), no tproxy, debug" "" \
		    "all churn" "--cpus 2 --memory 3G --env WAIT_TIMEOUT=120 --env NFT_TPROXY_FUZZ_JOBS=2 --env NFT_TPROXY_FUZZ_RUNS=all,autoload"
	fi
	if symvers_evidence "$d/linux"; then
		pass=$((pass + 1))
	else
		problems+=("$k: the kernel is not one without tproxy support, or lacks what ours needs")
	fi
done

if ! { make -s -C selftests && make -s -C proxy; } >build/selftests-build.log 2>&1; then
	problems+=("building the selftest helpers failed (build/selftests-build.log)")
	cat build/selftests-build.log
fi

# The extensions' tests need the patched nft: build it (make userspace
# without its VMs; tests/py run in make check).  Without the upstream trees
# those tests skip, saying why.
USERSPACE_VM=0 scripts/userspace.sh >build/userspace-matrix.log 2>&1 </dev/null
if [ -x build/userspace/prefix/sbin/nft ]; then
	echo "matrix: the patched nft is built (build/userspace-matrix.log)"
else
	echo "matrix: no patched nft, the extensions' tests will skip: $(grep -m1 'SKIP\|FAIL' build/userspace-matrix.log)"
fi

# Two kernels at a time, one vCPU each, longest runs first.
export VM_RUN_CPUS=${VM_RUN_CPUS:-1}
running=0
for k in "${order[@]}"; do
	echo "matrix: $k: build and test (${from[$k]})"
	RUN_MODES=${modes[$k]} RUN_OPTS=${opts[$k]} \
		run_kernel "$k" "${kimg[$k]}" "${intree[$k]}" >"build/run-$k.out" 2>&1 &
	running=$((running + 1))
	if [ "$running" -ge "$LANES" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

for k in "${order[@]}"; do
	cat "build/run-$k.out"
done

echo
echo "matrix: results ($((($(date +%s) - start) / 60)) min $((($(date +%s) - start) % 60)) s)"
printf '%-22s %-52s %-24s %s\n' kernel "from" build "tests passed/failed/skipped"
for k in "${order[@]}"; do
	b=$(cat "build/run-$k.build" 2>/dev/null || echo "not run")
	if [ "$b" = ok ]; then
		b="W=1 clean, $(readelf -p .comment "build/$k/kernel/nft_tproxy.ko" 2>/dev/null |
			 grep -oE 'GCC: \([^)]*\) [0-9.]+' | head -n 1 | sed 's/GCC: ([^)]*) /gcc /')"
	fi
	read -r p f s <<<"$(kernel_counts "$k")"
	printf '%-22s %-52s %-24s %s/%s/%s\n' "$k" "${from[$k]}" "$b" "$p" "$f" "$s"
	collect "$k" >/dev/null
done
for p in "${problems[@]}"; do
	echo "matrix: FAIL: $p"
	fail=$((fail + 1))
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
