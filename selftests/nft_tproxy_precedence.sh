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

# Mode ours: make room, then install as make install does.
conf=/etc/modprobe.d/nft-tproxy-block.conf
if ! busywait "$BUSYWAIT_TIMEOUT" unloaded nft_tproxy nft_socket; then
	log_fail "our modules can be unloaded before the install test"
	exit "$ret"
fi
# The copies in updates/ stay: the guest's /lib is a throw-away overlay, and
# depmod over a whole kernel is slow under emulation.  The block comes back.
restore()
{
	[ -f "$conf.orig" ] && mv "$conf.orig" "$conf"
	ip netns exec "$ns" nft flush ruleset 2>/dev/null
	busywait "$BUSYWAIT_TIMEOUT" unloaded nft_tproxy nft_socket
	insmod "$NFT_TPROXY_MODDIR/nft_tproxy.ko"
	insmod "$NFT_TPROXY_MODDIR/nft_socket.ko"
}
on_exit restore

mkdir -p "/lib/modules/$kver/updates"
cp "$NFT_TPROXY_MODDIR/nft_tproxy.ko" "$NFT_TPROXY_MODDIR/nft_socket.ko" "/lib/modules/$kver/updates/"
depmod -a
for m in nft_tproxy nft_socket; do
	path=$(modinfo -n "$m")
	if [ "$path" = "/lib/modules/$kver/updates/$m.ko" ]; then
		log_pass "$m: depmod resolves the name to ours in updates/, over the kernel's own"
	else
		log_fail "$m: depmod resolves the name to $path"
	fi
done

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
