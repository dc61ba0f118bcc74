#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the socket expression has upstream's netlink ABI.
#
#   +-----------------------------+
#   | ns: tables ip, ip6, inet     |   no traffic: rule load, list, errors
#   +-----------------------------+
#
# Every key (transparent, mark, wildcard, cgroupv2 with a level) in every
# allowed hook loads and lists exactly as golden/nft_socket_forms.* recorded
# from the in-tree module, and each malformed message gets upstream's errno.
# The script runs against the in-tree module (NFT_TPROXY_MODE=intree) and
# against ours: the PASS lines are identical.
#
# One intended difference: a key or level above 255 gets ERANGE from the
# netlink policy, as upstream does since 6.6; the 6.1 in-tree module has no
# range in its policy and answers EOPNOTSUPP (accepted in intree mode only).

source "$(dirname "$(readlink -f "$0")")/lib.sh"

checktool "nft --version" "run nft"
require_nft_raw

setup_ns ns

abi_forms socket "$ns"

# cgroupv2 with a level: nft resolves the path to a cgroup id under
# /sys/fs/cgroup, so the golden listing cannot hold it; the level must come
# back as it was given.  A private mount namespace gets a cgroup2 hierarchy
# at /sys/fs/cgroup whatever the machine mounts there, and nsenter (unlike
# "ip netns exec", which remounts /sys) keeps it visible.
cgroupv2_form()
{
	local cg=nft-abi rule listed

	rule="socket cgroupv2 level 1 \"$cg\""
	# shellcheck disable=SC2016 # expanded by the inner shell
	unshare -m bash -c '
		set -e
		[ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] ||
			mount -t cgroup2 none /sys/fs/cgroup
		mkdir -p /sys/fs/cgroup/'"$cg"'
		trap "rmdir /sys/fs/cgroup/'"$cg"'" EXIT
		nsenter --net=/run/netns/'"$ns"' nft -f - <<-NFT
		table inet cg {
			chain c {
				type filter hook input priority 0;
				'"$rule"' counter
			}
		}
		NFT
		nsenter --net=/run/netns/'"$ns"' nft list chain inet cg c' >"$ns.cg" 2>&1
	listed=$(grep -o 'socket cgroupv2 level [0-9]* "[^"]*"' "$ns.cg")
	if [ "$listed" = "$rule" ]; then
		log_pass "socket: $rule lists back unchanged"
	else
		log_fail "socket: $rule lists back as '$listed':"
		sed 's/^/    /' "$ns.cg"
	fi
	rm -f "$ns.cg"
	ip netns exec "$ns" nft flush ruleset
}

cgroupv2_form

while IFS='|' read -r name want alt args; do
	# shellcheck disable=SC2086
	abi_raw_case "$ns" "socket $name" "$want" "$alt" $args
done <<'CASES'
missing key|EINVAL||-f inet socket dreg=1 level=0
missing register|EINVAL||-f inet socket key=0 level=0
no attributes|EINVAL||-f inet socket nodata
unknown key|EOPNOTSUPP||-f inet socket key=4 dreg=1 level=0
key above 255|ERANGE|EOPNOTSUPP|-f inet socket key=300 dreg=1 level=0
cgroupv2 without level|EINVAL||-f inet socket key=3 dreg=1
cgroupv2 level above 255|ERANGE|EOPNOTSUPP|-f inet socket key=3 dreg=1 level=256
verdict register|EINVAL||-f inet socket key=0 dreg=0 level=0
register out of range|ERANGE||-f inet socket key=0 dreg=99 level=0
mark past the last register|ERANGE||-f inet socket key=1 dreg=24 level=0
cgroup id past the last register|ERANGE||-f inet socket key=3 dreg=23 level=0
bridge table|EOPNOTSUPP||-f bridge socket key=0 dreg=1 level=0
netdev table|EOPNOTSUPP||-f netdev -H none socket key=0 dreg=1 level=0
forward hook|EOPNOTSUPP||-f inet -H forward socket key=0 dreg=1 level=0
postrouting hook|EOPNOTSUPP||-f ip -H postrouting socket key=0 dreg=1 level=0
jump from a forward chain|EOPNOTSUPP||-f inet -H none -j forward socket key=0 dreg=1 level=0
transparent in prerouting|OK||-f inet socket key=0 dreg=1 level=0
mark in input|OK||-f ip -H input socket key=1 dreg=1 level=0
wildcard in output|OK||-f ip6 -H output socket key=2 dreg=1 level=0
level ignored for other keys|OK||-f inet socket key=0 dreg=8 level=77
cgroupv2 level 1|OK||-f inet socket key=3 dreg=1 level=1
CASES

exit "$ret"
