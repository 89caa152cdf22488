/* test_access_log.c - mm's write-protect access log (mm/access_log.c), the
 * one TCG runs on: real guest memory on a frame pool, the real fault
 * thread, and a "guest" that is this thread writing through the VM's host
 * range (so its first touches and its writes to protected pages are real
 * userfaultfd faults). No accelerator is involved. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "mm/fault_thread.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/guest_registry.h"
#include "mm/rmap.h"

static struct guest_registry registry;

#define VM_BYTES (4ull << 20)

static struct frame_pool pool;
static struct fault_thread faults;
static struct guest_memory *mem;

static void setup(void)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, 16ull << 20, err, sizeof(err)), 0, "%s", err);
	guest_registry_init(&registry);
	cr_assert_eq(fault_thread_start(&faults, 0), 0);
	struct guest_memory_config mc = {.bytes = VM_BYTES,
					 .backing = GUEST_MEMORY_POOL,
					 .pool = &pool,
					 .registry = &registry,
					 .faults = &faults,
					 .fault_around_pages = 16,
					 .access_log = GUEST_ACCESS_LOG_WRITE_PROTECT};
	cr_assert_eq(guest_memory_create(&mem, &mc, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	guest_memory_destroy(mem);
	fault_thread_stop(&faults);
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
}

TestSuite(access_log, .init = setup, .fini = teardown, .timeout = 30);

static void guest_write(uint64_t gfn, uint8_t value)
{
	volatile uint8_t *p = (uint8_t *)guest_memory_host_base(mem) + gfn * 4096 + 8;
	*p = value;
}

static struct guest_memory_stats stats(void)
{
	struct guest_memory_stats s;
	guest_memory_get_stats(mem, &s);
	return s;
}

Test(access_log, says_what_it_is)
{
	cr_assert(guest_memory_tracks_access(mem));
	cr_assert_eq(guest_memory_access_log(mem), GUEST_ACCESS_LOG_WRITE_PROTECT);
}

/* Harvests after the warm period: every page written once is armed again. */
static void harvest_after_warm(void)
{
	usleep((ACCESS_LOG_WARM_PROBE_MS + 50) * 1000);
	cr_assert_eq(guest_memory_harvest(mem, 0), 1);
}

Test(access_log, a_first_touch_is_an_access_its_untouched_neighbours_are_not)
{
	guest_write(32, 1); /* maps the block 32..47 */
	cr_assert_eq(guest_memory_page_state(mem, 40), GUEST_PAGE_PRESENT, "fault-around");
	cr_assert_eq(guest_memory_harvest(mem, 0), 1);
	cr_assert(guest_memory_recently_dirty(mem, 32));
	cr_assert_gt(guest_memory_last_access(mem, 32), 0);
	/* Page 40's frame is still a hole: the guest never touched it. */
	cr_assert_not(guest_memory_recently_dirty(mem, 40));
	cr_assert_eq(guest_memory_last_access(mem, 40), 0);

	/* The guest touches page 40 after the harvest: its frame now holds
	 * memory, so the next harvest counts it. */
	guest_write(40, 2);
	cr_assert_eq(guest_memory_harvest(mem, 0), 1);
	cr_assert(guest_memory_recently_dirty(mem, 40));
	cr_assert_gt(guest_memory_last_access(mem, 40), 0);

	/* Written once and then left alone: no longer reported. */
	harvest_after_warm();
	harvest_after_warm();
	cr_assert_not(guest_memory_recently_dirty(mem, 32), "page 32 was not written again");
	cr_assert_not(guest_memory_recently_dirty(mem, 40), "page 40 was not written again");
}

Test(access_log, a_write_to_an_armed_page_is_caught)
{
	for (uint64_t g = 64; g < 80; g++)
		guest_write(g, 1);
	guest_memory_harvest(mem, 0); /* 64..79 written: warm */
	harvest_after_warm();	      /* armed again (probed) */
	cr_assert_geq(stats().access_protected, 16);
	uint64_t before = stats().access_faults;

	uint32_t old = guest_memory_last_access(mem, 71);
	usleep(20000);
	guest_write(70, 3); /* a write fault, recorded */
	guest_write(70, 4); /* no fault: left writable now */
	cr_assert_eq(stats().access_faults, before + 1);
	cr_assert_eq(guest_memory_harvest(mem, 0), 1);
	cr_assert(guest_memory_recently_dirty(mem, 70));
	cr_assert_not(guest_memory_recently_dirty(mem, 71));
	cr_assert_gt(guest_memory_last_access(mem, 70), old, "page 70 is younger than 71");
	cr_assert_eq(guest_memory_last_access(mem, 71), old);
	uint8_t byte;
	cr_assert_eq(guest_memory_read(mem, 70 * 4096 + 8, &byte, 1), 0);
	cr_assert_eq(byte, 4, "the writes landed");
}

Test(access_log, a_page_written_every_few_ms_is_always_recent_and_rarely_faults)
{
	for (uint64_t g = 128; g < 144; g++)
		guest_write(g, 1);
	guest_memory_harvest(mem, 0);
	harvest_after_warm(); /* 128..143 armed */
	uint64_t before = stats().access_faults;
	/* 1 s of writes to page 130 every 3 ms, a harvest every 20 ms (as
	 * KSM's): always reported, and found hot after one probe. */
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 7; i++) {
			guest_write(130, (uint8_t)i);
			usleep(3000);
		}
		cr_assert_eq(guest_memory_harvest(mem, 0), 1);
		cr_assert(guest_memory_recently_dirty(mem, 130), "round %d", round);
		cr_assert_not(guest_memory_recently_dirty(mem, 131), "round %d", round);
	}
	uint64_t caught = stats().access_faults - before;
	cr_assert_leq(caught, 3, "%lu faults for a page written 350 times", (unsigned long)caught);
}

Test(access_log, a_hot_page_that_stops_is_cold_after_the_hot_probe)
{
	guest_write(200, 1);
	guest_memory_harvest(mem, 0);
	harvest_after_warm(); /* probed */
	guest_write(200, 2);  /* written again after its probe: hot */
	guest_memory_harvest(mem, 0);
	cr_assert(guest_memory_recently_dirty(mem, 200));
	/* Not written any more: reported while hot, then probed, then cold. */
	int reported_for_ms = 0;
	for (int ms = 100; ms < 2 * ACCESS_LOG_HOT_PROBE_MS; ms += 100) {
		usleep(100000);
		guest_memory_harvest(mem, 0);
		if (!guest_memory_recently_dirty(mem, 200))
			break;
		reported_for_ms = ms;
	}
	cr_assert_geq(reported_for_ms, 100, "hot pages are assumed written for a while");
	cr_assert_leq(reported_for_ms, ACCESS_LOG_HOT_PROBE_MS + 200, "then probed and found cold");
	cr_assert_not(guest_memory_recently_dirty(mem, 200));
}
