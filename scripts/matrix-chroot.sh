#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make matrix: a Debian release's kernel, its headers and its own compiler in
# a debootstrap chroot, for kernels whose toolchain is not the host's
# (bullseye's 5.10 with gcc-10, sid's newest with its own gcc and glibc).
#
#   scripts/matrix-chroot.sh CACHE SUITE PATTERN
#       prepare: prints the kernel release on its last line
#   scripts/matrix-chroot.sh --run CACHE SUITE CMD...
#       run CMD in the chroot, with this source tree mounted at its own path
#
# PATTERN is an extended regular expression for the release, e.g.
# '5\.10\.0-[0-9]+-amd64'; the newest release matching it is taken.
# Results, in CACHE/SUITE/:
#   root/                     the chroot, with linux-headers-KVER installed
#   img/boot/vmlinuz-KVER and img/lib/modules/KVER/   from linux-image-KVER
#   kver, stamp               the release, and the image package version
# The chroot is made once; headers and image are fetched again only when
# the newest release or its package version changed.

set -eu
set -o pipefail

MIRROR=${MATRIX_MIRROR:-http://deb.debian.org/debian}
SECURITY=${MATRIX_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
# shellcheck source=scripts/kimg.sh
source "$top/scripts/kimg.sh"

log()
{
	echo "matrix-chroot: $*" >&2
}

die()
{
	log "$*"
	exit 1
}

# in_chroot ROOT CMD...: CMD in the chroot, in a private mount namespace
# (nothing stays mounted when it ends), with /proc, /dev and the source tree.
in_chroot()
{
	local root=$1

	shift
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare --mount --propagation private -- /bin/bash -euc '
		root=$1 top=$2
		shift 2
		mount -t proc proc "$root/proc"
		mount --rbind /dev "$root/dev"
		mkdir -p "$root$top"
		mount --bind "$top" "$root$top"
		exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
	' in_chroot "$root" "$top" "$@"
}

if [ "${1:-}" = --run ]; then
	shift
	cache=${1:?usage: matrix-chroot.sh --run CACHE SUITE CMD...}
	suite=${2:?usage: matrix-chroot.sh --run CACHE SUITE CMD...}
	shift 2
	[ -x "$cache/$suite/root/bin/sh" ] || die "no chroot in $cache/$suite/root"
	in_chroot "$cache/$suite/root" "$@"
	exit
fi

cache=${1:?usage: matrix-chroot.sh CACHE SUITE PATTERN}
suite=${2:?usage: matrix-chroot.sh CACHE SUITE PATTERN}
pattern=${3:?usage: matrix-chroot.sh CACHE SUITE PATTERN}
dir=$cache/$suite
root=$dir/root

# The chroot, once. A marker written last tells a finished one from an
# interrupted debootstrap.
if [ ! -f "$root/.nft-tproxy-chroot" ]; then
	command -v debootstrap >/dev/null || die "debootstrap is missing: run 'scripts/deps.sh --matrix'"
	log "debootstrap $suite into $root (a few minutes)"
	rm -rf "$root"
	mkdir -p "$dir"
	debootstrap --variant=minbase --components=main "$suite" "$root" "$MIRROR" \
		>"$dir/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap $suite failed (log: $dir/debootstrap.log)"; }
	{
		echo "deb $MIRROR $suite main"
		case $suite in
		sid|unstable) ;;
		*)
			echo "deb $MIRROR $suite-updates main"
			echo "deb $SECURITY $suite-security main"
			;;
		esac
	} >"$root/etc/apt/sources.list"
	# sid's Release files expire within a week; a mirror snapshot may be older.
	cat >"$root/etc/apt/apt.conf.d/90nft-tproxy" <<-'EOF'
	Acquire::Check-Valid-Until "false";
	APT::Install-Recommends "false";
	APT::Install-Suggests "false";
	EOF
	# debootstrap's lists know only $suite itself.
	rm -f "$root"/var/lib/apt/lists/*_Packages*
	touch "$root/.nft-tproxy-chroot"
fi

# Refresh the package lists once a day.
lists=$root/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
	log "apt-get update in the $suite chroot"
	in_chroot "$root" apt-get -q update >"$dir/apt.log" 2>&1 ||
		{ tail -n 20 "$dir/apt.log" >&2; die "apt-get update in the $suite chroot failed"; }
fi

kver=$(in_chroot "$root" apt-cache pkgnames linux-headers- |
       sed -n 's/^linux-headers-//p' | grep -xE "$pattern" | sort -V | tail -n 1)
[ -n "$kver" ] || die "no linux-headers-* matching '$pattern' in $suite"
version=$(in_chroot "$root" apt-cache policy "linux-image-$kver" |
	  sed -n 's/^ *Candidate: //p')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
	die "no linux-image-$kver in $suite"
fi
stamp="linux-image-$kver $version"

# ready: what the modules will be built with, and for which kernel.
ready()
{
	local gccs

	gccs=$(find "$root/usr/bin" -maxdepth 1 -regextype posix-extended \
		-regex '.*/(x86_64-linux-gnu-)?gcc-[0-9]+' -printf '%f ')
	# shellcheck disable=SC2016 # a dpkg-query format
	log "ready: $stamp; in the chroot: ${gccs}glibc $(in_chroot "$root" dpkg-query -W -f='${Version}' libc6); the kernel was built with $(sed -n 's/^CONFIG_CC_VERSION_TEXT=//p' "$root/usr/src/linux-headers-$kver/.config")"
}

if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] &&
   [ -f "$dir/img/boot/vmlinuz-$kver" ] && [ -f "$root/usr/src/linux-headers-$kver/Makefile" ]; then
	log "cached"
	ready
	echo "$kver"
	exit 0
fi

log "installing linux-headers-$kver and its compiler in the $suite chroot"
in_chroot "$root" apt-get -q -y install "linux-headers-$kver" make >"$dir/apt.log" 2>&1 ||
	{ tail -n 20 "$dir/apt.log" >&2; die "installing linux-headers-$kver in the $suite chroot failed"; }

# Newer releases split the image: linux-image-KVER depends on
# linux-binary-KVER (the kernel) and linux-modules-KVER; take every
# dependency named after the release.
pkgs=$(in_chroot "$root" apt-cache show "linux-image-$kver=$version" |
       kimg_deps "-$(kimg_re "$kver")\$")
log "fetching linux-image-$kver $version${pkgs:+ and }$pkgs"
rm -rf "$dir/img" "$dir/stamp"
in_chroot "$root" /bin/sh -c "rm -rf /tmp/img && mkdir /tmp/img && cd /tmp/img && apt-get -q download linux-image-$kver=$version $pkgs" \
	>>"$dir/apt.log" 2>&1 || die "downloading linux-image-$kver failed"
kimg_unpack "$dir/img" "$kver" "$root"/tmp/img/*.deb || die "unpacking linux-image-$kver failed"
rm -rf "$root/tmp/img"
in_chroot "$root" apt-get -q clean

echo "$kver" >"$dir/kver"
echo "$stamp" >"$dir/stamp"
ready
echo "$kver"
