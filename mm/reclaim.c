/*
 * reclaim.c - kswapd, direct reclaim and the ageing threshold (reclaim.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame_pool.h"
#include "guest_memory_internal.h"
#include "io/swap_device.h"
#include "io/swap_io.h"
#include "io/zswap.h"
#include "reclaim_internal.h"
#include "swap_slots.h"

#define AGE_MAX_MS 16000 /* the threshold starts here and grows back to it */
#define KSWAPD_PERIOD_MS 200
#define IO_DEPTH 256

void reclaim_config_default(struct reclaim_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->page_cluster = 8;
	cfg->batch = 256;
	cfg->harvest_ms = 500;
}

static double now_seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* One VM's share of a pass; the VMs over memory.high first. */
static size_t reclaim_vm(struct reclaim *r, struct guest_memory *mem, struct swap_io *io,
			 size_t want, uint32_t age, uint64_t *scanned)
{
	if (guest_memory_dead(mem))
		return 0;
	guest_memory_harvest(mem, r->cfg.harvest_ms);
	size_t freed = 0;
	while (freed < want) {
		size_t n = guest_memory_evict(
			mem, io, age, want - freed < r->cfg.batch ? want - freed : r->cfg.batch,
			scanned);
		if (n == 0)
			break;
		freed += n;
	}
	return freed;
}

/* How far the VM's cgroups are above memory.high (the largest excess on
 * its path), in pages. */
static uint64_t high_excess(struct guest_memory *mem)
{
	return memcg_high_excess(guest_memory_memcg(mem), NULL);
}

/* What a reclaim pass is after, passed down as vmscan.c's scan_control. */
struct scan_control {
	size_t target;	     /* pages to free */
	struct memcg *memcg; /* the VMs under one cgroup (memory.max); NULL: all */
	bool over_high;	     /* each VM under a cgroup above memory.high, by the excess */
	/* memory.low: a first pass leaves VMs within it alone and says so; a
	 * second, if the first freed too little, takes from them too */
	bool memcg_low_reclaim, memcg_low_skipped;
};

/* How many pages reclaim may take from the VM of cgroup `cg` (its own) as
 * the reclaim of sc sees its protection (memory.min, and memory.low unless
 * the pass ignores it), as mem_cgroup_calculate_protection() and the
 * proportional scan of get_scan_count(): all above the protection. */
static uint64_t unprotected(struct scan_control *sc, struct memcg *cg)
{
	uint64_t emin, elow, usage = memcg_usage(cg);
	memcg_protection(cg, sc->memcg, &emin, &elow);
	if (usage <= emin)
		return 0; /* memory.min: never */
	if (usage <= elow) {
		if (!sc->memcg_low_reclaim) {
			sc->memcg_low_skipped = true;
			return 0;
		}
		memcg_event(cg, MEMCG_LOW);
		return usage - emin;
	}
	uint64_t keep = !sc->memcg_low_reclaim && elow > emin ? elow : emin;
	return usage > keep ? usage - keep : 0;
}

/* Evicts up to sc->target pages from the VMs it names, lowering the age
 * threshold until enough was found. Reclaim from a cgroup (memory.max,
 * memory.high) has no threshold: like a memcg's own LRU it takes its VMs'
 * oldest pages, however young. Every VM is reached through the registry,
 * under its lock, so none can go away meanwhile. Returns pages freed. */
static size_t reclaim_pass(struct reclaim *r, struct scan_control *sc)
{
	struct swap_io *io = reclaim_thread_io(r);
	if (!io && r->dev)
		return 0;
	size_t freed = 0;
	uint64_t scanned = 0;
	bool global = !sc->memcg && !sc->over_high;
	pthread_mutex_lock(&r->lock);
	uint32_t age = global ? r->age_threshold_ms : 0;
	pthread_mutex_unlock(&r->lock);
	for (;;) {
		guest_registry_lock(r->registry);
		for (int round = 0; round < 2 && freed < sc->target; round++) {
			struct guest_registry_iter it = guest_registry_iter(r->next_vm);
			struct guest_memory *mem;
			while (freed < sc->target &&
			       (mem = guest_registry_next(r->registry, &it))) {
				if (guest_memory_reclaim(mem) != r ||
				    (sc->memcg &&
				     !memcg_is_descendant(guest_memory_memcg(mem), sc->memcg)))
					continue;
				/* Round 0: only VMs above memory.high. */
				uint64_t excess = 0;
				if ((round == 0 && global) || sc->over_high) {
					excess = high_excess(mem);
					if (!excess)
						continue;
				}
				size_t want = sc->target - freed;
				if (sc->over_high) {
					if (excess < want)
						want = (size_t)excess;
					if (want > r->cfg.batch)
						want = r->cfg.batch; /* a batch a round */
				}
				uint64_t room = unprotected(sc, guest_memory_memcg(mem));
				if (room < want)
					want = (size_t)room;
				if (want)
					freed += reclaim_vm(r, mem, io, want, age, &scanned);
			}
			if (!global)
				break;
		}
		r->next_vm++;
		guest_registry_unlock(r->registry);
		if (io && swap_io_drain(io, swap_slots_write_done, r))
			reclaim_note_error(r, 0); /* stuck: see swap_io_drain() */
		swap_slots_process_failures(r);
		if (freed >= sc->target || age == 0)
			break;
		age /= 2; /* look at younger pages */
	}
	pthread_mutex_lock(&r->lock);
	r->stats.pgscan += scanned;
	if (!global) {
		pthread_mutex_unlock(&r->lock);
		return freed;
	}
	/* Found plenty at the current age: let the threshold grow back. */
	if (age == r->age_threshold_ms && freed >= sc->target) {
		if (r->age_threshold_ms < AGE_MAX_MS)
			r->age_threshold_ms = r->age_threshold_ms ? r->age_threshold_ms * 2 : 125;
	} else {
		r->age_threshold_ms = age;
	}
	pthread_mutex_unlock(&r->lock);
	return freed;
}

/* A pass, and if it freed too little because VMs were within memory.low,
 * a second that takes from them too (do_try_to_free_pages' retry with
 * memcg_low_reclaim). */
static size_t shrink(struct reclaim *r, struct scan_control *sc)
{
	size_t target = sc->target, freed = reclaim_pass(r, sc);
	if (freed < target && sc->memcg_low_skipped && !sc->memcg_low_reclaim) {
		sc->memcg_low_reclaim = true;
		sc->target = target - freed;
		freed += reclaim_pass(r, sc);
		sc->target = target;
	}
	return freed;
}

/* Direct reclaim: the faulting thread pays for it (also for memory.max, as in
 * Linux's try_to_free_mem_cgroup_pages). */
static size_t direct_pass(struct reclaim *r, struct memcg *memcg, size_t pages)
{
	double t0 = now_seconds();
	struct scan_control sc = {.target = pages, .memcg = memcg};
	size_t freed = shrink(r, &sc);
	pthread_mutex_lock(&r->lock);
	r->stats.direct_reclaims++;
	r->stats.direct_seconds += now_seconds() - t0;
	pthread_mutex_unlock(&r->lock);
	return freed;
}

size_t reclaim_direct(struct reclaim *r, struct guest_memory *requester, size_t pages)
{
	(void)requester;
	return direct_pass(r, NULL, pages);
}

size_t reclaim_memcg(struct reclaim *r, struct memcg *cg, size_t pages)
{
	return direct_pass(r, cg, pages);
}

void reclaim_wake(struct reclaim *r)
{
	pthread_mutex_lock(&r->lock);
	if (!r->wake_pending) {
		r->wake_pending = true;
		r->stats.kswapd_wakeups++;
		pthread_cond_signal(&r->wake);
	}
	pthread_mutex_unlock(&r->lock);
}

static void pool_low(void *ctx)
{
	reclaim_wake(ctx);
}

/* kswapd: below `low`, evict until `high`; also keeps VMs under memory.high. */
static void *kswapd(void *arg)
{
	struct reclaim *r = arg;
	pthread_setname_np(pthread_self(), "vmm-kswapd");
	struct buddy *buddy = &r->pool->buddy;
	reclaim_thread_io_depth(r, IO_DEPTH);
	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		if (!r->wake_pending) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_nsec += KSWAPD_PERIOD_MS * 1000000L;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&r->wake, &r->lock, &until);
			if (r->stop)
				break;
		}
		r->wake_pending = false;
		pthread_mutex_unlock(&r->lock);
		double t0 = now_seconds();
		int worked = 0;
		while (!r->stop && buddy_free_pages_estimate(buddy) < buddy->wmark.high) {
			worked = 1;
			struct scan_control pressure = {.target = r->cfg.batch};
			if (shrink(r, &pressure) == 0)
				break;
		}
		/* VMs above memory.high are trimmed even without pool pressure:
		 * each by its excess, at most a batch a round. */
		struct scan_control trim = {.target = SIZE_MAX, .over_high = true};
		if (!r->stop && shrink(r, &trim))
			worked = 1;
		pthread_mutex_lock(&r->lock);
		if (worked) {
			r->stats.kswapd_runs++;
			r->stats.kswapd_seconds += now_seconds() - t0;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int reclaim_create(struct reclaim **out, struct frame_pool *pool, const struct reclaim_config *cfg,
		   char *err, size_t errlen)
{
	struct reclaim *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->cfg = *cfg;
	if (!r->cfg.batch)
		r->cfg.batch = 256;
	if (!r->cfg.page_cluster)
		r->cfg.page_cluster = 1;
	r->pool = pool;
	r->registry = cfg->registry;
	r->age_threshold_ms = AGE_MAX_MS;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->io_list_lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&r->wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_key_create(&r->io_key, NULL);
	if (cfg->swap_path) {
		struct swap_device_config dc = {.path = cfg->swap_path,
						.size_bytes = cfg->swap_bytes,
						.keep = cfg->keep_swap};
		if (swap_device_open(&r->dev, &dc, err, errlen)) {
			reclaim_destroy(r);
			return -1;
		}
	}
	if (cfg->zswap_bytes && zswap_create(&r->zswap, cfg->zswap_bytes)) {
		snprintf(err, errlen, "cannot create the zswap pool");
		reclaim_destroy(r);
		return -1;
	}
	if (swap_slots_init(r)) {
		snprintf(err, errlen, "out of memory for the swap slot table");
		reclaim_destroy(r);
		return -1;
	}
	frame_pool_set_low_hook(pool, pool_low, r);
	*out = r;
	return 0;
}

int reclaim_start(struct reclaim *r)
{
	if (pthread_create(&r->thread, NULL, kswapd, r))
		return -1;
	r->running = true;
	return 0;
}

void reclaim_destroy(struct reclaim *r)
{
	if (!r)
		return;
	if (r->running) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_broadcast(&r->wake);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->thread, NULL);
	}
	frame_pool_set_low_hook(r->pool, NULL, NULL);
	for (unsigned i = 0; i < r->nios; i++)
		swap_io_destroy(r->ios[i]);
	free(r->ios);
	pthread_key_delete(r->io_key);
	if (r->dev)
		swap_device_on_free(r->dev, NULL, NULL);
	if (r->zswap)
		zswap_destroy(r->zswap);
	if (r->dev)
		swap_device_close(r->dev);
	swap_slots_exit(r);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->io_list_lock);
	pthread_cond_destroy(&r->wake);
	free(r);
}

void reclaim_get_stats(struct reclaim *r, struct reclaim_stats *stats)
{
	pthread_mutex_lock(&r->lock);
	*stats = r->stats;
	stats->age_threshold_ms = r->age_threshold_ms;
	pthread_mutex_unlock(&r->lock);
	if (r->dev) {
		stats->swap_total_pages = swap_device_slots(r->dev);
		stats->swap_free_pages = swap_device_free_slots(r->dev);
	}
	if (r->zswap) {
		struct zswap_stats z;
		zswap_get_stats(r->zswap, &z);
		stats->zswap_pages = z.stored_pages;
		stats->zswap_bytes = z.pool_bytes;
	}
}
