/*
 * forbid: an LD_PRELOAD shim for the sandbox tests.
 *
 * A worker, as its loop starts (its sandbox entered), makes the system
 * call INGESTD_FORBID names:
 *
 *   execve   runs /bin/true in its place
 *   socket   opens an AF_PACKET socket, a family no worker uses
 *
 * A worker is told from its master by PR_SET_NO_NEW_PRIVS, which only
 * workers set, so a master that daemonizes (a new pid) passes through too.
 *
 *   cc -shared -fPIC -o forbid.so tests/integration/forbid.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

struct event_base;

extern char **environ;

int
event_base_dispatch(struct event_base *base)
{
	static int (*real)(struct event_base *);
	const char *what = getenv("INGESTD_FORBID");
	char *argv[] = { "true", NULL };
	int fd;

	if (real == NULL)
		real = (int (*)(struct event_base *))dlsym(RTLD_NEXT, "event_base_dispatch");
	if (what && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1) {
		if (strcmp(what, "execve") == 0)
			execve("/bin/true", argv, environ);
		else if (strcmp(what, "socket") == 0 && (fd = socket(AF_PACKET, SOCK_RAW, 0)) != -1)
			close(fd);
	}
	return real(base);
}
