// SPDX-License-Identifier: GPL-2.0
/*
 * transparent_preload.so - make a stock server a transparent listener.
 *
 * A tproxy rule only hands a packet to a socket that has IP_TRANSPARENT
 * (or IPV6_TRANSPARENT) set.  Well-known benchmark servers (netserver,
 * iperf3) do not set it, so make bench starts them with
 *
 *	LD_PRELOAD=.../transparent_preload.so netserver ...
 *
 * and every IPv4 or IPv6 socket they create is transparent from the
 * start.  This lets them accept diverted connections and bind to the
 * original destination, as a transparent proxy would; nothing else of the
 * program changes.  Needs CAP_NET_ADMIN, like any transparent socket; a
 * failure to set the option is reported once on stderr and leaves the
 * socket as it was.
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

static int warned;

static void make_transparent(int fd, int domain)
{
	int one = 1, err = 0;

	if (domain == AF_INET6 &&
	    setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)))
		err = errno;
	/* An IPv6 socket also serves IPv4-mapped traffic. */
	if (!err && setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)))
		err = errno;
	if (err && !warned) {
		warned = 1;
		fprintf(stderr, "transparent_preload: IP_TRANSPARENT: %s\n",
			strerror(err));
	}
}

int socket(int domain, int type, int protocol)
{
	int fd = syscall(SYS_socket, domain, type, protocol);

	if (fd >= 0 && (domain == AF_INET || domain == AF_INET6))
		make_transparent(fd, domain);
	return fd;
}
