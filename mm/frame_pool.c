/*
 * frame_pool.c - the memfd frame pool.
 */
#include "frame_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fault_inject.h"
#include "rmap.h"

int frame_pool_create(struct frame_pool *pool, uint64_t bytes, char *err, size_t errlen)
{
	memset(pool, 0, sizeof(*pool));
	pool->memfd = -1;
	pool->base = MAP_FAILED;
	pool->nframes = bytes / FRAME_SIZE;
	if (pool->nframes == 0 || pool->nframes >= FRAME_NONE) {
		snprintf(err, errlen, "host memory pool of %llu bytes is out of range",
			 (unsigned long long)bytes);
		return -1;
	}
	pool->memfd = memfd_create("vmm-frame-pool", MFD_CLOEXEC);
	if (pool->memfd < 0 || ftruncate(pool->memfd, (off_t)(pool->nframes * FRAME_SIZE))) {
		snprintf(err, errlen, "cannot create the frame pool memfd: %s", strerror(errno));
		goto fail;
	}
	pool->base = mmap(NULL, pool->nframes * FRAME_SIZE, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_NORESERVE, pool->memfd, 0);
	if (pool->base == MAP_FAILED) {
		snprintf(err, errlen, "cannot map the frame pool: %s", strerror(errno));
		goto fail;
	}
	if (frame_table_init(&pool->table, pool->nframes) ||
	    buddy_init(&pool->buddy, &pool->table, 0, pool->nframes)) {
		snprintf(err, errlen, "cannot allocate the frame table for %llu frames",
			 (unsigned long long)pool->nframes);
		goto fail;
	}
	pthread_mutex_init(&pool->zero_run_lock, NULL);
	pthread_mutex_init(&pool->shared_lock, NULL);
	pool->zero_run = -1;
	return 0;
fail:
	frame_pool_destroy(pool);
	return -1;
}

void frame_pool_destroy(struct frame_pool *pool)
{
	if (pool->table.frames) {
		buddy_destroy(&pool->buddy);
		frame_table_destroy(&pool->table);
		pthread_mutex_destroy(&pool->zero_run_lock);
		pthread_mutex_destroy(&pool->shared_lock);
	}
	if (pool->base != MAP_FAILED && pool->base)
		munmap(pool->base, pool->nframes * FRAME_SIZE);
	if (pool->memfd >= 0)
		close(pool->memfd);
	memset(pool, 0, sizeof(*pool));
	pool->memfd = -1;
}

int64_t frame_pool_alloc(struct frame_pool *pool, unsigned order)
{
	if (fault_inject_hit(FAULT_FRAME_ALLOC))
		return -1;
	int64_t frame =
		order == 0 ? buddy_alloc_frame(&pool->buddy) : buddy_alloc(&pool->buddy, order);
	void (*hook)(void *) = __atomic_load_n(&pool->low_hook, __ATOMIC_ACQUIRE);
	if (hook && buddy_free_pages_estimate(&pool->buddy) < pool->buddy.wmark.low)
		hook(pool->low_ctx);
	if (frame >= 0) {
		uint64_t used =
			__atomic_add_fetch(&pool->used_pages, 1ull << order, __ATOMIC_RELAXED);
		uint64_t peak = __atomic_load_n(&pool->peak_used_pages, __ATOMIC_RELAXED);
		while (used > peak &&
		       !__atomic_compare_exchange_n(&pool->peak_used_pages, &peak, used, 1,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	return frame;
}

void frame_pool_free(struct frame_pool *pool, uint64_t frame, uint64_t count)
{
	if (count == 0)
		return;
	if (fault_inject_hit(FAULT_PUNCH_HOLE) ||
	    fallocate(pool->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(frame * FRAME_SIZE), (off_t)(count * FRAME_SIZE)) != 0) {
		/* Cannot return the memory to the host: zero it instead, so the
		 * invariant that free frames read as zeroes still holds. */
		memset(frame_pool_address(pool, frame), 0, count * FRAME_SIZE);
	}
	__atomic_add_fetch(&pool->holes_punched, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&pool->frames_freed, count, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&pool->used_pages, count, __ATOMIC_RELAXED);
	/* Free in the largest aligned blocks that fit. */
	uint64_t end = frame + count;
	while (frame < end) {
		unsigned order = 0;
		while (order < BUDDY_MAX_ORDER && (frame & ((2ull << order) - 1)) == 0 &&
		       frame + (2ull << order) <= end)
			order++;
		if (order == 0)
			buddy_free_frame(&pool->buddy, frame);
		else
			buddy_free(&pool->buddy, frame, order);
		frame += 1ull << order;
	}
}

static int compare_frames(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void frame_pool_free_list(struct frame_pool *pool, uint64_t *frames, size_t n)
{
	qsort(frames, n, sizeof(*frames), compare_frames);
	size_t start = 0;
	for (size_t i = 1; i <= n; i++) {
		if (i < n && frames[i] == frames[i - 1] + 1)
			continue;
		frame_pool_free(pool, frames[start], i - start);
		start = i;
	}
}

void frame_pool_set_low_hook(struct frame_pool *pool, void (*hook)(void *ctx), void *ctx)
{
	pool->low_ctx = ctx;
	__atomic_store_n(&pool->low_hook, hook, __ATOMIC_RELEASE);
}

void frame_pool_put_shared(struct frame_pool *pool, struct rmap_shared *shared)
{
	if (shared->count == 0 && shared->pins == 0 && shared->frame != RMAP_FRAME_GONE) {
		uint64_t frame = shared->frame;
		frame_set(frame_pool_frame(pool, frame), FRAME_ALLOCATED, 0);
		shared->frame = RMAP_FRAME_GONE;
		__atomic_add_fetch(&pool->shared_frames_gone, 1, __ATOMIC_RELAXED);
		frame_pool_free(pool, frame, 1);
	}
	if (shared->count == 0 && shared->pins == 0 && shared->refs == 0)
		rmap_shared_destroy(shared);
}

/* One shared frame: its mappers' VMs, each VM once for the pairs. */
static void matrix_add(const struct rmap_shared *shared, const uint16_t *ids, unsigned n,
		       uint64_t *matrix)
{
	unsigned present[64], np = 0;
	for (const struct rmap_mapper *m = shared->mappers; m; m = m->next) {
		unsigned a = 0;
		while (a < n && ids[a] != m->vm_id)
			a++;
		if (a == n)
			continue;
		matrix[a * n + a]++;
		unsigned k = 0;
		while (k < np && present[k] != a)
			k++;
		if (k == np && np < 64)
			present[np++] = a;
	}
	for (unsigned i = 0; i < np; i++)
		for (unsigned j = 0; j < np; j++)
			if (i != j)
				matrix[present[i] * n + present[j]]++;
}

#define MATRIX_FRAMES_PER_LOCK 4096

void frame_pool_sharing_matrix(struct frame_pool *pool, const uint16_t *ids, unsigned n,
			       uint64_t *matrix)
{
	memset(matrix, 0, (size_t)n * n * sizeof(*matrix));
	for (uint64_t start = 0; start < pool->nframes; start += MATRIX_FRAMES_PER_LOCK) {
		uint64_t end = start + MATRIX_FRAMES_PER_LOCK;
		if (end > pool->nframes)
			end = pool->nframes;
		pthread_mutex_lock(&pool->shared_lock);
		for (uint64_t f = start; f < end; f++) {
			const struct frame *frame = frame_pool_frame(pool, f);
			if (frame_state(frame) == FRAME_SHARED)
				matrix_add(frame_shared(frame), ids, n, matrix);
		}
		pthread_mutex_unlock(&pool->shared_lock);
	}
}

int64_t frame_pool_zero_run(struct frame_pool *pool)
{
	pthread_mutex_lock(&pool->zero_run_lock);
	if (pool->zero_run < 0) {
		int64_t first = frame_pool_alloc(pool, 9);
		if (first >= 0) {
			/* Populate it once, so guest reads never allocate. */
			fallocate(pool->memfd, 0, (off_t)((uint64_t)first * FRAME_SIZE),
				  (off_t)(FRAME_POOL_ZERO_RUN_PAGES * FRAME_SIZE));
			for (uint64_t i = 0; i < FRAME_POOL_ZERO_RUN_PAGES; i++)
				frame_set(frame_pool_frame(pool, (uint64_t)first + i), FRAME_ZERO,
					  0);
			pool->zero_run = first;
		}
	}
	int64_t run = pool->zero_run;
	pthread_mutex_unlock(&pool->zero_run_lock);
	return run;
}

void frame_pool_get_stats(struct frame_pool *pool, struct frame_pool_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	stats->total_pages = pool->nframes;
	stats->free_pages = buddy_free_pages(&pool->buddy);
	stats->pcp_pages = buddy_pcp_pages(&pool->buddy);
	stats->used_pages = __atomic_load_n(&pool->used_pages, __ATOMIC_RELAXED);
	stats->peak_used_pages = __atomic_load_n(&pool->peak_used_pages, __ATOMIC_RELAXED);
	buddy_info(&pool->buddy, stats->nr_free);
	stats->wmark = pool->buddy.wmark;
	stats->frame_table_bytes = pool->nframes * sizeof(struct frame);
	stats->holes_punched = __atomic_load_n(&pool->holes_punched, __ATOMIC_RELAXED);
	stats->frames_lost = __atomic_load_n(&pool->frames_lost, __ATOMIC_RELAXED);
	struct stat st;
	if (fstat(pool->memfd, &st) == 0)
		stats->host_resident_bytes = (uint64_t)st.st_blocks * 512;
}

void frame_pool_backed(const struct frame_pool *pool, uint64_t frame, size_t n, unsigned char *vec)
{
	/* mincore() first: one call for the run, and a page it finds in
	 * memory holds data. A page it does not find is a hole or a page the
	 * host swapped out: SEEK_DATA at that very page tells them apart. (Not
	 * SEEK_HOLE from a data page: the kernel walks every data page up to
	 * the next hole, possibly the whole pool, for each call.) */
	if (mincore(frame_pool_address(pool, frame), n * FRAME_SIZE, vec) != 0) {
		memset(vec, 1, n);
		return;
	}
	off_t hole_end = 0; /* [.., hole_end): a hole, from the last SEEK_DATA */
	for (size_t i = 0; i < n; i++) {
		if (vec[i] & 1) {
			vec[i] = 1;
			continue;
		}
		off_t at = (off_t)((frame + i) * FRAME_SIZE);
		if (at < hole_end) {
			vec[i] = 0; /* one call answers for a run of holes */
			continue;
		}
		off_t data = lseek(pool->memfd, at, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			data = (off_t)((frame + n) * FRAME_SIZE); /* no data after at */
		vec[i] = data == at || data < 0;
		if (data > at)
			hole_end = data;
	}
}
