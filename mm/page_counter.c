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
	c->min = c->low = c->min_usage = c->low_usage = 0;
	c->children_min_usage = c->children_low_usage = 0;
	c->parent = parent;
}

static void raise_peak(struct page_counter *c, uint64_t usage)
{
	uint64_t peak = __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
	while (usage > peak && !__atomic_compare_exchange_n(&c->peak, &peak, usage, true,
							    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* c's claims on its parent's protection follow its usage, as Linux's
 * propagate_protected_usage(). Cheap when nothing is protected. */
static void propagate_protected(struct page_counter *c, uint64_t usage)
{
	if (!c->parent)
		return;
	uint64_t min = page_counter_min(c), low = page_counter_low(c);
	if (min || __atomic_load_n(&c->min_usage, __ATOMIC_RELAXED)) {
		uint64_t claim = usage < min ? usage : min;
		uint64_t old = __atomic_exchange_n(&c->min_usage, claim, __ATOMIC_RELAXED);
		if (claim != old)
			__atomic_add_fetch(&c->parent->children_min_usage, claim - old,
					   __ATOMIC_RELAXED);
	}
	if (low || __atomic_load_n(&c->low_usage, __ATOMIC_RELAXED)) {
		uint64_t claim = usage < low ? usage : low;
		uint64_t old = __atomic_exchange_n(&c->low_usage, claim, __ATOMIC_RELAXED);
		if (claim != old)
			__atomic_add_fetch(&c->parent->children_low_usage, claim - old,
					   __ATOMIC_RELAXED);
	}
}

void page_counter_charge(struct page_counter *c, int64_t delta)
{
	for (; c; c = c->parent) {
		uint64_t usage = __atomic_add_fetch(&c->usage, (uint64_t)delta, __ATOMIC_RELAXED);
		if (delta > 0)
			raise_peak(c, usage);
		propagate_protected(c, usage);
	}
}

void page_counter_set_min(struct page_counter *c, uint64_t pages)
{
	__atomic_store_n(&c->min, pages, __ATOMIC_RELAXED);
	propagate_protected(c, page_counter_read(c));
}

void page_counter_set_low(struct page_counter *c, uint64_t pages)
{
	__atomic_store_n(&c->low, pages, __ATOMIC_RELAXED);
	propagate_protected(c, page_counter_read(c));
}

/* Linux's effective_protection(), recursive protection on. */
static uint64_t effective(uint64_t usage, uint64_t parent_usage, uint64_t setting,
			  uint64_t parent_effective, uint64_t siblings_protected)
{
	uint64_t protected = usage < setting ? usage : setting;
	if (siblings_protected > parent_effective)
		return (uint64_t)((unsigned __int128)protected * parent_effective /
				  siblings_protected);
	uint64_t ep = protected;
	if (parent_effective > siblings_protected && usage > protected &&
	    parent_usage > siblings_protected)
		ep += (uint64_t)((unsigned __int128)(parent_effective - siblings_protected) *
				 (usage - protected) / (parent_usage - siblings_protected));
	return ep;
}

void page_counter_protection(const struct page_counter *c, const struct page_counter *root,
			     uint64_t *emin, uint64_t *elow)
{
	*emin = *elow = 0;
	/* c and its ancestors below root (root NULL: below the top). */
	const struct page_counter *chain[32], *it = c;
	unsigned n = 0;
	for (; it && it != root && n < 32; it = it->parent)
		chain[n++] = it;
	if (root ? it != root : n == 0)
		return; /* c is not under root */
	if (!root)
		root = chain[--n]; /* the top is the root */
	if (!n)
		return; /* c is the root: reclaim from it is not held back */
	uint64_t pmin = 0, plow = 0;
	while (n--) {
		const struct page_counter *level = chain[n], *p = level->parent;
		uint64_t usage = page_counter_read(level);
		if (p == root) {
			*emin = page_counter_min(level);
			*elow = page_counter_low(level);
		} else {
			uint64_t pusage = page_counter_read(p);
			*emin = effective(
				usage, pusage, page_counter_min(level), pmin,
				__atomic_load_n(&p->children_min_usage, __ATOMIC_RELAXED));
			*elow = effective(
				usage, pusage, page_counter_low(level), plow,
				__atomic_load_n(&p->children_low_usage, __ATOMIC_RELAXED));
		}
		pmin = *emin;
		plow = *elow;
	}
}

struct page_counter *page_counter_try_charge(struct page_counter *c, uint64_t n)
{
	for (struct page_counter *it = c; it; it = it->parent) {
		uint64_t usage = __atomic_add_fetch(&it->usage, n, __ATOMIC_RELAXED);
		uint64_t max = page_counter_max(it);
		if (max != PAGE_COUNTER_MAX && usage > max) {
			for (struct page_counter *undo = c; undo != it->parent; undo = undo->parent)
				propagate_protected(undo, __atomic_sub_fetch(&undo->usage, n,
									     __ATOMIC_RELAXED));
			return it;
		}
		raise_peak(it, usage);
		propagate_protected(it, usage);
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

void page_counter_release(struct page_counter *c)
{
	uint64_t left = page_counter_read(c);
	if (!c->parent)
		return;
	page_counter_charge(c->parent, -(int64_t)left);
	__atomic_sub_fetch(&c->parent->children_min_usage,
			   __atomic_exchange_n(&c->min_usage, 0, __ATOMIC_RELAXED),
			   __ATOMIC_RELAXED);
	__atomic_sub_fetch(&c->parent->children_low_usage,
			   __atomic_exchange_n(&c->low_usage, 0, __ATOMIC_RELAXED),
			   __ATOMIC_RELAXED);
}
