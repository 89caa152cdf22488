/*
 * swap_slots.c - the VMM's per-slot bookkeeping beside the swap device.
 *
 * The device keeps a slot whose write is in flight out of reach until the
 * write completes (its bytes are in the swap cache meanwhile), so a page
 * taken back from the swap cache can drop its slot at once. A write that
 * fails while the slot still has references has lost those pages: every VM
 * that refers to the slot is ended. The eviction time of each slot gives the
 * refault distance.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame_pool.h"
#include "guest_memory.h"
#include "guest_memory_internal.h"
#include "io/swap_device.h"
#include "io/zswap.h"
#include "swap_slots.h"

int swap_slots_init(struct reclaim *r)
{
	r->slots = r->dev ? swap_device_slots(r->dev) : 0;
	if (!r->slots)
		return 0;
	r->evicted_ms = calloc(r->slots, sizeof(uint32_t));
	return r->evicted_ms ? 0 : -1;
}

void swap_slots_exit(struct reclaim *r)
{
	free(r->evicted_ms);
	r->evicted_ms = NULL;
}

void swap_slots_writing(struct reclaim *r, uint64_t slot)
{
	__atomic_store_n(&r->evicted_ms[slot], mm_clock_ms(), __ATOMIC_RELAXED);
}

uint32_t swap_slots_evicted_ms(struct reclaim *r, uint64_t slot)
{
	return slot < r->slots ? __atomic_load_n(&r->evicted_ms[slot], __ATOMIC_RELAXED) : 0;
}

struct slot_search {
	uint64_t slot;
	int found;
};

static int find_slot(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct slot_search *s = ctx;
	(void)gfn;
	if (sept_is_swap(*entry) && sept_swap_slot(*entry) == s->slot) {
		s->found = 1;
		return 1;
	}
	return 0;
}

/* A write failed and the page is lost: end every VM that refers to it. */
static void kill_owners(struct reclaim *r, uint64_t slot, int status)
{
	char message[200];
	snprintf(message, sizeof(message), "swap write to slot %llu failed (%s): guest data lost",
		 (unsigned long long)slot, strerror(-status));
	struct frame_pool *pool = r->pool;
	pthread_mutex_lock(&pool->spaces_lock);
	for (int id = 1; id < FRAME_POOL_MAX_SPACES; id++) {
		struct guest_memory *mem = pool->spaces[id];
		if (!mem)
			continue;
		struct slot_search s = {slot, 0};
		guest_memory_walk_sept(mem, find_slot, &s);
		if (s.found)
			guest_memory_kill(mem, message);
	}
	pthread_mutex_unlock(&pool->spaces_lock);
}

void swap_slots_write_done(void *ctx, uint64_t cookie, int status)
{
	struct reclaim *r = ctx;
	uint64_t slot = cookie;
	if (!status || slot >= r->slots)
		return;
	pthread_mutex_lock(&r->lock);
	r->stats.io_errors++;
	/* Nobody refers to it any more: the page was taken back from the
	 * swap cache while the write was in flight, and nothing is lost. The
	 * owners are ended later, outside the registry lock, by
	 * swap_slots_process_failures(). */
	if (swap_slot_refs(r->dev, slot) > 0 &&
	    r->nfailed < sizeof(r->failed_slots) / sizeof(r->failed_slots[0])) {
		r->failed_slots[r->nfailed++] = slot;
		r->last_write_error = status;
	}
	pthread_mutex_unlock(&r->lock);
}

void swap_slots_process_failures(struct reclaim *r)
{
	for (;;) {
		pthread_mutex_lock(&r->lock);
		if (r->nfailed == 0) {
			pthread_mutex_unlock(&r->lock);
			return;
		}
		uint64_t slot = r->failed_slots[--r->nfailed];
		int status = r->last_write_error;
		pthread_mutex_unlock(&r->lock);
		kill_owners(r, slot, status);
	}
}

void swap_slots_release(struct reclaim *r, uint64_t slot)
{
	if (!r->dev || slot >= r->slots)
		return;
	if (r->zswap && swap_slot_refs(r->dev, slot) == 1)
		zswap_invalidate(r->zswap, slot);
	swap_slot_free(r->dev, slot);
}
