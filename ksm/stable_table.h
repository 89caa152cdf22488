/*
 * stable_table.h - KSM's stable table: the shared frames, by content.
 *
 * A stable node stands for one shared (write-protected) frame. Nodes sit in
 * a hash table keyed by the XXH3 hash of the frame's content; a lookup
 * returns the nodes with the same hash, and the caller compares the page
 * byte for byte (a hash is never trusted alone). Several nodes may hold the
 * same content: Linux's max_page_sharing caps the mappers of one frame, and
 * a further identical page starts a new node (a "chain" of duplicates).
 *
 * A node is pending while its frame is still a private page of some VM that
 * the next apply phase will write-protect and turn into the shared frame
 * (the partner found in the unstable table, or a page that starts a new
 * duplicate). Pages merged into it in the same batch count against
 * max_page_sharing before they are applied.
 *
 * A node's rmap_shared (mm/rmap.h) lists the mappers. When the last mapper
 * copies away, mm frees the frame at once (frame = RMAP_FRAME_GONE); the
 * node is then dead and removed on the next lookup or sweep, which drops
 * the node's reference.
 *
 * Locking: the KSM lock (ksm.h) protects the table; mapper counts are read
 * under the pool's shared_lock.
 */
#ifndef KSM_STABLE_TABLE_H
#define KSM_STABLE_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct frame_pool;
struct rmap_shared;
struct ksm_vm;

struct ksm_stable_node {
	struct ksm_stable_node *next; /* in its bucket */
	uint64_t hash;
	uint64_t frame;
	struct rmap_shared *shared; /* NULL while pending */
	/* pending: the page that becomes the shared frame */
	struct ksm_vm *pending_vm;
	uint64_t pending_gfn;
	uint32_t queued; /* merges queued in the current batch */
};

/* A bucket: its chain, and a one-word filter of the hashes on it (bit
 * hash >> 58 of each node's hash). A lookup of a hash no node has, most
 * lookups when little merges, stops at the filter, in the bucket array it
 * prefetched, without following the chain into nodes scattered over the
 * slab (that miss was 13% of the scan at 2 VMs x 64 MiB, perf). */
struct ksm_stable_bucket {
	struct ksm_stable_node *first;
	uint64_t filter;
};

struct ksm_stable_table {
	struct ksm_stable_bucket *buckets;
	size_t nbuckets; /* power of two */
	size_t nodes;
};

int stable_table_init(struct ksm_stable_table *t);
/* Drops every node (and its reference to the rmap_shared). */
void stable_table_destroy(struct ksm_stable_table *t, struct frame_pool *pool);

/* Creates a pending node for the private page (vm, gfn) backed by frame. */
struct ksm_stable_node *stable_table_add_pending(struct ksm_stable_table *t, uint64_t hash,
						 uint64_t frame, struct ksm_vm *vm, uint64_t gfn);
void stable_table_remove(struct ksm_stable_table *t, struct ksm_stable_node *node,
			 struct frame_pool *pool);

/* First node in hash's bucket with that hash, and the next one. */
/* Asks the CPU for the bucket of `hash`, ahead of a lookup. */
void stable_table_prefetch(const struct ksm_stable_table *t, uint64_t hash);
struct ksm_stable_node *stable_table_first(struct ksm_stable_table *t, uint64_t hash);
struct ksm_stable_node *stable_table_next(struct ksm_stable_node *node);

/* Mappers of a node, counting pending ones: the partner page of a pending
 * node and merges queued this batch. Call with the pool's shared_lock. */
uint32_t stable_node_mappers(const struct ksm_stable_node *node);
/* A live node's frame has gone (every mapper copied away). */
int stable_node_dead(const struct ksm_stable_node *node);

/* Removes dead nodes; returns how many. Takes the pool's shared_lock. */
size_t stable_table_sweep(struct ksm_stable_table *t, struct frame_pool *pool);

/* Linux's stable_node_chains and stable_node_dups: content with more than
 * one shared frame (each at max_page_sharing mappers but the last), and the
 * frames of such content. Counts shared (not pending) nodes. */
void stable_table_chains(const struct ksm_stable_table *t, uint64_t *chains, uint64_t *dups);

#endif
