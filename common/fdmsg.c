/*
 * fdmsg: messages that carry descriptors.
 */
#include <string.h>
#include <sys/socket.h>

#include "fdmsg.h"

union fdmsg_control {
	char		 buf[CMSG_SPACE(FDMSG_MAX_FDS * sizeof(int))];
	struct cmsghdr	 align;
};

/* Send n bytes at p and nfds descriptors (FDMSG_MAX_FDS at most), not waiting; -1 with errno. */
ssize_t
fdmsg_send(int sock, const void *p, size_t n, const int *fds, int nfds)
{
	union fdmsg_control u;
	struct iovec iov = { (void *)p, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (nfds > 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*
 * Receive one message into buf, without waiting, and its descriptors
 * (close-on-exec) into fds (room for FDMSG_MAX_FDS), their number in *nfds.
 * *truncated: the message or its descriptors did not fit (what did not is
 * gone).  Returns the message's length, 0 at the end, -1 with errno.
 */
ssize_t
fdmsg_recv(int sock, void *buf, size_t size, int *fds, int *nfds, int *truncated)
{
	union fdmsg_control u;
	struct iovec iov = { buf, size };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
	    .msg_controllen = sizeof(u.buf) };
	ssize_t n;

	*nfds = 0;
	*truncated = 0;
	if ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) == -1)
		return -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		/* u holds FDMSG_MAX_FDS at most: the kernel closed the rest (MSG_CTRUNC) */
		for (size_t i = 0; i < k && *nfds < FDMSG_MAX_FDS; i++)
			memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	*truncated = (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
	return n;
}
