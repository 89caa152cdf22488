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
#include "mm/rmap.h"

#define VM_BYTES (4ull << 20)

static struct frame_pool pool;
static struct fault_thread faults;
static struct guest_memory *mem;

static void setup(void)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, 16ull << 20, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fault_thread_start(&faults, 0), 0);
	struct guest_memory_config mc = {.bytes = VM_BYTES,
					 .backing = GUEST_MEMORY_POOL,
					 .pool = &pool,
					 .faults = &faults,
					 .fault_around_pages = 16,
					 .access_log = GUEST_ACCESS_LOG_WRITE_PROTECT};
	cr_assert_eq(guest_memory_create(&mem, &mc, err, sizeof(err)), 0, "%s", err);
}

static void teardown(void)
{
	guest_memory_destroy(mem);
	fault_thread_stop(&faults);
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
	 * memory, so the next harvest counts it, and protects it. */
	guest_write(40, 2);
	cr_assert_eq(guest_memory_harvest(mem, 0), 1);
	cr_assert(guest_memory_recently_dirty(mem, 40));
	cr_assert_gt(guest_memory_last_access(mem, 40), 0);
	cr_assert_not(guest_memory_recently_dirty(mem, 32), "page 32 was not written again");
}

Test(access_log, every_write_after_a_harvest_is_caught_once)
{
	for (uint64_t g = 64; g < 80; g++)
		guest_write(g, 1);
	guest_memory_harvest(mem, 0); /* protects 64..79 */
	uint64_t before = stats().access_faults;
	cr_assert_geq(stats().access_protected, 16);

	usleep(20000);
	guest_write(70, 3); /* a write fault, recorded */
	guest_write(70, 4); /* no fault: un-protected until the next harvest */
	cr_assert_eq(stats().access_faults, before + 1);
	uint32_t old = guest_memory_last_access(mem, 71);
	cr_assert_eq(guest_memory_harvest(mem, 0), 1);
	cr_assert(guest_memory_recently_dirty(mem, 70));
	cr_assert_not(guest_memory_recently_dirty(mem, 71));
	cr_assert_gt(guest_memory_last_access(mem, 70), old, "page 70 is younger than 71");
	cr_assert_eq(guest_memory_last_access(mem, 71), old);

	/* Re-armed by that harvest: the next write faults again. */
	guest_write(70, 5);
	cr_assert_eq(stats().access_faults, before + 2);
	uint8_t byte;
	cr_assert_eq(guest_memory_read(mem, 70 * 4096 + 8, &byte, 1), 0);
	cr_assert_eq(byte, 5, "the write landed");
}

Test(access_log, a_page_written_every_few_ms_is_always_recent)
{
	for (uint64_t g = 128; g < 144; g++)
		guest_write(g, 1);
	guest_memory_harvest(mem, 0);
	for (int round = 0; round < 10; round++) {
		guest_write(130, (uint8_t)round);
		usleep(3000);
		cr_assert_eq(guest_memory_harvest(mem, 0), 1);
		cr_assert(guest_memory_recently_dirty(mem, 130), "round %d", round);
		cr_assert_not(guest_memory_recently_dirty(mem, 131), "round %d", round);
	}
}
