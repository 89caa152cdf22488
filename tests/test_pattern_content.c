/* test_pattern_content.c - the pattern workload's content function, which
 * the guest and the host both rely on for exact sharing expectations. */
#include <criterion/criterion.h>

#include "pattern_content.h"

static const struct pattern_params mix = {
	.zero_pct = 25, .shared_pct = 50, .volatile_pct = 10, .run_pages = 1, .seed = 7};

Test(pattern_content, classes_follow_the_percentages)
{
	struct pattern_counts c;
	uint64_t pages = 200000;
	pattern_count(&mix, pages, &c);
	cr_assert_eq(c.zero + c.shared + c.unique, pages);
	/* Within 1% of the requested shares. */
	cr_assert(c.zero > pages * 24 / 100 && c.zero < pages * 26 / 100, "zero %lu", c.zero);
	cr_assert(c.shared > pages * 49 / 100 && c.shared < pages * 51 / 100, "shared %lu",
		  c.shared);
	cr_assert(c.volatile_pages > pages * 9 / 100 && c.volatile_pages < pages * 11 / 100);
	cr_assert_leq(c.stable_zero, c.zero);
	cr_assert_leq(c.stable_shared, c.shared);
}

Test(pattern_content, keys_by_class)
{
	struct pattern_params other = mix;
	other.seed = 8;
	for (uint64_t i = 0; i < 5000; i++) {
		uint64_t k = pattern_page_key(&mix, i, 0);
		switch (pattern_class_of(&mix, i)) {
		case PATTERN_ZERO:
			cr_assert_eq(k, 0);
			break;
		case PATTERN_SHARED:
			cr_assert_neq(k, 0);
			cr_assert_eq(k, pattern_page_key(&other, i, 0), "shared ignores the seed");
			break;
		case PATTERN_UNIQUE:
			cr_assert_neq(k, 0);
			cr_assert_neq(k, pattern_page_key(&other, i, 0), "unique depends on seed");
			break;
		}
		/* Volatile pages change every round and stop being shareable. */
		if (pattern_is_volatile(&mix, i)) {
			cr_assert_neq(pattern_page_key(&mix, i, 1), pattern_page_key(&mix, i, 2));
			cr_assert_neq(pattern_page_key(&mix, i, 1), pattern_page_key(&other, i, 1));
		} else {
			cr_assert_eq(pattern_page_key(&mix, i, 3), k);
		}
	}
}

Test(pattern_content, runs_share_a_class)
{
	struct pattern_params p = mix;
	p.run_pages = 16;
	for (uint64_t run = 0; run < 500; run++)
		for (uint64_t i = 1; i < 16; i++)
			cr_assert_eq(pattern_class_of(&p, run * 16 + i),
				     pattern_class_of(&p, run * 16));
}

Test(pattern_content, fill_and_check)
{
	uint64_t page[PATTERN_WORDS_PER_PAGE], want;
	pattern_fill_page(page, 0);
	for (int i = 0; i < PATTERN_WORDS_PER_PAGE; i++)
		cr_assert_eq(page[i], 0);
	cr_assert_eq(pattern_check_page(page, 0, &want), -1);

	pattern_fill_page(page, 12345);
	cr_assert_eq(pattern_check_page(page, 12345, &want), -1);
	cr_assert_neq(pattern_check_page(page, 12347, &want), -1);
	int distinct = 0;
	for (int i = 1; i < PATTERN_WORDS_PER_PAGE; i++)
		distinct += page[i] != page[i - 1];
	cr_assert_gt(distinct, 500, "a non-zero page is not constant");
	page[300] ^= 1;
	cr_assert_eq(pattern_check_page(page, 12345, &want), 300);
}
