/*
 * guest_share.c - sharing in the address space: private guest pages turned
 * into shared ones (for KSM), and back (copy-on-write, release).
 *
 * KSM (ksm/) decides what to merge; this file changes a paused VM's pages
 * accordingly: the sEPT entry, its realisation (host mappings: one mmap per
 * run of consecutive pages onto consecutive frames, then uffd write
 * protection; the owned page table: the read-only entries and a TLB flush),
 * the reverse map of the shared frame, and the freeing of the frames that
 * were replaced (or handing them to the caller, who frees them together).
 * Every entry is re-checked under the VM's lock: a page that no longer maps
 * the frame KSM saw is left alone. A write to a shared or zero-run page
 * gets a private copy (guest_copy_on_write, called by the fault policy), and
 * a page going away drops out of its frame's mappers (guest_release_shared).
 *
 * Lock order: guest_memory.lock -> frame_pool.shared_lock -> buddy locks
 * (mm/lock_order.h).
 */
#include <errno.h>
#include <string.h>

#include "guest_memory_internal.h"
#include "rmap.h"

uint16_t guest_memory_id(const struct guest_memory *mem)
{
	return (uint16_t)mem->id;
}

uint64_t guest_memory_pages(const struct guest_memory *mem)
{
	return mem->pages;
}

struct frame_pool *guest_memory_pool(const struct guest_memory *mem)
{
	return mem->pool;
}

uint64_t guest_memory_present_count(const struct guest_memory *mem)
{
	return __atomic_load_n(&mem->sept.present_pages, __ATOMIC_RELAXED);
}

uint64_t guest_memory_zero_pages(const struct guest_memory *mem)
{
	return __atomic_load_n(&mem->zero_pages, __ATOMIC_RELAXED);
}

/* Zero pages hold no frame of their own: they are not charged (Rss). */
static void add_zero_pages(struct guest_memory *mem, int64_t n)
{
	__atomic_add_fetch(&mem->zero_pages, (uint64_t)n, __ATOMIC_RELAXED);
	page_counter_charge(mem->sept.counter, -n);
}

struct private_pages {
	struct guest_page *out;
	size_t n, max;
};

static int collect_private(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct private_pages *p = ctx;
	sept_entry e = *entry;
	if (!sept_is_present(e) || (e & (SEPT_SHARED | SEPT_ZERO | SEPT_PINNED)))
		return 0;
	p->out[p->n].gfn = gfn;
	p->out[p->n].frame = sept_frame(e);
	return ++p->n == p->max;
}

/* One walk of the span's leaf tables, not a lookup from the root per page:
 * KSM asks this of every page in every full scan, most of which smart scan
 * then skips (a lookup per page was 12% of the scanner at 64 VMs, perf). */
size_t guest_memory_private_pages(struct guest_memory *mem, uint64_t start, uint64_t span,
				  struct guest_page *out, size_t max)
{
	struct private_pages p = {out, 0, max};
	uint64_t end = start + span < mem->pages ? start + span : mem->pages;
	if (max == 0)
		return 0;
	pthread_mutex_lock(&mem->lock);
	sept_walk(&mem->sept, start, end, collect_private, &p);
	pthread_mutex_unlock(&mem->lock);
	return p.n;
}

/* Whether merges[i] can be done: the page still maps old_frame privately. */
static int still_private(struct guest_memory *mem, const struct guest_merge *m)
{
	sept_entry e = sept_lookup(&mem->sept, m->gfn);
	return sept_is_present(e) && !(e & (SEPT_SHARED | SEPT_ZERO | SEPT_PINNED)) &&
	       sept_frame(e) == m->old_frame;
}

/* rmap_shared_add and _remove, keeping the pool's sharing counts
 * (shared_lock held). */
static int add_mapper(struct frame_pool *pool, struct rmap_shared *shared, uint16_t vm_id,
		      uint64_t gfn)
{
	if (rmap_shared_add(shared, vm_id, gfn) != 0)
		return -1;
	pool->shared_mappers++;
	if (shared->count == 1)
		pool->shared_frames++;
	return 0;
}

static void remove_mapper(struct frame_pool *pool, struct rmap_shared *shared, uint16_t vm_id,
			  uint64_t gfn)
{
	if (rmap_shared_remove(shared, vm_id, gfn) != 0)
		return;
	pool->shared_mappers--;
	if (shared->count == 0)
		pool->shared_frames--;
}

/* Drops the mappers run[0..n) added to their shared frames (shared_lock
 * held). */
static void undo_mappers(struct guest_memory *mem, const struct guest_merge *run, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (run[i].shared)
			remove_mapper(mem->pool, run[i].shared, (uint16_t)mem->id, run[i].gfn);
}

/* Maps one run and records it; returns the number of pages merged. KSM has
 * pinned every target frame (rmap_shared.pins), so none can be freed here.
 * The reverse map comes first: a page that maps a shared frame without
 * being one of its mappers would let the frame be freed, and reused by
 * another VM, under it. If the reverse map cannot grow (out of memory),
 * the run is not merged; if the mapping fails, the VM is. */
static size_t merge_run(struct guest_memory *mem, const struct guest_merge *run, size_t n, bool *ok,
			bool keep_old)
{
	struct frame_pool *pool = mem->pool;
	pthread_mutex_lock(&pool->shared_lock);
	for (size_t i = 0; i < n; i++) {
		if (run[i].shared &&
		    add_mapper(pool, run[i].shared, (uint16_t)mem->id, run[i].gfn) != 0) {
			undo_mappers(mem, run, i);
			pthread_mutex_unlock(&pool->shared_lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&pool->shared_lock);
	int error = realiser_map(mem, run[0].gfn, run[0].new_frame, n,
				 REALISE_WRITE_PROTECT | REALISE_REPLACES);
	if (error) {
		pthread_mutex_lock(&pool->shared_lock);
		undo_mappers(mem, run, n);
		pthread_mutex_unlock(&pool->shared_lock);
		guest_memory_fail(mem, "cannot map shared guest memory: %s%s",
				  strerror(error == -ENOTRECOVERABLE ? EIO : -error),
				  error == -ENOMEM ? " (vm.max_map_count reached?)" : "");
		return 0;
	}
	pthread_mutex_lock(&pool->shared_lock);
	for (size_t i = 0; i < n; i++) {
		uint64_t flags = run[i].shared ? SEPT_SHARED : SEPT_ZERO;
		sept_set(&mem->sept, run[i].gfn,
			 guest_pte(mem, run[i].gfn, run[i].new_frame, flags | SEPT_ACCESSED));
		if (run[i].shared)
			mem->ksm_pages++;
		else
			add_zero_pages(mem, 1);
		frame_set(frame_pool_frame(pool, run[i].old_frame), FRAME_ALLOCATED, 0);
		ok[i] = true;
	}
	pthread_mutex_unlock(&pool->shared_lock);
	if (keep_old)
		return n;
	/* The replaced frames, freed in runs of consecutive frames. */
	size_t start = 0;
	for (size_t i = 1; i <= n; i++) {
		if (i < n && run[i].old_frame == run[i - 1].old_frame + 1)
			continue;
		frame_pool_free(pool, run[start].old_frame, i - start);
		start = i;
	}
	return n;
}

size_t guest_memory_merge(struct guest_memory *mem, const struct guest_merge *merges, size_t n,
			  bool *ok, bool keep_old)
{
	size_t merged = 0;
	memset(ok, 0, n * sizeof(*ok));
	pthread_mutex_lock(&mem->lock);
	size_t i = 0;
	while (i < n && !guest_memory_dead(mem)) {
		if (!still_private(mem, &merges[i])) {
			i++;
			continue;
		}
		size_t len = 1;
		while (i + len < n && merges[i + len].gfn == merges[i].gfn + len &&
		       merges[i + len].new_frame == merges[i].new_frame + len &&
		       (merges[i + len].shared == NULL) == (merges[i].shared == NULL) &&
		       still_private(mem, &merges[i + len]))
			len++;
		merged += merge_run(mem, &merges[i], len, &ok[i], keep_old);
		i += len;
	}
	mem->stats.ksm_merged += merged;
	pthread_mutex_unlock(&mem->lock);
	return merged;
}

struct rmap_shared *guest_memory_share(struct guest_memory *mem, uint64_t gfn, uint64_t frame)
{
	struct rmap_shared *shared = NULL;
	pthread_mutex_lock(&mem->lock);
	struct guest_merge probe = {.gfn = gfn, .old_frame = frame};
	if (guest_memory_dead(mem) || !still_private(mem, &probe) ||
	    realiser_write_protect(mem, gfn, 1, 1))
		goto out;
	struct frame_pool *pool = mem->pool;
	pthread_mutex_lock(&pool->shared_lock);
	shared = rmap_shared_create(frame);
	if (shared && add_mapper(pool, shared, (uint16_t)mem->id, gfn) == 0) {
		shared->refs = 1;
		frame_set_shared(frame_pool_frame(pool, frame), shared);
		sept_set(&mem->sept, gfn, guest_pte(mem, gfn, frame, SEPT_SHARED | SEPT_ACCESSED));
		mem->stats.ksm_merged++;
		mem->ksm_pages++;
	} else if (shared) {
		rmap_shared_destroy(shared);
		shared = NULL;
	}
	pthread_mutex_unlock(&pool->shared_lock);
	if (!shared)
		realiser_write_protect(mem, gfn, 1, 0);
out:
	pthread_mutex_unlock(&mem->lock);
	return shared;
}

/* --- taking pages out of sharing --- */

/* Drops (mem, gfn) from a shared frame's mappers; the frame goes back to the
 * pool when nothing maps or pins it any more. */
void guest_release_shared(struct guest_memory *mem, uint64_t gfn, sept_entry e)
{
	if (e & SEPT_ZERO)
		return; /* the zero run is static */
	struct frame_pool *pool = mem->pool;
	pthread_mutex_lock(&pool->shared_lock);
	struct frame *f = frame_pool_frame(pool, sept_frame(e));
	if (frame_state(f) == FRAME_SHARED) {
		struct rmap_shared *shared = frame_shared(f);
		remove_mapper(pool, shared, (uint16_t)mem->id, gfn);
		frame_pool_put_shared(pool, shared);
	}
	pthread_mutex_unlock(&pool->shared_lock);
}

/* A write to a write-protected shared page: copy it into a private frame.
 * Returns 0, -ENOMEM when the pool is exhausted, or -ECANCELED when the
 * mapping failed (the VM is failed). */
int guest_copy_on_write(struct guest_memory *mem, uint64_t gfn, sept_entry e)
{
	int64_t frame = frame_pool_alloc(mem->pool, 0);
	if (frame < 0)
		return -ENOMEM;
	if (!(e & SEPT_ZERO))
		memcpy(frame_pool_address(mem->pool, (uint64_t)frame),
		       frame_pool_address(mem->pool, sept_frame(e)), FRAME_SIZE);
	int error = realiser_map(mem, gfn, (uint64_t)frame, 1, REALISE_POPULATE | REALISE_REPLACES);
	if (error) {
		guest_free_unmapped(mem, (uint64_t)frame, 1, error);
		return guest_memory_fail_map(mem, error);
	}
	frame_set_private(frame_pool_frame(mem->pool, (uint64_t)frame), (uint16_t)mem->id, gfn);
	sept_set(&mem->sept, gfn,
		 guest_pte(mem, gfn, (uint64_t)frame, SEPT_WRITABLE | SEPT_DIRTY | SEPT_ACCESSED));
	guest_release_shared(mem, gfn, e);
	if (e & SEPT_ZERO)
		add_zero_pages(mem, -1);
	else
		mem->ksm_pages--;
	mem->stats.cow_pages++;
	return 0;
}

int64_t guest_memory_unmerge(struct guest_memory *mem)
{
	int64_t copied = 0;
	pthread_mutex_lock(&mem->lock);
	for (uint64_t gfn = 0; gfn < mem->pages && !guest_memory_dead(mem); gfn++) {
		sept_entry e = sept_lookup(&mem->sept, gfn);
		if (!sept_is_present(e) || !(e & (SEPT_SHARED | SEPT_ZERO)))
			continue;
		if (guest_copy_on_write(mem, gfn, e)) {
			copied = -1;
			break;
		}
		copied++;
	}
	pthread_mutex_unlock(&mem->lock);
	return copied;
}
