// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/net/stat/nft_tproxy: why packets were or were not intercepted,
 * per network namespace.
 *
 * As with the other files of /proc/net/stat (synproxy, nf_conntrack), the
 * first line names the counters and each further line holds one possible
 * CPU's counts in hexadecimal: a reader sums the columns.  Counting costs
 * one per-CPU increment per event; nothing is computed unless read.
 */
#include <linux/cpumask.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#include "nft_tproxy.h"

unsigned int nft_tproxy_net_id __read_mostly;

static const char * const nft_tproxy_stat_names[__NFT_TPROXY_STAT_MAX] = {
	[NFT_TPROXY_STAT_ESTABLISHED]		= "established",
	[NFT_TPROXY_STAT_LISTENER]		= "listener",
	[NFT_TPROXY_STAT_TW_TAKEOVER]		= "tw_takeover",
	[NFT_TPROXY_STAT_NO_SOCKET]		= "no_socket",
	[NFT_TPROXY_STAT_NOT_TRANSPARENT]	= "not_transparent",
	[NFT_TPROXY_STAT_DELIVERED]		= "delivered",
	[NFT_TPROXY_STAT_LOOPED]		= "looped",
	[NFT_TPROXY_STAT_REFUSED]		= "refused",
	[NFT_TPROXY_STAT_UNHANDLED]		= "unhandled",
	[NFT_TPROXY_STAT_BRIDGED]		= "bridged",
};

#ifdef CONFIG_PROC_FS
/* *pos 0 is the header, *pos N + 1 is the Nth possible CPU. */
static void *nft_tproxy_stat_next_cpu(struct seq_file *seq, loff_t *pos)
{
	struct nft_tproxy_net *tn = net_generic(seq_file_net(seq),
						nft_tproxy_net_id);
	int cpu;

	for (cpu = *pos - 1; cpu < nr_cpu_ids; cpu++) {
		if (!cpu_possible(cpu))
			continue;
		*pos = cpu + 1;
		return per_cpu_ptr(tn->stats, cpu);
	}
	return NULL;
}

static void *nft_tproxy_stat_start(struct seq_file *seq, loff_t *pos)
{
	if (*pos == 0)
		return SEQ_START_TOKEN;
	return nft_tproxy_stat_next_cpu(seq, pos);
}

static void *nft_tproxy_stat_next(struct seq_file *seq, void *v, loff_t *pos)
{
	(*pos)++;
	return nft_tproxy_stat_next_cpu(seq, pos);
}

static void nft_tproxy_stat_stop(struct seq_file *seq, void *v)
{
}

static int nft_tproxy_stat_show(struct seq_file *seq, void *v)
{
	const struct nft_tproxy_stats *st = v;
	unsigned int i;

	/* Columns as wide as their names, values in 8 hex digits. */
	for (i = 0; i < __NFT_TPROXY_STAT_MAX; i++) {
		int pad = (int)strlen(nft_tproxy_stat_names[i]) - 8;

		if (i)
			seq_putc(seq, ' ');
		if (v == SEQ_START_TOKEN)
			seq_printf(seq, "%-8s", nft_tproxy_stat_names[i]);
		else
			seq_printf(seq, "%*s%08x", pad > 0 ? pad : 0, "",
				   READ_ONCE(st->count[i]));
	}
	seq_putc(seq, '\n');
	return 0;
}

static const struct seq_operations nft_tproxy_stat_seq_ops = {
	.start	= nft_tproxy_stat_start,
	.next	= nft_tproxy_stat_next,
	.stop	= nft_tproxy_stat_stop,
	.show	= nft_tproxy_stat_show,
};

static int nft_tproxy_proc_init(struct net *net)
{
	if (!proc_create_net("nft_tproxy", 0444, net->proc_net_stat,
			     &nft_tproxy_stat_seq_ops,
			     sizeof(struct seq_net_private)))
		return -ENOMEM;
	return 0;
}

static void nft_tproxy_proc_exit(struct net *net)
{
	remove_proc_entry("nft_tproxy", net->proc_net_stat);
}
#else
static int nft_tproxy_proc_init(struct net *net)
{
	return 0;
}

static void nft_tproxy_proc_exit(struct net *net)
{
}
#endif /* CONFIG_PROC_FS */

static int __net_init nft_tproxy_net_init(struct net *net)
{
	struct nft_tproxy_net *tn = net_generic(net, nft_tproxy_net_id);
	int err;

	tn->stats = alloc_percpu(struct nft_tproxy_stats);
	if (!tn->stats)
		return -ENOMEM;

	err = nft_tproxy_proc_init(net);
	if (err) {
		free_percpu(tn->stats);
		return err;
	}
	return 0;
}

static void __net_exit nft_tproxy_net_exit(struct net *net)
{
	struct nft_tproxy_net *tn = net_generic(net, nft_tproxy_net_id);

	nft_tproxy_proc_exit(net);
	free_percpu(tn->stats);
}

static struct pernet_operations nft_tproxy_net_ops = {
	.init	= nft_tproxy_net_init,
	.exit	= nft_tproxy_net_exit,
	.id	= &nft_tproxy_net_id,
	.size	= sizeof(struct nft_tproxy_net),
};

int nft_tproxy_stats_init(void)
{
	return register_pernet_subsys(&nft_tproxy_net_ops);
}

void nft_tproxy_stats_exit(void)
{
	unregister_pernet_subsys(&nft_tproxy_net_ops);
}
