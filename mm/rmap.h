/*
 * rmap.h - reverse maps: from a host frame to the guest pages that map it.
 *
 * A private frame is mapped by exactly one guest page; its mapper (VM id,
 * gfn) is stored inline in the frame table (frame_set_private()), costing
 * nothing extra. A shared (KSM) frame has a struct rmap_shared, reached from
 * the frame's payload, holding a singly linked list of mappers allocated
 * from the "rmap_mapper" slab cache.
 *
 * Users: swap-out of a shared frame unmaps every mapper, KSM removes one
 * mapper on copy-on-write, statistics compute Pss (a page mapped by n guests
 * counts 1/n to each).
 *
 * Locking: the caller holds frame_pool.shared_lock; rmap itself takes only
 * the slab caches' own locks (mm/lock_order.h).
 */
#ifndef MM_RMAP_H
#define MM_RMAP_H

#include <stdint.h>

#include "frame_table.h"

struct rmap_mapper {
	struct rmap_mapper *next;
	uint32_t gfn;
	uint16_t vm_id;
};

/*
 * A shared frame's descriptor. Lifetimes:
 *   - the frame is freed when it has no mappers and no pins; `frame` is then
 *     RMAP_FRAME_GONE;
 *   - the descriptor is destroyed when, in addition, refs is 0.
 * KSM holds one ref for its stable node, and pins the frame while it merges
 * pages into it, so the frame cannot be freed and reused in between.
 */
#define RMAP_FRAME_GONE UINT64_MAX

struct rmap_shared {
	struct rmap_mapper *mappers;
	uint64_t frame;
	uint32_t count; /* number of mappers */
	uint32_t refs;	/* holders of the descriptor besides its mappers */
	uint32_t pins;	/* holders of the frame besides its mappers */
};

/* Creates the slab caches; call once before use. Returns 0 or -1. */
int rmap_init(void);
void rmap_exit(void);

struct rmap_shared *rmap_shared_create(uint64_t frame);
void rmap_shared_destroy(struct rmap_shared *shared);
/* Adds a mapper; returns 0, or -1 when out of memory. */
int rmap_shared_add(struct rmap_shared *shared, uint16_t vm_id, uint64_t gfn);
/* Removes a mapper; returns 0, or -1 if it was not there. */
int rmap_shared_remove(struct rmap_shared *shared, uint16_t vm_id, uint64_t gfn);
int rmap_shared_contains(const struct rmap_shared *shared, uint16_t vm_id, uint64_t gfn);

/* The frame's payload <-> its rmap_shared. */
static inline void frame_set_shared(struct frame *f, struct rmap_shared *shared)
{
	uint64_t flags = frame_info(f) & FRAME_FLAGS_MASK;
	frame_set_info(f, ((uint64_t)FRAME_SHARED << FRAME_STATE_SHIFT) | flags |
				  ((uint64_t)(uintptr_t)shared & FRAME_PAYLOAD_MASK));
}

static inline struct rmap_shared *frame_shared(const struct frame *f)
{
	return (struct rmap_shared *)(uintptr_t)frame_payload(f);
}

#endif
