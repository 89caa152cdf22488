/*
 * unstable_table.c - the unstable table (see unstable_table.h).
 */
#include "unstable_table.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 8192

int unstable_table_init(struct ksm_unstable_table *t)
{
	t->nslots = INITIAL_SLOTS;
	t->items = t->used = 0;
	t->slots = calloc(t->nslots, sizeof(*t->slots));
	return t->slots ? 0 : -1;
}

void unstable_table_destroy(struct ksm_unstable_table *t)
{
	free(t->slots);
	t->slots = NULL;
	t->nslots = t->items = t->used = 0;
}

static size_t slot_of(const struct ksm_unstable_table *t, uint64_t hash)
{
	return (size_t)(hash ^ (hash >> 31)) & (t->nslots - 1);
}

/* Into a table of n slots, dropping removed ones. */
static int rehash(struct ksm_unstable_table *t, size_t n)
{
	struct ksm_unstable_item *slots = calloc(n, sizeof(*slots));
	if (!slots)
		return -1;
	struct ksm_unstable_table bigger = {slots, n, 0, 0};
	for (size_t i = 0; i < t->nslots; i++) {
		const struct ksm_unstable_item *it = &t->slots[i];
		if (!it->vm || it->vm == UNSTABLE_REMOVED)
			continue;
		size_t j = slot_of(&bigger, it->hash);
		while (slots[j].vm)
			j = (j + 1) & (n - 1);
		slots[j] = *it;
		bigger.items++;
		bigger.used++;
	}
	free(t->slots);
	*t = bigger;
	return 0;
}

int unstable_table_insert(struct ksm_unstable_table *t, uint64_t hash, struct ksm_vm *vm,
			  uint64_t gfn, uint64_t frame)
{
	if ((t->used + 1) * 10 > t->nslots * 7 &&
	    rehash(t, t->items * 10 > t->nslots * 3 ? t->nslots * 2 : t->nslots))
		return -1;
	size_t i = slot_of(t, hash);
	while (t->slots[i].vm && t->slots[i].vm != UNSTABLE_REMOVED)
		i = (i + 1) & (t->nslots - 1);
	if (!t->slots[i].vm)
		t->used++;
	t->slots[i] = (struct ksm_unstable_item){hash, vm, gfn, frame};
	t->items++;
	return 0;
}

/* The first live item with `hash` from slot i on, or NULL at an empty slot. */
static struct ksm_unstable_item *probe(struct ksm_unstable_table *t, size_t i, uint64_t hash)
{
	for (;; i = (i + 1) & (t->nslots - 1)) {
		struct ksm_unstable_item *it = &t->slots[i];
		if (!it->vm)
			return NULL;
		if (it->vm != UNSTABLE_REMOVED && it->hash == hash)
			return it;
	}
}

void unstable_table_prefetch(const struct ksm_unstable_table *t, uint64_t hash)
{
	__builtin_prefetch(&t->slots[slot_of(t, hash)]);
}

struct ksm_unstable_item *unstable_table_first(struct ksm_unstable_table *t, uint64_t hash)
{
	return t->items ? probe(t, slot_of(t, hash), hash) : NULL;
}

struct ksm_unstable_item *unstable_table_next(struct ksm_unstable_table *t,
					      struct ksm_unstable_item *item)
{
	size_t i = (size_t)(item - t->slots);
	return probe(t, (i + 1) & (t->nslots - 1), item->hash);
}

void unstable_table_remove(struct ksm_unstable_table *t, struct ksm_unstable_item *item)
{
	item->vm = UNSTABLE_REMOVED; /* keeps the probe runs through it intact */
	t->items--;
}

void unstable_table_clear(struct ksm_unstable_table *t)
{
	if (t->used)
		memset(t->slots, 0, t->nslots * sizeof(*t->slots));
	t->items = t->used = 0;
}

void unstable_table_forget_vm(struct ksm_unstable_table *t, const struct ksm_vm *vm)
{
	for (size_t i = 0; i < t->nslots; i++) {
		if (t->slots[i].vm == vm) {
			t->slots[i].vm = UNSTABLE_REMOVED;
			t->items--;
		}
	}
}
