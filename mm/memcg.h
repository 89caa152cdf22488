/*
 * memcg.h - memory cgroups: cgroup v2's memory controller over a tree of
 * groups of VMs.
 *
 * Every pool-backed VM is a leaf of the tree, its own cgroup (its per-VM
 * memory.high/max); the fleet's groups are the inner nodes, and the root is
 * the fleet. A group's usage (memory.current) is what its VMs hold: resident
 * pages, not zero pages, as guest_memory_rss() counts them. Charges go up
 * the tree through page_counter.h as the sEPT gains and loses present pages,
 * so reading any group's usage costs one load.
 *
 * Limits hold hierarchically, as in Linux:
 *  - memory.max: a fault that would take any cgroup on its VM's path above
 *    max reclaims from the lowest such cgroup (every VM under it), and if
 *    nothing can be evicted the OOM killer picks a victim among that
 *    cgroup's VMs;
 *  - memory.high: a VM under a cgroup above high is throttled by the
 *    largest excess on its path, and kswapd trims the VMs under it;
 *  - memory.min, memory.low: reclaim never takes a VM's pages below its
 *    cgroups' effective memory.min, and below memory.low only when it
 *    finds nothing else (counting a `low` event), with Linux's recursive
 *    protection (page_counter.h);
 *  - memory.swap.max: eviction takes no more of a VM's pages to swap than
 *    every cgroup on its path allows (swap entries are charged as pages
 *    are, page_counter.h); 0 keeps a cgroup's VMs out of swap, as
 *    swappiness 0 would;
 *  - memory.oom.group: when a VM is chosen as an OOM victim, the highest
 *    cgroup on its path (within the OOM's domain) with oom.group set is
 *    killed whole, every VM in it.
 * memory.events counts an event at the cgroup it happened to and every
 * ancestor; memory.events.local only at the cgroup itself. memory.pressure
 * is psi.h's, each VM a member of its own cgroup.
 *
 * The tree's shape is fixed while VMs run but for leaves: groups are made
 * before their VMs and freed after. A leaf is made and freed with its VM;
 * freeing it uncharges its ancestors by what it still held. Limits, events
 * and oom.group are atomics: any thread reads and writes them.
 */
#ifndef MM_MEMCG_H
#define MM_MEMCG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "page_counter.h"
#include "psi.h"

/* memory.events (and .local). */
struct memory_events {
	uint64_t low, high, max, oom, oom_kill, oom_group_kill;
};

enum memcg_event {
	MEMCG_LOW = offsetof(struct memory_events, low),
	MEMCG_HIGH = offsetof(struct memory_events, high),
	MEMCG_MAX = offsetof(struct memory_events, max),
	MEMCG_OOM = offsetof(struct memory_events, oom),
	MEMCG_OOM_KILL = offsetof(struct memory_events, oom_kill),
	MEMCG_OOM_GROUP_KILL = offsetof(struct memory_events, oom_group_kill),
};

#define MEMCG_NAME_MAX 64

struct memcg {
	char name[MEMCG_NAME_MAX]; /* the path component ("" for the root) */
	struct memcg *parent;
	struct page_counter counter;		    /* memory.current, .peak, .high, .max */
	struct page_counter swap;		    /* memory.swap.current, .peak, .max */
	uint64_t swap_max_events, swap_fail_events; /* memory.swap.events: here and below */
	struct memory_events events;		    /* memory.events: here and below */
	struct memory_events events_local;
	bool oom_group;		  /* memory.oom.group */
	bool vm;		  /* a VM's own leaf */
	struct psi_group psi;	  /* memory.pressure */
	struct psi_member member; /* a VM's leaf: the VM's state */
};

/* A cgroup under `parent` (NULL: a root) with limits in pages (0: none).
 * Returns NULL when out of memory or the name is too long. */
struct memcg *memcg_create(struct memcg *parent, const char *name, uint64_t high_pages,
			   uint64_t max_pages);
/* Frees cg, uncharging its ancestors by the usage it still has. */
void memcg_destroy(struct memcg *cg);

/* Whether cg is ancestor or under it (a cgroup is its own descendant). */
bool memcg_is_descendant(const struct memcg *cg, const struct memcg *ancestor);
/* The path from the root, "/" for a root, "/a/b" below. */
void memcg_path(const struct memcg *cg, char *buf, size_t len);

/* Counts an event at cg (local) and at cg and every ancestor. */
void memcg_event(struct memcg *cg, enum memcg_event ev);
/* A consistent-enough read of cg's events (each counter atomically). */
void memcg_read_events(const struct memcg *cg, struct memory_events *hier,
		       struct memory_events *local);

/* Charges n pages to cg and its ancestors if none goes above memory.max:
 * NULL, or the lowest cgroup that refused (nothing charged). */
struct memcg *memcg_try_charge(struct memcg *cg, uint64_t n);
/* The same for swap entries and memory.swap.max. */
struct memcg *memcg_try_charge_swap(struct memcg *cg, uint64_t n);
/* memory.swap.events: swap refused at memory.swap.max (fail also counts a
 * full swap device), at cg and every ancestor. */
void memcg_swap_event(struct memcg *cg, bool at_max);
/* The lowest cgroup on cg's path that `more` pages would take above
 * memory.max, or NULL (a check only). */
struct memcg *memcg_over_max(struct memcg *cg, uint64_t more);
/* The largest excess over memory.high on cg's path; *worst gets the cgroup
 * (or NULL). */
uint64_t memcg_high_excess(struct memcg *cg, struct memcg **worst);
/* The cgroup to kill whole when a VM of `victim` (its leaf) is chosen by an
 * OOM whose domain is `domain` (NULL: the whole tree): the highest cgroup
 * from the victim up to the domain with memory.oom.group set, or NULL (kill
 * the victim alone), as Linux's mem_cgroup_get_oom_group(). */
struct memcg *memcg_oom_group(struct memcg *victim, const struct memcg *domain);

/* The effective memory.min and memory.low of cg when `target` (an ancestor,
 * or NULL: the whole tree) is reclaimed from (page_counter.h). */
void memcg_protection(struct memcg *cg, const struct memcg *target, uint64_t *emin, uint64_t *elow);

/* A VM's own cgroup: its VM starts (+1) or ends (-1) a wait for memory,
 * or runs or goes idle (psi.h). cg may be NULL. */
void memcg_stall(struct memcg *cg, int delta);
void memcg_running(struct memcg *cg, bool running);
/* memory.pressure now. */
void memcg_pressure(struct memcg *cg, struct psi_stats *out);

static inline uint64_t memcg_usage(const struct memcg *cg)
{
	return page_counter_read(&cg->counter);
}
static inline bool memcg_oom_group_set(const struct memcg *cg)
{
	return __atomic_load_n(&cg->oom_group, __ATOMIC_RELAXED);
}
static inline void memcg_set_oom_group(struct memcg *cg, bool on)
{
	__atomic_store_n(&cg->oom_group, on, __ATOMIC_RELAXED);
}

#endif
