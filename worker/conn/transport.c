/*
 * transport: the plain one, shared by every connection without TLS: the
 * socket's own read(2) and send(2), nothing held between calls.
 */
#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static ssize_t
plain_recv(struct transport *t, int fd, char *buf, size_t n)
{
	(void)t;
	return read(fd, buf, n);
}

static ssize_t
plain_send(struct transport *t, int fd, const char *buf, size_t n)
{
	(void)t;
	return send(fd, buf, n, MSG_NOSIGNAL);
}

static short
plain_waits(const struct transport *t, int sending)
{
	(void)t;
	return sending ? EV_WRITE : EV_READ;
}

static int
plain_pending(const struct transport *t)
{
	(void)t;
	return 0;
}

static const char *
plain_truncation(const struct transport *t)
{
	(void)t;
	return NULL;
}

static int
plain_shutdown(struct transport *t, int fd)
{
	(void)t;
	return shutdown(fd, SHUT_WR);
}

static void
plain_free(struct transport *t)
{
	(void)t;
}

static const struct transport_ops plain_ops = {
	.handshake = NULL,
	.recv = plain_recv,
	.send = plain_send,
	.waits = plain_waits,
	.pending = plain_pending,
	.partial = plain_pending,
	.truncation = plain_truncation,
	.shutdown = plain_shutdown,
	.free = plain_free,
};

struct transport plain_transport = { &plain_ops, NULL, 0, NULL, 0 };
