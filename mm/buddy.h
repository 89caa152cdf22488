/*
 * buddy.h - the host frame allocator: a binary buddy allocator over frame
 * numbers, with per-thread caches of single frames and Linux's watermarks.
 *
 * The buddy system (after Knuth, and Linux's mm/page_alloc.c):
 *
 * Free memory is kept as blocks of 2^order frames, order 0..BUDDY_MAX_ORDER.
 * A block of order o always starts at a frame number that is a multiple of
 * 2^o (absolute frame numbers, not offsets into the managed range), so every
 * block has exactly one "buddy", the other half of the aligned block of order
 * o + 1 that contains it:
 *
 *	buddy(f, o) = f ^ (1 << o),  parent(f, o) = f & ~(1 << o)
 *
 * Allocating order o takes the first block of the smallest non-empty list of
 * order >= o and, while it is too big, splits it in halves: the upper half
 * goes on the free list one order down, the lower half is split further.
 * Freeing a block looks at its buddy: if the buddy is a free block of the same
 * order it is taken off its list and the two merge into a block one order up,
 * repeating until the buddy is not free, lies outside the managed range, or
 * order BUDDY_MAX_ORDER is reached. An unaligned managed range is therefore
 * covered by the maximal aligned blocks that fit in it, and those blocks are
 * what remains when everything has been freed.
 *
 * Invariants (under the buddy lock):
 *  - Every free frame of the managed range belongs to exactly one free block,
 *    and every free block is on free_head[order], a doubly linked list threaded
 *    through frame.next/prev by frame number (FRAME_NONE ends it).
 *  - The head (first frame) of a free block is FRAME_BUDDY with payload ==
 *    order; all its other frames are FRAME_UNUSED. Only heads are looked at:
 *    "the buddy of f at order o is free" means exactly "frame buddy(f, o) is
 *    FRAME_BUDDY with payload o". A head absorbed by a merge becomes
 *    FRAME_UNUSED, so no stale head ever remains inside a larger free block.
 *  - Two buddies of the same order are never both free (they would have
 *    merged), except at order BUDDY_MAX_ORDER where merging stops.
 *  - nr_free[o] is the length of free_head[o]; free_pages is the sum over o of
 *    nr_free[o] << o.
 *
 * A block allocated at order o may be freed as any aligned sub-blocks (for
 * example as 2^o order-0 frees, in any order); each piece merges with its
 * buddies as they come back.
 *
 * Per-thread caches (Linux's per-CPU page lists, "pcp"): order-0 allocations
 * and frees through buddy_alloc_frame()/buddy_free_frame() go to a cache owned
 * by the calling thread, a singly linked list of FRAME_PCP frames through
 * frame.next. An empty cache is refilled with `batch` frames under the buddy
 * lock; a cache holding more than `high` frames gives `batch` back. high is
 * 4 * batch with batch = 31 as in Linux, both capped for small pools
 * (high <= managed_pages / 64, batch <= high / 2, both >= 1). When the free
 * lists cannot satisfy a request, buddy_alloc() drains every cache and retries
 * once, so frames parked in other threads' caches are not lost to it.
 * A thread's cache is created on its first use and registered in the buddy;
 * when the thread exits, a pthread key destructor returns the cached frames
 * to the buddy. The buddy must therefore outlive every thread that used its
 * caches, or those threads must have exited before buddy_destroy() (which
 * discards any cache still registered); buddy_destroy() must not run
 * concurrently with any other call, including such a thread's exit.
 *
 * Watermarks (in pages), Linux 6.x for a single zone of managed_pages 4 KiB
 * pages:
 *
 *   calculate_min_free_kbytes():
 *	min_free_kbytes = clamp(int_sqrt(managed_kbytes * 16), 128, 262144)
 *	(an explicit value, like writing vm.min_free_kbytes, is used as is)
 *   __setup_per_zone_wmarks():
 *	min   = min_free_kbytes >> (PAGE_SHIFT - 10)	(= / 4)
 *	delta = max(min >> 2,
 *		    mult_frac(managed_pages, watermark_scale_factor, 10000))
 *	low   = min + delta
 *	high  = low + delta
 *
 * (With one zone, Linux's proportional share pages_min * managed / lowmem is
 * pages_min itself. Linux 6.x also has WMARK_PROMO = high + delta for memory
 * tiering, which has no use here.) watermark_scale_factor defaults to 10 and
 * is limited to 1..3000 like the sysctl. The allocator only keeps the
 * watermarks; reclaim decides what to do about free pages falling below them.
 *
 * Locking (the whole order: mm/lock_order.h). Lock order:
 *
 *	pcp_list_lock  ->  buddy_pcp.lock  ->  buddy.lock
 *
 * buddy.lock protects the free lists, nr_free[], free_pages, wmark and the
 * counters; nothing else is ever taken while holding it. A pcp's lock protects
 * its list and count; the order-0 fast path takes only the calling thread's
 * own pcp lock (uncontended unless a drain is running), never the buddy lock.
 * pcp_list_lock protects the list of registered caches and is taken only to
 * register, unregister or drain caches, and to sum their sizes.
 */
#ifndef MM_BUDDY_H
#define MM_BUDDY_H

#include <pthread.h>
#include <stdint.h>

#include "frame_table.h"

#define BUDDY_MAX_ORDER 10 /* orders 0..10, like Linux's 11 orders */
#define BUDDY_ORDERS (BUDDY_MAX_ORDER + 1)

struct watermarks {
	uint64_t min_free_kbytes;	 /* as Linux's vm.min_free_kbytes */
	uint32_t watermark_scale_factor; /* as Linux's vm.watermark_scale_factor (default 10) */
	uint64_t min, low, high;	 /* in pages */
};

/*
 * Linux's formulas (mm/page_alloc.c: calculate_min_free_kbytes() and
 * __setup_per_zone_wmarks()) for a single zone of managed_pages 4 KiB pages.
 * min_free_kbytes == 0 derives it as Linux does: int_sqrt(managed_kbytes * 16)
 * clamped to [128, 262144]; scale_factor == 0 means the default 10, and values
 * above 3000 (the sysctl's maximum) are treated as 3000.
 */
void watermarks_compute(struct watermarks *w, uint64_t managed_pages, uint64_t min_free_kbytes,
			uint32_t scale_factor);

/* A per-thread cache of order-0 frames (Linux's per-CPU page lists). */
struct buddy_pcp;

struct buddy {
	struct frame_table *table;
	pthread_mutex_t lock;
	uint64_t first_frame, nframes;	  /* the managed range */
	uint32_t free_head[BUDDY_ORDERS]; /* free lists threaded through frame.next/prev */
	uint64_t nr_free[BUDDY_ORDERS];	  /* free blocks per order: /proc/buddyinfo */
	uint64_t free_pages;		  /* pages on the free lists (not counting pcp) */
	uint64_t managed_pages;
	struct watermarks wmark;

	/* Per-thread caches. */
	pthread_key_t pcp_key;	       /* the calling thread's struct buddy_pcp */
	pthread_mutex_t pcp_list_lock; /* protects pcp_list */
	struct buddy_pcp *pcp_list;    /* every registered cache */
	uint32_t pcp_high, pcp_batch;  /* given to each new cache */

	/* Counters, under lock. */
	uint64_t allocs;	 /* blocks taken off the free lists (a refill counts each frame) */
	uint64_t frees;		 /* blocks put back (before merging) */
	uint64_t splits;	 /* blocks halved by allocation */
	uint64_t merges;	 /* buddy pairs merged by freeing */
	uint64_t pcp_refills;	 /* batches moved into a cache */
	uint64_t pcp_drains;	 /* batches or whole caches moved back */
	uint64_t alloc_failures; /* buddy_alloc() calls that returned -1 */
};

/*
 * Frames [first_frame, first_frame + nframes) become free. Blocks are aligned
 * to their order in absolute frame numbers (the buddy of block f at order o is
 * f ^ (1 << o)), so an unaligned range is decomposed into maximal aligned
 * blocks. The range must lie inside the table and below FRAME_NONE. Computes
 * default watermarks. Returns 0 or -1.
 */
int buddy_init(struct buddy *b, struct frame_table *table, uint64_t first_frame, uint64_t nframes);
/* No other call may run concurrently; caches still registered are discarded. */
void buddy_destroy(struct buddy *b);

/*
 * Returns the first frame of a free block of 2^order frames, or -1 if none.
 * Splits larger blocks as needed; drains the per-thread caches and retries
 * once if the free lists cannot satisfy the request. Every frame of the block
 * gets state FRAME_ALLOCATED (payload 0).
 */
int64_t buddy_alloc(struct buddy *b, unsigned order);
/*
 * Returns a block to the free lists, coalescing with free buddies up to order
 * BUDDY_MAX_ORDER. A block allocated at order o may be freed as any aligned
 * sub-blocks, e.g. as 2^o separate order-0 frees. The caller guarantees each
 * frame is freed once (freeing a frame that is a free-block head or cached is
 * caught and aborts). A misaligned or out-of-range block aborts.
 */
void buddy_free(struct buddy *b, uint64_t frame, unsigned order);

/*
 * Order 0 through the calling thread's cache: refills `batch` frames from the
 * buddy under the buddy lock when empty, returns `batch` when above `high`.
 * The frame is returned FRAME_ALLOCATED, or -1 when no frame is free anywhere.
 */
int64_t buddy_alloc_frame(struct buddy *b);
void buddy_free_frame(struct buddy *b, uint64_t frame);
/*
 * Returns every thread's cached frames to the buddy (e.g. before a report or
 * when an allocation fails and cached frames could satisfy it).
 */
void buddy_drain_pcp(struct buddy *b);

/* Free lists + all pcp caches (not one atomic snapshot while others run). */
uint64_t buddy_free_pages(struct buddy *b);
/* The free lists' page count read without locks: for heuristics only. */
static inline uint64_t buddy_free_pages_estimate(const struct buddy *b)
{
	return __atomic_load_n(&b->free_pages, __ATOMIC_RELAXED);
}
/* Frames held in pcp caches. */
uint64_t buddy_pcp_pages(struct buddy *b);
/* Snapshot of nr_free[] under the lock. */
void buddy_info(struct buddy *b, uint64_t nr_free[BUDDY_ORDERS]);
/* Override the watermarks (like writing the sysctls); 0 selects the default. */
void buddy_set_watermarks(struct buddy *b, uint64_t min_free_kbytes, uint32_t scale_factor);

#endif
