#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: installed into updates/ (what `make install` does: copy, depmod),
# our modules are the ones a kernel that ships its own loads: depmod resolves
# nft_tproxy and nft_socket to ours, and nft's autoload of a new rule loads
# ours, with none of the in-tree helpers.  If the kernel's own module is
# already loaded, ours is refused ("File exists") and the in-tree one keeps
# serving: the documented clash (make install warns about it).
#
#   +----+   no traffic: module loading only
#   | ns |
#   +----+
#
# Mode ours: the install and autoload part (the in-tree helpers stay
# blocked, the block on nft_tproxy/nft_socket is lifted so that autoload
# can happen).  Mode intree: the clash part, the in-tree module loaded first.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

kver=$(uname -r)
checktool "nft --version" "run nft"
for m in nft_tproxy nft_socket; do
	[ -f "$NFT_TPROXY_MODDIR/$m.ko" ] ||
		{ echo "SKIP: $NFT_TPROXY_MODDIR/$m.ko is not built"; exit "$ksft_skip"; }
done
setup_ns ns

add_rules()
{
	ip netns exec "$ns" nft -f - <<EOF
table inet t {
	chain c {
		type filter hook prerouting priority mangle; policy accept;
		meta l4proto tcp socket transparent 1 accept
		tcp dport 80 tproxy ip to :8080
	}
}
EOF
}

unloaded()
{
	rmmod "$@" 2>/dev/null
	! grep -qE "^($(echo "$@" | tr ' ' '|')) " /proc/modules
}

if [ "${NFT_TPROXY_MODE:-ours}" = intree ]; then
	# The kernel's own modules serve a rule; ours cannot come in beside them.
	add_rules || { log_fail "a tproxy rule loads with the in-tree modules"; exit "$ret"; }
	assert_ours_served tproxy
	for m in nft_tproxy nft_socket; do
		if err=$(insmod "$NFT_TPROXY_MODDIR/$m.ko" 2>&1); then
			log_fail "$m: ours was loaded beside the in-tree module"
		elif [[ "$err" == *"File exists"* ]] && __mod_is_intree "$m"; then
			log_pass "$m: with the in-tree module loaded, ours is refused (${err##*: }) and the in-tree one keeps serving"
		else
			log_fail "$m: with the in-tree module loaded, ours is refused: '$err'"
		fi
	done
	exit "$ret"
fi

# Mode ours: make room, then install as make install does: copy into
# updates/ and run depmod.  Over the whole kernel depmod takes two minutes
# under emulation, so it runs over the kernel's module tree cut down to
# netfilter and what it needs (links to the kernel's own files, the
# kernel's own nft_tproxy and nft_socket among them) with ours in updates/:
# the same search order (updates/ before kernel/, depmod.d) over the same
# competing files.  The kernel's autoload reaches that tree through a
# modprobe_path that adds -d.
conf=/etc/modprobe.d/nft-tproxy-block.conf
if ! busywait "$BUSYWAIT_TIMEOUT" unloaded nft_tproxy nft_socket; then
	log_fail "our modules can be unloaded before the install test"
	exit "$ret"
fi
root=$(mktemp -d)
mods=$root/lib/modules/$kver
modprobe_path=$(cat /proc/sys/kernel/modprobe)
restore()
{
	[ -f "$conf.orig" ] && mv "$conf.orig" "$conf"
	echo "$modprobe_path" >/proc/sys/kernel/modprobe
	ip netns exec "$ns" nft flush ruleset 2>/dev/null
	busywait "$BUSYWAIT_TIMEOUT" unloaded nft_tproxy nft_socket
	insmod "$NFT_TPROXY_MODDIR/nft_tproxy.ko"
	insmod "$NFT_TPROXY_MODDIR/nft_socket.ko"
	rm -rf "$root"
}
on_exit restore

kdir=$(readlink -f "/lib/modules/$kver")
for d in kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6 \
	 kernel/lib kernel/crypto; do
	[ -d "$kdir/$d" ] || continue
	mkdir -p "$mods/${d%/*}"
	cp -rs "$kdir/$d" "$mods/$d"
done
own=$(find "$mods/kernel" -name 'nft_tproxy.ko*' -o -name 'nft_socket.ko*' | wc -l)
cp "$kdir"/modules.builtin* "$kdir/modules.order" "$mods/" 2>/dev/null
mkdir -p "$mods/updates"
cp "$NFT_TPROXY_MODDIR/nft_tproxy.ko" "$NFT_TPROXY_MODDIR/nft_socket.ko" "$mods/updates/"
depmod -b "$root" "$kver"
over=""
[ "$own" -eq 0 ] || over=", over the kernel's own ($own in kernel/)"
for m in nft_tproxy nft_socket; do
	path=$(modinfo -b "$root" -k "$kver" -n "$m")
	if [ "$path" = "$mods/updates/$m.ko" ]; then
		log_pass "$m: depmod resolves the name to ours in updates/$over"
	else
		log_fail "$m: depmod resolves the name to $path"
	fi
done
printf '#!/bin/sh\nexec %s -d %s "$@"\n' "$modprobe_path" "$root" >"$root/modprobe"
chmod +x "$root/modprobe"
echo "$root/modprobe" >/proc/sys/kernel/modprobe

# Let modprobe load nft_tproxy and nft_socket again; the helpers stay blocked.
cp "$conf" "$conf.orig"
grep -vE 'install (nft_tproxy|nft_socket) ' "$conf.orig" >"$conf"
if add_rules; then
	for m in nft_tproxy nft_socket; do
		helpers=$(__intree_helpers_loaded)
		if __mod_is_ours "$m" && [ -z "$helpers" ]; then
			log_pass "$m: a new rule autoloads ours ($__mod_why)"
		else
			log_fail "$m: a new rule autoloads ours: $__mod_why${helpers:+, in-tree $helpers loaded}"
		fi
	done
else
	log_fail "a rule with tproxy and socket loads through autoload"
fi

exit "$ret"
