/*
 * reclaim_swap.c - reclaim's swap side (reclaim.h): the swap device and
 * zswap of the fleet, each thread's io_uring, and the counters of what goes
 * out and comes back, with the working-set test on the way back (a page
 * that refaults sooner than it was old when evicted is protected).
 * guest_swap.c moves pages through it; reclaim.c decides what moves.
 */
#include <stdlib.h>

#include "guest_memory_internal.h"
#include "io/swap_io.h"
#include "reclaim_internal.h"
#include "swap_slots.h"

#define IO_DEPTH_SMALL 32

void reclaim_count_evicted(struct reclaim *r, uint64_t pages)
{
	pthread_mutex_lock(&r->lock);
	r->stats.pswpout += pages;
	r->stats.pgsteal += pages;
	pthread_mutex_unlock(&r->lock);
}

void reclaim_count_dropped(struct reclaim *r, uint64_t pages)
{
	pthread_mutex_lock(&r->lock);
	r->stats.dropped_untouched += pages;
	r->stats.pgsteal += pages;
	pthread_mutex_unlock(&r->lock);
}

struct swap_device *reclaim_swap_device(struct reclaim *r)
{
	return r->dev;
}

struct zswap *reclaim_zswap(struct reclaim *r)
{
	return r->zswap;
}

unsigned reclaim_page_cluster(const struct reclaim *r)
{
	return r->cfg.page_cluster;
}

bool reclaim_has_swap(const struct reclaim *r)
{
	return r->dev != NULL;
}

/* The calling thread's ring, created on first use with `depth` entries
 * (kswapd and the fault thread batch hundreds of writes; a vCPU thread that
 * reads a swapped hypercall buffer needs a few). */
struct swap_io *reclaim_thread_io_depth(struct reclaim *r, unsigned depth)
{
	if (!r->dev)
		return NULL;
	struct swap_io *io = pthread_getspecific(r->io_key);
	if (io)
		return io;
	pthread_mutex_lock(&r->io_list_lock);
	if (r->nios == r->ios_cap) {
		unsigned cap = r->ios_cap ? r->ios_cap * 2 : 8;
		struct swap_io **ios = realloc(r->ios, cap * sizeof(*ios));
		if (ios) {
			r->ios = ios;
			r->ios_cap = cap;
		}
	}
	if (r->nios < r->ios_cap && swap_io_create(r->dev, depth, &io) == 0) {
		r->ios[r->nios++] = io;
		pthread_setspecific(r->io_key, io);
	}
	pthread_mutex_unlock(&r->io_list_lock);
	return io;
}

struct swap_io *reclaim_thread_io(struct reclaim *r)
{
	return reclaim_thread_io_depth(r, IO_DEPTH_SMALL);
}

void reclaim_note_swapin(struct reclaim *r, uint64_t slot, int from_cache, int from_zswap,
			 unsigned readahead, int *protect)
{
	uint32_t evicted = swap_slots_evicted_ms(r, slot);
	pthread_mutex_lock(&r->lock);
	r->stats.pswpin++;
	r->stats.swap_cache_hits += from_cache;
	r->stats.zswap_hits += from_zswap;
	r->stats.readahead_pages += readahead;
	*protect = 0;
	if (!readahead) {
		r->stats.refaults++;
		/* Back sooner than it was old when it went: a working set. */
		if (evicted && mm_clock_ms() - evicted < r->age_threshold_ms) {
			r->stats.refaults_protected++;
			*protect = 1;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

void latency_histogram_add(struct latency_histogram *h, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = 0;
	while (us > 1 && b < 23) {
		us >>= 1;
		b++;
	}
	h->count[b]++;
}

void reclaim_note_swapin_latency(struct reclaim *r, unsigned pages, uint64_t ns)
{
	pthread_mutex_lock(&r->lock);
	latency_histogram_add(pages > 1 ? &r->stats.readahead_latency : &r->stats.swapin_latency,
			      ns);
	r->stats.swapin_seconds += (double)ns * 1e-9;
	pthread_mutex_unlock(&r->lock);
}

double latency_percentile(const struct latency_histogram *h, double p)
{
	uint64_t total = 0;
	for (int b = 0; b < 24; b++)
		total += h->count[b];
	if (!total)
		return 0;
	uint64_t want = (uint64_t)(p * (double)total + 0.5), seen = 0;
	for (int b = 0; b < 24; b++) {
		seen += h->count[b];
		if (seen >= want) {
			/* Interpolate inside the bucket [2^b, 2^(b+1)). */
			uint64_t in = h->count[b];
			double frac = in ? 1.0 - (double)(seen - want) / (double)in : 0;
			double lo = b ? (double)(1u << b) : 0;
			return lo + frac * (double)(1u << b);
		}
	}
	return (double)(1u << 23);
}

void reclaim_note_error(struct reclaim *r, int checksum)
{
	pthread_mutex_lock(&r->lock);
	if (checksum)
		r->stats.checksum_errors++;
	else
		r->stats.io_errors++;
	pthread_mutex_unlock(&r->lock);
}
