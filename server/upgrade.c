/*
 * upgrade: replace the running binary without closing a listening socket,
 * as nginx does on SIGUSR2.
 *
 *   old master  USR2: the pid file is renamed PIDFILE.oldbin; a child execs
 *               the binary at the path this master was started from, with
 *               every listening socket in INGESTD_LISTEN_FDS and one end of
 *               a SOCK_SEQPACKET pair in INGESTD_UPGRADE_FD.
 *   new master  adopts the sockets (listeners.c) instead of binding them,
 *               starts its workers, and once they accept writes its pid file
 *               and sends "R" on the pair, with its workers' inboxes and the
 *               listener addresses they serve as plain streams.
 *   old master  logs the hand-over and keeps serving until told to QUIT
 *               (`ingestd -s upgrade` does it); its workers then hand their
 *               plain connections to the new master's (worker/conn/
 *               handover.c) and drain the rest; it leaves unix socket
 *               paths in place for the new master.  If the pair closes
 *               before "R" (the new binary failed), the pid file is renamed
 *               back and the old master goes on as if nothing happened.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel.h"
#include "fdmsg.h"
#include "filelock.h"
#include "listeners.h"
#include "log.h"
#include "metrics.h"
#include "pidfile.h"
#include "upgrade.h"

#define ENV_FDS		"INGESTD_LISTEN_FDS"
#define ENV_STATS	"INGESTD_STATS_FD"
#define ENV_PIPE	"INGESTD_UPGRADE_FD"
#define MAX_FDS		4096

static char		 exe[PATH_MAX];		/* the binary's path, read at start */
static char *const	*args;			/* the command line, for the new binary */
static struct event	*pipe_ev;
static pid_t		 child;
static int		 handed_over;		/* a new master accepts */
static int		 ready_fd = -1;		/* new master: the old one's pipe */
static int		 ntaken;		/* new master: sockets handed over */
static pid_t		 old_master;	/* new master: the one that started it, while it runs */

/* Old master: where its workers' connections go once it quits (from "R"). */
static struct {
	int		 inboxes[CHAN_MAX_INBOXES];
	int		 n;
	char		 listeners[CHAN_MSG_MAX];
	size_t		 len;
} successor;

/*
 * At start: where the binary lives (a package upgrade replaces that file;
 * /proc/self/exe would go on naming the old one), the command line, and,
 * when started by an upgrade, the sockets and the pipe of the old master.
 */
void
upgrade_init(char *const *argv)
{
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *fds = getenv(ENV_FDS), *pipe_fd = getenv(ENV_PIPE), *stats = getenv(ENV_STATS);

	exe[n > 0 ? n : 0] = '\0';
	args = argv;
	if (fds != NULL) {
		const char *p = fds;
		char *end;

		for (;;) {
			long fd = strtol(p, &end, 10);

			if (end == p)
				break;
			ntaken += lsn_inherit((int)fd) == 0;
			p = end + strspn(end, ";");
		}
	}
	if (stats != NULL)
		metrics_inherit(atoi(stats));
	if (pipe_fd != NULL) {
		ready_fd = atoi(pipe_fd);
		old_master = getppid();		/* before daemon_start forks */
	}
	unsetenv(ENV_FDS);
	unsetenv(ENV_STATS);
	unsetenv(ENV_PIPE);
}

/*
 * While two masters run, their workers may append to the same files, but
 * do not share the memory in which they coordinate cutting a partial line
 * back off a file (common/filelock.c): until the other master is gone,
 * each side's workers only blank such a line out.  The old master says so
 * from the USR2 on (and takes it back if the upgrade fails), the new one
 * from its start until the old one has exited (upgrade_watch).
 */
int
upgrade_shared_files(void)
{
	return old_master != 0;
}

/* New master, now and then: whether the old master has exited yet. */
void
upgrade_watch(void)
{
	if (old_master == 0 || kill(old_master, 0) == 0 || errno != ESRCH)
		return;
	log_info("binary upgrade: the old master (pid %ld) is gone", (long)old_master);
	old_master = 0;
	filelock_foreign(0);
}

/* New master: a pid file is written once the workers accept, then the old master is told. */
int
upgrade_pending_ready(void)
{
	return ready_fd != -1;
}

/*
 * Tell the old master: "R", with where its connections may go (inboxes of
 * our workers, the listener addresses they serve).  An old master of a
 * build before hand-overs gave a pipe: it hears "R" alone.
 */
void
upgrade_ready(const int *inboxes, int n, const void *listeners, size_t len)
{
	char msg[CHAN_MSG_MAX] = { 'R' };

	if (ready_fd == -1)
		return;
	log_notice("binary upgrade: accepting on the %d listening sockets of the old master",
	    ntaken);
	if (1 + len > sizeof(msg))
		len = 0;
	memcpy(msg + 1, listeners, len);
	if (pidfile_write() == -1 ||
	    (fdmsg_send(ready_fd, msg, 1 + len, inboxes, len ? n : 0) == -1 &&
	    (errno != ENOTSOCK || write(ready_fd, "R", 1) != 1)))
		log_warn("binary upgrade: cannot tell the old master");
	close(ready_fd);
	ready_fd = -1;
}

/* Old master: the new master's inboxes and listeners, once it accepts; their number. */
int
upgrade_successor(const int **inboxes, const void **listeners, size_t *len)
{
	*inboxes = successor.inboxes;
	*listeners = successor.listeners;
	*len = successor.len;
	return successor.n;
}

static void
forget_successor(void)
{
	while (successor.n > 0)
		close(successor.inboxes[--successor.n]);
	successor.len = 0;
}

/* In a new worker: the new master's inboxes are this master's to pass on. */
void
upgrade_close_in_child(void)
{
	forget_successor();
}

/* The pid file's own name, while ours is moved aside as NAME.oldbin. */
static void
current_name(char *buf, size_t size)
{
	const char *old = pidfile_path();

	snprintf(buf, size, "%.*s", (int)(strlen(old) - strlen(".oldbin")), old);
}

static void
give_up(const char *why)
{
	char path[PATH_MAX];

	log_error("binary upgrade failed: %s; this master (pid %ld) keeps serving", why,
	    (long)getpid());
	filelock_foreign(0);
	current_name(path, sizeof(path));
	pidfile_rename(path);
}

static void
on_pipe(evutil_socket_t fd, short what, void *arg)
{
	int truncated;
	ssize_t n;

	(void)what;
	(void)arg;
	forget_successor();
	n = fdmsg_recv(fd, successor.listeners, sizeof(successor.listeners), successor.inboxes,
	    &successor.n, &truncated);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n >= 1 && successor.listeners[0] == 'R') {
		char path[PATH_MAX];

		handed_over = 1;
		successor.len = (size_t)n - 1;
		memmove(successor.listeners, successor.listeners + 1, successor.len);
		current_name(path, sizeof(path));
		log_notice("binary upgrade: the new master (pid %ld) accepts; QUIT this one (pid "
		    "%ld) to finish, or stop the new one to go back", (long)pidfile_read(path),
		    (long)getpid());
	} else {
		forget_successor();
		give_up("the new master exited before its workers accepted");
	}
	event_free(pipe_ev);
	pipe_ev = NULL;
	close(fd);
}

/* The child's half: pass the sockets and exec the binary. */
static void __attribute__((noreturn))
exec_new(int wfd, const sigset_t *mask)
{
	int fds[MAX_FDS], n = lsn_all_fds(fds, MAX_FDS);
	char list[MAX_FDS * 8] = "", num[16];
	size_t len = 0;

	for (int i = 0; i < n; i++) {
		fcntl(fds[i], F_SETFD, 0);	/* survive exec */
		len += snprintf(list + len, sizeof(list) - len, "%s%d", i ? ";" : "", fds[i]);
	}
	setenv(ENV_FDS, list, 1);
	if ((n = metrics_fd()) != -1) {
		fcntl(n, F_SETFD, 0);
		snprintf(num, sizeof(num), "%d", n);
		setenv(ENV_STATS, num, 1);
	}
	fcntl(wfd, F_SETFD, 0);
	snprintf(num, sizeof(num), "%d", wfd);
	setenv(ENV_PIPE, num, 1);
	sigprocmask(SIG_SETMASK, mask, NULL);
	execv(exe, args);
	log_warn("binary upgrade: cannot execute %s", exe);
	_exit(127);
}

/* SIGUSR2 in the old master, whose loop is base. */
void
upgrade_start(struct event_base *base)
{
	char oldbin[PATH_MAX];
	sigset_t all, mask;
	int p[2];

	if (pipe_ev != NULL || handed_over) {
		log_warnx("SIGUSR2: a binary upgrade is already under way (new master pid %ld)",
		    (long)child);
		return;
	}
	if (exe[0] == '\0' || access(exe, X_OK) == -1) {
		log_warn("SIGUSR2: binary upgrade: cannot execute \"%s\"", exe);
		return;
	}
	snprintf(oldbin, sizeof(oldbin), "%s.oldbin", pidfile_path());
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) == -1) {
		log_warn("binary upgrade: socketpair");
		return;
	}
	if (pidfile_rename(oldbin) == -1) {
		close(p[0]);
		close(p[1]);
		return;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &mask);
	if ((child = fork()) == 0) {
		close(p[0]);
		exec_new(p[1], &mask);
	}
	sigprocmask(SIG_SETMASK, &mask, NULL);
	close(p[1]);
	if (child == -1) {
		close(p[0]);
		give_up("fork failed");
		return;
	}
	log_notice("binary upgrade: started %s as pid %ld; pid file moved to %s", exe,
	    (long)child, oldbin);
	filelock_foreign(1);
	evutil_make_socket_nonblocking(p[0]);
	pipe_ev = event_new(base, p[0], EV_READ | EV_PERSIST, on_pipe, NULL);
	event_add(pipe_ev, NULL);
}

/* Whether a new master serves the listeners: then unix socket paths stay. */
int
upgrade_handed_over(void)
{
	return handed_over;
}
