/*
 * ksm.c - the KSM scanner: scanning, applying merges, statistics (ksm.h).
 */
#include "ksm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "advisor.h"
#include "io/xxh3.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/rmap.h"
#include "smart_scan.h"
#include "stable_table.h"
#include "unstable_table.h"

#define PAGE_SIZE 4096
#define SCAN_SPAN 512	    /* guest pages looked at per call into mm */
#define KSM_COLLIDED_MAX 16 /* hashes remembered as collided (hash_collided) */
#define SCAN_LAG 4	    /* pages hashed between a page's hash and its lookups */

static const uint8_t zero_page[PAGE_SIZE];

/* A page queued for merging into a stable node (or the zero run). */
struct merge_op {
	uint64_t gfn;
	uint64_t old_frame;
	struct ksm_stable_node *node; /* NULL: the zero run */
};

struct ksm_vm {
	struct guest_memory *mem;
	uint64_t pages;
	uint64_t cursor;
	uint8_t *merge_count;	 /* times the page was merged (and copied back) */
	uint8_t *age;		 /* smart scan: full scans without a merge */
	uint32_t *checksums;	 /* last hash per page, without the dirty log */
	uint64_t *volatile_bits; /* pages found volatile on their last visit */
	uint64_t volatile_count;
	bool has_pending;	/* a pending node's page is ours */
	struct merge_op *queue; /* merges queued this batch */
	size_t nqueued, queue_cap;
};

struct ksm {
	struct ksm_config cfg;
	struct frame_pool *pool;
	uint64_t (*hash)(const void *page);
	uint64_t zero_hash;
	int64_t zero_run;

	pthread_t thread;
	bool running, stop;
	pthread_mutex_t lock;
	int lock_waiters; /* atomic: threads other than the scanner wanting lock */
	pthread_cond_t cond;
	struct ksm_vm *vms[KSM_MAX_VMS];
	unsigned nvms;
	unsigned scan_vm; /* index of the VM being scanned */

	struct ksm_stable_table stable;
	struct ksm_unstable_table unstable;
	struct ksm_stable_node **pending; /* nodes to promote this batch */
	size_t npending, pending_cap;
	struct guest_page candidates[SCAN_SPAN];
	unsigned char residency[SCAN_SPAN];

	/* counters, under the lock */
	uint64_t full_scans, pages_scanned, merges, merge_failures, pauses, harvests, batches;
	uint64_t pages_skipped, hash_mismatches;
	uint32_t scan_now_ms;	      /* mm_clock_ms() at the start of the current scan() */
	int run;		      /* 0 stopped, 1 scanning, 2 stopped after unmerging */
	struct advisor advisor;	      /* the scan-time advisor's state (advisor.h) */
	uint64_t chains, dups;	      /* stable node chains, counted at the last full scan */
	uint64_t merges_at_full_scan; /* `merges` when the last full scan ended */
	uint64_t gone_at_sweep;	      /* the pool's shared_frames_gone at the last sweep */
	/* Hashes seen on two different pages (stable_match): compared at scan. */
	uint64_t collided[KSM_COLLIDED_MAX];
	unsigned ncollided;
	bool collided_overflow; /* more than KSM_COLLIDED_MAX: compare every hash */
	uint64_t pause_ns, max_pause_ns, cpu_ns;
	uint64_t scan_ns, pause_wait_ns, verify_ns, remap_ns, promote_ns;

	pthread_mutex_t snapshot_lock;
	struct ksm_stats snapshot;
};

static uint64_t xxh3_page(const void *page)
{
	return XXH3_64bits(page, PAGE_SIZE);
}

static uint64_t now_ns(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static const uint8_t *frame_content(struct ksm *ksm, uint64_t frame)
{
	return frame_pool_address(ksm->pool, frame);
}

/*
 * Whether two pages hold the same bytes. They are guest memory that guests,
 * and once a frame is reused the VMM's own fault paths, may write meanwhile:
 * KSM reads them racily by design, as Linux's KSM compares pages a task may
 * be writing, and decides nothing on such a read alone (every merge is
 * checked again with the VM paused and under its lock). Under
 * ThreadSanitizer the comparison is a plain uninstrumented loop, so that
 * these intended races are not reported and real ones still are.
 */
#ifdef VMM_TSAN
__attribute__((no_sanitize_thread)) static bool pages_equal(const void *a, const void *b)
{
	const volatile uint64_t *x = a, *y = b;
	for (size_t i = 0; i < PAGE_SIZE / 8; i++)
		if (x[i] != y[i])
			return false;
	return true;
}
#else
static bool pages_equal(const void *a, const void *b)
{
	return memcmp(a, b, PAGE_SIZE) == 0;
}
#endif

void ksm_config_default(struct ksm_config *cfg)
{
	cfg->pages_to_scan = 100;
	cfg->sleep_millisecs = 20;
	cfg->max_rate = false;
	cfg->max_page_sharing = 256;
	cfg->use_zero_pages = true;
	cfg->dirty_log = true;
	cfg->stable_age_ms = 100;
	cfg->apply_chunk = 128;
	cfg->smart_scan = true;
	cfg->advisor = false;
	cfg->advisor_target_scan_ms = 200000;
	cfg->advisor_max_cpu = 70;
	cfg->advisor_min_pages = 500;
	cfg->advisor_max_pages = 30000;
}

/* --- scanning --- */

static void set_volatile(struct ksm_vm *vm, uint64_t gfn, int is_volatile)
{
	uint64_t bit = 1ull << (gfn % 64), *word = &vm->volatile_bits[gfn / 64];
	if (is_volatile && !(*word & bit)) {
		*word |= bit;
		vm->volatile_count++;
	} else if (!is_volatile && (*word & bit)) {
		*word &= ~bit;
		vm->volatile_count--;
	}
}

/* The page changed or is about to merge: a fresh start for smart scan. */
static void smart_reset(struct ksm_vm *vm, uint64_t gfn)
{
	vm->age[gfn] = 0;
}

static int queue_merge(struct ksm_vm *vm, uint64_t gfn, uint64_t frame,
		       struct ksm_stable_node *node)
{
	smart_reset(vm, gfn);
	if (vm->nqueued == vm->queue_cap) {
		size_t cap = vm->queue_cap ? vm->queue_cap * 2 : 256;
		struct merge_op *queue = realloc(vm->queue, cap * sizeof(*queue));
		if (!queue)
			return -1;
		vm->queue = queue;
		vm->queue_cap = cap;
	}
	vm->queue[vm->nqueued++] = (struct merge_op){gfn, frame, node};
	if (vm->merge_count[gfn] < UINT8_MAX)
		vm->merge_count[gfn]++;
	if (node)
		node->queued++;
	return 0;
}

static struct ksm_stable_node *add_pending(struct ksm *ksm, uint64_t hash, uint64_t frame,
					   struct ksm_vm *vm, uint64_t gfn)
{
	if (ksm->npending == ksm->pending_cap) {
		size_t cap = ksm->pending_cap ? ksm->pending_cap * 2 : 256;
		struct ksm_stable_node **p = realloc(ksm->pending, cap * sizeof(*p));
		if (!p)
			return NULL;
		ksm->pending = p;
		ksm->pending_cap = cap;
	}
	struct ksm_stable_node *node = stable_table_add_pending(&ksm->stable, hash, frame, vm, gfn);
	if (node) {
		ksm->pending[ksm->npending++] = node;
		vm->has_pending = true;
	}
	return node;
}

/* Hashes two different pages were seen to share (hash_collided). */
static void hash_collision_seen(struct ksm *ksm, uint64_t hash)
{
	if (ksm->ncollided < KSM_COLLIDED_MAX)
		ksm->collided[ksm->ncollided++] = hash;
	else
		ksm->collided_overflow = true;
}

static bool hash_collided(const struct ksm *ksm, uint64_t hash)
{
	if (ksm->collided_overflow)
		return true;
	for (unsigned i = 0; i < ksm->ncollided; i++)
		if (ksm->collided[i] == hash)
			return true;
	return false;
}

/* Looks for a stable node holding `content` (hash its hash). Sets *full if
 * identical nodes exist but all have max_page_sharing mappers. The pages
 * are compared here only for a hash that has collided before: a stable
 * frame is write-protected, and the apply phase compares the page with it,
 * the VM paused, before anything is mapped (a hash is never trusted alone),
 * so comparing at both places cost a third of a merge's memcmp. A page
 * that fails there with its hash unchanged is a collision: from then on its
 * hash is compared here, so the right node of several is found. */
static struct ksm_stable_node *stable_match(struct ksm *ksm, uint64_t hash, const void *content,
					    bool *full)
{
	*full = false;
	/* The table is the KSM lock's; shared_lock only for the mappers. */
	struct ksm_stable_node *first = stable_table_first(&ksm->stable, hash);
	if (!first)
		return NULL;
	bool compare = hash_collided(ksm, hash);
	pthread_mutex_lock(&ksm->pool->shared_lock);
	struct ksm_stable_node *found = NULL;
	for (struct ksm_stable_node *node = first; node; node = stable_table_next(node)) {
		if (stable_node_dead(node))
			continue;
		if (compare && !pages_equal(content, frame_content(ksm, node->frame))) {
			ksm->hash_mismatches++;
			continue;
		}
		if (stable_node_mappers(node) >= ksm->cfg.max_page_sharing) {
			*full = true;
			continue;
		}
		found = node;
		break;
	}
	pthread_mutex_unlock(&ksm->pool->shared_lock);
	return found;
}

/* Whether volatility is judged from the VM's access log (else checksums). */
static bool uses_access_log(const struct ksm *ksm, const struct ksm_vm *vm)
{
	return ksm->cfg.dirty_log && guest_memory_tracks_access(vm->mem);
}

/* A page's first half: whether it is a candidate now (not volatile, holding
 * host memory) and, if so, the hash of its content. */
static bool scan_hash(struct ksm *ksm, struct ksm_vm *vm, uint64_t gfn, uint64_t frame,
		      int resident, uint64_t *hash_out)
{
	ksm->pages_scanned++;
	/* A page merged before is private again only because the guest wrote
	 * it: each earlier merge doubles the quiet time it needs, so a page
	 * rewritten with shared content does not bounce between merging and
	 * copy-on-write (each copy costs the guest a userfaultfd round trip). */
	bool use_log = uses_access_log(ksm, vm);
	uint32_t age_needed = ksm->cfg.stable_age_ms
			      << (vm->merge_count[gfn] < 6 ? vm->merge_count[gfn] : 6);
	uint32_t written = guest_memory_last_write(vm->mem, gfn);
	if (use_log && (guest_memory_recently_dirty(vm->mem, gfn) ||
			(written && (int32_t)(ksm->scan_now_ms - written) < (int32_t)age_needed))) {
		set_volatile(vm, gfn, 1);
		smart_reset(vm, gfn);
		return false;
	}
	/* A frame the guest never wrote (mapped ahead by fault-around) is a
	 * hole: it costs no host memory, and merging it would only turn the
	 * guest's first write into a copy-on-write. Like untouched memory in
	 * Linux, it is not a candidate. */
	if (!resident)
		return false;
	uint64_t hash = ksm->hash(frame_content(ksm, frame));
	if (!use_log && vm->checksums[gfn] != (uint32_t)hash) {
		vm->checksums[gfn] = (uint32_t)hash;
		set_volatile(vm, gfn, 1);
		smart_reset(vm, gfn);
		return false;
	}
	set_volatile(vm, gfn, 0);
	*hash_out = hash;
	return true;
}

/* Its second half: the zero page, the stable table, the unstable table. */
static void scan_match(struct ksm *ksm, struct ksm_vm *vm, uint64_t gfn, uint64_t frame,
		       uint64_t hash)
{
	const void *content = frame_content(ksm, frame);
	bool use_log = uses_access_log(ksm, vm);
	if (hash == ksm->zero_hash &&
	    (!hash_collided(ksm, hash) || pages_equal(content, zero_page))) { /* as stable_match */
		/* A zero page no harvest has ever shown was never touched by the
		 * guest: fresh memory that fault-around or fault-ahead mapped
		 * ahead of it. Merging it would make its first write a
		 * copy-on-write. */
		if (use_log && guest_memory_last_access(vm->mem, gfn) == 0)
			return;
		if (ksm->cfg.use_zero_pages && ksm->zero_run >= 0) {
			queue_merge(vm, gfn, frame, NULL);
			return;
		}
	}
	bool full;
	struct ksm_stable_node *node = stable_match(ksm, hash, content, &full);
	if (node) {
		queue_merge(vm, gfn, frame, node);
		return;
	}
	if (full) {
		/* Identical content but every frame has max_page_sharing
		 * mappers: this page starts another one. */
		add_pending(ksm, hash, frame, vm, gfn);
		return;
	}
	for (struct ksm_unstable_item *item = unstable_table_first(&ksm->unstable, hash); item;
	     item = unstable_table_next(&ksm->unstable, item)) {
		if (item->vm == vm && item->gfn == gfn)
			continue;
		if (!pages_equal(content, frame_content(ksm, item->frame))) {
			ksm->hash_mismatches++; /* mostly a candidate written since */
			continue;
		}
		node = add_pending(ksm, hash, item->frame, item->vm, item->gfn);
		unstable_table_remove(&ksm->unstable, item);
		if (node)
			queue_merge(vm, gfn, frame, node);
		return;
	}
	unstable_table_insert(&ksm->unstable, hash, vm, gfn, frame);
}

/* Which of the n candidates' frames hold host memory (mincore on the pool
 * mapping, one call per run of consecutive frames). */
static void check_residency(struct ksm *ksm, struct ksm_vm *vm, size_t n)
{
	/* A page the access log has shown was touched by the guest: its
	 * frame holds memory (a first read of a shmem hole allocates too). */
	bool log = uses_access_log(ksm, vm);
	size_t i = 0;
	while (i < n) {
		if (log && guest_memory_last_access(vm->mem, ksm->candidates[i].gfn)) {
			ksm->residency[i++] = 1;
			continue;
		}
		size_t len = 1;
		while (i + len < n &&
		       ksm->candidates[i + len].frame == ksm->candidates[i].frame + len &&
		       !(log && guest_memory_last_access(vm->mem, ksm->candidates[i + len].gfn)))
			len++;
		if (mincore(frame_pool_address(ksm->pool, ksm->candidates[i].frame),
			    len * PAGE_SIZE, &ksm->residency[i]) != 0)
			memset(&ksm->residency[i], 1, len);
		i += len;
	}
}

/* Asks for every line of the page hashed next while this one hashes. The
 * hardware prefetcher stops at page boundaries, and the frames of
 * consecutive guest pages need not be neighbours: each page's hash began
 * with a run of misses. Prefetching all 64 lines of the next page made
 * XXH3 over 256 MiB of 4 KiB pages from memory 1.12-1.18x faster here;
 * 4 or 16 lines made it slower (they put off the hardware's own stream). */
static void prefetch_page(const uint8_t *page)
{
	for (size_t off = 0; off < PAGE_SIZE; off += 64)
		__builtin_prefetch(page + off);
}

/* Scans up to `budget` pages, moving from VM to VM. Returns 1 when a full
 * scan of every VM completed. */
static int scan(struct ksm *ksm, uint64_t budget)
{
	int full_scan = 0;
	uint64_t visited = 0;
	while (budget > 0 && ksm->nvms > 0) {
		if (ksm->scan_vm >= ksm->nvms)
			ksm->scan_vm = 0;
		struct ksm_vm *vm = ksm->vms[ksm->scan_vm];
		/* Every harvest write-protects what the guest wrote, so its next
		 * write faults: harvest a VM at most every stable_age_ms / 2,
		 * which is all the volatility rule needs. */
		if (ksm->cfg.dirty_log &&
		    guest_memory_harvest(vm->mem, ksm->cfg.stable_age_ms / 2 + 1))
			ksm->harvests++;
		/* The time volatility is judged at, once per span (after the
		 * harvest: its stamps must not be in this time's future). */
		ksm->scan_now_ms = mm_clock_ms();
		uint64_t span = SCAN_SPAN;
		size_t n = guest_memory_private_pages(vm->mem, vm->cursor, span, ksm->candidates,
						      budget < SCAN_SPAN ? budget : SCAN_SPAN);
		/* Smart scan first: a skipped page costs no residency check. */
		size_t kept = 0;
		for (size_t i = 0; i < n; i++) {
			if (ksm->cfg.smart_scan &&
			    smart_scan_skip(&vm->age[ksm->candidates[i].gfn], ksm->full_scans)) {
				ksm->pages_skipped++;
				continue;
			}
			ksm->candidates[kept++] = ksm->candidates[i];
		}
		uint64_t last_gfn = n ? ksm->candidates[n - 1].gfn : 0;
		check_residency(ksm, vm, kept);
		uint64_t scanned_before = ksm->pages_scanned;
		/* A pipeline: page i is hashed and the table slots its hash leads
		 * to are asked for, and it is matched SCAN_LAG pages later. A
		 * lookup in tables of a whole fleet's pages is a cache miss or
		 * two (a quarter of the scan with nothing to merge, perf), which
		 * the hashing of the pages in between hides. */
		uint64_t hashes[SCAN_LAG + 1];
		bool match[SCAN_LAG + 1];
		for (size_t i = 0; i < kept + SCAN_LAG; i++) {
			if (i < kept) {
				size_t w = i % (SCAN_LAG + 1);
				if (i + 1 < kept && (ksm->residency[i + 1] & 1))
					prefetch_page(
						frame_content(ksm, ksm->candidates[i + 1].frame));
				match[w] = scan_hash(ksm, vm, ksm->candidates[i].gfn,
						     ksm->candidates[i].frame,
						     ksm->residency[i] & 1, &hashes[w]);
				if (match[w]) {
					stable_table_prefetch(&ksm->stable, hashes[w]);
					unstable_table_prefetch(&ksm->unstable, hashes[w]);
				}
			}
			if (i < SCAN_LAG)
				continue;
			size_t m = i - SCAN_LAG, w = m % (SCAN_LAG + 1);
			if (match[w])
				scan_match(ksm, vm, ksm->candidates[m].gfn,
					   ksm->candidates[m].frame, hashes[w]);
		}
		/* Where the next call starts: after the last page taken if the
		 * budget cut the span short, else after the span. */
		uint64_t next = n == budget ? last_gfn + 1 : vm->cursor + span;
		/* Pages smart scan skipped do not count against the batch, as
		 * in Linux (pages_to_scan counts the pages scanned). */
		budget -= ksm->pages_scanned - scanned_before;
		/* Empty stretches cost a little budget too, so a VM with few
		 * present pages is not walked endlessly in one batch. */
		visited += next - vm->cursor;
		if (visited >= 64 * KSM_MAX_RATE_BATCH)
			budget = 0;
		vm->cursor = next;
		if (vm->cursor >= vm->pages) {
			vm->cursor = 0;
			if (++ksm->scan_vm >= ksm->nvms) {
				ksm->scan_vm = 0;
				ksm->full_scans++;
				full_scan = 1;
				break;
			}
		}
	}
	return full_scan;
}

/* --- applying --- */

static void timed_pause(struct ksm *ksm, struct ksm_vm *vm, uint64_t *t0)
{
	uint64_t asked = now_ns(CLOCK_MONOTONIC);
	guest_memory_pause(vm->mem);
	*t0 = now_ns(CLOCK_MONOTONIC);
	ksm->pause_wait_ns += *t0 - asked;
	ksm->pauses++;
}

static void timed_resume(struct ksm *ksm, struct ksm_vm *vm, uint64_t t0)
{
	uint64_t ns = now_ns(CLOCK_MONOTONIC) - t0;
	guest_memory_resume(vm->mem);
	ksm->pause_ns += ns;
	if (ns > ksm->max_pause_ns)
		ksm->max_pause_ns = ns;
}

/* Turns each pending node's page into a shared frame: one pause per VM. */
static void promote_pending(struct ksm *ksm)
{
	for (unsigned v = 0; v < ksm->nvms; v++) {
		struct ksm_vm *vm = ksm->vms[v];
		if (!vm->has_pending)
			continue;
		uint64_t t0;
		timed_pause(ksm, vm, &t0);
		for (size_t i = 0; i < ksm->npending; i++) {
			struct ksm_stable_node *node = ksm->pending[i];
			if (node->pending_vm != vm)
				continue;
			node->shared = guest_memory_share(vm->mem, node->pending_gfn, node->frame);
			if (node->shared)
				ksm->merges++;
		}
		ksm->promote_ns += now_ns(CLOCK_MONOTONIC) - t0;
		timed_resume(ksm, vm, t0);
		vm->has_pending = false;
	}
}

static int compare_ops(const void *a, const void *b)
{
	const struct merge_op *x = a, *y = b;
	return (x->gfn > y->gfn) - (x->gfn < y->gfn);
}

/* The frame a page merges into, or -1 if its node is gone. Pins the frame
 * (shared_lock held). */
static int64_t pin_target(struct ksm *ksm, const struct merge_op *op)
{
	if (!op->node)
		return ksm->zero_run + (int64_t)(op->gfn % FRAME_POOL_ZERO_RUN_PAGES);
	struct rmap_shared *shared = op->node->shared;
	if (!shared || shared->frame == RMAP_FRAME_GONE)
		return -1;
	shared->pins++;
	return (int64_t)shared->frame;
}

/* Applies up to apply_chunk of vm's merges, from ops[first], under one pause. */
static void apply_chunk(struct ksm *ksm, struct ksm_vm *vm, size_t first, size_t n,
			struct guest_merge *merges, bool *ok, int64_t *target, uint64_t *old)
{
	struct merge_op *ops = &vm->queue[first];
	pthread_mutex_lock(&ksm->pool->shared_lock);
	for (size_t i = 0; i < n; i++)
		target[i] = pin_target(ksm, &ops[i]);
	pthread_mutex_unlock(&ksm->pool->shared_lock);

	uint64_t t0;
	timed_pause(ksm, vm, &t0);
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (target[i] < 0)
			continue;
		/* The VM is paused: its page cannot change under this check. */
		const void *want =
			ops[i].node ? frame_content(ksm, (uint64_t)target[i]) : zero_page;
		const void *page = frame_content(ksm, ops[i].old_frame);
		if (!pages_equal(page, want)) {
			/* Written since it was hashed, or (its hash still the
			 * target's) a collision of the two hashes. */
			uint64_t hash = ops[i].node ? ops[i].node->hash : ksm->zero_hash;
			if (ksm->hash(page) == hash) {
				ksm->hash_mismatches++;
				hash_collision_seen(ksm, hash);
			} else
				ksm->merge_failures++;
			continue;
		}
		merges[m++] = (struct guest_merge){
			.gfn = ops[i].gfn,
			.old_frame = ops[i].old_frame,
			.new_frame = (uint64_t)target[i],
			.shared = ops[i].node ? ops[i].node->shared : NULL,
		};
	}
	uint64_t t1 = now_ns(CLOCK_MONOTONIC);
	ksm->verify_ns += t1 - t0;
	ksm->merges += guest_memory_merge(vm->mem, merges, m, ok, true);
	ksm->remap_ns += now_ns(CLOCK_MONOTONIC) - t1;
	timed_resume(ksm, vm, t0);
	/* The replaced frames, together and with the VM running again. */
	uint64_t t2 = now_ns(CLOCK_MONOTONIC);
	size_t nold = 0;
	for (size_t i = 0; i < m; i++)
		if (ok[i])
			old[nold++] = merges[i].old_frame;
	frame_pool_free_list(ksm->pool, old, nold);
	ksm->remap_ns += now_ns(CLOCK_MONOTONIC) - t2;

	pthread_mutex_lock(&ksm->pool->shared_lock);
	for (size_t i = 0; i < n; i++) {
		if (ops[i].node && target[i] >= 0) {
			ops[i].node->shared->pins--;
			frame_pool_put_shared(ksm->pool, ops[i].node->shared);
		}
	}
	pthread_mutex_unlock(&ksm->pool->shared_lock);
}

static void apply(struct ksm *ksm)
{
	promote_pending(ksm);
	size_t chunk = ksm->cfg.apply_chunk ? ksm->cfg.apply_chunk : 128;
	struct guest_merge *merges = malloc(chunk * sizeof(*merges));
	bool *ok = malloc(chunk * sizeof(*ok));
	int64_t *target = malloc(chunk * sizeof(*target));
	uint64_t *old = malloc(chunk * sizeof(*old));
	for (unsigned v = 0; merges && ok && target && old && v < ksm->nvms; v++) {
		struct ksm_vm *vm = ksm->vms[v];
		if (!vm->nqueued)
			continue;
		qsort(vm->queue, vm->nqueued, sizeof(*vm->queue), compare_ops);
		for (size_t first = 0; first < vm->nqueued; first += chunk)
			apply_chunk(ksm, vm, first,
				    vm->nqueued - first < chunk ? vm->nqueued - first : chunk,
				    merges, ok, target, old);
	}
	free(old);
	free(merges);
	free(ok);
	free(target);
	/* Queued counts are spent; pending nodes whose page changed go. */
	for (unsigned v = 0; v < ksm->nvms; v++) {
		struct ksm_vm *vm = ksm->vms[v];
		for (size_t i = 0; i < vm->nqueued; i++)
			if (vm->queue[i].node)
				vm->queue[i].node->queued = 0;
		vm->nqueued = 0;
	}
	for (size_t i = 0; i < ksm->npending; i++) {
		struct ksm_stable_node *node = ksm->pending[i];
		node->pending_vm = NULL;
		if (!node->shared)
			stable_table_remove(&ksm->stable, node, ksm->pool);
	}
	ksm->npending = 0;
}

/* --- statistics --- */

/* The bytes of a VM's per-page arrays (see ksm_add_vm). */
static uint64_t vm_array_bytes(const struct ksm_vm *vm)
{
	return (vm->pages + 63) / 64 * 8 + vm->pages * 2 + (vm->checksums ? vm->pages * 4 : 0);
}

static void publish_stats(struct ksm *ksm)
{
	struct ksm_stats s;
	memset(&s, 0, sizeof(s));
	/* Every shared frame is one of the stable table's (KSM makes them
	 * all): the pool's counts are the table's, without walking it after
	 * every batch (a walk whose cost grew with the fleet). */
	pthread_mutex_lock(&ksm->pool->shared_lock);
	uint64_t shared = ksm->pool->shared_frames, mappers = ksm->pool->shared_mappers;
	pthread_mutex_unlock(&ksm->pool->shared_lock);
	s.pages_shared = shared;
	s.pages_sharing = mappers - shared;
	s.pages_unshared = ksm->unstable.items;
	s.stable_nodes = ksm->stable.nodes;
	s.stable_node_chains = ksm->chains;
	s.stable_node_dups = ksm->dups;
	uint64_t bitmap_bytes = 0;
	for (unsigned v = 0; v < ksm->nvms; v++) {
		struct ksm_vm *vm = ksm->vms[v];
		s.ksm_zero_pages += guest_memory_zero_pages(vm->mem);
		s.pages_volatile += vm->volatile_count;
		bitmap_bytes += vm_array_bytes(vm);
	}
	s.full_scans = ksm->full_scans;
	s.pages_scanned = ksm->pages_scanned;
	s.pages_skipped = ksm->pages_skipped;
	s.pages_to_scan = ksm->cfg.max_rate && !ksm->cfg.advisor ? KSM_MAX_RATE_BATCH
								 : ksm->cfg.pages_to_scan;
	s.advisor_scan_seconds = ksm->advisor.scan_seconds;
	s.advisor_cpu_percent = ksm->advisor.cpu_percent;
	s.hash_mismatches = ksm->hash_mismatches;
	s.merges = ksm->merges;
	s.merge_failures = ksm->merge_failures;
	s.pauses = ksm->pauses;
	s.pause_seconds = (double)ksm->pause_ns * 1e-9;
	s.max_pause_ms = (double)ksm->max_pause_ns * 1e-6;
	s.cpu_seconds = (double)ksm->cpu_ns * 1e-9;
	s.scan_seconds = (double)ksm->scan_ns * 1e-9;
	s.pause_wait_seconds = (double)ksm->pause_wait_ns * 1e-9;
	s.verify_seconds = (double)ksm->verify_ns * 1e-9;
	s.remap_seconds = (double)ksm->remap_ns * 1e-9;
	s.promote_seconds = (double)ksm->promote_ns * 1e-9;
	s.dirty_harvests = ksm->harvests;
	s.batches = ksm->batches;
	s.metadata_bytes = s.stable_nodes * sizeof(struct ksm_stable_node) +
			   mappers * sizeof(struct rmap_mapper) +
			   shared * sizeof(struct rmap_shared) +
			   s.pages_unshared * sizeof(struct ksm_unstable_item) + bitmap_bytes;
	s.general_profit = (int64_t)((s.pages_sharing + s.ksm_zero_pages) * PAGE_SIZE) -
			   (int64_t)s.metadata_bytes;
	pthread_mutex_lock(&ksm->snapshot_lock);
	ksm->snapshot = s;
	pthread_mutex_unlock(&ksm->snapshot_lock);
}

void ksm_get_stats(struct ksm *ksm, struct ksm_stats *stats)
{
	pthread_mutex_lock(&ksm->snapshot_lock);
	*stats = ksm->snapshot;
	pthread_mutex_unlock(&ksm->snapshot_lock);
}

/* --- the batch and the thread --- */

/* Takes ksm.lock from a thread other than the scanner. At max rate the
 * scanner drops the lock between batches only to take it again at once,
 * and a mutex is not fair: a VM ending (ksm_remove_vm) could wait for
 * seconds. Waiters say so, and the scanner lets them in first. */
static void lock_as_waiter(struct ksm *ksm)
{
	__atomic_add_fetch(&ksm->lock_waiters, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_lock(&ksm->lock);
	__atomic_sub_fetch(&ksm->lock_waiters, 1, __ATOMIC_ACQ_REL);
}

/* The scanner, between batches: the lock is dropped until no other thread
 * waits for it. */
static void yield_lock(struct ksm *ksm)
{
	pthread_mutex_unlock(&ksm->lock);
	do
		sched_yield();
	while (__atomic_load_n(&ksm->lock_waiters, __ATOMIC_ACQUIRE));
	pthread_mutex_lock(&ksm->lock);
}

/* The advisor's turn: when switched on, and after every full scan. */
static void advisor_turn(struct ksm *ksm)
{
	struct advisor_clock now = {
		.now_ns = now_ns(CLOCK_MONOTONIC),
		.cpu_ns = ksm->cpu_ns,
		.pages_scanned = ksm->pages_scanned,
		.batches = ksm->batches,
	};
	if (!ksm->advisor.started)
		for (unsigned v = 0; v < ksm->nvms; v++)
			now.present_pages += guest_memory_present_count(ksm->vms[v]->mem);
	ksm->cfg.pages_to_scan = advisor_update(&ksm->advisor, &ksm->cfg, &now);
}

static int run_batch_locked(struct ksm *ksm)
{
	uint64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
	if (ksm->cfg.advisor && !ksm->advisor.started)
		advisor_turn(ksm);
	uint64_t budget = ksm->cfg.max_rate && !ksm->cfg.advisor ? KSM_MAX_RATE_BATCH
								 : ksm->cfg.pages_to_scan;
	uint64_t t0 = now_ns(CLOCK_MONOTONIC);
	int full = scan(ksm, budget ? budget : 1);
	ksm->scan_ns += now_ns(CLOCK_MONOTONIC) - t0;
	apply(ksm);
	ksm->batches++;
	ksm->cpu_ns += now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	if (ksm->cfg.advisor && full)
		advisor_turn(ksm);
	/* Published before a full scan's reset, so pages_unshared counts the
	 * candidates of the scan that just completed. */
	publish_stats(ksm);
	if (full) {
		/* After apply: queued merges may point at nodes the sweep frees. */
		unstable_table_clear(&ksm->unstable);
		/* The sweep and the chain count walk the whole stable table:
		 * only when a shared frame was freed, or a merge changed it
		 * (with smart scan a settled fleet's full scans are short). */
		uint64_t gone = __atomic_load_n(&ksm->pool->shared_frames_gone, __ATOMIC_RELAXED);
		size_t removed = 0;
		if (gone != ksm->gone_at_sweep) {
			ksm->gone_at_sweep = gone;
			removed = stable_table_sweep(&ksm->stable, ksm->pool);
		}
		if (removed || ksm->merges != ksm->merges_at_full_scan) {
			pthread_mutex_lock(&ksm->pool->shared_lock);
			stable_table_chains(&ksm->stable, &ksm->chains, &ksm->dups);
			pthread_mutex_unlock(&ksm->pool->shared_lock);
		}
		uint64_t volatile_pages = 0;
		for (unsigned v = 0; v < ksm->nvms; v++)
			volatile_pages += ksm->vms[v]->volatile_count;
		if (ksm->merges == ksm->merges_at_full_scan && volatile_pages) {
			full = 2; /* what may merge is volatile: wait for it */
		}
		ksm->merges_at_full_scan = ksm->merges;
	}
	return full;
}

int ksm_scan_batch(struct ksm *ksm)
{
	lock_as_waiter(ksm);
	int full = run_batch_locked(ksm) != 0;
	pthread_mutex_unlock(&ksm->lock);
	return full;
}

uint64_t ksm_vm_array_bytes(struct ksm *ksm, struct guest_memory *mem)
{
	uint64_t bytes = 0;
	lock_as_waiter(ksm);
	for (unsigned v = 0; v < ksm->nvms; v++)
		if (ksm->vms[v]->mem == mem)
			bytes = vm_array_bytes(ksm->vms[v]);
	pthread_mutex_unlock(&ksm->lock);
	return bytes;
}

uint64_t ksm_mapper_bytes(uint64_t merging_pages)
{
	return merging_pages * sizeof(struct rmap_mapper);
}

/* Waits ms (ksm.lock held, dropped meanwhile), or until told to stop. */
static void sleep_locked(struct ksm *ksm, uint64_t ms)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	while (!ksm->stop && pthread_cond_timedwait(&ksm->cond, &ksm->lock, &until) != ETIMEDOUT)
		;
}

/* The start delay. With the access log, every VM is harvested once a
 * volatility window (stable_age_ms) before the end of it: a first harvest
 * at the start would show every page the guests ever wrote as written just
 * then, and the scans of the first window would merge nothing. */
static void start_delay(struct ksm *ksm)
{
	uint64_t delay = ksm->cfg.start_delay_ms, window = ksm->cfg.stable_age_ms;
	if (!ksm->cfg.dirty_log || delay <= window) {
		sleep_locked(ksm, delay);
		return;
	}
	sleep_locked(ksm, delay - window);
	for (unsigned v = 0; v < ksm->nvms && !ksm->stop; v++)
		if (guest_memory_harvest(ksm->vms[v]->mem, 0))
			ksm->harvests++;
	sleep_locked(ksm, window);
}

static void *ksm_thread(void *arg)
{
	struct ksm *ksm = arg;
	pthread_setname_np(pthread_self(), "vmm-ksm");
	pthread_mutex_lock(&ksm->lock);
	start_delay(ksm);
	while (!ksm->stop) {
		if (ksm->nvms == 0 || ksm->run != 1) {
			pthread_cond_wait(&ksm->cond, &ksm->lock);
			continue;
		}
		/* A full scan that merged nothing while pages were volatile
		 * waits for the volatility window rather than spin through the
		 * same pages again: a quarter of it. (At max rate right after
		 * the guests wrote everything, that spin was most of the
		 * scanner's CPU to 99% of the saving with few VMs.) */
		int idle = run_batch_locked(ksm) == 2;
		if (ksm->cfg.max_rate && !idle) {
			yield_lock(ksm);
			continue;
		}
		sleep_locked(ksm,
			     idle ? (ksm->cfg.stable_age_ms / 4 ? ksm->cfg.stable_age_ms / 4 : 1)
				  : ksm->cfg.sleep_millisecs);
	}
	pthread_mutex_unlock(&ksm->lock);
	return NULL;
}

/* --- life cycle --- */

int ksm_create(struct ksm **out, struct frame_pool *pool, const struct ksm_config *cfg)
{
	struct ksm *ksm = calloc(1, sizeof(*ksm));
	if (!ksm)
		return -1;
	ksm->run = 1;
	ksm->cfg = *cfg;
	if (ksm->cfg.advisor)
		ksm->cfg.pages_to_scan = ksm->cfg.advisor_min_pages; /* until the first estimate */
	if (ksm->cfg.max_page_sharing < 2)
		ksm->cfg.max_page_sharing = 2;
	ksm->pool = pool;
	ksm->hash = xxh3_page;
	ksm->zero_hash = xxh3_page(zero_page);
	ksm->zero_run = cfg->use_zero_pages ? frame_pool_zero_run(pool) : -1;
	pthread_mutex_init(&ksm->lock, NULL);
	pthread_mutex_init(&ksm->snapshot_lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ksm->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (stable_table_init(&ksm->stable) || unstable_table_init(&ksm->unstable)) {
		ksm_destroy(ksm);
		return -1;
	}
	*out = ksm;
	return 0;
}

int ksm_start(struct ksm *ksm)
{
	if (pthread_create(&ksm->thread, NULL, ksm_thread, ksm))
		return -1;
	ksm->running = true;
	return 0;
}

void ksm_destroy(struct ksm *ksm)
{
	if (!ksm)
		return;
	if (ksm->running) {
		lock_as_waiter(ksm);
		ksm->stop = true;
		pthread_cond_broadcast(&ksm->cond);
		pthread_mutex_unlock(&ksm->lock);
		pthread_join(ksm->thread, NULL);
	}
	for (unsigned v = 0; v < ksm->nvms; v++)
		ksm_remove_vm(ksm, ksm->vms[v]->mem);
	unstable_table_destroy(&ksm->unstable);
	stable_table_destroy(&ksm->stable, ksm->pool);
	free(ksm->pending);
	pthread_mutex_destroy(&ksm->lock);
	pthread_mutex_destroy(&ksm->snapshot_lock);
	pthread_cond_destroy(&ksm->cond);
	free(ksm);
}

static void free_vm(struct ksm_vm *vm)
{
	free(vm->merge_count);
	free(vm->age);
	free(vm->checksums);
	free(vm->volatile_bits);
	free(vm->queue);
	free(vm);
}

int ksm_add_vm(struct ksm *ksm, struct guest_memory *mem)
{
	struct ksm_vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -1;
	vm->mem = mem;
	vm->pages = guest_memory_pages(mem);
	size_t words = (vm->pages + 63) / 64;
	vm->merge_count = calloc(vm->pages, 1);
	vm->age = calloc(vm->pages, 1);
	vm->volatile_bits = calloc(words, sizeof(uint64_t));
	bool checksums = !uses_access_log(ksm, vm);
	if (checksums)
		vm->checksums = calloc(vm->pages, sizeof(uint32_t));
	if (!vm->merge_count || !vm->age || !vm->volatile_bits || (checksums && !vm->checksums)) {
		free_vm(vm);
		return -1;
	}
	lock_as_waiter(ksm);
	int rc = -1;
	if (ksm->nvms < KSM_MAX_VMS) {
		ksm->vms[ksm->nvms++] = vm;
		pthread_cond_broadcast(&ksm->cond);
		rc = 0;
	}
	pthread_mutex_unlock(&ksm->lock);
	if (rc)
		free_vm(vm);
	return rc;
}

void ksm_remove_vm(struct ksm *ksm, struct guest_memory *mem)
{
	lock_as_waiter(ksm);
	for (unsigned v = 0; v < ksm->nvms; v++) {
		struct ksm_vm *vm = ksm->vms[v];
		if (vm->mem != mem)
			continue;
		unstable_table_forget_vm(&ksm->unstable, vm);
		memmove(&ksm->vms[v], &ksm->vms[v + 1], (ksm->nvms - v - 1) * sizeof(vm));
		ksm->nvms--;
		if (ksm->scan_vm > v)
			ksm->scan_vm--;
		free_vm(vm);
		break;
	}
	publish_stats(ksm);
	pthread_mutex_unlock(&ksm->lock);
}

void ksm_set_hash_function(struct ksm *ksm, uint64_t (*hash)(const void *page))
{
	lock_as_waiter(ksm);
	ksm->hash = hash ? hash : xxh3_page;
	ksm->zero_hash = ksm->hash(zero_page);
	ksm->ncollided = 0;
	ksm->collided_overflow = false;
	pthread_mutex_unlock(&ksm->lock);
}

int ksm_get_run(struct ksm *ksm)
{
	lock_as_waiter(ksm);
	int run = ksm->run;
	pthread_mutex_unlock(&ksm->lock);
	return run;
}

int ksm_set_run(struct ksm *ksm, int run)
{
	if (run < 0 || run > 2)
		return -1;
	int rc = 0;
	lock_as_waiter(ksm);
	ksm->run = run;
	if (run == 2) {
		/* Stop, then give every merged page its own frame again. */
		for (unsigned v = 0; v < ksm->nvms; v++) {
			struct ksm_vm *vm = ksm->vms[v];
			guest_memory_pause(vm->mem);
			if (guest_memory_unmerge(vm->mem) < 0)
				rc = -1;
			guest_memory_resume(vm->mem);
		}
		unstable_table_clear(&ksm->unstable);
		stable_table_sweep(&ksm->stable, ksm->pool);
		publish_stats(ksm);
	}
	pthread_cond_broadcast(&ksm->cond);
	pthread_mutex_unlock(&ksm->lock);
	return rc;
}

void ksm_get_config(struct ksm *ksm, struct ksm_config *cfg)
{
	lock_as_waiter(ksm);
	*cfg = ksm->cfg;
	pthread_mutex_unlock(&ksm->lock);
}

int ksm_set_config(struct ksm *ksm, const struct ksm_config *cfg)
{
	if (cfg->pages_to_scan < 1 || cfg->max_page_sharing < 2)
		return -1;
	lock_as_waiter(ksm);
	bool advisor_on = cfg->advisor && !ksm->cfg.advisor;
	ksm->cfg = *cfg;
	if (advisor_on) {
		/* Switched on: a fresh measurement, from a first estimate
		 * before the next batch (advisor.c). */
		advisor_reset(&ksm->advisor);
	}
	pthread_cond_broadcast(&ksm->cond);
	pthread_mutex_unlock(&ksm->lock);
	return 0;
}
