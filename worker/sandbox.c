/*
 * sandbox: what a worker may still do once it is set up.
 *
 * A worker parses bytes from anyone who can connect.  Whatever a hostile
 * client could make of a bug there, the process it runs in can do little:
 *
 *   sandbox_begin       at the start: every descriptor it was not given is
 *                       closed (the master's epoll, timer and signal pipe,
 *                       whatever the master inherited from its own parent),
 *                       and the bounding and ambient capability sets are
 *                       emptied while it may still do so (as root)
 *   sandbox_enter       once its sockets, files and client libraries are
 *                       set up: no capabilities, PR_SET_NO_NEW_PRIVS, not
 *                       dumpable (no core of client data) unless core_dumps,
 *                       and unless `sandbox = false` a seccomp allow-list
 *                       (libseccomp) of the system calls it needs
 *
 * A call not on the list raises SIGSYS (SCMP_ACT_TRAP).  The handler notes
 * the call's number in the worker's stats slot and dies of the signal; the
 * master names the call in its log line and respawns the worker, as for any
 * crash (sandbox_call_name).  The list is in one table below, each entry
 * with who needs it.
 */
#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"
#include "proc.h"
#include "sandbox.h"
#include "stats.h"

/*
 * The calls a worker makes in its loop, its sinks and their client
 * libraries (OpenSSL, hiredis, libnats and its threads), its spool, log
 * rotation and exit.  The master compiles PCRE2's JIT code and reads the
 * zoneinfo before the fork, so neither adds a call here.  A name this
 * architecture lacks is skipped.
 */
static const char *const allowed[] = {
	/* descriptors: sockets, files, the spool's segments and ledgers */
	"read", "readv", "pread64", "write", "writev", "pwrite64", "close", "close_range",
	"lseek", "fstat", "newfstatat", "stat", "lstat", "statx", "fstatfs", "statfs",
	"open", "openat", "fcntl", "dup", "dup2", "dup3", "pipe2", "eventfd2",
	"fsync", "fdatasync", "ftruncate", "flock", "rename", "renameat", "renameat2",
	"unlink", "unlinkat", "getdents64", "fchown",
	"memfd_create",	/* a hand-over's half-read record */
	/* network: clients, datagrams, upstreams (socket: see the families below) */
	"accept", "accept4", "connect", "shutdown", "getsockopt", "setsockopt",
	"getsockname", "getpeername", "sendto", "recvfrom", "sendmsg", "recvmsg",
	"sendmmsg", "recvmmsg",
	/* waiting: libevent (epoll), libnats and hiredis (poll, select), UDP timers */
	"epoll_wait", "epoll_pwait", "epoll_ctl", "poll", "ppoll", "select", "pselect6",
	"timerfd_create", "timerfd_settime", "timerfd_gettime",
	/* time */
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
	"time",
	/* memory: malloc, thread stacks, name service modules loaded on first use */
	"brk", "mmap", "munmap", "mremap", "mprotect", "madvise",
	/* signals: signalfd, the SIGSYS handler's own re-raise */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
	"signalfd4", "restart_syscall",
	/* threads (libnats): clone is allowed below for threads only */
	"futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
	"sched_yield", "sched_getaffinity", "membarrier",
	/* who am I; randomness (OpenSSL, hiredis, the retry jitter) */
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
	"getgroups", "getresuid", "getresgid", "uname", "sysinfo", "getrandom",
	"getrlimit", "getrusage",
	"exit", "exit_group",
};

/* ioctl(2) requests: bytes waiting, descriptor flags, and TCGETS (isatty(3), stdio). */
static const unsigned long ioctls[] = { FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, TCGETS };

/* prctl(2) options: a thread's name (libnats), flags read back. */
static const int prctls[] = { PR_SET_NAME, PR_GET_NAME, PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS };

/* socket(2) families: TCP and UDP clients and upstreams, unix sockets and syslog(3). */
static const int families[] = { AF_UNIX, AF_INET, AF_INET6 };

static void
close_gap(unsigned lo, unsigned hi)
{
	if (lo <= hi && close_range(lo, hi, 0) == -1)
		for (unsigned fd = lo; fd <= hi && fd < 65536; fd++)
			close((int)fd);
}

static int
by_value(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * Close every descriptor from 3 up but the n in keep (-1 entries ignored;
 * keep gets sorted), and empty the ambient set (the systemd unit gives the
 * master CAP_NET_BIND_SERVICE that way) and, where the worker may (as
 * root, with CAP_SETPCAP), the bounding set.
 */
void
sandbox_begin(int *keep, int n)
{
	unsigned next = 3;

	qsort(keep, (size_t)n, sizeof(*keep), by_value);
	for (int i = 0; i < n; i++) {
		if (keep[i] < (int)next)
			continue;
		close_gap(next, (unsigned)keep[i] - 1);
		next = (unsigned)keep[i] + 1;
	}
	close_gap(next, ~0U);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

/* No capability left: a worker started as root without a user keeps uid 0 only. */
static int
drop_capabilities(void)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	memset(data, 0, sizeof(data));
	return (int)syscall(SYS_capset, &hdr, data);
}

/*
 * SIGSYS from the filter: note the call for the master (a plain store in
 * shared memory, nothing else is safe here) and die of the signal, which
 * the handler's return delivers with its default action.
 */
static void
on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (proc.stats)
		proc.stats->forbidden_call = (uint64_t)si->si_syscall + 1;
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One rule with at most one argument test, unless an earlier one failed (rc). */
static int
rule(scmp_filter_ctx ctx, int rc, uint32_t action, int nr, struct scmp_arg_cmp *test)
{
	return rc != 0 ? rc : seccomp_rule_add_array(ctx, action, nr, test ? 1 : 0, test);
}

static int
add_rules(scmp_filter_ctx ctx)
{
	scmp_datum_t self = (scmp_datum_t)getpid();
	int rc = 0, nr;

	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if ((nr = seccomp_syscall_resolve_name(allowed[i])) != __NR_SCMP_ERROR)
			rc = rule(ctx, rc, SCMP_ACT_ALLOW, nr, NULL);
	for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++)
		rc = rule(ctx, rc, SCMP_ACT_ALLOW, SCMP_SYS(ioctl),
		    &SCMP_A1(SCMP_CMP_EQ, ioctls[i]));
	for (size_t i = 0; i < sizeof(prctls) / sizeof(prctls[0]); i++)
		rc = rule(ctx, rc, SCMP_ACT_ALLOW, SCMP_SYS(prctl),
		    &SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)prctls[i]));
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		rc = rule(ctx, rc, SCMP_ACT_ALLOW, SCMP_SYS(socket),
		    &SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
	/* Threads, never a process: glibc falls back from clone3, whose flags hide in a struct. */
	rc = rule(ctx, rc, SCMP_ACT_ALLOW, SCMP_SYS(clone),
	    &SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	rc = rule(ctx, rc, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), NULL);
	/* Signals to itself only: raise(3), abort(3). */
	rc = rule(ctx, rc, SCMP_ACT_ALLOW, SCMP_SYS(kill), &SCMP_A0(SCMP_CMP_EQ, self));
	rc = rule(ctx, rc, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), &SCMP_A0(SCMP_CMP_EQ, self));
	/* Limits read, never set (prlimit64 with no new limit). */
	return rule(ctx, rc, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), &SCMP_A2(SCMP_CMP_EQ, 0));
}

/* The allow-list, on every thread of the worker (libnats may have started some). */
static int
load_filter(void)
{
	struct sigaction sa;
	scmp_filter_ctx ctx;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1)
		return -1;
	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL)
		return -1;
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0)		/* a binary tree of the calls, not a list walked on each */
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc == 0)
		rc = add_rules(ctx);
	if (rc == 0)
		rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc != 0)
		errno = -rc;
	return rc == 0 ? 0 : -1;
}

/*
 * Give up what the worker no longer needs.  A failure is fatal for every
 * worker alike (the master does not respawn): running unconfined when the
 * configuration asked otherwise is not an option.
 */
void
sandbox_enter(const struct config *cf)
{
	if (drop_capabilities() == -1) {
		log_warn("%s: cannot drop its capabilities", proc.name);
		exit(EXIT_FATAL);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("%s: PR_SET_NO_NEW_PRIVS", proc.name);
		exit(EXIT_FATAL);
	}
	/* Set either way: switching user made it not dumpable (fs.suid_dumpable 0). */
	if (prctl(PR_SET_DUMPABLE, cf->core_dumps ? 1 : 0, 0, 0, 0) == -1)
		log_warn("%s: PR_SET_DUMPABLE", proc.name);
	if (cf->sandbox && load_filter() == -1) {
		log_warn("%s: cannot load its seccomp filter (sandbox = false turns it off)",
		    proc.name);
		exit(EXIT_FATAL);
	}
}

/* For the master's log line: "execve, system call 59" for a worker's note, nr + 1. */
void
sandbox_call_name(uint64_t noted, char *buf, size_t size)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)(noted - 1));

	snprintf(buf, size, "%s, system call %llu", name ? name : "unknown",
	    (unsigned long long)(noted - 1));
	free(name);
}
