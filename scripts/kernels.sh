#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The kernels `make check` runs on: the newest bookworm-security 6.1 and
# 6.12 generic amd64 releases unpacked, image, modules and headers, in the
# kernel cache ($NFT_TPROXY_KERNELS, default /var/lib/nft-tproxy/kernels;
# scripts/deps.sh fills it).  One release per line.

set -eu

cache=${NFT_TPROXY_KERNELS:-/var/lib/nft-tproxy/kernels}
# shellcheck source=scripts/kimg.sh
source "$(dirname "$(readlink -f "$0")")/kimg.sh"

newest()
{
	local d k

	for d in "$cache"/$1; do
		k=${d##*/}
		kimg_cached "$d" "$k" && echo "$k"
	done | sort -V | tail -n 1
}

for pattern in '6.1.0-*-amd64' '6.12.*+deb12-amd64'; do
	k=$(newest "$pattern")
	if [ -z "$k" ]; then
		echo "kernels: no kernel matching $pattern in $cache: run 'make deps'" >&2
		exit 1
	fi
	echo "$k"
done
