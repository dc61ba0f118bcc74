// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_pass - attach an XDP program that passes every packet to a device.
 *
 *	xdp_pass DEV
 *
 * A veth device with an XDP program receives in NAPI mode, through GRO,
 * and hands the stack lists of packets, as a NIC driver does; before 5.13
 * that was the only way to get there (GRO alone turns NAPI on since).
 * The program is two instructions, loaded with bpf(2) and attached in
 * driver mode over rtnetlink, so no BPF toolchain is needed.  It stays
 * attached when this program exits, until the device goes away.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

static int prog_load(void)
{
	struct bpf_insn insns[] = {
		/* r0 = XDP_PASS; exit */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0,
		  .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_XDP;
	attr.insns = (unsigned long)insns;
	attr.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	attr.license = (unsigned long)"GPL";
	return syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
}

struct req {
	struct nlmsghdr		nh;
	struct ifinfomsg	ifi;
	char			attrs[64];
};

static struct rtattr *put_attr(struct req *r, unsigned short type,
			       const void *data, unsigned short len)
{
	struct rtattr *rta = (struct rtattr *)((char *)r +
					       NLMSG_ALIGN(r->nh.nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(rta), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
	return rta;
}

static int attach(int ifindex, int fd)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	__u32 flags = XDP_FLAGS_DRV_MODE;
	struct rtattr *nest;
	struct req r;
	char buf[4096];
	struct nlmsgerr *e;
	ssize_t n;
	int s;

	memset(&r, 0, sizeof(r));
	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifi));
	r.nh.nlmsg_type = RTM_SETLINK;
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r.ifi.ifi_family = AF_UNSPEC;
	r.ifi.ifi_index = ifindex;
	nest = put_attr(&r, IFLA_XDP | NLA_F_NESTED, NULL, 0);
	put_attr(&r, IFLA_XDP_FD, &fd, sizeof(fd));
	put_attr(&r, IFLA_XDP_FLAGS, &flags, sizeof(flags));
	nest->rta_len = (char *)&r + r.nh.nlmsg_len - (char *)nest;

	s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (s < 0)
		return -errno;
	if (sendto(s, &r, r.nh.nlmsg_len, 0, (struct sockaddr *)&sa,
		   sizeof(sa)) < 0) {
		close(s);
		return -errno;
	}
	n = recv(s, buf, sizeof(buf), 0);
	close(s);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(*e)))
		return -EPROTO;
	e = NLMSG_DATA((struct nlmsghdr *)buf);
	return ((struct nlmsghdr *)buf)->nlmsg_type == NLMSG_ERROR ?
	       e->error : -EPROTO;
}

int main(int argc, char **argv)
{
	int ifindex, fd, err;

	if (argc != 2) {
		fprintf(stderr, "usage: xdp_pass DEV\n");
		return 2;
	}
	ifindex = if_nametoindex(argv[1]);
	if (!ifindex) {
		fprintf(stderr, "xdp_pass: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	fd = prog_load();
	if (fd < 0) {
		fprintf(stderr, "xdp_pass: loading the program: %s\n",
			strerror(errno));
		return 1;
	}
	err = attach(ifindex, fd);
	if (err) {
		fprintf(stderr, "xdp_pass: attaching to %s: %s\n", argv[1],
			strerror(-err));
		return 1;
	}
	return 0;
}
