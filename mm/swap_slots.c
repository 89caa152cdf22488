/*
 * swap_slots.c - the VMM's per-slot bookkeeping beside the swap device.
 *
 * The device keeps a slot whose write is in flight out of reach until the
 * write completes (its bytes are in the swap cache meanwhile), so a page
 * taken back from the swap cache can drop its slot at once. A write that
 * fails while the slot still has references has lost those pages: every VM
 * that refers to the slot is ended. The failed slots are a bitmap, one bit
 * per slot, so no number of failures between two passes is too many; a pass
 * walks each VM's sEPT once against a snapshot of it. The eviction time of
 * each slot gives the refault distance.
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

static size_t bitmap_words(const struct reclaim *r)
{
	return (size_t)((r->slots + 63) / 64);
}

/* swap_device_on_free() hook: a free slot's zswap entry goes with it. (Not a
 * check of the reference count before freeing: two sharers releasing a
 * shared slot together could each see the other's reference.) */
static void slot_freed(void *ctx, uint64_t slot)
{
	zswap_invalidate(ctx, slot);
}

int swap_slots_init(struct reclaim *r)
{
	r->slots = r->dev ? swap_device_slots(r->dev) : 0;
	if (!r->slots)
		return 0;
	if (r->zswap)
		swap_device_on_free(r->dev, slot_freed, r->zswap);
	r->evicted_ms = calloc(r->slots, sizeof(uint32_t));
	r->write_failed = calloc(bitmap_words(r), sizeof(uint64_t));
	return r->evicted_ms && r->write_failed ? 0 : -1;
}

void swap_slots_exit(struct reclaim *r)
{
	free(r->evicted_ms);
	free(r->write_failed);
	r->evicted_ms = NULL;
	r->write_failed = NULL;
}

void swap_slots_writing(struct reclaim *r, uint64_t slot)
{
	__atomic_store_n(&r->evicted_ms[slot], mm_clock_ms(), __ATOMIC_RELAXED);
	uint64_t bit = 1ull << (slot % 64);
	if (__atomic_load_n(&r->write_failed[slot / 64], __ATOMIC_RELAXED) & bit)
		__atomic_fetch_and(&r->write_failed[slot / 64], ~bit, __ATOMIC_RELAXED);
}

uint32_t swap_slots_evicted_ms(struct reclaim *r, uint64_t slot)
{
	return slot < r->slots ? __atomic_load_n(&r->evicted_ms[slot], __ATOMIC_RELAXED) : 0;
}

struct slot_search {
	const uint64_t *failed; /* a snapshot of write_failed */
	uint64_t slot;
	int found;
};

static int find_failed_slot(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct slot_search *s = ctx;
	(void)gfn;
	if (!sept_is_swap(*entry))
		return 0;
	uint64_t slot = sept_swap_slot(*entry);
	if (!(s->failed[slot / 64] & (1ull << (slot % 64))))
		return 0;
	s->slot = slot;
	s->found = 1;
	return 1;
}

/* Writes failed and pages are lost: end every VM that refers to a slot in
 * `failed`. */
static void kill_owners(struct reclaim *r, const uint64_t *failed, int status)
{
	guest_registry_lock(r->registry);
	struct guest_registry_iter it = guest_registry_iter(0);
	struct guest_memory *mem;
	while ((mem = guest_registry_next(r->registry, &it))) {
		if (guest_memory_reclaim(mem) != r)
			continue;
		struct slot_search s = {failed, 0, 0};
		guest_memory_walk_sept(mem, find_failed_slot, &s);
		if (!s.found)
			continue;
		char message[200];
		snprintf(message, sizeof(message),
			 "swap write to slot %llu failed (%s): guest data lost",
			 (unsigned long long)s.slot, strerror(-status));
		guest_memory_fail(mem, "%s", message);
	}
	guest_registry_unlock(r->registry);
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
	if (swap_slot_refs(r->dev, slot) > 0) {
		__atomic_fetch_or(&r->write_failed[slot / 64], 1ull << (slot % 64),
				  __ATOMIC_RELAXED);
		r->failures_pending = true;
		r->last_write_error = status;
	}
	pthread_mutex_unlock(&r->lock);
}

void swap_slots_process_failures(struct reclaim *r)
{
	pthread_mutex_lock(&r->lock);
	if (!r->failures_pending) {
		pthread_mutex_unlock(&r->lock);
		return;
	}
	size_t words = bitmap_words(r);
	uint64_t *failed = malloc(words * sizeof(uint64_t));
	if (!failed) { /* left pending: the next pass tries again */
		pthread_mutex_unlock(&r->lock);
		return;
	}
	for (size_t w = 0; w < words; w++)
		failed[w] = __atomic_exchange_n(&r->write_failed[w], 0, __ATOMIC_RELAXED);
	r->failures_pending = false;
	int status = r->last_write_error;
	pthread_mutex_unlock(&r->lock);
	kill_owners(r, failed, status);
	free(failed);
}

void swap_slots_release(struct reclaim *r, uint64_t slot)
{
	if (!r->dev || slot >= r->slots)
		return;
	swap_slot_free(r->dev, slot); /* the last reference drops its zswap entry */
}
