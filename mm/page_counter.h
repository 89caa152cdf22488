/*
 * page_counter.h - a hierarchical count of pages with limits, as Linux's
 * mm/page_counter.c: the numbers a memory cgroup is made of, knowing nothing
 * of cgroups or VMs.
 *
 * Each counter has a parent (NULL at the top). A charge of n pages adds n to
 * the counter and to every ancestor, so a counter's usage is always the sum
 * charged to it and to its descendants; an uncharge is a negative charge.
 * Usage and peak are atomics, updated without locks by whichever thread
 * changes the pages (the sEPT's owner, under its VM's lock); limits are read
 * and written with relaxed atomics too, so a limit may be changed while
 * charges happen (the next check sees it).
 *
 * page_counter_try_charge() is how a limit holds: it charges only if no
 * counter on the path goes above max, atomically with respect to other
 * charges; page_counter_charge() always charges (usage can pass max through
 * it, and when a limit is lowered below the usage).
 *
 * Protection (memory.min, memory.low) follows Linux's effective_protection()
 * with recursive protection (the memory_recursiveprot mount option, which
 * systemd sets): each counter claims min(usage, setting) from its parent's
 * protection, kept in the parent's children_*_usage as charges change it;
 * when the children claim more than the parent has, each gets its claim's
 * share; protection they leave unclaimed goes to them in proportion to
 * their unprotected usage. Below the reclaim's target, a top-level counter
 * has what it set.
 *
 * Invariants: usage of a counter = its own charges + its children's usage;
 * peak >= usage at every moment a charge ended (memory.peak); a parent's
 * children_min_usage (children_low_usage) = the sum of its children's
 * min_usage (low_usage), each min(usage, min) (min(usage, low)) as of the
 * child's last charge or setting.
 */
#ifndef MM_PAGE_COUNTER_H
#define MM_PAGE_COUNTER_H

#include <stdint.h>

/* No limit: memory.max / memory.high read "max". */
#define PAGE_COUNTER_MAX UINT64_MAX

struct page_counter {
	uint64_t usage;	   /* pages, atomic */
	uint64_t peak;	   /* the largest usage seen, atomic */
	uint64_t max;	   /* memory.max, pages; PAGE_COUNTER_MAX: none */
	uint64_t high;	   /* memory.high, pages; PAGE_COUNTER_MAX: none */
	uint64_t min, low; /* memory.min, memory.low, pages; 0: none */
	/* protection claimed: min(usage, min), min(usage, low); and the sum of
	 * the children's claims */
	uint64_t min_usage, low_usage;
	uint64_t children_min_usage, children_low_usage;
	struct page_counter *parent;
};

/* A counter with no limits under `parent` (may be NULL). */
void page_counter_init(struct page_counter *c, struct page_counter *parent);

/* Adds delta pages (negative: removes) to c and its ancestors. c may be
 * NULL (nothing is counted). */
void page_counter_charge(struct page_counter *c, int64_t delta);

/* Charges n pages to c and its ancestors only if none goes above its max:
 * NULL, or the counter that refused (nothing is charged then), as Linux's
 * page_counter_try_charge(). Two racing charges never take a counter past
 * max together: each adds first and backs out if it went over. */
struct page_counter *page_counter_try_charge(struct page_counter *c, uint64_t n);

/* The first counter from c upwards whose usage plus `more` would exceed its
 * max, or NULL: the one to reclaim from (a check, charging nothing). */
struct page_counter *page_counter_over_max(struct page_counter *c, uint64_t more);

/* The largest excess of usage over memory.high on c's path to the top (0
 * if none is above high); *worst (if not NULL) gets that counter. */
uint64_t page_counter_high_excess(struct page_counter *c, struct page_counter **worst);

static inline uint64_t page_counter_read(const struct page_counter *c)
{
	return __atomic_load_n(&c->usage, __ATOMIC_RELAXED);
}
static inline uint64_t page_counter_peak(const struct page_counter *c)
{
	return __atomic_load_n(&c->peak, __ATOMIC_RELAXED);
}
static inline uint64_t page_counter_max(const struct page_counter *c)
{
	return __atomic_load_n(&c->max, __ATOMIC_RELAXED);
}
static inline uint64_t page_counter_high(const struct page_counter *c)
{
	return __atomic_load_n(&c->high, __ATOMIC_RELAXED);
}
static inline void page_counter_set_max(struct page_counter *c, uint64_t pages)
{
	__atomic_store_n(&c->max, pages, __ATOMIC_RELAXED);
}
static inline void page_counter_set_high(struct page_counter *c, uint64_t pages)
{
	__atomic_store_n(&c->high, pages, __ATOMIC_RELAXED);
}
/* c goes away: its usage leaves its ancestors, its claims its parent. */
void page_counter_release(struct page_counter *c);

/* memory.min, memory.low (pages, 0: none); the claims follow at once. */
void page_counter_set_min(struct page_counter *c, uint64_t pages);
void page_counter_set_low(struct page_counter *c, uint64_t pages);
static inline uint64_t page_counter_min(const struct page_counter *c)
{
	return __atomic_load_n(&c->min, __ATOMIC_RELAXED);
}
static inline uint64_t page_counter_low(const struct page_counter *c)
{
	return __atomic_load_n(&c->low, __ATOMIC_RELAXED);
}
/* The effective memory.min and memory.low of c when `root` (an ancestor of
 * c, or NULL: the top) is reclaimed from, as mem_cgroup_calculate_protection:
 * 0 for the root itself. */
void page_counter_protection(const struct page_counter *c, const struct page_counter *root,
			     uint64_t *emin, uint64_t *elow);

/* memory.peak: resets the peak to the current usage (a write to the file). */
static inline void page_counter_reset_peak(struct page_counter *c)
{
	__atomic_store_n(&c->peak, page_counter_read(c), __ATOMIC_RELAXED);
}

#endif
