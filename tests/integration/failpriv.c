/*
 * failpriv: an LD_PRELOAD shim for the integration tests.
 *
 * Every call a worker makes to switch to its user and group fails with
 * EPERM, as it does in a container without CAP_SETUID/CAP_SETGID, so that
 * the tests can check that a worker which cannot drop its privileges exits
 * with the "fatal, do not respawn" status and that the master gives up.
 *
 *   cc -shared -fPIC -o failpriv.so tests/integration/failpriv.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sys/types.h>
#include <unistd.h>

int
initgroups(const char *user, gid_t group)
{
	(void)user;
	(void)group;
	errno = EPERM;
	return -1;
}

int
setgroups(size_t size, const gid_t *list)
{
	(void)size;
	(void)list;
	errno = EPERM;
	return -1;
}

int
setresgid(gid_t rgid, gid_t egid, gid_t sgid)
{
	(void)rgid;
	(void)egid;
	(void)sgid;
	errno = EPERM;
	return -1;
}

int
setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
	(void)ruid;
	(void)euid;
	(void)suid;
	errno = EPERM;
	return -1;
}
