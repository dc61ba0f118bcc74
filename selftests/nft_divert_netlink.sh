#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: the divert expression (uapi/linux/netfilter/nft_tproxy_ext.h) is
# accepted exactly where it works and refused everywhere else, and a kernel
# without it refuses every rule that uses it.
#
#   +-----------------------------+
#   | ns: tables ip, ip6, inet ... |   no traffic: hand-made rule messages
#   +-----------------------------+
#
# Against ours: prerouting and output of the ip, ip6 and inet families take
# it; any other hook, a jump from one, a nat chain (which sees only a flow's
# first packet) and another family are refused with EOPNOTSUPP; divert has
# no attributes, and its dump carries none.  Against the kernel's own
# modules (NFT_TPROXY_MODE=intree), which have no divert: every one of the
# same messages gets ENOENT, so no rule is ever accepted without it.

source "$(dirname "$(readlink -f "$0")")/lib.sh"

checktool "nft --version" "run nft"
require_nft_raw

setup_ns ns

# show WHO TEXT: TEXT, indented, each line saying who printed it.
show()
{
	local line

	while IFS= read -r line; do
		printf '    %s: %s\n' "$1" "$line"
	done <<<"$2"
}

while IFS='|' read -r name want args; do
	[ "$NFT_TPROXY_MODE" = intree ] && want=ENOENT
	# shellcheck disable=SC2086
	abi_raw_case "$ns" "divert $name" "$want" "" $args
done <<'CASES'
inet prerouting, no attributes|OK|-f inet divert nodata
inet prerouting, empty attribute nest|OK|-f inet divert
undeclared attribute 1 (nf_tables ignores it)|OK|-f inet divert 1=u32:1
ip prerouting|OK|-f ip divert nodata
ip6 prerouting|OK|-f ip6 divert nodata
inet output|OK|-f inet -H output divert nodata
ip output|OK|-f ip -H output divert
ip6 output|OK|-f ip6 -H output divert nodata
jump from prerouting|OK|-f inet -H none -j prerouting divert nodata
jump from output|OK|-f ip -H none -j output divert nodata
output route chain|OK|-f ip -H output -T route divert nodata
regular chain, no jump yet|OK|-f inet -H none divert nodata
nat chain in prerouting|EOPNOTSUPP|-f ip -T nat -p -100 divert nodata
nat chain in output|EOPNOTSUPP|-f ip6 -H output -T nat -p -100 divert nodata
input hook|EOPNOTSUPP|-f inet -H input divert nodata
forward hook|EOPNOTSUPP|-f inet -H forward divert nodata
postrouting hook|EOPNOTSUPP|-f ip -H postrouting divert nodata
jump from input|EOPNOTSUPP|-f inet -H none -j input divert nodata
jump from forward|EOPNOTSUPP|-f ip6 -H none -j forward divert nodata
bridge table|EOPNOTSUPP|-f bridge divert nodata
netdev table|EOPNOTSUPP|-f netdev -H none divert nodata
arp table|EOPNOTSUPP|-f arp -H input divert nodata
CASES

# The nat chains above are refused for divert, not for being nat chains.
abi_raw_case "$ns" "a nat chain with a counter instead (control)" OK "" \
	-f ip -T nat -p -100 counter nodata

# A kernel without divert, as the patched nft reports it: the kernel's
# ENOENT, and the line that names what provides the expression.
if [ "$NFT_TPROXY_MODE" = intree ] && [ -x "$NFT_PATCHED" ]; then
	out=$(nftp "$ns" -f - 2>&1 <<EOF
table inet t {
	chain c {
		type filter hook prerouting priority mangle;
		meta l4proto tcp tproxy to :8080 divert
	}
}
EOF
)
	rc=$?
	show "patched nft" "$out"
	if [ $rc -ne 0 ] && grep -q 'Could not process rule: No such file or directory' <<<"$out" &&
	   grep -q '^divert needs kernel module nft_tproxy of the out-of-tree nft-tproxy package' <<<"$out"; then
		log_pass "divert: refused with ENOENT, and the patched nft names the module"
	else
		log_fail "divert: refused with ENOENT, and the patched nft names the module (exit $rc)"
	fi
	ip netns exec "$ns" nft flush ruleset
fi

# What the kernel dumps back: the expression, without attributes.
if [ "$NFT_TPROXY_MODE" != intree ]; then
	out=$(ip netns exec "$ns" "$NFT_RAW" -d -f inet divert 2>&1)
	ip netns exec "$ns" nft flush ruleset
	if grep -qx 'expr divert' <<<"$out"; then
		log_pass "divert: dumped back as 'expr divert', without attributes"
	else
		log_fail "divert: dumped back as 'expr divert': got '${out//$'\n'/ | }'"
	fi

	# What a stock nft makes of it: its libnftnl drops a rule with an
	# expression it does not know, silently.  Shown, so that a change
	# in a distribution's nft is seen; the patched nft lists the rule.
	ip netns exec "$ns" "$NFT_RAW" -k -f inet -t listing divert nodata >/dev/null
	out=$(ip netns exec "$ns" nft list ruleset 2>&1)
	rc=$?
	show "stock nft" "$out"
	if [ $rc -eq 0 ] && grep -q 'chain rawtest' <<<"$out" &&
	   ! grep -q divert <<<"$out" && [ "$(grep -c . <<<"$out")" -eq 5 ]; then
		log_pass "divert: a stock nft lists its chain without the rule, and exits 0"
	else
		log_fail "divert: a stock nft lists its chain without the rule, and exits 0 (exit $rc)"
	fi
	if [ -x "$NFT_PATCHED" ]; then
		out=$(nftp "$ns" list ruleset 2>&1)
		show "patched nft" "$out"
		if grep -qx $'\t\tdivert' <<<"$out"; then
			log_pass "divert: the patched nft lists the rule as 'divert'"
		else
			log_fail "divert: the patched nft lists the rule as 'divert'"
		fi
	fi
	ip netns exec "$ns" nft flush ruleset

	# Which module answered: divert lives in our nft_tproxy.
	if __mod_is_ours nft_tproxy; then
		echo "served by our nft_tproxy: $__mod_why"
	else
		log_fail "divert: not served by our nft_tproxy: $__mod_why"
	fi
fi

exit "$ret"
