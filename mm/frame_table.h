/*
 * frame_table.h - per-frame metadata of the host frame pool.
 *
 * The pool is an array of 4 KiB frames numbered 0..nframes-1. Each frame has
 * one struct frame of 16 bytes (Linux's struct page is 64):
 *
 *   next, prev   list links by frame number, FRAME_NONE ending a list. They
 *                thread the buddy free lists while the frame heads a free
 *                block, and the LRU lists while it backs guest pages.
 *   info         state (4 bits) | flags (12 bits) | payload (48 bits).
 *
 * The payload's meaning follows the state:
 *   FRAME_UNUSED     nothing: inside a free block but not its head, or never
 *                    handed out. Only heads of free blocks are looked at.
 *   FRAME_BUDDY      head of a free buddy block; payload = its order.
 *   FRAME_PCP        held in a per-thread cache of order-0 frames.
 *   FRAME_ALLOCATED  handed out by the allocator, not yet given a role.
 *   FRAME_PRIVATE    backs exactly one guest page; payload = owner VM id
 *                    (16 bits) and guest frame number (32 bits): the inline
 *                    reverse map.
 *   FRAME_SHARED     a KSM frame mapped by several guest pages; payload = a
 *                    pointer to its struct rmap_shared (mm/rmap.h), which
 *                    lists the mappers.
 *   FRAME_ZERO       part of the KSM zero run (all zeroes, never written).
 *   FRAME_RESERVED   not managed by the allocator.
 *
 * Locking: a frame's state is changed only under the lock that owns it in
 * that state (the buddy lock for BUDDY, the owning VM's lock for PRIVATE, the
 * KSM lock for SHARED). info is one 64-bit word, so a racing reader always
 * sees a whole value.
 */
#ifndef MM_FRAME_TABLE_H
#define MM_FRAME_TABLE_H

#include <stdint.h>

#define FRAME_SIZE 4096ull
#define FRAME_SHIFT 12
#define FRAME_NONE UINT32_MAX

enum frame_state {
	FRAME_UNUSED = 0,
	FRAME_BUDDY = 1,
	FRAME_PCP = 2,
	FRAME_ALLOCATED = 3,
	FRAME_PRIVATE = 4,
	FRAME_SHARED = 5,
	FRAME_ZERO = 6,
	FRAME_RESERVED = 7,
};

/* Flags (12 bits). */
#define FRAME_FLAG_PINNED (1u << 0)	/* boot area: never merged or evicted */
#define FRAME_FLAG_REFERENCED (1u << 1) /* accessed since the last ageing */
#define FRAME_FLAG_ACTIVE (1u << 2)	/* on an active list */
#define FRAME_FLAG_LRU (1u << 3)	/* on an LRU list */
#define FRAME_FLAG_DIRTY (1u << 4)
#define FRAME_FLAG_LOCKED (1u << 5) /* under I/O */

struct frame {
	uint32_t next, prev;
	uint64_t info;
};

_Static_assert(sizeof(struct frame) == 16, "struct frame must stay 16 bytes");

#define FRAME_STATE_SHIFT 60
#define FRAME_FLAGS_SHIFT 48
#define FRAME_PAYLOAD_MASK ((1ull << FRAME_FLAGS_SHIFT) - 1)
#define FRAME_FLAGS_MASK (0xfffull << FRAME_FLAGS_SHIFT)

struct frame_table {
	struct frame *frames;
	uint64_t nframes;
};

/* Allocates the table (all frames FRAME_UNUSED, links FRAME_NONE). */
int frame_table_init(struct frame_table *table, uint64_t nframes);
void frame_table_destroy(struct frame_table *table);

static inline struct frame *frame_get(const struct frame_table *table, uint64_t frame)
{
	return &table->frames[frame];
}

/* info is changed by a frame's owner under the owner's lock, and read by
 * the buddy allocator under its own when it looks at a neighbour (is it a
 * free block head?): relaxed atomic accesses, plain moves on x86. Only the
 * buddy makes a frame free or not free, so a neighbour's other changes are
 * of no concern to it. */
static inline uint64_t frame_info(const struct frame *f)
{
	return __atomic_load_n(&f->info, __ATOMIC_RELAXED);
}

static inline void frame_set_info(struct frame *f, uint64_t info)
{
	__atomic_store_n(&f->info, info, __ATOMIC_RELAXED);
}

static inline enum frame_state frame_state(const struct frame *f)
{
	return (enum frame_state)(frame_info(f) >> FRAME_STATE_SHIFT);
}

static inline uint64_t frame_payload(const struct frame *f)
{
	return frame_info(f) & FRAME_PAYLOAD_MASK;
}

/* Sets state and payload; flags are cleared. */
static inline void frame_set(struct frame *f, enum frame_state state, uint64_t payload)
{
	frame_set_info(f, ((uint64_t)state << FRAME_STATE_SHIFT) | (payload & FRAME_PAYLOAD_MASK));
}

static inline int frame_test_flag(const struct frame *f, unsigned flag)
{
	return (frame_info(f) >> FRAME_FLAGS_SHIFT) & flag ? 1 : 0;
}

static inline void frame_set_flag(struct frame *f, unsigned flag)
{
	frame_set_info(f, frame_info(f) | (uint64_t)flag << FRAME_FLAGS_SHIFT);
}

static inline void frame_clear_flag(struct frame *f, unsigned flag)
{
	frame_set_info(f, frame_info(f) & ~((uint64_t)flag << FRAME_FLAGS_SHIFT));
}

/* The inline reverse map of a private frame. */
#define FRAME_OWNER_GFN_BITS 32
static inline void frame_set_private(struct frame *f, uint16_t vm_id, uint64_t gfn)
{
	uint64_t flags = frame_info(f) & FRAME_FLAGS_MASK;
	frame_set_info(f, ((uint64_t)FRAME_PRIVATE << FRAME_STATE_SHIFT) | flags |
				  ((((uint64_t)vm_id << FRAME_OWNER_GFN_BITS) | (uint32_t)gfn) &
				   FRAME_PAYLOAD_MASK));
}

static inline uint16_t frame_owner_vm(const struct frame *f)
{
	return (uint16_t)(frame_payload(f) >> FRAME_OWNER_GFN_BITS);
}

static inline uint64_t frame_owner_gfn(const struct frame *f)
{
	return (uint32_t)frame_payload(f);
}

#endif
