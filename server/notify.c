/*
 * notify: the master's side of systemd, through libsystemd.
 *
 * Readiness and state go to $NOTIFY_SOCKET (nothing is sent without it):
 * READY=1 with MAINPID once the workers accept (so a new master from a
 * binary upgrade becomes the main process), RELOADING=1 with
 * MONOTONIC_USEC when a reload begins and READY=1 when it ends either way,
 * STOPPING=1 on shutdown.  With WatchdogSec, a timer sends WATCHDOG=1 at
 * half the interval while the serving generation has a worker running, so
 * systemd restarts a master whose loop or workers are gone.  Sockets from
 * socket activation ($LISTEN_FDS) are handed to the listeners.
 */
#include <event2/event.h>
#include <systemd/sd-daemon.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "listeners.h"
#include "log.h"
#include "notify.h"

static struct event	*watchdog;
static int		(*serving)(unsigned *gen);	/* a worker runs in the serving gen */

/* Before daemonizing: $LISTEN_PID names the process systemd started. */
void
notify_take_sockets(void)
{
	int n = sd_listen_fds(1);

	if (n < 0)
		log_warnx("systemd: LISTEN_FDS: %s", strerror(-n));
	for (int i = 0; i < n; i++)
		lsn_inherit(SD_LISTEN_FDS_START + i);
}

void
notify_ready(unsigned gen, int nworkers)
{
	sd_notifyf(0, "READY=1\nMAINPID=%ld\nSTATUS=generation %u: %d workers accepting",
	    (long)getpid(), gen, nworkers);
}

void
notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	unsigned gen = 0;

	(void)fd;
	(void)what;
	(void)arg;
	if (serving(&gen))
		sd_notify(0, "WATCHDOG=1");
	else
		log_warnx("systemd: no worker of generation %u is running; watchdog not fed", gen);
}

/* With WatchdogSec: fed while alive(&gen) says a worker of the serving generation gen runs. */
void
notify_start_watchdog(struct event_base *base, int (*alive)(unsigned *gen))
{
	uint64_t usec;
	struct timeval tv;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return;
	usec /= 2;
	tv.tv_sec = usec / 1000000;
	tv.tv_usec = usec % 1000000;
	serving = alive;
	watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
	event_add(watchdog, &tv);
	log_info("systemd: watchdog every %.3f s", usec / 1e6);
}

void
notify_stop_watchdog(void)
{
	if (watchdog)
		event_free(watchdog);
	watchdog = NULL;
}
