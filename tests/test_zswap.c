/* test_zswap.c - the LZ4-compressed in-memory swap cache. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/zswap.h"

#define PAGE ZSWAP_PAGE_SIZE

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

/* Compressible: text-like words from a small vocabulary, seeded per page. */
static void text_page(uint8_t *page, uint64_t seed)
{
	static const char *const words[] = {"guest ",	"page ",    "frame ", "swap ", "slot ",
					    "cluster ", "reclaim ", "fault ", "ring "};
	uint64_t rng = seed * 2 + 1;
	size_t n = 0;

	while (n < PAGE) {
		const char *w = words[rng_next(&rng) % 9];
		size_t len = strlen(w);

		if (len > PAGE - n)
			len = PAGE - n;
		memcpy(page + n, w, len);
		n += len;
	}
}

static void random_page(uint8_t *page, uint64_t seed)
{
	uint64_t rng = seed * 2 + 1;

	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t x = rng_next(&rng);
		memcpy(page + i, &x, 8);
	}
}

Test(zswap, compressible_pages_round_trip)
{
	struct zswap *z;
	uint8_t page[PAGE], out[PAGE];
	struct zswap_stats s;

	cr_assert_eq(zswap_create(&z, 16 << 20), 0);
	for (uint64_t slot = 0; slot < 500; slot++) {
		text_page(page, slot);
		cr_assert_eq(zswap_store(z, slot, page, 0), 0, "slot %lu rejected", slot);
	}
	memset(page, 0, PAGE);
	cr_assert_eq(zswap_store(z, 1000, page, 0), 0, "a zero page must compress");
	for (uint64_t slot = 0; slot < 500; slot++) {
		text_page(page, slot);
		cr_assert_eq(zswap_load(z, slot, out, 0), 0);
		cr_assert_arr_eq(out, page, PAGE, "slot %lu differs", slot);
		/* Loading keeps the entry. */
		memset(out, 0, PAGE);
		cr_assert_eq(zswap_load(z, slot, out, 0), 0);
		cr_assert_arr_eq(out, page, PAGE);
	}
	cr_assert_eq(zswap_load(z, 1000, out, 0), 0);
	memset(page, 0, PAGE);
	cr_assert_arr_eq(out, page, PAGE);
	cr_assert_eq(zswap_load(z, 12345, out, 0), -1, "absent slot");

	zswap_get_stats(z, &s);
	cr_assert_eq(s.stored_pages, 501);
	cr_assert_eq(s.stores, 501);
	cr_assert_eq(s.loads, 1001);
	cr_assert_eq(s.rejects, 0);
	cr_assert_eq(s.max_bytes, 16 << 20);
	cr_assert_gt(s.pool_bytes, 0);
	cr_assert_lt(s.pool_bytes, 501ull * PAGE / 2, "text should compress to under half");
	zswap_destroy(z);
}

Test(zswap, incompressible_pages_are_rejected)
{
	struct zswap *z;
	uint8_t page[PAGE], out[PAGE];
	struct zswap_stats s;

	cr_assert_eq(zswap_create(&z, 16 << 20), 0);
	for (uint64_t slot = 0; slot < 20; slot++) {
		random_page(page, slot);
		cr_assert_eq(zswap_store(z, slot, page, 0), -1);
		cr_assert_eq(zswap_load(z, slot, out, 0), -1);
	}
	/* Half random, half zero: compresses to about half, under the 3/4 threshold. */
	random_page(page, 99);
	memset(page + PAGE / 2, 0, PAGE / 2);
	cr_assert_eq(zswap_store(z, 99, page, 0), 0);
	/* Seven eighths random: over the threshold. */
	random_page(page, 98);
	memset(page + PAGE * 7 / 8, 0, PAGE / 8);
	cr_assert_eq(zswap_store(z, 98, page, 0), -1);

	zswap_get_stats(z, &s);
	cr_assert_eq(s.rejects, 21);
	cr_assert_eq(s.reject_compress_poor, 21);
	cr_assert_eq(s.pool_limit_hit, 0);
	cr_assert_eq(s.stored_pages, 1);
	zswap_destroy(z);
}

Test(zswap, store_replaces_and_failed_store_drops_stale_entry)
{
	struct zswap *z;
	uint8_t page[PAGE], out[PAGE];
	struct zswap_stats s;

	cr_assert_eq(zswap_create(&z, 16 << 20), 0);
	text_page(page, 1);
	cr_assert_eq(zswap_store(z, 7, page, 0), 0);
	text_page(page, 2);
	cr_assert_eq(zswap_store(z, 7, page, 0), 0);
	cr_assert_eq(zswap_load(z, 7, out, 0), 0);
	cr_assert_arr_eq(out, page, PAGE, "the newer store wins");
	zswap_get_stats(z, &s);
	cr_assert_eq(s.stored_pages, 1);

	random_page(page, 3);
	cr_assert_eq(zswap_store(z, 7, page, 0), -1);
	cr_assert_eq(zswap_load(z, 7, out, 0), -1, "a stale entry survived a failed store");
	zswap_get_stats(z, &s);
	cr_assert_eq(s.stored_pages, 0);
	cr_assert_eq(s.pool_bytes, 0);
	zswap_destroy(z);
}

Test(zswap, byte_limit)
{
	const uint64_t limit = 64 << 10;
	struct zswap *z;
	uint8_t page[PAGE], out[PAGE];
	struct zswap_stats s;
	uint64_t stored = 0, slot;

	cr_assert_eq(zswap_create(&z, limit), 0);
	for (slot = 0; slot < 10000; slot++) {
		text_page(page, slot);
		if (zswap_store(z, slot, page, 0))
			break;
		stored++;
		zswap_get_stats(z, &s);
		cr_assert_leq(s.pool_bytes, limit);
	}
	cr_assert_lt(slot, 10000, "the limit never hit");
	cr_assert_gt(stored, 20);
	zswap_get_stats(z, &s);
	cr_assert_eq(s.stored_pages, stored);
	cr_assert_eq(s.pool_limit_hit, 1);
	cr_assert_eq(s.reject_compress_poor, 0);
	/* Nothing about the rejected page was kept. */
	cr_assert_eq(zswap_load(z, slot, out, 0), -1);
	/* Still full... */
	text_page(page, slot);
	cr_assert_eq(zswap_store(z, slot, page, 0), -1);
	/* ...until entries are invalidated. */
	zswap_invalidate(z, 0);
	zswap_invalidate(z, 1);
	zswap_invalidate(z, 2);
	zswap_invalidate(z, 99999); /* absent: no effect */
	cr_assert_eq(zswap_load(z, 1, out, 0), -1);
	cr_assert_eq(zswap_store(z, slot, page, 0), 0);
	cr_assert_eq(zswap_load(z, slot, out, 0), 0);
	cr_assert_arr_eq(out, page, PAGE);
	zswap_get_stats(z, &s);
	cr_assert_eq(s.stored_pages, stored - 2);
	cr_assert_leq(s.pool_bytes, limit);
	zswap_destroy(z);
}

Test(zswap, zero_limit_stores_nothing)
{
	struct zswap *z;
	uint8_t page[PAGE] = {0};

	cr_assert_eq(zswap_create(&z, 0), 0);
	cr_assert_eq(zswap_store(z, 0, page, 0), -1);
	zswap_destroy(z);
}

Test(zswap, corrupted_entry_is_reported)
{
	struct zswap *z;
	uint8_t page[PAGE], out[PAGE], zero[PAGE] = {0};
	struct zswap_stats s;

	cr_assert_eq(zswap_create(&z, 1 << 20), 0);
	text_page(page, 5);
	cr_assert_eq(zswap_store(z, 5, page, 0), 0);
	text_page(page, 6);
	cr_assert_eq(zswap_store(z, 6, page, 0), 0);
	cr_assert_eq(zswap_test_corrupt(z, 5), 0);
	cr_assert_eq(zswap_test_corrupt(z, 4), -1);
	memset(out, 0xa5, PAGE);
	cr_assert_eq(zswap_load(z, 5, out, 0), -EBADMSG);
	cr_assert_arr_eq(out, zero, PAGE, "corrupt data reached the caller");
	/* The neighbour is fine. */
	cr_assert_eq(zswap_load(z, 6, out, 0), 0);
	cr_assert_arr_eq(out, page, PAGE);
	zswap_get_stats(z, &s);
	cr_assert_eq(s.load_errors, 1);
	cr_assert_eq(s.loads, 1);
	zswap_destroy(z);
}

/* Entries are checked under the owner tag the reader expects: a slot loaded
 * as another owner's page fails, as a corrupt one does. */
Test(zswap, an_entry_loaded_as_another_owners_page_fails)
{
	struct zswap *z;
	uint8_t page[PAGE], out[PAGE], zero[PAGE] = {0};

	cr_assert_eq(zswap_create(&z, 1 << 20), 0);
	text_page(page, 3);
	cr_assert_eq(zswap_store(z, 3, page, 0x2000000040ull), 0);
	memset(out, 0xa5, PAGE);
	cr_assert_eq(zswap_load(z, 3, out, 0x2000000041ull), -EBADMSG);
	cr_assert_arr_eq(out, zero, PAGE, "another owner's page reached the caller");
	cr_assert_eq(zswap_load(z, 3, out, 0), -EBADMSG);
	cr_assert_eq(zswap_load(z, 3, out, 0x2000000040ull), 0);
	cr_assert_arr_eq(out, page, PAGE);
	zswap_destroy(z);
}

/* Grows its table past many doublings, stores from several threads. */
struct worker {
	struct zswap *z;
	unsigned id;
	unsigned bad;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	uint8_t page[PAGE], out[PAGE];

	for (uint64_t i = 0; i < 3000; i++) {
		uint64_t slot = i * 4 + w->id;

		text_page(page, slot);
		if (zswap_store(w->z, slot, page, 0))
			w->bad++;
	}
	for (uint64_t i = 0; i < 3000; i++) {
		uint64_t slot = i * 4 + w->id;

		text_page(page, slot);
		if (zswap_load(w->z, slot, out, 0) || memcmp(out, page, PAGE))
			w->bad++;
		if (i % 2)
			zswap_invalidate(w->z, slot);
	}
	return NULL;
}

Test(zswap, concurrent_threads)
{
	struct zswap *z;
	struct worker w[4];
	pthread_t t[4];
	struct zswap_stats s;

	cr_assert_eq(zswap_create(&z, 256 << 20), 0);
	for (unsigned i = 0; i < 4; i++) {
		w[i] = (struct worker){.z = z, .id = i};
		cr_assert_eq(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].bad, 0);
	}
	zswap_get_stats(z, &s);
	cr_assert_eq(s.stored_pages, 4 * 1500);
	cr_assert_eq(s.stores, 4 * 3000);
	zswap_destroy(z);
}
