/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * nft-tproxy extensions to nf_tables: names and numbers.
 *
 * Every extension is an nf_tables expression of its own, never a new
 * attribute of upstream's "tproxy" or "socket": a kernel without the
 * extension answers ENOENT for the expression, so no rule is ever accepted
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
 * In prerouting, the packet is delivered to the socket "tproxy" assigned
 * to it or, with none assigned, to the transparent socket of its own flow
 * (a TCP connection in any state but a SYN's TIME_WAIT, a connected UDP
 * socket): it gets a local input route instead of being forwarded.  When
 * there is no such socket the rule is broken off (NFT_BREAK), so that a
 * bare "divert" can stand before the tproxy rules.  In output, a locally
 * generated packet is routed through the loopback device, so that
 * prerouting sees it again.  Valid in the ip, ip6 and inet families,
 * prerouting and output hooks, not in nat chains.
 *
 * The expression has no attributes.  nf_tables ignores the attributes an
 * expression does not declare, so a variant of divert that changes its
 * meaning will be an expression of its own name, never an attribute of
 * this one.
 */
#define NFT_DIVERT_EXPR_NAME	"divert"

#endif /* _LINUX_NFT_TPROXY_EXT_H */
