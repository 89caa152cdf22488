/*
 * guest_registry.h - the VMs of a fleet, by 16-bit id.
 *
 * A reverse-map entry names a guest page by (VM id, gfn) (mm/rmap.h), so a
 * frame's mappers can be found from the frame; the registry turns the id
 * back into the VM's memory. Policies that go over every VM (a reclaim pass,
 * the OOM killer, the failed-write kill, the eviction of a shared frame)
 * iterate it with its lock held, so that no VM goes away under them:
 * guest_registry_remove() takes the lock, and so waits for such a pass to
 * end before the VM's memory is torn down (mm/guest_life.c).
 *
 * Ids are 1..GUEST_REGISTRY_MAX-1 (0 is none), the lowest free one first;
 * an id is free again once its VM is removed. Iteration is in id order from
 * any starting point, wrapping round, which is how reclaim spreads its
 * passes (round robin). It costs a look at every slot, registered or not.
 *
 * Lock order: the registry's lock is outside every guest_memory lock and
 * reclaim's lock (mm/lock_order.h).
 */
#ifndef MM_GUEST_REGISTRY_H
#define MM_GUEST_REGISTRY_H

#include <pthread.h>

#define GUEST_REGISTRY_MAX 4096

struct guest_memory;

struct guest_registry {
	pthread_mutex_t lock;
	struct guest_memory *vms[GUEST_REGISTRY_MAX];
};

void guest_registry_init(struct guest_registry *reg);
void guest_registry_destroy(struct guest_registry *reg);
/* The VM's id, or -1 when every id is taken. */
int guest_registry_add(struct guest_registry *reg, struct guest_memory *mem);
/* Waits for whoever holds the lock (a pass over the VMs) to be done. */
void guest_registry_remove(struct guest_registry *reg, int id);

void guest_registry_lock(struct guest_registry *reg);
void guest_registry_unlock(struct guest_registry *reg);
/* With the lock held: the VM of `id`, or NULL. */
struct guest_memory *guest_registry_get(const struct guest_registry *reg, unsigned id);

/* With the lock held: every registered VM once, in id order after `start`
 * and round to it:
 *	struct guest_registry_iter it = guest_registry_iter(start);
 *	while ((mem = guest_registry_next(reg, &it)))
 */
struct guest_registry_iter {
	unsigned start, k;
};
static inline struct guest_registry_iter guest_registry_iter(unsigned start)
{
	return (struct guest_registry_iter){start, 0};
}
struct guest_memory *guest_registry_next(const struct guest_registry *reg,
					 struct guest_registry_iter *it);

#endif
