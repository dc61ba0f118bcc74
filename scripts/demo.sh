#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: boot a VM on a Debian kernel, load our modules with the in-tree
# ones blocked, and intercept TCP connections transparently on a gateway,
# IPv4 and IPv6.
#
#   scripts/demo.sh [KVER]      (default: the newest CI 6.12 kernel)

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
mkdir -p "$top/build"
"$top/scripts/hostboot.sh" "$top/build/hostboot.demo"
"$top/scripts/deps.sh" >/dev/null || { echo "demo: make deps failed"; exit 1; }
kver=${1:-$("$top/scripts/kernels.sh" | tail -n 1)}
make -s -C "$top" KVER="$kver" modules >"$top/build/make-$kver.log" 2>&1 ||
	{ echo "demo: building for $kver failed:"; tail -n 30 "$top/build/make-$kver.log"; exit 1; }
if ! make -s -C "$top/selftests" >/dev/null || ! make -s -C "$top/proxy" >/dev/null; then
	echo "demo: building the selftest helpers or the proxy failed"
	exit 1
fi

echo "demo: booting $kver in a VM (20-30 s without KVM) ..."
"$top/scripts/vm-run.sh" --out "$top/build/demo" --exec "$top/scripts/demo-guest.sh" "$kver" \
	>"$top/build/demo.log" 2>&1
rc=$?
[ $rc -eq 0 ] || { echo "demo: the VM run failed:"; cat "$top/build/demo.log"; }
# What the guest printed, without the kernel's console noise.
sed -n '/^=== demo begins/,/^=== demo ends/p' "$top/build/demo/console.log" | sed '1d;$d'
"$top/scripts/hostboot.sh" --same "$top/build/hostboot.demo" "demo: " || rc=1
exit $rc
