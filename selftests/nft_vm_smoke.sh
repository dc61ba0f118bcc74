#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the VM runs the suite with the in-tree modules blocked. modprobe
# refuses nft_tproxy, nft_socket and the in-tree tproxy/socket helpers; the
# nft_tproxy and nft_socket that are loaded are ours and serve a rule that
# uses them; and the shared topology passes traffic both ways.
#
#   client                     gw                          server
#   veth0 ------------------- veth0    veth1 ---------------- veth0
#   192.0.2.2/24    192.0.2.1/24    198.51.100.1/24    198.51.100.2/24
#   2001:db8:1::2/64  2001:db8:1::1/64  2001:db8:2::1/64  2001:db8:2::2/64
#
# Mode intree (NFT_TPROXY_MODE=intree) blocks nothing, so the test skips.

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$(readlink -f "$0")")/lib.sh"

BLOCKED="nft_tproxy nft_socket nf_tproxy_ipv4 nf_tproxy_ipv6 nf_socket_ipv4 nf_socket_ipv6 xt_TPROXY xt_socket"

if [ "$NFT_TPROXY_MODE" != ours ]; then
	echo "SKIP: mode $NFT_TPROXY_MODE blocks no module; nothing to check"
	exit "$ksft_skip"
fi

checktool "nft --version" "run nft"
checktool "modprobe --version" "run modprobe"

# Blocked: every module has "install <m> /bin/false", and modprobe of the ones
# not loaded fails and loads nothing.
check_blocked()
{
	local m bad=0 refused="" conf

	conf=$(modprobe -c 2>/dev/null | grep '^install ')
	for m in $BLOCKED; do
		if ! grep -qx "install $m /bin/false" <<< "$conf"; then
			log_fail "modprobe configuration does not block $m"
			bad=1
			continue
		fi
		case $m in
		nft_tproxy|nft_socket)
			# Ours carry the same names and are loaded, so modprobe
			# would do nothing: ask what it would run instead.
			if modprobe -D "$m" 2>/dev/null | tail -n 1 |
			   grep -qx 'install /bin/false *'; then
				refused="$refused $m"
			else
				log_fail "modprobe $m would not run /bin/false: $(modprobe -D "$m" 2>&1 | tail -n 1)"
				bad=1
			fi
			continue
			;;
		esac
		if __module_loaded "$m"; then
			log_fail "in-tree $m is loaded"
			bad=1
		elif modprobe -q "$m" 2>/dev/null; then
			log_fail "modprobe $m succeeded"
			bad=1
		elif __module_loaded "$m"; then
			log_fail "modprobe $m failed but loaded it"
			bad=1
		else
			refused="$refused $m"
		fi
	done
	[ $bad -ne 0 ] || log_pass "in-tree modules blocked: modprobe refuses$refused"
}

check_loaded_ours()
{
	local m

	for m in nft_tproxy nft_socket; do
		if __mod_is_ours "$m"; then
			log_pass "$m loaded is ours ($__mod_why)"
		else
			log_fail "$m: $__mod_why"
		fi
	done
}

check_rule_served()
{
	if ! nft_in "$gw" <<-EOF
		table ip smoke {
			chain pre {
				type filter hook prerouting priority mangle; policy accept;
				meta l4proto tcp socket transparent 1 meta mark set 1 accept
				meta l4proto tcp tproxy to :50080
			}
		}
	EOF
	then
		log_fail "gw refuses a ruleset using socket and tproxy"
		return
	fi
	assert_ours_served tproxy
	assert_ours_served socket
	ns_exec "$gw" nft delete table ip smoke
}

check_blocked
check_loaded_ours
if setup_topology; then
	log_pass "topology: client and server reach each other, IPv4 and IPv6"
	check_rule_served
fi

exit "$ret"
