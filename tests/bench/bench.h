/*
 * bench: what the parts of ingestd-bench share: the options, the sender
 * processes' context and results, and the interfaces of its modules.
 *
 * ingestd-bench is one parent and --procs sender processes.  Each sender
 * runs the mode over its share of the connections: its k-th connection has
 * the id --id-base + k * procs + index, so ids are unique across processes.  The parent
 * starts them together, follows the sink file when asked (bench_follow.c),
 * adds their results up and reports (bench_report.c).
 */
#ifndef INGESTD_BENCH_H
#define INGESTD_BENCH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "bench_hist.h"

#define EX_FAILED		1
#define EX_USAGE		64

#define CONNECT_TIMEOUT		10.0	/* s: to connect (blast, rate, churn) */
#define FINISH_TIMEOUT		10.0	/* s: to write the records begun at the end */
#define STALL_TIMEOUT		10.0	/* s: blast gives up when nothing is written */
#define EOF_TIMEOUT		5.0	/* s: churn waits this long for the server's EOF */
#define RECONNECT_MIN		0.01	/* s: RELP back-off, doubling ... */
#define RECONNECT_MAX		0.5	/* ... to this */
#define RECONNECT_GIVEUP	10.0	/* s: a RELP connection down this long is given up */
#define CONNECT_INFLIGHT	256	/* connects in progress at once, per process */
#define MAX_SIZE		(1 << 20)	/* longest record */
#define MAX_PROCS		64

enum mode	{ MODE_BLAST, MODE_RATE, MODE_CHURN, MODE_IDLE, MODE_SLOWLORIS };
enum shape	{ SHAPE_5424, SHAPE_3164, SHAPE_JSON, SHAPE_RAW, SHAPE_MIX };

struct opts {
	enum mode	 mode;
	const char	*host;
	int		 port;
	const char	*unix_path;
	unsigned	 conns;		/* connections; churn: most open at once */
	double		 rate;		/* records/s; churn: connections/s */
	uint64_t	 count;		/* records in all; 0: no limit */
	double		 duration;	/* seconds; 0: no limit */
	enum shape	 shape;
	size_t		 size_min, size_max;
	int		 octet;
	unsigned	 per_conn;	/* churn: records per connection */
	double		 interval;	/* slowloris: seconds between bytes */
	double		 tick;		/* rate, churn: seconds between wake-ups, at least */
	unsigned	 sources;	/* 127.0.0.2 .. 127.0.0.(1 + sources); 0: any */
	uint32_t	 id_base;	/* the first connection id */
	unsigned	 procs;		/* 0: choose */
	int		 json;
	const char	*follow;
	double		 follow_grace;
	int		 relp;		/* RELP sessions (blast, rate) */
	int		 udp;		/* datagrams, one record each (blast, rate) */
	unsigned	 window;	/* RELP: records in flight per connection */
	int		 tls;		/* every connection a TLS session */
	const char	*tls_ca, *tls_cert, *tls_key, *tls_server_name;
	int		 tls_resume;	/* offer the last session ticket */
};

/*
 * What one sender did; the parent adds them up.  "records" are records
 * wholly written to a socket; "sent" holds them per connection.
 */
struct result {
	double		 t_end;		/* last write, CLOCK_MONOTONIC */
	uint64_t	 records;
	uint64_t	 bytes;
	uint64_t	 established;
	uint64_t	 connect_errors;
	uint64_t	 refused;	/* of connect_errors: ECONNREFUSED */
	uint64_t	 resets;
	uint64_t	 server_closed;
	uint64_t	 completed;	/* churn: connections that ran their course */
	uint64_t	 eof_timeouts;	/* churn: no EOF from the server in time */
	uint64_t	 unsent;	/* formatted, not wholly written at the end */
	int		 stalled;	/* blast: nothing written for STALL_TIMEOUT */
	struct hist	 close_time;	/* slowloris: first byte to close, us */
	/* RELP: records answered 200, answered otherwise, never answered */
	uint64_t	 acked, rejected, unacked;
	uint64_t	 resends;	/* records framed again in a later session */
	uint64_t	 reconnects;	/* sessions opened after the first */
	uint64_t	 serverclose;	/* "serverclose" frames received */
	uint64_t	 refused_open;	/* sessions whose open was not answered 200 */
	struct hist	 ack_latency;	/* made (blast) or due (rate) to answer, us */
	uint64_t	 tls_resumed;	/* handshakes that resumed a session */
	uint64_t	 tls_failed;	/* handshakes that failed */
};

/* A sender process's view of the run. */
struct sender {
	const struct opts *o;
	unsigned	 index, nprocs;
	int		 ctl;		/* socket to the parent */
	double		 t0;		/* common start, set by sender_ready() */
	uint64_t	 budget;	/* blast: this process's share of --count */
	struct result	 res;
	uint64_t	*sent;		/* records wholly written, per connection slot */
	size_t		 nsent, capsent;
};

extern volatile sig_atomic_t stopping;	/* SIGINT or SIGTERM: wind down; 2: now */

static inline double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* bench_proc.c: the sender processes and their protocol with the parent */
struct child {
	pid_t		 pid;
	int		 fd;
	int		 ready, idle, done, gone;
	uint64_t	 idle_established, idle_errors;
	struct result	 res;
	uint64_t	*sent;
	size_t		 nsent;
};
unsigned	 sender_conns(const struct sender *);
uint32_t	 sender_id(const struct sender *, uint64_t);
int		 sender_ready(struct sender *);
int		 sender_idle(struct sender *);
int		 sender_set_sent(struct sender *, uint64_t, uint64_t);
int		 procs_fork(const struct opts *, unsigned, struct child *);
int		 procs_start(struct child *, unsigned, double);
int		 procs_message(struct child *);
void		 procs_kill(struct child *, unsigned);
int		 procs_reap(struct child *, unsigned);

/* one function per mode, run in a sender process; 0 or -1 */
int		 blast_run(struct sender *);
int		 rate_run(struct sender *);
int		 churn_run(struct sender *);
uint64_t	 churn_total(const struct opts *);
int		 idle_run(struct sender *);
int		 slowloris_run(struct sender *);

/* bench_follow.c: --follow, exactly-once and latency */
struct follow;
struct follow_stats {
	uint64_t	 lines;		/* whole lines read */
	uint64_t	 received;	/* records sent and seen */
	uint64_t	 missing;	/* records sent and not seen */
	uint64_t	 duplicates;	/* second and later sightings */
	uint64_t	 unexpected;	/* records seen that were not sent */
	uint64_t	 foreign;	/* lines with another run's connection ids */
	double		 seconds;	/* start to the last new record read */
	int		 timed;		/* latency measured (rate, churn) */
	struct hist	 latency;	/* due time to line read, us */
};
struct follow	*follow_open(const char *, uint64_t, uint64_t);
void		 follow_start(struct follow *, double, double, unsigned, int);
int		 follow_fd(const struct follow *);
int		 follow_read(struct follow *);
void		 follow_expect(struct follow *, uint64_t, uint64_t);
int		 follow_complete(const struct follow *);
const struct follow_stats *follow_stats(struct follow *);
void		 follow_close(struct follow *);

/* bench_report.c: the summary, as text or JSON */
struct summary {
	const struct opts *o;
	unsigned	 procs;
	double		 seconds;	/* t0 to the last sender's last write */
	struct result	 r;		/* the senders' results added up */
	const struct follow_stats *fs;	/* NULL without --follow */
};
void		 report_add(struct result *, const struct result *);
int		 report_failed(const struct summary *);
void		 report_print(const struct summary *);

/* bench_records.c: record shapes and framing */
void		 rec_init(enum shape, int, size_t, size_t);
size_t		 rec_frame_max(void);
size_t		 rec_put(char *, uint32_t, uint64_t, uint64_t *);
size_t		 rec_next(const char *, size_t);

/* bench_conn.c: a connection's output of whole records */
struct out {
	char		*buf;
	size_t		 cap, len, off;
	size_t		 head;		/* first record not wholly written */
	uint64_t	 head_seq;	/* its sequence number */
	uint64_t	 seq;		/* sequence number of the next record */
	uint32_t	 id;
	uint64_t	 rng;
};
void		 out_datagrams(int);
int		 out_init(struct out *, uint32_t, size_t);
void		 out_reset(struct out *, uint32_t);
void		 out_free(struct out *);
int		 out_add(struct out *);
ssize_t		 out_write(struct out *, int);
uint64_t	 out_sent(struct out *);
#define out_pending(o)	((o)->off < (o)->len)

/* bench_relp.c: a RELP session's queue of records not answered, frames, answers */
struct rrec {
	uint64_t	 seq;
	double		 t;		/* due (rate) or made (blast) */
	uint32_t	 txnr;		/* in the current session; 0: not framed in it */
	uint32_t	 len;		/* the record, in the data slot of the entry */
	uint8_t		 sent;		/* framed in an earlier session */
	uint8_t		 answered;
};
struct rframe {
	uint32_t	 txnr;
	const char	*cmd, *data;
	size_t		 cmdlen, len;
};
struct relp {
	uint32_t	 id;
	uint64_t	 rng, seq;	/* seq: the next record to make */
	struct rrec	*q;		/* ring: the oldest not answered first */
	char		*data;		/* cap slots of slot bytes */
	size_t		 slot, cap, head, count;
	size_t		 nframed;	/* q[0 .. nframed) framed in this session */
	uint32_t	 txnr, close_txnr;
	int		 opened, closed, refused;
	char		*in, *out;
	size_t		 inlen, outcap, outlen, outoff;
};
int		 relp_init(struct relp *, uint32_t);
void		 relp_free(struct relp *);
int		 relp_add(struct relp *, double);
int		 relp_session(struct relp *);
uint64_t	 relp_frame(struct relp *, unsigned);
int		 relp_close(struct relp *);
ssize_t		 relp_write(struct relp *, int);
int		 relp_read(struct relp *, int, struct result *, double);
uint64_t	 relp_answered(const struct relp *);
#define relp_pending(r)	((r)->outoff < (r)->outlen)

/* bench_relp_run.c: --relp, blast and rate over RELP sessions */
int		 relp_run(struct sender *);

/* bench_tls.c: --tls, a TLS session per connection, kept by descriptor */
int		 tls_setup(const struct opts *);
int		 tls_on(void);
int		 tls_start(int);
int		 tls_step(int, struct result *);
uint32_t	 tls_events(int);
ssize_t		 tls_write(int, const void *, size_t);
ssize_t		 tls_read(int, void *, size_t);
void		 tls_shutdown(int);
int		 tls_has(int);
void		 tls_forget(int);

/* bench_net.c: target, sources, connects; reads and writes, TLS or not */
ssize_t		 net_write(int, const void *, size_t);
ssize_t		 net_read(int, void *, size_t);
void		 net_shutdown(int);
void		 net_close(int);
int		 net_init(const struct opts *);
int		 net_connect(uint32_t);
int		 net_finish(int);
void		 net_connect_error(struct result *, int);
int		 net_closed(int, struct result *);
size_t		 net_connect_all(struct sender *, int *, size_t, double);

struct waker {
	int		 fd;		/* a timerfd */
	double		 armed;		/* when it goes off; 0: not set */
	double		 tick;		/* seconds between wake-ups, at least */
};

int		 waker_init(struct waker *, double);
void		 waker_at(struct waker *, double, double);
void		 waker_fired(struct waker *);

#endif
