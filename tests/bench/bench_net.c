/*
 * bench_net: where the connections go and where they come from.
 *
 * The target is an IPv4 or IPv6 address and port, or a unix socket path.
 * With --sources N, connection id goes out from 127.0.0.(2 + id % N): one
 * source address has only the ephemeral ports (net.ipv4.ip_local_port_range)
 * to reach one destination with, some 28,000.  IP_BIND_ADDRESS_NO_PORT
 * leaves the choice of the port to connect(2), which may then reuse a port
 * for another destination or one in TIME_WAIT.
 *
 * Every connect is nonblocking; net_connect_all() establishes a set of
 * connections with at most CONNECT_INFLIGHT connects in progress, and with
 * --tls their handshakes too.  Modes read, write and close through
 * net_read, net_write and net_close, which take the TLS session of a
 * descriptor that has one (bench_tls.c).  With
 * --udp a "connection" is a connected UDP (or unix datagram) socket: it is
 * established at once, and each record goes in a datagram of its own.
 */
#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

static struct sockaddr_storage	 target;
static socklen_t		 targetlen;
static unsigned			 nsources;
static int			 socktype;	/* SOCK_DGRAM with --udp */

ssize_t
net_write(int fd, const void *buf, size_t n)
{
	return tls_has(fd) ? tls_write(fd, buf, n) : write(fd, buf, n);
}

ssize_t
net_read(int fd, void *buf, size_t n)
{
	return tls_has(fd) ? tls_read(fd, buf, n) : read(fd, buf, n);
}

/* Our sending side ends: close_notify first over TLS, then FIN. */
void
net_shutdown(int fd)
{
	tls_shutdown(fd);
	shutdown(fd, SHUT_WR);
}

/*
 * Close fd.  A TLS session says goodbye first (close_notify), and what the
 * server sent that nobody read (its session tickets) is taken: closing with
 * unread bytes would reset the connection and lose what the server had
 * not read yet.
 */
void
net_close(int fd)
{
	char buf[4096];

	if (tls_has(fd)) {
		tls_shutdown(fd);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		tls_forget(fd);
	}
	close(fd);
}

int
net_init(const struct opts *o)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&target;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&target;
	struct sockaddr_un *sun = (struct sockaddr_un *)&target;

	memset(&target, 0, sizeof(target));
	nsources = o->sources;
	socktype = o->udp ? SOCK_DGRAM : SOCK_STREAM;
	if (o->unix_path) {
		if (strlen(o->unix_path) >= sizeof(sun->sun_path)) {
			warnx("--unix %s: path too long", o->unix_path);
			return -1;
		}
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, o->unix_path);
		targetlen = sizeof(*sun);
	} else if (inet_pton(AF_INET, o->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(o->port);
		targetlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, o->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(o->port);
		targetlen = sizeof(*sin6);
	} else {
		warnx("--host %s: not an IPv4 or IPv6 address", o->host);
		return -1;
	}
	if (nsources && target.ss_family != AF_INET) {
		warnx("--sources needs an IPv4 --host");
		return -1;
	}
	return 0;
}

static int
bind_source(int fd, uint32_t id)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int one = 1;

	sin.sin_addr.s_addr = htonl(0x7f000002 + id % nsources);
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	return bind(fd, (struct sockaddr *)&sin, sizeof(sin));
}

/*
 * A nonblocking socket for connection id, its connect begun: the
 * descriptor, or -1 (errno) when the connect failed at once.
 */
int
net_connect(uint32_t id)
{
	int fd, e;

	if ((fd = socket(target.ss_family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if ((nsources && bind_source(fd, id) == -1) ||
	    (connect(fd, (struct sockaddr *)&target, targetlen) == -1 && errno != EINPROGRESS)) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* After the socket became writable: 0 when connected, else -1 (errno). */
int
net_finish(int fd)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		return -1;
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

void
net_connect_error(struct result *r, int e)
{
	r->connect_errors++;
	r->refused += e == ECONNREFUSED;
}

/*
 * The server's side of a connection that should receive nothing became
 * readable: 1 when the server closed it (counted as a close or a reset),
 * 0 when it was data, which is read and dropped.
 */
int
net_closed(int fd, struct result *r)
{
	char buf[4096];
	ssize_t n = net_read(fd, buf, sizeof(buf));

	if (n > 0 || (n == -1 && (errno == EAGAIN || errno == EINTR)))
		return 0;
	if (n == -1 && errno == ECONNRESET)
		r->resets++;
	else
		r->server_closed++;
	return 1;
}

/*
 * Slot k's connect (and TLS handshake) went a step further: 1 when it is
 * established or failed (then out of the epoll set; fds[k] -1 on failure),
 * 0 while it goes on.
 */
static int
finish_one(struct sender *s, int ep, int *fds, size_t k)
{
	struct epoll_event ev = { .data.u64 = k };
	int rc = 1;

	if (tls_has(fds[k]) && (rc = tls_step(fds[k], &s->res)) == 0) {
		ev.events = tls_events(fds[k]);
		epoll_ctl(ep, EPOLL_CTL_MOD, fds[k], &ev);
		return 0;
	}
	epoll_ctl(ep, EPOLL_CTL_DEL, fds[k], NULL);
	if (rc == 1 && net_finish(fds[k]) == 0) {
		s->res.established++;
		return 1;
	}
	net_connect_error(&s->res, errno);
	net_close(fds[k]);
	fds[k] = -1;
	return 1;
}

/*
 * Open the sender's connection slots 0 .. n-1 (ids from sender_id) into
 * fds, -1 for each that failed.  Connects still in progress at the
 * deadline, and the ones not begun, count as failed (timed out).
 * Returns how many are established.
 */
size_t
net_connect_all(struct sender *s, int *fds, size_t n, double deadline)
{
	struct epoll_event ev = { .events = EPOLLOUT }, evs[64];
	size_t next = 0, inflight = 0, ok = 0;
	char *busy;
	int ep, nev;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1 || (busy = calloc(n, 1)) == NULL)
		err(EX_FAILED, "connect");
	while ((next < n || inflight > 0) && !stopping && now() < deadline) {
		for (; next < n && inflight < CONNECT_INFLIGHT; next++) {
			if ((fds[next] = net_connect(sender_id(s, next))) == -1) {
				net_connect_error(&s->res, errno);
				continue;
			}
			ev.data.u64 = next;
			if (tls_on())
				tls_start(fds[next]);
			epoll_ctl(ep, EPOLL_CTL_ADD, fds[next], &ev);
			busy[next] = 1;
			inflight++;
		}
		nev = inflight ? epoll_wait(ep, evs, 64, 100) : 0;
		for (int i = 0; i < nev; i++) {
			if (finish_one(s, ep, fds, evs[i].data.u64) == 0)
				continue;
			busy[evs[i].data.u64] = 0;
			inflight--;
		}
	}
	for (size_t k = 0; k < n; k++) {
		if (k >= next || busy[k]) {
			if (k < next)
				net_close(fds[k]);
			fds[k] = -1;
			net_connect_error(&s->res, ETIMEDOUT);
		}
		ok += fds[k] >= 0;
	}
	free(busy);
	close(ep);
	return ok;
}

/* Arm timerfd fd to expire at t (CLOCK_MONOTONIC seconds). */
static int
timer_at(int fd, double t)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };

	if (t <= 0)
		t = 1e-9;
	its.it_value.tv_sec = (time_t)t;
	its.it_value.tv_nsec = (long)((t - (time_t)t) * 1e9);
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;
	return timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/*
 * A sender's wake-ups.  Setting a timer costs a system call and, in a
 * virtual machine, a trip to the hypervisor: a sender that woke for each
 * record due at 30,000 records/s spent most of a core on its timer alone,
 * taken from the server it measures.  So a sender wakes at most once a
 * --tick and then does everything due; a record waits at most one tick in
 * the sender, and as latency is measured from the due time, that wait is
 * counted, never hidden.  A timer already set early enough is left alone.
 */
int
waker_init(struct waker *w, double tick)
{
	w->armed = 0;
	w->tick = tick;
	w->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	return w->fd;
}

/* Wake at due, or one tick from now if that is later. */
void
waker_at(struct waker *w, double due, double now)
{
	if (due < now + w->tick)
		due = now + w->tick;
	if (w->armed > now && w->armed <= due)
		return;
	if (timer_at(w->fd, due) == 0)
		w->armed = due;
}

/* The timer's descriptor was readable: it went off. */
void
waker_fired(struct waker *w)
{
	uint64_t ticks;

	if (read(w->fd, &ticks, sizeof(ticks)) == -1 && errno != EAGAIN)
		warn("timerfd");
	w->armed = 0;
}
