/*
 * conntab: the connections open in the whole server, counted per listener
 * and per client address, in memory that the master maps before forking
 * and every worker shares.  max_connections and max_connections_per_ip are
 * checked against these counts, so the caps hold across all workers.
 *
 * Each count is kept twice: as a total and per owner (the worker's slot in
 * the master's table).  When a worker dies without closing its connections,
 * the master subtracts the dead owner's counts from the totals
 * (ct_forget_owner).  A process-shared robust mutex guards the table; if a
 * worker dies holding it, the next locker rebuilds the totals from the
 * owners' counts.
 */
#ifndef INGESTD_CONNTAB_H
#define INGESTD_CONNTAB_H

#include <stdint.h>
#include <sys/socket.h>

#include "log.h"

#define CT_MAX_LISTENERS	256	/* listener ids: sockets of two generations */
#define CT_MAX_OWNERS		4096

/* Why a connection was refused; also indexes the refusal counters. */
enum ct_refusal {
	CT_ADMIT = 0,
	CT_REFUSE_ACL,		/* allow/deny */
	CT_REFUSE_MAX,		/* max_connections */
	CT_REFUSE_PER_IP,	/* max_connections_per_ip */
	CT_REFUSE_FULL,		/* a cap is set and the table has no room to count */
	CT_NREASONS
};

struct ct_limits {
	long	 max_total;	/* 0: no cap */
	long	 max_per_ip;	/* 0: no cap */
	int	 prefix6;	/* IPv6 prefix length counted as one address */
};

/* What one connection holds in the table, to give back when it closes. */
struct ct_ticket {
	uint8_t	 key[16];	/* the address as counted: IPv4 or an IPv6 prefix */
	uint16_t lsn;
	uint8_t	 counted;	/* in the listener's total */
	uint8_t	 per_ip;	/* and under key */
};

int		 ct_init(unsigned long capacity);
void		 ct_free(void);
enum ct_refusal	 ct_acquire(int lsn, int owner, const struct sockaddr *,
		    const struct ct_limits *, struct ct_ticket *);
enum ct_refusal	 ct_acquire_ip(int owner, const struct sockaddr *, const struct ct_limits *,
		    struct ct_ticket *);
void		 ct_release(int owner, const struct ct_ticket *);
void		 ct_forget_owner(int owner);
long		 ct_count(int lsn, const struct sockaddr *, int prefix6);
int		 ct_addr_key(const struct sockaddr *, int prefix6, uint8_t key[16]);
unsigned long	 ct_used(void);
const char	*ct_reason_name(enum ct_refusal);
struct log_limit *ct_log_limit(enum ct_refusal);

#endif
