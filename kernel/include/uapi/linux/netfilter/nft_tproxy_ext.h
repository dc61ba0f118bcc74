/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * nft-tproxy extensions to nf_tables: names and numbers.
 *
 * Every extension is an nf_tables expression of its own, never a new
 * attribute of upstream's "tproxy" or "socket": a kernel without the
 * extension answers ENOENT for the expression, and a kernel with it refuses
 * what it does not know (flag bits included), so no rule is ever accepted
 * with part of its meaning dropped.
 *
 * This is the only place the numbers are defined.  libnftnl and nft carry
 * a verbatim copy (see libnftnl-patch/ and nft-patch/).
 */
#ifndef _LINUX_NFT_TPROXY_EXT_H
#define _LINUX_NFT_TPROXY_EXT_H

/*
 * "divert": make the packet's route local delivery, without policy routing.
 *
 * In prerouting, after "tproxy" assigned a socket (or, with none assigned,
 * for a packet of an established flow whose socket is transparent), the
 * packet gets a local input route: it is delivered to that socket instead
 * of being forwarded.  In output, a locally generated packet is routed
 * through the loopback device, so that prerouting sees it again.
 * Valid in the ip, ip6 and inet families, prerouting and output hooks.
 */
#define NFT_DIVERT_EXPR_NAME	"divert"

/**
 * enum nft_divert_attributes - nf_tables divert expression attributes
 *
 * @NFTA_DIVERT_FLAGS: behaviour flags (NLA_U32: enum nft_divert_flags).
 *	Optional, 0 when absent.  No flag is defined yet: the kernel
 *	refuses any bit it does not know with EOPNOTSUPP, so that a future
 *	flag can never be ignored by an older kernel.
 */
enum nft_divert_attributes {
	NFTA_DIVERT_UNSPEC,
	NFTA_DIVERT_FLAGS,
	__NFTA_DIVERT_MAX
};

#define NFTA_DIVERT_MAX		(__NFTA_DIVERT_MAX - 1)

/* enum nft_divert_flags: none defined yet. */
#define NFT_DIVERT_F_MASK	0x0U

#endif /* _LINUX_NFT_TPROXY_EXT_H */
