#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernels `make check` runs on: the newest installed bookworm-security
# 6.1 and 6.12 generic amd64 releases that have their headers (scripts/deps.sh
# installs them).  One release per line.

set -eu

newest()
{
	local d

	for d in /lib/modules/$1; do
		[ -f "$d/build/Makefile" ] && [ -f "/boot/vmlinuz-${d##*/}" ] && echo "${d##*/}"
	done | sort -V | tail -n 1
}

for pattern in '6.1.0-*-amd64' '6.12.*+deb12-amd64'; do
	k=$(newest "$pattern")
	if [ -z "$k" ]; then
		echo "kernels: no kernel matching $pattern with headers: run 'make deps'" >&2
		exit 1
	fi
	echo "$k"
done
