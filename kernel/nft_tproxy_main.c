// SPDX-License-Identifier: GPL-2.0
/*
 * The nft_tproxy module: the "tproxy" expression (upstream's netlink ABI),
 * the "divert" extension and the statistics both keep.
 */
#include <linux/module.h>
#include <net/netfilter/nf_tables.h>

#include "nft_tproxy.h"

static int __init nft_tproxy_module_init(void)
{
	int err;

	/* The counters exist before any expression can count. */
	err = nft_tproxy_stats_init();
	if (err)
		return err;

	err = nft_tproxy_expr_init();
	if (err)
		goto err_stats;

	err = nft_divert_expr_init();
	if (err)
		goto err_tproxy;

	return 0;

err_tproxy:
	nft_tproxy_expr_exit();
err_stats:
	nft_tproxy_stats_exit();
	return err;
}

static void __exit nft_tproxy_module_exit(void)
{
	nft_divert_expr_exit();
	nft_tproxy_expr_exit();
	nft_tproxy_stats_exit();
}

module_init(nft_tproxy_module_init);
module_exit(nft_tproxy_module_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("nf_tables tproxy support, self-contained, and the divert extension (nft-tproxy)");
MODULE_VERSION(NFT_TPROXY_VERSION);
MODULE_ALIAS_NFT_EXPR("tproxy");
MODULE_ALIAS_NFT_AF_EXPR(2, "tproxy");
MODULE_ALIAS_NFT_AF_EXPR(10, "tproxy");
MODULE_ALIAS_NFT_AF_EXPR(1, "tproxy");
MODULE_ALIAS_NFT_EXPR("divert");
MODULE_ALIAS_NFT_AF_EXPR(2, "divert");
MODULE_ALIAS_NFT_AF_EXPR(10, "divert");
MODULE_ALIAS_NFT_AF_EXPR(1, "divert");
