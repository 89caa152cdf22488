/* test_reclaim.c - reclaim without KVM: pool-backed guest memories with a
 * fake dirty log, a real swap file, the ageing order, watermarks, refault
 * protection, zswap, and the OOM killer's choice. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/fault_inject.h"
#include "io/swap_device.h"
#include "io/zswap.h"
#include "mm/fault_thread.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/guest_registry.h"
#include "mm/reclaim.h"
#include "mm/reclaim_internal.h"
#include "mm/rmap.h"
#include "pattern_content.h"
#include "test_support.h"

static struct guest_registry registry;

#define MAX_VMS 80
#define VM_BYTES (8ull << 20)
#define VM_PAGES (VM_BYTES / 4096)

struct fake_vm {
	uint64_t report[VM_PAGES / 64]; /* pages the next harvest reports */
	int pauses, resumes;
	int killed;
	char why[256];
};

static struct frame_pool pool;
static struct fault_thread faults;
static struct reclaim *reclaim;
static struct guest_memory *vms[MAX_VMS];
static struct fake_vm fakes[MAX_VMS];
static unsigned nvms;
static char swap_path[64];
static struct memcg *group_of[MAX_VMS]; /* the cgroup VM i goes under (NULL: none) */

static void fake_pause(void *ctx)
{
	((struct fake_vm *)ctx)->pauses++;
}

static void fake_resume(void *ctx)
{
	((struct fake_vm *)ctx)->resumes++;
}

static int fake_dirty_log(void *ctx, uint64_t *bitmap)
{
	struct fake_vm *f = ctx;
	memcpy(bitmap, f->report, sizeof(f->report));
	memset(f->report, 0, sizeof(f->report));
	return 0;
}

static void fake_fatal(void *ctx, const char *message)
{
	struct fake_vm *f = ctx;
	f->killed = 1;
	snprintf(f->why, sizeof(f->why), "%s", message);
}

static const struct guest_memory_ops fake_ops = {
	.pause = fake_pause,
	.resume = fake_resume,
	.dirty_log = fake_dirty_log,
	.fatal = fake_fatal,
};

/* VM i of the pool, reclaim and fault thread set up below. */
static struct guest_memory *new_vm(unsigned i, struct memory_limits limits)
{
	char err[256];
	struct guest_memory_config mc = {.bytes = VM_BYTES,
					 .backing = GUEST_MEMORY_POOL,
					 .pool = &pool,
					 .registry = &registry,
					 .faults = &faults,
					 .fault_around_pages = 1,
					 .ops = &fake_ops,
					 .ops_ctx = &fakes[i],
					 .access_log = GUEST_ACCESS_LOG_DIRTY_LOG,
					 .reclaim = reclaim,
					 .limits = limits,
					 .memcg = group_of[i]};
	struct guest_memory *mem;
	cr_assert_eq(guest_memory_create(&mem, &mc, err, sizeof(err)), 0, "%s", err);
	return mem;
}

/* A pool of pool_mb, swap of swap_mb (0: none), zswap of zswap_mb, and n
 * VMs with the given limits. */
static void setup(uint64_t pool_mb, uint64_t swap_mb, uint64_t zswap_mb, unsigned n,
		  const struct memory_limits *limits)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, pool_mb << 20, err, sizeof(err)), 0, "%s", err);
	guest_registry_init(&registry);
	cr_assert_eq(fault_thread_start(&faults, 0), 0);
	struct reclaim_config rc;
	reclaim_config_default(&rc);
	rc.registry = &registry;
	snprintf(swap_path, sizeof(swap_path), "/var/tmp/vmm-test-%d.swap", getpid());
	unlink(swap_path);
	remove_at_exit(swap_path);
	rc.swap_path = swap_mb ? swap_path : NULL;
	rc.swap_bytes = swap_mb << 20;
	rc.zswap_bytes = zswap_mb << 20;
	rc.harvest_ms = 1;
	cr_assert_eq(reclaim_create(&reclaim, &pool, &rc, err, sizeof(err)), 0, "%s", err);
	/* The device keeps its descriptor: a test that crashes leaves no file. */
	unlink(swap_path);
	nvms = n;
	memset(fakes, 0, sizeof(fakes));
	for (unsigned i = 0; i < n; i++)
		vms[i] = new_vm(i, limits ? limits[i] : (struct memory_limits){0});
}

static void teardown(void)
{
	for (unsigned i = 0; i < nvms; i++) {
		guest_memory_destroy(vms[i]);
		vms[i] = NULL;
	}
	memset(group_of, 0, sizeof(group_of));
	fault_thread_stop(&faults);
	reclaim_destroy(reclaim);
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
	unlink(swap_path);
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void write_page(unsigned vm, uint64_t gfn, uint64_t key)
{
	uint64_t page[PATTERN_WORDS_PER_PAGE];
	pattern_fill_page(page, key);
	cr_assert_eq(guest_memory_write(vms[vm], gfn * 4096, page, sizeof(page)), 0);
}

/* Writes as the guest would: through its host mapping, so the fault thread
 * serves the first touch (with memory limits and reclaim). The fake pause
 * cannot stop this thread, but while reclaim runs on its behalf it is
 * blocked in that very fault. */
static void guest_writes_page(unsigned vm, uint64_t gfn, uint64_t key)
{
	uint64_t *page = (uint64_t *)((uint8_t *)guest_memory_host_base(vms[vm]) + gfn * 4096);
	pattern_fill_page(page, key);
}

static void expect_page(unsigned vm, uint64_t gfn, uint64_t key)
{
	uint64_t page[PATTERN_WORDS_PER_PAGE], want;
	cr_assert_eq(guest_memory_read(vms[vm], gfn * 4096, page, sizeof(page)), 0);
	cr_assert_eq(pattern_check_page(page, key, &want), -1, "vm %u page %lu corrupted", vm,
		     (unsigned long)gfn);
}

static void report(unsigned vm, uint64_t first, uint64_t count)
{
	for (uint64_t g = first; g < first + count; g++)
		fakes[vm].report[g / 64] |= 1ull << (g % 64);
}

static struct reclaim_stats stats(void)
{
	struct reclaim_stats s;
	reclaim_get_stats(reclaim, &s);
	return s;
}

Test(reclaim, the_oldest_pages_go_first_and_come_back_intact)
{
	setup(64, 64, 0, 1, NULL);
	for (uint64_t g = 0; g < 200; g++)
		write_page(0, g, 1000 + g);
	/* Harvest 1 shows pages 0..199; 80 ms later harvest 2 shows 100..199:
	 * pages 0..99 are the old ones. */
	report(0, 0, 200);
	guest_memory_harvest(vms[0], 0);
	usleep(80000);
	report(0, 100, 100);
	guest_memory_harvest(vms[0], 0);
	size_t freed = reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 100);
	cr_assert_eq(freed, 100);
	for (uint64_t g = 0; g < 200; g++)
		cr_assert_eq(guest_memory_page_state(vms[0], g),
			     g < 100 ? GUEST_PAGE_SWAPPED : GUEST_PAGE_PRESENT, "page %lu",
			     (unsigned long)g);
	cr_assert_eq(fakes[0].pauses, fakes[0].resumes);
	cr_assert_gt(fakes[0].pauses, 0, "eviction pauses the VM");
	/* Reading them back swaps them in through the fault path. */
	for (uint64_t g = 0; g < 200; g++)
		expect_page(0, g, 1000 + g);
	struct reclaim_stats s = stats();
	cr_assert_eq(s.pswpout, 100);
	cr_assert_geq(s.pswpin, 100);
	cr_assert_gt(s.readahead_pages, 0, "sequential refaults read ahead");
	cr_assert_eq(guest_memory_page_state(vms[0], 5), GUEST_PAGE_PRESENT);
	teardown();
}

Test(reclaim, frames_the_guest_never_wrote_are_dropped_without_io)
{
	setup(64, 64, 0, 1, NULL);
	/* Map frames without writing them: holes in the pool. */
	uint64_t zero = 0;
	for (uint64_t g = 0; g < 64; g++)
		cr_assert_eq(guest_memory_read(vms[0], g * 4096, &zero, sizeof(zero)), 0);
	write_page(0, 100, 5); /* one real page: allocated by the write */
	for (uint64_t g = 0; g < 64; g++)
		cr_assert_eq(guest_memory_page_state(vms[0], g), GUEST_PAGE_UNTOUCHED,
			     "reading an untouched page allocates nothing");
	size_t freed = reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 1);
	cr_assert_eq(freed, 1);
	struct reclaim_stats s = stats();
	cr_assert_eq(s.pswpout, 1, "the written page needs I/O");
	expect_page(0, 100, 5);
	teardown();
}

Test(reclaim, kswapd_wakes_below_low_and_stops_at_high)
{
	setup(8, 64, 0, 1, NULL);
	cr_assert_eq(reclaim_start(reclaim), 0);
	/* Fill the pool until it is below the low watermark. */
	uint64_t low = pool.buddy.wmark.low, high = pool.buddy.wmark.high;
	uint64_t g = 0;
	while (buddy_free_pages(&pool.buddy) > low / 2 && g < VM_PAGES) {
		write_page(0, g, 77 + g);
		g++;
	}
	/* kswapd frees up to the high watermark. */
	struct reclaim_stats s = stats();
	for (int i = 0; i < 300 && (buddy_free_pages(&pool.buddy) < high || s.kswapd_runs == 0);
	     i++) {
		usleep(10000);
		s = stats();
	}
	cr_assert_gt(s.kswapd_wakeups, 0);
	cr_assert_gt(s.kswapd_runs, 0);
	cr_assert_geq(buddy_free_pages(&pool.buddy), high, "kswapd stopped before high");
	for (uint64_t i = 0; i < g; i++)
		expect_page(0, i, 77 + i);
	teardown();
}

Test(reclaim, a_quick_refault_is_protected)
{
	setup(64, 64, 0, 1, NULL);
	for (uint64_t g = 0; g < 32; g++)
		write_page(0, g, 300 + g);
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 32), 32);
	expect_page(0, 7, 307); /* back at once: shorter than its age */
	struct reclaim_stats s = stats();
	cr_assert_gt(s.refaults, 0);
	cr_assert_gt(s.refaults_protected, 0);
	teardown();
}

Test(reclaim, zswap_keeps_compressible_pages_in_memory)
{
	setup(64, 64, 16, 1, NULL);
	/* Compressible: one word per page, the rest zero. */
	for (uint64_t g = 0; g < 64; g++) {
		uint64_t word = 0x1234 + g;
		cr_assert_eq(guest_memory_write(vms[0], g * 4096, &word, sizeof(word)), 0);
	}
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 64), 64);
	struct swap_device_stats ds;
	swap_device_get_stats(reclaim_swap_device(reclaim), &ds);
	cr_assert_eq(ds.writes, 0, "nothing went to the file");
	for (uint64_t g = 0; g < 64; g++) {
		uint64_t word;
		cr_assert_eq(guest_memory_read(vms[0], g * 4096, &word, sizeof(word)), 0);
		cr_assert_eq(word, 0x1234 + g);
	}
	struct reclaim_stats s = stats();
	cr_assert_geq(s.zswap_hits, 64);
	teardown();
}

Test(reclaim, the_oom_killer_picks_the_highest_badness)
{
	struct memory_limits limits[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, -1000}};
	setup(64, 0, 0, 3, limits);
	for (uint64_t g = 0; g < 100; g++)
		write_page(0, g, g + 1);
	for (uint64_t g = 0; g < 300; g++)
		write_page(1, g, g + 1);
	for (uint64_t g = 0; g < 900; g++)
		write_page(2, g, g + 1);
	/* vm2 is the biggest but oom_score_adj -1000: never chosen. */
	cr_assert_eq(oom_select_victim(reclaim), vms[1]);
	cr_assert_eq(reclaim_oom(reclaim, NULL, vms[0]), 1);
	cr_assert(fakes[1].killed, "vm1 was killed");
	cr_assert(strstr(fakes[1].why, "killed by the OOM killer"), "%s", fakes[1].why);
	cr_assert_not(fakes[0].killed);
	cr_assert_not(fakes[2].killed);
	/* One kill at a time: until vm1's memory is back, no second victim. */
	cr_assert_eq(reclaim_oom(reclaim, NULL, vms[0]), 1);
	cr_assert_not(fakes[0].killed);
	struct memory_events ev;
	memcg_read_events(guest_memory_memcg(vms[1]), &ev, NULL);
	cr_assert_eq(ev.oom_kill, 1);
	teardown();
}

Test(reclaim, oom_score_adj_shifts_the_choice)
{
	struct memory_limits limits[2] = {{0, 0, 500}, {0, 0, 0}};
	setup(64, 0, 0, 2, limits);
	for (uint64_t g = 0; g < 100; g++)
		write_page(0, g, g + 1);
	for (uint64_t g = 0; g < 2000; g++)
		write_page(1, g, g + 1);
	/* vm0: 100 + 500/1000 of 16384 pool pages = 8292 > vm1's 2000. */
	cr_assert_eq(oom_select_victim(reclaim), vms[0]);
	teardown();
}

Test(reclaim, memory_max_reclaims_from_its_own_vm)
{
	struct memory_limits limits[2] = {{0, 64, 0}, {0, 0, 0}};
	setup(64, 64, 0, 2, limits);
	for (uint64_t g = 0; g < 32; g++)
		guest_writes_page(1, g, 9 + g); /* vm1: no limit */
	for (uint64_t g = 0; g < 200; g++)
		guest_writes_page(0, g, 500 + g);
	struct guest_memory_stats ms;
	guest_memory_get_stats(vms[0], &ms);
	cr_assert_leq(ms.rss_pages, 64, "memory.max holds: Rss %lu", (unsigned long)ms.rss_pages);
	cr_assert_gt(ms.swap_pages, 0);
	struct memory_events ev;
	memcg_read_events(guest_memory_memcg(vms[0]), &ev, NULL);
	cr_assert_gt(ev.max, 0);
	for (uint64_t g = 0; g < 32; g++)
		cr_assert_eq(guest_memory_page_state(vms[1], g), GUEST_PAGE_PRESENT,
			     "the other VM is not touched");
	for (uint64_t g = 0; g < 200; g++)
		expect_page(0, g, 500 + g);
	teardown();
}

/* Writes pages 0..63 of VM 0 (keys from key_base) and ages them so that the
 * even pages are old and the odd ones young. */
static void write_even_old_odd_young(uint64_t key_base)
{
	for (uint64_t g = 0; g < 64; g++)
		write_page(0, g, key_base + g);
	report(0, 0, 64);
	guest_memory_harvest(vms[0], 0);
	usleep(80000);
	for (uint64_t g = 1; g < 64; g += 2)
		report(0, g, 1);
	guest_memory_harvest(vms[0], 0);
}

/* Even pages old, odd pages young: reclaim takes the even ones first, so
 * neighbouring pages end up in slots far apart; a sequential read reads
 * ahead anyway, in one batch of reads, and every page comes back intact. */
Test(reclaim, oldest_first_and_readahead_across_scattered_slots)
{
	setup(64, 64, 0, 1, NULL);
	write_even_old_odd_young(500);
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 32), 32);
	for (uint64_t g = 0; g < 64; g++)
		cr_assert_eq(guest_memory_page_state(vms[0], g),
			     g % 2 ? GUEST_PAGE_PRESENT : GUEST_PAGE_SWAPPED, "page %lu",
			     (unsigned long)g);
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 32), 32);
	for (uint64_t g = 0; g < 64; g++)
		expect_page(0, g, 500 + g);
	struct reclaim_stats s = stats();
	cr_assert_eq(s.pswpin, 64);
	cr_assert_geq(s.readahead_pages, 32, "windows of neighbours whose slots do not follow");
	teardown();
}

/* A readahead page that fails its checksum is not mapped: the pages before it
 * come back, and only the guest's own access to it ends the VM, naming it. */
Test(reclaim, a_bad_readahead_page_fails_only_when_touched)
{
	setup(64, 64, 0, 1, NULL);
	write_even_old_odd_young(700);
	/* Even pages take slots 0..31 (the VM's first cluster), odd pages
	 * 32..63: page 5 is in slot 34. */
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 32), 32);
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 32), 32);
	uint8_t garbage[4096];
	memset(garbage, 0x3c, sizeof(garbage));
	char fd_path[64]; /* the swap file is unlinked: reach it through the device's fd */
	snprintf(fd_path, sizeof(fd_path), "/proc/self/fd/%d",
		 swap_device_fd(reclaim_swap_device(reclaim)));
	FILE *f = fopen(fd_path, "r+");
	cr_assert_not_null(f);
	cr_assert_eq(fseek(f, 34 * 4096, SEEK_SET), 0);
	cr_assert_eq(fwrite(garbage, 1, sizeof(garbage), f), sizeof(garbage));
	cr_assert_eq(fclose(f), 0);
	/* Page 1 reads ahead 1..8; page 5 fails, so 1..4 are mapped. */
	for (uint64_t g = 0; g < 5; g++)
		expect_page(0, g, 700 + g);
	cr_assert_eq(fakes[0].killed, 0);
	cr_assert_eq(guest_memory_page_state(vms[0], 5), GUEST_PAGE_SWAPPED);
	uint64_t word;
	cr_assert_neq(guest_memory_read(vms[0], 5 * 4096, &word, sizeof(word)), 0);
	cr_assert_eq(fakes[0].killed, 1);
	cr_assert(strstr(fakes[0].why, "guest page 0x5000 from slot 34") &&
			  strstr(fakes[0].why, "checksum mismatch"),
		  "%s", fakes[0].why);
	teardown();
}

/* An mmap failing with ENOMEM (out of host mappings, not out of frames)
 * ends the VM that hit it, and only that one: it used to be taken for pool
 * exhaustion, and the OOM killer then ended another VM too. */
Test(reclaim, a_mapping_failure_is_not_an_oom)
{
	setup(64, 0, 0, 2, NULL);
	for (uint64_t g = 0; g < 300; g++)
		write_page(1, g, g + 1);
	fault_inject_set(FAULT_MMAP, 1, 1);
	guest_writes_page(0, 10, 77);
	cr_assert(fakes[0].killed, "vm0 failed");
	cr_assert(strstr(fakes[0].why, "out of host mappings"), "%s", fakes[0].why);
	cr_assert_not(fakes[1].killed, "vm1 was OOM-killed: %s", fakes[1].why);
	cr_assert_eq(stats().oom_kills, 0);
	fault_inject_reset();
	teardown();
}

/* A failed swap write loses the page: every VM that had a page in a failed
 * slot is ended, however many failed together (only 64 were remembered, and
 * the VMs past those ran on until they read the page). */
Test(reclaim, every_vm_that_lost_a_page_to_a_failed_write_is_ended)
{
	const unsigned n = 70;
	setup(64, 64, 0, n, NULL);
	for (unsigned i = 0; i < n; i++)
		write_page(i, 0, i + 1);
	fault_inject_set(FAULT_WRITE_EIO, n, 1);
	cr_assert_eq(reclaim_direct(reclaim, NULL, n), n, "one pass evicts every page");
	unsigned ended = 0;
	for (unsigned i = 0; i < n; i++)
		ended += fakes[i].killed && strstr(fakes[i].why, "guest data lost");
	cr_assert_eq(ended, n, "%u of %u VMs that lost a page were ended", ended, n);
	cr_assert_eq(stats().io_errors, n);
	fault_inject_reset();
	teardown();
}

/* The OOM killer against reclaim passes, on two threads. Both take the
 * registry's spaces_lock and reclaim.lock; the OOM killer used to take them
 * in the other order, and the fault thread (OOM) against kswapd (a pass)
 * hung the fleet. A deadlock here ends at the test's deadline. */
static atomic_bool oom_loop_stop;

static void *oom_loop(void *arg)
{
	unsigned long *calls = arg;
	while (!atomic_load(&oom_loop_stop)) {
		reclaim_oom(reclaim, NULL, NULL);
		(*calls)++;
	}
	return NULL;
}

Test(reclaim, the_oom_killer_and_reclaim_passes_take_locks_in_one_order)
{
	test_deadline(30);
	setup(64, 64, 0, 2, NULL);
	for (uint64_t g = 0; g < 400; g++)
		write_page(1, g, 5000 + g); /* vm1: the biggest, the OOM victim */
	unsigned long oom_calls = 0, passes = 0;
	atomic_store(&oom_loop_stop, false);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, oom_loop, &oom_calls), 0);
	double end = now_s() + 0.5;
	uint64_t round = 0;
	for (; now_s() < end || passes < 20; round++) {
		for (uint64_t g = 0; g < 64; g++)
			write_page(0, g, round * 64 + g);
		passes += reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 64) > 0;
	}
	atomic_store(&oom_loop_stop, true);
	pthread_join(t, NULL);
	cr_assert_geq(passes, 20);
	cr_assert_gt(oom_calls, 0);
	cr_assert(fakes[1].killed && !fakes[0].killed, "the OOM killer chose vm1 once");
	for (uint64_t g = 0; g < 64; g++)
		expect_page(0, g, (round - 1) * 64 + g);
	teardown();
}

/* kswapd trims VMs above memory.high while VMs come and go. It used to list
 * them under the registry lock and trim them after dropping it: a VM
 * destroyed meanwhile was read after being freed (ASan). */
Test(reclaim, kswapd_trims_while_vms_are_destroyed)
{
	test_deadline(20);
	setup(64, 64, 0, 0, NULL);
	cr_assert_eq(reclaim_start(reclaim), 0);
	/* Eight VMs above memory.high at all times; one replaced after
	 * another while kswapd trims them. */
	struct memory_limits high = {.high_pages = 16};
	const unsigned n = 8;
	for (unsigned i = 0; i < n; i++) {
		vms[i] = new_vm(i, high);
		for (uint64_t g = 0; g < 256; g++)
			write_page(i, g, g + 1);
	}
	nvms = n;
	double end = now_s() + 0.5;
	unsigned replaced = 0;
	while (now_s() < end) {
		unsigned i = replaced++ % n;
		reclaim_wake(reclaim);
		guest_memory_destroy(vms[i]);
		vms[i] = new_vm(i, high);
		for (uint64_t g = 0; g < 256; g++)
			write_page(i, g, g + 1);
	}
	struct reclaim_stats s = stats();
	cr_assert_gt(s.kswapd_runs, 0, "kswapd never trimmed");
	cr_assert_gt(s.pswpout, 0);
	teardown();
}

/* Slots in use on the swap device and pages held by zswap. */
static void expect_swap_empty(const char *when)
{
	struct swap_device_stats ds;
	swap_device_get_stats(reclaim_swap_device(reclaim), &ds);
	cr_assert_eq(ds.free_slots, ds.slots, "%s: %lu swap slots leaked", when,
		     (unsigned long)(ds.slots - ds.free_slots));
	cr_assert_eq(swap_device_check(reclaim_swap_device(reclaim)), 0);
	struct zswap *z = reclaim_zswap(reclaim);
	if (z) {
		struct zswap_stats zs;
		zswap_get_stats(z, &zs);
		cr_assert_eq(zs.stored_pages, 0, "%s: %lu zswap entries leaked", when,
			     (unsigned long)zs.stored_pages);
	}
}

/* Eviction writes the pages out, then unmaps them; when the unmap fails the
 * pages stay resident (the VM is ended) and the slots and zswap entries
 * their copies took are let go: they used to leak. Half the pages are
 * compressible (zswap), half not (the file). */
Test(reclaim, a_failed_unmap_during_eviction_releases_its_slots)
{
	setup(64, 64, 16, 1, NULL);
	for (uint64_t g = 0; g < 64; g++) {
		if (g % 2) {
			write_page(0, g, g + 1);
		} else {
			uint64_t word = 0x5150 + g;
			cr_assert_eq(guest_memory_write(vms[0], g * 4096, &word, sizeof(word)), 0);
		}
	}
	fault_inject_set(FAULT_MMAP, 1, 1);
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 64), 0);
	cr_assert_eq(fault_inject_count(FAULT_MMAP), 1);
	fault_inject_reset();
	cr_assert(fakes[0].killed, "the VM that cannot be unmapped is ended");
	cr_assert(strstr(fakes[0].why, "cannot unmap evicted guest memory"), "%s", fakes[0].why);
	expect_swap_empty("after the failed eviction");
	guest_memory_destroy(vms[0]);
	vms[0] = NULL;
	nvms = 0;
	expect_swap_empty("after the VM");
	teardown();
}

/* io_uring_submit failing over and over: eviction and its drain give up
 * within a bound instead of hanging, the writes stay in the swap cache, and
 * once submission works again every page comes back intact and every slot
 * is returned. */
Test(reclaim, a_failing_io_uring_submit_does_not_hang_eviction)
{
	test_deadline(30);
	setup(64, 64, 0, 1, NULL);
	for (uint64_t g = 0; g < 32; g++)
		write_page(0, g, 4000 + g);
	fault_inject_set(FAULT_URING_SUBMIT, UINT64_MAX, 1);
	double t0 = now_s();
	size_t freed = reclaim_memcg(reclaim, guest_memory_memcg(vms[0]), 32);
	double took = now_s() - t0;
	cr_assert_gt(fault_inject_count(FAULT_URING_SUBMIT), 0);
	fault_inject_reset();
	cr_assert_lt(took, 20.0, "eviction took %.1f s with submission failing", took);
	for (uint64_t g = 0; g < 32; g++)
		expect_page(0, g, 4000 + g);
	cr_assert_not(fakes[0].killed, "%s", fakes[0].why);
	cr_log_info("evicted %zu pages in %.2f s with every submission failing", freed, took);
	guest_memory_destroy(vms[0]);
	vms[0] = NULL;
	nvms = 0;
	cr_assert_eq(reclaim_memcg(reclaim, NULL, 0), 0); /* a pass drains what was queued */
	expect_swap_empty("after the VM");
	teardown();
}

/* --- cgroups above the VMs (mm/memcg.h) --- */

Test(reclaim, a_groups_memory_max_reclaims_from_every_vm_in_it)
{
	/* vm0 and vm1 share a group of 96 pages; vm2 is outside it. */
	struct memcg *group = memcg_create(NULL, "pair", 0, 96);
	cr_assert_not_null(group);
	group_of[0] = group_of[1] = group;
	setup(64, 64, 0, 3, NULL);
	for (uint64_t g = 0; g < 40; g++)
		guest_writes_page(2, g, 7000 + g);
	for (uint64_t g = 0; g < 64; g++)
		guest_writes_page(0, g, 1000 + g);
	cr_assert_eq(memcg_usage(group), 64);
	/* vm1's faults take the group to its max: they reclaim from the group
	 * (vm0's pages are the older ones), never from vm2. */
	for (uint64_t g = 0; g < 64; g++)
		guest_writes_page(1, g, 2000 + g);
	cr_assert_leq(memcg_usage(group), 96, "memory.max holds: %lu",
		      (unsigned long)memcg_usage(group));
	cr_assert_leq(page_counter_peak(&group->counter), 96);
	cr_assert_eq(memcg_usage(group), memcg_usage(guest_memory_memcg(vms[0])) +
						 memcg_usage(guest_memory_memcg(vms[1])));
	cr_assert_gt(guest_memory_swap_pages(vms[0]), 0, "vm0 gave pages to vm1");
	cr_assert_eq(guest_memory_swap_pages(vms[2]), 0, "vm2 is outside the group");
	struct memory_events hier, local, vm1;
	memcg_read_events(group, &hier, &local);
	memcg_read_events(guest_memory_memcg(vms[1]), &vm1, NULL);
	cr_assert_gt(local.max, 0, "the event is the group's");
	cr_assert_eq(vm1.max, 0, "not vm1's own limit's");
	for (uint64_t g = 0; g < 64; g++) {
		expect_page(0, g, 1000 + g);
		expect_page(1, g, 2000 + g);
	}
	teardown();
	cr_assert_eq(memcg_usage(group), 0, "the VMs' ends uncharged the group");
	memcg_destroy(group);
}

/* Fills vm0..2 with 60, 30 and 200 pages; vm0 and vm1 under `group`. */
static void oom_setup(struct memcg *group)
{
	group_of[0] = group_of[1] = group;
	setup(64, 0, 0, 3, NULL);
	for (uint64_t g = 0; g < 60; g++)
		write_page(0, g, g + 1);
	for (uint64_t g = 0; g < 30; g++)
		write_page(1, g, g + 1);
	for (uint64_t g = 0; g < 200; g++)
		write_page(2, g, g + 1);
}

Test(reclaim, a_groups_oom_chooses_inside_the_group)
{
	struct memcg *top = memcg_create(NULL, "", 0, 0);
	struct memcg *group = memcg_create(top, "pair", 0, 90);
	oom_setup(group);
	/* vm2 has the highest badness, but the OOM is the group's. */
	cr_assert_eq(reclaim_oom(reclaim, group, vms[1]), 1);
	cr_assert(fakes[0].killed, "vm0: the group's biggest");
	cr_assert(strstr(fakes[0].why, "in cgroup /pair at memory.max"), "%s", fakes[0].why);
	cr_assert_not(fakes[1].killed);
	cr_assert_not(fakes[2].killed);
	struct memory_events ev;
	memcg_read_events(group, NULL, &ev);
	cr_assert_eq(ev.oom, 1);
	cr_assert_eq(ev.oom_group_kill, 0);
	teardown();
	memcg_destroy(group);
	memcg_destroy(top);
}

Test(reclaim, memory_oom_group_ends_the_whole_group)
{
	struct memcg *top = memcg_create(NULL, "", 0, 0);
	struct memcg *group = memcg_create(top, "pair", 0, 90);
	memcg_set_oom_group(group, true);
	oom_setup(group);
	cr_assert_eq(reclaim_oom(reclaim, group, vms[1]), 1);
	cr_assert(fakes[0].killed && fakes[1].killed, "both VMs of the oom.group");
	cr_assert(strstr(fakes[1].why, "with its cgroup /pair (memory.oom.group)"), "%s",
		  fakes[1].why);
	cr_assert_not(fakes[2].killed);
	cr_assert_eq(stats().oom_kills, 2);
	struct memory_events hier, local, vm0;
	memcg_read_events(group, &hier, &local);
	memcg_read_events(guest_memory_memcg(vms[0]), &vm0, NULL);
	cr_assert_eq(local.oom_group_kill, 1);
	cr_assert_eq(local.oom_kill, 0, "kills count at the VMs' cgroups");
	cr_assert_eq(hier.oom_kill, 2, "and up the tree");
	cr_assert_eq(vm0.oom_kill, 1);
	memcg_read_events(top, &hier, NULL);
	cr_assert_eq(hier.oom_kill, 2);
	teardown();
	memcg_destroy(group);
	memcg_destroy(top);
}

Test(reclaim, a_pool_oom_takes_the_victims_oom_group_too)
{
	struct memcg *group = memcg_create(NULL, "pair", 0, 0);
	memcg_set_oom_group(group, true);
	oom_setup(group);
	write_page(2, 250, 1); /* vm2 stays the biggest */
	for (uint64_t g = 0; g < 300; g++)
		write_page(0, g, g + 1); /* now vm0 is */
	cr_assert_eq(reclaim_oom(reclaim, NULL, vms[2]), 1);
	cr_assert(fakes[0].killed && fakes[1].killed);
	cr_assert_not(fakes[2].killed);
	teardown();
	memcg_destroy(group);
}

Test(reclaim, an_oom_finding_room_again_kills_nothing)
{
	/* The requester failed its charge, but a victim's memory came back
	 * before the OOM killer ran: the margin is checked again. */
	struct memcg *group = memcg_create(NULL, "pair", 0, 200);
	oom_setup(group);
	cr_assert_eq(reclaim_oom(reclaim, group, vms[1]), 1, "retry");
	for (int i = 0; i < 3; i++)
		cr_assert_not(fakes[i].killed, "vm%d", i);
	cr_assert_eq(stats().oom_kills, 0);
	teardown();
	memcg_destroy(group);
}

Test(reclaim, memory_low_is_taken_from_last_and_memory_min_never)
{
	/* vm0 under a cgroup with memory.low 64 pages, vm1 under one with
	 * memory.min 64, vm2 unprotected; each holds 100 pages. */
	struct memcg *top = memcg_create(NULL, "", 0, 0);
	struct memcg *low = memcg_create(top, "low", 0, 0), *min = memcg_create(top, "min", 0, 0);
	page_counter_set_low(&low->counter, 64);
	page_counter_set_min(&min->counter, 64);
	group_of[0] = low;
	group_of[1] = min;
	group_of[2] = top;
	setup(64, 64, 0, 3, NULL);
	for (unsigned vm = 0; vm < 3; vm++)
		for (uint64_t g = 0; g < 100; g++)
			write_page(vm, g, vm * 1000 + g);
	/* Everything above the protections: 100 + 36 + 36 pages, and no
	 * more, while memory.low is not touched. */
	cr_assert_eq(reclaim_direct(reclaim, NULL, 172), 172);
	cr_assert_eq(memcg_usage(guest_memory_memcg(vms[2])), 0);
	cr_assert_eq(memcg_usage(low), 64, "vm0 kept its memory.low");
	cr_assert_eq(memcg_usage(min), 64, "vm1 kept its memory.min");
	struct memory_events ev;
	memcg_read_events(low, &ev, NULL);
	cr_assert_eq(ev.low, 0);
	/* More: only memory.low gives, and says so. */
	cr_assert_eq(reclaim_direct(reclaim, NULL, 40), 40);
	cr_assert_eq(memcg_usage(low), 24);
	cr_assert_eq(memcg_usage(min), 64, "memory.min never gives");
	memcg_read_events(low, &ev, NULL);
	cr_assert_gt(ev.low, 0);
	cr_assert_eq(reclaim_direct(reclaim, NULL, 200), 24, "what is left above memory.min");
	cr_assert_eq(memcg_usage(min), 64);
	for (unsigned vm = 0; vm < 3; vm++)
		for (uint64_t g = 0; g < 100; g++)
			expect_page(vm, g, vm * 1000 + g);
	teardown();
	memcg_destroy(low);
	memcg_destroy(min);
	memcg_destroy(top);
}

Test(reclaim, memory_swap_max_bounds_what_a_groups_vms_swap)
{
	struct memcg *top = memcg_create(NULL, "", 0, 0);
	struct memcg *some = memcg_create(top, "some", 0, 0),
		     *none = memcg_create(top, "none", 0, 0);
	page_counter_set_max(&some->swap, 32);
	page_counter_set_max(&none->swap, 0);
	group_of[0] = some;
	group_of[1] = none;
	setup(64, 64, 0, 2, NULL);
	for (unsigned vm = 0; vm < 2; vm++)
		for (uint64_t g = 0; g < 100; g++)
			write_page(vm, g, vm * 1000 + g);
	cr_assert_eq(reclaim_memcg(reclaim, some, 100), 32, "memory.swap.max: 32 pages");
	cr_assert_eq(page_counter_read(&some->swap), 32);
	cr_assert_eq(page_counter_read(&top->swap), 32, "charged up the tree");
	cr_assert_eq(guest_memory_swap_pages(vms[0]), 32);
	cr_assert_gt(__atomic_load_n(&some->swap_max_events, __ATOMIC_RELAXED), 0);
	cr_assert_eq(reclaim_memcg(reclaim, none, 100), 0, "memory.swap.max 0: no swap");
	cr_assert_eq(guest_memory_swap_pages(vms[1]), 0);
	/* Swapped-in pages give their entries back. */
	for (uint64_t g = 0; g < 100; g++)
		expect_page(0, g, g);
	cr_assert_eq(page_counter_read(&some->swap), 0);
	cr_assert_eq(page_counter_peak(&some->swap), 32);
	cr_assert_eq(reclaim_memcg(reclaim, some, 10), 10, "room again");
	teardown();
	cr_assert_eq(page_counter_read(&top->swap), 0, "the VMs' ends uncharged their swap");
	memcg_destroy(some);
	memcg_destroy(none);
	memcg_destroy(top);
}
