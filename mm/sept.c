/*
 * sept.c - the software EPT; see sept.h for the layout and invariants.
 */
#include "sept.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

union sept_table {
	uint64_t slot[SEPT_TABLE_ENTRIES]; /* levels 3..1: a table's address | SEPT_TABLE_FLAGS */
	sept_entry entry[SEPT_TABLE_ENTRIES]; /* level 0 */
};

_Static_assert(sizeof(union sept_table) == SEPT_TABLE_SIZE, "a table is one page");

/* Bits an in-place change (walk callback, sept_entry_slot user) may touch. */
#define SEPT_MUTABLE_BITS (SEPT_FLAGS_MASK & ~(SEPT_PRESENT | SEPT_SWAP))

static unsigned level_index(uint64_t gfn, int level)
{
	return (unsigned)(gfn >> (level * SEPT_LEVEL_BITS)) & (SEPT_TABLE_ENTRIES - 1);
}

/* The table a slot of levels 3..1 holds, or NULL. */
static inline union sept_table *next_table(const struct sept *sept, uint64_t slot)
{
	if (!(slot & SEPT_PRESENT))
		return NULL;
	return (union sept_table *)(sept->source.base + (slot & SEPT_ADDR_MASK));
}

static union sept_table *table_alloc(struct sept *sept, uint64_t *addr)
{
	union sept_table *t;

	if (sept->source.alloc) {
		t = sept->source.alloc(sept->source.ctx, addr);
	} else {
		t = aligned_alloc(SEPT_TABLE_SIZE, SEPT_TABLE_SIZE);
		if (t)
			memset(t, 0, sizeof(*t));
		*addr = (uint64_t)(uintptr_t)t;
	}
	if (!t) {
		errno = ENOMEM;
		return NULL;
	}
	sept->table_pages++;
	return t;
}

static void table_free(struct sept *sept, union sept_table *t, uint64_t addr, int level)
{
	if (level > 0)
		for (unsigned i = 0; i < SEPT_TABLE_ENTRIES; i++)
			if (t->slot[i])
				table_free(sept, next_table(sept, t->slot[i]),
					   t->slot[i] & SEPT_ADDR_MASK, level - 1);
	if (sept->source.free)
		sept->source.free(sept->source.ctx, t, addr);
	else
		free(t);
}

int sept_init_from(struct sept *sept, const struct sept_table_source *source)
{
	memset(sept, 0, sizeof(*sept));
	if (source)
		sept->source = *source;
	sept->root = table_alloc(sept, &sept->root_addr);
	return sept->root ? 0 : -1;
}

int sept_init(struct sept *sept)
{
	return sept_init_from(sept, NULL);
}

void sept_destroy(struct sept *sept)
{
	if (sept->root)
		table_free(sept, sept->root, sept->root_addr, SEPT_LEVELS - 1);
	memset(sept, 0, sizeof(*sept));
}

sept_entry sept_lookup(const struct sept *sept, uint64_t gfn)
{
	const union sept_table *t = sept->root;

	if (gfn > SEPT_MAX_GFN || !t)
		return 0;
	for (int level = SEPT_LEVELS - 1; level > 0; level--) {
		t = next_table(sept, t->slot[level_index(gfn, level)]);
		if (!t)
			return 0;
	}
	return t->entry[level_index(gfn, 0)];
}

sept_entry *sept_entry_slot(struct sept *sept, uint64_t gfn, int create)
{
	union sept_table *t = sept->root;

	if (gfn > SEPT_MAX_GFN || !t)
		return NULL;
	for (int level = SEPT_LEVELS - 1; level > 0; level--) {
		uint64_t *slot = &t->slot[level_index(gfn, level)];
		union sept_table *next = next_table(sept, *slot);

		if (!next) {
			uint64_t addr;

			if (!create)
				return NULL;
			next = table_alloc(sept, &addr);
			if (!next)
				return NULL;
			*slot = addr | SEPT_TABLE_FLAGS;
		}
		t = next;
	}
	return &t->entry[level_index(gfn, 0)];
}

/* The counters change under the owner's lock but are read without it
 * (statistics, heuristics): atomic updates. */
static void count(struct sept *sept, sept_entry old, sept_entry e)
{
	int64_t present = (int64_t)sept_is_present(e) - (int64_t)sept_is_present(old);
	int64_t swap = (int64_t)sept_is_swap(e) - (int64_t)sept_is_swap(old);
	if (present) {
		__atomic_add_fetch(&sept->present_pages, (uint64_t)present, __ATOMIC_RELAXED);
		int64_t charge = present;
		if (charge > 0 && sept->precharged) {
			charge = 0;
			sept->precharged--; /* charged before, within the limits */
		}
		if (charge)
			page_counter_charge(sept->counter, charge);
	}
	if (swap) {
		__atomic_add_fetch(&sept->swap_entries, (uint64_t)swap, __ATOMIC_RELAXED);
		int64_t charge = swap;
		if (charge > 0 && sept->swap_precharged) {
			charge = 0;
			sept->swap_precharged--;
		}
		if (charge)
			page_counter_charge(sept->swap_counter, charge);
	}
}

int sept_set(struct sept *sept, uint64_t gfn, sept_entry e)
{
	if (gfn > SEPT_MAX_GFN) {
		errno = EINVAL;
		return -1;
	}
	if (!e) {
		sept_clear(sept, gfn);
		return 0;
	}

	sept_entry *slot = sept_entry_slot(sept, gfn, 1);

	if (!slot)
		return -1;
	count(sept, *slot, e);
	*slot = e;
	return 0;
}

sept_entry sept_clear(struct sept *sept, uint64_t gfn)
{
	sept_entry *slot = sept_entry_slot(sept, gfn, 0);
	sept_entry old;

	if (!slot)
		return 0;
	old = *slot;
	count(sept, old, 0);
	*slot = 0;
	return old;
}

struct walk {
	struct sept *sept;
	uint64_t first, end; /* end <= 2^36 */
	sept_walk_fn fn;
	void *ctx;
};

/* Walks table t of the given level, which covers gfns from base. */
static int walk_table(struct walk *w, union sept_table *t, int level, uint64_t base)
{
	unsigned shift = (unsigned)level * SEPT_LEVEL_BITS;
	unsigned i = w->first > base ? (unsigned)((w->first - base) >> shift) : 0;

	w->sept->walk_tables++;
	for (; i < SEPT_TABLE_ENTRIES; i++) {
		uint64_t gfn = base + ((uint64_t)i << shift);
		int ret;

		if (gfn >= w->end)
			break;
		if (level > 0) {
			union sept_table *next = next_table(w->sept, t->slot[i]);

			if (!next)
				continue;
			ret = walk_table(w, next, level - 1, gfn);
		} else {
			sept_entry old = t->entry[i];

			if (!old)
				continue;
			ret = w->fn(w->ctx, gfn, &t->entry[i]);
			if ((old ^ t->entry[i]) & ~SEPT_MUTABLE_BITS) {
				fprintf(stderr,
					"sept_walk: callback changed gfn %#llx from %#llx to %#llx "
					"beyond its flag bits\n",
					(unsigned long long)gfn, (unsigned long long)old,
					(unsigned long long)t->entry[i]);
				abort();
			}
		}
		if (ret)
			return ret;
	}
	return 0;
}

int sept_walk(struct sept *sept, uint64_t first_gfn, uint64_t end_gfn, sept_walk_fn fn, void *ctx)
{
	struct walk w = {
		.sept = sept,
		.first = first_gfn,
		.end = end_gfn > SEPT_MAX_GFN + 1 ? SEPT_MAX_GFN + 1 : end_gfn,
		.fn = fn,
		.ctx = ctx,
	};

	if (!sept->root || w.first >= w.end)
		return 0;
	return walk_table(&w, sept->root, SEPT_LEVELS - 1, 0);
}

uint64_t sept_table_bytes(const struct sept *sept)
{
	return sept->table_pages * SEPT_TABLE_SIZE;
}
