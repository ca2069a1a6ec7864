/*
 * listeners: bind, keep across reloads, close when unused.
 *
 * Sockets can also be handed over at start instead of bound: by systemd
 * (socket activation) or by the master this one replaces (binary upgrade).
 * Such a socket serves the configured listener with the same address.
 */
#include <errno.h>
#include <event2/util.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "listeners.h"
#include "log.h"

struct lsock {
	struct addr	 addr;
	char		*text;
	int		 mode;
	int		 backlog;
	long		 recv_buffer;	/* datagram sockets */
	struct sock_perm sp;		/* unix sockets: owner, mode (-1: as bound; no names) */
	uint64_t	 drops_logged;	/* UDP: the kernel's count of drops, as last logged */
	int		 drops_watched;
	int		 id;		/* in the connection table; unique among live sockets */
	int		 fresh;		/* bound by the lsn_open() in progress */
	int		 inherited;	/* a socket came from systemd or an old master */
	int		 nfds;
	int		 fds[CFG_MAX_WORKERS];
	struct lsock	*next;
};

static struct lsock *socks;

/* Listening sockets handed over at start, until a listener takes them. */
static struct inherited {
	int		 fd;
	int		 type;		/* SOCK_STREAM or SOCK_DGRAM */
	struct sockaddr_storage ss;
	socklen_t	 len;
} *inh;
static int ninh;

static struct lsock *
find(const struct addr *a, int mode)
{
	for (struct lsock *ls = socks; ls; ls = ls->next)
		if (ls->mode == mode && addr_equal(&ls->addr, a))
			return ls;
	return NULL;
}

/*
 * A unix socket path left by a dead process is removed; a live one is an
 * error, and so is anything that is not a socket, a symbolic link included
 * (lstat: whoever can write the directory must not make root connect to,
 * or remove, something else).  text names it in messages.
 */
int
lsn_clear_unix_path(const struct addr *a, const char *text)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->ss;
	struct stat st;
	int fd, stale;

	if (lstat(sun->sun_path, &st) == -1)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		log_warnx("listen %s: the path exists and is not a socket%s", text,
		    S_ISLNK(st.st_mode) ? " (a symbolic link)" : "");
		return -1;
	}
	if ((fd = socket(AF_UNIX, a->type | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	/* Only a refusal proves it stale: a socket of the other type answers EPROTOTYPE. */
	stale = connect(fd, (const struct sockaddr *)sun, a->len) == -1 && errno == ECONNREFUSED;
	close(fd);
	if (!stale) {
		log_warnx("listen %s: another process is listening on this socket", text);
		return -1;
	}
	return unlink(sun->sun_path);
}

/*
 * A datagram socket's receive buffer: forced past net.core.rmem_max when
 * the master may (root), else as large as the kernel allows, and said so.
 */
static void
set_recv_buffer(int fd, const struct lsock *ls)
{
	int want = (int)ls->recv_buffer, got = 0;
	socklen_t len = sizeof(got);

	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) == 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want)) == -1) {
		log_warn("listen %s: SO_RCVBUF", ls->text);
		return;
	}
	/* The kernel doubles what it grants, for its own bookkeeping. */
	if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == 0 && got / 2 < want)
		log_notice("listen %s: recv_buffer is %d bytes, not %d: net.core.rmem_max caps "
		    "it for a master that is not root", ls->text, got / 2, want);
}

/* socket_user and socket_group, given to the file and never through a symbolic link. */
static int
set_owner(const char *path, const char *what, const char *text, const struct sock_perm *sp)
{
	if ((sp->uid != -1 || sp->gid != -1) &&
	    fchownat(AT_FDCWD, path, (uid_t)sp->uid, (gid_t)sp->gid, AT_SYMLINK_NOFOLLOW) == -1) {
		log_warn("%s %s: cannot give the socket its socket_user and socket_group", what,
		    text);
		return -1;
	}
	return 0;
}

/*
 * A unix socket is created with its mode (bind(2) applies the umask, so no
 * one can connect before the mode is right; none set: the umask as it is)
 * and then given its owner, without following a symbolic link planted in
 * its place.  what and text name it in the log ("listen", "/run/x.sock"):
 * a listener's or the stats endpoint's.
 */
int
lsn_bind_unix(int fd, const struct addr *a, const char *what, const char *text,
    const struct sock_perm *sp)
{
	const char *path = ((const struct sockaddr_un *)&a->ss)->sun_path;
	mode_t old = sp->perm == -1 ? 0 : umask(~(mode_t)sp->perm & 0777);
	int rc = bind(fd, (const struct sockaddr *)&a->ss, a->len);

	if (sp->perm != -1)
		umask(old);
	if (rc == -1)
		return -1;
	if (set_owner(path, what, text, sp) == -1) {
		unlink(path);
		return -1;
	}
	return 0;
}

/* A reload changed a kept unix socket's owner or mode (from *now to *sp): the file gets them. */
void
lsn_update_unix(const struct addr *a, const char *what, const char *text,
    struct sock_perm *now, const struct sock_perm *sp)
{
	const char *path = ((const struct sockaddr_un *)&a->ss)->sun_path;

	if (now->uid == sp->uid && now->gid == sp->gid && now->perm == sp->perm)
		return;
	now->uid = sp->uid;
	now->gid = sp->gid;
	now->perm = sp->perm;
	set_owner(path, what, text, now);
	if (now->perm != -1 && fchmodat(AT_FDCWD, path, (mode_t)now->perm, AT_SYMLINK_NOFOLLOW) == -1)
		log_warn("%s %s: cannot give the socket its socket_mode", what, text);
}

/* A datagram socket's receive buffer, and on a unix one the senders' pid, uid and gid. */
static int
dgram_options(int fd, const struct lsock *ls)
{
	int on = 1;

	set_recv_buffer(fd, ls);
	if (ls->addr.ss.ss_family == AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) == -1) {
		log_warn("listen %s: SO_PASSCRED", ls->text);
		return -1;
	}
	return 0;
}

static int
bind_one(const struct lsock *ls)
{
	int fam = ls->addr.ss.ss_family, type = ls->addr.type, on = 1, fd;

	if (fam == AF_UNIX && lsn_clear_unix_path(&ls->addr, ls->text) == -1)
		return -1;
	if ((fd = socket(fam, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("listen %s: socket", ls->text);
		return -1;
	}
	if (fam != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		goto fail;
	if (fam == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
		goto fail;
	if (ls->mode == ACCEPT_REUSEPORT &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) == -1)
		goto fail;
	if (type == SOCK_DGRAM && dgram_options(fd, ls) == -1)
		goto fail;
	if (fam == AF_UNIX ? lsn_bind_unix(fd, &ls->addr, "listen", ls->text, &ls->sp) == -1 :
	    bind(fd, (const struct sockaddr *)&ls->addr.ss, ls->addr.len) == -1)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, ls->backlog) == -1)
		goto fail;
	return fd;
fail:
	log_warn("listen %s: cannot bind", ls->text);
	close(fd);
	return -1;
}

/*
 * Close a socket's descriptors; with unlink_path, also remove its unix
 * socket file, but only if this process bound it: a failed bind must not
 * remove the live socket of another server.
 */
static void
free_sock(struct lsock *ls, int unlink_path)
{
	int bound = 0;

	for (int i = 0; i < ls->nfds; i++) {
		if (ls->fds[i] != -1) {
			close(ls->fds[i]);
			bound = 1;
		}
	}
	if (unlink_path && bound && !ls->inherited && ls->addr.ss.ss_family == AF_UNIX)
		unlink(((struct sockaddr_un *)&ls->addr.ss)->sun_path);
	free(ls->text);
	free(ls);
}

/* The lowest id no live socket uses (at most 2 x CFG_MAX_LISTENERS sockets live). */
static int
free_id(void)
{
	for (int id = 0;; id++) {
		struct lsock *ls = socks;

		while (ls && ls->id != id)
			ls = ls->next;
		if (ls == NULL)
			return id;
	}
}

static struct lsock *
new_sock(const struct listener_cfg *l)
{
	struct lsock *ls = calloc(1, sizeof(*ls));

	if (ls == NULL || (ls->text = strdup(l->listen.text)) == NULL)
		fatal("calloc");
	ls->id = free_id();
	ls->addr = l->listen.addr;
	ls->mode = l->accept_mode;
	ls->backlog = l->backlog;
	ls->recv_buffer = l->recv_buffer;
	ls->sp = (struct sock_perm){ NULL, NULL, NULL, l->sock.uid, l->sock.gid, l->sock.perm };
	ls->fresh = 1;
	for (int i = 0; i < CFG_MAX_WORKERS; i++)
		ls->fds[i] = -1;
	ls->next = socks;
	socks = ls;
	return ls;
}

/* Whether a socket of type bound to sa is the one a listener configured as a wants. */
static int
same_address(const struct addr *a, int type, const struct sockaddr_storage *sa)
{
	const struct sockaddr_storage *b = &a->ss;

	if (a->ss.ss_family != sa->ss_family || a->type != type)
		return 0;
	switch (sa->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *x = (const void *)b, *y = (const void *)sa;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *x = (const void *)b, *y = (const void *)sa;

		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	case AF_UNIX:
		return strcmp(((const struct sockaddr_un *)b)->sun_path,
		    ((const struct sockaddr_un *)sa)->sun_path) == 0;
	}
	return 0;
}

/*
 * Keep fd, a listening socket handed over at start, for the listener with
 * its address.  Returns -1 when fd is neither a listening stream socket nor
 * a bound datagram socket.
 */
int
lsn_inherit(int fd)
{
	struct inherited *p, *e;
	int on = 0, type = 0;
	socklen_t olen = sizeof(on), tlen = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == -1 ||
	    (type != SOCK_DGRAM && (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &olen) == -1 ||
	    !on))) {
		log_warnx("inherited descriptor %d is not a listening socket; closed", fd);
		close(fd);
		return -1;
	}
	if ((p = realloc(inh, (ninh + 1) * sizeof(*inh))) == NULL)
		fatal("realloc");
	inh = p;
	e = &inh[ninh];
	e->len = sizeof(e->ss);
	if (getsockname(fd, (struct sockaddr *)&e->ss, &e->len) == -1) {
		log_warn("inherited descriptor %d: getsockname", fd);
		close(fd);
		return -1;
	}
	evutil_make_socket_nonblocking(fd);
	evutil_make_socket_closeonexec(fd);
	e->fd = fd;
	e->type = type;
	ninh++;
	return 0;
}

/* An inherited socket bound to ls's address, taken from the list; -1 if none. */
static int
take_inherited(const struct lsock *ls)
{
	for (int i = 0; i < ninh; i++) {
		if (same_address(&ls->addr, inh[i].type, &inh[i].ss)) {
			int fd = inh[i].fd;

			/* in order: a reuseport listener's sockets keep their worker numbers */
			memmove(&inh[i], &inh[i + 1], (--ninh - i) * sizeof(*inh));
			log_info("listen %s: using the inherited socket (descriptor %d)", ls->text, fd);
			return fd;
		}
	}
	return -1;
}

/* After the first bind: inherited sockets that no listener wants are closed. */
void
lsn_inherit_done(void)
{
	char text[ADDR_STRLEN];

	for (int i = 0; i < ninh; i++) {
		log_warnx("inherited socket %s (descriptor %d) matches no listener; closed",
		    addr_format((struct sockaddr *)&inh[i].ss, inh[i].len, text, sizeof(text)),
		    inh[i].fd);
		close(inh[i].fd);
	}
	free(inh);
	inh = NULL;
	ninh = 0;
}

/*
 * Whether the workers share worker 0's socket: systemd hands over one UDP
 * socket, without SO_REUSEPORT, so no other can be bound beside it (any
 * worker may then read a datagram).  An old master's sockets have it.
 */
static int
share_inherited(const struct lsock *ls)
{
	int on = 0;
	socklen_t len = sizeof(on);

	if (!ls->inherited || ls->addr.type != SOCK_DGRAM || ls->fds[0] == -1)
		return 0;
	return getsockopt(ls->fds[0], SOL_SOCKET, SO_REUSEPORT, &on, &len) == 0 && !on;
}

/* Make sure the socket of worker number id exists. */
static int
ensure_fd(struct lsock *ls, int id)
{
	int slot = ls->mode == ACCEPT_REUSEPORT ? id : 0;

	if (ls->fds[slot] == -1 && (ls->fds[slot] = take_inherited(ls)) != -1) {
		ls->inherited = 1;
		if (ls->addr.type == SOCK_DGRAM)
			dgram_options(ls->fds[slot], ls);
	}
	if (ls->fds[slot] == -1 && share_inherited(ls) &&
	    (ls->fds[slot] = fcntl(ls->fds[0], F_DUPFD_CLOEXEC, 0)) == -1)
		log_warn("listen %s: F_DUPFD_CLOEXEC", ls->text);
	if (ls->fds[slot] == -1 && (ls->fds[slot] = bind_one(ls)) == -1)
		return -1;
	if (slot >= ls->nfds)
		ls->nfds = slot + 1;
	return ls->fds[slot];
}

/*
 * A changed backlog applies to a kept stream socket by calling listen()
 * again; a changed recv_buffer to a datagram socket at once; a unix
 * socket's owner and mode to its file.
 */
static void
update_options(struct lsock *ls, const struct listener_cfg *l)
{
	int dgram = ls->addr.type == SOCK_DGRAM;

	if (ls->addr.ss.ss_family == AF_UNIX)
		lsn_update_unix(&ls->addr, "listen", ls->text, &ls->sp, &l->sock);
	if (dgram ? ls->recv_buffer == l->recv_buffer : ls->backlog == l->backlog)
		return;
	ls->backlog = l->backlog;
	ls->recv_buffer = l->recv_buffer;
	for (int i = 0; i < ls->nfds; i++) {
		if (ls->fds[i] == -1)
			continue;
		if (dgram)
			set_recv_buffer(ls->fds[i], ls);
		else if (listen(ls->fds[i], ls->backlog) == -1)
			log_warn("listen %s: cannot change backlog", ls->text);
	}
}

static void
drop_fresh(void)
{
	struct lsock **pp = &socks;

	while (*pp) {
		struct lsock *ls = *pp;

		if (ls->fresh) {
			*pp = ls->next;
			free_sock(ls, 1);
		} else {
			pp = &ls->next;
		}
	}
}

/*
 * Bind every listener of cf for worker numbers 0..nworkers-1, keeping the
 * sockets that already exist.  On failure, what this call bound is closed
 * again and the running listeners are untouched.
 */
int
lsn_open(const struct config *cf, int nworkers)
{
	for (int i = 0; i < cf->nlisteners; i++) {
		const struct listener_cfg *l = &cf->listeners[i];
		struct lsock *ls = find(&l->listen.addr, l->accept_mode);

		if (ls == NULL)
			ls = new_sock(l);
		for (int id = 0; id < nworkers; id++) {
			if (ensure_fd(ls, id) == -1) {
				drop_fresh();
				return -1;
			}
		}
	}
	for (int i = 0; i < cf->nlisteners; i++) {
		const struct listener_cfg *l = &cf->listeners[i];
		struct lsock *ls = find(&l->listen.addr, l->accept_mode);

		ls->fresh = 0;
		update_options(ls, l);
	}
	return 0;
}

/* The listener's id in the connection table. */
int
lsn_id(const struct listener_cfg *l)
{
	struct lsock *ls = find(&l->listen.addr, l->accept_mode);

	return ls ? ls->id : -1;
}

/*
 * What the kernel dropped on a UDP socket because its receive buffer was
 * full, since it was bound (SO_MEMINFO); 0 for other sockets (unix
 * datagram senders wait instead).  Sockets shared by several workers (one
 * inherited socket) are counted once.
 */
static uint64_t
sock_drops(const struct lsock *ls)
{
	ino_t seen[CFG_MAX_WORKERS];
	uint32_t mem[SK_MEMINFO_VARS];
	socklen_t len;
	struct stat st;
	uint64_t sum = 0;
	int n = 0, known;

	if (ls->addr.type != SOCK_DGRAM || ls->addr.ss.ss_family == AF_UNIX)
		return 0;
	for (int i = 0; i < ls->nfds; i++) {
		if (ls->fds[i] == -1 || fstat(ls->fds[i], &st) == -1)
			continue;
		known = 0;
		for (int k = 0; k < n; k++)
			known |= seen[k] == st.st_ino;
		len = sizeof(mem);
		if (known || getsockopt(ls->fds[i], SOL_SOCKET, SO_MEMINFO, mem, &len) == -1 ||
		    len <= SK_MEMINFO_DROPS * sizeof(mem[0]))
			continue;
		seen[n++] = st.st_ino;
		sum += mem[SK_MEMINFO_DROPS];
	}
	return sum;
}

uint64_t
lsn_drops(const struct listener_cfg *l)
{
	const struct lsock *ls = find(&l->listen.addr, l->accept_mode);

	return ls ? sock_drops(ls) : 0;
}

/*
 * Called often: once a second, log what the kernel dropped on each UDP
 * socket since the last look, so that a loss is never silent.
 */
void
lsn_watch_drops(void)
{
	static long next_ms;
	long now = clock_ms();

	if (now < next_ms)
		return;
	next_ms = now + 1000;
	for (struct lsock *ls = socks; ls; ls = ls->next) {
		uint64_t d = sock_drops(ls);

		/* a socket handed over by an old master: its drops were that one's to log */
		if (d > ls->drops_logged && (ls->drops_watched || !ls->inherited))
			log_warnx("listen %s: the kernel dropped %llu datagrams in the last second: "
			    "the receive buffer was full (raise recv_buffer, or add workers)",
			    ls->text, (unsigned long long)(d - ls->drops_logged));
		ls->drops_logged = d;
		ls->drops_watched = 1;
	}
}

int
lsn_fd(const struct listener_cfg *l, int id)
{
	struct lsock *ls = find(&l->listen.addr, l->accept_mode);

	return ls ? ensure_fd(ls, id) : -1;
}

static int
named_by(const struct lsock *ls, const struct config *const *live, int nlive)
{
	for (int i = 0; i < nlive; i++)
		for (int j = 0; j < live[i]->nlisteners; j++)
			if (live[i]->listeners[j].accept_mode == ls->mode &&
			    addr_equal(&live[i]->listeners[j].listen.addr, &ls->addr))
				return 1;
	return 0;
}

/*
 * Close what nobody can use any more: sockets that no live config names,
 * and reuseport sockets of worker numbers beyond those alive.
 */
void
lsn_retire(const struct config *const *live, int nlive, int nworkers_live)
{
	struct lsock **pp = &socks;

	while (*pp) {
		struct lsock *ls = *pp;

		if (!named_by(ls, live, nlive)) {
			log_info("listen %s: closed, no longer configured", ls->text);
			*pp = ls->next;
			free_sock(ls, 1);
			continue;
		}
		if (ls->mode == ACCEPT_REUSEPORT) {
			for (int i = nworkers_live; i < ls->nfds; i++) {
				if (ls->fds[i] != -1) {
					close(ls->fds[i]);
					ls->fds[i] = -1;
				}
			}
			if (ls->nfds > nworkers_live)
				ls->nfds = nworkers_live;
		}
		pp = &ls->next;
	}
}

/* In a new worker: close every listening socket it does not serve. */
void
lsn_close_others(const int *keep, int nkeep)
{
	for (struct lsock *ls = socks; ls; ls = ls->next) {
		for (int i = 0; i < ls->nfds; i++) {
			int fd = ls->fds[i], kept = 0;

			for (int k = 0; k < nkeep; k++)
				kept |= keep[k] == fd;
			if (fd != -1 && !kept)
				close(fd);
		}
	}
}

/* Every listening socket, for a new binary: at most max, returns how many. */
int
lsn_all_fds(int *fds, int max)
{
	int n = 0;

	for (struct lsock *ls = socks; ls; ls = ls->next)
		for (int i = 0; i < ls->nfds; i++)
			if (ls->fds[i] != -1 && n < max)
				fds[n++] = ls->fds[i];
	return n;
}

void
lsn_close_all(int unlink_paths)
{
	while (socks) {
		struct lsock *ls = socks;

		socks = ls->next;
		free_sock(ls, unlink_paths);
	}
}
