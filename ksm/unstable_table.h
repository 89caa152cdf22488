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
 * Locking: the KSM lock.
 */
#ifndef KSM_UNSTABLE_TABLE_H
#define KSM_UNSTABLE_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct ksm_vm;

struct ksm_unstable_item {
	struct ksm_unstable_item *next;
	uint64_t hash;
	struct ksm_vm *vm;
	uint64_t gfn;
	uint64_t frame;
};

struct ksm_unstable_table {
	struct ksm_unstable_item **buckets;
	size_t nbuckets;
	size_t items;
};

int unstable_table_init(struct ksm_unstable_table *t);
void unstable_table_destroy(struct ksm_unstable_table *t);
int unstable_table_insert(struct ksm_unstable_table *t, uint64_t hash, struct ksm_vm *vm,
			  uint64_t gfn, uint64_t frame);
/* First item with this hash, and the next one. */
struct ksm_unstable_item *unstable_table_first(struct ksm_unstable_table *t, uint64_t hash);
struct ksm_unstable_item *unstable_table_next(struct ksm_unstable_item *item);
void unstable_table_remove(struct ksm_unstable_table *t, struct ksm_unstable_item *item);
/* Empties the table (end of a full scan). */
void unstable_table_clear(struct ksm_unstable_table *t);
/* Drops every item of one VM (it is leaving). */
void unstable_table_forget_vm(struct ksm_unstable_table *t, const struct ksm_vm *vm);

#endif
