/*
 * control_cgroup.h - the control socket's cgroup files: cgroup/PATH/FILE,
 * with PATH a cgroup of the fleet ("pair", "tenants/a"; empty for the root:
 * cgroup/memory.current) and FILE as cgroup v2 names it:
 *
 *   memory.current       ro  bytes the VMs under it hold now
 *   memory.peak          rw  the most they held; any write resets it to now
 *   memory.min           rw  bytes or "max": reclaim never takes the VMs
 *                            below it
 *   memory.low           rw  bytes or "max": reclaim takes them below it
 *                            only when it finds nothing else (effective
 *                            protection as Linux's, recursive:
 *                            mm/page_counter.h)
 *   memory.high          rw  bytes or "max"; lowering it reclaims the excess
 *   memory.max           rw  bytes or "max"; lowering it reclaims down to
 *                            it, and if reclaim cannot, the cgroup's OOM
 *                            killer ends one VM (with its oom.group); where
 *                            Linux's memory_max_write kills until under, the
 *                            VMs' own faults take it from there
 *   memory.oom.group     rw  0 or 1
 *   memory.events        ro  "low N high N max N oom N oom_kill N oom_group_kill N"
 *   memory.events.local  ro  the same, for this cgroup only
 *   memory.pressure      ro  "some avg10=A avg60=B avg300=C total=US full ..."
 *                            (Linux's two lines on one; mm/psi.h)
 *   memory.swap.current  ro  bytes of the VMs' pages in swap
 *   memory.swap.peak     rw  the most; any write resets it to now
 *   memory.swap.max      rw  bytes or "max": eviction swaps no more (0:
 *                            none, as swappiness 0)
 *   memory.swap.events   ro  "max N fail N"
 *   memory.reclaim       wo  proactive reclaim: set it to a size to evict
 *                            that much from the VMs under it; an error says
 *                            how much it got if it could not get all
 *
 * Sizes are bytes, or with K, M, G suffixes (size.h). Limits need the fleet
 * to run reclaim (swap, or any limit at start); without it they are refused.
 */
#ifndef VMM_CONTROL_CGROUP_H
#define VMM_CONTROL_CGROUP_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

struct fleet;

/* Whether `key` names a cgroup file of this fleet (err says why not if it
 * looks like one: starts with "cgroup/"). */
bool control_cgroup_is_key(const char *key);
/* "ok VALUE" text of a key into out; 0, or -1 with err. */
int control_cgroup_get(struct fleet *fleet, const char *key, char *out, size_t len, char *err,
		       size_t errlen);
/* Sets a key; 0 with the reply value in out, or -1 with err. */
int control_cgroup_set(struct fleet *fleet, const char *key, const char *value, char *out,
		       size_t len, char *err, size_t errlen);
/* Calls emit for every key of every cgroup, with its access ("rw", "ro",
 * "wo") and its value as text and as JSON (both NULL for write-only keys;
 * emit owns the JSON value). */
void control_cgroup_each(struct fleet *fleet,
			 void (*emit)(void *ctx, const char *key, const char *access,
				      const char *text, json_object *json),
			 void *ctx);

#endif
