/*
 * control: `ingestd -s`, the client side of the signals: find the running
 * master through its pid file (a live one holds its lock), send it the
 * command's signal, and for "upgrade" see the binary upgrade through to
 * the end (server/upgrade.c is what the masters themselves do).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "pidfile.h"

static const struct {
	const char	*name;
	int		 sig;
} commands[] = {
	{ "reload", SIGHUP }, { "stop", SIGTERM }, { "quit", SIGQUIT }, { "reopen", SIGUSR1 },
	{ "upgrade", SIGUSR2 },
};

#define UPGRADE_WAIT_MS	60000

/*
 * The whole binary upgrade: USR2, wait until a new master holds the pid
 * file (it writes it once its workers accept), then QUIT the old one.
 */
static int
upgrade(pid_t old, const char *pid_path)
{
	long waited = 0;
	pid_t now;

	if (kill(old, SIGUSR2) == -1) {
		log_warn("cannot signal ingestd (pid %ld)", (long)old);
		return 1;
	}
	for (;;) {
		now = pidfile_read(pid_path);
		if (now != 0 && now != old && pidfile_locked(pid_path))
			break;
		if (kill(old, 0) == -1) {
			log_warnx("upgrade: the old master (pid %ld) is gone", (long)old);
			return 1;
		}
		/* Failed: the old master renamed its pid file back. */
		if (waited > 500 && now == old && pidfile_locked(pid_path)) {
			log_warnx("upgrade failed: the old master (pid %ld) keeps serving; see its "
			    "log", (long)old);
			return 1;
		}
		if (waited >= UPGRADE_WAIT_MS) {
			log_warnx("upgrade: no new master accepting after %d s; the old one (pid "
			    "%ld) keeps serving", UPGRADE_WAIT_MS / 1000, (long)old);
			return 1;
		}
		usleep(50 * 1000);
		waited += 50;
	}
	if (kill(old, SIGQUIT) == -1) {
		log_warn("upgrade: cannot tell the old master (pid %ld) to quit", (long)old);
		return 1;
	}
	fprintf(stderr, "ingestd: upgraded: pid %ld accepts; pid %ld finishes its connections "
	    "and exits\n", (long)now, (long)old);
	return 0;
}

/* ingestd -s cmd: the signal to the master whose pid file is pid_path; the exit status. */
int
control_send(const char *cmd, const char *pid_path)
{
	int sig = 0;
	pid_t pid;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			sig = commands[i].sig;
	if ((pid = pidfile_owner(pid_path)) == 0)
		return 1;
	if (sig == SIGUSR2)
		return upgrade(pid, pid_path);
	if (kill(pid, sig) == -1) {
		log_warn("cannot signal ingestd (pid %ld from %s)", (long)pid, pid_path);
		return 1;
	}
	return 0;
}

/* Whether cmd is one of -s's commands. */
int
control_valid(const char *cmd)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(cmd, commands[i].name) == 0)
			return 1;
	return 0;
}
