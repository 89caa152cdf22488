/*
 * reclaim_internal.h - what the files of reclaim share:
 *
 *   reclaim.c      kswapd, direct reclaim, the ageing threshold, statistics
 *   swap_slots.c   per-slot bookkeeping beside the swap device: eviction
 *                  times, pages lost to failed writes
 *   oom.c          badness and the OOM kill
 *   guest_swap.c   eviction and swap-in of one VM's pages
 *
 * Not for use outside mm/.
 */
#ifndef MM_RECLAIM_INTERNAL_H
#define MM_RECLAIM_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "reclaim.h"

struct guest_memory;
struct swap_io;

struct reclaim {
	struct reclaim_config cfg;
	struct frame_pool *pool;
	struct guest_registry *registry;
	struct swap_device *dev; /* NULL: no swap */
	struct zswap *zswap;	 /* NULL: no zswap */
	uint64_t slots;
	uint32_t *evicted_ms; /* per slot: when the page went out */

	pthread_t thread;
	bool running, stop;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool wake_pending;
	pthread_key_t io_key; /* each thread's swap_io */
	pthread_mutex_t io_list_lock;
	struct swap_io **ios; /* every thread's ring, for tear-down */
	unsigned nios, ios_cap;

	uint32_t age_threshold_ms;	 /* evict pages older than this */
	unsigned next_vm;		 /* round robin over the registry */
	struct guest_memory *oom_victim; /* a kill in progress */

	struct reclaim_stats stats; /* counters, under lock */
	/* One bit per slot whose write failed while pages referred to it:
	 * their VMs are to be ended (outside the registry lock). Bits are set
	 * under lock, cleared atomically (a new write of the slot clears its
	 * bit: the failure concerned the slot's former contents). */
	uint64_t *write_failed;
	bool failures_pending; /* under lock */
	int last_write_error;  /* under lock */
};

/* Counters from eviction. */
void reclaim_count_evicted(struct reclaim *r, uint64_t pages);
void reclaim_count_dropped(struct reclaim *r, uint64_t pages);
/* The calling thread's ring, made on first use with `depth` entries. */
struct swap_io *reclaim_thread_io_depth(struct reclaim *r, unsigned depth);

/* swap_slots.c */
int swap_slots_init(struct reclaim *r);
void swap_slots_exit(struct reclaim *r);
/* A page goes out to slot (to zswap or the file): records when, and forgets
 * a failed write of the slot's former contents. */
void swap_slots_writing(struct reclaim *r, uint64_t slot);
/* swap_io_reap() callback: ctx is the reclaim, cookie the slot. */
void swap_slots_write_done(void *ctx, uint64_t cookie, int status);
/* The page no longer needs the slot (swapped in, or its VM is gone): drop
 * one reference (the device frees a slot still being written when the
 * write ends). */
void swap_slots_release(struct reclaim *r, uint64_t slot);
uint32_t swap_slots_evicted_ms(struct reclaim *r, uint64_t slot);
/* Ends the VMs that lost pages to failed writes. Call without the
 * registry lock. */
void swap_slots_process_failures(struct reclaim *r);

/* guest_swap.c: evict up to `max` of mem's pages not accessed for
 * min_age_ms (the VM is paused meanwhile). Returns frames freed. */
size_t guest_memory_evict(struct guest_memory *mem, struct swap_io *io, uint32_t min_age_ms,
			  size_t max, uint64_t *scanned);

/* oom.c: the VM with the highest badness now, or NULL (a snapshot: once
 * the registry lock is dropped it may be gone; reclaim_oom() kills it
 * under that lock). */
struct guest_memory *oom_select_victim(struct reclaim *r);
/* Per-VM pieces oom and reclaim need. */
uint64_t guest_memory_rss(struct guest_memory *mem);
uint64_t guest_memory_swap_pages(struct guest_memory *mem);
int guest_memory_oom_score_adj(const struct guest_memory *mem);

#endif
