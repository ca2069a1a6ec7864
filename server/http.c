/*
 * http: the stats endpoint's HTTP server (see http.h).
 *
 * Connections live in a fixed table of HTTP_MAX_CONNS slots, each with its
 * request buffer, allocated once with the server: a flood of connections
 * allocates nothing.  A new connection is read at once, since a client's
 * request usually comes right behind the handshake.
 *
 * When every slot is taken, a new connection evicts one whose head is not
 * complete: the oldest of those from the address that has the most of them.
 * A slow or silent client cannot keep a slot from a normal one, and a flood
 * from a few addresses evicts itself, not a scraper on another address
 * whose request is still on its way.  One turn of the loop accepts at most
 * ACCEPTS_PER_WAKE connections, well under the slots, so that a client is
 * read at least once between bursts.  When every slot is sending a
 * response, the new connection is refused.
 *
 * An evicted or refused client gets "503 Service Unavailable", and one
 * whose head is not complete by its deadline "408 Request Timeout", in one
 * send that is not waited for (nothing was sent on the connection before,
 * so its send buffer takes it), then the connection is closed.  A head too
 * large for the buffer is answered 431 and a malformed one 400 or 505, like
 * any response.
 *
 * A connection is closed once its response is written.  What the client
 * sent after its head is read and dropped first, a little of it: closing a
 * socket with unread bytes resets the connection, and the reset can destroy
 * the response before the client has read it.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "http.h"
#include "httphead.h"
#include "log.h"

#define ACCEPTS_PER_WAKE	8
#define ACCEPT_PAUSE_MS		100	/* out of descriptors: try again after this */
#define DISCARD_READS		4	/* of 4 KiB each, before a close */
#define RESPONSE_HEAD_MAX	512
#define STR(x)			#x
#define XSTR(x)			STR(x)

enum hc_state { HC_FREE, HC_HEAD, HC_SEND };

struct hconn {
	struct http_server	*hs;
	enum hc_state		 state;
	int			 fd;
	uint64_t		 seq;		/* accept order: the lowest is the oldest */
	struct sockaddr_storage	 ss;		/* the peer */
	struct event		 rev;		/* readable, while HC_HEAD */
	struct event		 wev;		/* writable, while HC_SEND has bytes left */
	struct event		 deadline;	/* HTTP_HEAD_MS, then HTTP_SEND_MS */
	struct evbuffer		*out;
	struct httphead		 head;
	size_t			 len;		/* bytes in buf */
	char			 peer[ADDR_STRLEN];
	char			 buf[HTTP_HEAD_MAX];
};

struct http_server {
	struct event_base	*base;
	const char		*name;		/* for log lines */
	http_handler_fn		*fn;
	void			*arg;
	int			 fd;		/* listening; -1 when none */
	struct event		 accept_ev;
	struct event		 resume_ev;	/* after ACCEPT_PAUSE_MS */
	uint64_t		 seq;
	struct evbuffer		*body;		/* the response being made */
	struct http_counts	 counts;
	struct hconn		 c[HTTP_MAX_CONNS];
};

static struct log_limit	 evict_limit, full_limit, head_limit, send_limit, bad_limit,
			 emfile_limit;

static const char *
status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Internal Server Error";
	}
}

/* Status line and headers; extra: more header lines, each ending in CRLF. */
static int
format_head(char *buf, size_t size, int status, const char *type, size_t len, const char *extra)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	return snprintf(buf, size, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%sConnection: close\r\n\r\n", status, status_text(status), date,
	    type, len, extra);
}

/* An answer that is not waited for: the client reads it, or has left. */
static void
answer_once(int fd, int status)
{
	char msg[RESPONSE_HEAD_MAX + 64], body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, status_text(status)), m;

	m = format_head(msg, sizeof(msg), status, "text/plain; charset=utf-8", (size_t)n, "");
	if (m < 0 || (size_t)m + (size_t)n >= sizeof(msg))
		return;
	memcpy(msg + m, body, (size_t)n);
	(void)send(fd, msg, (size_t)(m + n), MSG_NOSIGNAL);
}

/* Read and drop a little of what the client sent, so that the close is no reset. */
static void
discard_input(int fd)
{
	char junk[4096];

	for (int i = 0; i < DISCARD_READS; i++)
		if (read(fd, junk, sizeof(junk)) <= 0)
			break;
}

static void
conn_close(struct hconn *c)
{
	event_del(&c->rev);
	event_del(&c->wev);
	event_del(&c->deadline);
	discard_input(c->fd);
	close(c->fd);
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	c->fd = -1;
	c->state = HC_FREE;
}

static void
send_some(struct hconn *c)
{
	if (evbuffer_write(c->out, c->fd) == -1 && errno != EAGAIN && errno != EINTR) {
		conn_close(c);		/* the client left */
		return;
	}
	if (evbuffer_get_length(c->out) == 0)
		conn_close(c);
	else if (!event_pending(&c->wev, EV_WRITE, NULL))
		event_add(&c->wev, NULL);
}

/* Send status, type and what body holds (the head only for HEAD): the head's deadline ends. */
static void
send_response(struct hconn *c, int status, const char *type, const char *extra, int head_only)
{
	struct evbuffer *body = c->hs->body;
	struct timeval tv = { HTTP_SEND_MS / 1000, (HTTP_SEND_MS % 1000) * 1000 };
	char head[RESPONSE_HEAD_MAX];
	size_t len = evbuffer_get_length(body);
	int n = format_head(head, sizeof(head), status, type, len, extra);

	if (n < 0 || (size_t)n >= sizeof(head)) {
		log_warnx("%s: %s: response head too long", c->hs->name, c->peer);
		evbuffer_drain(body, len);
		conn_close(c);
		return;
	}
	evbuffer_add(c->out, head, (size_t)n);
	if (head_only)
		evbuffer_drain(body, len);
	else
		evbuffer_add_buffer(c->out, body);
	event_del(&c->rev);
	c->state = HC_SEND;
	evtimer_add(&c->deadline, &tv);
	send_some(c);
}

/* An error of ours, with a short text body. */
static void
send_error(struct hconn *c, int status, const char *extra)
{
	evbuffer_add_printf(c->hs->body, "%d %s\n", status, status_text(status));
	send_response(c, status, "text/plain; charset=utf-8", extra, 0);
}

static int
is(const char *s, size_t n, const char *literal)
{
	return n == strlen(literal) && memcmp(s, literal, n) == 0;
}

static void
serve(struct hconn *c)
{
	struct http_server *hs = c->hs;
	const struct httphead *h = &c->head;
	const char *type = "text/plain; charset=utf-8";
	int head_only = is(h->method, h->methodlen, "HEAD"), status;

	if (!head_only && !is(h->method, h->methodlen, "GET")) {
		send_error(c, 405, "Allow: GET, HEAD\r\n");
		return;
	}
	status = hs->fn(hs->arg, h->path, h->pathlen, hs->body, &type);
	send_response(c, status, type, "", head_only);
}

static void
refuse_head(struct hconn *c, int status, const char *why)
{
	struct http_server *hs = c->hs;

	if (status == 431)
		hs->counts.too_large++;
	else
		hs->counts.bad_requests++;
	log_limited(&bad_limit, LOG_LVL_INFO, "%s: %s: %d: %s", hs->name, c->peer, status, why);
	send_error(c, status, "");
}

static void
read_head(struct hconn *c)
{
	ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	int rc;

	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);		/* the client left before its request was complete */
		return;
	}
	c->len += (size_t)n;
	if ((rc = httphead_feed(&c->head, c->buf, c->len)) == 1)
		serve(c);
	else if (rc == -1)
		refuse_head(c, c->head.status, c->head.why);
	else if (c->len == sizeof(c->buf))
		refuse_head(c, 431, "request head over " XSTR(HTTP_HEAD_MAX) " bytes");
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	read_head(arg);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	send_some(arg);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct hconn *c = arg;
	struct http_server *hs = c->hs;

	(void)fd;
	(void)what;
	if (c->state == HC_HEAD) {
		hs->counts.request_timeouts++;
		log_limited(&head_limit, LOG_LVL_INFO, "%s: %s: closing: request not complete "
		    "within %d ms (%zu bytes)", hs->name, c->peer, HTTP_HEAD_MS, c->len);
		answer_once(c->fd, 408);
	} else {
		hs->counts.send_timeouts++;
		log_limited(&send_limit, LOG_LVL_INFO, "%s: %s: closing: response not taken within "
		    "%d ms, %zu bytes unsent", hs->name, c->peer, HTTP_SEND_MS,
		    evbuffer_get_length(c->out));
	}
	conn_close(c);
}

static void
conn_start(struct http_server *hs, struct hconn *c, int fd, const struct sockaddr_storage *ss,
    const char *peer)
{
	struct timeval tv = { HTTP_HEAD_MS / 1000, (HTTP_HEAD_MS % 1000) * 1000 };

	c->fd = fd;
	c->ss = *ss;
	c->state = HC_HEAD;
	c->seq = ++hs->seq;
	c->len = 0;
	httphead_init(&c->head);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	event_assign(&c->rev, hs->base, fd, EV_READ | EV_PERSIST, on_read, c);
	event_assign(&c->wev, hs->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
	evtimer_assign(&c->deadline, hs->base, on_deadline, c);
	if (event_add(&c->rev, NULL) == -1 || evtimer_add(&c->deadline, &tv) == -1) {
		log_warnx("%s: %s: cannot watch the connection", hs->name, peer);
		conn_close(c);
		return;
	}
	read_head(c);
}

static struct hconn *
free_slot(struct http_server *hs)
{
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		if (hs->c[i].state == HC_FREE)
			return &hs->c[i];
	return NULL;
}

/* The same address, whatever the ports; unix peers are all one. */
static int
same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
	return 1;
}

/* Connections still reading their head from c's address, c included. */
static int
reading_from(const struct http_server *hs, const struct hconn *c)
{
	int n = 0;

	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		n += hs->c[i].state == HC_HEAD && same_host(&hs->c[i].ss, &c->ss);
	return n;
}

/* Whom to evict: the oldest reading connection of the address with the most; NULL: none. */
static struct hconn *
victim(struct http_server *hs)
{
	struct hconn *v = NULL;
	int most = 0, n;

	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		struct hconn *c = &hs->c[i];

		if (c->state != HC_HEAD)
			continue;
		n = reading_from(hs, c);
		if (v == NULL || n > most || (n == most && c->seq < v->seq)) {
			v = c;
			most = n;
		}
	}
	return v;
}

/* A slot for a new connection from peer: a free one, or a reading one's (see victim). */
static struct hconn *
make_room(struct http_server *hs, const char *peer)
{
	struct hconn *c;

	if ((c = free_slot(hs)) != NULL || (c = victim(hs)) == NULL)
		return c;
	hs->counts.evicted++;
	log_limited(&evict_limit, LOG_LVL_NOTICE, "%s: %s: evicted after %zu bytes, its request "
	    "not complete, for %s: %d connections open", hs->name, c->peer, c->len, peer,
	    HTTP_MAX_CONNS);
	answer_once(c->fd, 503);
	conn_close(c);
	return c;
}

static void
admit(struct http_server *hs, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
	char peer[ADDR_STRLEN];
	struct hconn *c;

	addr_format((const struct sockaddr *)ss, len, peer, sizeof(peer));
	if ((c = make_room(hs, peer)) == NULL) {
		hs->counts.busy++;
		log_limited(&full_limit, LOG_LVL_NOTICE, "%s: refused %s: all %d connections are "
		    "being answered", hs->name, peer, HTTP_MAX_CONNS);
		answer_once(fd, 503);
		discard_input(fd);
		close(fd);
		return;
	}
	conn_start(hs, c, fd, ss, peer);
}

static void
pause_accepting(struct http_server *hs)
{
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

	log_limited(&emfile_limit, LOG_LVL_WARNING, "%s: accept: %s; pausing for %d ms",
	    hs->name, strerror(errno), ACCEPT_PAUSE_MS);
	event_del(&hs->accept_ev);
	evtimer_add(&hs->resume_ev, &tv);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct http_server *hs = arg;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd;

	(void)what;
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		len = sizeof(ss);
		fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd != -1) {
			admit(hs, fd, &ss, len);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE)
			pause_accepting(hs);
		else if (errno != EAGAIN)
			log_warn("%s: accept", hs->name);
		return;
	}
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *hs = arg;

	(void)fd;
	(void)what;
	if (hs->fd != -1)
		event_add(&hs->accept_ev, NULL);
}

/* name: a string that outlives the server, for log lines. */
struct http_server *
http_new(struct event_base *base, const char *name, http_handler_fn *fn, void *arg)
{
	struct http_server *hs;

	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		log_warn("%s: cannot allocate the HTTP server", name);
		return NULL;
	}
	hs->base = base;
	hs->name = name;
	hs->fn = fn;
	hs->arg = arg;
	hs->fd = -1;
	evtimer_assign(&hs->resume_ev, base, on_resume, hs);
	if ((hs->body = evbuffer_new()) == NULL)
		goto fail;
	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		hs->c[i].hs = hs;
		hs->c[i].fd = -1;
		if ((hs->c[i].out = evbuffer_new()) == NULL)
			goto fail;
	}
	return hs;
fail:
	log_warnx("%s: cannot allocate the HTTP server's buffers", name);
	http_free(hs);
	return NULL;
}

/*
 * Accept on fd from now on (-1: on nothing), closing the socket accepted on
 * until now; the connections it brought are answered.  On failure fd is
 * still the caller's.
 */
int
http_listen(struct http_server *hs, int fd)
{
	if (hs->fd != -1) {
		event_del(&hs->accept_ev);
		event_del(&hs->resume_ev);
		close(hs->fd);
		hs->fd = -1;
	}
	if (fd == -1)
		return 0;
	event_assign(&hs->accept_ev, hs->base, fd, EV_READ | EV_PERSIST, on_accept, hs);
	if (event_add(&hs->accept_ev, NULL) == -1) {
		log_warnx("%s: cannot watch the listening socket", hs->name);
		return -1;
	}
	hs->fd = fd;
	return 0;
}

/* The listening socket; -1 when there is none. */
int
http_fd(const struct http_server *hs)
{
	return hs->fd;
}

const struct http_counts *
http_counts(const struct http_server *hs)
{
	return &hs->counts;
}

/* In a new child process: the sockets are the parent's, and its loop's. */
void
http_close_in_child(const struct http_server *hs)
{
	if (hs->fd != -1)
		close(hs->fd);
	for (int i = 0; i < HTTP_MAX_CONNS; i++)
		if (hs->c[i].state != HC_FREE)
			close(hs->c[i].fd);
}

void
http_free(struct http_server *hs)
{
	if (hs == NULL)
		return;
	for (int i = 0; i < HTTP_MAX_CONNS; i++) {
		if (hs->c[i].state != HC_FREE)
			conn_close(&hs->c[i]);
		if (hs->c[i].out)
			evbuffer_free(hs->c[i].out);
	}
	http_listen(hs, -1);
	event_del(&hs->resume_ev);
	if (hs->body)
		evbuffer_free(hs->body);
	free(hs);
}
