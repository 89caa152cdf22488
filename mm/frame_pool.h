/*
 * frame_pool.h - the hypervisor's physical memory: one memfd of frames.
 *
 * Frame N is the 4 KiB page at offset N * 4096 of one memfd. The VMM maps
 * the whole memfd once (`base`) for its own reads and writes (loading guests,
 * copy-on-write, KSM hashing); guests see frames through MAP_SHARED mappings
 * of the same memfd placed in their guest RAM ranges.
 *
 * Frames are handed out by the buddy allocator (mm/buddy.h) and described by
 * the frame table (mm/frame_table.h).
 *
 * Invariant: a free frame is a hole in the memfd. frame_pool_free() punches
 * the hole (fallocate(PUNCH_HOLE)) before the frame goes back to the buddy,
 * so the host gets the memory back at once and a frame handed out again
 * reads as zeroes: no guest ever sees another guest's old data.
 *
 * The zero run: KSM maps all-zero guest pages to a run of 512 zero frames
 * (page gfn -> zero_run + gfn % 512) rather than to one zero frame, so that
 * neighbouring zero pages map neighbouring frames and share one host
 * mapping. It is allocated on first use, filled (2 MiB of host memory, once)
 * and never written again: guests see it write-protected.
 */
#ifndef MM_FRAME_POOL_H
#define MM_FRAME_POOL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "buddy.h"
#include "frame_table.h"

struct frame_pool {
	int memfd;
	uint8_t *base;
	uint64_t nframes;
	struct frame_table table;
	struct buddy buddy;

	/* Protects the reverse maps of FRAME_SHARED frames (taken by KSM,
	 * copy-on-write, eviction of shared frames and statistics); nests
	 * inside a guest_memory lock (mm/lock_order.h). */
	pthread_mutex_t shared_lock;
	/* Under shared_lock: FRAME_SHARED frames with at least one mapper, and
	 * all their mappers (KSM's pages_shared and pages_sharing, kept here
	 * so that reading them does not walk every shared frame). */
	uint64_t shared_frames;
	uint64_t shared_mappers;

	pthread_mutex_t zero_run_lock; /* its one-time set-up */
	int64_t zero_run;	       /* first frame of the zero run, or -1 */
	/* Called after an allocation that left fewer than `low` free frames
	 * (reclaim wakes kswapd). */
	void (*low_hook)(void *ctx);
	void *low_ctx;

	/* counters (atomic) */
	uint64_t used_pages;	  /* frames handed out and not yet freed */
	uint64_t peak_used_pages; /* the most ever handed out at once */
	uint64_t holes_punched;	  /* fallocate(PUNCH_HOLE) calls */
	uint64_t frames_freed;
	uint64_t frames_lost;	     /* never reused: a mapping could not be revoked */
	uint64_t shared_frames_gone; /* shared frames freed (their last mapper left) */
};

/* Creates a pool of `bytes` (a multiple of 4 KiB). */
int frame_pool_create(struct frame_pool *pool, uint64_t bytes, char *err, size_t errlen);
void frame_pool_destroy(struct frame_pool *pool);

static inline void *frame_pool_address(const struct frame_pool *pool, uint64_t frame)
{
	return pool->base + frame * FRAME_SIZE;
}

static inline struct frame *frame_pool_frame(const struct frame_pool *pool, uint64_t frame)
{
	return frame_get(&pool->table, frame);
}

/* A block of 2^order frames (order 0 goes through the per-thread cache), or
 * -1 when the pool cannot provide one. The frames read as zeroes. */
int64_t frame_pool_alloc(struct frame_pool *pool, unsigned order);
/* Which of frames [frame, frame + n) hold data: vec[i] = 1 if frame + i
 * holds host memory or was pushed to the host's swap, 0 if it is a hole
 * (never written since it was last freed). mincore() for the run, and for
 * a page not in memory SEEK_DATA on the memfd (mincore() alone cannot tell
 * a host-swapped page from a hole). On error a frame counts as data. */
void frame_pool_backed(const struct frame_pool *pool, uint64_t frame, size_t n, unsigned char *vec);
/* Returns `count` frames starting at `frame` (any count, any alignment):
 * punches their hole and frees them to the buddy. */
void frame_pool_free(struct frame_pool *pool, uint64_t frame, uint64_t count);
/* Frees n frames given in any order (the array is sorted in place): one
 * hole punch per run of consecutive frames. A punch costs about 3.7 us per
 * call plus 1.3 us per page here, so freeing scattered frames together
 * (KSM's merges) halves the cost of runs of four. */
void frame_pool_free_list(struct frame_pool *pool, uint64_t *frames, size_t n);

#define FRAME_POOL_ZERO_RUN_PAGES 512
/* Frees a shared frame that has no mappers and no pins (marking it
 * RMAP_FRAME_GONE), and destroys its descriptor if nothing refers to it any
 * more. Call with shared_lock held after dropping a mapper, pin or ref. */
struct rmap_shared;
void frame_pool_put_shared(struct frame_pool *pool, struct rmap_shared *shared);

/* Who shares with whom: for the VMs whose mm ids are ids[0..n), fills the
 * n x n row-major `matrix`: [a][a] the pages of VM a that map a KSM frame,
 * [a][b] the KSM frames both a and b map. The zero run is left out (each
 * VM's ksm_zero_pages); mappers of other ids are ignored. A walk of the
 * frame table, taking shared_lock for a few thousand frames at a time: KSM
 * and copy-on-write go on meanwhile, so a frame shared or unshared during
 * the walk may or may not count. */
void frame_pool_sharing_matrix(struct frame_pool *pool, const uint16_t *ids, unsigned n,
			       uint64_t *matrix);

void frame_pool_set_low_hook(struct frame_pool *pool, void (*hook)(void *ctx), void *ctx);

/* The zero run's first frame (allocated on first call), or -1. */
int64_t frame_pool_zero_run(struct frame_pool *pool);

struct frame_pool_stats {
	uint64_t total_pages; /* MemTotal */
	uint64_t free_pages;  /* MemFree: buddy free lists + per-thread caches */
	uint64_t pcp_pages;
	uint64_t used_pages, peak_used_pages;
	uint64_t nr_free[BUDDY_ORDERS]; /* buddyinfo */
	struct watermarks wmark;
	uint64_t frame_table_bytes;
	uint64_t holes_punched;
	uint64_t host_resident_bytes; /* memfd pages the host actually holds */
	uint64_t frames_lost;	      /* kept from reuse: a mapping could not be revoked */
};
void frame_pool_get_stats(struct frame_pool *pool, struct frame_pool_stats *stats);

#endif
