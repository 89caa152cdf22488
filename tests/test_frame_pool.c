/* test_frame_pool.c - the memfd frame pool: allocation, zeroing by hole
 * punching, host memory given back, exact usage counters. */
#include <criterion/criterion.h>
#include <string.h>

#include "mm/frame_pool.h"

static struct frame_pool pool;

static void setup(void)
{
	char err[256];
	cr_assert_eq(frame_pool_create(&pool, 16ull << 20, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	frame_pool_destroy(&pool);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

Test(frame_pool, freed_frames_come_back_zeroed, .init = setup, .fini = teardown)
{
	/* Dirty many frames, free them, and check every frame handed out
	 * afterwards reads as zeroes (the same frames are reused). */
	int64_t frames[256];
	for (int i = 0; i < 256; i++) {
		frames[i] = frame_pool_alloc(&pool, 0);
		cr_assert_geq(frames[i], 0);
		memset(frame_pool_address(&pool, (uint64_t)frames[i]), 0xa5, FRAME_SIZE);
	}
	for (int i = 0; i < 256; i++)
		frame_pool_free(&pool, (uint64_t)frames[i], 1);
	int64_t block = frame_pool_alloc(&pool, 4);
	cr_assert_geq(block, 0);
	cr_assert(all_zero(frame_pool_address(&pool, (uint64_t)block), 16 * FRAME_SIZE));
	for (int i = 0; i < 256; i++) {
		int64_t f = frame_pool_alloc(&pool, 0);
		cr_assert_geq(f, 0);
		cr_assert(all_zero(frame_pool_address(&pool, (uint64_t)f), FRAME_SIZE),
			  "frame %lld kept old data", (long long)f);
	}
}

Test(frame_pool, holes_give_memory_back_to_the_host, .init = setup, .fini = teardown)
{
	struct frame_pool_stats s;
	int64_t block = frame_pool_alloc(&pool, 8); /* 1 MiB */
	cr_assert_geq(block, 0);
	memset(frame_pool_address(&pool, (uint64_t)block), 1, 256 * FRAME_SIZE);
	frame_pool_get_stats(&pool, &s);
	cr_assert_geq(s.host_resident_bytes, 1ull << 20);
	frame_pool_free(&pool, (uint64_t)block, 256);
	frame_pool_get_stats(&pool, &s);
	cr_assert_lt(s.host_resident_bytes, 64 * 1024, "resident %llu after freeing",
		     (unsigned long long)s.host_resident_bytes);
}

Test(frame_pool, usage_counters_are_exact, .init = setup, .fini = teardown)
{
	struct frame_pool_stats s;
	int64_t a = frame_pool_alloc(&pool, 4), b = frame_pool_alloc(&pool, 0);
	frame_pool_get_stats(&pool, &s);
	cr_assert_eq(s.total_pages, 4096);
	cr_assert_eq(s.used_pages, 17);
	/* Free the block in two odd pieces: any count, any alignment. */
	frame_pool_free(&pool, (uint64_t)a, 5);
	frame_pool_free(&pool, (uint64_t)a + 5, 11);
	frame_pool_free(&pool, (uint64_t)b, 1);
	buddy_drain_pcp(&pool.buddy);
	frame_pool_get_stats(&pool, &s);
	cr_assert_eq(s.used_pages, 0);
	cr_assert_eq(s.peak_used_pages, 17);
	cr_assert_eq(s.free_pages, 4096);
	cr_assert_eq(s.nr_free[10], 4, "fully coalesced into 4 blocks of 4 MiB");
}

Test(frame_pool, exhaustion_returns_minus_one, .init = setup, .fini = teardown)
{
	int n = 0;
	while (frame_pool_alloc(&pool, 10) >= 0)
		n++;
	cr_assert_eq(n, 4);
	cr_assert_eq(frame_pool_alloc(&pool, 0), -1);
}

Test(frame_pool, backed_tells_data_from_holes, .init = setup, .fini = teardown)
{
	int64_t f = frame_pool_alloc(&pool, 3);
	cr_assert_geq(f, 0);
	uint8_t *base = frame_pool_address(&pool, (uint64_t)f);
	base[1 * 4096] = 1;
	base[2 * 4096 + 100] = 2;
	base[5 * 4096 + 4095] = 3;
	(void)*(volatile uint8_t *)(base + 6 * 4096); /* a read is not a write... */
	unsigned char vec[8];
	frame_pool_backed(&pool, (uint64_t)f, 8, vec);
	/* ...but on a shared memfd mapping it gives the hole a page too. */
	static const unsigned char want[8] = {0, 1, 1, 0, 0, 1, 1, 0};
	for (int i = 0; i < 8; i++)
		cr_assert_eq(vec[i], want[i], "frame %d", i);
	/* A run that ends in the middle of data, and one inside a hole. */
	frame_pool_backed(&pool, (uint64_t)f + 1, 1, vec);
	cr_assert_eq(vec[0], 1);
	frame_pool_backed(&pool, (uint64_t)f + 3, 2, vec);
	cr_assert(vec[0] == 0 && vec[1] == 0);
	frame_pool_free(&pool, (uint64_t)f, 8);
	frame_pool_backed(&pool, (uint64_t)f, 8, vec);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(vec[i], 0, "freed frame %d is a hole again", i);
}
