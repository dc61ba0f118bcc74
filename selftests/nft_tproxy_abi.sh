#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the tproxy expression has upstream's netlink ABI.
#
#   +-----------------------------+
#   | ns: tables ip, ip6, inet     |   no traffic: rule load, list, errors
#   +-----------------------------+
#
# Every rule form of nftables' tests/py/{ip,ip6,inet}/tproxy.t, plus the map
# forms, loads and lists exactly as golden/nft_tproxy_forms.* recorded from
# the in-tree module: both `nft list ruleset` and the netlink dump
# (`nft --debug=netlink`).  Each malformed message that nft never sends gets
# the errno of upstream.  The script runs against the in-tree module
# (NFT_TPROXY_MODE=intree) and against ours: the PASS lines are identical.
#
# One intended difference: a family above 255 gets ERANGE from the netlink
# policy, as upstream does since 6.6; the 6.1 in-tree module has no range in
# its policy and answers EOPNOTSUPP (accepted in intree mode only).  Loads
# from registers that no earlier expression wrote are refused (ENODATA) by
# the nf_tables core of 6.12, accepted by 6.1's: the same for both modules.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

checktool "nft --version" "run nft"
require_nft_raw

setup_ns ns

abi_forms tproxy "$ns"

# name | errno (ours, upstream) | alternative accepted from in-tree | nft_raw args
while IFS='|' read -r name want alt args; do
	# shellcheck disable=SC2086
	abi_raw_case "$ns" "tproxy $name" "$want" "$alt" $args
done <<'CASES'
missing family|EINVAL||-f ip -i 1=1f90 tproxy reg_port=1
no register|EINVAL||-f ip tproxy family=2
no attributes|EINVAL||-f ip tproxy nodata
unknown family in inet|EOPNOTSUPP||-f inet -i 1=1f90 tproxy family=7 reg_port=1
family above 255|ERANGE|EOPNOTSUPP|-f inet -i 1=1f90 tproxy family=300 reg_port=1
family attribute too short|ERANGE||-f ip -i 1=1f90 tproxy family=u8:2 reg_port=1
ip6 family in ip table|EINVAL||-f ip -i 1=1f90 tproxy family=10 reg_port=1
ip family in ip6 table|EINVAL||-f ip6 -i 1=1f90 tproxy family=2 reg_port=1
address without family|EINVAL||-f inet -i 1=c0000201 -i 2=1f90 tproxy family=0 reg_addr=1 reg_port=2
bridge table|EOPNOTSUPP||-f bridge -i 1=1f90 tproxy family=2 reg_port=1
arp table|EOPNOTSUPP||-f arp -H input -i 1=1f90 tproxy family=2 reg_port=1
netdev table|EOPNOTSUPP||-f netdev -H none -i 1=1f90 tproxy family=2 reg_port=1
register out of range|ERANGE||-f ip -i 1=1f90 tproxy family=2 reg_port=99
verdict register|EINVAL||-f ip -i 1=1f90 tproxy family=2 reg_port=0
register never written|ENODATA/OK||-f ip tproxy family=2 reg_port=1
ip6 address from a 4-byte register|ENODATA/OK||-f ip6 -i 8=20010db8 tproxy family=10 reg_addr=8
ip6 address past the last register|ERANGE||-f ip6 -i 8=1f90 tproxy family=10 reg_addr=22 reg_port=8
input hook|EOPNOTSUPP||-f inet -H input -i 1=1f90 tproxy family=2 reg_port=1
forward hook|EOPNOTSUPP||-f inet -H forward -i 1=1f90 tproxy family=2 reg_port=1
output hook|EOPNOTSUPP||-f ip -H output -i 1=1f90 tproxy family=2 reg_port=1
postrouting hook|EOPNOTSUPP||-f ip6 -H postrouting -i 1=1f90 tproxy family=10 reg_port=1
jump from a forward chain|EOPNOTSUPP||-f inet -H none -j forward -i 1=1f90 tproxy family=2 reg_port=1
valid ip rule|OK||-f ip -i 1=c0000201 -i 2=1f90 tproxy family=2 reg_addr=1 reg_port=2
valid inet port-only rule|OK||-f inet -i 1=1f90 tproxy family=0 reg_port=1
jump from a prerouting chain|OK||-f inet -H none -j prerouting -i 1=1f90 tproxy family=10 reg_port=1
unknown attribute ignored|OK||-f ip -i 1=1f90 tproxy family=2 reg_port=1 9=u32:1
CASES

exit "$ret"
