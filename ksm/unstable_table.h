/*
 * unstable_table.h - KSM's unstable table: candidate pages, by content.
 *
 * A page that matched nothing in the stable table is remembered here with
 * the XXH3 hash of its content, so that an identical page found later (in
 * any VM) can be merged with it. Entries are not protected against change:
 * a match is re-checked byte for byte, and again with both VMs paused,
 * before anything is merged. As in Linux, the table is emptied at the end of
 * every full scan, so stale entries live at most one scan.
 *
 * Layout: an array of slots, open addressing with linear probing, at most
 * 70% used (candidates and removed ones; it doubles beyond). Emptying is
 * one memset. It was a chained hash of slab-allocated items: with nothing
 * to merge, the lookup's two cache misses and the per-item frees were 17%
 * of the scanner's time against XXH3's 35% (perf, 2 x 64 MiB unique pages).
 *
 * Locking: the KSM lock.
 */
#ifndef KSM_UNSTABLE_TABLE_H
#define KSM_UNSTABLE_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct ksm_vm;

/* One candidate. The table holds them inline (open addressing, linear
 * probing): a lookup reads one slot run, no list of allocations. */
struct ksm_unstable_item {
	uint64_t hash;
	struct ksm_vm *vm; /* NULL: an empty slot; UNSTABLE_REMOVED: a removed one */
	uint64_t gfn;
	uint64_t frame;
};

#define UNSTABLE_REMOVED ((struct ksm_vm *)1)

struct ksm_unstable_table {
	struct ksm_unstable_item *slots;
	size_t nslots; /* a power of two */
	size_t items;  /* live candidates */
	size_t used;   /* slots not empty: items and removed ones */
};

int unstable_table_init(struct ksm_unstable_table *t);
void unstable_table_destroy(struct ksm_unstable_table *t);
int unstable_table_insert(struct ksm_unstable_table *t, uint64_t hash, struct ksm_vm *vm,
			  uint64_t gfn, uint64_t frame);
/* First item with this hash, and the next one. Valid until the next insert. */
/* Asks the CPU for the slot of `hash`, ahead of a lookup. */
void unstable_table_prefetch(const struct ksm_unstable_table *t, uint64_t hash);
struct ksm_unstable_item *unstable_table_first(struct ksm_unstable_table *t, uint64_t hash);
struct ksm_unstable_item *unstable_table_next(struct ksm_unstable_table *t,
					      struct ksm_unstable_item *item);
void unstable_table_remove(struct ksm_unstable_table *t, struct ksm_unstable_item *item);
/* Empties the table (end of a full scan). */
void unstable_table_clear(struct ksm_unstable_table *t);
/* Drops every item of one VM (it is leaving). */
void unstable_table_forget_vm(struct ksm_unstable_table *t, const struct ksm_vm *vm);

#endif
