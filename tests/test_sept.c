/*
 * test_sept.c - the software EPT (mm/sept.h).
 */
#include "mm/sept.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define SEPT_GFN_END (SEPT_MAX_GFN + 1)
#define ADDR_MAX ((1ull << 40) - 1)

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* ---- a model: open-addressing map gfn -> entry (0 = absent) ---- */

struct model {
	uint64_t *keys; /* gfn + 1; 0 = empty slot */
	uint64_t *vals;
	size_t mask;
};

static void model_init(struct model *m, size_t capacity)
{
	m->keys = calloc(capacity, sizeof(*m->keys));
	m->vals = calloc(capacity, sizeof(*m->vals));
	m->mask = capacity - 1;
	cr_assert(m->keys && m->vals);
}

static void model_free(struct model *m)
{
	free(m->keys);
	free(m->vals);
}

static uint64_t *model_slot(struct model *m, uint64_t key)
{
	size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 20) & m->mask;

	while (m->keys[i] && m->keys[i] != key + 1)
		i = (i + 1) & m->mask;
	if (!m->keys[i])
		m->keys[i] = key + 1;
	return &m->vals[i];
}

/* ---- recording walks ---- */

struct rec {
	uint64_t *gfns;
	sept_entry *entries;
	size_t n, cap;
	size_t stop_after; /* 0 = never */
	int stop_value;
};

static int rec_fn(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct rec *r = ctx;

	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->gfns = realloc(r->gfns, r->cap * sizeof(*r->gfns));
		r->entries = realloc(r->entries, r->cap * sizeof(*r->entries));
	}
	r->gfns[r->n] = gfn;
	r->entries[r->n] = *entry;
	r->n++;
	if (r->stop_after && r->n == r->stop_after)
		return r->stop_value;
	return 0;
}

static void rec_reset(struct rec *r)
{
	r->n = 0;
}

static void rec_free(struct rec *r)
{
	free(r->gfns);
	free(r->entries);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- entry helpers ---- */

Test(sept, entry_helpers_round_trip)
{
	uint64_t values[] = {0, 1, 2, 0x12345, 0xfffff, 1ull << 39, ADDR_MAX - 1, ADDR_MAX};
	uint64_t defined = SEPT_PRESENT | SEPT_WRITABLE | SEPT_USER | SEPT_ACCESSED | SEPT_DIRTY |
			   SEPT_HUGE | SEPT_WORKINGSET | SEPT_SHARED | SEPT_PINNED | SEPT_ZERO |
			   SEPT_SWAP;

	cr_assert_eq(defined & ~SEPT_FLAGS_MASK, 0);
	cr_assert_eq(__builtin_popcountll(defined), 11, "flags are distinct bits");
	/* The bits x86 gives a meaning to in a 4 KiB PTE that we must not set:
	 * PWT, PCD, PAT, and NX (reserved with EFER.NXE clear). */
	cr_assert_eq(defined & ((1ull << 3) | (1ull << 4) | (1ull << 7) | (1ull << 63)), 0);

	rng_state = 42;
	for (size_t k = 0; k < sizeof(values) / sizeof(values[0]) + 32; k++) {
		uint64_t v = k < sizeof(values) / sizeof(values[0]) ? values[k] : rng() & ADDR_MAX;

		/* Every combination of the low flag bits, with and without the
		 * high (software) ones. */
		for (uint64_t i = 0; i < (0x1000ull << 2); i++) {
			uint64_t flags = (i & 0xfff) | ((i & 0x1000) ? SEPT_WORKINGSET : 0) |
					 ((i & 0x2000) ? SEPT_HUGE : 0);
			sept_entry p = sept_make_present(v, flags);
			sept_entry s = sept_make_swap(v, flags);

			cr_assert_eq(sept_frame(p), v);
			cr_assert_eq(p & SEPT_FLAGS_MASK, (flags & ~SEPT_SWAP) | SEPT_PRESENT);
			cr_assert_eq(p & ~(SEPT_FLAGS_MASK | SEPT_ADDR_MASK), 0,
				     "bit 63 stays clear");
			cr_assert(sept_is_present(p));
			cr_assert(!sept_is_swap(p));

			cr_assert_eq(sept_swap_slot(s), v);
			cr_assert_eq(s & SEPT_FLAGS_MASK, (flags & ~SEPT_PRESENT) | SEPT_SWAP);
			cr_assert_eq(s & ~(SEPT_FLAGS_MASK | SEPT_ADDR_MASK), 0);
			cr_assert(sept_is_swap(s));
			cr_assert(!sept_is_present(s));
		}
	}
	/* Out-of-range frames are truncated, not spilled into other bits. */
	cr_assert_eq(sept_frame(sept_make_present((1ull << 40) | 5, 0)), 5);
	cr_assert_eq(sept_make_swap(~0ull, 0) >> 52, 0);
	cr_assert(!sept_is_present(0));
	cr_assert(!sept_is_swap(0));
	cr_assert(!sept_is_swap(SEPT_PINNED));
	cr_assert(!sept_is_present(SEPT_PINNED));
}

/* ---- basics and lazy allocation ---- */

Test(sept, init_and_destroy)
{
	struct sept s;

	cr_assert_eq(sept_init(&s), 0);
	cr_assert_eq(s.table_pages, 1, "the root is allocated by sept_init");
	cr_assert_eq(sept_table_bytes(&s), 4096);
	cr_assert_eq(s.present_pages, 0);
	cr_assert_eq(s.swap_entries, 0);
	cr_assert_eq(sept_lookup(&s, 0), 0);
	cr_assert_eq(sept_lookup(&s, SEPT_MAX_GFN), 0);
	cr_assert_null(sept_entry_slot(&s, 0, 0));
	cr_assert_null(sept_entry_slot(&s, SEPT_MAX_GFN, 0));
	cr_assert_null(sept_entry_slot(&s, 0x123456, 0));
	cr_assert_eq(sept_clear(&s, 77), 0);
	cr_assert_eq(s.table_pages, 1, "lookups and clears allocate nothing");
	sept_destroy(&s);
	cr_assert_null(s.root);
	sept_destroy(&s);
}

Test(sept, lazy_allocation_and_shared_tables)
{
	struct sept s;
	uint64_t gfn = 0x3456789ab; /* indices 104, 345, 452, 427 */

	cr_assert_eq(sept_init(&s), 0);
	/* Setting 0 is a clear: nothing allocated. */
	cr_assert_eq(sept_set(&s, gfn, 0), 0);
	cr_assert_eq(s.table_pages, 1);

	cr_assert_eq(sept_set(&s, gfn, sept_make_present(7, SEPT_WRITABLE)), 0);
	cr_assert_eq(s.table_pages, 4, "root + 3 tables below it");
	cr_assert_eq(sept_table_bytes(&s), 4 * 4096);
	cr_assert_eq(s.present_pages, 1);

	/* Same leaf table. */
	cr_assert_eq(sept_set(&s, gfn + 1, sept_make_present(8, 0)), 0);
	cr_assert_eq(sept_set(&s, gfn & ~511ull, sept_make_swap(3, 0)), 0);
	cr_assert_eq(sept_set(&s, gfn | 511, sept_make_swap(4, 0)), 0);
	cr_assert_eq(s.table_pages, 4);
	/* Same level-1 table, another leaf. */
	cr_assert_eq(sept_set(&s, gfn + 512, sept_make_present(9, 0)), 0);
	cr_assert_eq(s.table_pages, 5);
	/* Same level-2 table, another level-1 table. */
	cr_assert_eq(sept_set(&s, gfn ^ (1ull << 18), sept_make_present(10, 0)), 0);
	cr_assert_eq(s.table_pages, 7);
	/* Another level-2 table. */
	cr_assert_eq(sept_set(&s, gfn ^ (1ull << 27), sept_make_present(11, 0)), 0);
	cr_assert_eq(s.table_pages, 10);
	cr_assert_eq(s.present_pages, 5);
	cr_assert_eq(s.swap_entries, 2);

	/* Neighbours share a leaf: their slots are adjacent in one page-aligned table. */
	sept_entry *a = sept_entry_slot(&s, gfn, 0), *b = sept_entry_slot(&s, gfn + 1, 0);

	cr_assert_not_null(a);
	cr_assert_eq(b, a + 1);
	cr_assert_eq((uintptr_t)a % 4096, (gfn & 511) * sizeof(sept_entry));
	cr_assert_eq(sept_entry_slot(&s, gfn & ~511ull, 0), a - (gfn & 511));
	cr_assert_eq(*a, sept_make_present(7, SEPT_WRITABLE));

	/* Clearing keeps the tables. */
	cr_assert_eq(sept_clear(&s, gfn), sept_make_present(7, SEPT_WRITABLE));
	cr_assert_eq(sept_clear(&s, gfn), 0);
	cr_assert_eq(s.table_pages, 10);
	cr_assert_eq(s.present_pages, 4);
	cr_assert_eq(sept_entry_slot(&s, gfn, 0), a);
	cr_assert_eq(*a, 0);
	sept_destroy(&s);
}

Test(sept, entry_slot)
{
	struct sept s;
	uint64_t gfn = SEPT_MAX_GFN;

	cr_assert_eq(sept_init(&s), 0);
	cr_assert_null(sept_entry_slot(&s, gfn, 0));
	cr_assert_eq(s.table_pages, 1);

	sept_entry *slot = sept_entry_slot(&s, gfn, 1);

	cr_assert_not_null(slot);
	cr_assert_eq(*slot, 0);
	cr_assert_eq(s.table_pages, 4);
	cr_assert_eq(sept_entry_slot(&s, gfn, 0), slot);
	cr_assert_eq(sept_entry_slot(&s, gfn, 1), slot);
	cr_assert_eq(s.table_pages, 4);
	cr_assert_eq(s.present_pages, 0);
	/* A table below the root exists, but not the path to gfn 0. */
	cr_assert_null(sept_entry_slot(&s, 0, 0));

	/* Read-modify-write of flag bits through the slot. */
	cr_assert_eq(sept_set(&s, gfn, sept_make_present(99, SEPT_ACCESSED | SEPT_WRITABLE)), 0);
	*slot &= ~SEPT_ACCESSED;
	cr_assert_eq(sept_lookup(&s, gfn), sept_make_present(99, SEPT_WRITABLE));
	cr_assert_eq(s.present_pages, 1);
	sept_destroy(&s);
}

Test(sept, counters_follow_entry_kinds)
{
	struct sept s;

	cr_assert_eq(sept_init(&s), 0);
	cr_assert_eq(sept_set(&s, 5, sept_make_present(1, 0)), 0);
	cr_assert_eq(s.present_pages, 1);
	/* Replacing present with present. */
	cr_assert_eq(sept_set(&s, 5, sept_make_present(2, SEPT_DIRTY)), 0);
	cr_assert_eq(s.present_pages, 1);
	/* Present -> swap. */
	cr_assert_eq(sept_set(&s, 5, sept_make_swap(17, 0)), 0);
	cr_assert_eq(s.present_pages, 0);
	cr_assert_eq(s.swap_entries, 1);
	/* Swap -> flags only (neither). */
	cr_assert_eq(sept_set(&s, 5, SEPT_PINNED), 0);
	cr_assert_eq(s.present_pages, 0);
	cr_assert_eq(s.swap_entries, 0);
	cr_assert_eq(sept_lookup(&s, 5), SEPT_PINNED);
	/* Both bits: counted as present. */
	cr_assert_eq(sept_set(&s, 6, SEPT_PRESENT | SEPT_SWAP), 0);
	cr_assert_eq(s.present_pages, 1);
	cr_assert_eq(s.swap_entries, 0);
	/* Setting 0 clears. */
	cr_assert_eq(sept_set(&s, 6, 0), 0);
	cr_assert_eq(s.present_pages, 0);
	cr_assert_eq(sept_lookup(&s, 6), 0);
	cr_assert_eq(sept_clear(&s, 5), SEPT_PINNED);
	cr_assert_eq(s.present_pages + s.swap_entries, 0);
	sept_destroy(&s);
}

Test(sept, gfn_out_of_range)
{
	struct sept s;

	cr_assert_eq(sept_init(&s), 0);
	errno = 0;
	cr_assert_eq(sept_set(&s, SEPT_MAX_GFN + 1, sept_make_present(1, 0)), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(sept_set(&s, UINT64_MAX, sept_make_present(1, 0)), -1);
	cr_assert_null(sept_entry_slot(&s, SEPT_MAX_GFN + 1, 1));
	cr_assert_eq(sept_lookup(&s, SEPT_MAX_GFN + 1), 0);
	cr_assert_eq(sept_clear(&s, SEPT_MAX_GFN + 1), 0);
	cr_assert_eq(s.table_pages, 1);
	cr_assert_eq(s.present_pages, 0);
	/* Not aliased onto gfn 0. */
	cr_assert_null(sept_entry_slot(&s, 0, 0));
	sept_destroy(&s);
}

/* ---- random operations against the model ---- */

static sept_entry random_entry(void)
{
	switch (rng() % 4) {
	case 0:
	case 1:
		return sept_make_present(rng() & ADDR_MAX, rng());
	case 2:
		return sept_make_swap(rng() & ADDR_MAX, rng());
	default:
		return ((rng() & SEPT_FLAGS_MASK) & ~(SEPT_PRESENT | SEPT_SWAP)) | SEPT_PINNED;
	}
}

static void count_entry(sept_entry e, int64_t delta, uint64_t *present, uint64_t *swap)
{
	if (sept_is_present(e))
		*present += (uint64_t)delta;
	else if (sept_is_swap(e))
		*swap += (uint64_t)delta;
}

Test(sept, random_against_model)
{
	enum { WIDE = 800, OPS = 40000 };
	uint64_t wide[WIDE];
	uint64_t cluster[5] = {0, SEPT_MAX_GFN - 3000, 0x123456000, 0x7ffffe00, 0x800000000};
	struct model model, tables[3];
	uint64_t ntables = 1, present = 0, swap = 0;
	struct sept s;
	struct rec rec = {0};

	rng_state = 0xdeadbeef;
	for (int i = 0; i < WIDE; i++)
		wide[i] = rng() & SEPT_MAX_GFN;
	wide[0] = 0;
	wide[1] = SEPT_MAX_GFN;
	model_init(&model, 1 << 16);
	for (int l = 0; l < 3; l++)
		model_init(&tables[l], 1 << 13);
	cr_assert_eq(sept_init(&s), 0);

	for (int op = 0; op < OPS; op++) {
		uint64_t gfn;

		if (rng() % 3 == 0)
			gfn = wide[rng() % WIDE];
		else
			gfn = cluster[rng() % 5] + rng() % 3000;
		cr_assert_leq(gfn, SEPT_MAX_GFN);

		uint64_t *m = model_slot(&model, gfn);
		unsigned what = rng() % 8;

		if (what < 4) {
			sept_entry e = what == 0 ? 0 : random_entry();

			cr_assert_eq(sept_set(&s, gfn, e), 0);
			count_entry(*m, -1, &present, &swap);
			count_entry(e, 1, &present, &swap);
			*m = e;
			if (e) {
				/* Tables are never freed: remember every path created. */
				for (int l = 0; l < 3; l++) {
					uint64_t *t = model_slot(&tables[l], gfn >> (9 * (l + 1)));

					if (!*t) {
						*t = 1;
						ntables++;
					}
				}
			}
		} else if (what < 6) {
			cr_assert_eq(sept_clear(&s, gfn), *m, "clear gfn %#llx",
				     (unsigned long long)gfn);
			count_entry(*m, -1, &present, &swap);
			*m = 0;
		} else {
			cr_assert_eq(sept_lookup(&s, gfn), *m, "lookup gfn %#llx",
				     (unsigned long long)gfn);
		}
		cr_assert_eq(s.present_pages, present);
		cr_assert_eq(s.swap_entries, swap);
		cr_assert_eq(s.table_pages, ntables);
	}

	/* Every gfn the model knows, and untouched ones. */
	size_t nkeys = 0;
	uint64_t *keys = malloc((model.mask + 1) * sizeof(*keys));

	for (size_t i = 0; i <= model.mask; i++) {
		if (!model.keys[i])
			continue;
		cr_assert_eq(sept_lookup(&s, model.keys[i] - 1), model.vals[i]);
		if (model.vals[i])
			keys[nkeys++] = model.keys[i] - 1;
	}
	for (int i = 0; i < 10000; i++) {
		uint64_t gfn = rng() & SEPT_MAX_GFN;

		cr_assert_eq(sept_lookup(&s, gfn), *model_slot(&model, gfn));
	}

	/* The full walk visits exactly the non-zero entries, in order, and
	 * every table exactly once. */
	qsort(keys, nkeys, sizeof(*keys), cmp_u64);

	uint64_t before = s.walk_tables;

	cr_assert_eq(sept_walk(&s, 0, SEPT_GFN_END, rec_fn, &rec), 0);
	cr_assert_eq(s.walk_tables - before, s.table_pages);
	cr_assert_eq(rec.n, nkeys);
	for (size_t i = 0; i < nkeys; i++) {
		cr_assert_eq(rec.gfns[i], keys[i]);
		cr_assert_eq(rec.entries[i], *model_slot(&model, keys[i]));
	}

	free(keys);
	rec_free(&rec);
	model_free(&model);
	for (int l = 0; l < 3; l++)
		model_free(&tables[l]);
	sept_destroy(&s);
}

/* ---- walks ---- */

static const uint64_t edge_gfns[] = {
	0,
	1,
	2,
	255,
	510,
	511,
	512,
	513,
	1023,
	1024,
	(1ull << 18) - 1,
	1ull << 18,
	(1ull << 27) - 1,
	1ull << 27,
	(1ull << 27) + 1,
	0x123456789,
	SEPT_MAX_GFN - 512,
	SEPT_MAX_GFN - 511,
	SEPT_MAX_GFN - 1,
	SEPT_MAX_GFN,
};
#define N_EDGE (sizeof(edge_gfns) / sizeof(edge_gfns[0]))

Test(sept, walk_range_boundaries)
{
	struct sept s;
	struct rec rec = {0};
	uint64_t bounds[3 * N_EDGE + 4];
	size_t nb = 0;

	cr_assert_eq(sept_init(&s), 0);
	for (size_t i = 0; i < N_EDGE; i++) {
		cr_assert_eq(sept_set(&s, edge_gfns[i], sept_make_present(i + 1, 0)), 0);
		bounds[nb++] = edge_gfns[i];
		bounds[nb++] = edge_gfns[i] + 1;
		if (edge_gfns[i])
			bounds[nb++] = edge_gfns[i] - 1;
	}
	bounds[nb++] = SEPT_GFN_END;
	bounds[nb++] = SEPT_GFN_END + 1;
	bounds[nb++] = UINT64_MAX;
	bounds[nb++] = 700; /* mid-table, no entry near */

	for (size_t a = 0; a < nb; a++) {
		for (size_t b = 0; b < nb; b++) {
			uint64_t first = bounds[a], end = bounds[b];
			size_t expect = 0;

			rec_reset(&rec);
			cr_assert_eq(sept_walk(&s, first, end, rec_fn, &rec), 0);
			for (size_t i = 0; i < N_EDGE; i++) {
				if (edge_gfns[i] < first || edge_gfns[i] >= end)
					continue;
				cr_assert_lt(expect, rec.n, "[%#llx, %#llx) missed gfn %#llx",
					     (unsigned long long)first, (unsigned long long)end,
					     (unsigned long long)edge_gfns[i]);
				cr_assert_eq(rec.gfns[expect], edge_gfns[i]);
				cr_assert_eq(rec.entries[expect], sept_make_present(i + 1, 0));
				expect++;
			}
			cr_assert_eq(rec.n, expect, "[%#llx, %#llx): %zu calls, expected %zu",
				     (unsigned long long)first, (unsigned long long)end, rec.n,
				     expect);
		}
	}
	rec_free(&rec);
	sept_destroy(&s);
}

Test(sept, walk_skips_absent_tables)
{
	struct sept s;
	struct rec rec = {0};
	uint64_t before;

	cr_assert_eq(sept_init(&s), 0);

	/* Empty: only the root is looked at. */
	before = s.walk_tables;
	cr_assert_eq(sept_walk(&s, 0, SEPT_GFN_END, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 0);
	cr_assert_eq(s.walk_tables - before, 1);

	/* Three entries under three different root slots: 1 + 3 * 3 tables. */
	cr_assert_eq(sept_set(&s, 5, sept_make_present(1, 0)), 0);
	cr_assert_eq(sept_set(&s, 0x123456789, sept_make_swap(2, 0)), 0);
	cr_assert_eq(sept_set(&s, SEPT_MAX_GFN, sept_make_present(3, 0)), 0);
	cr_assert_eq(s.table_pages, 10);

	before = s.walk_tables;
	cr_assert_eq(sept_walk(&s, 0, SEPT_GFN_END, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 3);
	cr_assert_eq(rec.gfns[0], 5);
	cr_assert_eq(rec.gfns[1], 0x123456789);
	cr_assert_eq(rec.gfns[2], SEPT_MAX_GFN);
	cr_assert_eq(s.walk_tables - before, 10, "each existing table exactly once");

	/* "To the end" with an oversized end. */
	rec_reset(&rec);
	before = s.walk_tables;
	cr_assert_eq(sept_walk(&s, 0, UINT64_MAX, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 3);
	cr_assert_eq(s.walk_tables - before, 10);

	/* A range inside one path: root + its 3 tables. */
	rec_reset(&rec);
	before = s.walk_tables;
	cr_assert_eq(sept_walk(&s, 0x123456700, 0x123456800, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 1);
	cr_assert_eq(s.walk_tables - before, 4);

	/* A range with no tables at all below the root. */
	rec_reset(&rec);
	before = s.walk_tables;
	cr_assert_eq(sept_walk(&s, 1ull << 27, 0x120000000, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 0);
	cr_assert_eq(s.walk_tables - before, 1);

	/* Empty and inverted ranges look at nothing. */
	before = s.walk_tables;
	cr_assert_eq(sept_walk(&s, 5, 5, rec_fn, &rec), 0);
	cr_assert_eq(sept_walk(&s, 6, 5, rec_fn, &rec), 0);
	cr_assert_eq(sept_walk(&s, SEPT_GFN_END, UINT64_MAX, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 0);
	cr_assert_eq(s.walk_tables - before, 0);

	/* Cleared entries are not visited, though their tables stay. */
	sept_clear(&s, 0x123456789);
	before = s.walk_tables;
	cr_assert_eq(sept_walk(&s, 0, SEPT_GFN_END, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 2);
	cr_assert_eq(s.walk_tables - before, 10);
	rec_free(&rec);
	sept_destroy(&s);
}

Test(sept, walk_sparse_many)
{
	struct sept s;
	struct rec rec = {0};
	uint64_t gfns[64];

	cr_assert_eq(sept_init(&s), 0);
	rng_state = 7;
	for (int i = 0; i < 64; i++) {
		gfns[i] = rng() & SEPT_MAX_GFN;
		cr_assert_eq(sept_set(&s, gfns[i], sept_make_present(i, 0)), 0);
	}
	qsort(gfns, 64, sizeof(gfns[0]), cmp_u64);

	uint64_t before = s.walk_tables;

	cr_assert_eq(sept_walk(&s, 0, SEPT_GFN_END, rec_fn, &rec), 0);
	cr_assert_eq(rec.n, 64);
	for (int i = 0; i < 64; i++)
		cr_assert_eq(rec.gfns[i], gfns[i]);
	cr_assert_eq(s.walk_tables - before, s.table_pages);
	cr_assert_leq(s.table_pages, 1 + 3 * 64);
	rec_free(&rec);
	sept_destroy(&s);
}

Test(sept, walk_early_stop)
{
	struct sept s;
	struct rec rec = {.stop_after = 3, .stop_value = 42};

	cr_assert_eq(sept_init(&s), 0);
	for (uint64_t i = 0; i < 10; i++)
		cr_assert_eq(sept_set(&s, i * 1000, sept_make_present(i, 0)), 0);
	cr_assert_eq(sept_walk(&s, 0, SEPT_GFN_END, rec_fn, &rec), 42);
	cr_assert_eq(rec.n, 3);
	cr_assert_eq(rec.gfns[2], 2000);

	rec_reset(&rec);
	rec.stop_after = 1;
	rec.stop_value = -5;
	cr_assert_eq(sept_walk(&s, 4500, 9001, rec_fn, &rec), -5);
	cr_assert_eq(rec.n, 1);
	cr_assert_eq(rec.gfns[0], 5000);
	rec_free(&rec);
	sept_destroy(&s);
}

static int age_fn(void *ctx, uint64_t gfn, sept_entry *entry)
{
	uint64_t *calls = ctx;

	(*calls)++;
	if (gfn % 2)
		*entry &= ~SEPT_ACCESSED;
	else
		*entry |= SEPT_DIRTY;
	return 0;
}

Test(sept, walk_changes_flags_in_place)
{
	struct sept s;
	uint64_t calls = 0;

	cr_assert_eq(sept_init(&s), 0);
	for (uint64_t gfn = 100; gfn < 1100; gfn++)
		cr_assert_eq(sept_set(&s, gfn, sept_make_present(gfn, SEPT_ACCESSED)), 0);
	cr_assert_eq(sept_set(&s, 2000, sept_make_swap(5, SEPT_ACCESSED)), 0);

	cr_assert_eq(sept_walk(&s, 0, SEPT_GFN_END, age_fn, &calls), 0);
	cr_assert_eq(calls, 1001);
	for (uint64_t gfn = 100; gfn < 1100; gfn++) {
		sept_entry want = gfn % 2 ? sept_make_present(gfn, 0)
					  : sept_make_present(gfn, SEPT_ACCESSED | SEPT_DIRTY);

		cr_assert_eq(sept_lookup(&s, gfn), want);
	}
	cr_assert_eq(sept_lookup(&s, 2000), sept_make_swap(5, SEPT_ACCESSED | SEPT_DIRTY));
	cr_assert_eq(s.present_pages, 1000);
	cr_assert_eq(s.swap_entries, 1);
	sept_destroy(&s);
}

static int unmap_fn(void *ctx, uint64_t gfn, sept_entry *entry)
{
	(void)ctx;
	(void)gfn;
	*entry &= ~SEPT_PRESENT;
	return 0;
}

Test(sept, walk_callback_changing_state_aborts, .signal = SIGABRT)
{
	struct sept s;

	cr_assert_eq(sept_init(&s), 0);
	cr_assert_eq(sept_set(&s, 3, sept_make_present(1, 0)), 0);
	sept_walk(&s, 0, SEPT_GFN_END, unmap_fn, NULL);
}

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#ifndef TEST_ASAN /* the sanitizer's shadow needs the address space */
/* With the address space capped, sept_set fails cleanly with ENOMEM. */
Test(sept, out_of_memory)
{
	struct sept s;
	struct rlimit old, lim;
	unsigned long vm_pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	uint64_t ok = 0;
	int ret = 0, err = 0;

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%lu", &vm_pages), 1);
	fclose(f);
	cr_assert_eq(sept_init(&s), 0);
	cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
	lim = old;
	lim.rlim_cur = vm_pages * 4096ul + (16ul << 20);
	cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);

	/* Each gfn under a new root slot needs 3 tables; 512 * 3 * 4 KiB = 6 MiB. */
	for (uint64_t i = 0; i < (1u << 15); i++) {
		uint64_t gfn = (i % 512) << 27 | (i / 512) << 18;

		ret = sept_set(&s, gfn, sept_make_present(i, 0));
		if (ret) {
			err = errno;
			break;
		}
		ok++;
	}
	cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);

	cr_assert_eq(ret, -1, "the limit was never hit");
	cr_assert_eq(err, ENOMEM);
	cr_assert_eq(s.present_pages, ok);
	for (uint64_t i = 0; i < ok; i++) {
		uint64_t gfn = (i % 512) << 27 | (i / 512) << 18;

		cr_assert_eq(sept_lookup(&s, gfn), sept_make_present(i, 0));
	}
	cr_assert_eq(sept_lookup(&s, (ok % 512) << 27 | (ok / 512) << 18), 0);
	sept_destroy(&s);
}
#endif
