/*
 * natspub: the bare asynchronous JetStream publisher make bench sets beside
 * ingestd's nats sink: the same client library (libnats), its own
 * asynchronous publish (js_PublishMsgAsync, at most WINDOW unacknowledged),
 * a Nats-Msg-Id on each message as ingestd sets, the same events.
 *
 *   natspub URLS PREFIX EVENTS N WINDOW
 *
 * EVENTS is what natsctl read prints ("SEQ SUBJECT MSGID DATA" lines);
 * each event is published on PREFIX and the rest of its subject after the
 * first token, in turn, until N are acknowledged.  Prints one JSON line:
 * {"events": N, "errors": E, "seconds": S, "cpu_s": C}.
 */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct event {
	char	*subject;
	char	*data;
	int	 len;
};

static int64_t errors;

static void
on_error(jsCtx *js, jsPubAckErr *pae, void *arg)
{
	(void)js;
	(void)pae;
	(void)arg;
	__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	    ru.ru_stime.tv_usec / 1e6;
}

/* The events of the file, each subject rewritten under prefix. */
static struct event *
load(const char *path, const char *prefix, int *n)
{
	FILE *f = fopen(path, "r");
	struct event *ev = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int cnt = 0, size = 0;

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		char *subj = strchr(line, ' '), *id, *data, *rest;

		if (subj == NULL || (id = strchr(++subj, ' ')) == NULL ||
		    (data = strchr(id + 1, ' ')) == NULL)
			continue;
		*id = '\0';
		data++;
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (cnt == size) {
			size = size ? 2 * size : 1024;
			ev = realloc(ev, size * sizeof(*ev));
		}
		rest = strchr(subj, '.');
		if (asprintf(&ev[cnt].subject, "%s%s", prefix, rest ? rest : "") < 0)
			exit(1);
		ev[cnt].data = strdup(data);
		ev[cnt].len = (int)strlen(data);
		cnt++;
	}
	free(line);
	fclose(f);
	*n = cnt;
	return ev;
}

int
main(int argc, char **argv)
{
	natsConnection *nc = NULL;
	natsOptions *o = NULL;
	jsOptions jo;
	jsCtx *js = NULL;
	struct event *ev;
	const char *servers[16];
	char id[64], tag[32];
	natsStatus st;
	int64_t n, window;
	int nev, nservers = 0;
	double t0, c0;

	if (argc != 6) {
		fprintf(stderr, "usage: natspub URLS PREFIX EVENTS N WINDOW\n");
		return 1;
	}
	for (char *u = strtok(argv[1], ","); u && nservers < 16; u = strtok(NULL, ","))
		servers[nservers++] = u;
	n = atoll(argv[4]);
	window = atoll(argv[5]);
	ev = load(argv[3], argv[2], &nev);
	if (nev == 0) {
		fprintf(stderr, "natspub: no events in %s\n", argv[3]);
		return 1;
	}
	snprintf(tag, sizeof(tag), "%lx%lx", (long)getpid(), (long)time(NULL));
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = window;
	jo.PublishAsync.ErrHandler = on_error;
	if ((st = natsOptions_Create(&o)) != NATS_OK ||
	    (st = natsOptions_SetServers(o, servers, nservers)) != NATS_OK ||
	    (st = natsConnection_Connect(&nc, o)) != NATS_OK ||
	    (st = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) {
		fprintf(stderr, "natspub: %s (%s)\n", natsStatus_GetText(st), nats_GetLastError(NULL));
		return 1;
	}
	t0 = now();
	c0 = cpu();
	for (int64_t i = 0; i < n; i++) {
		const struct event *e = &ev[i % nev];
		natsMsg *m = NULL;

		snprintf(id, sizeof(id), "%s-%" PRId64, tag, i);
		if ((st = natsMsg_Create(&m, e->subject, NULL, e->data, e->len)) != NATS_OK ||
		    (st = natsMsgHeader_Set(m, "Nats-Msg-Id", id)) != NATS_OK ||
		    (st = js_PublishMsgAsync(js, &m, NULL)) != NATS_OK) {
			natsMsg_Destroy(m);
			errors++;
		}
	}
	if ((st = js_PublishAsyncComplete(js, NULL)) != NATS_OK)
		fprintf(stderr, "natspub: waiting for acknowledgements: %s\n", natsStatus_GetText(st));
	printf("{\"events\": %" PRId64 ", \"errors\": %" PRId64 ", \"seconds\": %.3f, "
	    "\"cpu_s\": %.3f}\n", n, errors, now() - t0, cpu() - c0);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	return 0;
}
