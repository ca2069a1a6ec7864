/*
 * bench_conn: a sending connection's output: a buffer of whole framed
 * records, written as the socket takes them, and an exact count of the
 * records wholly written, which is what "sent" means in ingestd-bench.
 *
 * The buffer begins at a record boundary (head).  Finding how many records
 * a partial write completed takes a walk over the record boundaries, so it
 * is done only when needed: when the buffer must make room and when the
 * count is asked for.  A buffer written out entirely needs no walk.
 *
 * On datagram sockets (--udp) each record is one datagram, sent whole or
 * not at all, with sendmmsg(2).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define DGRAM_BATCH	64

static int	datagrams;

/* Every output is written as datagrams, one record each. */
void
out_datagrams(int on)
{
	datagrams = on;
}

int
out_init(struct out *o, uint32_t id, size_t cap)
{
	memset(o, 0, sizeof(*o));
	if (cap < 2 * rec_frame_max())
		cap = 2 * rec_frame_max();
	if ((o->buf = malloc(cap)) == NULL)
		return -1;
	o->cap = cap;
	out_reset(o, id);
	return 0;
}

/* Empty, for a new connection with this id. */
void
out_reset(struct out *o, uint32_t id)
{
	o->len = o->off = o->head = 0;
	o->head_seq = o->seq = 0;
	o->id = id;
	o->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)id << 1 | 1);
}

void
out_free(struct out *o)
{
	free(o->buf);
	o->buf = NULL;
}

/* Move head past the records that are wholly written. */
static void
settle(struct out *o)
{
	size_t n;

	if (o->off == o->len) {
		o->head = o->len;
		o->head_seq = o->seq;
		return;
	}
	while ((n = rec_next(o->buf + o->head, o->len - o->head)) != 0 &&
	    o->head + n <= o->off) {
		o->head += n;
		o->head_seq++;
	}
}

/* Room for one more record: drop what is written, else grow. */
static int
make_room(struct out *o)
{
	size_t need = rec_frame_max();
	char *p;

	if (o->cap - o->len >= need)
		return 0;
	settle(o);
	memmove(o->buf, o->buf + o->head, o->len - o->head);
	o->len -= o->head;
	o->off -= o->head;
	o->head = 0;
	if (o->cap - o->len >= need)
		return 0;
	if ((p = realloc(o->buf, o->cap * 2)) == NULL)
		return -1;
	o->buf = p;
	o->cap *= 2;
	return 0;
}

/* Append the connection's next record; -1 when out of memory. */
int
out_add(struct out *o)
{
	if (make_room(o) == -1)
		return -1;
	o->len += rec_put(o->buf + o->len, o->id, o->seq, &o->rng);
	o->seq++;
	return 0;
}

/*
 * Write what is pending: the bytes written (0 when the socket is full or
 * nothing is pending), or -1 on an error (errno).  A buffer written out
 * entirely starts again at its beginning.
 */
/*
 * The pending records, one datagram each, until the socket takes no more:
 * the bytes sent (0 when it took none), or -1 on an error (errno).
 */
static ssize_t
send_datagrams(const struct out *o, int fd)
{
	struct mmsghdr m[DGRAM_BATCH];
	struct iovec iov[DGRAM_BATCH];
	size_t at = o->off, end, len;
	int n, sent;

	do {
		for (n = 0, end = at; n < DGRAM_BATCH && end < o->len; n++, end += len) {
			len = rec_next(o->buf + end, o->len - end);
			iov[n] = (struct iovec){ o->buf + end, len };
			m[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
		}
		if ((sent = sendmmsg(fd, m, n, 0)) == -1) {
			if (at > o->off && (errno == EAGAIN || errno == EINTR))
				break;
			return -1;
		}
		for (int i = 0; i < sent; i++)
			at += iov[i].iov_len;
	} while (sent == n && at < o->len);
	return (ssize_t)(at - o->off);
}

ssize_t
out_write(struct out *o, int fd)
{
	ssize_t w;

	if (o->off == o->len)
		return 0;
	w = datagrams ? send_datagrams(o, fd) : net_write(fd, o->buf + o->off, o->len - o->off);
	if (w == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	o->off += w;
	if (o->off == o->len) {
		o->len = o->off = o->head = 0;
		o->head_seq = o->seq;
	}
	return w;
}

/* Records wholly written so far. */
uint64_t
out_sent(struct out *o)
{
	settle(o);
	return o->head_seq;
}
