#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot an installed kernel with virtme-ng and run the selftests inside it.
#
#   scripts/vm-run.sh [--mode ours|intree] [--timeout SEC] [--cpus N]
#                     [--icount] [--memory M] [--out DIR] [--exec "CMD"]
#                     [--kimg IMAGE] [--env NAME=VALUE]... KVER [TEST ...]
#
# KVER is a kernel release unpacked in the kernel cache (make deps: the CI
# kernels, in $NFT_TPROXY_KERNELS/KVER/img, default /var/lib/nft-tproxy/kernels),
# else one installed on this host (/boot/vmlinuz-KVER and /lib/modules/KVER),
# or one unpacked elsewhere: --kimg DIR/boot/vmlinuz-KVER with its modules in
# DIR/lib/modules/KVER (make matrix). The guest sees the
# host's root filesystem read-only, with copy-on-write overlays on /etc, /lib,
# /usr, /var, /tmp, ... (virtme-ng's defaults), and the result directory
# read-write.
#
# Mode ours (default): the in-tree tproxy/socket modules are blocked through
# /etc/modprobe.d in the guest's /etc overlay, and build/KVER/kernel/
# nft_tproxy.ko and nft_socket.ko are loaded with insmod. Mode intree: nothing
# is blocked or loaded; the kernel's own modules autoload.
#
# selftests/ is a copy-on-write overlay in the guest too: tests may write
# beside themselves, nothing reaches the host.
#
# Results in build/vm/KVER-MODE/ (or --out): console.log (kernel console and
# the guest's stdout/stderr), ktap.txt, dmesg.txt, rc (the guest runner's exit
# code, written last). The run fails on a failed test, a timeout, a guest that
# died or did not finish, and on a splat in the kernel log (KLOG_RE below:
# BUG:, WARNING:, Oops, Call Trace, refcount_t, and debug kernels' reports).
# Last line: "vm-run: KVER MODE: N passed, N failed, N skipped".
#
# On a kernel with kmemleak (make debug-test), the guest asks it for two
# scans after the tests (the first one only takes each object's checksum),
# and its report, kmemleak.txt, must be empty.
#
# --env NAME=VALUE: exported to the tests (the fuzzers' sizes, say).
#
# --icount (emulation only; ignored, and said so, under KVM): QEMU counts
# instructions (-icount shift=0,sleep=off), so the guest's clock measures the
# guest's own CPU work rather than the host's load: a ratio of two timings in
# one boot no longer depends on what else the host runs.
#
# Environment: VM_RUN_KVM=auto|0|1 (default auto: KVM only if the CPU exposes
# vmx/svm and /dev/kvm is usable), VM_RUN_CPUS (default 2), VNG_OPTS (extra
# vng arguments).

set -u

BOOT_MARGIN=180		# seconds allowed to boot, set up and power off
# Splats, and what debug kernels report without one: kmemleak, lockdep,
# RCU, a device or namespace that cannot go, a tracked reference leaked.
KLOG_RE='BUG:|WARNING:|Oops|Call Trace|refcount_t|new suspected memory leaks|possible circular locking|inconsistent lock state|suspicious RCU usage|unregister_netdevice: waiting|leaked reference'
NOT_NEEDED=ahci,sr_mod,i2c_i801,lpc_ich,iTCO_wdt,i6300esb,pcspkr,psmouse,kvm_amd,kvm_intel,powernow_k8
BLOCK="nft_tproxy nft_socket nf_tproxy_ipv4 nf_tproxy_ipv6 nf_socket_ipv4 nf_socket_ipv6 xt_TPROXY xt_socket"
OUR_MODULES="nft_tproxy nft_socket"

root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)

usage()
{
	sed -n 's/^#   //p' "$0" | head -n 3 >&2
	exit 2
}

die()
{
	echo "vm-run: $*" >&2
	exit 2
}

mode=ours
timeout_s=""
cpus=${VM_RUN_CPUS:-2}
memory=1G
out=""
exec_cmd=""
kimg=""
icount=0
envs=()
while [ $# -gt 0 ]; do
	case $1 in
	--mode) mode=${2:-}; shift 2 || usage ;;
	--mode=*) mode=${1#*=}; shift ;;
	--timeout) timeout_s=${2:-}; shift 2 || usage ;;
	--timeout=*) timeout_s=${1#*=}; shift ;;
	--cpus) cpus=${2:-}; shift 2 || usage ;;
	--cpus=*) cpus=${1#*=}; shift ;;
	--icount) icount=1; shift ;;
	--memory) memory=${2:-}; shift 2 || usage ;;
	--memory=*) memory=${1#*=}; shift ;;
	--out) out=${2:-}; shift 2 || usage ;;
	--out=*) out=${1#*=}; shift ;;
	--exec) exec_cmd=${2:-}; shift 2 || usage ;;
	--exec=*) exec_cmd=${1#*=}; shift ;;
	--kimg) kimg=${2:-}; shift 2 || usage ;;
	--kimg=*) kimg=${1#*=}; shift ;;
	--env) envs+=("${2:-}"); shift 2 || usage ;;
	--env=*) envs+=("${1#*=}"); shift ;;
	-h|--help) usage ;;
	--) shift; break ;;
	-*) echo "vm-run: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
kver=$1
shift
tests=("$@")

case $mode in
ours|intree) ;;
*) die "--mode must be ours or intree, not '$mode'" ;;
esac
[[ $cpus =~ ^[1-9][0-9]*$ ]] || die "--cpus: not a number: $cpus"
[ -z "$timeout_s" ] || [[ $timeout_s =~ ^[1-9][0-9]*$ ]] ||
	die "--timeout: not a number of seconds: $timeout_s"
[ -z "$exec_cmd" ] || [ ${#tests[@]} -eq 0 ] ||
	die "--exec and TEST arguments exclude each other"
for e in "${envs[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env $e: not NAME=VALUE"
done

kcache=${NFT_TPROXY_KERNELS:-/var/lib/nft-tproxy/kernels}
if [ -z "$kimg" ] && [ -f "$kcache/$kver/img/boot/vmlinuz-$kver" ]; then
	kimg=$kcache/$kver/img/boot/vmlinuz-$kver
fi
if [ -z "$kimg" ]; then
	kimg=/boot/vmlinuz-$kver
	kmods=/lib/modules/$kver
else
	kimg=$(readlink -f "$kimg")
	kmods=$(dirname "$(dirname "$kimg")")/lib/modules/$kver
fi
[ -r "$kimg" ] || die "no kernel image $kimg (is $kver installed?)"
[ -d "$kmods/kernel" ] || die "no modules in $kmods"
command -v vng > /dev/null || die "vng (virtme-ng) not found; run scripts/deps.sh"

moddir=$root/build/$kver/kernel
out=${out:-$root/build/vm/$kver-$mode}
out=$(readlink -m "$out")

# The guest mounts the result directory over 9p after virtme-ng's overlays,
# which are mounted asynchronously; a directory under one of them may end up
# hidden by the overlay.
case $out/ in
/etc/*|/lib/*|/home/*|/opt/*|/srv/*|/usr/*|/var/*|/tmp/*|/run/*)
	die "--out $out: must not be under a directory the guest overlays (/etc /lib /home /opt /srv /usr /var /tmp /run)" ;;
"$root"/selftests/*)
	die "--out $out: must not be under selftests/, which the guest overlays" ;;
esac
mkdir -p "$out" || die "cannot create $out"

summary()
{
	echo "vm-run: $kver $mode: $1 passed, $2 failed, $3 skipped"
}

if [ "$mode" = ours ]; then
	missing=""
	for m in $OUR_MODULES; do
		[ -r "$moddir/$m.ko" ] || missing="$missing $m.ko"
	done
	if [ -n "$missing" ]; then
		echo "vm-run: FAIL: our modules are not built:$missing missing in $moddir" >&2
		echo "vm-run: build them with: make KVER=$kver" >&2
		summary 0 1 0
		exit 1
	fi
fi

# Tests and timeout. Per-test timeouts come from selftests/settings; the host
# allows each test its full timeout plus time to boot and shut down.
if [ -z "$exec_cmd" ]; then
	if [ ${#tests[@]} -gt 0 ]; then
		ntests=${#tests[@]}
	else
		ntests=$("$root/selftests/run.sh" --list | grep -c .)
	fi
else
	ntests=1
fi
test_timeout=$(sed -n 's/^[[:space:]]*timeout[[:space:]]*=[[:space:]]*\([0-9]\+\).*/\1/p' \
	"$root/selftests/settings" 2>/dev/null | tail -n 1)
test_timeout=${test_timeout:-45}
# A limit given to the guest (--env kselftest_override_timeout=SEC) is
# the host's too.
for e in "${envs[@]}"; do
	case $e in
	kselftest_override_timeout=[1-9]*) test_timeout=${e#*=} ;;
	esac
done
[ "$ntests" -ge 1 ] || ntests=1
timeout_s=${timeout_s:-$((ntests * test_timeout + BOOT_MARGIN))}

# Build the C helpers here, where it is fast; the guest skips the build.
if [ -z "$exec_cmd" ] && grep -qs '^all[[:space:]]*:' "$root/selftests/Makefile"; then
	if ! make -s -C "$root/selftests" > "$out/build.log" 2>&1; then
		echo "vm-run: warning: make -C selftests failed (see $out/build.log)" >&2
	fi
fi

rm -f "$out/console.log" "$out/ktap.txt" "$out/dmesg.txt" "$out/rc" "$out/guest.sh" \
      "$out/kmemleak.txt"

# The guest side, generated with our values baked in. Everything it does on
# the 9p result directory happens before and after the tests, not during.
{
	echo '#!/bin/bash'
	echo '# Generated by scripts/vm-run.sh; runs inside the guest.'
	echo 'set -u'
	printf 'out=%q root=%q mode=%q moddir=%q kver=%q kimg=%q\n' \
		"$out" "$root" "$mode" "$moddir" "$kver" "$kimg"
	printf 'exec_cmd=%q\n' "$exec_cmd"
	printf 'tests=('
	[ ${#tests[@]} -eq 0 ] || printf ' %q' "${tests[@]}"
	printf ' )\n'
	printf 'block=%q ours=%q icount=%q\n' "$BLOCK" "$OUR_MODULES" "$icount"
	for e in "${envs[@]}"; do
		printf 'export %q\n' "$e"
	done
	cat <<-'EOF'

	ktap=/run/nft-tproxy-ktap.txt

	# Kernel console: warnings and worse only while the tests run; the whole
	# log is saved to dmesg.txt at the end.
	dmesg -n 5 2>/dev/null

	echo "vm-run: guest kernel $(uname -r)"
	# The kernel cache and make matrix keep the package's name and
	# version beside the unpacked image.
	if [ -f "${kimg%/img/boot/*}/stamp" ]; then
		echo "vm-run: package $(cat "${kimg%/img/boot/*}/stamp"), unpacked: $kimg"
	elif v=$(dpkg-query -W -f='${Version}' "linux-image-$(uname -r)" 2>/dev/null); then
		echo "vm-run: package linux-image-$(uname -r) $v"
	else
		echo "vm-run: kernel image $kimg"
	fi

	# overlaid DIR: DIR is one of virtme-ng's copy-on-write overlays,
	# which its init mounts in the background: writing there never
	# reaches the host.
	overlaid()
	{
		local i

		for i in $(seq 50); do
			[ "$(findmnt -n -o FSTYPE --mountpoint "$1")" = overlay ] && return 0
			sleep 0.1
		done
		echo "vm-run: $1 is not an overlay in the guest"
		return 1
	}

	# virtme-ng's init ends with poweroff -f, from the host's root; a
	# minimal Debian (a container, a debootstrap minbase) has none, and an
	# init that exits panics the guest. busybox's, in the /usr overlay.
	shutdown_tool()
	{
		command -v poweroff >/dev/null && return 0
		if ! command -v busybox >/dev/null; then
			echo "vm-run: no poweroff and no busybox in the guest: run 'make deps'"
			return 1
		fi
		overlaid /usr && ln -s "$(command -v busybox)" /usr/sbin/poweroff &&
			echo "vm-run: poweroff is busybox's (the host has none)"
	}

	setup()
	{
		local m deps d

		if [ "$(uname -r)" != "$kver" ]; then
			echo "vm-run: guest runs $(uname -r), expected $kver"
			return 1
		fi
		# /etc must be an overlay: never write the host's /etc.
		# selftests/ is one too, so that tests may write files beside
		# them; /usr too, for the modules below.
		for d in /etc /usr "$root/selftests"; do
			overlaid "$d" || return 1
		done

		# A kernel unpacked outside /lib/modules (the cache, --kimg):
		# virtme-ng links its modules on a tmpfs at /lib/modules, which
		# the /lib overlay then hides, showing the host's /lib/modules/KVER
		# if there is one (its headers' build link, say). Put them back,
		# in the overlay.
		d=$(sed -n 's/.*virtme_link_mods=\([^ ]*\).*/\1/p' /proc/cmdline)
		if [ -n "$d" ] &&
		   [ "$(readlink -f "/lib/modules/$kver")" != "$(readlink -f "$d")" ]; then
			if [ -d "/lib/modules/$kver" ]; then
				mount --bind "$d" "/lib/modules/$kver"
			else
				ln -sfn "$d" "/lib/modules/$kver"
			fi
		fi
		if [ ! -f "/lib/modules/$kver/modules.dep" ]; then
			echo "vm-run: no modules for $kver in the guest: /lib/modules/$kver -> $(readlink "/lib/modules/$kver"), virtme_link_mods=$d: $(ls -ld "$d" 2>&1)"
			return 1
		fi

		if [ "$mode" = intree ]; then
			# Copies of ours installed on the host (updates/, extra/) would
			# win over the in-tree modules: hide them in the /lib overlay.
			for m in $ours; do
				d=$(modinfo -n "$m" 2>/dev/null)
				case $d in
				""|/lib/modules/"$kver"/kernel/*) ;;
				*) echo "vm-run: hiding $d"; rm -f "$d"; depmod -a ;;
				esac
			done
			return 0
		fi

		for m in $block; do
			echo "install $m /bin/false"
		done > /etc/modprobe.d/nft-tproxy-block.conf || return 1

		deps="nf_tables nf_defrag_ipv4 nf_defrag_ipv6"
		for m in $ours; do
			deps="$deps $(modinfo -F depends "$moddir/$m.ko" 2>/dev/null | tr ',' ' ')"
		done
		for m in $deps; do
			case " $ours " in *" $m "*) continue ;; esac
			if ! modprobe "$m"; then
				echo "vm-run: modprobe $m (needed by our modules) failed"
				return 1
			fi
		done
		for m in $ours; do
			if ! insmod "$moddir/$m.ko"; then
				echo "vm-run: insmod $moddir/$m.ko failed"
				return 1
			fi
		done
		for m in $ours; do
			echo "vm-run: loaded $moddir/$m.ko, srcversion $(cat "/sys/module/$m/srcversion" 2>/dev/null || echo none)"
		done
		for m in $block; do
			case " $ours " in *" $m "*) continue ;; esac
			if grep -q "^$m " /proc/modules; then
				echo "vm-run: in-tree $m is loaded"
				return 1
			fi
		done
		return 0
	}

	export NFT_TPROXY_MODE=$mode NFT_TPROXY_MODDIR=$moddir
	export NFT_TPROXY_SKIP_BUILD=1 KTAP_OUT=$ktap
	cd "$root" || exit 1
	shutdown_tool
	if ! setup; then
		echo "vm-run: guest setup failed"
		rc=1
	elif [ -n "$exec_cmd" ]; then
		bash -c "$exec_cmd" < /dev/null
		rc=$?
	else
		# Under instruction counting the guest's clock jumps over the
		# time it idles, so it runs ahead of the real one, by a factor
		# that depends on the kernel (5.10's boot reads 200 s):
		# settings' limit, in guest seconds, would cut a test short.
		# The host's timeout, in real seconds, still bounds the run.
		[ "$icount" = 0 ] || export kselftest_override_timeout=3600
		selftests/run.sh "${tests[@]}"
		rc=$?
	fi

	# Ours must have served the whole run: no in-tree module got loaded.
	if [ "$mode" = ours ] && [ -z "$exec_cmd" ]; then
		for m in $block; do
			case " $ours " in *" $m "*) continue ;; esac
			if grep -q "^$m " /proc/modules; then
				echo "vm-run: FAIL: in-tree $m got loaded during the run"
				rc=1
			fi
		done
		[ "$rc" -ne 0 ] || echo "vm-run: no in-tree tproxy/socket module was loaded during the run"
	fi

	# kmemleak reports an unreferenced object on the scan after the one
	# that saw it unchanged, and only once it is 5 s old.
	kml=/sys/kernel/debug/kmemleak
	[ -e "$kml" ] || mount -t debugfs none /sys/kernel/debug 2>/dev/null
	if [ -e "$kml" ]; then
		sleep 5
		if echo scan > "$kml" && sleep 1 && echo scan > "$kml"; then
			cat "$kml" > "$out/kmemleak.txt"
			echo "vm-run: kmemleak: $(grep -c '^unreferenced object' "$out/kmemleak.txt") unreferenced object(s) after two scans"
		else
			echo "vm-run: kmemleak: scan refused (disabled?)" > "$out/kmemleak.txt"
			echo "vm-run: FAIL: kmemleak refused a scan: $(dmesg | grep -m1 'kmemleak:')"
			rc=1
		fi
	fi

	[ ! -e "$ktap" ] || cp "$ktap" "$out/ktap.txt"
	dmesg > "$out/dmesg.txt"
	echo "$rc" > "$out/rc"
	sync
	echo "vm-run: guest finished, rc=$rc"
	exit "$rc"
	EOF
} > "$out/guest.sh"

# KVM only where it works: /dev/kvm may exist without a usable CPU extension.
kvm=${VM_RUN_KVM:-auto}
if [ "$kvm" = auto ]; then
	kvm=0
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
		kvm=1
	fi
fi

cmd=(vng --run "$kimg" --user root --name nft-tproxy-vm
     --cpus "$cpus" --memory "$memory" --force-9p --verbose
     "--rwdir=$out=$out" "--overlay-rwdir=$root/selftests")
[ "$kvm" = 1 ] || cmd+=(--disable-kvm)
# Drivers for the emulated machine's own devices (q35's SATA and CD-ROM,
# SMBus, LPC watchdogs, PC speaker, PS/2 mouse, nested KVM), which no test
# uses: virtme-init's udev coldplug would load them on every boot, and under
# TCG that is a quarter of the boot.
cmd+=(--append "modprobe.blacklist=$NOT_NEEDED")
if [ "$icount" = 1 ]; then
	if [ "$kvm" = 1 ]; then
		echo "vm-run: --icount ignored: KVM runs the guest on the real clock"
	else
		cmd+=(--qemu-opts "-icount shift=0,sleep=off")
	fi
fi
# VNG_OPTS is a list of options: word splitting is wanted.
# shellcheck disable=SC2206
[ -z "${VNG_OPTS:-}" ] || cmd+=($VNG_OPTS)
cmd+=(--exec "bash $out/guest.sh")

echo "vm-run: $kver $mode: booting (timeout ${timeout_s}s, kvm=$kvm, icount=$icount), log in $out/console.log"
{
	printf 'vm-run: host: '
	printf '%q ' timeout --kill-after=10 "$timeout_s" "${cmd[@]}"
	echo
} > "$out/console.log"

start=$(date +%s)
# Through a pipe: QEMU reopens /proc/self/fd/1 and /proc/self/fd/2, which on a
# regular file would give two offsets that overwrite each other.
(cd "$root" && timeout --kill-after=10 "$timeout_s" "${cmd[@]}" < /dev/null 2>&1) |
	cat >> "$out/console.log"
vrc=${PIPESTATUS[0]}
elapsed=$(( $(date +%s) - start ))

problems=()
case $vrc in
124|137)
	problems+=("TIMEOUT: the guest did not finish within ${timeout_s}s and was killed") ;;
255)
	problems+=("the guest died (vng returned 255: kernel panic or init failure)") ;;
esac
guest_rc=""
[ -r "$out/rc" ] && guest_rc=$(cat "$out/rc")
if [ -z "$guest_rc" ]; then
	problems+=("the guest wrote no final status ($out/rc): it did not finish")
elif [ "$vrc" != 124 ] && [ "$vrc" != 137 ] && [ "$vrc" != 255 ] &&
     [ "$vrc" != "$guest_rc" ]; then
	problems+=("vng returned $vrc but the guest runner returned $guest_rc")
fi

if [ -z "$exec_cmd" ]; then
	if [ -s "$out/ktap.txt" ]; then
		ktap_src=$out/ktap.txt
	else
		problems+=("no KTAP written by the guest ($out/ktap.txt)")
		ktap_src=$out/console.log
	fi
	echo "vm-run: KTAP:"
	grep -E '^(TAP version|1\.\.|# |ok |not ok |[0-9]+ passed)' "$ktap_src" ||
		echo "(none)"
	npass=$(grep -cE '^ok [0-9]+ ' "$ktap_src")
	nskip=$(grep -cE '^ok [0-9]+ .*# SKIP' "$ktap_src")
	nfail=$(grep -cE '^not ok [0-9]+ ' "$ktap_src")
	npass=$((npass - nskip))
else
	echo "vm-run: --exec output:"
	grep -v '^\[ *[0-9]\+\.[0-9]\+\]' "$out/console.log" | sed -n '/^vm-run: guest kernel/,$p'
	npass=0 nskip=0 nfail=0
	if [ -n "$guest_rc" ] && [ "$guest_rc" != 0 ]; then
		problems+=("--exec command returned $guest_rc")
	fi
fi

hits=$(cd "$out" && grep -nE "$KLOG_RE" console.log dmesg.txt 2>/dev/null |
       grep -v "^console.log:1:")
if [ -s "$out/kmemleak.txt" ]; then
	problems+=("kmemleak reports leaks ($out/kmemleak.txt):")
	hits="${hits:+$hits$'\n'}$(head -n 20 "$out/kmemleak.txt")"
fi
if [ -n "$hits" ]; then
	problems+=("kernel log matches /$KLOG_RE/:")
fi

echo "vm-run: $kver $mode: finished in ${elapsed}s (vng rc=$vrc, guest rc=${guest_rc:-none})"
status=0
[ "$nfail" -eq 0 ] || status=1
if [ ${#problems[@]} -gt 0 ]; then
	status=1
	for p in "${problems[@]}"; do
		echo "vm-run: FAIL: $p"
	done
	if [ -n "$hits" ]; then
		printf '%s\n' "$hits" | head -n 40 | sed 's/^/vm-run:   /'
	fi
	if [ -z "$guest_rc" ]; then
		echo "vm-run: last lines of $out/console.log:"
		tail -n 25 "$out/console.log" | sed 's/^/vm-run:   /'
	fi
	# A run that failed outside the tests counts as one more failure.
	nfail=$((nfail + 1))
fi
summary "$npass" "$nfail" "$nskip"
exit $status
