/*
 * rmap.c - mapper lists of shared frames.
 */
#include "rmap.h"

#include <stddef.h>

#include "slab.h"

static struct slab_cache *mapper_cache, *shared_cache;

int rmap_init(void)
{
	if (mapper_cache)
		return 0;
	mapper_cache = slab_cache_create("rmap_mapper", sizeof(struct rmap_mapper), 0);
	shared_cache = slab_cache_create("rmap_shared", sizeof(struct rmap_shared), 0);
	return mapper_cache && shared_cache ? 0 : -1;
}

void rmap_exit(void)
{
	if (mapper_cache)
		slab_cache_destroy(mapper_cache);
	if (shared_cache)
		slab_cache_destroy(shared_cache);
	mapper_cache = shared_cache = NULL;
}

struct rmap_shared *rmap_shared_create(uint64_t frame)
{
	struct rmap_shared *shared = slab_alloc(shared_cache);
	if (shared)
		shared->frame = frame;
	return shared;
}

void rmap_shared_destroy(struct rmap_shared *shared)
{
	struct rmap_mapper *m = shared->mappers;
	while (m) {
		struct rmap_mapper *next = m->next;
		slab_free(mapper_cache, m);
		m = next;
	}
	slab_free(shared_cache, shared);
}

int rmap_shared_add(struct rmap_shared *shared, uint16_t vm_id, uint64_t gfn)
{
	struct rmap_mapper *m = slab_alloc(mapper_cache);
	if (!m)
		return -1;
	m->vm_id = vm_id;
	m->gfn = (uint32_t)gfn;
	m->next = shared->mappers;
	shared->mappers = m;
	shared->count++;
	return 0;
}

int rmap_shared_remove(struct rmap_shared *shared, uint16_t vm_id, uint64_t gfn)
{
	for (struct rmap_mapper **link = &shared->mappers; *link; link = &(*link)->next) {
		struct rmap_mapper *m = *link;
		if (m->vm_id == vm_id && m->gfn == (uint32_t)gfn) {
			*link = m->next;
			slab_free(mapper_cache, m);
			shared->count--;
			return 0;
		}
	}
	return -1;
}

int rmap_shared_contains(const struct rmap_shared *shared, uint16_t vm_id, uint64_t gfn)
{
	for (const struct rmap_mapper *m = shared->mappers; m; m = m->next)
		if (m->vm_id == vm_id && m->gfn == (uint32_t)gfn)
			return 1;
	return 0;
}
