/*
 * buddy.c - the host frame allocator: buddy free lists, per-thread caches of
 * order-0 frames and Linux's watermarks. See buddy.h for the algorithm, its
 * invariants and the lock order.
 */
#include "buddy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCP_BATCH 31		      /* Linux's default pcp batch */
#define PCP_HIGH (4 * PCP_BATCH)      /* and high = 4 * batch */
#define PCP_POOL_FRACTION 64	      /* high <= managed_pages / 64 */
#define WMARK_DEFAULT_SCALE_FACTOR 10 /* vm.watermark_scale_factor */
#define WMARK_MAX_SCALE_FACTOR 3000   /* its sysctl maximum */
#define MIN_FREE_KBYTES_LOWER 128     /* calculate_min_free_kbytes() clamp */
#define MIN_FREE_KBYTES_UPPER 262144

struct buddy_pcp {
	pthread_mutex_t lock;
	struct buddy *buddy;
	uint32_t head;	/* singly linked through frame.next, FRAME_NONE ends it */
	uint32_t count; /* written under lock, read atomically by buddy_pcp_pages() */
	uint32_t high, batch;
	struct buddy_pcp *prev, *next; /* in buddy->pcp_list, under pcp_list_lock */
};

static _Noreturn void buddy_bug(const char *what, uint64_t frame, unsigned order)
{
	fprintf(stderr, "buddy: %s (frame %llu, order %u)\n", what, (unsigned long long)frame,
		order);
	abort();
}

/* ---- Watermarks ---- */

/* floor(sqrt(x)), exact for all 64-bit x (Linux's int_sqrt()). */
static uint64_t int_sqrt(uint64_t x)
{
	uint64_t root = 0, bit = 1ull << 62;

	while (bit > x)
		bit >>= 2;
	while (bit) {
		if (x >= root + bit) {
			x -= root + bit;
			root = (root >> 1) + bit;
		} else {
			root >>= 1;
		}
		bit >>= 2;
	}
	return root;
}

/* x * numerator / denominator without overflowing x * numerator (Linux's mult_frac()). */
static uint64_t mult_frac(uint64_t x, uint64_t numerator, uint64_t denominator)
{
	uint64_t quotient = x / denominator, remainder = x % denominator;

	return quotient * numerator + remainder * numerator / denominator;
}

void watermarks_compute(struct watermarks *w, uint64_t managed_pages, uint64_t min_free_kbytes,
			uint32_t scale_factor)
{
	if (min_free_kbytes == 0) {
		/* calculate_min_free_kbytes() */
		uint64_t managed_kbytes = managed_pages * (FRAME_SIZE >> 10);

		min_free_kbytes = int_sqrt(managed_kbytes * 16);
		if (min_free_kbytes < MIN_FREE_KBYTES_LOWER)
			min_free_kbytes = MIN_FREE_KBYTES_LOWER;
		if (min_free_kbytes > MIN_FREE_KBYTES_UPPER)
			min_free_kbytes = MIN_FREE_KBYTES_UPPER;
	}
	if (scale_factor == 0)
		scale_factor = WMARK_DEFAULT_SCALE_FACTOR;
	if (scale_factor > WMARK_MAX_SCALE_FACTOR)
		scale_factor = WMARK_MAX_SCALE_FACTOR;

	/* __setup_per_zone_wmarks() for one zone: its share of pages_min is all of it. */
	uint64_t pages_min = min_free_kbytes >> (FRAME_SHIFT - 10);
	uint64_t delta = mult_frac(managed_pages, scale_factor, 10000);

	if (delta < pages_min >> 2)
		delta = pages_min >> 2;

	w->min_free_kbytes = min_free_kbytes;
	w->watermark_scale_factor = scale_factor;
	w->min = pages_min;
	w->low = pages_min + delta;
	w->high = w->low + delta;
}

/* ---- Free lists (under b->lock) ---- */

static struct frame *frame_of(struct buddy *b, uint64_t frame)
{
	return frame_get(b->table, frame);
}

static int in_range(const struct buddy *b, uint64_t frame)
{
	return frame >= b->first_frame && frame - b->first_frame < b->nframes;
}

static void free_list_add(struct buddy *b, uint64_t frame, unsigned order)
{
	struct frame *f = frame_of(b, frame);
	uint32_t head = b->free_head[order];

	frame_set(f, FRAME_BUDDY, order);
	f->prev = FRAME_NONE;
	f->next = head;
	if (head != FRAME_NONE)
		frame_of(b, head)->prev = (uint32_t)frame;
	b->free_head[order] = (uint32_t)frame;
	b->nr_free[order]++;
}

/* Unlinks a free block; its head stops looking free (FRAME_UNUSED). */
static void free_list_del(struct buddy *b, uint64_t frame, unsigned order)
{
	struct frame *f = frame_of(b, frame);

	if (f->prev != FRAME_NONE)
		frame_of(b, f->prev)->next = f->next;
	else
		b->free_head[order] = f->next;
	if (f->next != FRAME_NONE)
		frame_of(b, f->next)->prev = f->prev;
	f->next = FRAME_NONE;
	f->prev = FRAME_NONE;
	frame_set(f, FRAME_UNUSED, 0);
	b->nr_free[order]--;
}

/*
 * Whether `frame` heads a free block of exactly `order`. The frame may be
 * owned by someone else (allocated, cached, given a role) and be changing
 * under another lock; info is one word (frame_table.h) and no state its owner
 * can write is FRAME_BUDDY, which only the buddy lock's holder writes.
 */
static int is_free_head(struct buddy *b, uint64_t frame, unsigned order)
{
	const struct frame *f = frame_of(b, frame);

	return frame_state(f) == FRAME_BUDDY && frame_payload(f) == order;
}

/*
 * Linux's __rmqueue_smallest() and expand(): takes a block of 2^order frames
 * off the free lists, or returns -1. The frames' states are left to the caller
 * (the head is FRAME_UNUSED, like the rest).
 */
static int64_t rmqueue(struct buddy *b, unsigned order)
{
	unsigned current;

	for (current = order; current <= BUDDY_MAX_ORDER; current++)
		if (b->free_head[current] != FRAME_NONE)
			break;
	if (current > BUDDY_MAX_ORDER)
		return -1;

	uint64_t frame = b->free_head[current];

	free_list_del(b, frame, current);
	while (current > order) {
		current--;
		free_list_add(b, frame + (1ull << current), current);
		b->splits++;
	}
	__atomic_sub_fetch(&b->free_pages, 1ull << order, __ATOMIC_RELAXED); /* read unlocked */
	b->allocs++;
	return (int64_t)frame;
}

/*
 * Linux's __free_one_page(): returns an aligned block whose frames are already
 * marked free (FRAME_UNUSED) and merges it with its free buddies.
 */
static void free_one(struct buddy *b, uint64_t frame, unsigned order)
{
	__atomic_add_fetch(&b->free_pages, 1ull << order, __ATOMIC_RELAXED);
	b->frees++;
	while (order < BUDDY_MAX_ORDER) {
		uint64_t buddy = frame ^ (1ull << order);

		if (!in_range(b, buddy) || !is_free_head(b, buddy, order))
			break;
		free_list_del(b, buddy, order);
		frame &= ~(1ull << order);
		order++;
		b->merges++;
	}
	free_list_add(b, frame, order);
}

/* Marks the frames of a block as free; catches frees of frames that are free. */
static void mark_free(struct buddy *b, uint64_t frame, unsigned order)
{
	for (uint64_t i = 0; i < 1ull << order; i++) {
		struct frame *f = frame_of(b, frame + i);
		enum frame_state state = frame_state(f);

		if (state == FRAME_BUDDY || state == FRAME_PCP)
			buddy_bug("freeing a free frame", frame + i, order);
		frame_set(f, FRAME_UNUSED, 0);
		f->next = FRAME_NONE;
		f->prev = FRAME_NONE;
	}
}

static void mark_allocated(struct buddy *b, uint64_t frame, unsigned order)
{
	for (uint64_t i = 0; i < 1ull << order; i++)
		frame_set(frame_of(b, frame + i), FRAME_ALLOCATED, 0);
}

static void check_block(struct buddy *b, uint64_t frame, unsigned order)
{
	if (order > BUDDY_MAX_ORDER)
		buddy_bug("order too large", frame, order);
	if (frame & ((1ull << order) - 1))
		buddy_bug("misaligned block", frame, order);
	if (!in_range(b, frame) || !in_range(b, frame + (1ull << order) - 1))
		buddy_bug("block outside the managed range", frame, order);
}

/* ---- Setup ---- */

static void pcp_destructor(void *arg);

int buddy_init(struct buddy *b, struct frame_table *table, uint64_t first_frame, uint64_t nframes)
{
	memset(b, 0, sizeof(*b));
	if (first_frame > table->nframes || nframes > table->nframes - first_frame ||
	    first_frame + nframes > FRAME_NONE)
		return -1;
	if (pthread_key_create(&b->pcp_key, pcp_destructor))
		return -1;
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->pcp_list_lock, NULL);
	b->table = table;
	b->first_frame = first_frame;
	b->nframes = nframes;
	b->managed_pages = nframes;
	for (unsigned order = 0; order < BUDDY_ORDERS; order++)
		b->free_head[order] = FRAME_NONE;

	uint64_t high = nframes / PCP_POOL_FRACTION;

	if (high > PCP_HIGH)
		high = PCP_HIGH;
	if (high < 1)
		high = 1;
	b->pcp_high = (uint32_t)high;
	b->pcp_batch = b->pcp_high / 2 < PCP_BATCH ? b->pcp_high / 2 : PCP_BATCH;
	if (b->pcp_batch < 1)
		b->pcp_batch = 1;

	for (uint64_t i = 0; i < nframes; i++) {
		struct frame *f = frame_of(b, first_frame + i);

		frame_set(f, FRAME_UNUSED, 0);
		f->next = FRAME_NONE;
		f->prev = FRAME_NONE;
	}
	/* The maximal aligned blocks, in increasing frame order. */
	uint64_t end = first_frame + nframes;

	for (uint64_t frame = first_frame; frame < end;) {
		unsigned order = 0;

		while (order < BUDDY_MAX_ORDER && (frame & ((2ull << order) - 1)) == 0 &&
		       frame + (2ull << order) <= end)
			order++;
		free_list_add(b, frame, order);
		__atomic_add_fetch(&b->free_pages, 1ull << order, __ATOMIC_RELAXED);
		frame += 1ull << order;
	}
	watermarks_compute(&b->wmark, b->managed_pages, 0, 0);
	return 0;
}

void buddy_destroy(struct buddy *b)
{
	if (!b->table)
		return; /* never initialised, failed or already destroyed */
	/* Threads still holding a cache no longer see it, nor run its destructor. */
	pthread_key_delete(b->pcp_key);
	while (b->pcp_list) {
		struct buddy_pcp *pcp = b->pcp_list;

		b->pcp_list = pcp->next;
		pthread_mutex_destroy(&pcp->lock);
		free(pcp);
	}
	pthread_mutex_destroy(&b->pcp_list_lock);
	pthread_mutex_destroy(&b->lock);
	b->table = NULL;
}

/* ---- Block allocation ---- */

int64_t buddy_alloc(struct buddy *b, unsigned order)
{
	if (order > BUDDY_MAX_ORDER)
		return -1;

	pthread_mutex_lock(&b->lock);
	int64_t frame = rmqueue(b, order);
	pthread_mutex_unlock(&b->lock);

	if (frame < 0 && buddy_pcp_pages(b) > 0) {
		/* Cached frames may complete a block: give them back, retry once. */
		buddy_drain_pcp(b);
		pthread_mutex_lock(&b->lock);
		frame = rmqueue(b, order);
		pthread_mutex_unlock(&b->lock);
	}
	if (frame < 0) {
		pthread_mutex_lock(&b->lock);
		b->alloc_failures++;
		pthread_mutex_unlock(&b->lock);
		return -1;
	}
	/* The block is ours alone now: no lock needed to mark it. */
	mark_allocated(b, (uint64_t)frame, order);
	return frame;
}

void buddy_free(struct buddy *b, uint64_t frame, unsigned order)
{
	check_block(b, frame, order);
	pthread_mutex_lock(&b->lock);
	mark_free(b, frame, order);
	free_one(b, frame, order);
	pthread_mutex_unlock(&b->lock);
}

/* ---- Per-thread caches ---- */

/* Under pcp->lock and b->lock: returns up to `count` cached frames to the buddy. */
static void pcp_give_back(struct buddy *b, struct buddy_pcp *pcp, uint32_t count)
{
	uint32_t given = 0;

	while (given < count && pcp->head != FRAME_NONE) {
		uint64_t frame = pcp->head;
		struct frame *f = frame_of(b, frame);

		pcp->head = f->next;
		frame_set(f, FRAME_UNUSED, 0);
		f->next = FRAME_NONE;
		free_one(b, frame, 0);
		given++;
	}
	if (given)
		b->pcp_drains++;
	__atomic_store_n(&pcp->count, pcp->count - given, __ATOMIC_RELAXED);
}

/* Under pcp->lock: moves up to `batch` frames from the buddy into the cache. */
static void pcp_refill(struct buddy *b, struct buddy_pcp *pcp)
{
	uint32_t taken = 0;

	pthread_mutex_lock(&b->lock);
	while (taken < pcp->batch) {
		int64_t frame = rmqueue(b, 0);

		if (frame < 0)
			break;
		struct frame *f = frame_of(b, (uint64_t)frame);

		frame_set(f, FRAME_PCP, 0);
		f->next = pcp->head;
		pcp->head = (uint32_t)frame;
		taken++;
	}
	if (taken)
		b->pcp_refills++;
	pthread_mutex_unlock(&b->lock);
	__atomic_store_n(&pcp->count, pcp->count + taken, __ATOMIC_RELAXED);
}

static void pcp_destructor(void *arg)
{
	struct buddy_pcp *pcp = arg;
	struct buddy *b = pcp->buddy;

	pthread_mutex_lock(&b->pcp_list_lock);
	if (pcp->prev)
		pcp->prev->next = pcp->next;
	else
		b->pcp_list = pcp->next;
	if (pcp->next)
		pcp->next->prev = pcp->prev;
	pthread_mutex_lock(&pcp->lock);
	pthread_mutex_lock(&b->lock);
	pcp_give_back(b, pcp, pcp->count);
	pthread_mutex_unlock(&b->lock);
	pthread_mutex_unlock(&pcp->lock);
	pthread_mutex_unlock(&b->pcp_list_lock);
	pthread_mutex_destroy(&pcp->lock);
	free(pcp);
}

/* The calling thread's cache, created and registered on first use; NULL if out of memory. */
static struct buddy_pcp *this_thread_pcp(struct buddy *b)
{
	struct buddy_pcp *pcp = pthread_getspecific(b->pcp_key);

	if (pcp)
		return pcp;
	pcp = calloc(1, sizeof(*pcp));
	if (!pcp)
		return NULL;
	pthread_mutex_init(&pcp->lock, NULL);
	pcp->buddy = b;
	pcp->head = FRAME_NONE;
	pcp->high = b->pcp_high;
	pcp->batch = b->pcp_batch;
	if (pthread_setspecific(b->pcp_key, pcp)) {
		pthread_mutex_destroy(&pcp->lock);
		free(pcp);
		return NULL;
	}
	pthread_mutex_lock(&b->pcp_list_lock);
	pcp->next = b->pcp_list;
	if (pcp->next)
		pcp->next->prev = pcp;
	b->pcp_list = pcp;
	pthread_mutex_unlock(&b->pcp_list_lock);
	return pcp;
}

int64_t buddy_alloc_frame(struct buddy *b)
{
	struct buddy_pcp *pcp = this_thread_pcp(b);

	if (!pcp)
		return buddy_alloc(b, 0);

	pthread_mutex_lock(&pcp->lock);
	if (pcp->head == FRAME_NONE)
		pcp_refill(b, pcp);
	if (pcp->head == FRAME_NONE) {
		/* Nothing on the free lists: other caches may hold frames. */
		pthread_mutex_unlock(&pcp->lock);
		return buddy_alloc(b, 0);
	}
	uint64_t frame = pcp->head;
	struct frame *f = frame_of(b, frame);

	pcp->head = f->next;
	__atomic_store_n(&pcp->count, pcp->count - 1, __ATOMIC_RELAXED);
	f->next = FRAME_NONE;
	frame_set(f, FRAME_ALLOCATED, 0);
	pthread_mutex_unlock(&pcp->lock);
	return (int64_t)frame;
}

void buddy_free_frame(struct buddy *b, uint64_t frame)
{
	check_block(b, frame, 0);

	struct buddy_pcp *pcp = this_thread_pcp(b);

	if (!pcp) {
		buddy_free(b, frame, 0);
		return;
	}
	struct frame *f = frame_of(b, frame);

	pthread_mutex_lock(&pcp->lock);
	if (frame_state(f) == FRAME_BUDDY || frame_state(f) == FRAME_PCP)
		buddy_bug("freeing a free frame", frame, 0);
	frame_set(f, FRAME_PCP, 0);
	f->prev = FRAME_NONE;
	f->next = pcp->head;
	pcp->head = (uint32_t)frame;
	__atomic_store_n(&pcp->count, pcp->count + 1, __ATOMIC_RELAXED);
	if (pcp->count > pcp->high) {
		pthread_mutex_lock(&b->lock);
		pcp_give_back(b, pcp, pcp->batch);
		pthread_mutex_unlock(&b->lock);
	}
	pthread_mutex_unlock(&pcp->lock);
}

void buddy_drain_pcp(struct buddy *b)
{
	pthread_mutex_lock(&b->pcp_list_lock);
	for (struct buddy_pcp *pcp = b->pcp_list; pcp; pcp = pcp->next) {
		pthread_mutex_lock(&pcp->lock);
		if (pcp->count) {
			pthread_mutex_lock(&b->lock);
			pcp_give_back(b, pcp, pcp->count);
			pthread_mutex_unlock(&b->lock);
		}
		pthread_mutex_unlock(&pcp->lock);
	}
	pthread_mutex_unlock(&b->pcp_list_lock);
}

/* ---- Reports ---- */

uint64_t buddy_pcp_pages(struct buddy *b)
{
	uint64_t pages = 0;

	pthread_mutex_lock(&b->pcp_list_lock);
	for (struct buddy_pcp *pcp = b->pcp_list; pcp; pcp = pcp->next)
		pages += __atomic_load_n(&pcp->count, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&b->pcp_list_lock);
	return pages;
}

uint64_t buddy_free_pages(struct buddy *b)
{
	pthread_mutex_lock(&b->lock);
	uint64_t pages = b->free_pages;
	pthread_mutex_unlock(&b->lock);

	return pages + buddy_pcp_pages(b);
}

void buddy_info(struct buddy *b, uint64_t nr_free[BUDDY_ORDERS])
{
	pthread_mutex_lock(&b->lock);
	memcpy(nr_free, b->nr_free, sizeof(b->nr_free));
	pthread_mutex_unlock(&b->lock);
}

void buddy_set_watermarks(struct buddy *b, uint64_t min_free_kbytes, uint32_t scale_factor)
{
	pthread_mutex_lock(&b->lock);
	watermarks_compute(&b->wmark, b->managed_pages, min_free_kbytes, scale_factor);
	pthread_mutex_unlock(&b->lock);
}
