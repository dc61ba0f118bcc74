#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Install what the build, the tests and the demo need on Debian 12.
# Idempotent: a second run finds everything present and returns in seconds.
#
#   scripts/deps.sh            install what is missing
#   scripts/deps.sh --check    report only, exit 1 if something is missing
#   scripts/deps.sh --matrix   also what make matrix needs (debootstrap, the
#                              kernel build's tools)
#
# Kernels: the newest bookworm-security 6.1 and 6.12 generic amd64 images and
# headers, unpacked into a cache ($NFT_TPROXY_KERNELS, default
# /var/lib/nft-tproxy/kernels) and never installed: a kernel package
# installed on a host that boots with GRUB becomes its default entry, and
# 6.12's headers package depends on its image.  Nothing this script installs
# changes how the host boots.  virtme-ng comes from trixie, pinned at
# priority 100 so that only that one package is taken from there.

set -eu

CHECK_ONLY=0
MATRIX=0
for a in "$@"; do
	case $a in
	--check) CHECK_ONLY=1 ;;
	--matrix) MATRIX=1 ;;
	*) echo "deps: unknown option $a" >&2; exit 2 ;;
	esac
done

TOOLS_DIR=${NFT_TPROXY_TOOLS:-/usr/local/lib/nft-tproxy}
KCACHE=${NFT_TPROXY_KERNELS:-/var/lib/nft-tproxy/kernels}
top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
# shellcheck source=scripts/kimg.sh
source "$top/scripts/kimg.sh"
CHECKPATCH_LINE=6.12

log() { printf 'deps: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		exec sudo -E "$0" "$@"
	fi
	log "must run as root"
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_update() {
	[ "$apt_updated" -eq 1 ] && return 0
	log "apt-get update"
	apt-get update -q >/dev/null
	apt_updated=1
}

have_pkg() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# The newest package whose name matches an extended regex, by version sort.
newest_pkg() {
	apt-cache search --names-only "$1" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1
}

# --- trixie, pinned, for virtme-ng only ------------------------------------
ensure_trixie_pin() {
	local src=/etc/apt/sources.list.d/nft-tproxy-trixie.sources
	local pin=/etc/apt/preferences.d/nft-tproxy-trixie
	local changed=0

	# A source that some earlier setup added is fine as long as the pin holds.
	if ! grep -rqs 'trixie' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		[ "$CHECK_ONLY" -eq 1 ] && { log "missing: trixie apt source"; return 1; }
		cat >"$src" <<-EOF
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: trixie
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
		EOF
		log "added $src"
		changed=1
	fi
	if ! grep -rqs -A1 'n=trixie' /etc/apt/preferences /etc/apt/preferences.d/ ||
	   ! grep -rqs 'Pin-Priority: 100' /etc/apt/preferences /etc/apt/preferences.d/; then
		[ "$CHECK_ONLY" -eq 1 ] && { log "missing: trixie pin"; return 1; }
		cat >"$pin" <<-EOF
		Package: *
		Pin: release n=trixie
		Pin-Priority: 100
		EOF
		log "added $pin (trixie at priority 100)"
		changed=1
	fi
	if [ "$changed" -eq 1 ]; then
		apt_updated=0
		apt_update
	fi
	# Nothing but virtme-ng may come from trixie.
	if apt-cache policy libc6 | awk '/Candidate/ {print $2}' | grep -q '2\.4'; then
		log "ERROR: the trixie pin does not hold (libc6 candidate from trixie)"
		return 1
	fi
}

# --- bookworm non-free, for netperf only -----------------------------------
# netperf is in bookworm's non-free component (trixie's main has a build for
# glibc 2.38, which bookworm cannot take).  Nothing else is installed from
# there: apt takes a package from non-free only when it is asked for by name.
ensure_nonfree() {
	local src=/etc/apt/sources.list.d/nft-tproxy-nonfree.sources

	if grep -rqsE '^(deb .*bookworm .*non-free|Components:.*non-free)' \
	   /etc/apt/sources.list /etc/apt/sources.list.d/; then
		return 0
	fi
	[ "$CHECK_ONLY" -eq 1 ] && { log "missing: bookworm non-free apt source (netperf)"; return 1; }
	cat >"$src" <<-EOF
	Types: deb
	URIs: http://deb.debian.org/debian
	Suites: bookworm
	Components: non-free
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	log "added $src (netperf)"
	apt_updated=0
	apt_update
}

# --- bookworm-security, for the kernels -----------------------------------
# The test kernels are bookworm-security's; a debootstrap'd system or a
# container may list only bookworm itself.
ensure_security() {
	local src=/etc/apt/sources.list.d/nft-tproxy-security.sources

	if grep -rqsE 'bookworm-security' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		return 0
	fi
	[ "$CHECK_ONLY" -eq 1 ] && { log "missing: bookworm-security apt source (the kernels)"; return 1; }
	cat >"$src" <<-EOF
	Types: deb
	URIs: http://deb.debian.org/debian-security
	Suites: bookworm-security
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	log "added $src (the kernels)"
	apt_updated=0
	apt_update
}

# --- packages -------------------------------------------------------------
PKGS="qemu-system-x86 kmod nftables iproute2 socat iputils-ping sparse
shellcheck libmnl-dev pkg-config gcc make bc flex bison libelf-dev xz-utils
busybox-static procps psmisc python3 file valgrind python3-sphinx iptables
ethtool"
# virtme-ng's guest: udev names the virtio ports its init runs the command
# through (/dev/virtio-ports/virtme.*), busybox provides the poweroff that
# its init ends with where the host has none (vm-run.sh links it in the
# guest's /usr overlay).  A minimal Debian has neither.
PKGS="$PKGS udev"
# make userspace: libnftnl and nft from source with our series, their man
# pages (a2x, without recommends: no TeX) and nft's tests/py.
PKGS="$PKGS autoconf automake libtool libgmp-dev libedit-dev libjansson-dev
asciidoc-base docbook-xsl xsltproc python3-jsonschema"
# make bench: netperf (bookworm's non-free component, see ensure_nonfree),
# gnuplot for the charts, perf for its --profile.
PKGS="$PKGS netperf gnuplot-nox linux-perf"
# make matrix: chroots of other Debian releases, a kernel built from source.
MATRIX_PKGS="debootstrap libssl-dev cpio"
[ "$MATRIX" -eq 0 ] || PKGS="$PKGS $MATRIX_PKGS"

kernel_pkgs() {
	local k61 k612
	k61=$(newest_pkg '^linux-image-6\.1\.0-[0-9]+-amd64$')
	k612=$(newest_pkg '^linux-image-6\.12\.[0-9]+\+deb12-amd64$')
	if [ -z "$k61" ] || [ -z "$k612" ]; then
		apt_update
		k61=$(newest_pkg '^linux-image-6\.1\.0-[0-9]+-amd64$')
		k612=$(newest_pkg '^linux-image-6\.12\.[0-9]+\+deb12-amd64$')
	fi
	if [ -z "$k61" ] || [ -z "$k612" ]; then
		log "no 6.1/6.12 kernel in the package lists"
		return 1
	fi
	echo "$k61 $k612"
}

# kernel_tools KVER: what the headers of KVER need to build modules with,
# other than themselves: the dependencies of linux-headers-KVER and of the
# linux-headers-, linux-kbuild- and linux-compiler- packages it pulls in
# (gcc-12, pahole, the libraries of kbuild's programs), never a linux-*
# package.
kernel_tools()
{
	local todo="linux-headers-$1" seen=" " p d

	while [ -n "$todo" ]; do
		read -r p todo <<<"$todo"
		case $seen in *" $p "*) continue ;; esac
		seen="$seen$p "
		for d in $(apt-cache show "$p" 2>/dev/null | kimg_deps .); do
			case $d in
			linux-headers-*|linux-kbuild-*|linux-compiler-*) todo="$todo $d" ;;
			linux-*) ;;
			*) echo "$d" ;;
			esac
		done
	done | sort -u | tr '\n' ' '
}

# cache_kernel linux-image-KVER: the image's candidate version, with its
# headers and their kbuild, unpacked into $KCACHE/KVER/img unless that
# version is there already; other releases of the same line are removed.
cache_kernel()
{
	local pkg=$1 kver=${1#linux-image-} version hversion stamp dir tmp hdr line pkgs list d

	version=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
	stamp="$pkg $version"
	dir=$KCACHE/$kver
	hdr=$dir/img/usr/src/linux-headers-$kver
	if kimg_cached "$dir" "$kver" && [ "$(cat "$dir/stamp")" = "$stamp" ]; then
		return 0
	fi
	[ "$CHECK_ONLY" -eq 1 ] && { log "missing: $stamp in $KCACHE"; return 1; }
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	# The headers' Depends name the common headers and kbuild; the
	# image's, where it is split (7.x), its modules.
	pkgs="$(apt-cache show "$pkg=$version" | kimg_deps "-$(kimg_re "$kver")\$")"
	hversion=$(apt-cache policy "linux-headers-$kver" | sed -n 's/^ *Candidate: //p')
	pkgs="$pkgs $(apt-cache show "linux-headers-$kver=$hversion" |
		       kimg_deps '^linux-(headers|kbuild)-')"
	read -ra list <<<"$pkgs"
	pkgs=${list[*]}
	log "unpacking $stamp, linux-headers-$kver $hversion and $pkgs into $dir"
	# shellcheck disable=SC2086 # a list of package names
	if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg=$version" \
			"linux-headers-$kver=$hversion" $pkgs >/dev/null) ||
	   ! kimg_unpack "$dir/img" "$kver" "$tmp"/*.deb; then
		rm -rf "$tmp" "$dir"
		log "ERROR: fetching or unpacking $stamp failed"
		return 1
	fi
	rm -rf "$tmp"
	# The flavour's Makefile includes the common tree by its absolute path.
	sed -i "s|^include /usr/src/|include $dir/img/usr/src/|" "$hdr/Makefile"
	echo "$stamp" >"$dir/stamp"
	line=${kver%%-*}
	line=${line%.*}
	for d in "$KCACHE"/*; do
		case ${d##*/} in
		"$kver") ;;
		"$line".*) log "removing ${d##*/} from $KCACHE"; rm -rf "$d" ;;
		esac
	done
}

missing=""
# Stale package lists name kernels the registry may no longer serve.
if [ "$CHECK_ONLY" -eq 0 ] &&
   ! find /var/lib/apt/lists -maxdepth 1 -name '*InRelease' -mmin -1440 2>/dev/null | grep -q .; then
	apt_update
fi
ensure_trixie_pin
ensure_nonfree
ensure_security

kp=$(kernel_pkgs)
for k in $kp; do
	PKGS="$PKGS $(kernel_tools "${k#linux-image-}")"
done
for p in $PKGS; do
	have_pkg "$p" || missing="$missing $p"
done
vng_missing=0
command -v vng >/dev/null 2>&1 || vng_missing=1

if [ -n "$missing" ] || [ "$vng_missing" -eq 1 ]; then
	[ "$CHECK_ONLY" -eq 1 ] && { log "missing:$missing$([ $vng_missing = 1 ] && echo ' virtme-ng')"; exit 1; }
	apt_update
	if [ -n "$missing" ]; then
		log "installing:$missing"
		# shellcheck disable=SC2086 # a list of package names
		apt-get install -y -q --no-install-recommends $missing >/dev/null
	fi
	if [ "$vng_missing" -eq 1 ]; then
		log "installing virtme-ng/trixie; what apt would take from trixie:"
		apt-get -s install --no-install-recommends virtme-ng/trixie | awk '/^Inst/ && !/Debian:12|Debian-Security:12/ {print "deps:   " $0}'
		apt-get install -y -q --no-install-recommends virtme-ng/trixie >/dev/null
	fi
fi

# --- checkpatch.pl and its data files from linux-source -------------------
if [ ! -x "$TOOLS_DIR/checkpatch/checkpatch.pl" ]; then
	[ "$CHECK_ONLY" -eq 1 ] && { log "missing: checkpatch.pl"; exit 1; }
	apt_update
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	trap 'rm -rf "$tmp"' EXIT
	log "extracting checkpatch.pl from linux-source-$CHECKPATCH_LINE"
	(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "linux-source-$CHECKPATCH_LINE" >/dev/null)
	dpkg-deb --fsys-tarfile "$tmp"/linux-source-*.deb |
		tar -x -C "$tmp" --wildcards './usr/src/linux-source-*.tar.xz'
	mkdir -p "$TOOLS_DIR/checkpatch"
	tar -xJf "$tmp"/usr/src/linux-source-*.tar.xz -C "$tmp" --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	cp "$tmp"/linux-source-*/scripts/checkpatch.pl \
	   "$tmp"/linux-source-*/scripts/spelling.txt \
	   "$tmp"/linux-source-*/scripts/const_structs.checkpatch "$TOOLS_DIR/checkpatch/"
	chmod +x "$TOOLS_DIR/checkpatch/checkpatch.pl"
	dpkg-deb -f "$tmp"/linux-source-*.deb Version >"$TOOLS_DIR/checkpatch/VERSION"
fi

# Only virtme-ng may come from trixie: say what did.  apt names, for each
# installed version, every archive that ships it: trixie's (stable, or
# trixie where sources name it so) and bookworm's (oldstable) when the
# version is the same in both.  A version that bookworm ships did not come
# from trixie.
from_trixie=$(apt list --installed 2>/dev/null | awk '
	{
		split($1, p, "/"); n = split(p[2], a, ",")
		t = 0; b = 0
		for (i = 1; i <= n; i++) {
			if (a[i] ~ /^(stable|trixie)(-|$)/) t = 1
			if (a[i] ~ /^(oldstable|bookworm)(-|$)/) b = 1
		}
		if (t && !b) print p[1]
	}' | tr '\n' ' ')
log "installed from trixie: ${from_trixie:-nothing}"
if [ "${from_trixie% }" != virtme-ng ]; then
	log "ERROR: packages other than virtme-ng came from trixie"
	exit 1
fi

mkdir -p "$KCACHE"
for k in $kp; do
	cache_kernel "$k" || exit 1
	log "kernel $(cat "$KCACHE/${k#linux-image-}/stamp"), unpacked in $KCACHE/${k#linux-image-}"
done
log "virtme-ng $(dpkg-query -W -f='${Version}' virtme-ng), checkpatch from linux-source $(cat "$TOOLS_DIR/checkpatch/VERSION")"
log "ok"
