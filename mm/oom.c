/*
 * oom.c - the OOM killer: when reclaim cannot make room, end the VM with the
 * highest badness in the OOM's domain (every VM, or those under the cgroup
 * at memory.max), as Linux's oom_badness(): resident plus swapped pages,
 * plus oom_score_adj thousandths of the pool; -1000 is never chosen. If the
 * victim is in a cgroup with memory.oom.group (the highest such on its path
 * within the domain), every VM under that cgroup is ended with it, as
 * mem_cgroup_get_oom_group() and oom_kill_memcg_member() do. One kill at a
 * time: while a victim's memory is still being returned, requests wait
 * instead of killing again.
 */
#include <stdio.h>

#include "frame_pool.h"
#include "guest_memory_internal.h"
#include "reclaim_internal.h"

static int64_t badness(struct guest_memory *mem, uint64_t total_pages)
{
	int adj = guest_memory_oom_score_adj(mem);
	if (adj <= -1000)
		return -1;
	int64_t points = (int64_t)(guest_memory_rss(mem) + guest_memory_swap_pages(mem));
	points += (int64_t)adj * (int64_t)total_pages / 1000;
	return points > 0 ? points : 1;
}

/* The VM under `domain` (NULL: any) with the highest badness, or NULL; the
 * registry locked. */
static struct guest_memory *select_victim(struct reclaim *r, const struct memcg *domain)
{
	struct guest_memory *victim = NULL, *mem;
	int64_t best = -1;
	struct guest_registry_iter it = guest_registry_iter(0);
	while ((mem = guest_registry_next(r->registry, &it))) {
		if (guest_memory_dead(mem) ||
		    (domain && !memcg_is_descendant(guest_memory_memcg(mem), domain)))
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
	struct guest_memory *victim = select_victim(r, NULL);
	guest_registry_unlock(r->registry);
	return victim;
}

static void kill_vm(struct guest_memory *mem, const char *message)
{
	memcg_event(guest_memory_memcg(mem), MEMCG_OOM_KILL);
	guest_memory_fail(mem, "%s", message);
}

/* The rest of the victim's oom.group: every VM under `group` but the victim
 * (the registry locked). Returns how many. */
static unsigned kill_group(struct reclaim *r, struct memcg *group, struct guest_memory *victim)
{
	char path[200], message[320];
	memcg_path(group, path, sizeof(path));
	snprintf(message, sizeof(message),
		 "out of memory: killed by the OOM killer with its cgroup %s (memory.oom.group)",
		 path);
	unsigned n = 0;
	struct guest_memory *mem;
	struct guest_registry_iter it = guest_registry_iter(0);
	while ((mem = guest_registry_next(r->registry, &it))) {
		if (mem == victim || guest_memory_dead(mem) ||
		    !memcg_is_descendant(guest_memory_memcg(mem), group))
			continue;
		kill_vm(mem, message);
		n++;
	}
	return n;
}

/* Lock order (mm/lock_order.h, as reclaim passes take them): the
 * registry's lock, then reclaim.lock. The victims are killed with the
 * registry still locked, so none can be destroyed under us. */
int reclaim_oom(struct reclaim *r, struct memcg *domain, struct guest_memory *requester)
{
	struct frame_pool *pool = r->pool;
	guest_registry_lock(r->registry);
	pthread_mutex_lock(&r->lock);
	if (r->oom_victim) {
		pthread_mutex_unlock(&r->lock);
		guest_registry_unlock(r->registry);
		return 1; /* its memory is on its way back */
	}
	/* A cgroup's OOM: room was made meanwhile (a victim's memory came
	 * back between the requester's failed charge and now), so retry
	 * instead of killing, as mem_cgroup_out_of_memory() checks the margin.
	 * (The pool's OOM has no such check: free frames may sit in other
	 * threads' caches, and the requester could wait for ever.) */
	if (domain && !memcg_over_max(domain, 1)) {
		pthread_mutex_unlock(&r->lock);
		guest_registry_unlock(r->registry);
		return 1;
	}
	memcg_event(domain ? domain : requester ? guest_memory_memcg(requester) : NULL, MEMCG_OOM);
	struct guest_memory *victim = select_victim(r, domain);
	if (!victim) {
		pthread_mutex_unlock(&r->lock);
		guest_registry_unlock(r->registry);
		return 0;
	}
	r->oom_victim = victim;
	r->stats.oom_kills++;
	struct memcg *group = memcg_oom_group(guest_memory_memcg(victim), domain);
	char message[200], where[160] = "";
	if (domain) {
		char path[128];
		memcg_path(domain, path, sizeof(path));
		if (!domain->vm)
			snprintf(where, sizeof(where), " in cgroup %s at memory.max", path);
		else
			snprintf(where, sizeof(where), " at its memory.max");
	}
	snprintf(message, sizeof(message),
		 "out of memory%s: killed by the OOM killer (badness %lld: %llu resident + %llu "
		 "swapped pages, oom_score_adj %d)",
		 where, (long long)badness(victim, pool->nframes),
		 (unsigned long long)guest_memory_rss(victim),
		 (unsigned long long)guest_memory_swap_pages(victim),
		 guest_memory_oom_score_adj(victim));
	pthread_mutex_unlock(&r->lock);
	kill_vm(victim, message);
	if (group) {
		memcg_event(group, MEMCG_OOM_GROUP_KILL);
		unsigned more = kill_group(r, group, victim);
		pthread_mutex_lock(&r->lock);
		r->stats.oom_kills += more;
		pthread_mutex_unlock(&r->lock);
	}
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
