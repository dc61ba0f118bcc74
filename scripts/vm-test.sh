#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make vm-test: build the modules for one kernel and run the selftests (or
# the given ones) in a VM booted on it.
#
#   scripts/vm-test.sh [--mode ours|intree] KVER [TEST ...]

set -u

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
mode=()
if [ "${1:-}" = --mode ]; then
	mode=(--mode "$2")
	shift 2
fi
kver=${1:?usage: vm-test.sh [--mode ours|intree] KVER [TEST ...]}
shift

mkdir -p "$top/build"
make -s -C "$top" KVER="$kver" modules >"$top/build/make-$kver.log" 2>&1 ||
	{ echo "vm-test: building for $kver failed:"; tail -n 30 "$top/build/make-$kver.log"; exit 1; }
make -s -C "$top/selftests" >/dev/null || { echo "vm-test: building the selftest helpers failed"; exit 1; }
make -s -C "$top/proxy" >/dev/null || { echo "vm-test: building the reference proxy failed"; exit 1; }
exec "$top/scripts/vm-run.sh" "${mode[@]}" "$kver" "$@"
