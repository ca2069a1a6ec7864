/*
 * conntab: open connections per listener and per client address, shared by
 * the master and every worker.
 *
 * One hash table (open addressing, linear probing, deletion by backward
 * shift, so no tombstones pile up) in an anonymous shared mapping.  A key is
 * (kind, listener id, address, owner): kind LISTENER counts a listener's
 * connections (address all zeros), kind ADDR one client address on one
 * listener.  Owner OWNER_ALL is the total; every other owner is a worker
 * slot, whose own count lets the master take back what a dead worker held.
 * Entries whose count drops to zero are deleted, so the table holds only
 * what is open.  The hash is seeded at start so that clients cannot choose
 * colliding addresses.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include "conntab.h"

#define OWNER_ALL	0xffff
#define KIND_FREE	0
#define KIND_LISTENER	1
#define KIND_ADDR	2

struct entry {
	uint8_t		 key[16];
	uint16_t	 lsn;
	uint16_t	 owner;
	uint8_t		 kind;
	uint32_t	 hash;
	uint32_t	 count;
};

/* An entry copied in pieces of 8 bytes or more moves its hash and count together. */
_Static_assert(offsetof(struct entry, hash) % 8 == 0 &&
    offsetof(struct entry, count) == offsetof(struct entry, hash) + 4, "hash and count apart");

struct shared {
	pthread_mutex_t	 lock;
	uint64_t	 seed;
	unsigned long	 mask;		/* capacity - 1; capacity is a power of two */
	unsigned long	 used;
	uint32_t	 owner_conns[CT_MAX_OWNERS];	/* listener connections per owner */
	struct log_limit limits[CT_NREASONS];
	struct entry	 e[];
};

static struct shared	*sh;
static size_t		 sh_size;

static const char *const reason_names[CT_NREASONS] = {
	"admitted", "allow/deny", "max_connections", "max_connections_per_ip",
	"connection table full",
};

static uint32_t
hash(const struct entry *k)
{
	uint64_t w[2], h = sh->seed ^ ((uint64_t)k->kind << 48 | (uint64_t)k->owner << 16 | k->lsn);

	memcpy(w, k->key, sizeof(w));
	for (int i = 0; i < 2; i++) {
		h ^= w[i];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	h *= 0xbf58476d1ce4e5b9ULL;
	return (uint32_t)(h ^ (h >> 32));
}

static int
same(const struct entry *a, const struct entry *b)
{
	return a->kind == b->kind && a->lsn == b->lsn && a->owner == b->owner &&
	    memcmp(a->key, b->key, sizeof(a->key)) == 0;
}

/* The index of k, or of the free entry where it would go. */
static unsigned long
find(const struct entry *k)
{
	unsigned long i = k->hash & sh->mask;

	while (sh->e[i].kind != KIND_FREE && !same(&sh->e[i], k))
		i = (i + 1) & sh->mask;
	return i;
}

/* Room for n more entries, keeping the table at most 3/4 full. */
static int
room(unsigned long n)
{
	return sh->used + n <= (sh->mask + 1) / 4 * 3;
}

static void
delete_at(unsigned long i)
{
	unsigned long j = i;

	for (;;) {
		unsigned long home;

		j = (j + 1) & sh->mask;
		if (sh->e[j].kind == KIND_FREE)
			break;
		home = sh->e[j].hash & sh->mask;
		/* The entry at j may fill the hole at i unless its home lies in (i, j]. */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			sh->e[i] = sh->e[j];
			i = j;
		}
	}
	sh->e[i].kind = KIND_FREE;
	sh->used--;
}

/* Add delta to k's count, creating or deleting the entry; room() was checked. */
static void
add(const struct entry *k, long delta)
{
	unsigned long i = find(k);
	struct entry *e = &sh->e[i];

	if (e->kind == KIND_FREE) {
		if (delta <= 0)
			return;
		*e = *k;
		e->count = 0;
		sh->used++;
	}
	if (delta < 0 && (unsigned long)-delta >= e->count)
		delete_at(i);
	else
		e->count += delta;
}

static long
get(const struct entry *k)
{
	const struct entry *e = &sh->e[find(k)];

	return e->kind == KIND_FREE ? 0 : e->count;
}

static struct entry
make_key(int kind, int lsn, const uint8_t key[16], int owner)
{
	struct entry k;

	memset(&k, 0, sizeof(k));
	k.kind = kind;
	k.lsn = lsn;
	k.owner = owner;
	if (key)
		memcpy(k.key, key, sizeof(k.key));
	k.hash = hash(&k);
	return k;
}

/* k with its owner replaced by OWNER_ALL: the total it belongs to. */
static struct entry
total_of(const struct entry *k)
{
	return make_key(k->kind, k->lsn, k->key, OWNER_ALL);
}

/*
 * Whether e is an owner's entry that a dying process left whole: an entry
 * it was moving may stand twice, or a slot may hold part of two entries
 * (the hash, stored beside the count, then does not match the key).
 */
static int
whole(const struct entry *e)
{
	return (e->kind == KIND_LISTENER || e->kind == KIND_ADDR) && e->owner < CT_MAX_OWNERS &&
	    e->count > 0 && e->hash == hash(e);
}

/* Put k's count back into the table laid out anew: its own entry and its total. */
static void
put_back(const struct entry *k)
{
	struct entry t = total_of(k);
	unsigned long i = find(k);

	if (sh->e[i].kind != KIND_FREE)
		return;		/* the second copy of a moved entry */
	sh->e[i] = *k;
	sh->used++;
	if (k->kind == KIND_LISTENER)
		sh->owner_conns[k->owner] += k->count;
	i = find(&t);
	if (sh->e[i].kind == KIND_FREE) {
		sh->e[i] = t;
		sh->used++;
	}
	sh->e[i].count += k->count;
}

/*
 * A process died holding the lock, perhaps between updating a total and
 * its owner's count, perhaps in the middle of moving entries.  The owners'
 * whole entries are the truth: lay the table out again from them and sum
 * the totals anew.  Whatever the dead process was changing of its own is
 * the master's to forget.
 */
static void
rebuild(void)
{
	unsigned long n = 0, cap = sh->mask + 1;
	unsigned long max = sh->used < cap ? sh->used + 1 : cap;	/* + a moved entry's copy */
	struct entry *keep = malloc(max * sizeof(*keep));

	for (unsigned long i = 0; i < cap; i++) {
		if (sh->e[i].kind == KIND_FREE)
			continue;
		if (keep && n < max && whole(&sh->e[i]))
			keep[n++] = sh->e[i];
		sh->e[i].kind = KIND_FREE;
	}
	sh->used = 0;
	memset(sh->owner_conns, 0, sizeof(sh->owner_conns));
	for (unsigned long k = 0; k < n && sh->used + 2 < cap; k++)
		put_back(&keep[k]);
	if (keep == NULL)
		log_warnx("connection table: out of memory; every count starts again from zero");
	free(keep);
}

static void
lock(void)
{
	int r = pthread_mutex_lock(&sh->lock);

	if (r == EOWNERDEAD) {
		rebuild();
		pthread_mutex_consistent(&sh->lock);
		log_warnx("connection table: a process died while updating it; counts rebuilt");
	} else if (r != 0) {
		fatalx("connection table: cannot lock: %s", strerror(r));
	}
}

static void
unlock(void)
{
	pthread_mutex_unlock(&sh->lock);
}

/*
 * Map the table for capacity entries (rounded up to a power of two), before
 * the first fork.  Pages are touched only as entries are used.
 */
int
ct_init(unsigned long capacity)
{
	pthread_mutexattr_t ma;
	unsigned long cap = 1024;

	while (cap < capacity && cap < (1UL << 24))
		cap <<= 1;
	sh_size = sizeof(*sh) + cap * sizeof(struct entry);
	sh = mmap(NULL, sh_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE,
	    -1, 0);
	if (sh == MAP_FAILED) {
		sh = NULL;
		log_warn("connection table: mmap of %zu bytes", sh_size);
		return -1;
	}
	if (getrandom(&sh->seed, sizeof(sh->seed), GRND_NONBLOCK) != sizeof(sh->seed))
		sh->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL ^ (uintptr_t)&ma;
	sh->mask = cap - 1;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&sh->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	return 0;
}

void
ct_free(void)
{
	if (sh)
		munmap(sh, sh_size);
	sh = NULL;
}

/* The address as max_connections_per_ip counts it; 0 for a unix peer. */
int
ct_addr_key(const struct sockaddr *sa, int prefix6, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;	/* as ::ffff:a.b.c.d */
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 1;
	}
	if (sa->sa_family != AF_INET6)
		return 0;
	memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)key))
		return 1;
	for (int bit = prefix6; bit < 128; bit++)
		key[bit / 8] &= ~(0x80 >> (bit % 8));
	return 1;
}

/*
 * Count a new connection of owner on listener lsn from sa, unless that
 * would pass a cap in lim.  On CT_ADMIT, t says what to give back.  sa
 * NULL: the client is not known yet (a PROXY header will name it), so
 * only the listener's count is taken; ct_acquire_ip adds the client's.
 */
enum ct_refusal
ct_acquire(int lsn, int owner, const struct sockaddr *sa, const struct ct_limits *lim,
    struct ct_ticket *t)
{
	struct entry lt = make_key(KIND_LISTENER, lsn, NULL, OWNER_ALL);
	struct entry lo = make_key(KIND_LISTENER, lsn, NULL, owner);
	struct entry at, ao;
	int has_addr, capped = lim->max_total > 0 || lim->max_per_ip > 0;

	memset(t, 0, sizeof(*t));
	t->lsn = lsn;
	if (sh == NULL)
		return CT_ADMIT;	/* uncounted: no table */
	has_addr = sa ? ct_addr_key(sa, lim->prefix6, t->key) : 0;
	at = make_key(KIND_ADDR, lsn, t->key, OWNER_ALL);
	ao = make_key(KIND_ADDR, lsn, t->key, owner);
	lock();
	if (lim->max_total > 0 && get(&lt) >= lim->max_total) {
		unlock();
		return CT_REFUSE_MAX;
	}
	if (has_addr && lim->max_per_ip > 0 && get(&at) >= lim->max_per_ip) {
		unlock();
		return CT_REFUSE_PER_IP;
	}
	if (!room(4)) {
		unlock();
		return capped ? CT_REFUSE_FULL : CT_ADMIT;	/* uncounted */
	}
	add(&lt, 1);
	add(&lo, 1);
	sh->owner_conns[owner]++;
	t->counted = 1;
	if (has_addr) {
		add(&at, 1);
		add(&ao, 1);
		t->per_ip = 1;
	}
	unlock();
	return CT_ADMIT;
}

/*
 * Count the client sa of a connection that ct_acquire admitted without an
 * address, unless that would pass max_per_ip.  The listener's count stays
 * as it is, so no other connection can take its place meanwhile.  On
 * CT_ADMIT, t also gives the address back when it is released.
 */
enum ct_refusal
ct_acquire_ip(int owner, const struct sockaddr *sa, const struct ct_limits *lim,
    struct ct_ticket *t)
{
	struct entry at, ao;
	uint8_t key[16];

	if (sh == NULL || !t->counted || t->per_ip || !ct_addr_key(sa, lim->prefix6, key))
		return CT_ADMIT;	/* uncounted, or counted already */
	at = make_key(KIND_ADDR, t->lsn, key, OWNER_ALL);
	ao = make_key(KIND_ADDR, t->lsn, key, owner);
	lock();
	if (lim->max_per_ip > 0 && get(&at) >= lim->max_per_ip) {
		unlock();
		return CT_REFUSE_PER_IP;
	}
	if (!room(2)) {
		unlock();
		return lim->max_per_ip > 0 ? CT_REFUSE_FULL : CT_ADMIT;
	}
	add(&at, 1);
	add(&ao, 1);
	memcpy(t->key, key, sizeof(t->key));
	t->per_ip = 1;
	unlock();
	return CT_ADMIT;
}

void
ct_release(int owner, const struct ct_ticket *t)
{
	struct entry k;

	if (!t->counted || sh == NULL)
		return;
	lock();
	k = make_key(KIND_LISTENER, t->lsn, NULL, OWNER_ALL);
	add(&k, -1);
	k = make_key(KIND_LISTENER, t->lsn, NULL, owner);
	add(&k, -1);
	if (sh->owner_conns[owner])
		sh->owner_conns[owner]--;
	if (t->per_ip) {
		k = make_key(KIND_ADDR, t->lsn, t->key, OWNER_ALL);
		add(&k, -1);
		k = make_key(KIND_ADDR, t->lsn, t->key, owner);
		add(&k, -1);
	}
	unlock();
}

/*
 * In the master, after a worker exited: whatever it still counted is
 * closed now (the kernel closed its sockets), so take it off the totals.
 */
void
ct_forget_owner(int owner)
{
	int again;

	if (sh == NULL)
		return;
	lock();
	if (sh->owner_conns[owner] == 0) {
		unlock();
		return;
	}
	do {	/* a deletion may shift an entry behind the scan: scan until clean */
		again = 0;
		for (unsigned long i = 0; i <= sh->mask; i++) {
			struct entry *e = &sh->e[i];

			if (e->kind != KIND_FREE && e->owner == owner) {
				struct entry t = total_of(e);
				long n = e->count;

				delete_at(i);
				add(&t, -n);
				again = 1;
			}
		}
	} while (again);
	sh->owner_conns[owner] = 0;
	unlock();
}

/* Open connections on listener lsn: all of them (sa NULL) or from sa's address. */
long
ct_count(int lsn, const struct sockaddr *sa, int prefix6)
{
	uint8_t key[16];
	struct entry k;
	long n;

	if (sa && !ct_addr_key(sa, prefix6, key))
		return 0;
	k = sa ? make_key(KIND_ADDR, lsn, key, OWNER_ALL) : make_key(KIND_LISTENER, lsn, NULL,
	    OWNER_ALL);
	lock();
	n = get(&k);
	unlock();
	return n;
}

/* Entries in use: two per listener and per client address with connections. */
unsigned long
ct_used(void)
{
	unsigned long n;

	lock();
	n = sh->used;
	unlock();
	return n;
}

const char *
ct_reason_name(enum ct_refusal r)
{
	return r < CT_NREASONS ? reason_names[r] : "?";
}

/* One log limiter per reason for the whole server: one line a second at most. */
struct log_limit *
ct_log_limit(enum ct_refusal r)
{
	static struct log_limit local[CT_NREASONS];

	return sh ? &sh->limits[r] : &local[r];
}
