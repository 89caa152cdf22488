/* test_buddy.c - the buddy frame allocator, its per-thread caches and watermarks. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm/buddy.h"
#include "mm/frame_table.h"

/* Frames outside the managed range carry this, and must keep it. */
#define OUTSIDE_PAYLOAD 0xabcdefull

struct pool {
	struct frame_table table;
	struct buddy buddy;
};

/* A table with `slack` reserved frames after the managed range (and any before it). */
static void pool_init(struct pool *p, uint64_t first_frame, uint64_t nframes, uint64_t slack)
{
	cr_assert_eq(frame_table_init(&p->table, first_frame + nframes + slack), 0);
	for (uint64_t i = 0; i < p->table.nframes; i++)
		frame_set(frame_get(&p->table, i), FRAME_RESERVED, OUTSIDE_PAYLOAD);
	cr_assert_eq(buddy_init(&p->buddy, &p->table, first_frame, nframes), 0);
}

static void pool_destroy(struct pool *p)
{
	for (uint64_t i = 0; i < p->table.nframes; i++) {
		if (i >= p->buddy.first_frame && i < p->buddy.first_frame + p->buddy.nframes)
			continue;
		const struct frame *f = frame_get(&p->table, i);
		cr_assert(frame_state(f) == FRAME_RESERVED && frame_payload(f) == OUTSIDE_PAYLOAD,
			  "frame %llu outside the managed range was touched",
			  (unsigned long long)i);
	}
	buddy_destroy(&p->buddy);
	frame_table_destroy(&p->table);
}

/* xorshift64*: deterministic and fast. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t rng_below(uint64_t *state, uint64_t bound)
{
	return rng_next(state) % bound;
}

/*
 * Walks the free lists and checks every invariant of buddy.h against a model:
 * `allocated` has one byte per table frame (NULL: nothing is allocated), and
 * `nr_allocated` frames are allocated outside the allocator. Single-threaded.
 */
static void check_consistency(struct buddy *b, const uint8_t *allocated, uint64_t nr_allocated)
{
	uint64_t nframes = b->table->nframes;
	uint8_t *seen = calloc(nframes, 1);
	uint64_t pages = 0;

	cr_assert_not_null(seen);
	for (unsigned order = 0; order < BUDDY_ORDERS; order++) {
		uint64_t count = 0;
		uint32_t prev = FRAME_NONE;

		for (uint32_t head = b->free_head[order]; head != FRAME_NONE;
		     head = frame_get(b->table, head)->next) {
			const struct frame *f = frame_get(b->table, head);

			cr_assert_leq(count, b->nframes, "free list %u has a cycle", order);
			cr_assert_eq(frame_state(f), FRAME_BUDDY, "free head %u is not FRAME_BUDDY",
				     head);
			cr_assert_eq(frame_payload(f), order,
				     "free head %u has order %llu on list %u", head,
				     (unsigned long long)frame_payload(f), order);
			cr_assert_eq(f->prev, prev, "free head %u has a wrong prev link", head);
			cr_assert_eq(head & ((1u << order) - 1), 0, "free block %u misaligned",
				     head);
			cr_assert(head >= b->first_frame &&
					  head + (1ull << order) <= b->first_frame + b->nframes,
				  "free block %u order %u outside the range", head, order);
			for (uint64_t i = 0; i < 1ull << order; i++) {
				cr_assert(!seen[head + i], "frame %llu in two free blocks",
					  (unsigned long long)(head + i));
				cr_assert(!allocated || !allocated[head + i],
					  "frame %llu is both free and allocated",
					  (unsigned long long)(head + i));
				if (i)
					cr_assert_eq(frame_state(frame_get(b->table, head + i)),
						     FRAME_UNUSED,
						     "frame %llu inside a free block is not unused",
						     (unsigned long long)(head + i));
				seen[head + i] = 1;
			}
			/* Two free buddies of the same order would have merged. */
			if (order < BUDDY_MAX_ORDER) {
				uint64_t buddy = head ^ (1u << order);
				if (buddy >= b->first_frame &&
				    buddy < b->first_frame + b->nframes) {
					const struct frame *bf = frame_get(b->table, buddy);
					cr_assert(!(frame_state(bf) == FRAME_BUDDY &&
						    frame_payload(bf) == order),
						  "free buddies %u and %llu at order %u not merged",
						  head, (unsigned long long)buddy, order);
				}
			}
			prev = head;
			count++;
		}
		cr_assert_eq(count, b->nr_free[order], "nr_free[%u] = %llu, the list has %llu",
			     order, (unsigned long long)b->nr_free[order],
			     (unsigned long long)count);
		pages += count << order;
	}
	cr_assert_eq(pages, b->free_pages);

	/* Cached frames are FRAME_PCP; everything else managed is allocated. */
	uint64_t pcp = 0;
	for (uint64_t i = b->first_frame; i < b->first_frame + b->nframes; i++) {
		if (frame_state(frame_get(b->table, i)) != FRAME_PCP)
			continue;
		cr_assert(!seen[i] && (!allocated || !allocated[i]),
			  "cached frame %llu is also free or allocated", (unsigned long long)i);
		pcp++;
	}
	cr_assert_eq(pcp, buddy_pcp_pages(b));
	cr_assert_eq(b->free_pages + pcp + nr_allocated, b->managed_pages,
		     "free %llu + cached %llu + allocated %llu != managed %llu",
		     (unsigned long long)b->free_pages, (unsigned long long)pcp,
		     (unsigned long long)nr_allocated, (unsigned long long)b->managed_pages);
	cr_assert_eq(buddy_free_pages(b), b->free_pages + pcp);
	free(seen);
}

/*
 * The maximal aligned blocks of [first, first + n), computed top down: every
 * order-10 slot of the grid that the range touches is counted if it lies
 * inside, else split in halves.
 */
static void expect_blocks(uint64_t start, unsigned order, uint64_t first, uint64_t end,
			  uint64_t expected[BUDDY_ORDERS])
{
	uint64_t block_end = start + (1ull << order);

	if (block_end <= first || start >= end)
		return;
	if (start >= first && block_end <= end) {
		expected[order]++;
		return;
	}
	expect_blocks(start, order - 1, first, end, expected);
	expect_blocks(start + (1ull << (order - 1)), order - 1, first, end, expected);
}

static void expected_decomposition(uint64_t first, uint64_t n, uint64_t expected[BUDDY_ORDERS])
{
	memset(expected, 0, BUDDY_ORDERS * sizeof(expected[0]));
	for (uint64_t slot = first >> BUDDY_MAX_ORDER << BUDDY_MAX_ORDER; slot < first + n;
	     slot += 1ull << BUDDY_MAX_ORDER)
		expect_blocks(slot, BUDDY_MAX_ORDER, first, first + n, expected);
}

static void check_fully_coalesced(struct buddy *b)
{
	uint64_t expected[BUDDY_ORDERS], nr_free[BUDDY_ORDERS];

	buddy_drain_pcp(b);
	check_consistency(b, NULL, 0);
	cr_assert_eq(buddy_pcp_pages(b), 0);
	cr_assert_eq(buddy_free_pages(b), b->managed_pages);
	expected_decomposition(b->first_frame, b->nframes, expected);
	buddy_info(b, nr_free);
	for (unsigned order = 0; order < BUDDY_ORDERS; order++)
		cr_assert_eq(nr_free[order], expected[order],
			     "range %llu+%llu: nr_free[%u] = %llu, expected %llu",
			     (unsigned long long)b->first_frame, (unsigned long long)b->nframes,
			     order, (unsigned long long)nr_free[order],
			     (unsigned long long)expected[order]);
}

/* ---- 1. Random operations against a model ---- */

struct block {
	uint64_t frame;
	unsigned order;
};

/* Orders 0..10, weighted toward small ones (percent). */
static const unsigned order_weights[BUDDY_ORDERS] = {40, 16, 12, 9, 7, 5, 4, 3, 2, 1, 1};

static unsigned random_order(uint64_t *rng)
{
	unsigned pick = (unsigned)rng_below(rng, 100), order = 0;

	while (pick >= order_weights[order]) {
		pick -= order_weights[order];
		order++;
	}
	return order;
}

struct model {
	struct buddy *buddy;
	uint8_t *allocated; /* per table frame */
	uint64_t nr_allocated;
	struct block *blocks; /* held by the test, in any order */
	uint64_t nr_blocks;
};

static void model_take(struct model *m, int64_t frame, unsigned order)
{
	struct buddy *b = m->buddy;

	cr_assert_geq(frame, 0);
	cr_assert_eq((uint64_t)frame & ((1ull << order) - 1), 0, "frame %lld misaligned for %u",
		     (long long)frame, order);
	cr_assert((uint64_t)frame >= b->first_frame &&
			  (uint64_t)frame + (1ull << order) <= b->first_frame + b->nframes,
		  "block %lld order %u outside the range", (long long)frame, order);
	for (uint64_t i = 0; i < 1ull << order; i++) {
		cr_assert(!m->allocated[frame + i], "frame %llu handed out twice",
			  (unsigned long long)(frame + i));
		cr_assert_eq(frame_state(frame_get(b->table, frame + i)), FRAME_ALLOCATED);
		m->allocated[frame + i] = 1;
	}
	m->nr_allocated += 1ull << order;
	m->blocks[m->nr_blocks++] = (struct block){(uint64_t)frame, order};
}

/* Returns a held block to the allocator, directly or through the cache. */
static void model_release(struct model *m, uint64_t index, uint64_t *rng)
{
	struct block blk = m->blocks[index];

	m->blocks[index] = m->blocks[--m->nr_blocks];
	for (uint64_t i = 0; i < 1ull << blk.order; i++) {
		cr_assert(m->allocated[blk.frame + i]);
		m->allocated[blk.frame + i] = 0;
	}
	m->nr_allocated -= 1ull << blk.order;
	if (blk.order == 0 && rng_below(rng, 2))
		buddy_free_frame(m->buddy, blk.frame);
	else
		buddy_free(m->buddy, blk.frame, blk.order);
}

/* Replaces a held block by its aligned pieces of a smaller order, to be freed one by one. */
static void model_split(struct model *m, uint64_t index, unsigned piece_order)
{
	struct block blk = m->blocks[index];

	m->blocks[index] = (struct block){blk.frame, piece_order};
	for (uint64_t piece = 1; piece < 1ull << (blk.order - piece_order); piece++)
		m->blocks[m->nr_blocks++] =
			(struct block){blk.frame + (piece << piece_order), piece_order};
}

static void model_free_all(struct model *m, uint64_t *rng)
{
	while (m->nr_blocks)
		model_release(m, rng_below(rng, m->nr_blocks), rng);
}

static void model_init(struct model *m, struct pool *p)
{
	m->buddy = &p->buddy;
	m->allocated = calloc(p->table.nframes, 1);
	m->blocks = calloc(p->buddy.nframes, sizeof(*m->blocks));
	m->nr_allocated = 0;
	m->nr_blocks = 0;
	cr_assert(m->allocated && m->blocks);
}

static void model_destroy(struct model *m)
{
	free(m->allocated);
	free(m->blocks);
}

Test(buddy, random_operations_match_a_model)
{
	struct pool p;
	struct model m;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	uint64_t failures = 0, splits = 0, frees = 0;

	pool_init(&p, 5, 30000, 7);
	model_init(&m, &p);
	for (unsigned op = 0; op < 200000; op++) {
		/* Alternate filling and emptying phases, so both ends are reached. */
		unsigned alloc_percent = (op / 25000) % 2 ? 35 : 70;

		if (rng_below(&rng, 100) < alloc_percent) {
			unsigned order = random_order(&rng);
			int use_pcp = order == 0 && rng_below(&rng, 2);
			int64_t frame = use_pcp ? buddy_alloc_frame(&p.buddy)
						: buddy_alloc(&p.buddy, order);

			if (frame >= 0) {
				model_take(&m, frame, order);
				continue;
			}
			/* Fails only if no block is big enough, cached frames included. */
			failures++;
			cr_assert_eq(buddy_pcp_pages(&p.buddy), 0);
			for (unsigned larger = order; larger < BUDDY_ORDERS; larger++)
				cr_assert_eq(p.buddy.nr_free[larger], 0,
					     "order %u failed with a free block of order %u", order,
					     larger);
		} else if (m.nr_blocks) {
			uint64_t index = rng_below(&rng, m.nr_blocks);
			unsigned order = m.blocks[index].order;

			if (order > 0 && rng_below(&rng, 4) == 0) {
				/* Freed later as pieces, half the time single frames. */
				model_split(&m, index,
					    rng_below(&rng, 2) ? 0
							       : (unsigned)rng_below(&rng, order));
				splits++;
			} else {
				model_release(&m, index, &rng);
				frees++;
			}
		}
		if (op % 5000 == 4999)
			check_consistency(&p.buddy, m.allocated, m.nr_allocated);
	}
	cr_assert_gt(failures, 0, "the pool never ran out");
	cr_assert_gt(splits, 1000);
	cr_assert_gt(p.buddy.merges, 0);
	model_free_all(&m, &rng);
	check_consistency(&p.buddy, m.allocated, 0);
	check_fully_coalesced(&p.buddy);
	model_destroy(&m);
	pool_destroy(&p);
}

Test(buddy, allocation_splits_the_smallest_block)
{
	struct pool p;
	uint64_t nr_free[BUDDY_ORDERS];

	pool_init(&p, 0, 1024, 0);
	cr_assert_eq(buddy_alloc(&p.buddy, 0), 0);
	/* 1024 = 1 + 1 + 2 + 4 + ... + 512: one free block of each order 0..9. */
	buddy_info(&p.buddy, nr_free);
	for (unsigned order = 0; order < BUDDY_MAX_ORDER; order++)
		cr_assert_eq(nr_free[order], 1, "order %u", order);
	cr_assert_eq(nr_free[BUDDY_MAX_ORDER], 0);
	cr_assert_eq(p.buddy.splits, 10);
	/* The order-0 buddy is taken next, not a split of a larger block. */
	cr_assert_eq(buddy_alloc(&p.buddy, 0), 1);
	cr_assert_eq(buddy_alloc(&p.buddy, 3), 8);
	cr_assert_eq(buddy_alloc(&p.buddy, 11), -1);
	buddy_free(&p.buddy, 0, 0);
	buddy_free(&p.buddy, 1, 0);
	buddy_free(&p.buddy, 8, 3);
	check_fully_coalesced(&p.buddy);
	/* Freeing 1: 3 merges up to order 3; freeing 8: 7 more up to order 10. */
	cr_assert_eq(p.buddy.merges, 3 + 7);
	pool_destroy(&p);
}

/* ---- 2. Full coalescing ---- */

static void fill_and_empty(struct pool *p, uint64_t seed)
{
	struct model m;
	uint64_t rng = seed;

	model_init(&m, p);
	/* Fill the pool with mixed orders, then free in random order, partly as pieces. */
	for (unsigned attempt = 0; attempt < 20000; attempt++) {
		unsigned order = random_order(&rng);
		int64_t frame = buddy_alloc(&p->buddy, order);
		if (frame >= 0)
			model_take(&m, frame, order);
	}
	for (int64_t frame; (frame = buddy_alloc_frame(&p->buddy)) >= 0;)
		model_take(&m, frame, 0);
	cr_assert_eq(m.nr_allocated, p->buddy.managed_pages, "the pool was not filled");
	check_consistency(&p->buddy, m.allocated, m.nr_allocated);
	for (uint64_t i = 0; i < m.nr_blocks; i++)
		if (m.blocks[i].order > 0 && rng_below(&rng, 2))
			model_split(&m, i, 0);
	model_free_all(&m, &rng);
	model_destroy(&m);
}

Test(buddy, aligned_range_coalesces_to_max_order)
{
	struct pool p;
	uint64_t nr_free[BUDDY_ORDERS];

	pool_init(&p, 2048, 4096, 1024);
	buddy_info(&p.buddy, nr_free);
	cr_assert_eq(nr_free[BUDDY_MAX_ORDER], 4);
	fill_and_empty(&p, 1);
	check_fully_coalesced(&p.buddy);
	buddy_info(&p.buddy, nr_free);
	cr_assert_eq(nr_free[BUDDY_MAX_ORDER], 4);
	for (unsigned order = 0; order < BUDDY_MAX_ORDER; order++)
		cr_assert_eq(nr_free[order], 0, "order %u", order);
	pool_destroy(&p);
}

Test(buddy, unaligned_range_coalesces_to_maximal_aligned_blocks)
{
	static const struct {
		uint64_t first, n;
	} ranges[] = {{3, 5000}, {0, 1}, {1023, 1026}, {1, 1023}, {777, 3333}, {4096, 1025}};

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		struct pool p;

		pool_init(&p, ranges[i].first, ranges[i].n, 5);
		check_fully_coalesced(&p.buddy);
		fill_and_empty(&p, 100 + i);
		check_fully_coalesced(&p.buddy);
		pool_destroy(&p);
	}
	/* And spelled out for 3 + 5000 = [3, 5003): 3 (o0), 4-7 (o2), 8-15 (o3),
	 * 16-31 (o4), ..., 512-1023 (o9), 1024-4095 (3 x o10), then 4096-5002:
	 * 907 = 512 + 256 + 128 + 8 + 2 + 1. */
	uint64_t expected[BUDDY_ORDERS];
	expected_decomposition(3, 5000, expected);
	static const uint64_t by_hand[BUDDY_ORDERS] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 3};
	uint64_t tail[BUDDY_ORDERS] = {0};
	tail[9] = tail[8] = tail[7] = tail[3] = tail[1] = tail[0] = 1;
	for (unsigned order = 0; order < BUDDY_ORDERS; order++)
		cr_assert_eq(expected[order], by_hand[order] + tail[order], "order %u", order);
}

/* ---- 3. Exhaustion ---- */

Test(buddy, exhaustion_and_fragmentation)
{
	struct pool p;
	uint8_t *taken = calloc(4096, 1);
	uint64_t count = 0;

	cr_assert_not_null(taken);
	pool_init(&p, 0, 4096, 0);
	for (int64_t frame; (frame = buddy_alloc(&p.buddy, 0)) >= 0; count++) {
		cr_assert(frame < 4096 && !taken[frame], "frame %lld bad or twice",
			  (long long)frame);
		taken[frame] = 1;
	}
	cr_assert_eq(count, 4096);
	cr_assert_eq(buddy_free_pages(&p.buddy), 0);
	uint64_t failures = p.buddy.alloc_failures;
	cr_assert_eq(buddy_alloc(&p.buddy, 0), -1);
	cr_assert_eq(buddy_alloc_frame(&p.buddy), -1);
	cr_assert_eq(p.buddy.alloc_failures, failures + 2);

	/* Half the pool free, but in single frames: nothing larger can be had. */
	for (uint64_t frame = 0; frame < 4096; frame += 2) {
		taken[frame] = 0;
		buddy_free(&p.buddy, frame, 0);
	}
	cr_assert_eq(buddy_free_pages(&p.buddy), 2048);
	cr_assert_eq(p.buddy.nr_free[0], 2048);
	for (unsigned order = 1; order < BUDDY_ORDERS; order++)
		cr_assert_eq(buddy_alloc(&p.buddy, order), -1, "order %u", order);
	check_consistency(&p.buddy, taken, 2048);
	for (uint64_t frame = 1; frame < 4096; frame += 2)
		buddy_free(&p.buddy, frame, 0);
	check_fully_coalesced(&p.buddy);
	free(taken);
	pool_destroy(&p);

	/* Mixed orders on an unaligned range: large blocks first, then the rest. */
	struct model m;
	pool_init(&p, 3, 5000, 3);
	model_init(&m, &p);
	for (int64_t frame; (frame = buddy_alloc(&p.buddy, 3)) >= 0;)
		model_take(&m, frame, 3);
	cr_assert_eq(m.nr_allocated, 4992, "the 624 aligned 8-blocks of [8, 5000)");
	for (int64_t frame; (frame = buddy_alloc_frame(&p.buddy)) >= 0;)
		model_take(&m, frame, 0);
	cr_assert_eq(m.nr_allocated, 5000);
	check_consistency(&p.buddy, m.allocated, m.nr_allocated);
	uint64_t rng = 7;
	model_free_all(&m, &rng);
	check_fully_coalesced(&p.buddy);
	model_destroy(&m);
	pool_destroy(&p);
}

struct parked_cache {
	struct buddy *buddy;
	pthread_barrier_t parked, release;
	uint64_t cached; /* this thread's frames left in its cache */
};

static void *park_frames_in_cache(void *arg)
{
	struct parked_cache *pc = arg;
	int64_t frames[40];
	uint64_t before = buddy_pcp_pages(pc->buddy);

	for (int i = 0; i < 40; i++)
		frames[i] = buddy_alloc_frame(pc->buddy);
	for (int i = 0; i < 40; i++)
		if (frames[i] >= 0)
			buddy_free_frame(pc->buddy, (uint64_t)frames[i]);
	pc->cached = buddy_pcp_pages(pc->buddy) - before;
	pthread_barrier_wait(&pc->parked);
	pthread_barrier_wait(&pc->release);
	return NULL;
}

Test(buddy, large_request_drains_other_threads_caches)
{
	struct pool p;
	struct parked_cache pc;
	pthread_t thread;
	int64_t blocks[4];

	pool_init(&p, 0, 4096, 0);
	pc.buddy = &p.buddy;
	pthread_barrier_init(&pc.parked, NULL, 2);
	pthread_barrier_init(&pc.release, NULL, 2);
	cr_assert_eq(pthread_create(&thread, NULL, park_frames_in_cache, &pc), 0);
	pthread_barrier_wait(&pc.parked);

	/* The other thread's cache holds frames, so one order-10 block is broken. */
	cr_assert_gt(pc.cached, 0);
	cr_assert_eq(buddy_pcp_pages(&p.buddy), pc.cached);
	cr_assert_eq(p.buddy.nr_free[BUDDY_MAX_ORDER], 3);
	cr_assert_eq(buddy_free_pages(&p.buddy), 4096);
	for (int i = 0; i < 4; i++) {
		blocks[i] = buddy_alloc(&p.buddy, BUDDY_MAX_ORDER);
		cr_assert_geq(blocks[i], 0, "order-10 block %d not found", i);
	}
	cr_assert_eq(buddy_pcp_pages(&p.buddy), 0);
	cr_assert_eq(buddy_alloc(&p.buddy, 0), -1);
	for (int i = 0; i < 4; i++)
		buddy_free(&p.buddy, (uint64_t)blocks[i], BUDDY_MAX_ORDER);
	pthread_barrier_wait(&pc.release);
	pthread_join(thread, NULL);
	check_fully_coalesced(&p.buddy);
	pthread_barrier_destroy(&pc.parked);
	pthread_barrier_destroy(&pc.release);
	pool_destroy(&p);
}

Test(buddy, double_free_aborts, .signal = SIGABRT)
{
	struct pool p;

	pool_init(&p, 0, 64, 0);
	int64_t frame = buddy_alloc(&p.buddy, 2);
	buddy_free(&p.buddy, (uint64_t)frame, 2);
	buddy_free(&p.buddy, (uint64_t)frame, 2);
}

Test(buddy, init_rejects_ranges_outside_the_table)
{
	struct frame_table table;
	struct buddy b;

	cr_assert_eq(frame_table_init(&table, 100), 0);
	cr_assert_eq(buddy_init(&b, &table, 50, 51), -1);
	buddy_destroy(&b); /* safe after a failed init */
	cr_assert_eq(buddy_init(&b, &table, 101, 0), -1);
	cr_assert_eq(buddy_init(&b, &table, 50, 50), 0);
	cr_assert_eq(buddy_free_pages(&b), 50);
	buddy_destroy(&b);
	buddy_destroy(&b); /* and twice */
	frame_table_destroy(&table);
}

Test(buddy, adjacent_allocators_on_one_table_stay_apart)
{
	struct frame_table table;
	struct buddy low, high;

	/* [0, 512) and [512, 1024): their order-9 blocks are each other's buddies. */
	cr_assert_eq(frame_table_init(&table, 1024), 0);
	cr_assert_eq(buddy_init(&low, &table, 0, 512), 0);
	cr_assert_eq(buddy_init(&high, &table, 512, 512), 0);
	for (int round = 0; round < 2; round++) {
		int64_t a = buddy_alloc(&low, 9), b = buddy_alloc(&high, 9);
		cr_assert_eq(a, 0);
		cr_assert_eq(b, 512);
		buddy_free(&high, (uint64_t)b, 9);
		buddy_free(&low, (uint64_t)a, 9);
		cr_assert_eq(low.nr_free[9], 1);
		cr_assert_eq(low.nr_free[BUDDY_MAX_ORDER], 0);
		cr_assert_eq(high.nr_free[9], 1);
		cr_assert_eq(high.nr_free[BUDDY_MAX_ORDER], 0);
		check_consistency(&low, NULL, 0);
		check_consistency(&high, NULL, 0);
	}
	buddy_destroy(&low);
	buddy_destroy(&high);
	frame_table_destroy(&table);
}

/* ---- 4. Per-thread caches under concurrency ---- */

struct stress {
	struct buddy *buddy;
	uint8_t *owner; /* per frame, changed with atomic exchanges */
	unsigned ops;
	unsigned max_held;
	unsigned large_every; /* 0: order 0 only; else every n-th op is an order-1..3 block */
	pthread_barrier_t start;
	uint64_t errors;   /* atomic */
	uint64_t failures; /* atomic */
	char first_error[200];
};

static void stress_error(struct stress *s, const char *what, uint64_t frame)
{
	if (__atomic_fetch_add(&s->errors, 1, __ATOMIC_RELAXED) == 0)
		snprintf(s->first_error, sizeof(s->first_error), "%s: frame %llu", what,
			 (unsigned long long)frame);
}

static void stress_take(struct stress *s, uint64_t frame)
{
	struct buddy *b = s->buddy;

	if (frame < b->first_frame || frame >= b->first_frame + b->nframes)
		stress_error(s, "outside the range", frame);
	else if (__atomic_exchange_n(&s->owner[frame], 1, __ATOMIC_ACQ_REL) != 0)
		stress_error(s, "handed out twice", frame);
	else if (frame_state(frame_get(b->table, frame)) != FRAME_ALLOCATED)
		stress_error(s, "not FRAME_ALLOCATED", frame);
}

static void stress_give(struct stress *s, uint64_t frame)
{
	if (__atomic_exchange_n(&s->owner[frame], 0, __ATOMIC_ACQ_REL) != 1)
		stress_error(s, "freed while not owned", frame);
	buddy_free_frame(s->buddy, frame);
}

static void *stress_thread(void *arg)
{
	struct stress *s = arg;
	uint64_t *held = calloc(s->max_held + 8, sizeof(*held));
	uint64_t nr_held = 0;
	uint64_t rng = (uint64_t)(uintptr_t)&nr_held | 1;

	pthread_barrier_wait(&s->start);
	if (!held) {
		stress_error(s, "out of memory", 0);
		return NULL;
	}
	for (unsigned op = 0; op < s->ops; op++) {
		int want = nr_held < s->max_held && (nr_held == 0 || rng_below(&rng, 100) < 55);

		if (want && s->large_every && op % s->large_every == 0 &&
		    nr_held + 8 <= s->max_held) {
			unsigned order = 1 + (unsigned)rng_below(&rng, 3);
			int64_t frame = buddy_alloc(s->buddy, order);
			if (frame < 0) {
				__atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
				continue;
			}
			if ((uint64_t)frame & ((1ull << order) - 1))
				stress_error(s, "misaligned block", (uint64_t)frame);
			/* Kept as single frames, freed one by one through the cache. */
			for (uint64_t i = 0; i < 1ull << order; i++) {
				stress_take(s, (uint64_t)frame + i);
				held[nr_held++] = (uint64_t)frame + i;
			}
		} else if (want) {
			int64_t frame = buddy_alloc_frame(s->buddy);
			if (frame < 0) {
				__atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
				continue;
			}
			stress_take(s, (uint64_t)frame);
			held[nr_held++] = (uint64_t)frame;
		} else {
			uint64_t index = rng_below(&rng, nr_held);
			uint64_t frame = held[index];
			held[index] = held[--nr_held];
			stress_give(s, frame);
		}
	}
	while (nr_held)
		stress_give(s, held[--nr_held]);
	free(held);
	return NULL;
}

static void run_stress(uint64_t first, uint64_t nframes, unsigned max_held, unsigned large_every,
		       uint64_t *failures)
{
	enum { THREADS = 4 };
	struct pool p;
	struct stress s = {0};
	pthread_t threads[THREADS];

	pool_init(&p, first, nframes, 0);
	s.buddy = &p.buddy;
	s.owner = calloc(p.table.nframes, 1);
	s.ops = 50000;
	s.max_held = max_held;
	s.large_every = large_every;
	cr_assert_not_null(s.owner);
	pthread_barrier_init(&s.start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++)
		cr_assert_eq(pthread_create(&threads[i], NULL, stress_thread, &s), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(threads[i], NULL);
	cr_assert_eq(s.errors, 0, "%llu errors, first: %s", (unsigned long long)s.errors,
		     s.first_error);
	/* The exited threads' caches came back without a drain. */
	cr_assert_eq(buddy_pcp_pages(&p.buddy), 0);
	cr_assert_eq(buddy_free_pages(&p.buddy), nframes);
	cr_assert_gt(p.buddy.pcp_refills, 0);
	check_fully_coalesced(&p.buddy);
	*failures = s.failures;
	pthread_barrier_destroy(&s.start);
	free(s.owner);
	pool_destroy(&p);
}

Test(buddy, pcp_threads_never_share_a_frame)
{
	uint64_t failures;

	run_stress(0, 65536, 256, 0, &failures);
	cr_assert_eq(failures, 0, "a roomy pool should never fail");
}

Test(buddy, pcp_threads_exhausting_a_small_pool)
{
	uint64_t failures;

	/* Each thread may take all 1000 frames (so even one alone runs out), with
	 * some order-1..3 blocks mixed in. */
	run_stress(12, 1000, 1000, 16, &failures);
	cr_assert_gt(failures, 0, "the pool never ran out");
}

struct exiting_cache {
	struct buddy *buddy;
	uint64_t cached;
};

static void *cache_and_exit(void *arg)
{
	struct exiting_cache *ec = arg;
	int64_t frames[10];

	for (int i = 0; i < 10; i++)
		frames[i] = buddy_alloc_frame(ec->buddy);
	for (int i = 0; i < 10; i++)
		buddy_free_frame(ec->buddy, (uint64_t)frames[i]);
	ec->cached = buddy_pcp_pages(ec->buddy);
	return NULL;
}

Test(buddy, thread_exit_returns_its_cache)
{
	struct pool p;
	struct exiting_cache ec;
	pthread_t thread;

	pool_init(&p, 0, 8192, 0);
	ec.buddy = &p.buddy;
	cr_assert_eq(pthread_create(&thread, NULL, cache_and_exit, &ec), 0);
	pthread_join(thread, NULL);
	cr_assert_gt(ec.cached, 0, "the thread's cache was empty");
	cr_assert_leq(ec.cached, p.buddy.pcp_high);
	cr_assert_eq(buddy_pcp_pages(&p.buddy), 0);
	cr_assert_eq(p.buddy.free_pages, 8192);
	check_fully_coalesced(&p.buddy);
	pool_destroy(&p);
}

Test(buddy, pcp_limits_scale_with_the_pool)
{
	static const struct {
		uint64_t nframes;
		uint32_t high, batch;
	} cases[] = {
		{65536, 124, 31}, /* Linux's batch 31, high 4 * 31 */
		{4096, 64, 31},	  /* high = 4096 / 64 */
		{1024, 16, 8},	  /* high = 16, batch = high / 2 */
		{64, 1, 1},	  /* at least 1 */
		{10, 1, 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pool p;
		pool_init(&p, 0, cases[i].nframes, 0);
		cr_assert_eq(p.buddy.pcp_high, cases[i].high, "%llu frames",
			     (unsigned long long)cases[i].nframes);
		cr_assert_eq(p.buddy.pcp_batch, cases[i].batch, "%llu frames",
			     (unsigned long long)cases[i].nframes);

		/* A cache never holds more than high. */
		int64_t frames[200];
		unsigned n = 0;
		for (; n < 200 && n < cases[i].nframes; n++)
			frames[n] = buddy_alloc_frame(&p.buddy);
		for (unsigned j = 0; j < n; j++) {
			buddy_free_frame(&p.buddy, (uint64_t)frames[j]);
			cr_assert_leq(buddy_pcp_pages(&p.buddy), cases[i].high);
		}
		check_fully_coalesced(&p.buddy);
		pool_destroy(&p);
	}
}

/* ---- 5. Watermarks ---- */

struct wmark_case {
	const char *what;
	uint64_t managed_pages, min_free_kbytes_in;
	uint32_t scale_in;
	uint64_t min_free_kbytes, min, low, high;
	uint32_t scale;
};

Test(buddy, watermarks_match_linux)
{
	static const struct wmark_case cases[] = {
		/* int_sqrt(1048576 * 16) = 4096; delta max(256, 262) */
		{"1 GiB", 262144, 0, 0, 4096, 1024, 1286, 1548, 10},
		/* int_sqrt(65536 * 16) = 1024; delta max(64, 16) */
		{"64 MiB", 16384, 0, 0, 1024, 256, 320, 384, 10},
		/* int_sqrt(16777216 * 16) = 16384; delta max(1024, 4194) */
		{"16 GiB", 4194304, 0, 0, 16384, 4096, 8290, 12484, 10},
		/* int_sqrt(4096 * 16) = 256; delta max(16, 1) */
		{"4 MiB", 1024, 0, 0, 256, 64, 80, 96, 10},
		/* int_sqrt(1024 * 16) = 128; delta max(8, 0) */
		{"1 MiB", 256, 0, 0, 128, 32, 40, 48, 10},
		/* int_sqrt(256 * 16) = 64, clamped to 128 */
		{"256 KiB", 64, 0, 0, 128, 32, 40, 48, 10},
		{"empty", 0, 0, 0, 128, 32, 40, 48, 10},
		/* int_sqrt(3145728 * 16) = 7094 (not a square); min 1773, delta max(443, 786) */
		{"3 GiB", 786432, 0, 0, 7094, 1773, 2559, 3345, 10},
		/* int_sqrt(2^34 * 16) = 524288, clamped to 262144; min 65536,
		 * delta max(16384, 2^32 * 10 / 10000 = 4294967) */
		{"16 TiB", 1ull << 32, 0, 0, 262144, 65536, 4360503, 8655470, 10},
		/* explicit: min 2048, delta max(512, 2621) */
		{"1 GiB, 8192 KiB, 100", 262144, 8192, 100, 8192, 2048, 4669, 7290, 100},
		/* explicit values are not clamped: 64 KiB -> min 16, delta max(4, 262) */
		{"1 GiB, 64 KiB", 262144, 64, 0, 64, 16, 278, 540, 10},
		/* scale above the sysctl's 3000 is 3000: delta max(256, 78643) */
		{"1 GiB, scale 5000", 262144, 0, 5000, 4096, 1024, 79667, 158310, 3000},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct wmark_case *c = &cases[i];
		struct watermarks w;

		memset(&w, 0xff, sizeof(w));
		watermarks_compute(&w, c->managed_pages, c->min_free_kbytes_in, c->scale_in);
		cr_assert_eq(w.min_free_kbytes, c->min_free_kbytes, "%s: min_free_kbytes %llu",
			     c->what, (unsigned long long)w.min_free_kbytes);
		cr_assert_eq(w.watermark_scale_factor, c->scale, "%s: scale", c->what);
		cr_assert_eq(w.min, c->min, "%s: min %llu", c->what, (unsigned long long)w.min);
		cr_assert_eq(w.low, c->low, "%s: low %llu", c->what, (unsigned long long)w.low);
		cr_assert_eq(w.high, c->high, "%s: high %llu", c->what, (unsigned long long)w.high);
	}
}

Test(buddy, init_computes_default_watermarks_and_sysctls_override)
{
	struct pool p;

	pool_init(&p, 0, 16384, 0);
	cr_assert_eq(p.buddy.managed_pages, 16384);
	cr_assert_eq(p.buddy.wmark.min_free_kbytes, 1024);
	cr_assert_eq(p.buddy.wmark.min, 256);
	cr_assert_eq(p.buddy.wmark.low, 320);
	cr_assert_eq(p.buddy.wmark.high, 384);

	/* min 512, delta max(128, 16384 * 200 / 10000 = 327) */
	buddy_set_watermarks(&p.buddy, 2048, 200);
	cr_assert_eq(p.buddy.wmark.min_free_kbytes, 2048);
	cr_assert_eq(p.buddy.wmark.watermark_scale_factor, 200);
	cr_assert_eq(p.buddy.wmark.min, 512);
	cr_assert_eq(p.buddy.wmark.low, 839);
	cr_assert_eq(p.buddy.wmark.high, 1166);

	/* Back to the defaults. */
	buddy_set_watermarks(&p.buddy, 0, 0);
	cr_assert_eq(p.buddy.wmark.min, 256);
	cr_assert_eq(p.buddy.wmark.high, 384);
	pool_destroy(&p);
}
