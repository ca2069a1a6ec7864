/*
 * slots: bookkeeping only; forking and signalling live in supervise.c.
 */
#include <string.h>

#include "slots.h"

void
slot_table_init(struct slot_table *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < SLOT_MAX; i++)
		t->s[i].chan = -1;
}

struct slot *
slot_alloc(struct slot_table *t, int id, unsigned gen)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &t->s[i];

		if (s->state != SLOT_FREE)
			continue;
		memset(s, 0, sizeof(*s));
		s->id = id;
		s->gen = gen;
		s->chan = -1;
		s->state = SLOT_WAITING;
		return s;
	}
	return NULL;
}

void
slot_release(struct slot *s)
{
	memset(s, 0, sizeof(*s));
	s->chan = -1;
	s->state = SLOT_FREE;
}

struct slot *
slot_by_pid(struct slot_table *t, pid_t pid)
{
	if (pid <= 0)
		return NULL;
	for (int i = 0; i < SLOT_MAX; i++)
		if (t->s[i].state != SLOT_FREE && t->s[i].pid == pid)
			return &t->s[i];
	return NULL;
}

struct slot *
slot_find(struct slot_table *t, unsigned gen, int id)
{
	for (int i = 0; i < SLOT_MAX; i++) {
		struct slot *s = &t->s[i];

		if (s->state != SLOT_FREE && s->state != SLOT_DRAINING && s->gen == gen && s->id == id)
			return s;
	}
	return NULL;
}

int
slot_count(const struct slot_table *t, unsigned gen, unsigned state_mask)
{
	int n = 0;

	for (int i = 0; i < SLOT_MAX; i++)
		if (t->s[i].state != SLOT_FREE && t->s[i].gen == gen &&
		    (state_mask & SLOT_MASK(t->s[i].state)))
			n++;
	return n;
}

/* Processes that exist, whatever their generation. */
int
slot_count_alive(const struct slot_table *t)
{
	int n = 0;

	for (int i = 0; i < SLOT_MAX; i++)
		if (t->s[i].pid > 0)
			n++;
	return n;
}

/* The oldest generation that still has a process; -1 when none has. */
int
slot_oldest_gen(const struct slot_table *t, unsigned *gen)
{
	int found = 0;

	for (int i = 0; i < SLOT_MAX; i++) {
		const struct slot *s = &t->s[i];

		if (s->pid > 0 && (!found || s->gen < *gen)) {
			*gen = s->gen;
			found = 1;
		}
	}
	return found ? 0 : -1;
}

/* The highest worker number in gen among the given states, or -1. */
int
slot_highest_id(const struct slot_table *t, unsigned gen, unsigned state_mask)
{
	int id = -1;

	for (int i = 0; i < SLOT_MAX; i++) {
		const struct slot *s = &t->s[i];

		if (s->state != SLOT_FREE && s->gen == gen && (state_mask & SLOT_MASK(s->state)) &&
		    s->id > id)
			id = s->id;
	}
	return id;
}

const char *
slot_state_name(enum slot_state st)
{
	static const char *const names[] = { "free", "starting", "running", "draining",
	    "waiting", "failed" };

	return names[st];
}
