/*
 * daemon: fork, setsid, stdio to /dev/null.  The parent waits on a pipe
 * until the master reports that its workers accept (exit 0) or that start-up
 * failed (exit 1), so that "ingestd && echo started" and init scripts see
 * the truth.  The working directory is kept, as nginx does, so that
 * relative paths in the config mean what they meant at start.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

static int ready_fd = -1;

int
daemon_start(void)
{
	int p[2], fd;
	char c;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	switch (fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		close(p[1]);
		if (read(p[0], &c, 1) == 1 && c == '1')
			_exit(0);
		_exit(1);
	}
	close(p[0]);
	ready_fd = p[1];
	if (setsid() == -1)
		fatal("setsid");
	if ((fd = open("/dev/null", O_RDWR)) == -1)
		fatal("/dev/null");
	dup2(fd, 0);
	dup2(fd, 1);
	if (fd > 1)
		close(fd);
	return 0;
}

/*
 * stderr stays open until now so that start-up errors reach the terminal
 * when the log target is not yet in use.
 */
void
daemon_ready(int ok)
{
	int fd;

	if (ready_fd == -1)
		return;
	(void)!write(ready_fd, ok ? "1" : "0", 1);
	close(ready_fd);
	ready_fd = -1;
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

/*
 * A worker forked before start-up completes must not hold the pipe or the
 * starting command's stderr: whoever reads them would wait for the worker.
 */
void
daemon_close_in_child(void)
{
	int fd;

	if (ready_fd == -1)
		return;
	close(ready_fd);
	ready_fd = -1;
	if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) != -1) {
		dup2(fd, 2);
		close(fd);
	}
}
