/*
 * natsctl: what the nats tests ask of a JetStream cluster, through libnats
 * (Debian has no nats(1) command line tool):
 *
 *   natsctl URLS add STREAM SUBJECT[,SUBJECT...] REPLICAS
 *       create a file-backed stream (2 minutes of duplicate window),
 *       retrying for 30 s while the cluster elects its meta leader
 *   natsctl URLS info STREAM
 *       "leader NAME msgs N replicas R current C": C replicas caught up
 *   natsctl URLS read STREAM [MAX]
 *       every message (or the first MAX), one line each: "SEQ SUBJECT MSGID
 *       DATA" (DATA is an event: one line of JSON)
 *
 * URLS: comma-separated nats://host:port (tls://user:password@host:port:
 * TLS, the CA file in $NATSCTL_CA, the server's name in $NATSCTL_NAME, a
 * client certificate and key in $NATSCTL_CERT and $NATSCTL_KEY; a .creds
 * file in $NATSCTL_CREDS).
 * Exit 0, or 1 with a message.
 */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
die(const char *what, natsStatus st)
{
	fflush(stdout);		/* the reason comes last in the output */
	fprintf(stderr, "natsctl: %s: %s (%s)\n", what, natsStatus_GetText(st),
	    nats_GetLastError(NULL));
	exit(1);
}

static jsCtx *
jetstream(const char *urls, natsConnection **nc)
{
	natsOptions *o;
	jsOptions jo;
	jsCtx *js;
	natsStatus st;

	const char *servers[16];
	char *copy = strdup(urls);
	int n = 0;

	for (char *u = strtok(copy, ","); u && n < 16; u = strtok(NULL, ","))
		servers[n++] = u;
	if ((st = natsOptions_Create(&o)) != NATS_OK ||
	    (st = natsOptions_SetServers(o, servers, n)) != NATS_OK ||
	    (st = natsOptions_SetTimeout(o, 5000)) != NATS_OK)
		die("options", st);
	if (getenv("NATSCTL_CA") && ((st = natsOptions_SetSecure(o, true)) != NATS_OK ||
	    (st = natsOptions_LoadCATrustedCertificates(o, getenv("NATSCTL_CA"))) != NATS_OK ||
	    (st = natsOptions_SetExpectedHostname(o, getenv("NATSCTL_NAME"))) != NATS_OK))
		die("tls", st);
	if (getenv("NATSCTL_CREDS") && (st = natsOptions_SetUserCredentialsFromFiles(o,
	    getenv("NATSCTL_CREDS"), NULL)) != NATS_OK)
		die("credentials", st);
	if (getenv("NATSCTL_CERT") && (st = natsOptions_LoadCertificatesChain(o,
	    getenv("NATSCTL_CERT"), getenv("NATSCTL_KEY"))) != NATS_OK)
		die("client certificate", st);
	/*
	 * Tried 5 times: now and then libnats 3.4.1 sends a CONNECT with the
	 * .creds file's JWT but no signature of the server's nonce, and the
	 * server refuses it ("Signature missing" in its debug log).
	 */
	for (int i = 0; (st = natsConnection_Connect(nc, o)) != NATS_OK && i < 4; i++)
		usleep(200 * 1000);
	if (st != NATS_OK)
		die("connect", st);
	natsOptions_Destroy(o);
	free(copy);
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	if ((st = natsConnection_JetStream(&js, *nc, &jo)) != NATS_OK)
		die("jetstream", st);
	return js;
}

/* The stream's info, asked again for 60 s while the cluster elects its leaders. */
static jsStreamInfo *
stream_info(jsCtx *js, const char *name)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus st = NATS_OK;

	for (int i = 0; i < 120; i++) {
		if ((st = js_GetStreamInfo(&si, js, name, NULL, &jerr)) == NATS_OK)
			return si;
		if (st == NATS_NOT_FOUND)
			break;
		usleep(500 * 1000);
	}
	die("stream info", st);
	return NULL;
}

static int
add(jsCtx *js, const char *name, char *subjects, int replicas)
{
	const char *subj[16];
	jsStreamConfig cfg;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus st = NATS_OK;
	int n = 0;

	for (char *s = strtok(subjects, ","); s && n < 16; s = strtok(NULL, ","))
		subj[n++] = s;
	jsStreamConfig_Init(&cfg);
	cfg.Name = name;
	cfg.Subjects = subj;
	cfg.SubjectsLen = n;
	cfg.Storage = js_FileStorage;
	cfg.Replicas = replicas;
	cfg.Duplicates = (int64_t)120 * 1000000000;
	for (int i = 0; i < 300; i++) {
		if ((st = js_AddStream(&si, js, &cfg, NULL, &jerr)) == NATS_OK)
			break;
		usleep(100 * 1000);
	}
	if (st != NATS_OK)
		die("add stream", st);
	jsStreamInfo_Destroy(si);
	return 0;
}

static int
info(jsCtx *js, const char *name)
{
	jsStreamInfo *si = stream_info(js, name);
	int current = 0;

	if (si->Cluster) {
		current = si->Cluster->Leader != NULL;
		for (int i = 0; i < si->Cluster->ReplicasLen; i++)
			current += si->Cluster->Replicas[i]->Current;
	}
	printf("leader %s msgs %" PRIu64 " replicas %" PRId64 " current %d\n",
	    si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "-", si->State.Msgs,
	    si->Config->Replicas, current);
	jsStreamInfo_Destroy(si);
	return 0;
}

/* An ordered consumer of the stream from sequence seq, retried for 60 s while leaders change. */
static natsSubscription *
subscribe_from(jsCtx *js, const char *name, const char *filter, uint64_t seq)
{
	natsSubscription *sub = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus st = NATS_OK;

	jsSubOptions_Init(&so);
	so.Stream = name;
	so.Ordered = true;
	so.Config.OptStartSeq = seq;
	for (int i = 0; i < 120; i++) {
		if ((st = js_SubscribeSync(&sub, js, filter, NULL, &so, &jerr)) == NATS_OK)
			break;
		usleep(500 * 1000);
	}
	if (st != NATS_OK)
		die("subscribe", st);
	/* A reader slower than the stream's push (a loaded machine) waits. */
	if ((st = natsSubscription_SetPendingLimits(sub, -1, -1)) != NATS_OK)
		die("pending limits", st);
	return sub;
}

/*
 * Every message (at most max) of the stream as it was when asked, each
 * once, in sequence order as delivered: an ordered consumer may deliver
 * some again when it resets (a gap, a leader elected under it), so what
 * was seen is kept by stream sequence, and the read ends when every
 * sequence up to the last one asked about was seen.  A consumer that
 * stops delivering is replaced by one from the first sequence not seen, 5
 * times at most.
 */
static int
read_all(jsCtx *js, const char *name, uint64_t max)
{
	jsStreamInfo *si = stream_info(js, name);
	natsSubscription *sub;
	uint64_t first, last, want, got = 0, next;
	unsigned char *seen;
	natsStatus st;
	natsMsg *m;
	char filter[256];
	int again = 0;

	first = si->State.FirstSeq;
	last = si->State.LastSeq;
	want = si->State.Msgs < max ? si->State.Msgs : max;
	snprintf(filter, sizeof(filter), "%s", si->Config->SubjectsLen == 1 ?
	    si->Config->Subjects[0] : ">");
	jsStreamInfo_Destroy(si);
	if (want == 0)
		return 0;
	if ((seen = calloc(last - first + 1, 1)) == NULL)
		die("memory", NATS_NO_MEMORY);
	next = first;
	sub = subscribe_from(js, name, filter, next);
	while (got < want) {
		const char *id = "-";
		jsMsgMetaData *meta = NULL;
		uint64_t seq;

		if ((st = natsSubscription_NextMsg(&m, sub, 10000)) != NATS_OK) {
			if (++again > 5)
				die("next message", st);
			while (next <= last && seen[next - first])
				next++;
			fflush(stdout);		/* whole lines first: the callers read both */
			fprintf(stderr, "natsctl: next message: %s; reading again from %" PRIu64 "\n",
			    natsStatus_GetText(st), next);
			natsSubscription_Unsubscribe(sub);	/* not destroyed: it may still deliver */
			sub = subscribe_from(js, name, filter, next);
			continue;
		}
		if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
			die("metadata", NATS_ERR);
		seq = meta->Sequence.Stream;
		if (seq >= first && seq <= last && !seen[seq - first]) {
			seen[seq - first] = 1;
			got++;
			natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
			printf("%" PRIu64 " %s %s %.*s\n", seq, natsMsg_GetSubject(m), id,
			    natsMsg_GetDataLength(m), natsMsg_GetData(m));
		}
		jsMsgMetaData_Destroy(meta);
		natsMsg_Destroy(m);
	}
	free(seen);
	return 0;
}

int
main(int argc, char **argv)
{
	natsConnection *nc = NULL;
	jsCtx *js;
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: natsctl URLS add STREAM SUBJECTS REPLICAS | info STREAM | "
		    "read STREAM [MAX]\n");
		return 1;
	}
	js = jetstream(argv[1], &nc);
	if (strcmp(argv[2], "add") == 0 && argc == 6)
		rc = add(js, argv[3], argv[4], atoi(argv[5]));
	else if (strcmp(argv[2], "info") == 0)
		rc = info(js, argv[3]);
	else if (strcmp(argv[2], "read") == 0)
		rc = read_all(js, argv[3], argc > 4 ? strtoull(argv[4], NULL, 10) : UINT64_MAX);
	else {
		fprintf(stderr, "natsctl: unknown command %s\n", argv[2]);
		return 1;
	}
	/* Out without tearing libnats down: an ordered consumer stopped early may still deliver. */
	fflush(stdout);
	(void)nc;
	_exit(rc);
}
