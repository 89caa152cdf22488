/*
 * guest_swap.c - moving a VM's pages out to swap and back (see reclaim.h).
 *
 * Eviction runs with the VM paused. For each run of victim pages with
 * consecutive gfns: frames that are holes (the guest never wrote them) are
 * simply dropped, their pages untouched again; the others get consecutive
 * slots, their bytes go to zswap or into io_uring buffers (queued writes),
 * the run is remapped to one placeholder, and the frames are freed. A shared
 * frame is evicted once for all its sharers (guest_memory_evict_shared()).
 *
 * Swap-in runs on the fault thread: zswap, then the swap cache of writes in
 * flight, then a read whose checksum the swap device verifies. A sequential
 * refault (the previous swap-in was the page before) reads ahead the
 * following pages whose slots follow, up to page_cluster, into one block of
 * frames mapped with one mmap.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "guest_memory_internal.h"
#include "io/swap_device.h"
#include "io/swap_io.h"
#include "io/zswap.h"
#include "rmap.h"
#include "swap_slots.h"

#define EVICT_BATCH_MAX 512

struct memcg *guest_over_max(struct guest_memory *mem, uint64_t more)
{
	return memcg_over_max(mem->memcg, more);
}

struct memcg *guest_charge(struct guest_memory *mem, uint64_t n)
{
	struct memcg *refused = memcg_try_charge(mem->memcg, n);
	if (!refused)
		mem->sept.precharged += n;
	return refused;
}

void guest_charge_settle(struct guest_memory *mem)
{
	if (mem->sept.precharged)
		page_counter_charge(mem->sept.counter, -(int64_t)mem->sept.precharged);
	mem->sept.precharged = 0;
}

/* A VM's swap-policy state. */
struct guest_swap_state {
	uint64_t evict_cursor;	  /* reclaim's clock hand */
	uint32_t evict_cut_ms;	  /* the oldest-first cut (oldest_cut) */
	uint32_t evict_cut_at;	  /* when it was computed (mm_clock_ms) */
	uint32_t evict_oldest_ms; /* then, no page was older than this */
	uint64_t last_swapin_gfn; /* to spot sequential refaults */
};

struct guest_swap_state *guest_swap_state_create(void)
{
	return calloc(1, sizeof(struct guest_swap_state));
}

/* --- eviction --- */

struct victim {
	uint64_t gfn, frame;
	int hole; /* the frame holds no host memory: drop it */
};

struct collect {
	struct guest_memory *mem;
	struct victim *victims;
	size_t n, max;
	uint32_t now, min_age;
	uint64_t scanned;
	int shared_found; /* a shared frame old enough, evicted separately */
	uint64_t shared_frame, shared_gfn;
};

/* sept_walk callback, mem->lock held: old enough private pages. */
static int collect_page(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct collect *c = ctx;
	sept_entry e = *entry;
	if (!sept_is_present(e) || (e & (SEPT_PINNED | SEPT_ZERO)))
		return 0;
	c->scanned++;
	uint32_t seen = guest_memory_last_access(c->mem, gfn);
	uint32_t age_needed = (e & SEPT_WORKINGSET) ? c->min_age * 2 : c->min_age;
	if (seen && c->now - seen < age_needed)
		return 0;
	if (e & SEPT_SHARED) {
		if (!c->shared_found) {
			c->shared_found = 1;
			c->shared_frame = sept_frame(e);
			c->shared_gfn = gfn;
		}
		return 0;
	}
	c->victims[c->n].gfn = gfn;
	c->victims[c->n].frame = sept_frame(e);
	c->victims[c->n].hole = 0;
	return ++c->n == c->max ? 1 : 0;
}

/*
 * Oldest first. Within one VM the pages older than the pass's threshold are
 * not all equal: the cut below picks, from a histogram of page ages, the age
 * above which the oldest `want` pages lie, so the clock hand only takes those
 * (MGLRU evicts from its oldest generation; these buckets are the
 * generations). Ages go in 8 ms buckets up to 2 s, then powers of two. A
 * protected (working-set) page counts at half its age, as collect_page()
 * asks twice the age of it.
 */
#define AGE_FINE_MS 8
#define AGE_FINE_BUCKETS 256 /* up to 2048 ms */
#define AGE_BUCKETS (AGE_FINE_BUCKETS + 21)
#define CUT_TTL_MS 50 /* a cut is reused this long while it still finds victims */

static unsigned age_bucket(uint32_t age)
{
	if (age < AGE_FINE_BUCKETS * AGE_FINE_MS)
		return age / AGE_FINE_MS;
	unsigned b = AGE_FINE_BUCKETS;
	for (age >>= 11; age > 1 && b < AGE_BUCKETS - 1; age >>= 1)
		b++;
	return b;
}

static uint32_t bucket_floor(unsigned b)
{
	return b < AGE_FINE_BUCKETS ? b * AGE_FINE_MS : 2048u << (b - AGE_FINE_BUCKETS);
}

struct age_histogram {
	struct guest_memory *mem;
	uint32_t now;
	uint32_t count[AGE_BUCKETS]; /* private pages */
	unsigned shared_top;	     /* 1 + the oldest shared page's bucket; 0: none */
};

static int count_age(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct age_histogram *h = ctx;
	sept_entry e = *entry;
	if (!sept_is_present(e) || (e & (SEPT_PINNED | SEPT_ZERO)))
		return 0;
	uint32_t seen = guest_memory_last_access(h->mem, gfn);
	uint32_t age = seen ? h->now - seen : UINT32_MAX;
	if (e & SEPT_WORKINGSET)
		age /= 2;
	unsigned b = age_bucket(age);
	/* Shared frames are not batch victims (collect_page() takes one per
	 * call, evicted on its own): counting them would put the cut above
	 * every private page once old pages are mostly merged ones. They only
	 * tell whether anything at all is old enough. */
	if (e & SEPT_SHARED) {
		if (b + 1 > h->shared_top)
			h->shared_top = b + 1;
		return 0;
	}
	h->count[b]++;
	return 0;
}

/* mem->lock held: the age at or above which the oldest `want` pages lie;
 * *oldest: no page is older than this. */
static uint32_t oldest_cut(struct guest_memory *mem, uint32_t now, size_t want, uint32_t *oldest)
{
	struct age_histogram h = {.mem = mem, .now = now};
	sept_walk(&mem->sept, 0, mem->pages, count_age, &h);
	unsigned top = h.shared_top; /* 1 + the oldest bucket of any page */
	for (unsigned b = AGE_BUCKETS; b-- > top;)
		if (h.count[b]) {
			top = b + 1;
			break;
		}
	*oldest = !top ? 0 : top < AGE_BUCKETS ? bucket_floor(top) : UINT32_MAX;
	size_t seen = 0;
	for (unsigned b = AGE_BUCKETS; b-- > 0;) {
		seen += h.count[b];
		if (seen >= want)
			return bucket_floor(b);
	}
	return 0;
}

/* Marks frames that are holes, per run of consecutive frames. (Not with
 * mincore(): a frame the host swapped out would look like a hole, be
 * dropped, and the guest's data with it.) */
static void find_holes(struct guest_memory *mem, struct victim *v, size_t n)
{
	unsigned char vec[EVICT_BATCH_MAX];
	size_t i = 0;
	while (i < n) {
		size_t len = 1;
		while (i + len < n && v[i + len].frame == v[i].frame + len)
			len++;
		frame_pool_backed(mem->pool, v[i].frame, len, vec);
		for (size_t k = 0; k < len; k++)
			v[i + k].hole = !vec[k];
		i += len;
	}
}

/* The owner tag a swapped-out page's checksum is seeded with
 * (io/swap_device.h): the VM and guest page for a private page, never 0;
 * 0 for a KSM page, which has many owners. A swap entry keeps SEPT_SHARED to
 * tell which. */
static uint64_t swap_tag(const struct guest_memory *mem, uint64_t gfn, sept_entry e)
{
	return (e & SEPT_SHARED) ? 0 : (uint64_t)mem->id << (SEPT_GFN_BITS + 1) | (gfn + 1);
}

/* Writes one page (zswap first); retries through reaping when the ring is
 * full. Returns 0, or -errno. */
static int write_page(struct reclaim *r, struct swap_io *io, uint64_t slot, const void *page,
		      uint64_t tag)
{
	struct zswap *z = reclaim_zswap(r);
	swap_slots_writing(r, slot);
	if (z && zswap_store(z, slot, page, tag) == 0)
		return 0;
	for (int tries = 0; tries < 1000; tries++) {
		int rc = swap_io_queue_write(io, slot, page, tag, slot);
		if (rc != -EAGAIN)
			return rc;
		swap_io_submit(io);
		swap_io_reap(io, 1, swap_slots_write_done, r);
	}
	return -EAGAIN;
}

/* Charges up to n swap entries ahead (memory.swap.max on the VM's path):
 * n, or the largest of n/2, n/4, ... that fits, or 0 (counted in
 * memory.swap.events). The sEPT's new swap entries use the charge up;
 * swap_settle() gives back the rest. mem->lock held. */
static uint64_t swap_charge(struct guest_memory *mem, uint64_t n)
{
	struct memcg *refused = NULL;
	for (; n; n /= 2) {
		refused = memcg_try_charge_swap(mem->memcg, n);
		if (!refused) {
			mem->sept.swap_precharged += n;
			return n;
		}
	}
	memcg_swap_event(refused, true);
	return 0;
}

static void swap_settle(struct guest_memory *mem)
{
	if (mem->sept.swap_precharged)
		page_counter_charge(mem->sept.swap_counter, -(int64_t)mem->sept.swap_precharged);
	mem->sept.swap_precharged = 0;
}

/* Evicts the victims (sorted by gfn) of a paused VM, mem->lock held.
 * Returns frames freed. */
static size_t evict_victims(struct guest_memory *mem, struct swap_io *io, struct victim *v,
			    size_t n)
{
	struct reclaim *r = mem->reclaim;
	struct swap_device *dev = reclaim_swap_device(r);
	size_t freed = 0, i = 0;
	while (i < n) {
		/* A run: consecutive gfns, all holes or none. */
		size_t len = 1;
		while (i + len < n && v[i + len].gfn == v[i].gfn + len &&
		       v[i + len].hole == v[i].hole)
			len++;
		uint64_t first_slot = 0;
		if (!v[i].hole) {
			if (!dev)
				break;
			len = (size_t)swap_charge(mem, len);
			if (len == 0)
				break; /* at memory.swap.max */
			unsigned got = swap_slot_alloc_run(dev, (unsigned)mem->id, (unsigned)len,
							   &first_slot);
			if (got == 0) {
				memcg_swap_event(mem->memcg, false);
				break; /* swap full */
			}
			len = got;
			for (size_t k = 0; k < len; k++) {
				int rc = write_page(r, io, first_slot + k,
						    frame_pool_address(mem->pool, v[i + k].frame),
						    swap_tag(mem, v[i + k].gfn, 0));
				if (rc) {
					for (size_t j = k; j < len; j++)
						swap_slot_free(dev, first_slot + j);
					len = k;
					break;
				}
			}
			if (len == 0)
				break;
		}
		int error = realiser_unmap(mem, v[i].gfn, len);
		if (error) {
			/* The run stays resident (the VM is failed); the slots its
			 * copies went to (zswap or in-flight writes) are let go. */
			for (size_t k = 0; !v[i].hole && k < len; k++)
				swap_slots_release(r, first_slot + k);
			guest_memory_fail(mem, "cannot unmap evicted guest memory: %s",
					  strerror(-error));
			break;
		}
		for (size_t k = 0; k < len; k++) {
			if (v[i].hole) {
				sept_clear(&mem->sept, v[i + k].gfn);
			} else {
				sept_set(&mem->sept, v[i + k].gfn,
					 sept_make_swap(first_slot + k, 0));
				mem->stats.pswpout++;
			}
			frame_set(frame_pool_frame(mem->pool, v[i + k].frame), FRAME_ALLOCATED, 0);
		}
		/* Free the frames in runs of consecutive frames. */
		size_t start = 0;
		for (size_t k = 1; k <= len; k++) {
			if (k < len && v[i + k].frame == v[i + k - 1].frame + 1)
				continue;
			frame_pool_free(mem->pool, v[i + start].frame, k - start);
			start = k;
		}
		if (v[i].hole)
			reclaim_count_dropped(r, len);
		else
			reclaim_count_evicted(r, len);
		freed += len;
		i += len;
	}
	swap_settle(mem);
	return freed;
}

/* Evicts one shared frame for all its sharers: every mapper paused and
 * unmapped, the page written once. Returns 1 if freed. The caller holds the
 * registry's lock (reclaim walks the registry under it). */
static size_t evict_shared(struct reclaim *r, struct frame_pool *pool, struct swap_io *io,
			   uint64_t frame)
{
	struct swap_device *dev = reclaim_swap_device(r);
	struct guest_memory *sharers[64];
	uint64_t gfns[64];
	unsigned n = 0;
	/* Who maps it (a snapshot; re-checked below under each VM's lock). */
	pthread_mutex_lock(&pool->shared_lock);
	struct frame *f = frame_pool_frame(pool, frame);
	if (frame_state(f) == FRAME_SHARED) {
		for (struct rmap_mapper *m = frame_shared(f)->mappers; m && n < 64; m = m->next) {
			struct guest_memory *mem = guest_registry_get(r->registry, m->vm_id);
			if (mem) {
				sharers[n] = mem;
				gfns[n++] = m->gfn;
			}
		}
	}
	pthread_mutex_unlock(&pool->shared_lock);
	if (n == 0 || !dev || n == 64)
		return 0;
	int64_t slot = swap_slot_alloc(dev, 0);
	if (slot < 0)
		return 0;
	for (unsigned i = 1; i < n; i++)
		swap_slot_dup(dev, (uint64_t)slot);
	if (write_page(r, io, (uint64_t)slot, frame_pool_address(pool, frame),
		       swap_tag(NULL, 0, SEPT_SHARED))) {
		for (unsigned i = 0; i < n; i++)
			swap_slots_release(r, (uint64_t)slot);
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		guest_memory_pause(sharers[i]);
	unsigned moved = 0;
	for (unsigned i = 0; i < n; i++) {
		struct guest_memory *mem = sharers[i];
		pthread_mutex_lock(&mem->lock);
		sept_entry e = sept_lookup(&mem->sept, gfns[i]);
		int error = -ESTALE;
		/* Each sharer's swap entry is its cgroups' (memory.swap.max). */
		if (sept_is_present(e) && (e & SEPT_SHARED) && sept_frame(e) == frame &&
		    !guest_memory_dead(mem) && swap_charge(mem, 1))
			error = realiser_unmap(mem, gfns[i], 1);
		if (!error) {
			sept_set(&mem->sept, gfns[i], sept_make_swap((uint64_t)slot, SEPT_SHARED));
			guest_release_shared(mem, gfns[i], e);
			mem->ksm_pages--;
			mem->stats.pswpout++;
			moved++;
		} else {
			swap_slots_release(r, (uint64_t)slot); /* this sharer's reference */
			/* Its mapping may be gone with the page still recorded
			 * as shared: that VM cannot go on. */
			if (error != -ESTALE)
				guest_memory_fail(mem, "cannot unmap evicted guest memory: %s",
						  strerror(-error));
		}
		swap_settle(mem);
		pthread_mutex_unlock(&mem->lock);
	}
	for (unsigned i = 0; i < n; i++)
		guest_memory_resume(sharers[i]);
	reclaim_count_evicted(r, moved ? 1 : 0);
	return moved == n ? 1 : 0;
}

size_t guest_memory_evict(struct guest_memory *mem, struct swap_io *io, uint32_t min_age_ms,
			  size_t max, uint64_t *scanned)
{
	struct victim v[EVICT_BATCH_MAX];
	if (max > EVICT_BATCH_MAX)
		max = EVICT_BATCH_MAX;
	uint32_t now = mm_clock_ms();
	struct collect c = {.mem = mem, .victims = v, .max = max, .now = now};
	pthread_mutex_lock(&mem->lock);
	if (guest_memory_dead(mem)) {
		pthread_mutex_unlock(&mem->lock);
		return 0;
	}
	uint64_t from =
		mem->swap_state->evict_cursor < mem->pages ? mem->swap_state->evict_cursor : 0;
	for (int fresh = 0;; fresh = 1) {
		if (fresh || !mem->swap_state->evict_cut_at ||
		    now - mem->swap_state->evict_cut_at > CUT_TTL_MS) {
			/* A cut for a few batches (the oldest sixteenth of the
			 * VM, up to 2048 pages, at least this batch), so the
			 * histogram is not redone for every one. */
			size_t want = (size_t)(mem->sept.present_pages / 16);
			if (want > 4 * EVICT_BATCH_MAX)
				want = 4 * EVICT_BATCH_MAX;
			if (want < max)
				want = max;
			mem->swap_state->evict_cut_ms =
				oldest_cut(mem, now, want, &mem->swap_state->evict_oldest_ms);
			mem->swap_state->evict_cut_at = now ? now : 1;
			fresh = 1;
		}
		/* Nothing old enough: no walk (a global pass lowering its
		 * threshold asks every VM each time). */
		uint64_t oldest_now = (uint64_t)mem->swap_state->evict_oldest_ms +
				      (now - mem->swap_state->evict_cut_at);
		if (oldest_now < min_age_ms)
			break;
		c.min_age = mem->swap_state->evict_cut_ms > min_age_ms
				    ? mem->swap_state->evict_cut_ms
				    : min_age_ms;
		c.n = 0;
		c.shared_found = 0;
		/* The clock hand: from the cursor to the end, then from the start. */
		sept_walk(&mem->sept, from, mem->pages, collect_page, &c);
		if (c.n < c.max && from > 0)
			sept_walk(&mem->sept, 0, from, collect_page, &c);
		/* A stale cut that finds too little is redone once. */
		if (c.n == c.max || fresh || c.min_age == min_age_ms)
			break;
	}
	mem->swap_state->evict_cursor = c.n ? v[c.n - 1].gfn + 1 : from;
	pthread_mutex_unlock(&mem->lock);
	*scanned += c.scanned;

	size_t freed = 0;
	if (c.n) {
		/* Victims may straddle the wrap: sort by gfn for the runs. */
		for (size_t i = 1; i < c.n; i++) {
			struct victim x = v[i];
			size_t j = i;
			while (j > 0 && v[j - 1].gfn > x.gfn) {
				v[j] = v[j - 1];
				j--;
			}
			v[j] = x;
		}
		guest_memory_pause(mem);
		/* Only now: a running guest could write a hole between the check
		 * and the pause, and dropping it would lose that write. */
		find_holes(mem, v, c.n);
		pthread_mutex_lock(&mem->lock);
		/* Drop victims whose entry changed since they were picked. */
		size_t k = 0;
		for (size_t i = 0; i < c.n; i++) {
			sept_entry e = sept_lookup(&mem->sept, v[i].gfn);
			if (sept_is_present(e) && !(e & (SEPT_SHARED | SEPT_ZERO | SEPT_PINNED)) &&
			    sept_frame(e) == v[i].frame)
				v[k++] = v[i];
		}
		freed = evict_victims(mem, io, v, k);
		pthread_mutex_unlock(&mem->lock);
		guest_memory_resume(mem);
	}
	if (c.shared_found && freed < max)
		freed += evict_shared(mem->reclaim, mem->pool, io, c.shared_frame);
	return freed;
}

/* --- swap-in --- */

void guest_swap_release(struct guest_memory *mem, sept_entry e)
{
	struct reclaim *r = mem->reclaim;
	if (!r || !sept_is_swap(e))
		return;
	swap_slots_release(r, sept_swap_slot(e));
}

#define READ_COOKIE (1ull << 63) /* a swap-in read; other cookies are writes */
#define READAHEAD_MAX 64
#define READ_STUCK (~0u) /* read_slots(): reads still in flight, frames lost */
enum { FROM_FILE, FROM_SWAP_CACHE, FROM_ZSWAP };

struct swapin_batch {
	struct reclaim *r;
	unsigned pending;
	int status[READAHEAD_MAX]; /* per page, set for each run's pages */
	unsigned run_len[READAHEAD_MAX];
};

static void swapin_read_done(void *ctx, uint64_t cookie, int status)
{
	struct swapin_batch *b = ctx;
	if (!(cookie & READ_COOKIE)) {
		swap_slots_write_done(b->r, cookie, status);
		return;
	}
	unsigned first = (unsigned)(cookie & (READAHEAD_MAX - 1));
	for (unsigned i = 0; i < b->run_len[first]; i++)
		b->status[first + i] = status;
	b->pending--;
}

/*
 * Fills page i of `pages` from slots[i], i < n, verified as owner tags[i]'s
 * page: from zswap or the swap cache when they hold it, else from the file,
 * the file reads grouped in runs of consecutive slots and submitted
 * together, so a readahead window costs about one read's latency (Linux
 * plugs its swap readahead the same way). Returns how many pages from the
 * first were read (0: the first failed, *error says why; READ_STUCK: reads
 * could not be reaped, the pages must be abandoned); source[i] says where
 * page i came from.
 */
static unsigned read_slots(struct guest_memory *mem, const uint64_t *slots, const uint64_t *tags,
			   unsigned n, uint8_t *pages, unsigned char *source, int *error)
{
	struct reclaim *r = mem->reclaim;
	struct zswap *z = reclaim_zswap(r);
	struct swap_io *io = reclaim_thread_io(r);
	struct swap_device *dev = reclaim_swap_device(r);
	struct swapin_batch b = {.r = r};
	*error = 0;
	/* First what memory holds, then the rest from the file. */
	for (unsigned i = 0; i < n; i++) {
		uint8_t *dst = pages + (size_t)i * FRAME_SIZE;
		int rc = z ? zswap_load(z, slots[i], dst, tags[i]) : -ENOENT;
		if (rc == 0 || rc == -EBADMSG) {
			source[i] = FROM_ZSWAP;
			b.status[i] = rc;
		} else if (swap_cache_lookup(dev, slots[i], dst)) {
			source[i] = FROM_SWAP_CACHE;
			b.status[i] =
				swap_device_checksum_ok(dev, slots[i], dst, tags[i]) ? 0 : -EBADMSG;
		} else {
			source[i] = FROM_FILE;
		}
	}
	for (unsigned i = 0; i < n;) {
		if (source[i] != FROM_FILE) {
			i++;
			continue;
		}
		unsigned len = 1;
		while (i + len < n && source[i + len] == FROM_FILE &&
		       slots[i + len] == slots[i] + len)
			len++;
		if (!io) { /* no ring for this thread: what memory had is all */
			for (unsigned k = i; k < n; k++)
				if (source[k] == FROM_FILE)
					b.status[k] = -EIO;
			break;
		}
		uint8_t *dst = pages + (size_t)i * FRAME_SIZE;
		b.run_len[i] = len;
		int rc = swap_io_queue_read(io, slots[i], len, dst, tags + i, READ_COOKIE | i);
		if (rc == -EAGAIN && swap_io_submit(io) >= 0 &&
		    swap_io_reap(io, swap_io_in_flight(io), swapin_read_done, &b) >= 0)
			rc = swap_io_queue_read(io, slots[i], len, dst, tags + i, READ_COOKIE | i);
		if (rc) {
			for (unsigned k = 0; k < len; k++)
				b.status[i + k] = rc;
		} else {
			b.pending++;
		}
		i += len;
	}
	if (b.pending) {
		/* Submission and waiting, retried and bounded: the ring's
		 * writes in flight complete too (swapin_read_done hands them
		 * on). */
		swap_io_drain(io, swapin_read_done, &b);
		if (b.pending) {
			/* The ring is broken: its buffers would still be copied
			 * into these pages, so they must never be reused. */
			*error = -EIO;
			return READ_STUCK;
		}
	}
	unsigned ok = 0;
	while (ok < n && b.status[ok] == 0)
		ok++;
	if (!ok)
		*error = b.status[0] ? b.status[0] : -EIO;
	return ok;
}

/* How many pages from gfn to read together: on a sequential refault (the
 * previous swap-in ended just before gfn), the following pages while they
 * are swapped out, up to page_cluster, as Linux's VMA-based swap readahead
 * (their slots need not follow). A power of two: one buddy block. */
static unsigned readahead_span(struct guest_memory *mem, uint64_t gfn, uint64_t *slots,
			       uint64_t *tags)
{
	struct reclaim *r = mem->reclaim;
	unsigned cluster = reclaim_page_cluster(r);
	struct swap_io *io = reclaim_thread_io(r);
	if (io && cluster > swap_io_depth(io))
		cluster = swap_io_depth(io);
	if (cluster > READAHEAD_MAX)
		cluster = READAHEAD_MAX;
	unsigned n = 1;
	if (gfn == mem->swap_state->last_swapin_gfn + 1) {
		while (n < cluster && gfn + n < mem->pages) {
			sept_entry e = sept_lookup(&mem->sept, gfn + n);
			if (!sept_is_swap(e))
				break;
			tags[n] = swap_tag(mem, gfn + n, e);
			slots[n++] = sept_swap_slot(e);
		}
	}
	while (n & (n - 1))
		n &= n - 1;
	return n;
}

int guest_swap_in(struct guest_memory *mem, uint64_t gfn, sept_entry e)
{
	struct reclaim *r = mem->reclaim;
	if (!r)
		return -EINVAL;
	uint64_t slots[READAHEAD_MAX], tags[READAHEAD_MAX];
	uint64_t slot = slots[0] = sept_swap_slot(e);
	tags[0] = swap_tag(mem, gfn, e);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned n = readahead_span(mem, gfn, slots, tags);
	while (guest_charge(mem, n)) {
		if (n == 1)
			return -ENOMEM; /* at memory.max */
		n /= 2;
	}
	/* Under pressure the pool is fragmented: take the largest block there
	 * is, down to one frame. */
	int64_t frame;
	while ((frame = frame_pool_alloc(mem->pool, (unsigned)__builtin_ctz(n))) < 0 && n > 1)
		n /= 2;
	if (frame < 0)
		return -ENOMEM;
	uint8_t *dst = frame_pool_address(mem->pool, (uint64_t)frame);
	unsigned char source[READAHEAD_MAX];
	int rc;
	unsigned got = read_slots(mem, slots, tags, n, dst, source, &rc);
	if (got == 0 || got == READ_STUCK) {
		if (got == 0)
			frame_pool_free(mem->pool, (uint64_t)frame, n);
		reclaim_note_error(r, rc == -EBADMSG);
		guest_memory_fail(mem, "swap-in of guest page 0x%llx from slot %llu failed: %s",
				  (unsigned long long)(gfn * FRAME_SIZE), (unsigned long long)slot,
				  rc == -EBADMSG   ? "checksum mismatch (corrupted swap data)"
				  : rc == -ENODATA ? "short read"
						   : strerror(-rc));
		return rc;
	}
	/* A readahead page that failed is left swapped out: its own fault
	 * reads it again and reports. Keep the largest power of two read. */
	while (got & (got - 1))
		got &= got - 1;
	if (got < n) {
		frame_pool_free(mem->pool, (uint64_t)frame + got, n - got);
		n = got;
	}
	int error = realiser_map(mem, gfn, (uint64_t)frame, n, REALISE_POPULATE);
	if (error) {
		guest_free_unmapped(mem, (uint64_t)frame, n, error);
		/* Reported here: -ENOMEM from mmap is out of host mappings, and
		 * the caller would take it for "no frame". */
		guest_memory_fail(mem, "cannot map swapped-in guest memory: %s",
				  strerror(error == -ENOTRECOVERABLE ? EIO : -error));
		return -ECANCELED;
	}
	uint32_t now = mm_clock_ms();
	for (unsigned i = 0; i < n; i++) {
		int protect = 0;
		reclaim_note_swapin(r, slots[i], source[i] == FROM_SWAP_CACHE,
				    source[i] == FROM_ZSWAP, i > 0, &protect);
		frame_set_private(frame_pool_frame(mem->pool, (uint64_t)frame + i),
				  (uint16_t)mem->id, gfn + i);
		sept_set(&mem->sept, gfn + i,
			 guest_pte(mem, gfn + i, (uint64_t)frame + i,
				   SEPT_WRITABLE | (protect ? SEPT_WORKINGSET : 0)));
		if (mem->last_access)
			__atomic_store_n(&mem->last_access[gfn + i], now, __ATOMIC_RELAXED);
		swap_slots_release(r, slots[i]);
	}
	mem->stats.pswpin += n;
	mem->swap_state->last_swapin_gfn = gfn + n - 1;
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	reclaim_note_swapin_latency(
		r, n,
		(uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec)));
	return 0;
}
