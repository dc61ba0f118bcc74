#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make matrix: the kernel this product exists for, one with nf_tables but
# none of the tproxy pieces. Built from Debian's linux-source package with
# virtme-ng's minimal config, plus selftests/config with NFT_TPROXY,
# NFT_SOCKET, NETFILTER_XT_TARGET_TPROXY and NETFILTER_XT_MATCH_SOCKET off, so
# that neither NF_TPROXY_*, NF_SOCKET_* nor the udp4_lib_lookup and
# udp6_lib_lookup exports exist.
#
#   scripts/matrix-notproxy.sh CACHE [LINE [FLAVOUR]]
#
# LINE is the linux-source line (default 6.12). FLAVOUR "debug" (make
# debug-test) adds the kernel's own bug finders on top (DEBUG below: KASAN,
# KFENCE, kmemleak, lockdep with RCU checking, the reference trackers, ...);
# it is built in CACHE/debug/ with the release suffix -debug.
# Results, in CACHE/notproxy/ (CACHE/debug/):
#   linux/         the configured and built tree (KDIR for our modules)
#   img/boot/vmlinuz-KVER and img/lib/modules/KVER/   what the VM boots
#   kver, stamp    the release, and what it was built from
# Rebuilt only when missing, or when the package version or the config
# fragment changed. Prints the release on its last line.

set -eu
set -o pipefail

top=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd -P)
cache=${1:?usage: matrix-notproxy.sh CACHE [LINE [FLAVOUR]]}
line=${2:-6.12}
flavour=${3:-notproxy}
case $flavour in
notproxy|debug) ;;
*) echo "matrix-notproxy: FLAVOUR is notproxy or debug, not '$flavour'" >&2; exit 2 ;;
esac
dir=$cache/$flavour
pkg=linux-source-$line
OFF="NFT_TPROXY NFT_SOCKET NETFILTER_XT_TARGET_TPROXY NETFILTER_XT_MATCH_SOCKET
     NF_TPROXY_IPV4 NF_TPROXY_IPV6 NF_SOCKET_IPV4 NF_SOCKET_IPV6"
# The debug flavour: generic KASAN with inline checks, KFENCE, kmemleak
# (scanned on demand, the guest runner asks at the end of a run), lockdep
# and RCU checking, sleeping in atomic context, DEBUG_NET's warnings, RCU
# heads freed twice, netdev and netns reference trackers, list corruption.
DEBUG="KASAN KASAN_GENERIC KASAN_INLINE KFENCE DEBUG_KERNEL DEBUG_KMEMLEAK
       PROVE_LOCKING PROVE_RCU DEBUG_ATOMIC_SLEEP DEBUG_NET DEBUG_OBJECTS
       DEBUG_OBJECTS_RCU_HEAD NET_DEV_REFCNT_TRACKER NET_NS_REFCNT_TRACKER
       DEBUG_LIST"

log()
{
	echo "matrix-notproxy: $*" >&2
}

die()
{
	log "$*"
	exit 1
}

version=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
	die "no candidate for $pkg (apt-get update?)"
fi

# The fragment: what the tests need, without anything tproxy or socket.
mkdir -p "$dir"
frag=$dir/$flavour.config
{
	grep -vE "^CONFIG_($(tr -s ' \n' '|' <<<"$OFF" | sed 's/|$//'))=" "$top/selftests/config"
	for o in $OFF; do
		echo "# CONFIG_$o is not set"
	done
	echo "CONFIG_LOCALVERSION=\"-$flavour\""
	if [ "$flavour" = debug ]; then
		for o in $DEBUG; do
			echo "CONFIG_$o=y"
		done
		echo '# CONFIG_DEBUG_KMEMLEAK_AUTO_SCAN is not set'
		echo '# CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF is not set'
		echo 'CONFIG_DEBUG_KMEMLEAK_MEM_POOL_SIZE=65536'
	fi
	echo '# CONFIG_LOCALVERSION_AUTO is not set'
	echo 'CONFIG_DEBUG_INFO_NONE=y'
	echo '# CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT is not set'
	echo '# CONFIG_MODULE_SIG is not set'
} > "$frag.new"
mv "$frag.new" "$frag"

stamp="$pkg $version $(sha256sum <"$frag" | cut -c1-16)"
if [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] &&
   [ -f "$dir/kver" ] && [ -f "$dir/img/boot/vmlinuz-$(cat "$dir/kver")" ]; then
	log "cached: $stamp, release $(cat "$dir/kver")"
	cat "$dir/kver"
	exit 0
fi

log "building $flavour from $pkg $version (a cold build takes about 15 minutes on 2 cores, more for debug)"
rm -rf "$dir/linux" "$dir/img" "$dir/kver" "$dir/stamp" "$dir"/*.deb
(cd "$dir" && apt-get download -q "$pkg=$version" >/dev/null)
dpkg-deb --fsys-tarfile "$dir/${pkg}_"*.deb |
	tar -x -O --wildcards './usr/src/linux-source-*.tar.xz' |
	tar -xJ -C "$dir"
mv "$dir"/linux-source-"$line" "$dir/linux"
rm -f "$dir"/*.deb

cd "$dir/linux"
# virtme-ng's minimal config, then ours on top of it.
virtme-configkernel --defconfig --custom "$frag" >/dev/null
for o in $OFF; do
	scripts/config --disable "$o"
done
make -s olddefconfig

# The kernel must be what we claim: nf_tables and defrag there, tproxy not.
for o in NF_TABLES NF_TABLES_INET NF_TABLES_IPV4 NF_TABLES_IPV6 NF_DEFRAG_IPV4 \
	 NF_DEFRAG_IPV6 NF_CONNTRACK NET_NS VETH IPV6 MODULES MODULE_UNLOAD; do
	grep -qE "^CONFIG_$o=[ym]$" .config || die "CONFIG_$o is not set in the config"
done
for o in $OFF; do
	! grep -qE "^CONFIG_$o=[ym]$" .config || die "CONFIG_$o is set in the config"
done
if [ "$flavour" = debug ]; then
	for o in $DEBUG; do
		grep -qE "^CONFIG_$o=y$" .config || die "CONFIG_$o is not set in the config"
	done
fi

make -s -j"$(nproc)" bzImage modules
kver=$(cat include/config/kernel.release)
make -s INSTALL_MOD_PATH="$dir/img" modules_install
rm -f "$dir/img/lib/modules/$kver/build" "$dir/img/lib/modules/$kver/source"
install -D -m 0644 arch/x86/boot/bzImage "$dir/img/boot/vmlinuz-$kver"
cp .config "$dir/img/boot/config-$kver"

echo "$kver" > "$dir/kver"
echo "$stamp" > "$dir/stamp"
log "built $kver"
echo "$kver"
