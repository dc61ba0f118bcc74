# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# A Debian kernel unpacked where virtme-ng boots it, never installed: what
# scripts/deps.sh (the CI kernels) and scripts/matrix-chroot.sh (5.10, 7.2)
# share.  Sourced.

# kimg_unpack IMG KVER DEB...: unpack the packages DEB... into IMG, so that
# IMG/boot/vmlinuz-KVER boots with its modules in IMG/lib/modules/KVER and
# their modules.dep.  Says what is wrong and returns 1 when the packages do
# not hold a kernel.
kimg_unpack()
{
	local img=$1 kver=$2 deb

	shift 2
	rm -rf "$img"
	mkdir -p "$img"
	for deb in "$@"; do
		dpkg-deb -x "$deb" "$img" || return 1
	done
	# virtme-ng finds the modules in lib/modules beside boot/; merged-/usr
	# packages ship them in usr/lib/modules.
	if [ ! -d "$img/lib/modules/$kver" ] && [ -d "$img/usr/lib/modules/$kver" ]; then
		ln -s usr/lib "$img/lib"
	fi
	# ... and since 7.x the kernel itself beside the modules.
	if [ ! -f "$img/boot/vmlinuz-$kver" ] && [ -f "$img/lib/modules/$kver/vmlinuz" ]; then
		install -D -m 0644 "$img/lib/modules/$kver/vmlinuz" "$img/boot/vmlinuz-$kver"
	fi
	if [ ! -f "$img/boot/vmlinuz-$kver" ]; then
		echo "kimg: the packages hold no boot/vmlinuz-$kver: $*" >&2
		return 1
	fi
	if [ ! -d "$img/lib/modules/$kver/kernel" ]; then
		echo "kimg: the packages hold no modules for $kver: $*" >&2
		return 1
	fi
	# The headers' links to /usr/src point at the host, not at IMG.
	rm -f "$img/lib/modules/$kver/build" "$img/lib/modules/$kver/source"
	depmod -b "$img" "$kver"
}

# kimg_cached DIR KVER: DIR holds a whole unpacked test kernel, as
# scripts/deps.sh leaves it: the package stamp, the image and the headers.
kimg_cached()
{
	[ -f "$1/stamp" ] && [ -f "$1/img/boot/vmlinuz-$2" ] &&
		[ -f "$1/img/usr/src/linux-headers-$2/Makefile" ]
}

# kimg_deps REGEX: the package names in the first Depends: line of an
# apt-cache show output (stdin) that match the extended regex REGEX.
kimg_deps()
{
	sed -n 's/^Depends: //p' | head -n 1 | sed 's/[,|]/\n/g' |
		awk '{ print $1 }' | grep -E -e "$1" | sort -u | tr '\n' ' '
}

# kimg_re KVER: a kernel release (digits, letters, '.', '+', '-') as an
# extended regex that matches only itself.
kimg_re()
{
	local r=${1//./\\.}

	printf '%s\n' "${r//+/\\+}"
}
