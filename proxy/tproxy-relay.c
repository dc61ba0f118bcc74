// SPDX-License-Identifier: GPL-2.0
/*
 * tproxy-relay - a small reference transparent proxy for nft tproxy.
 *
 * It accepts the connections (TCP) or datagrams (UDP) that an nftables
 * "tproxy to :PORT" rule diverts to its listening socket, learns the
 * address the client really wanted, and relays the traffic to that
 * original destination (or to a fixed upstream), optionally from the
 * client's own address so that the server sees the client.
 *
 * Design, in the order a reader meets it below:
 *
 *   - one thread, one epoll set, every socket non-blocking;
 *   - TCP: the original destination is getsockname() of the accepted
 *     socket; the upstream socket connects without blocking; both
 *     directions are moved with splice() through a pipe each, so the
 *     payload never enters user space and the pipes are the only
 *     buffers; a pipe is taken from a small pool while a direction has
 *     data in flight and returned when it drains;
 *   - half-close: the FIN of one side is passed on (shutdown(SHUT_WR))
 *     once that direction's pipe is empty, the other direction goes on;
 *     an error or a reset on either side resets both;
 *   - UDP: the original destination comes with every datagram as
 *     IP_ORIGDSTADDR/IPV6_ORIGDSTADDR; a flow per (client, original
 *     destination) owns a connected upstream socket and expires when
 *     idle; replies leave from a transparent socket bound to the
 *     original destination, shared by all flows to that address;
 *   - after the sockets exist every capability but CAP_NET_ADMIN (and
 *     CAP_NET_BIND_SERVICE where a bind may need it) is dropped, and
 *     with -U the user changes too.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 on a system error, 2 on bad
 * usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/capability.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define PROG		"tproxy-relay"
#define BATCH		64	/* accepts/datagrams per wakeup, per socket */
#define PUMP_ROUNDS	16	/* splice rounds per connection per turn */
#define POOL_MAX	64	/* idle pipes kept for reuse */
#define UDP_MAX		65536

/* --- Addresses --- */

union addr {
	struct sockaddr		sa;
	struct sockaddr_in	in;
	struct sockaddr_in6	in6;
};

/* "[addr%ifname]:port" at most */
#define ADDR_STRLEN	(INET6_ADDRSTRLEN + IF_NAMESIZE + 10)

static socklen_t addr_len(const union addr *a)
{
	return a->sa.sa_family == AF_INET ? sizeof(a->in) : sizeof(a->in6);
}

static uint16_t addr_port(const union addr *a)
{
	return ntohs(a->sa.sa_family == AF_INET ? a->in.sin_port :
		     a->in6.sin6_port);
}

static void addr_set_port(union addr *a, uint16_t port)
{
	if (a->sa.sa_family == AF_INET)
		a->in.sin_port = htons(port);
	else
		a->in6.sin6_port = htons(port);
}

/*
 * Every IPv4 address is kept as AF_INET, also when a dual-stack socket
 * reported it as ::ffff:a.b.c.d: that is the family its upstream and
 * reply sockets need.
 */
static void addr_unmap(union addr *a)
{
	struct sockaddr_in in = { .sin_family = AF_INET };

	if (a->sa.sa_family != AF_INET6 ||
	    !IN6_IS_ADDR_V4MAPPED(&a->in6.sin6_addr))
		return;
	in.sin_port = a->in6.sin6_port;
	memcpy(&in.sin_addr, &a->in6.sin6_addr.s6_addr[12], 4);
	memset(a, 0, sizeof(*a));
	a->in = in;
}

/* The form @a takes on a socket of @family (IPv4 on IPv6: mapped). */
static void addr_map(union addr *dst, const union addr *a, int family)
{
	*dst = *a;
	if (family != AF_INET6 || a->sa.sa_family != AF_INET)
		return;
	memset(dst, 0, sizeof(*dst));
	dst->in6.sin6_family = AF_INET6;
	dst->in6.sin6_port = a->in.sin_port;
	dst->in6.sin6_addr.s6_addr[10] = 0xff;
	dst->in6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&dst->in6.sin6_addr.s6_addr[12], &a->in.sin_addr, 4);
}

static bool addr_eq(const union addr *a, const union addr *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_port == b->in.sin_port &&
		       a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
	return a->in6.sin6_port == b->in6.sin6_port &&
	       a->in6.sin6_scope_id == b->in6.sin6_scope_id &&
	       IN6_ARE_ADDR_EQUAL(&a->in6.sin6_addr, &b->in6.sin6_addr);
}

static bool addr_is_any(const union addr *a)
{
	if (a->sa.sa_family == AF_INET)
		return a->in.sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&a->in6.sin6_addr);
}

/* a.b.c.d:port, [v6]:port or [v6%if]:port; mapped IPv4 as IPv4 */
static const char *addr_str(const union addr *addr, char *buf)
{
	char host[INET6_ADDRSTRLEN], scope[IF_NAMESIZE + 1] = "";
	union addr a = *addr;

	addr_unmap(&a);
	if (a.sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &a.in.sin_addr, host, sizeof(host));
		snprintf(buf, ADDR_STRLEN, "%s:%u", host, addr_port(&a));
		return buf;
	}
	inet_ntop(AF_INET6, &a.in6.sin6_addr, host, sizeof(host));
	if (a.in6.sin6_scope_id &&
	    !if_indextoname(a.in6.sin6_scope_id, scope + 1))
		snprintf(scope + 1, sizeof(scope) - 1, "%u",
			 a.in6.sin6_scope_id);
	if (scope[1])
		scope[0] = '%';
	snprintf(buf, ADDR_STRLEN, "[%s%s]:%u", host, scope, addr_port(&a));
	return buf;
}

/*
 * Parses "a.b.c.d:PORT" or "[v6]:PORT" (a link-local one may name its
 * interface, [fe80::1%eth0]:PORT); for a listener also ":PORT", the
 * IPv6 wildcard.  *@dual: the result is the IPv6 wildcard, the address
 * of a dual-stack listener.
 */
static int addr_parse(const char *s, union addr *a, bool listener,
		      bool *dual)
{
	char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = "::", *end, *pct;
	const char *colon = strrchr(s, ':');
	bool v6 = s[0] == '[' || s[0] == ':';
	size_t len = colon ? (size_t)(colon - s) : 0;
	unsigned long port;

	memset(a, 0, sizeof(*a));
	if (!colon || colon[1] < '0' || colon[1] > '9' || len >= sizeof(host))
		return -1;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port == 0 || port > 65535)
		return -1;
	if (s[0] == '[') {
		if (len < 3 || colon[-1] != ']')
			return -1;
		memcpy(host, s + 1, len - 2);
		host[len - 2] = '\0';
	} else if (len) {
		if (v6)		/* IPv6 needs its brackets */
			return -1;
		memcpy(host, s, len);
		host[len] = '\0';
	} else if (!listener) {
		return -1;
	}
	pct = strchr(host, '%');
	if (pct && v6) {
		*pct++ = '\0';
		end = "";
		a->in6.sin6_scope_id = if_nametoindex(pct);
		if (!a->in6.sin6_scope_id)
			a->in6.sin6_scope_id = strtoul(pct, &end, 10);
		if (!a->in6.sin6_scope_id || *end)
			return -1;
	}
	if (v6 && inet_pton(AF_INET6, host, &a->in6.sin6_addr) == 1)
		a->sa.sa_family = AF_INET6;
	else if (!v6 && inet_pton(AF_INET, host, &a->in.sin_addr) == 1)
		a->sa.sa_family = AF_INET;
	else
		return -1;
	addr_set_port(a, port);
	addr_unmap(a);
	*dual = a->sa.sa_family == AF_INET6 && addr_is_any(a);
	/* an upstream must be somewhere */
	return !listener && addr_is_any(a) ? -1 : 0;
}

/* --- Configuration and global state --- */

static struct {
	union addr listen;
	union addr upstream;
	bool dual;		/* listen on [::] with IPV6_V6ONLY off */
	bool udp;
	bool transparent;	/* -t */
	bool up_transparent;	/* -T */
	bool fixed;		/* -d given */
	bool quiet;
	unsigned int max;
	unsigned int idle;	/* seconds */
	unsigned int bufsize;
	const char *user;
	uid_t uid;
	gid_t gid;
} cfg = {
	.max = 4096,
	.idle = 30,
	.bufsize = 65536,
};

enum ep_kind { EP_SIGNAL, EP_LISTENER, EP_TCP, EP_FLOW, EP_REPLY };

/* What an epoll event points at: the first member of its owner. */
struct ep {
	enum ep_kind kind;
};

/* A circular doubly linked list, as in <linux/list.h>. */
struct list {
	struct list *prev, *next;
};

#define list_first(head, type, member)					\
	((type *)((char *)(head)->next - offsetof(type, member)))

static bool list_empty(const struct list *head)
{
	return head->next == head;
}

static void list_del(struct list *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void list_add_tail(struct list *e, struct list *head)
{
	e->prev = head->prev;
	e->next = head;
	head->prev->next = e;
	head->prev = e;
}

static int epfd = -1, lfd = -1, sigfd = -1;
static struct ep signal_ep = { EP_SIGNAL }, listener_ep = { EP_LISTENER };
static uint64_t now;			/* ms, CLOCK_MONOTONIC, per wakeup */
static uint64_t listener_paused;	/* resume time, 0: not paused */
static bool stopping;

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void vmsg(const char *fmt, va_list ap, const char *tail)
{
	fflush(stdout);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(tail, stderr);
}

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap, "\n");
	va_end(ap);
	exit(status);
}

/* Per-connection lines go to stdout unless -q. */
#define logc(...)						\
	do {							\
		if (!cfg.quiet)					\
			printf(__VA_ARGS__);			\
	} while (0)

/*
 * A warning that traffic can trigger at any rate (limits, failing
 * flows) goes to stderr at most once per second; the next one says how
 * many were suppressed in between.
 */
struct ratelimit {
	uint64_t last;
	unsigned long suppressed;
};

static void __attribute__((format(printf, 2, 3)))
warn_limited(struct ratelimit *rl, const char *fmt, ...)
{
	char tail[48] = "\n";
	va_list ap;

	if (rl->last && now - rl->last < 1000) {
		rl->suppressed++;
		return;
	}
	if (rl->suppressed)
		snprintf(tail, sizeof(tail), " (%lu more suppressed)\n",
			 rl->suppressed);
	va_start(ap, fmt);
	vmsg(fmt, ap, tail);
	va_end(ap);
	rl->last = now ? now : 1;
	rl->suppressed = 0;
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}

static int setopt(int fd, int level, int name, int val)
{
	return setsockopt(fd, level, name, &val, sizeof(val));
}

/* IPv6 sockets take both: IP_TRANSPARENT also covers their IPv4 side. */
static int set_transparent(int fd, int family)
{
	if (family == AF_INET6 && setopt(fd, SOL_IPV6, IPV6_TRANSPARENT, 1))
		return -1;
	return setopt(fd, SOL_IP, IP_TRANSPARENT, 1);
}

/* Closes a TCP socket with a RST instead of a FIN. */
static void close_rst(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static int ep_add(int fd, uint32_t events, void *ptr)
{
	struct epoll_event ev = { .events = events, .data.ptr = ptr };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Whether @a is an address of this host (a plain bind() succeeds). */
static bool addr_is_local(const union addr *a)
{
	union addr probe = *a;
	bool local;
	int fd;

	fd = socket(a->sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	addr_set_port(&probe, 0);
	local = bind(fd, &probe.sa, addr_len(&probe)) == 0;
	close(fd);
	return local;
}

/*
 * A client that reaches the listener without being diverted has our
 * own address as its "original destination": relaying there would
 * connect the proxy to itself, again and again.
 */
static bool orig_is_self(const union addr *orig)
{
	if (cfg.fixed || addr_port(orig) != addr_port(&cfg.listen))
		return false;
	if (!addr_is_any(&cfg.listen) && !addr_eq(orig, &cfg.listen))
		return false;
	return addr_is_local(orig);
}

/*
 * The socket towards the upstream, connecting without blocking.  With
 * -T it is transparent and bound to the client's own address and port
 * (SO_REUSEADDR: the same client port may talk to several servers).
 * Returns the fd, or -1 with errno set (EINPROGRESS is success).
 */
static int upstream_socket(int type, const union addr *client,
			   const union addr *upstream)
{
	int family = upstream->sa.sa_family, fd, err;

	fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (cfg.up_transparent) {
		if (client->sa.sa_family != family) {
			errno = EAFNOSUPPORT;
			goto fail;
		}
		if (set_transparent(fd, family) ||
		    setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1) ||
		    bind(fd, &client->sa, addr_len(client)))
			goto fail;
	}
	if (type == SOCK_STREAM)
		setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	else
		setopt(fd, SOL_SOCKET, SO_RCVBUF, cfg.bufsize);
	if (connect(fd, &upstream->sa, addr_len(upstream)) &&
	    errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* --- Pipes --- */

struct pipebuf {
	int rfd, wfd;		/* rfd < 0: none attached */
	unsigned int cap;	/* bytes we let into it */
};

static struct {
	struct pipebuf p[POOL_MAX];
	unsigned int n;
} pool;

static int pipe_get(struct pipebuf *p)
{
	int fds[2], size;

	if (pool.n) {
		*p = pool.p[--pool.n];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC))
		return -1;
	/*
	 * Best effort: above pipe-max-size, or above the user's
	 * pipe-user-pages-soft, the pipe keeps the size it got.
	 */
	fcntl(fds[1], F_SETPIPE_SZ, cfg.bufsize);
	size = fcntl(fds[1], F_GETPIPE_SZ);
	p->rfd = fds[0];
	p->wfd = fds[1];
	p->cap = size > 0 && (unsigned int)size < cfg.bufsize ?
		 (unsigned int)size : cfg.bufsize;
	return 0;
}

/* An empty pipe goes back to the pool, one with stale data is closed. */
static void pipe_put(struct pipebuf *p, bool empty)
{
	if (p->rfd < 0)
		return;
	if (empty && pool.n < POOL_MAX) {
		pool.p[pool.n++] = *p;
	} else {
		close(p->rfd);
		close(p->wfd);
	}
	p->rfd = -1;
	p->wfd = -1;
}

static void pool_drain(void)
{
	while (pool.n) {
		pool.n--;
		close(pool.p[pool.n].rfd);
		close(pool.p[pool.n].wfd);
	}
}

/* --- TCP --- */

enum { CLIENT, UPSTREAM };	/* sides */
enum { UP, DOWN };		/* directions: UP reads CLIENT */

struct conn;

struct side {
	struct ep ep;
	struct conn *conn;
	int fd;
	bool rd;		/* may have data or EOF to read */
	bool wr;		/* may take data */
};

/* Direction i reads side i and writes side !i. */
struct dir {
	struct pipebuf p;
	unsigned int pending;	/* bytes in the pipe */
	bool eof;		/* the source sent its FIN */
	bool shut;		/* ... and it was passed on */
	unsigned long long bytes;
};

struct conn {
	struct side s[2];
	struct dir d[2];
	union addr client, orig, upstream;
	bool connecting;
	bool dead;
	bool queued;
	struct list node;		/* on conns, or dead_conns */
	struct conn *qnext;		/* run-again list */
};

static struct list conns = { &conns, &conns };
static struct list dead_conns = { &dead_conns, &dead_conns };
static struct conn *again;
static unsigned int nconns;
static struct ratelimit rl_tcp_max, rl_accept, rl_self;

/*
 * Closes a connection, with a RST on both sides if @err, and logs its
 * end: "tcp fail" if it never connected, else "tcp end" with the bytes.
 */
static void conn_end(struct conn *c, int err)
{
	char a[3][ADDR_STRLEN];
	int i;

	addr_str(&c->client, a[0]);
	if (c->connecting)
		logc("tcp fail client=%s orig=%s upstream=%s: %s\n", a[0],
		     addr_str(&c->orig, a[1]), addr_str(&c->upstream, a[2]),
		     strerror(err));
	else
		logc("tcp end client=%s bytes_up=%llu bytes_down=%llu\n",
		     a[0], c->d[UP].bytes, c->d[DOWN].bytes);

	for (i = 0; i < 2; i++) {
		if (c->s[i].fd >= 0 && err)
			close_rst(c->s[i].fd);
		else if (c->s[i].fd >= 0)
			close(c->s[i].fd);
		c->s[i].fd = -1;
		pipe_put(&c->d[i].p, c->d[i].pending == 0);
	}
	/* events of this round may still point at it */
	c->dead = true;
	list_del(&c->node);
	list_add_tail(&c->node, &dead_conns);
	if (--nconns == 0)
		pool_drain();
}

static void free_dead_conns(void)
{
	struct conn *c;

	while (!list_empty(&dead_conns)) {
		c = list_first(&dead_conns, struct conn, node);
		list_del(&c->node);
		free(c);
	}
}

/*
 * Moves what it can in direction @i: socket -> pipe while the pipe has
 * room, pipe -> socket while the destination takes it, then passes an
 * EOF on once the pipe is empty.  Returns 1 on progress, 0 without,
 * -1 on error.
 *
 * Edge-triggered readiness: rd/wr are cleared only by EAGAIN.  A full
 * pipe also makes splice() fail with EAGAIN (pipes count slots, not
 * bytes), so with data in the pipe EAGAIN says nothing about the socket
 * and rd stays set: it is tried again once the pipe drained.
 */
static int dir_pump(struct conn *c, int i)
{
	struct side *src = &c->s[i], *dst = &c->s[!i];
	struct dir *d = &c->d[i];
	int progress = 0;
	ssize_t n;

	if (!d->eof && src->rd &&
	    (d->p.rfd < 0 || d->pending < d->p.cap)) {
		if (d->p.rfd < 0 && pipe_get(&d->p))
			return -1;
		n = splice(src->fd, NULL, d->p.wfd, NULL,
			   d->p.cap - d->pending,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->pending += n;
			progress = 1;
		} else if (n == 0) {
			d->eof = true;
			progress = 1;
		} else if (errno == EAGAIN) {
			if (!d->pending)
				src->rd = false;
		} else if (errno != EINTR) {
			return -1;
		}
	}
	if (d->pending && dst->wr) {
		n = splice(d->p.rfd, NULL, dst->fd, NULL, d->pending,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			d->pending -= n;
			d->bytes += n;
			progress = 1;
		} else if (n < 0 && errno == EAGAIN) {
			dst->wr = false;
		} else if (n < 0 && errno != EINTR) {
			return -1;
		}
	}
	if (d->eof && !d->pending && !d->shut) {
		if (shutdown(dst->fd, SHUT_WR))
			return -1;
		d->shut = true;
	}
	return progress;
}

static void conn_pump(struct conn *c)
{
	int i, r, progress, rounds = 0;

	do {
		progress = 0;
		for (i = 0; i < 2; i++) {
			r = dir_pump(c, i);
			if (r < 0) {
				conn_end(c, errno);
				return;
			}
			progress |= r;
		}
	} while (progress && ++rounds < PUMP_ROUNDS);

	if (c->d[UP].shut && c->d[DOWN].shut) {
		conn_end(c, 0);
		return;
	}
	/* out of turns with work left: come back before sleeping */
	if (progress && !c->queued) {
		c->queued = true;
		c->qnext = again;
		again = c;
	}
	for (i = 0; i < 2; i++)
		if (!c->d[i].pending)
			pipe_put(&c->d[i].p, true);
}

static void conn_connected(struct conn *c)
{
	char a[4][ADDR_STRLEN];
	union addr local;
	socklen_t len = sizeof(local);

	c->connecting = false;
	c->s[UPSTREAM].rd = true;
	c->s[UPSTREAM].wr = true;
	if (getsockname(c->s[UPSTREAM].fd, &local.sa, &len))
		memset(&local, 0, sizeof(local));
	logc("tcp client=%s orig=%s upstream=%s->%s\n",
	     addr_str(&c->client, a[0]), addr_str(&c->orig, a[1]),
	     addr_str(&local, a[2]), addr_str(&c->upstream, a[3]));
	conn_pump(c);
}

static void conn_event(struct side *s, uint32_t ev)
{
	struct conn *c = s->conn;
	int idx = s == &c->s[UPSTREAM] ? UPSTREAM : CLIENT;
	int err;

	if (c->dead)
		return;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->rd = true;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		s->wr = true;

	if (c->connecting && idx == UPSTREAM) {
		err = sock_error(s->fd);
		if (!err && (ev & (EPOLLERR | EPOLLHUP)))
			err = ECONNREFUSED;
		if (err) {
			conn_end(c, err);
			return;
		}
		if (ev & EPOLLOUT)
			conn_connected(c);
		return;
	}
	/*
	 * A reset may arrive while neither direction would touch this
	 * socket (say, both idle): look for it.  HUP without our own
	 * SHUT_WR on this socket is the same.
	 */
	if (((ev & EPOLLERR) && sock_error(s->fd)) ||
	    ((ev & EPOLLHUP) && !c->d[!idx].shut)) {
		conn_end(c, ECONNRESET);
		return;
	}
	if (!c->connecting)
		conn_pump(c);
}

static void tcp_new(int fd, union addr *peer)
{
	char a[3][ADDR_STRLEN];
	socklen_t len = sizeof(union addr);
	struct conn *c;
	int i, ufd;

	if (nconns >= cfg.max) {
		warn_limited(&rl_tcp_max,
			     "tcp: %u connections, the -m limit: new ones are closed",
			     cfg.max);
		close_rst(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close_rst(fd);
		return;
	}
	c->client = *peer;
	addr_unmap(&c->client);
	if (getsockname(fd, &c->orig.sa, &len)) {
		free(c);
		close_rst(fd);
		return;
	}
	addr_unmap(&c->orig);
	c->upstream = cfg.fixed ? cfg.upstream : c->orig;
	if (orig_is_self(&c->orig)) {
		warn_limited(&rl_self,
			     "tcp client=%s orig=%s: not diverted, refused (it would connect to itself)",
			     addr_str(&c->client, a[0]),
			     addr_str(&c->orig, a[1]));
		free(c);
		close_rst(fd);
		return;
	}
	for (i = 0; i < 2; i++) {
		c->s[i].ep.kind = EP_TCP;
		c->s[i].conn = c;
		c->d[i].p.rfd = -1;
		c->d[i].p.wfd = -1;
	}
	c->s[CLIENT].fd = fd;
	c->s[CLIENT].rd = true;
	c->s[CLIENT].wr = true;
	setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	c->connecting = true;
	list_add_tail(&c->node, &conns);
	nconns++;

	ufd = upstream_socket(SOCK_STREAM, &c->client, &c->upstream);
	c->s[UPSTREAM].fd = ufd;
	if (ufd < 0) {
		conn_end(c, errno);
		return;
	}
	if (ep_add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		   &c->s[CLIENT]) ||
	    ep_add(ufd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		   &c->s[UPSTREAM])) {
		conn_end(c, errno);
		return;
	}
}

static void tcp_accept(void)
{
	union addr peer;
	socklen_t len;
	int i, fd;

	for (i = 0; i < BATCH; i++) {
		len = sizeof(peer);
		fd = accept4(lfd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			tcp_new(fd, &peer);
			continue;
		}
		switch (errno) {
		case EAGAIN:
			return;
		case EINTR:
		case ECONNABORTED:
		case EPERM:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM: {
			/* level-triggered: rest instead of spinning */
			struct epoll_event ev = { .data.ptr = &listener_ep };

			warn_limited(&rl_accept, "accept: %s, pausing 100 ms",
				     strerror(errno));
			epoll_ctl(epfd, EPOLL_CTL_MOD, lfd, &ev);
			listener_paused = now + 100;
			return;
		}
		default:
			warn_limited(&rl_accept, "accept: %s", strerror(errno));
			return;
		}
	}
}

static void listener_resume(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &listener_ep };

	epoll_ctl(epfd, EPOLL_CTL_MOD, lfd, &ev);
	listener_paused = 0;
}

/* --- UDP --- */

/*
 * A transparent socket bound to an original destination.  Replies leave
 * through it, so they carry the address and port the client sent to.
 * As long as it exists, "socket transparent 1" matches the clients'
 * datagrams to that address and they are delivered to it rather than
 * diverted to the listener: it is read like the listener.
 */
struct reply {
	struct ep ep;
	struct reply *hnext;
	union addr addr;
	int fd;
	unsigned int refs;
};

struct flow {
	struct ep ep;
	struct flow *hnext;		/* hash chain */
	struct list node;		/* on idle, oldest first */
	union addr client, orig, upstream;
	struct reply *reply;		/* NULL: replies via the listener */
	int fd;				/* connected to the upstream */
	uint64_t last;			/* ms of the last datagram */
	unsigned long long up, down;
};

static struct flow **flow_hash;
static struct reply **reply_hash;
static unsigned int hash_mask, nflows;
static struct list idle = { &idle, &idle };
static uint64_t hash_seed;
static unsigned char dgram[UDP_MAX];
static struct ratelimit rl_udp_max, rl_udp_fail, rl_udp_drop;

/* FNV-1a over the address bytes, seeded against chosen collisions */
static uint64_t hash_addr(uint64_t h, const union addr *a)
{
	const unsigned char *p;
	size_t i, n;

	if (a->sa.sa_family == AF_INET) {
		p = (const unsigned char *)&a->in.sin_addr;
		n = 4;
	} else {
		p = (const unsigned char *)&a->in6.sin6_addr;
		n = 16;
	}
	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	h = (h ^ (addr_port(a) & 0xff)) * 0x100000001b3ULL;
	return (h ^ (addr_port(a) >> 8)) * 0x100000001b3ULL;
}

/* Flows hash by (client, orig), reply sockets by orig (client NULL). */
static unsigned int bucket(const union addr *client, const union addr *orig)
{
	uint64_t h = hash_addr(client ? hash_addr(hash_seed, client) :
			       hash_seed, orig);

	return (h ^ (h >> 32)) & hash_mask;
}

static struct reply *reply_get(const union addr *orig)
{
	unsigned int b = bucket(NULL, orig);
	struct reply *r;
	int fd, err;

	for (r = reply_hash[b]; r; r = r->hnext)
		if (addr_eq(&r->addr, orig)) {
			r->refs++;
			return r;
		}
	fd = socket(orig->sa.sa_family,
		    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (set_transparent(fd, orig->sa.sa_family) ||
	    setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1) ||
	    (orig->sa.sa_family == AF_INET6 &&
	     setopt(fd, SOL_IPV6, IPV6_V6ONLY, 1)) ||
	    bind(fd, &orig->sa, addr_len(orig)))
		goto fail;
	r = calloc(1, sizeof(*r));
	if (!r) {
		errno = ENOMEM;
		goto fail;
	}
	r->ep.kind = EP_REPLY;
	r->addr = *orig;
	r->fd = fd;
	r->refs = 1;
	if (ep_add(fd, EPOLLIN, r)) {
		free(r);
		goto fail;
	}
	r->hnext = reply_hash[b];
	reply_hash[b] = r;
	return r;
fail:
	err = errno;
	close(fd);
	errno = err;
	return NULL;
}

static void reply_put(struct reply *r)
{
	struct reply **pp;

	if (!r || --r->refs)
		return;
	for (pp = &reply_hash[bucket(NULL, &r->addr)]; *pp; pp = &(*pp)->hnext)
		if (*pp == r) {
			*pp = r->hnext;
			break;
		}
	close(r->fd);
	free(r);
}

static void flow_touch(struct flow *f)
{
	f->last = now;
	list_del(&f->node);
	list_add_tail(&f->node, &idle);
}

/* Only called between rounds of events: no pending event names it. */
static void flow_free(struct flow *f)
{
	struct flow **pp;
	char a[ADDR_STRLEN];

	logc("udp end client=%s packets_up=%llu packets_down=%llu\n",
	     addr_str(&f->client, a), f->up, f->down);
	for (pp = &flow_hash[bucket(&f->client, &f->orig)]; *pp;
	     pp = &(*pp)->hnext)
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
	list_del(&f->node);
	close(f->fd);
	reply_put(f->reply);
	nflows--;
	free(f);
}

static struct flow *flow_new(const union addr *client, const union addr *orig)
{
	char a[4][ADDR_STRLEN];
	union addr local;
	socklen_t len = sizeof(local);
	struct flow *f;
	unsigned int b;
	int err;

	if (nflows >= cfg.max) {
		warn_limited(&rl_udp_max,
			     "udp: %u flows, the -m limit: datagrams of new flows dropped",
			     cfg.max);
		return NULL;
	}
	if (orig_is_self(orig)) {
		warn_limited(&rl_self,
			     "udp client=%s orig=%s: not diverted, dropped (it would send to itself)",
			     addr_str(client, a[0]), addr_str(orig, a[1]));
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->ep.kind = EP_FLOW;
	f->client = *client;
	f->orig = *orig;
	f->upstream = cfg.fixed ? cfg.upstream : *orig;
	f->fd = upstream_socket(SOCK_DGRAM, client, &f->upstream);
	if (f->fd < 0)
		goto fail;
	if (cfg.transparent) {
		f->reply = reply_get(orig);
		if (!f->reply)
			goto fail;
	}
	if (ep_add(f->fd, EPOLLIN, f))
		goto fail;

	b = bucket(client, orig);
	f->hnext = flow_hash[b];
	flow_hash[b] = f;
	f->last = now;
	list_add_tail(&f->node, &idle);
	nflows++;

	if (getsockname(f->fd, &local.sa, &len))
		memset(&local, 0, sizeof(local));
	logc("udp client=%s orig=%s upstream=%s->%s\n",
	     addr_str(client, a[0]), addr_str(orig, a[1]),
	     addr_str(&local, a[2]), addr_str(&f->upstream, a[3]));
	return f;
fail:
	err = errno;
	warn_limited(&rl_udp_fail, "udp client=%s orig=%s upstream=%s: %s",
		     addr_str(client, a[0]), addr_str(orig, a[1]),
		     addr_str(&f->upstream, a[2]), strerror(err));
	if (f->fd >= 0)
		close(f->fd);
	reply_put(f->reply);
	free(f);
	return NULL;
}

static void udp_forward(const union addr *client, const union addr *orig,
			size_t n)
{
	struct flow *f;

	for (f = flow_hash[bucket(client, orig)]; f; f = f->hnext)
		if (addr_eq(&f->client, client) && addr_eq(&f->orig, orig))
			break;
	if (!f) {
		f = flow_new(client, orig);
		if (!f)
			return;
	}
	/* an ICMP error from earlier fails one send: try once more */
	if (send(f->fd, dgram, n, 0) >= 0 ||
	    (errno == ECONNREFUSED && send(f->fd, dgram, n, 0) >= 0))
		f->up++;
	flow_touch(f);
}

/* Where a datagram went: IP(V6)_ORIGDSTADDR with -t, else IP(V6)_PKTINFO. */
static bool cmsg_orig(struct msghdr *msg, union addr *orig)
{
	struct in6_pktinfo pi6;
	struct in_pktinfo pi;
	struct cmsghdr *cm;

	memset(orig, 0, sizeof(*orig));
	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		int level = cm->cmsg_level, type = cm->cmsg_type;

		if (level == SOL_IP && type == IP_ORIGDSTADDR) {
			memcpy(&orig->in, CMSG_DATA(cm), sizeof(orig->in));
		} else if (level == SOL_IPV6 && type == IPV6_ORIGDSTADDR) {
			memcpy(&orig->in6, CMSG_DATA(cm), sizeof(orig->in6));
		} else if (level == SOL_IP && type == IP_PKTINFO) {
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			orig->in.sin_family = AF_INET;
			orig->in.sin_addr = pi.ipi_addr;
			addr_set_port(orig, addr_port(&cfg.listen));
		} else if (level == SOL_IPV6 && type == IPV6_PKTINFO) {
			memcpy(&pi6, CMSG_DATA(cm), sizeof(pi6));
			orig->in6.sin6_family = AF_INET6;
			orig->in6.sin6_addr = pi6.ipi6_addr;
			if (IN6_IS_ADDR_LINKLOCAL(&pi6.ipi6_addr))
				orig->in6.sin6_scope_id = pi6.ipi6_ifindex;
			addr_set_port(orig, addr_port(&cfg.listen));
		} else {
			continue;
		}
		addr_unmap(orig);
		return true;
	}
	return false;
}

/* Datagrams from clients: on the listener, or on a reply socket @r. */
static void udp_rx(int fd, struct reply *r)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct sockaddr_in6)) +
			 CMSG_SPACE(sizeof(struct in6_pktinfo)) +
			 CMSG_SPACE(sizeof(struct in_pktinfo)) +
			 CMSG_SPACE(sizeof(struct sockaddr_in))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = dgram, .iov_len = sizeof(dgram) };
	union addr client, orig;
	struct msghdr msg;
	ssize_t n;
	int i;

	for (i = 0; i < BATCH && !stopping; i++) {
		memset(&msg, 0, sizeof(msg));
		msg.msg_name = &client;
		msg.msg_namelen = sizeof(client);
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		n = recvmsg(fd, &msg, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;		/* EAGAIN, or an ICMP error: ignored */
		}
		addr_unmap(&client);
		if (r) {
			orig = r->addr;
		} else if (!cmsg_orig(&msg, &orig)) {
			if (cfg.transparent) {
				warn_limited(&rl_udp_drop,
					     "udp: datagram without original destination dropped");
				continue;
			}
			orig = cfg.listen;
		}
		udp_forward(&client, &orig, n);
	}
}

/*
 * To the client, from the original destination: through the reply
 * socket bound to it (-t), or through the listener with the address
 * the client used as source (IP_PKTINFO/IPV6_PKTINFO).
 */
static int send_to_client(struct flow *f, size_t n)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = dgram, .iov_len = n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	int family = cfg.listen.sa.sa_family;
	struct in6_pktinfo pi6 = { 0 };
	struct in_pktinfo pi = { 0 };
	union addr to, from;
	struct cmsghdr *cm;

	if (f->reply)
		return sendto(f->reply->fd, dgram, n, 0, &f->client.sa,
			      addr_len(&f->client));

	addr_map(&to, &f->client, family);
	msg.msg_name = &to;
	msg.msg_namelen = addr_len(&to);
	if (addr_is_any(&f->orig))
		return sendmsg(lfd, &msg, 0);
	memset(&cbuf, 0, sizeof(cbuf));
	msg.msg_control = cbuf.buf;
	cm = (struct cmsghdr *)cbuf.buf;
	addr_map(&from, &f->orig, family);
	if (family == AF_INET6) {
		pi6.ipi6_addr = from.in6.sin6_addr;
		pi6.ipi6_ifindex = from.in6.sin6_scope_id;
		cm->cmsg_level = SOL_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi6));
		memcpy(CMSG_DATA(cm), &pi6, sizeof(pi6));
	} else {
		pi.ipi_spec_dst = from.in.sin_addr;
		cm->cmsg_level = SOL_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	}
	msg.msg_controllen = CMSG_SPACE(cm->cmsg_len - CMSG_LEN(0));
	return sendmsg(lfd, &msg, 0);
}

/* Replies from the upstream. */
static void flow_rx(struct flow *f)
{
	ssize_t n;
	int i;

	for (i = 0; i < BATCH && !stopping; i++) {
		n = recv(f->fd, dgram, sizeof(dgram), 0);
		if (n < 0) {
			if (errno == EINTR || errno == ECONNREFUSED)
				continue;
			break;
		}
		if (send_to_client(f, n) >= 0)
			f->down++;
		flow_touch(f);
	}
}

static void flows_expire(void)
{
	struct flow *f;

	while (!list_empty(&idle)) {
		f = list_first(&idle, struct flow, node);
		if (f->last + (uint64_t)cfg.idle * 1000 > now)
			break;
		flow_free(f);
	}
}

/* --- Privileges --- */

/* capget(SYS_capget) or capset(SYS_capset) of the permitted set */
static int caps(long nr, uint64_t *set)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2] = {
		{ .effective = *set, .permitted = *set },
		{ .effective = *set >> 32, .permitted = *set >> 32 },
	};

	if (syscall(nr, &h, d))
		return -1;
	*set = d[0].permitted | (uint64_t)d[1].permitted << 32;
	return 0;
}

/*
 * Whether a later bind() may need CAP_NET_BIND_SERVICE: reply sockets
 * bind to original destinations (UDP -t), transparent upstream sockets
 * to client ports (-T); and for -l, a port below 1024.
 */
static bool need_bind_service(void)
{
	return addr_port(&cfg.listen) < 1024 || cfg.up_transparent ||
	       (cfg.udp && cfg.transparent);
}

/*
 * Keeps CAP_NET_ADMIN (transparent upstream and reply sockets are made
 * later) and, where needed, CAP_NET_BIND_SERVICE: in the permitted and
 * effective sets and in the bounding set; the rest goes.  With -U the
 * user and groups change first, PR_SET_KEEPCAPS carrying the kept
 * capabilities over setuid().
 */
static void drop_privileges(void)
{
	uint64_t keep = 1ULL << CAP_NET_ADMIN, perm = 0;
	int cap;

	if (need_bind_service())
		keep |= 1ULL << CAP_NET_BIND_SERVICE;
	if (caps(SYS_capget, &perm))
		die(1, "capget: %s", strerror(errno));
	keep &= perm;

	/* EINVAL: past the kernel's last capability */
	for (cap = 0; cap < 64 && (perm & (1ULL << CAP_SETPCAP)); cap++)
		if (!(keep & (1ULL << cap)) &&
		    prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL)
			die(1, "PR_CAPBSET_DROP: %s", strerror(errno));
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);

	if (cfg.user) {
		if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
			die(1, "PR_SET_KEEPCAPS: %s", strerror(errno));
		if (setgroups(1, &cfg.gid))
			die(1, "setgroups: %s", strerror(errno));
		if (setresgid(cfg.gid, cfg.gid, cfg.gid))
			die(1, "setgid %u: %s", (unsigned int)cfg.gid,
			    strerror(errno));
		if (setresuid(cfg.uid, cfg.uid, cfg.uid))
			die(1, "setuid %u: %s", (unsigned int)cfg.uid,
			    strerror(errno));
	}
	if (caps(SYS_capset, &keep))
		die(1, "capset: %s", strerror(errno));
	if (cfg.user)
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

/* Transparent sockets made from now on must still be allowed. */
static void check_transparent_allowed(void)
{
	int family = cfg.fixed ? cfg.upstream.sa.sa_family :
		     cfg.listen.sa.sa_family;
	int fd;

	if (!cfg.up_transparent && !(cfg.udp && cfg.transparent))
		return;
	fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(1, "socket: %s", strerror(errno));
	if (set_transparent(fd, family))
		die(1, "transparent sockets not allowed (CAP_NET_ADMIN): %s",
		    strerror(errno));
	close(fd);
}

/* Room for both sockets and both pipes of every connection. */
static void raise_fd_limit(void)
{
	rlim_t need = (rlim_t)cfg.max * 6 + 64;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need) {
		struct rlimit more = { need, need };

		if (!setrlimit(RLIMIT_NOFILE, &more))
			return;
		need = rl.rlim_max;
	}
	rl.rlim_cur = need;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* --- Setup, main loop, teardown --- */

static void listener_open(void)
{
	int family = cfg.listen.sa.sa_family;
	char a[ADDR_STRLEN];

	addr_str(&cfg.listen, a);
	lfd = socket(family, (cfg.udp ? SOCK_DGRAM : SOCK_STREAM) |
			     SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die(1, "socket: %s", strerror(errno));
	if (setopt(lfd, SOL_SOCKET, SO_REUSEADDR, 1))
		die(1, "SO_REUSEADDR: %s", strerror(errno));
	if (family == AF_INET6 &&
	    setopt(lfd, SOL_IPV6, IPV6_V6ONLY, !cfg.dual))
		die(1, "IPV6_V6ONLY: %s", strerror(errno));
	if (cfg.transparent && set_transparent(lfd, family))
		die(1, "%s: IP_TRANSPARENT: %s", a, strerror(errno));
	if (cfg.udp) {
		/* on [::] IPv4 datagrams report IP_ORIGDSTADDR/IP_PKTINFO */
		bool v4 = family == AF_INET || cfg.dual;
		bool v6 = family == AF_INET6;
		int o4 = cfg.transparent ? IP_RECVORIGDSTADDR : IP_PKTINFO;
		int o6 = cfg.transparent ? IPV6_RECVORIGDSTADDR :
			 IPV6_RECVPKTINFO;

		if ((v4 && setopt(lfd, SOL_IP, o4, 1)) ||
		    (v6 && setopt(lfd, SOL_IPV6, o6, 1)))
			die(1, "%s: %s: %s", a, cfg.transparent ?
			    "IP_RECVORIGDSTADDR" : "IP_PKTINFO",
			    strerror(errno));
	}
	if (bind(lfd, &cfg.listen.sa, addr_len(&cfg.listen)))
		die(1, "bind %s: %s", a, strerror(errno));
	if (!cfg.udp && listen(lfd, SOMAXCONN))
		die(1, "listen %s: %s", a, strerror(errno));
}

static void setup(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned int buckets = 64;
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL))
		die(1, "sigprocmask: %s", strerror(errno));
	sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0)
		die(1, "signalfd: %s", strerror(errno));
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die(1, "epoll_create1: %s", strerror(errno));

	raise_fd_limit();
	listener_open();

	ev.data.ptr = &signal_ep;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, sigfd, &ev))
		die(1, "epoll_ctl: %s", strerror(errno));
	ev.data.ptr = &listener_ep;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev))
		die(1, "epoll_ctl: %s", strerror(errno));

	if (cfg.udp) {
		while (buckets < cfg.max && buckets < (1U << 20))
			buckets <<= 1;
		hash_mask = buckets - 1;
		flow_hash = calloc(buckets, sizeof(*flow_hash));
		reply_hash = calloc(buckets, sizeof(*reply_hash));
		if (!flow_hash || !reply_hash)
			die(1, "out of memory");
		if (getrandom(&hash_seed, sizeof(hash_seed), GRND_NONBLOCK) !=
		    sizeof(hash_seed))
			hash_seed = mono_ms() ^ getpid();
		hash_seed ^= 0xcbf29ce484222325ULL;
	}
}

static int loop_timeout(void)
{
	int64_t t = -1, d;

	if (again)
		return 0;
	if (!list_empty(&idle)) {
		d = (int64_t)(list_first(&idle, struct flow, node)->last +
			      (uint64_t)cfg.idle * 1000) - (int64_t)now;
		t = d > 0 ? d : 0;
	}
	if (listener_paused) {
		d = (int64_t)listener_paused - (int64_t)now;
		d = d > 0 ? d : 0;
		if (t < 0 || d < t)
			t = d;
	}
	return t > INT_MAX ? INT_MAX : (int)t;
}

static void run(void)
{
	struct epoll_event evs[256];
	struct conn *c, *q;
	int i, n;

	while (!stopping) {
		n = epoll_wait(epfd, evs, 256, loop_timeout());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(1, "epoll_wait: %s", strerror(errno));
		}
		now = mono_ms();
		for (i = 0; i < n && !stopping; i++) {
			struct ep *ep = evs[i].data.ptr;

			switch (ep->kind) {
			case EP_SIGNAL:
				stopping = true;
				break;
			case EP_LISTENER:
				if (cfg.udp)
					udp_rx(lfd, NULL);
				else
					tcp_accept();
				break;
			case EP_TCP:
				conn_event((struct side *)ep, evs[i].events);
				break;
			case EP_FLOW:
				flow_rx((struct flow *)ep);
				break;
			case EP_REPLY:
				udp_rx(((struct reply *)ep)->fd,
				       (struct reply *)ep);
				break;
			}
		}
		/* connections that used up their turn */
		q = again;
		again = NULL;
		while (q) {
			c = q;
			q = q->qnext;
			c->queued = false;
			if (!c->dead && !stopping)
				conn_pump(c);
		}
		free_dead_conns();
		if (listener_paused && now >= listener_paused)
			listener_resume();
		if (cfg.udp)
			flows_expire();
	}
}

/* SIGTERM/SIGINT: everything open is reset and freed. */
static void teardown(void)
{
	while (!list_empty(&conns))
		conn_end(list_first(&conns, struct conn, node), ECANCELED);
	free_dead_conns();
	/* the last flow of an original destination closes its reply socket */
	while (!list_empty(&idle))
		flow_free(list_first(&idle, struct flow, node));
	free(flow_hash);
	free(reply_hash);
	pool_drain();
	close(lfd);
	close(sigfd);
	close(epfd);
	fflush(stdout);
}

/* --- Options --- */

static void usage(FILE *f)
{
	static const char text[] =
	"Usage: " PROG " [options] -l [ADDR]:PORT\n"
	"Relays TCP connections or UDP flows that nftables \"tproxy\" diverted to it.\n"
	"\n"
	"  -l [ADDR]:PORT  listen address: [::]:PORT or :PORT dual-stack,\n"
	"                  0.0.0.0:PORT IPv4 only, [2001:db8::1]:PORT IPv6\n"
	"  -u              UDP instead of TCP\n"
	"  -t              transparent listener (IP_TRANSPARENT); learns the\n"
	"                  original destination of each connection/datagram\n"
	"  -T              transparent upstream: connect from the client's address\n"
	"  -d ADDR:PORT    fixed upstream (default: the original destination, -t)\n"
	"  -m N            max concurrent TCP connections / UDP flows (4096)\n"
	"  -i SEC          UDP flow idle timeout (30)\n"
	"  -b BYTES        per-direction pipe size bound (65536)\n"
	"  -U USER         run as USER, keeping CAP_NET_ADMIN (+NET_BIND_SERVICE)\n"
	"  -q              no per-connection log lines\n"
	"  -h, --help      this help\n";

	fputs(text, f);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap, "\nTry '" PROG " --help'.\n");
	va_end(ap);
	exit(2);
}

static unsigned int parse_uint(const char *opt, const char *s,
			       unsigned long min, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v < min || v > max)
		usage_error("%s: bad number '%s' (%lu..%lu)", opt, s, min, max);
	return v;
}

static void parse_options(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_listen = false, dual;
	struct passwd *pw;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":l:utTd:m:i:b:U:qh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'l':
			if (addr_parse(optarg, &cfg.listen, true, &cfg.dual))
				usage_error("-l: bad address '%s'", optarg);
			have_listen = true;
			break;
		case 'u':
			cfg.udp = true;
			break;
		case 't':
			cfg.transparent = true;
			break;
		case 'T':
			cfg.up_transparent = true;
			break;
		case 'd':
			if (addr_parse(optarg, &cfg.upstream, false, &dual))
				usage_error("-d: bad address '%s'", optarg);
			cfg.fixed = true;
			break;
		case 'm':
			cfg.max = parse_uint("-m", optarg, 1, 1 << 20);
			break;
		case 'i':
			cfg.idle = parse_uint("-i", optarg, 1, 86400 * 365);
			break;
		case 'b':
			cfg.bufsize = parse_uint("-b", optarg, 1, 1 << 30);
			break;
		case 'U':
			errno = 0;
			pw = getpwnam(optarg);
			if (!pw)
				usage_error("-U: unknown user '%s'", optarg);
			cfg.user = optarg;
			cfg.uid = pw->pw_uid;
			cfg.gid = pw->pw_gid;
			break;
		case 'q':
			cfg.quiet = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error("-%c: missing argument", optopt);
		default:
			if (optopt)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!have_listen)
		usage_error("-l [ADDR]:PORT is required");
	if (!cfg.fixed && !cfg.transparent)
		usage_error("without -d the upstream is the original destination: -t is required");
	if (cfg.up_transparent && cfg.fixed && !cfg.dual &&
	    cfg.upstream.sa.sa_family != cfg.listen.sa.sa_family)
		usage_error("-T: -d and -l must be of the same address family");
}

int main(int argc, char **argv)
{
	char a[2][ADDR_STRLEN];

	parse_options(argc, argv);
	setvbuf(stdout, NULL, _IOLBF, 0);
	setup();
	drop_privileges();
	check_transparent_allowed();
	now = mono_ms();

	printf("listening %s %s transparent=%d upstream_transparent=%d upstream=%s\n",
	       cfg.udp ? "udp" : "tcp", addr_str(&cfg.listen, a[0]),
	       cfg.transparent, cfg.up_transparent,
	       cfg.fixed ? addr_str(&cfg.upstream, a[1]) : "orig");
	run();
	teardown();
	return 0;
}
