/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the netlink helpers of the selftests (nft_raw, nft_fuzz_netlink) use
 * from uapi headers newer than the oldest they build with.
 */
#ifndef _NFT_SELFTESTS_NETLINK_H
#define _NFT_SELFTESTS_NETLINK_H

#include <linux/netlink.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK		11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK		10
#endif
#ifndef NLM_F_CAPPED
#define NLM_F_CAPPED		0x100
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS		0x200
#endif

#endif /* _NFT_SELFTESTS_NETLINK_H */
