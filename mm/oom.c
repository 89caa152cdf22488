/*
 * oom.c - the OOM killer: when reclaim cannot make room, end the VM with the
 * highest badness, as Linux's oom_badness(): resident plus swapped pages,
 * plus oom_score_adj thousandths of the pool; -1000 is never chosen. One
 * kill at a time: while a victim's memory is still being returned, requests
 * wait instead of killing again.
 */
#include <stdio.h>

#include "frame_pool.h"
#include "guest_memory_internal.h"
#include "reclaim_internal.h"

static int64_t badness(struct guest_memory *mem, uint64_t total_pages)
{
	const struct memory_limits *l = guest_memory_limits(mem);
	if (l->oom_score_adj <= -1000)
		return -1;
	int64_t points = (int64_t)(guest_memory_rss(mem) + guest_memory_swap_pages(mem));
	points += (int64_t)l->oom_score_adj * (int64_t)total_pages / 1000;
	return points > 0 ? points : 1;
}

/* The VM with the highest badness, or NULL; the registry locked. */
static struct guest_memory *select_victim(struct reclaim *r)
{
	struct guest_memory *victim = NULL, *mem;
	int64_t best = -1;
	struct guest_registry_iter it = guest_registry_iter(0);
	while ((mem = guest_registry_next(r->registry, &it))) {
		if (guest_memory_dead(mem))
			continue;
		int64_t points = badness(mem, r->pool->nframes);
		if (points > best) {
			best = points;
			victim = mem;
		}
	}
	return victim;
}

struct guest_memory *oom_select_victim(struct reclaim *r)
{
	guest_registry_lock(r->registry);
	struct guest_memory *victim = select_victim(r);
	guest_registry_unlock(r->registry);
	return victim;
}

/* Lock order (mm/lock_order.h, as reclaim passes take them): the
 * registry's lock, then reclaim.lock. The victim is killed with the registry still locked,
 * so it cannot be destroyed under us. */
int reclaim_oom(struct reclaim *r, struct guest_memory *requester)
{
	struct frame_pool *pool = r->pool;
	guest_registry_lock(r->registry);
	pthread_mutex_lock(&r->lock);
	if (r->oom_victim) {
		pthread_mutex_unlock(&r->lock);
		guest_registry_unlock(r->registry);
		return 1; /* its memory is on its way back */
	}
	struct guest_memory *victim = select_victim(r);
	if (!victim) {
		pthread_mutex_unlock(&r->lock);
		guest_registry_unlock(r->registry);
		return 0;
	}
	r->oom_victim = victim;
	r->stats.oom_kills++;
	struct memory_events *ev = guest_memory_events(victim);
	memory_event_count(ev, oom);
	memory_event_count(ev, oom_kill);
	if (requester && requester != victim)
		memory_event_count(guest_memory_events(requester), oom);
	char message[200];
	snprintf(message, sizeof(message),
		 "out of memory: killed by the OOM killer (badness %lld: %llu resident + %llu "
		 "swapped pages, oom_score_adj %d)",
		 (long long)badness(victim, pool->nframes),
		 (unsigned long long)guest_memory_rss(victim),
		 (unsigned long long)guest_memory_swap_pages(victim),
		 guest_memory_limits(victim)->oom_score_adj);
	pthread_mutex_unlock(&r->lock);
	guest_memory_fail(victim, "%s", message);
	guest_registry_unlock(r->registry);
	return 1;
}

void reclaim_forget(struct reclaim *r, struct guest_memory *mem)
{
	pthread_mutex_lock(&r->lock);
	if (r->oom_victim == mem)
		r->oom_victim = NULL;
	pthread_mutex_unlock(&r->lock);
}
