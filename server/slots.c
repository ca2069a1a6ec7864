/*
 * slots: bookkeeping only; forking and signalling live in procs.c.
 */
#include <string.h>

#include "slots.h"

void
slot_table_init(struct slot_table *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < SLOT_MAX; i++)
		t->s[i].chan = t->s[i].inbox = -1;
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
		s->chan = s->inbox = -1;
		s->state = SLOT_WAITING;
		return s;
	}
	return NULL;
}

void
slot_release(struct slot *s)
{
	memset(s, 0, sizeof(*s));
	s->chan = s->inbox = -1;
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
