/* test_ksm.c - KSM without KVM: pool-backed guest memories written through
 * the VMM, a fake dirty log, and the scanner driven batch by batch. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/fault_inject.h"
#include "ksm/ksm.h"
#include "ksm/smart_scan.h"
#include "ksm/stable_table.h"
#include "ksm/unstable_table.h"
#include "mm/fault_thread.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/guest_memory_internal.h"
#include "mm/guest_registry.h"
#include "mm/rmap.h"
#include "pattern_content.h"
#include "test_support.h"

static struct guest_registry registry;

#define MAX_VMS 8
#define VM_BYTES (4ull << 20)
#define VM_PAGES (VM_BYTES / 4096)

struct fake_vm {
	int harvests;
	int pauses, resumes;
	uint64_t always_dirty[VM_PAGES / 64]; /* reported dirty by every harvest */
};

static struct frame_pool pool;
static struct fault_thread faults;
static struct guest_memory *vms[MAX_VMS];
static struct fake_vm fakes[MAX_VMS];
static struct ksm *ksm;
static unsigned nvms;

static void fake_pause(void *ctx)
{
	((struct fake_vm *)ctx)->pauses++;
}

static void fake_resume(void *ctx)
{
	((struct fake_vm *)ctx)->resumes++;
}

/* The first harvest reports every page (the writes that set the test up);
 * later ones only the pages a test keeps changing. */
static int fake_dirty_log(void *ctx, uint64_t *bitmap)
{
	struct fake_vm *f = ctx;
	if (f->harvests++ == 0)
		memset(bitmap, 0xff, sizeof(f->always_dirty));
	else
		memcpy(bitmap, f->always_dirty, sizeof(f->always_dirty));
	return 0;
}

static const struct guest_memory_ops fake_ops = {
	.pause = fake_pause, .resume = fake_resume, .dirty_log = fake_dirty_log};

static void setup_world(unsigned n, const struct ksm_config *cfg)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, 64ull << 20, err, sizeof(err)), 0, "%s", err);
	guest_registry_init(&registry);
	cr_assert_eq(fault_thread_start(&faults, 0), 0);
	nvms = n;
	memset(fakes, 0, sizeof(fakes));
	for (unsigned i = 0; i < n; i++) {
		struct guest_memory_config mc = {.bytes = VM_BYTES,
						 .backing = GUEST_MEMORY_POOL,
						 .pool = &pool,
						 .registry = &registry,
						 .faults = &faults,
						 .fault_around_pages = 1,
						 .ops = &fake_ops,
						 .ops_ctx = &fakes[i],
						 .access_log = GUEST_ACCESS_LOG_DIRTY_LOG};
		cr_assert_eq(guest_memory_create(&vms[i], &mc, err, sizeof(err)), 0, "%s", err);
	}
	cr_assert_eq(ksm_create(&ksm, &pool, cfg), 0);
	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(ksm_add_vm(ksm, vms[i]), 0);
}

static void teardown_world(void)
{
	for (unsigned i = 0; i < nvms; i++) {
		if (!vms[i])
			continue;
		ksm_remove_vm(ksm, vms[i]);
		guest_memory_destroy(vms[i]);
		vms[i] = NULL;
	}
	ksm_destroy(ksm);
	fault_thread_stop(&faults);
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
}

static struct ksm_config test_config(void)
{
	struct ksm_config cfg;
	ksm_config_default(&cfg);
	cfg.max_rate = true;
	cfg.stable_age_ms = 0;
	return cfg;
}

/* Writes the pattern content with `key` (0 = zero page) to vm's page gfn. */
static void write_page(unsigned vm, uint64_t gfn, uint64_t key)
{
	uint64_t page[PATTERN_WORDS_PER_PAGE];
	pattern_fill_page(page, key);
	cr_assert_eq(guest_memory_write(vms[vm], gfn * 4096, page, sizeof(page)), 0);
}

static void expect_page(unsigned vm, uint64_t gfn, uint64_t key)
{
	uint64_t page[PATTERN_WORDS_PER_PAGE], want;
	cr_assert_eq(guest_memory_read(vms[vm], gfn * 4096, page, sizeof(page)), 0);
	cr_assert_eq(pattern_check_page(page, key, &want), -1, "vm %u page %lu corrupted", vm,
		     (unsigned long)gfn);
}

/* Batches 2 ms apart: harvests of the dirty log are at most one per
 * millisecond (stable_age_ms / 2 + 1 with stable_age_ms 0). */
static struct ksm_stats full_scans(int n)
{
	for (int done = 0, batches = 0; done < n; batches++) {
		cr_assert_lt(batches, 10000, "no full scan completed");
		usleep(2000);
		done += ksm_scan_batch(ksm);
	}
	struct ksm_stats s;
	ksm_get_stats(ksm, &s);
	return s;
}

static uint64_t used_frames(void)
{
	struct frame_pool_stats s;
	frame_pool_get_stats(&pool, &s);
	return s.used_pages;
}

Test(ksm, identical_pages_merge_across_vms)
{
	struct ksm_config cfg = test_config();
	setup_world(3, &cfg);
	for (unsigned v = 0; v < 3; v++) {
		for (uint64_t i = 0; i < 10; i++)
			write_page(v, i, 100 + i); /* the same in every VM */
		for (uint64_t i = 10; i < 20; i++)
			write_page(v, i, 1000 * (v + 1) + i); /* unique */
	}
	uint64_t before = used_frames();
	struct ksm_stats s = full_scans(2);
	cr_assert_eq(s.pages_shared, 10);
	cr_assert_eq(s.pages_sharing, 20);
	cr_assert_eq(s.ksm_zero_pages, 0);
	cr_assert_eq(s.pages_unshared, 30, "the unique pages wait in the unstable table");
	cr_assert_eq(before - used_frames(), 20, "two copies of each shared page were freed");
	for (unsigned v = 0; v < 3; v++) {
		struct guest_range_stats r;
		guest_memory_range_stats(vms[v], 0, 20 * 4096, &r);
		cr_assert_eq(r.shared, 10);
		for (uint64_t i = 0; i < 10; i++)
			expect_page(v, i, 100 + i);
		for (uint64_t i = 10; i < 20; i++)
			expect_page(v, i, 1000 * (v + 1) + i);
		cr_assert_gt(fakes[v].pauses, 0);
		cr_assert_eq(fakes[v].pauses, fakes[v].resumes, "every pause is resumed");
	}
	struct guest_memory_stats ms;
	guest_memory_get_stats(vms[0], &ms);
	cr_assert_eq(ms.ksm_merging_pages, 10);
	/* Pss: 10 unique pages whole, 10 shared pages a third each. */
	cr_assert_eq(ms.pss_bytes, 10 * 4096 + (10 * 4096 + 1) / 3);
	teardown_world();
}

Test(ksm, zero_pages_map_the_zero_run)
{
	struct ksm_config cfg = test_config();
	setup_world(2, &cfg);
	for (unsigned v = 0; v < 2; v++)
		for (uint64_t i = 0; i < 16; i++)
			write_page(v, i, 0);
	struct ksm_stats s = full_scans(2);
	cr_assert_eq(s.ksm_zero_pages, 32);
	cr_assert_eq(s.pages_shared, 0, "zero pages are not stable nodes");
	cr_assert_eq(s.pages_sharing, 0);
	struct guest_range_stats r;
	guest_memory_range_stats(vms[1], 0, 16 * 4096, &r);
	cr_assert_eq(r.zero, 16);
	expect_page(1, 3, 0);
	/* A write copies the page out of the zero run. */
	write_page(1, 3, 77);
	expect_page(1, 3, 77);
	expect_page(0, 3, 0);
	cr_assert_eq(guest_memory_zero_pages(vms[1]), 15);
	teardown_world();
}

Test(ksm, zero_pages_without_use_zero_pages_are_ordinary)
{
	struct ksm_config cfg = test_config();
	cfg.use_zero_pages = false;
	setup_world(2, &cfg);
	for (unsigned v = 0; v < 2; v++)
		for (uint64_t i = 0; i < 16; i++)
			write_page(v, i, 0);
	struct ksm_stats s = full_scans(2);
	cr_assert_eq(s.ksm_zero_pages, 0);
	cr_assert_eq(s.pages_shared, 1, "all 32 zero pages share one frame");
	cr_assert_eq(s.pages_sharing, 31);
	teardown_world();
}

static uint64_t colliding_hash(const void *page)
{
	(void)page;
	return 42;
}

Test(ksm, hash_collisions_are_resolved_by_memcmp)
{
	struct ksm_config cfg = test_config();
	setup_world(2, &cfg);
	ksm_set_hash_function(ksm, colliding_hash);
	for (unsigned v = 0; v < 2; v++) {
		for (uint64_t i = 0; i < 5; i++)
			write_page(v, i, 500 + i); /* identical pairs */
		for (uint64_t i = 5; i < 12; i++)
			write_page(v, i, 9000 * (v + 1) + i); /* all different */
	}
	/* Scan 1 records checksums, scan 2 merges on the hash alone and finds
	 * the collision when it compares the pages before mapping, scan 3
	 * compares at scan time and finds each page's true partner. */
	struct ksm_stats s = full_scans(3);
	cr_assert_eq(s.pages_shared, 5, "only byte-identical pages merge");
	cr_assert_eq(s.pages_sharing, 5);
	cr_assert_gt(s.hash_mismatches, 0, "the colliding hashes were caught by memcmp");
	for (unsigned v = 0; v < 2; v++) {
		for (uint64_t i = 0; i < 5; i++)
			expect_page(v, i, 500 + i);
		for (uint64_t i = 5; i < 12; i++)
			expect_page(v, i, 9000 * (v + 1) + i);
	}
	teardown_world();
}

Test(ksm, max_page_sharing_limits_mappers)
{
	struct ksm_config cfg = test_config();
	cfg.max_page_sharing = 2;
	setup_world(5, &cfg);
	for (unsigned v = 0; v < 5; v++)
		write_page(v, 7, 4242);
	struct ksm_stats s = full_scans(3);
	/* 5 identical pages, at most 2 per frame: 3 frames, one chain of 3
	 * (Linux's stable_node_chains and stable_node_dups); every page merged. */
	cr_assert_eq(s.pages_shared, 3);
	cr_assert_eq(s.pages_sharing, 2);
	s = full_scans(1); /* the chain is counted at a full scan's end */
	cr_assert_eq(s.stable_node_chains, 1);
	cr_assert_eq(s.stable_node_dups, 3);
	for (unsigned v = 0; v < 5; v++)
		expect_page(v, 7, 4242);
	teardown_world();
}

Test(ksm, volatile_pages_are_skipped)
{
	struct ksm_config cfg = test_config();
	setup_world(2, &cfg);
	write_page(0, 0, 31337);
	write_page(1, 0, 31337);
	write_page(0, 1, 55);
	write_page(1, 1, 55);
	fakes[0].always_dirty[0] = 1; /* vm0's page 0 keeps changing */
	struct ksm_stats s = full_scans(3);
	cr_assert_eq(s.pages_volatile, 1);
	cr_assert_eq(s.pages_shared, 1, "only page 1 merges");
	struct guest_range_stats r;
	guest_memory_range_stats(vms[0], 0, 4096, &r);
	cr_assert_eq(r.shared, 0);
	teardown_world();
}

/* The scanner harvests once a volatility window before its start delay
 * ends, so the guests' writes from before that count as old: the first full
 * scan merges them (a first harvest at the start showed them as written
 * just then, and the first 100 ms of scans merged nothing). */
Test(ksm, pages_written_before_a_delayed_start_merge_in_the_first_scan)
{
	test_deadline(20);
	struct ksm_config cfg = test_config();
	cfg.stable_age_ms = 100;
	cfg.start_delay_ms = 300;
	cfg.max_rate = false;
	cfg.pages_to_scan = 100000;  /* one batch is a full scan... */
	cfg.sleep_millisecs = 10000; /* ...and the next comes much later */
	setup_world(2, &cfg);
	write_page(0, 3, 777);
	write_page(1, 3, 777);
	cr_assert_eq(ksm_start(ksm), 0);
	struct ksm_stats s;
	do {
		usleep(1000);
		ksm_get_stats(ksm, &s);
	} while (s.full_scans == 0);
	cr_assert_eq(s.full_scans, 1);
	cr_assert_eq(s.pages_volatile, 0, "the pages were written 300 ms before the scan");
	cr_assert_eq(s.pages_sharing, 1, "the first full scan merged the pair");
	teardown_world();
}

Test(ksm, without_the_dirty_log_a_page_needs_two_visits)
{
	struct ksm_config cfg = test_config();
	cfg.dirty_log = false;
	setup_world(2, &cfg);
	for (unsigned v = 0; v < 2; v++)
		for (uint64_t i = 0; i < 8; i++)
			write_page(v, i, 600 + i);
	struct ksm_stats s = full_scans(1);
	cr_assert_eq(s.pages_shared, 0, "first visit only records checksums");
	cr_assert_eq(s.pages_volatile, 16);
	s = full_scans(1);
	cr_assert_eq(s.pages_shared, 8);
	cr_assert_eq(s.pages_sharing, 8);
	cr_assert_eq(s.pages_volatile, 0);
	cr_assert_eq(fakes[0].harvests, 0, "no dirty log was asked for");
	teardown_world();
}

Test(ksm, copy_on_write_unshares_and_frees_the_last_copy)
{
	struct ksm_config cfg = test_config();
	setup_world(2, &cfg);
	write_page(0, 2, 888);
	write_page(1, 2, 888);
	struct ksm_stats s = full_scans(2);
	cr_assert_eq(s.pages_sharing, 1);
	uint64_t merged = used_frames();
	write_page(0, 2, 999); /* vm0 writes: copy-on-write */
	expect_page(0, 2, 999);
	expect_page(1, 2, 888);
	cr_assert_eq(used_frames(), merged + 1);
	s = full_scans(1);
	cr_assert_eq(s.pages_shared, 1, "vm1 still maps the shared frame");
	cr_assert_eq(s.pages_sharing, 0);
	write_page(1, 2, 1000); /* the last mapper leaves: the frame is freed */
	cr_assert_eq(used_frames(), merged + 1);
	s = full_scans(1);
	cr_assert_eq(s.pages_shared, 0);
	s = full_scans(1); /* the sweep at the end of the previous scan ran */
	cr_assert_eq(s.stable_nodes, 0, "the dead node was swept");
	expect_page(1, 2, 1000);
	teardown_world();
}

Test(ksm, a_leaving_vm_drops_its_mappings)
{
	struct ksm_config cfg = test_config();
	setup_world(3, &cfg);
	for (unsigned v = 0; v < 3; v++)
		write_page(v, 1, 321);
	struct ksm_stats s = full_scans(2);
	cr_assert_eq(s.pages_sharing, 2);
	ksm_remove_vm(ksm, vms[2]);
	guest_memory_destroy(vms[2]);
	vms[2] = NULL;
	s = full_scans(1);
	cr_assert_eq(s.pages_shared, 1);
	cr_assert_eq(s.pages_sharing, 1);
	expect_page(0, 1, 321);
	teardown_world();
}

Test(ksm_tables, unstable_table)
{
	cr_assert_eq(rmap_init(), 0);
	struct ksm_unstable_table t;
	cr_assert_eq(unstable_table_init(&t), 0);
	struct ksm_vm *a = (struct ksm_vm *)0x10, *b = (struct ksm_vm *)0x20;
	for (uint64_t i = 0; i < 10000; i++)
		cr_assert_eq(unstable_table_insert(&t, i % 100, i % 2 ? a : b, i, i + 1), 0);
	cr_assert_eq(t.items, 10000);
	int n = 0;
	for (struct ksm_unstable_item *it = unstable_table_first(&t, 7); it;
	     it = unstable_table_next(&t, it)) {
		cr_assert_eq(it->hash, 7);
		cr_assert_eq(it->gfn % 100, 7);
		n++;
	}
	cr_assert_eq(n, 100);
	unstable_table_remove(&t, unstable_table_first(&t, 7));
	cr_assert_eq(t.items, 9999);
	unstable_table_forget_vm(&t, a);
	cr_assert_eq(t.items, 5000, "vm b's 5000 items are left");
	for (struct ksm_unstable_item *it = unstable_table_first(&t, 8); it;
	     it = unstable_table_next(&t, it))
		cr_assert_eq(it->vm, b);
	unstable_table_clear(&t);
	cr_assert_eq(t.items, 0);
	cr_assert_null(unstable_table_first(&t, 8));
	unstable_table_destroy(&t);
	rmap_exit();
}

/* Hashes in one bucket (the low bits) with different filter bits (the top
 * six): the bucket filter answers for hashes no node has, and forgets a
 * hash once its last node leaves. */
Test(ksm_tables, stable_table_filter_answers_absent_hashes)
{
	struct ksm_stable_table t;
	cr_assert_eq(stable_table_init(&t), 0);
	uint64_t a = 1ull << 60 | 7, b = 2ull << 60 | 7, absent = 3ull << 60 | 7;
	struct ksm_stable_node *na = stable_table_add_pending(&t, a, 1, NULL, 1);
	struct ksm_stable_node *nb = stable_table_add_pending(&t, b, 2, NULL, 2);
	struct ksm_stable_node *nb2 = stable_table_add_pending(&t, b, 3, NULL, 3);
	cr_assert(na && nb && nb2);
	cr_assert_eq(stable_table_first(&t, a), na);
	cr_assert_eq(stable_table_first(&t, b), nb2, "the newest node of a chain comes first");
	cr_assert_eq(stable_table_next(nb2), nb);
	cr_assert_null(stable_table_first(&t, absent));
	size_t bucket = 0;
	while (bucket < t.nbuckets && t.buckets[bucket].first != nb2)
		bucket++;
	cr_assert_lt(bucket, t.nbuckets, "a, b and absent share a bucket");
	cr_assert_eq(t.buckets[bucket].filter, (1ull << 4) | (1ull << 8));
	stable_table_remove(&t, nb2, NULL);
	cr_assert_eq(t.buckets[bucket].filter, (1ull << 4) | (1ull << 8), "b still has a node");
	stable_table_remove(&t, nb, NULL);
	cr_assert_eq(t.buckets[bucket].filter, 1ull << 4);
	cr_assert_null(stable_table_first(&t, b));
	cr_assert_eq(stable_table_first(&t, a), na);
	stable_table_destroy(&t, NULL);
}

Test(ksm_tables, stable_table_chains_and_sweep)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, 16ull << 20, err, sizeof(err)), 0);
	guest_registry_init(&registry);
	struct ksm_stable_table t;
	cr_assert_eq(stable_table_init(&t), 0);
	/* Enough nodes to make the table grow; 3 duplicates of hash 5. */
	for (uint64_t i = 0; i < 3000; i++)
		cr_assert_not_null(stable_table_add_pending(&t, i < 3 ? 5 : i + 10, i, NULL, i));
	cr_assert_eq(t.nodes, 3000);
	int n = 0;
	for (struct ksm_stable_node *node = stable_table_first(&t, 5); node;
	     node = stable_table_next(node))
		n++;
	cr_assert_eq(n, 3, "duplicates of one content form a chain");
	/* A live node and a dead one (its frame gone). */
	struct ksm_stable_node *live = stable_table_first(&t, 20);
	struct ksm_stable_node *dead = stable_table_first(&t, 21);
	live->shared = rmap_shared_create(10);
	live->shared->refs = 1;
	rmap_shared_add(live->shared, 1, 1);
	dead->shared = rmap_shared_create(11);
	dead->shared->refs = 1;
	dead->shared->frame = RMAP_FRAME_GONE;
	cr_assert(stable_node_dead(dead));
	cr_assert_not(stable_node_dead(live));
	cr_assert_eq(stable_table_sweep(&t, &pool), 1);
	cr_assert_null(stable_table_first(&t, 21));
	cr_assert_eq(stable_table_first(&t, 20), live);
	cr_assert_eq(stable_node_mappers(live), 1);
	rmap_shared_remove(live->shared, 1, 1);
	live->shared->frame = RMAP_FRAME_GONE; /* as if freed */
	stable_table_destroy(&t, &pool);
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
}

/* Every page that maps a shared frame is one of its mappers. */
static void expect_mappers_recorded(unsigned n, uint64_t pages)
{
	for (unsigned v = 0; v < n; v++) {
		for (uint64_t gfn = 0; gfn < pages; gfn++) {
			sept_entry e = sept_lookup(&vms[v]->sept, gfn);
			if (!sept_is_present(e) || !(e & SEPT_SHARED))
				continue;
			struct frame *f = frame_pool_frame(&pool, sept_frame(e));
			cr_assert_eq(frame_state(f), FRAME_SHARED);
			cr_assert(
				rmap_shared_contains(frame_shared(f), guest_memory_id(vms[v]), gfn),
				"vm %u page %lu maps shared frame %lu but is not its mapper", v,
				(unsigned long)gfn, (unsigned long)sept_frame(e));
		}
	}
}

/* An allocation failing anywhere in a merge (the shared frame's reverse
 * map, KSM's tables) leaves every page either merged and recorded as a
 * mapper, or private: merge used to ignore a failed reverse-map insert, and
 * the frame could then be freed under a VM still mapping it. Each run fails
 * a different allocation, the 1st, the 2nd, ... until a run needs none. */
Test(ksm, a_failed_allocation_anywhere_in_a_merge_loses_nothing)
{
	for (uint64_t k = 1;; k++) {
		struct ksm_config cfg = test_config();
		setup_world(3, &cfg);
		uint64_t empty = used_frames();
		for (unsigned v = 0; v < 3; v++)
			for (uint64_t i = 0; i < 8; i++)
				write_page(v, i, 700 + i % 4);
		fault_inject_set(FAULT_ALLOC, 1, k);
		full_scans(2);
		bool injected = fault_inject_count(FAULT_ALLOC) > 0;
		fault_inject_reset();
		expect_mappers_recorded(3, 8);
		/* Unshare all but the last VM, then read what is left. */
		for (unsigned v = 0; v < 2; v++)
			for (uint64_t i = 0; i < 8; i++)
				write_page(v, i, 900 + i);
		full_scans(2);
		expect_mappers_recorded(3, 8);
		for (uint64_t i = 0; i < 8; i++) {
			expect_page(0, i, 900 + i);
			expect_page(2, i, 700 + i % 4);
		}
		for (unsigned v = 0; v < 3; v++) {
			ksm_remove_vm(ksm, vms[v]);
			guest_memory_destroy(vms[v]);
			vms[v] = NULL;
		}
		cr_assert_eq(used_frames(), empty, "failing allocation %lu: frames leaked",
			     (unsigned long)k);
		teardown_world();
		if (!injected)
			break;
		cr_assert_lt(k, 200, "a merge makes more than 200 allocations?");
	}
}

/* Smart scan (Linux 6.7's): pages that keep not merging are skipped on more
 * and more visits; off, every visit hashes them. A page that turns into a
 * copy of another after many unique visits still merges, within the longest
 * skip (8 visits) plus one. */
static void smart_scan_world(bool smart, struct ksm_stats *after, int *scans_to_merge)
{
	struct ksm_config cfg = test_config();
	cfg.smart_scan = smart;
	setup_world(2, &cfg);
	for (unsigned v = 0; v < 2; v++)
		for (uint64_t i = 0; i < 64; i++)
			write_page(v, i, 5000 * (v + 1) + i); /* all unique */
	full_scans(20);
	/* Page 7 of VM 1 becomes a copy of VM 0's page 7; the writes are
	 * older than stable_age_ms (0) at the next harvest. */
	write_page(1, 7, 5000 + 7);
	struct ksm_stats s;
	int n = 0;
	do {
		s = full_scans(1);
		n++;
	} while (s.pages_sharing == 0 && n < 30);
	*scans_to_merge = n;
	*after = s;
	expect_page(1, 7, 5000 + 7);
	teardown_world();
}

Test(ksm, smart_scan_skips_pages_that_do_not_merge_and_still_finds_new_copies)
{
	struct ksm_stats on, off;
	int scans_on, scans_off;
	smart_scan_world(true, &on, &scans_on);
	smart_scan_world(false, &off, &scans_off);
	cr_assert_eq(off.pages_skipped, 0);
	cr_assert_gt(on.pages_skipped, 0);
	/* 128 unique pages: by scan 20 most visits are skipped (ages 9+ skip
	 * 8 of 9 visits). */
	cr_assert_lt(on.pages_scanned, off.pages_scanned / 2, "scanned %llu with, %llu without",
		     (unsigned long long)on.pages_scanned, (unsigned long long)off.pages_scanned);
	cr_assert_eq(off.pages_sharing, 1);
	cr_assert_eq(on.pages_sharing, 1, "the new copy merged with smart scan on");
	cr_assert_leq(scans_on, 10, "merged %d full scans after it appeared", scans_on);
	cr_assert_leq(scans_off, 2);
}

/* Two identical pages meet only in the unstable table of one full scan (it
 * is emptied after each), so smart scan must visit both in the same one,
 * whatever their ages. With Linux's per-page countdown two pages that went
 * quiet 15 or 16 scans apart (and more) never are: a few dozen shared pages
 * of two pattern guests stayed unmerged (e2e_ksm's
 * vms_without_ksm_are_never_touched, about 1 run in 20 under ASan). For
 * every offset up to 256 scans, two pages that went quiet that far apart
 * must be visited together within 8 scans of the later one's third visit,
 * and old pages must still be skipped 7 visits of 8. */
Test(ksm, smart_scan_lets_identical_pages_of_any_ages_meet)
{
	for (unsigned offset = 0; offset < 256; offset++) {
		uint8_t a = 0, b = 0;
		int met = -1;
		for (unsigned scan = 0; scan < offset + 1000 && met < 0; scan++) {
			bool a_visits = !smart_scan_skip(&a, scan);
			bool b_visits = scan >= offset && !smart_scan_skip(&b, scan);
			if (a_visits && b_visits)
				met = (int)scan;
		}
		cr_assert_geq(met, 0, "pages %u scans apart never visited together", offset);
		cr_assert_leq(met, (int)offset + SMART_SCAN_YOUNG + 8, "offset %u: met at scan %d",
			      offset, met);
	}
	uint8_t age = 0;
	unsigned visits = 0;
	for (unsigned scan = 0; scan < 800; scan++)
		visits += !smart_scan_skip(&age, scan);
	cr_assert_leq(visits, 3 + 800 / 8 + 8, "%u visits in 800 scans", visits);
	for (uint8_t x = 0; x < UINT8_MAX; x++) {
		unsigned p = smart_scan_period(x);
		cr_assert_eq(p & (p - 1), 0, "the period of age %u is not a power of two", x);
		cr_assert_eq(smart_scan_period((uint8_t)(x + 1)) % p, 0,
			     "the period of age %u does not divide the next", x);
	}
}

/* The scan-time advisor (Linux 6.9's): from its minimum rate it raises
 * pages_to_scan until a full scan takes about the target time. Batches
 * here are ~2 ms apart (full_scans()), so 2 x 1024 pages at 16 per batch
 * take ~260 ms a scan, against a 100 ms target: the rate must about
 * double, and a scan then take about the target. */
Test(ksm, the_advisor_settles_on_the_rate_that_meets_the_target_scan_time)
{
	struct ksm_config cfg = test_config();
	cfg.max_rate = false;
	cfg.smart_scan = false; /* every page counts against the batch */
	cfg.advisor = true;
	cfg.advisor_target_scan_ms = 100;
	cfg.advisor_max_cpu = 100;
	cfg.advisor_min_pages = 16;
	cfg.advisor_max_pages = 4096;
	setup_world(2, &cfg);
	for (unsigned v = 0; v < 2; v++)
		for (uint64_t i = 0; i < VM_PAGES; i++)
			write_page(v, i, 70000 * (v + 1) + i);
	struct ksm_stats s;
	ksm_scan_batch(ksm);
	ksm_get_stats(ksm, &s);
	/* Before a scan was measured: every present page in the target time,
	 * one batch per sleep_millisecs (20). */
	uint64_t present = guest_memory_present_count(vms[0]) + guest_memory_present_count(vms[1]);
	cr_assert_eq(s.pages_to_scan, present * 20 / 100, "it starts at %llu, not %llu",
		     (unsigned long long)(present * 20 / 100), (unsigned long long)s.pages_to_scan);
	s = full_scans(8);
	cr_assert_gt(s.pages_to_scan, 24, "raised: %llu", (unsigned long long)s.pages_to_scan);
	cr_assert_lt(s.pages_to_scan, 200, "not past what meets the target: %llu",
		     (unsigned long long)s.pages_to_scan);
	cr_assert_gt(s.advisor_scan_seconds, 0.04, "last scan %.3f s", s.advisor_scan_seconds);
	cr_assert_lt(s.advisor_scan_seconds, 0.30, "last scan %.3f s", s.advisor_scan_seconds);
	teardown_world();
}
