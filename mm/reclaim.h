/*
 * reclaim.h - making room in the frame pool: ageing, swap, per-VM limits, OOM.
 *
 * Watermarks (mm/buddy.h, derived as Linux derives them): when an allocation
 * leaves fewer than `low` free frames the reclaim thread (kswapd) wakes and
 * evicts until `high` frames are free; an allocation that would leave fewer
 * than `min` reclaims directly, on the faulting thread, before it allocates.
 *
 * Ageing. The only access information is KVM's dirty log (mm owns it: see
 * guest_memory_harvest()); a page's age is the time since a harvest last
 * showed it (writes, and on this platform a first read too). Reclaim evicts
 * the pages older than a threshold, halving the threshold whenever a pass
 * over every VM finds too few: the oldest pages go first, generation by
 * generation, as in MGLRU. A page that comes back (refaults) sooner than the
 * threshold it was evicted at was part of a working set: it is protected, its
 * next eviction needing twice the age, as mm/workingset.c activates pages
 * whose refault distance is short. Frames fault-around mapped ahead of a
 * guest that never touched them are dropped first, with no I/O at all.
 *
 * Eviction of a VM's pages happens with the VM paused (the safety rule): a
 * run of consecutive pages gets consecutive swap slots, its bytes are copied
 * into io_uring buffers (or zswap), the run is remapped to one anonymous
 * placeholder registered MISSING|WP, its sEPT entries become swap entries,
 * and the frames are freed. A shared (KSM) frame is written once: every
 * sharer found through the reverse map is paused and unmapped, all pointing
 * at the one slot.
 *
 * Swap-in is served on the fault thread (mm/guest_swap.c): zswap, the swap
 * cache of in-flight writes, or a read whose checksum is verified; a
 * sequential refault reads ahead up to page_cluster slots. A checksum
 * mismatch or an I/O error ends that VM only.
 *
 * Limits, as cgroup v2 (mm/memcg.h: each VM is a cgroup, under its
 * fleet's groups): under a cgroup above memory.high, VMs are reclaimed from
 * first and their vCPUs throttled; a fault that would take a cgroup past
 * memory.max reclaims from that cgroup's VMs, and if nothing can be evicted
 * the OOM killer chooses among them. memory.events counts high, max, oom,
 * oom_kill and oom_group_kill.
 *
 * OOM: when reclaim cannot make room (no swap, swap full, nothing left to
 * evict), the VM with the highest badness in the OOM's domain (the pool: all
 * VMs; memory.max: the cgroup's) is killed: resident plus swapped pages,
 * plus oom_score_adj thousandths of the pool; oom_score_adj -1000 is never
 * chosen. If a cgroup on its path within the domain has memory.oom.group
 * set, the highest such cgroup is killed whole. One kill at a time: the next
 * waits until the victim's memory is back.
 *
 * Locking: reclaim.lock protects the counters and the OOM state. Eviction
 * takes, per VM, (pause) -> guest_memory.lock -> frame_pool.shared_lock.
 */
#ifndef MM_RECLAIM_H
#define MM_RECLAIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memcg.h"

struct frame_pool;
struct guest_memory;
struct swap_device;
struct swap_io;
struct zswap;

struct reclaim_config {
	const char *swap_path; /* NULL: no swap */
	uint64_t swap_bytes;
	bool keep_swap;
	uint64_t zswap_bytes;		 /* 0: no zswap */
	unsigned page_cluster;		 /* readahead, in pages (Linux: 2^3 = 8) */
	unsigned batch;			 /* pages evicted per pause (default 256) */
	uint32_t harvest_ms;		 /* how often reclaim asks for the dirty log (500) */
	struct guest_registry *registry; /* the VMs it reclaims from (required) */
};

void reclaim_config_default(struct reclaim_config *cfg);

/* Per-VM limits (cgroup v2 memory.high/max of the VM's own cgroup, and
 * oom_score_adj). 0 = no limit. */
struct memory_limits {
	uint64_t high_pages;
	uint64_t max_pages;
	int oom_score_adj; /* -1000 .. 1000 */
};

struct reclaim_stats {
	uint64_t swap_total_pages, swap_free_pages; /* SwapTotal, SwapFree */
	uint64_t pswpout, pswpin;		    /* pages written, read */
	uint64_t swap_cache_hits, zswap_hits, readahead_pages;
	uint64_t refaults, refaults_protected;
	uint64_t dropped_untouched; /* frames never touched, dropped without I/O */
	uint64_t pgscan, pgsteal;   /* pages examined, pages evicted */
	uint64_t kswapd_wakeups, kswapd_runs;
	double kswapd_seconds;
	uint64_t direct_reclaims;
	double direct_seconds;
	uint64_t oom_kills;
	uint64_t io_errors, checksum_errors;
	uint32_t age_threshold_ms;
	uint64_t zswap_pages, zswap_bytes;
	/* Swap-in latency on the faulting path, log2 buckets of microseconds
	 * (bucket b counts latencies in [2^b, 2^(b+1)) us): faults that read
	 * one page, and faults that read a readahead window. */
	struct latency_histogram {
		uint64_t count[24];
	} swapin_latency, readahead_latency;
	double swapin_seconds; /* the fault path's time in swap-ins, all told */
};

/* The latency (us) below which fraction p (0..1) of the samples lie. */
double latency_percentile(const struct latency_histogram *h, double p);
/* Counts one sample of `ns` nanoseconds. */
void latency_histogram_add(struct latency_histogram *h, uint64_t ns);

struct reclaim;

int reclaim_create(struct reclaim **out, struct frame_pool *pool, const struct reclaim_config *cfg,
		   char *err, size_t errlen);
int reclaim_start(struct reclaim *r); /* the kswapd thread */
void reclaim_destroy(struct reclaim *r);
bool reclaim_has_swap(const struct reclaim *r);
void reclaim_get_stats(struct reclaim *r, struct reclaim_stats *stats);

/* The allocator noticed free frames below `low`: wake kswapd. */
void reclaim_wake(struct reclaim *r);
/* Direct reclaim on behalf of `requester` (which may be NULL): evicts up to
 * `pages` pages, preferring VMs over memory.high. Called without any
 * guest_memory lock held. Returns pages freed. */
size_t reclaim_direct(struct reclaim *r, struct guest_memory *requester, size_t pages);
/* Direct reclaim from the VMs under one cgroup (memory.max,
 * memory.reclaim). Returns pages freed. */
size_t reclaim_memcg(struct reclaim *r, struct memcg *cg, size_t pages);
/* No room could be made for `requester` (may be NULL) in `domain` (NULL:
 * the pool; else the cgroup at memory.max): kill the VM with the highest
 * badness under the domain (maybe the requester), with its oom.group.
 * Returns 1 if a kill is in progress or was started (the caller waits and
 * retries), 0 if nothing can be killed. */
int reclaim_oom(struct reclaim *r, struct memcg *domain, struct guest_memory *requester);
/* A VM's memory is going away: forget it as an OOM victim. */
void reclaim_forget(struct reclaim *r, struct guest_memory *mem);

/* For mm/guest_swap.c. */
struct swap_device *reclaim_swap_device(struct reclaim *r);
struct zswap *reclaim_zswap(struct reclaim *r);
unsigned reclaim_page_cluster(const struct reclaim *r);
void reclaim_note_swapin(struct reclaim *r, uint64_t slot, int from_cache, int from_zswap,
			 unsigned readahead, int *protect);
void reclaim_note_swapin_latency(struct reclaim *r, unsigned pages, uint64_t ns);
void reclaim_note_error(struct reclaim *r, int checksum);
/* The I/O ring of the calling thread (one per thread: fault thread, kswapd). */
struct swap_io *reclaim_thread_io(struct reclaim *r);

#endif
