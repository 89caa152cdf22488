/*
 * pattern_content.h - the content function of the `pattern` workload.
 *
 * Every page of the pattern buffer has a content that is a pure function of
 * (page index, seed, round). The guest uses it to fill and to verify; the host
 * uses the same function to compute the ideal sharing exactly (tests, KSM
 * benchmark). It is header-only and freestanding so both sides compile it.
 *
 * Classes. Pages are grouped in aligned runs of `run_pages` pages (default 1).
 * A run's class is chosen by a hash of the run index alone, so it is the same
 * in every VM:
 *   zero     - all bytes zero;
 *   shared   - content depends only on the page index: identical across VMs;
 *   unique   - content depends on (seed, page index): unique to the VM when
 *              seeds differ (the default seed is the VM index).
 * The class thresholds are percentages: hash % 100 < zero_pct is zero, then
 * shared_pct, the rest unique. The realised counts are close to, not exactly,
 * the percentages; pattern_count() gives them exactly.
 *
 * Volatile pages. A page is volatile if an independent hash of its index is
 * below volatile_pct. In round 0 it holds its class content; in every later
 * round r it is rewritten with content keyed by (seed, page, r): unique, and
 * different each round, so it can never be merged while it changes.
 *
 * A content key of 0 means an all-zero page; any other key seeds a
 * xorshift64* stream that fills the page's 512 words.
 */
#ifndef PATTERN_CONTENT_H
#define PATTERN_CONTENT_H

#include <stdint.h>

#define PATTERN_WORDS_PER_PAGE 512

struct pattern_params {
	uint32_t zero_pct;
	uint32_t shared_pct;
	uint32_t volatile_pct;
	uint32_t run_pages; /* >= 1 */
	uint64_t seed;
};

enum pattern_class {
	PATTERN_ZERO = 0,
	PATTERN_SHARED = 1,
	PATTERN_UNIQUE = 2,
};

/* splitmix64's finaliser: a good 64-bit mixing function. */
static inline uint64_t pattern_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

#define PATTERN_SALT_CLASS 0x636c617373000000ull
#define PATTERN_SALT_VOLATILE 0x766f6c6174696c65ull
#define PATTERN_SALT_SHARED 0x7368617265640000ull
#define PATTERN_SALT_UNIQUE 0x756e697175650000ull

static inline enum pattern_class pattern_class_of(const struct pattern_params *p, uint64_t page)
{
	uint64_t run = page / (p->run_pages ? p->run_pages : 1);
	uint64_t h = pattern_mix(run ^ PATTERN_SALT_CLASS) % 100;
	if (h < p->zero_pct)
		return PATTERN_ZERO;
	if (h < (uint64_t)p->zero_pct + p->shared_pct)
		return PATTERN_SHARED;
	return PATTERN_UNIQUE;
}

static inline int pattern_is_volatile(const struct pattern_params *p, uint64_t page)
{
	return pattern_mix(page ^ PATTERN_SALT_VOLATILE) % 100 < p->volatile_pct;
}

/* The content key of `page` after `round` rounds of rewriting; 0 = zero page. */
static inline uint64_t pattern_page_key(const struct pattern_params *p, uint64_t page,
					uint64_t round)
{
	if (round > 0 && pattern_is_volatile(p, page))
		return pattern_mix(pattern_mix(p->seed ^ PATTERN_SALT_UNIQUE) ^
				   pattern_mix(page + (round << 40))) |
		       1;
	switch (pattern_class_of(p, page)) {
	case PATTERN_ZERO:
		return 0;
	case PATTERN_SHARED:
		return pattern_mix(page ^ PATTERN_SALT_SHARED) | 1;
	default:
		return pattern_mix(pattern_mix(p->seed ^ PATTERN_SALT_UNIQUE) ^ page) | 1;
	}
}

static inline uint64_t pattern_word_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static inline void pattern_fill_page(uint64_t *words, uint64_t key)
{
	uint64_t state = key;
	for (int i = 0; i < PATTERN_WORDS_PER_PAGE; i++)
		words[i] = key ? pattern_word_next(&state) : 0;
}

/* Returns the index of the first word that differs, or -1 if the page is intact. */
static inline int pattern_check_page(const uint64_t *words, uint64_t key, uint64_t *expected)
{
	uint64_t state = key;
	for (int i = 0; i < PATTERN_WORDS_PER_PAGE; i++) {
		uint64_t want = key ? pattern_word_next(&state) : 0;
		if (words[i] != want) {
			*expected = want;
			return i;
		}
	}
	return -1;
}

/* Exact class counts of the first `pages` pages (round 0 content). */
struct pattern_counts {
	uint64_t zero, shared, unique, volatile_pages;
	/* pages that are neither volatile nor unique, by class */
	uint64_t stable_zero, stable_shared;
};

static inline void pattern_count(const struct pattern_params *p, uint64_t pages,
				 struct pattern_counts *c)
{
	c->zero = c->shared = c->unique = c->volatile_pages = 0;
	c->stable_zero = c->stable_shared = 0;
	for (uint64_t i = 0; i < pages; i++) {
		enum pattern_class k = pattern_class_of(p, i);
		int v = pattern_is_volatile(p, i);
		c->volatile_pages += v;
		if (k == PATTERN_ZERO) {
			c->zero++;
			c->stable_zero += !v;
		} else if (k == PATTERN_SHARED) {
			c->shared++;
			c->stable_shared += !v;
		} else {
			c->unique++;
		}
	}
}

#endif
