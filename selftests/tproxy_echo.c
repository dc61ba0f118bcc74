// SPDX-License-Identifier: GPL-2.0
/*
 * tproxy_echo - transparent TCP/UDP endpoint for the nft tproxy selftests.
 *
 * The tproxy selftests redirect traffic with the nf_tables "tproxy"
 * expression to a local socket and have to prove that it arrived there
 * with the client's real source address and the original destination.
 * This helper is that socket.  It listens (transparently, unless -n) on
 * one port, for TCP or UDP, IPv4 or IPv6 (dual-stack by default), and
 * reports exactly which addresses it saw:
 *
 *   - one log line per TCP connection or UDP datagram, on stdout or in
 *     the file given with -o:
 *
 *	TAG tcp peer=ADDR:PORT orig=ADDR:PORT
 *	TAG udp peer=ADDR:PORT orig=ADDR:PORT
 *
 *   - one reply per received line (TCP) or datagram (UDP):
 *
 *	TAG peer=ADDR:PORT orig=ADDR:PORT line=LINE
 *
 * "peer" is the client's address, "orig" the destination the client
 * used: getsockname() of the accepted TCP socket, IP(V6)_ORIGDSTADDR of
 * the UDP datagram.  UDP replies are sent from that original destination
 * (through a transparent socket bound to it), so that a connected UDP
 * client accepts them.  IPv4 addresses are printed dotted (also when
 * they reach an IPv6 socket as ::ffff:a.b.c.d), IPv6 ones in brackets.
 *
 * TCP connections are served concurrently with poll(); every line of a
 * connection is answered on it, which shows that the established packets
 * of a tproxied connection follow their socket.  "READY" is written to
 * stderr once the socket is bound and listening.  SIGTERM and SIGINT end
 * the program with exit status 0; socket errors give 1, bad usage 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT		19
#endif
#ifndef IP_RECVORIGDSTADDR
#define IP_RECVORIGDSTADDR	20
#endif
#ifndef IP_ORIGDSTADDR
#define IP_ORIGDSTADDR		IP_RECVORIGDSTADDR
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT	75
#endif
#ifndef IPV6_RECVORIGDSTADDR
#define IPV6_RECVORIGDSTADDR	74
#endif
#ifndef IPV6_ORIGDSTADDR
#define IPV6_ORIGDSTADDR	IPV6_RECVORIGDSTADDR
#endif

#ifndef __printf
#define __printf(a, b)		__attribute__((format(printf, a, b)))
#endif

#define PROG			"tproxy_echo"
#define EXIT_FAIL		1	/* socket, bind, listen, ... failed */
#define EXIT_USAGE		2	/* bad command line */

#define MAX_CONNS		256	/* concurrent TCP connections */
#define LINE_MAX_LEN		4096	/* longest line / payload echoed */
#define TAG_MAX_LEN		64
#define ADDR_STR_LEN		(INET6_ADDRSTRLEN + 16)	/* "[addr]:port" */
/* longest reply: tag, two addresses, the line and the fixed text */
#define REPLY_MAX_LEN		(TAG_MAX_LEN + 2 * ADDR_STR_LEN + LINE_MAX_LEN + 32)
#define OUT_BUF_LEN		(4 * REPLY_MAX_LEN)
#define UDP_BUF_LEN		65536
#define UDP_BURST		64	/* datagrams handled per wakeup */
#define BACKOFF_MS		100	/* accept() pause on fd shortage */

struct opts {
	int family;		/* AF_INET or AF_INET6 */
	bool v6only;
	bool udp;
	bool transparent;
	const char *bind_addr;
	const char *tag;
	const char *log_file;
	unsigned int port;
};

struct conn {
	int fd;
	bool eof;		/* client sent FIN */
	char peer[ADDR_STR_LEN];
	char orig[ADDR_STR_LEN];
	size_t in_len;
	size_t out_len;
	char in[LINE_MAX_LEN];
	char out[OUT_BUF_LEN];
};

static volatile sig_atomic_t stop;
static FILE *log_fp;

#define SYNOPSIS \
"usage: " PROG " [-4|-6] [-V] [-u] [-n] [-b ADDR] [-t TAG] [-o LOGFILE] -p PORT\n"

static void usage(FILE *f)
{
	fprintf(f, SYNOPSIS
"\n"
"Transparent TCP/UDP echo endpoint for the nft tproxy selftests.  Logs\n"
"  TAG tcp|udp peer=ADDR:PORT orig=ADDR:PORT\n"
"for every TCP connection / UDP datagram and answers every line (TCP) or\n"
"datagram (UDP) with\n"
"  TAG peer=ADDR:PORT orig=ADDR:PORT line=LINE\n"
"UDP replies are sent from the original destination address.\n"
"\n"
"  -4        IPv4 listening socket (default)\n"
"  -6        IPv6 listening socket, dual-stack unless -V\n"
"  -V        IPv6 only (implies -6)\n"
"  -u        UDP (default TCP)\n"
"  -n        do not set IP_TRANSPARENT/IPV6_TRANSPARENT\n"
"  -b ADDR   bind address (default wildcard)\n"
"  -t TAG    tag of replies and log lines (default \"tproxy\")\n"
"  -o FILE   append log lines to FILE instead of stdout\n"
"  -p PORT   port to listen on (1-65535)\n"
"  -h        this help\n"
"\n"
"\"READY\" is written to stderr once listening.  Exit status: 0 after\n"
"SIGTERM/SIGINT, 1 on socket errors, 2 on a bad command line.\n");
}

static void __printf(1, 2) die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n" SYNOPSIS "(-h for help)\n");
	exit(EXIT_USAGE);
}

static void __printf(1, 2) warnx(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
}

/* "what: strerror(errno)" on stderr */
static void __printf(1, 2) warn(const char *fmt, ...)
{
	int err = errno;
	va_list ap;

	fprintf(stderr, PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(err));
	errno = err;
}

static void __printf(1, 2) log_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(log_fp, fmt, ap);
	va_end(ap);
	fputc('\n', log_fp);
	fflush(log_fp);
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* ::ffff:a.b.c.d -> a.b.c.d, in place */
static void sa_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in sin;

	if (ss->ss_family != AF_INET6 ||
	    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = sin6->sin6_port;
	memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin, sizeof(sin));
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) :
					  sizeof(struct sockaddr_in6);
}

/* "a.b.c.d:port" or "[v6]:port", mapped addresses as IPv4 */
static void sa_format(const struct sockaddr_storage *in, char *buf,
		      size_t len)
{
	struct sockaddr_storage ss = *in;
	char a[INET6_ADDRSTRLEN];

	sa_unmap(&ss);
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&ss;

		inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)&ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "?family%u", ss.ss_family);
	}
}

static bool sa_is_any(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in6 *sin6 = (const void *)ss;
	const struct sockaddr_in *sin = (const void *)ss;

	if (ss->ss_family == AF_INET)
		return sin->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

static int set_int(int fd, int level, int name, int val)
{
	return setsockopt(fd, level, name, &val, sizeof(val));
}

/*
 * IP_TRANSPARENT for AF_INET, IPV6_TRANSPARENT for AF_INET6 and, for a
 * dual-stack socket, IP_TRANSPARENT as well (its error is ignored).
 */
static int set_transparent(int fd, int family, bool dual)
{
	if (family == AF_INET) {
		if (set_int(fd, SOL_IP, IP_TRANSPARENT, 1) < 0) {
			warn("setsockopt IP_TRANSPARENT");
			return -1;
		}
		return 0;
	}
	if (set_int(fd, SOL_IPV6, IPV6_TRANSPARENT, 1) < 0) {
		warn("setsockopt IPV6_TRANSPARENT");
		return -1;
	}
	if (dual)
		(void)set_int(fd, SOL_IP, IP_TRANSPARENT, 1);
	return 0;
}

static void parse_bind(const struct opts *o, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	char buf[INET6_ADDRSTRLEN + 2];
	const char *a = o->bind_addr;
	struct in_addr v4;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	ss->ss_family = o->family;
	if (o->family == AF_INET) {
		sin->sin_port = htons(o->port);
		if (a && inet_pton(AF_INET, a, &sin->sin_addr) != 1)
			die_usage("bad IPv4 bind address '%s'", a);
		return;
	}
	sin6->sin6_port = htons(o->port);
	if (!a)
		return;
	/* accept "[2001:db8::1]" as well */
	n = strlen(a);
	if (n >= 2 && a[0] == '[' && a[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, a + 1, n - 2);
		buf[n - 2] = '\0';
		a = buf;
	}
	if (inet_pton(AF_INET6, a, &sin6->sin6_addr) == 1)
		return;
	/* an IPv4 address on a dual-stack socket: ::ffff:a.b.c.d */
	if (!o->v6only && inet_pton(AF_INET, a, &v4) == 1) {
		sin6->sin6_addr.s6_addr[10] = 0xff;
		sin6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sin6->sin6_addr.s6_addr[12], &v4, 4);
		return;
	}
	die_usage("bad IPv6 bind address '%s'", o->bind_addr);
}

static int open_listener(const struct opts *o)
{
	int type = o->udp ? SOCK_DGRAM : SOCK_STREAM;
	struct sockaddr_storage ss;
	char a[ADDR_STR_LEN];
	int fd;

	parse_bind(o, &ss);
	sa_format(&ss, a, sizeof(a));

	fd = socket(o->family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		warn("socket");
		return -1;
	}
	if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) {
		warn("setsockopt SO_REUSEADDR");
		goto err;
	}
	if (o->family == AF_INET6 &&
	    set_int(fd, SOL_IPV6, IPV6_V6ONLY, o->v6only) < 0) {
		warn("setsockopt IPV6_V6ONLY");
		goto err;
	}
	if (o->transparent &&
	    set_transparent(fd, o->family, o->family == AF_INET6 && !o->v6only))
		goto err;
	if (o->udp) {
		if (o->family == AF_INET6 &&
		    set_int(fd, SOL_IPV6, IPV6_RECVORIGDSTADDR, 1) < 0) {
			warn("setsockopt IPV6_RECVORIGDSTADDR");
			goto err;
		}
		if ((o->family == AF_INET || !o->v6only) &&
		    set_int(fd, SOL_IP, IP_RECVORIGDSTADDR, 1) < 0) {
			warn("setsockopt IP_RECVORIGDSTADDR");
			goto err;
		}
	}
	if (bind(fd, (struct sockaddr *)&ss, sa_len(&ss)) < 0) {
		warn("bind %s", a);
		goto err;
	}
	if (!o->udp && listen(fd, SOMAXCONN) < 0) {
		warn("listen %s", a);
		goto err;
	}
	return fd;
err:
	close(fd);
	return -1;
}

/* ---- TCP ---- */

static void conn_close(struct conn **slot, unsigned int *n_conns)
{
	close((*slot)->fd);
	free(*slot);
	*slot = NULL;
	(*n_conns)--;
}

/*
 * "TAG peer=P orig=O line=LINE\n" into buf (REPLY_MAX_LEN bytes);
 * the line is copied as it is, NUL bytes included.  Returns the length.
 */
static size_t format_reply(char *buf, const char *tag, const char *peer,
			   const char *orig, const char *line, size_t len)
{
	int n;

	if (len > LINE_MAX_LEN)
		len = LINE_MAX_LEN;
	n = snprintf(buf, REPLY_MAX_LEN, "%s peer=%s orig=%s line=", tag, peer,
		     orig);
	if (n < 0 || n + len + 1 > REPLY_MAX_LEN)
		return 0;
	memcpy(buf + n, line, len);
	buf[n + len] = '\n';
	return n + len + 1;
}

/*
 * Answer every complete line in the input buffer while there is room for
 * the reply.  A full buffer without a newline counts as one line, so does
 * what is left when the client has closed its side.
 */
static void conn_process(struct conn *c, const char *tag)
{
	size_t start = 0;

	while (start < c->in_len && OUT_BUF_LEN - c->out_len >= REPLY_MAX_LEN) {
		char *nl = memchr(c->in + start, '\n', c->in_len - start);
		size_t len;

		if (nl) {
			len = nl - (c->in + start);
			c->out_len += format_reply(c->out + c->out_len, tag,
						   c->peer, c->orig,
						   c->in + start, len);
			start += len + 1;
		} else if (c->eof || (start == 0 && c->in_len == LINE_MAX_LEN)) {
			len = c->in_len - start;
			c->out_len += format_reply(c->out + c->out_len, tag,
						   c->peer, c->orig,
						   c->in + start, len);
			start += len;
		} else {
			break;
		}
	}
	if (start) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
}

/* returns -1 when the connection is dead */
static int conn_flush(struct conn *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		memmove(c->out, c->out + n, c->out_len - n);
		c->out_len -= n;
	}
	return 0;
}

/* returns -1 when the connection is to be closed */
static int conn_event(struct conn *c, short revents, const char *tag)
{
	bool can_read = !c->eof && c->in_len < LINE_MAX_LEN;

	if (can_read && (revents & (POLLIN | POLLHUP | POLLERR))) {
		ssize_t n = recv(c->fd, c->in + c->in_len,
				 LINE_MAX_LEN - c->in_len, MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR)
			return -1;
		if (n == 0)
			c->eof = true;
		if (n > 0)
			c->in_len += n;
	} else if (revents & (POLLHUP | POLLERR)) {
		/* nothing can be read now and the peer is gone */
		return -1;
	}

	/* replies may be held back by a full output buffer: loop */
	for (;;) {
		size_t out = c->out_len, in = c->in_len;

		conn_process(c, tag);
		if (conn_flush(c) < 0)
			return -1;
		if (c->out_len == out && c->in_len == in)
			break;
	}

	if (c->eof && !c->in_len && !c->out_len) {
		shutdown(c->fd, SHUT_WR);
		return -1;
	}
	return 0;
}

static void tcp_accept(int lfd, const char *tag, struct conn **conns,
		       unsigned int *n_conns, bool *backoff)
{
	while (*n_conns < MAX_CONNS) {
		struct sockaddr_storage peer, orig;
		socklen_t plen = sizeof(peer), olen = sizeof(orig);
		struct conn *c;
		unsigned int i;
		int fd;

		fd = accept4(lfd, (struct sockaddr *)&peer, &plen,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EPROTO)
				continue;
			warn("accept");
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				*backoff = true;
			return;
		}
		if (getsockname(fd, (struct sockaddr *)&orig, &olen) < 0) {
			warn("getsockname");
			close(fd);
			continue;
		}
		c = malloc(sizeof(*c));
		if (!c) {
			warnx("out of memory");
			close(fd);
			*backoff = true;
			return;
		}
		c->fd = fd;
		c->eof = false;
		c->in_len = 0;
		c->out_len = 0;
		sa_format(&peer, c->peer, sizeof(c->peer));
		sa_format(&orig, c->orig, sizeof(c->orig));
		for (i = 0; i < MAX_CONNS && conns[i]; i++)
			;
		conns[i] = c;
		(*n_conns)++;
		log_line("%s tcp peer=%s orig=%s", tag, c->peer, c->orig);
	}
}

static int run_tcp(int lfd, const struct opts *o, const sigset_t *mask)
{
	struct conn *conns[MAX_CONNS] = { NULL };
	struct pollfd pfd[MAX_CONNS + 1];
	unsigned int slot[MAX_CONNS + 1];
	unsigned int n_conns = 0, n, i;
	bool backoff = false;
	int ret = 0;

	while (!stop) {
		struct timespec ts = { 0, BACKOFF_MS * 1000000L };

		pfd[0].fd = lfd;
		pfd[0].events = n_conns < MAX_CONNS && !backoff ? POLLIN : 0;
		n = 1;
		for (i = 0; i < MAX_CONNS; i++) {
			struct conn *c = conns[i];

			if (!c)
				continue;
			pfd[n].fd = c->fd;
			pfd[n].events = 0;
			if (!c->eof && c->in_len < LINE_MAX_LEN)
				pfd[n].events |= POLLIN;
			if (c->out_len)
				pfd[n].events |= POLLOUT;
			slot[n++] = i;
		}

		if (ppoll(pfd, n, backoff ? &ts : NULL, mask) < 0) {
			if (errno == EINTR)
				continue;
			warn("poll");
			ret = EXIT_FAIL;
			break;
		}
		backoff = false;

		for (i = 1; i < n; i++) {
			struct conn **cp = &conns[slot[i]];

			if (pfd[i].revents &&
			    conn_event(*cp, pfd[i].revents, o->tag) < 0)
				conn_close(cp, &n_conns);
		}
		if (pfd[0].revents & POLLIN)
			tcp_accept(lfd, o->tag, conns, &n_conns, &backoff);
	}

	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i])
			conn_close(&conns[i], &n_conns);
	return ret;
}

/* ---- UDP ---- */

/* send the reply from the original destination, as the real server would */
static void udp_reply_from(const struct sockaddr_storage *orig,
			   const struct sockaddr_storage *peer,
			   const char *buf, size_t len)
{
	char o[ADDR_STR_LEN], p[ADDR_STR_LEN];
	int fd;

	sa_format(orig, o, sizeof(o));
	sa_format(peer, p, sizeof(p));
	if (orig->ss_family != peer->ss_family) {
		warnx("cannot answer %s from %s", p, o);
		return;
	}
	fd = socket(orig->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		warn("socket");
		return;
	}
	if (set_transparent(fd, orig->ss_family, false) < 0)
		goto out;
	if (set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1) < 0) {
		warn("setsockopt SO_REUSEADDR");
		goto out;
	}
	if (bind(fd, (const struct sockaddr *)orig, sa_len(orig)) < 0) {
		warn("bind %s", o);
		goto out;
	}
	if (sendto(fd, buf, len, MSG_NOSIGNAL, (const struct sockaddr *)peer,
		   sa_len(peer)) < 0)
		warn("sendto %s from %s", p, o);
out:
	close(fd);
}

/* returns false when there is nothing more to read */
static bool udp_handle(int lfd, const struct opts *o, char *buf)
{
	union {
		char buf[2 * CMSG_SPACE(sizeof(struct sockaddr_in6))];
		struct cmsghdr align;
	} cbuf;
	char reply[REPLY_MAX_LEN];
	struct sockaddr_storage peer_raw, peer, orig;
	char p[ADDR_STR_LEN], a[ADDR_STR_LEN];
	struct iovec iov = { .iov_base = buf, .iov_len = UDP_BUF_LEN };
	struct msghdr msg = {
		.msg_name	= &peer_raw,
		.msg_namelen	= sizeof(peer_raw),
		.msg_iov	= &iov,
		.msg_iovlen	= 1,
		.msg_control	= cbuf.buf,
		.msg_controllen	= sizeof(cbuf.buf),
	};
	bool have_orig = false;
	struct cmsghdr *cm;
	size_t len, rlen;
	ssize_t n;

	memset(&peer_raw, 0, sizeof(peer_raw));
	n = recvmsg(lfd, &msg, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EINTR)
			return true;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			warn("recvmsg");
		return false;
	}

	memset(&orig, 0, sizeof(orig));
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level == SOL_IP &&
		    cm->cmsg_type == IP_ORIGDSTADDR &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in))) {
			memcpy(&orig, CMSG_DATA(cm), sizeof(struct sockaddr_in));
			have_orig = true;
		} else if (cm->cmsg_level == SOL_IPV6 &&
			   cm->cmsg_type == IPV6_ORIGDSTADDR &&
			   cm->cmsg_len >= CMSG_LEN(sizeof(struct sockaddr_in6))) {
			memcpy(&orig, CMSG_DATA(cm), sizeof(struct sockaddr_in6));
			have_orig = true;
		}
	}
	if (!have_orig) {
		socklen_t olen = sizeof(orig);

		if (getsockname(lfd, (struct sockaddr *)&orig, &olen) < 0) {
			warn("getsockname");
			return true;
		}
	}
	peer = peer_raw;
	sa_unmap(&peer);
	sa_unmap(&orig);
	sa_format(&peer, p, sizeof(p));
	sa_format(&orig, a, sizeof(a));
	log_line("%s udp peer=%s orig=%s", o->tag, p, a);

	len = n;
	if (len && buf[len - 1] == '\n')
		len--;
	rlen = format_reply(reply, o->tag, p, a, buf, len);

	/*
	 * Without transparency (or without the original destination) only
	 * the listening socket's own address can be used as source.
	 */
	if (!o->transparent || !have_orig || sa_is_any(&orig)) {
		if (sendto(lfd, reply, rlen, MSG_NOSIGNAL,
			   (struct sockaddr *)&peer_raw, msg.msg_namelen) < 0)
			warn("sendto %s", p);
	} else {
		udp_reply_from(&orig, &peer, reply, rlen);
	}
	return true;
}

static int run_udp(int lfd, const struct opts *o, const sigset_t *mask)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	char *buf;
	int i;

	buf = malloc(UDP_BUF_LEN);
	if (!buf) {
		warnx("out of memory");
		return EXIT_FAIL;
	}
	while (!stop) {
		if (ppoll(&pfd, 1, NULL, mask) < 0) {
			if (errno == EINTR)
				continue;
			warn("poll");
			free(buf);
			return EXIT_FAIL;
		}
		for (i = 0; i < UDP_BURST && !stop; i++)
			if (!udp_handle(lfd, o, buf))
				break;
	}
	free(buf);
	return 0;
}

/* ---- main ---- */

static unsigned int parse_port(const char *s)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v < 1 || v > 65535)
		die_usage("bad port '%s' (1-65535)", s);
	return v;
}

static void check_tag(const char *t)
{
	const char *c;

	if (!*t || strlen(t) > TAG_MAX_LEN)
		die_usage("bad tag '%s' (1-%d characters)", t, TAG_MAX_LEN);
	for (c = t; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			die_usage("bad tag '%s' (no blanks or control characters)",
				  t);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.family		= AF_INET,
		.transparent	= true,
		.tag		= "tproxy",
	};
	bool opt4 = false, opt6 = false, have_port = false;
	struct sigaction sa;
	sigset_t block, wait_mask;
	int lfd, ret, c;

	opterr = 0;
	while ((c = getopt(argc, argv, ":46Vunb:t:o:p:h")) != -1) {
		switch (c) {
		case '4':
			opt4 = true;
			break;
		case '6':
			opt6 = true;
			break;
		case 'V':
			o.v6only = true;
			break;
		case 'u':
			o.udp = true;
			break;
		case 'n':
			o.transparent = false;
			break;
		case 'b':
			o.bind_addr = optarg;
			break;
		case 't':
			o.tag = optarg;
			break;
		case 'o':
			o.log_file = optarg;
			break;
		case 'p':
			o.port = parse_port(optarg);
			have_port = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			die_usage("option -%c needs an argument", optopt);
			break;
		default:
			die_usage("unknown option -%c", optopt);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (opt4 && opt6)
		die_usage("-4 and -6 exclude each other");
	if (opt4 && o.v6only)
		die_usage("-V needs an IPv6 socket");
	if (opt6 || o.v6only)
		o.family = AF_INET6;
	if (!have_port)
		die_usage("missing -p PORT");
	check_tag(o.tag);

	/*
	 * SIGTERM and SIGINT stay blocked except inside ppoll(), so a signal
	 * can never be lost between the check of "stop" and the wait.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);

	if (o.log_file) {
		log_fp = fopen(o.log_file, "ae");
		if (!log_fp) {
			warn("open %s", o.log_file);
			return EXIT_FAIL;
		}
	} else {
		log_fp = stdout;
	}
	setvbuf(log_fp, NULL, _IOLBF, 0);

	lfd = open_listener(&o);
	if (lfd < 0) {
		if (o.log_file)
			fclose(log_fp);
		return EXIT_FAIL;
	}
	fprintf(stderr, "READY\n");

	ret = o.udp ? run_udp(lfd, &o, &wait_mask) :
		      run_tcp(lfd, &o, &wait_mask);

	close(lfd);
	if (o.log_file)
		fclose(log_fp);
	return ret;
}
