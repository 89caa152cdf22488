/*
 * stable_table.c - the stable table (see stable_table.h).
 */
#include "stable_table.h"

#include <pthread.h>
#include <stdlib.h>

#include "mm/frame_pool.h"
#include "mm/rmap.h"
#include "mm/slab.h"

#define INITIAL_BUCKETS 1024

static struct slab_cache *node_cache;
static pthread_once_t node_cache_once = PTHREAD_ONCE_INIT;

static void create_node_cache(void)
{
	node_cache = slab_cache_create("ksm_stable_node", sizeof(struct ksm_stable_node), 0);
}

int stable_table_init(struct ksm_stable_table *t)
{
	pthread_once(&node_cache_once, create_node_cache);
	t->nbuckets = INITIAL_BUCKETS;
	t->nodes = 0;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	return node_cache && t->buckets ? 0 : -1;
}

static void free_node(struct ksm_stable_node *node, struct frame_pool *pool)
{
	if (node->shared) {
		pthread_mutex_lock(&pool->shared_lock);
		node->shared->refs--;
		frame_pool_put_shared(pool, node->shared);
		pthread_mutex_unlock(&pool->shared_lock);
	}
	slab_free(node_cache, node);
}

void stable_table_destroy(struct ksm_stable_table *t, struct frame_pool *pool)
{
	for (size_t b = 0; t->buckets && b < t->nbuckets; b++) {
		struct ksm_stable_node *node = t->buckets[b].first;
		while (node) {
			struct ksm_stable_node *next = node->next;
			free_node(node, pool);
			node = next;
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	t->nodes = 0;
}

static size_t bucket_of(const struct ksm_stable_table *t, uint64_t hash)
{
	return (size_t)(hash ^ (hash >> 29)) & (t->nbuckets - 1);
}

/* The bucket filter's bit for a hash: bits the bucket index does not use
 * (it takes the low bits of hash ^ hash >> 29). */
static uint64_t filter_bit(uint64_t hash)
{
	return 1ull << (hash >> 58);
}

/* The filter again after a node left the chain. */
static void refilter(struct ksm_stable_bucket *b)
{
	b->filter = 0;
	for (const struct ksm_stable_node *n = b->first; n; n = n->next)
		b->filter |= filter_bit(n->hash);
}

static void grow(struct ksm_stable_table *t)
{
	size_t n = t->nbuckets * 2;
	struct ksm_stable_bucket *buckets = calloc(n, sizeof(*buckets));
	if (!buckets)
		return; /* keep the longer chains */
	struct ksm_stable_table bigger = {buckets, n, t->nodes};
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct ksm_stable_node *node = t->buckets[b].first;
		while (node) {
			struct ksm_stable_node *next = node->next;
			struct ksm_stable_bucket *to = &buckets[bucket_of(&bigger, node->hash)];
			node->next = to->first;
			to->first = node;
			to->filter |= filter_bit(node->hash);
			node = next;
		}
	}
	free(t->buckets);
	*t = bigger;
}

struct ksm_stable_node *stable_table_add_pending(struct ksm_stable_table *t, uint64_t hash,
						 uint64_t frame, struct ksm_vm *vm, uint64_t gfn)
{
	if (t->nodes >= t->nbuckets)
		grow(t);
	struct ksm_stable_node *node = slab_alloc(node_cache);
	if (!node)
		return NULL;
	node->hash = hash;
	node->frame = frame;
	node->pending_vm = vm;
	node->pending_gfn = gfn;
	struct ksm_stable_bucket *b = &t->buckets[bucket_of(t, hash)];
	node->next = b->first;
	b->first = node;
	b->filter |= filter_bit(hash);
	t->nodes++;
	return node;
}

void stable_table_remove(struct ksm_stable_table *t, struct ksm_stable_node *node,
			 struct frame_pool *pool)
{
	struct ksm_stable_bucket *b = &t->buckets[bucket_of(t, node->hash)];
	for (struct ksm_stable_node **link = &b->first; *link; link = &(*link)->next) {
		if (*link == node) {
			*link = node->next;
			refilter(b);
			t->nodes--;
			free_node(node, pool);
			return;
		}
	}
}

void stable_table_prefetch(const struct ksm_stable_table *t, uint64_t hash)
{
	__builtin_prefetch(&t->buckets[bucket_of(t, hash)]);
}

struct ksm_stable_node *stable_table_first(struct ksm_stable_table *t, uint64_t hash)
{
	const struct ksm_stable_bucket *b = &t->buckets[bucket_of(t, hash)];
	if (!(b->filter & filter_bit(hash)))
		return NULL;
	struct ksm_stable_node *node = b->first;
	while (node && node->hash != hash)
		node = node->next;
	return node;
}

struct ksm_stable_node *stable_table_next(struct ksm_stable_node *node)
{
	uint64_t hash = node->hash;
	node = node->next;
	while (node && node->hash != hash)
		node = node->next;
	return node;
}

uint32_t stable_node_mappers(const struct ksm_stable_node *node)
{
	return (node->shared ? node->shared->count : 1) + node->queued;
}

int stable_node_dead(const struct ksm_stable_node *node)
{
	return node->shared && node->shared->frame == RMAP_FRAME_GONE;
}

size_t stable_table_sweep(struct ksm_stable_table *t, struct frame_pool *pool)
{
	size_t removed = 0;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct ksm_stable_node **link = &t->buckets[b].first, *dead = NULL;
		if (!*link)
			continue;
		pthread_mutex_lock(&pool->shared_lock);
		while (*link) {
			struct ksm_stable_node *node = *link;
			if (!stable_node_dead(node)) {
				link = &node->next;
				continue;
			}
			*link = node->next;
			node->next = dead;
			dead = node;
		}
		pthread_mutex_unlock(&pool->shared_lock);
		if (dead)
			refilter(&t->buckets[b]);
		while (dead) {
			struct ksm_stable_node *node = dead;
			dead = node->next;
			t->nodes--;
			free_node(node, pool);
			removed++;
		}
	}
	return removed;
}

void stable_table_chains(const struct ksm_stable_table *t, uint64_t *chains, uint64_t *dups)
{
	*chains = *dups = 0;
	for (size_t b = 0; b < t->nbuckets; b++) {
		for (const struct ksm_stable_node *n = t->buckets[b].first; n; n = n->next) {
			if (!n->shared)
				continue;
			/* Count each hash once, at its first shared node here. */
			int first = 1;
			for (const struct ksm_stable_node *m = t->buckets[b].first; m != n;
			     m = m->next)
				if (m->shared && m->hash == n->hash)
					first = 0;
			if (!first)
				continue;
			uint64_t k = 0;
			for (const struct ksm_stable_node *m = n; m; m = m->next)
				k += m->shared && m->hash == n->hash;
			if (k > 1) {
				(*chains)++;
				*dups += k;
			}
		}
	}
}
