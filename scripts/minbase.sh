#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The README's commands on the most minimal Debian 12 a user may have: a
# debootstrap minbase bookworm with gcc, make and git only (what a Debian
# container looks like: no systemd, no udev, no poweroff), run as root in a
# chroot with /proc, /sys and /dev bound.
#
#   scripts/minbase.sh DIR [TARGET ...]     default targets: demo check
#
# DIR is made once (debootstrap, a few minutes); this tree's HEAD is cloned
# into DIR/root/nft-tproxy afresh on every run, with ../shared/upstream
# copied beside it as CI has it, and each `make TARGET` runs there in turn,
# timed.  Exits with the first failure's status.  The host's apt lists,
# kernel cache and packages are not shared: the chroot installs all of it
# itself.

set -eu

MIRROR=${MINBASE_MIRROR:-http://deb.debian.org/debian}
top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
dir=${1:?usage: minbase.sh DIR [TARGET ...]}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(demo check)

log()
{
	echo "minbase: $*"
}

if [ ! -f "$dir/.nft-tproxy-minbase" ]; then
	command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
	if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
		log "$dir exists and is not a chroot this script made: give an empty or new directory"
		exit 1
	fi
	log "debootstrap --variant=minbase bookworm into $dir"
	mkdir -p "$dir"
	debootstrap --variant=minbase --include=gcc,make,git,ca-certificates \
		bookworm "$dir" "$MIRROR" >"$dir.debootstrap.log" 2>&1 ||
		{ tail -n 20 "$dir.debootstrap.log"; log "debootstrap failed"; exit 1; }
	touch "$dir/.nft-tproxy-minbase"
fi

rm -rf "$dir/root/nft-tproxy"
git clone -q "$top" "$dir/root/nft-tproxy"
# CI has libnftnl's and nft's release trees beside the clone; so does the
# chroot, unless MINBASE_UPSTREAM=0 (then make check skips the series' tests).
upstream=$(readlink -m "$top/../shared/upstream")
rm -rf "$dir/root/shared"
if [ "${MINBASE_UPSTREAM:-1}" != 0 ] && [ -d "$upstream" ]; then
	mkdir -p "$dir/root/shared"
	cp -a "$upstream" "$dir/root/shared/upstream"
	log "release trees from $upstream in $dir/root/shared/upstream"
fi
git -C "$dir/root/nft-tproxy" checkout -q "$(git -C "$top" rev-parse HEAD)"
log "$(git -C "$dir/root/nft-tproxy" log --oneline -1) in $dir/root/nft-tproxy"

for t in "${targets[@]}"; do
	log "make $t"
	start=$(date +%s)
	rc=0
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --mount --propagation private -- /bin/bash -euc '
		root=$1 t=$2
		mount -t proc proc "$root/proc"
		mount --rbind /sys "$root/sys"
		mount --rbind /dev "$root/dev"
		exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			make -C /root/nft-tproxy "$t"
	' minbase "$dir" "$t" || rc=$?
	log "make $t: exit $rc after $(( $(date +%s) - start )) s"
	[ "$rc" -eq 0 ] || exit "$rc"
done
