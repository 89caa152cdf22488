/*
 * unstable_table.c - the unstable table (see unstable_table.h).
 */
#include "unstable_table.h"

#include <pthread.h>
#include <stdlib.h>

#include "mm/slab.h"

#define INITIAL_BUCKETS 4096

static struct slab_cache *item_cache;
static pthread_once_t item_cache_once = PTHREAD_ONCE_INIT;

static void create_item_cache(void)
{
	item_cache = slab_cache_create("ksm_unstable", sizeof(struct ksm_unstable_item), 0);
}

int unstable_table_init(struct ksm_unstable_table *t)
{
	pthread_once(&item_cache_once, create_item_cache);
	t->nbuckets = INITIAL_BUCKETS;
	t->items = 0;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	return item_cache && t->buckets ? 0 : -1;
}

void unstable_table_destroy(struct ksm_unstable_table *t)
{
	unstable_table_clear(t);
	free(t->buckets);
	t->buckets = NULL;
}

static size_t bucket_of(const struct ksm_unstable_table *t, uint64_t hash)
{
	return (size_t)(hash ^ (hash >> 31)) & (t->nbuckets - 1);
}

static void grow(struct ksm_unstable_table *t)
{
	size_t n = t->nbuckets * 2;
	struct ksm_unstable_item **buckets = calloc(n, sizeof(*buckets));
	if (!buckets)
		return;
	struct ksm_unstable_table bigger = {buckets, n, t->items};
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct ksm_unstable_item *item = t->buckets[b];
		while (item) {
			struct ksm_unstable_item *next = item->next;
			size_t i = bucket_of(&bigger, item->hash);
			item->next = buckets[i];
			buckets[i] = item;
			item = next;
		}
	}
	free(t->buckets);
	*t = bigger;
}

int unstable_table_insert(struct ksm_unstable_table *t, uint64_t hash, struct ksm_vm *vm,
			  uint64_t gfn, uint64_t frame)
{
	if (t->items >= t->nbuckets)
		grow(t);
	struct ksm_unstable_item *item = slab_alloc(item_cache);
	if (!item)
		return -1;
	item->hash = hash;
	item->vm = vm;
	item->gfn = gfn;
	item->frame = frame;
	size_t i = bucket_of(t, hash);
	item->next = t->buckets[i];
	t->buckets[i] = item;
	t->items++;
	return 0;
}

struct ksm_unstable_item *unstable_table_first(struct ksm_unstable_table *t, uint64_t hash)
{
	struct ksm_unstable_item *item = t->buckets[bucket_of(t, hash)];
	while (item && item->hash != hash)
		item = item->next;
	return item;
}

struct ksm_unstable_item *unstable_table_next(struct ksm_unstable_item *item)
{
	uint64_t hash = item->hash;
	item = item->next;
	while (item && item->hash != hash)
		item = item->next;
	return item;
}

void unstable_table_remove(struct ksm_unstable_table *t, struct ksm_unstable_item *item)
{
	for (struct ksm_unstable_item **link = &t->buckets[bucket_of(t, item->hash)]; *link;
	     link = &(*link)->next) {
		if (*link == item) {
			*link = item->next;
			t->items--;
			slab_free(item_cache, item);
			return;
		}
	}
}

void unstable_table_clear(struct ksm_unstable_table *t)
{
	for (size_t b = 0; t->buckets && b < t->nbuckets; b++) {
		struct ksm_unstable_item *item = t->buckets[b];
		while (item) {
			struct ksm_unstable_item *next = item->next;
			slab_free(item_cache, item);
			item = next;
		}
		t->buckets[b] = NULL;
	}
	t->items = 0;
}

void unstable_table_forget_vm(struct ksm_unstable_table *t, const struct ksm_vm *vm)
{
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct ksm_unstable_item **link = &t->buckets[b];
		while (*link) {
			struct ksm_unstable_item *item = *link;
			if (item->vm != vm) {
				link = &item->next;
				continue;
			}
			*link = item->next;
			t->items--;
			slab_free(item_cache, item);
		}
	}
}
