/*
 * page_counter.c - hierarchical page counts with limits (page_counter.h).
 */
#include "page_counter.h"

#include <stdbool.h>
#include <stddef.h>

void page_counter_init(struct page_counter *c, struct page_counter *parent)
{
	c->usage = c->peak = 0;
	c->max = c->high = PAGE_COUNTER_MAX;
	c->parent = parent;
}

static void raise_peak(struct page_counter *c, uint64_t usage)
{
	uint64_t peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
	while (usage > peak && !__atomic_compare_exchange_n(&c->peak, &peak, usage, true,
							    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void page_counter_charge(struct page_counter *c, int64_t delta)
{
	for (; c; c = c->parent) {
		uint64_t usage = __atomic_add_fetch(&c->usage, (uint64_t)delta, __ATOMIC_RELAXED);
		if (delta > 0)
			raise_peak(c, usage);
	}
}

struct page_counter *page_counter_try_charge(struct page_counter *c, uint64_t n)
{
	for (struct page_counter *it = c; it; it = it->parent) {
		uint64_t usage = __atomic_add_fetch(&it->usage, n, __ATOMIC_RELAXED);
		uint64_t max = page_counter_max(it);
		if (max != PAGE_COUNTER_MAX && usage > max) {
			for (struct page_counter *undo = c; undo != it->parent; undo = undo->parent)
				__atomic_sub_fetch(&undo->usage, n, __ATOMIC_RELAXED);
			return it;
		}
		raise_peak(it, usage);
	}
	return NULL;
}

struct page_counter *page_counter_over_max(struct page_counter *c, uint64_t more)
{
	for (; c; c = c->parent) {
		uint64_t max = page_counter_max(c);
		if (max != PAGE_COUNTER_MAX && page_counter_read(c) + more > max)
			return c;
	}
	return NULL;
}

uint64_t page_counter_high_excess(struct page_counter *c, struct page_counter **worst)
{
	uint64_t excess = 0;
	if (worst)
		*worst = NULL;
	for (; c; c = c->parent) {
		uint64_t high = page_counter_high(c), usage = page_counter_read(c);
		if (high != PAGE_COUNTER_MAX && usage > high && usage - high > excess) {
			excess = usage - high;
			if (worst)
				*worst = c;
		}
	}
	return excess;
}
