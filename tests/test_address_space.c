/* test_address_space.c - one VM's guest-physical space (mm/guest_memory.h)
 * on the owned page table (mm/realiser.h), driven as the emulated CPU
 * drives it but without one: the test reads the sEPT as the CPU's page walk
 * would, raises the CPU's faults through guest_memory_cpu_fault(), and sets
 * accessed and dirty bits where the CPU would.
 *
 * What is checked is what the CPU relies on: the tables are pool frames at
 * the addresses their parents hold; an entry is present, writable and
 * user exactly when the guest may use the page so; page 0 and the boot
 * area keep the access the guest's own tables gave them; every change that
 * takes a translation away asks for a TLB flush, and faults that only add
 * one do not; the accessed/dirty bits become the access log. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/guest_memory_internal.h"
#include "mm/guest_registry.h"
#include "mm/rmap.h"

static struct guest_registry registry;

#define VM_BYTES (8ull << 20)
#define POOL_BYTES (32ull << 20)
#define BOOT_INFO_GFN 4
#define USER_FROM_GFN 256 /* 1 MiB: the boot area below is CPL 0 only */

static struct frame_pool pool;
static struct guest_memory *mem;
static int flushes, fatal_calls;

static void tlb_flush(void *ctx)
{
	(void)ctx;
	flushes++;
}

static void fatal(void *ctx, const char *message)
{
	(void)ctx, (void)message;
	fatal_calls++;
}

static const struct guest_memory_ops ops = {.fatal = fatal, .tlb_flush = tlb_flush};

static struct guest_memory_config config(enum guest_access_log log)
{
	return (struct guest_memory_config){
		.bytes = VM_BYTES,
		.backing = GUEST_MEMORY_POOL,
		.pool = &pool,
		.registry = &registry,
		.fault_around_pages = 16,
		.ops = &ops,
		.access_log = log,
		.realiser = GUEST_REALISER_OWNED,
		.cpu_ranges = {{0, FRAME_SIZE, GUEST_CPU_NONE},
			       {FRAME_SIZE, (BOOT_INFO_GFN - 1) * FRAME_SIZE, GUEST_CPU_SUPERVISOR},
			       {(BOOT_INFO_GFN + 1) * FRAME_SIZE,
				(USER_FROM_GFN - BOOT_INFO_GFN - 1) * FRAME_SIZE,
				GUEST_CPU_SUPERVISOR}},
	};
}

/* The VM, again, with another access log. */
static void recreate(enum guest_access_log log)
{
	char err[256];
	guest_memory_destroy(mem);
	struct guest_memory_config mc = config(log);
	cr_assert_eq(guest_memory_create(&mem, &mc, err, sizeof(err)), 0, "%s", err);
	flushes = fatal_calls = 0;
}

static void setup(void)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, POOL_BYTES, err, sizeof(err)), 0, "%s", err);
	guest_registry_init(&registry);
	struct guest_memory_config mc = config(GUEST_ACCESS_LOG_NONE);
	cr_assert_eq(guest_memory_create(&mem, &mc, err, sizeof(err)), 0, "%s", err);
	flushes = fatal_calls = 0;
}

static void teardown(void)
{
	guest_memory_destroy(mem);
	uint64_t zero_run = pool.zero_run >= 0 ? FRAME_POOL_ZERO_RUN_PAGES : 0; /* static */
	cr_assert_eq(__atomic_load_n(&pool.used_pages, __ATOMIC_RELAXED), zero_run,
		     "every frame, tables included, back in the pool");
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
}

TestSuite(address_space, .init = setup, .fini = teardown, .timeout = 30);

/* The CPU's page walk for linear address gpa: the leaf entry, following
 * table addresses as offsets into the pool (the emulator's physical
 * memory), or 0 where a level is not present. */
static uint64_t walk(uint64_t gpa)
{
	struct guest_page_table pt;
	cr_assert_eq(guest_memory_page_table(mem, &pt), 0);
	cr_assert_eq(pt.phys, pool.base);
	cr_assert_eq(pt.phys_bytes, pool.nframes * FRAME_SIZE);
	uint64_t table = pt.root;
	for (int level = 3; level >= 0; level--) {
		cr_assert_lt(table, pt.phys_bytes, "a table outside the pool");
		cr_assert_eq(table % FRAME_SIZE, 0);
		uint64_t entry =
			((uint64_t *)((uint8_t *)pt.phys + table))[(gpa >> (12 + 9 * level)) & 511];
		if (level == 0)
			return entry;
		if (!(entry & SEPT_PRESENT))
			return 0;
		cr_assert_eq(entry & 0xfff, SEPT_TABLE_FLAGS, "an interior entry is P|W|U");
		table = entry & 0x000ffffffffff000ull;
	}
	return 0;
}

static uint8_t *page_bytes(uint64_t gpa)
{
	uint64_t e = walk(gpa);
	cr_assert(e & SEPT_PRESENT);
	return frame_pool_address(&pool, sept_frame(e)) + gpa % FRAME_SIZE;
}

Test(address_space, the_tables_are_pool_frames_the_cpu_can_walk)
{
	uint64_t gpa = 3ull << 20;
	cr_assert_eq(walk(gpa), 0, "untouched: not present");
	cr_assert_eq(guest_memory_cpu_fault(mem, gpa + 8), GUEST_CPU_FAULT_RETRY);
	uint64_t e = walk(gpa);
	cr_assert_eq(e & (SEPT_PRESENT | SEPT_WRITABLE | SEPT_USER),
		     SEPT_PRESENT | SEPT_WRITABLE | SEPT_USER);
	cr_assert_eq(e & ((1ull << 3) | (1ull << 4) | (1ull << 7) | (1ull << 63)), 0,
		     "no caching, PAT or NX bits");
	/* Fault-around: the aligned 64 KiB block came with it, one fault. */
	for (uint64_t g = 0; g < 16; g++)
		cr_assert(walk(gpa + g * FRAME_SIZE) & SEPT_PRESENT);
	cr_assert_eq(walk(gpa + 16 * FRAME_SIZE), 0);
	struct guest_memory_stats s;
	guest_memory_get_stats(mem, &s);
	cr_assert_eq(s.cpu_faults, 1);
	cr_assert_eq(s.faults, 1);
	cr_assert_eq(s.rss_pages, 16);
	/* The root, two interior tables and two leaf tables: page 0's (its
	 * guard entry, see below) and this block's. */
	cr_assert_eq(s.sept_bytes, 5 * FRAME_SIZE, "%llu", (unsigned long long)s.sept_bytes);
	cr_assert_eq(__atomic_load_n(&pool.used_pages, __ATOMIC_RELAXED), 16 + 5,
		     "the tables are counted in the pool");
	cr_assert_eq(flushes, 0, "making pages present needs no flush");
	/* The CPU's store lands in the frame mm reads. */
	memcpy(page_bytes(gpa + 100), "hello", 6);
	char back[6];
	cr_assert_eq(guest_memory_read(mem, gpa + 100, back, 6), 0);
	cr_assert_str_eq(back, "hello");
}

Test(address_space, page_0_and_the_boot_area_keep_the_guests_access)
{
	cr_assert_eq(guest_memory_cpu_fault(mem, 8), GUEST_CPU_FAULT_GUEST,
		     "page 0: a null pointer");
	cr_assert_eq(guest_memory_cpu_fault(mem, 2 * FRAME_SIZE), GUEST_CPU_FAULT_GUEST,
		     "the boot area from CPL 3");
	cr_assert_eq(guest_memory_cpu_fault(mem, VM_BYTES), GUEST_CPU_FAULT_OUTSIDE);
	cr_assert_eq(guest_memory_cpu_fault(mem, VM_BYTES + (1ull << 40)), GUEST_CPU_FAULT_OUTSIDE);
	/* The VMM writes the boot area; it is present for CPL 0 only, the boot
	 * info page for CPL 3 too. */
	static const uint8_t data[FRAME_SIZE * 5];
	cr_assert_eq(guest_memory_write(mem, FRAME_SIZE, data, sizeof(data)), 0);
	uint64_t boot = walk(2 * FRAME_SIZE), info = walk(BOOT_INFO_GFN * FRAME_SIZE);
	cr_assert(boot & SEPT_PRESENT);
	cr_assert_not(boot & SEPT_USER);
	cr_assert(info & SEPT_USER);
	/* Page 0 never gets a frame, not even from a fault-around block or a
	 * VMM write next to it: the CPU must find it absent. */
	cr_assert_not(walk(0) & SEPT_PRESENT);
	cr_assert_neq(guest_memory_write(mem, 0, data, 8), 0);
	cr_assert_not(walk(0) & SEPT_PRESENT);
	cr_assert_eq(fatal_calls, 0);
}

/* A page merged into the zero run: the CPU reads zeroes through a read-only
 * translation (a flush, since its old translation was writable); its write
 * faults into a copy-on-write (another flush: code translated from the old
 * frame must not run). */
Test(address_space, merge_and_copy_on_write_are_entry_writes_and_flushes)
{
	uint64_t gpa = 2ull << 20, gfn = gpa / FRAME_SIZE;
	cr_assert_eq(guest_memory_cpu_fault(mem, gpa), GUEST_CPU_FAULT_RETRY);
	uint64_t old_frame = sept_frame(walk(gpa));
	int64_t zero = frame_pool_zero_run(&pool);
	cr_assert_geq(zero, 0);
	struct guest_merge m = {gfn, old_frame, (uint64_t)zero + gfn % FRAME_POOL_ZERO_RUN_PAGES,
				NULL};
	bool ok;
	int before = flushes;
	cr_assert_eq(guest_memory_merge(mem, &m, 1, &ok, false), 1);
	cr_assert(ok);
	cr_assert_gt(flushes, before, "a merge takes the writable translation away");
	uint64_t e = walk(gpa);
	cr_assert_eq(sept_frame(e), m.new_frame);
	cr_assert_eq(e & (SEPT_PRESENT | SEPT_WRITABLE | SEPT_USER), SEPT_PRESENT | SEPT_USER);

	before = flushes;
	cr_assert_eq(guest_memory_cpu_fault(mem, gpa + 16), GUEST_CPU_FAULT_RETRY);
	e = walk(gpa);
	cr_assert_eq(e & (SEPT_PRESENT | SEPT_WRITABLE | SEPT_USER),
		     SEPT_PRESENT | SEPT_WRITABLE | SEPT_USER);
	cr_assert_neq(sept_frame(e), m.new_frame, "a private copy");
	cr_assert_gt(flushes, before);
	struct guest_memory_stats s;
	guest_memory_get_stats(mem, &s);
	cr_assert_eq(s.cow_pages, 1);
	cr_assert_eq(s.ksm_zero_pages, 0);
}

/* A present, writable entry that faults means the TLB held an older
 * translation: a flush and the instruction again. One that keeps faulting
 * is a bug, and ends the VM rather than spinning the vCPU for ever. */
Test(address_space, a_fault_that_does_not_go_away_ends_the_vm)
{
	uint64_t gpa = 4ull << 20;
	cr_assert_eq(guest_memory_cpu_fault(mem, gpa), GUEST_CPU_FAULT_RETRY);
	int before = flushes;
	cr_assert_eq(guest_memory_cpu_fault(mem, gpa), GUEST_CPU_FAULT_RETRY);
	cr_assert_eq(flushes, before + 1);
	enum guest_cpu_fault f = GUEST_CPU_FAULT_RETRY;
	for (int i = 0; i < 5 && f == GUEST_CPU_FAULT_RETRY; i++)
		f = guest_memory_cpu_fault(mem, gpa);
	cr_assert_eq(f, GUEST_CPU_FAULT_ENDED);
	cr_assert_eq(fatal_calls, 1);
	cr_assert_eq(guest_memory_cpu_fault(mem, gpa + (1ull << 20)), GUEST_CPU_FAULT_ENDED,
		     "a failed VM's faults end its run");
}

Test(address_space, the_cpus_accessed_and_dirty_bits_are_the_access_log)
{
	recreate(GUEST_ACCESS_LOG_ACCESSED_BITS);
	uint64_t read_gpa = 5ull << 20, written_gpa = read_gpa + FRAME_SIZE;
	cr_assert_eq(guest_memory_cpu_fault(mem, read_gpa), GUEST_CPU_FAULT_RETRY);
	/* A first harvest clears what populating set. */
	guest_memory_harvest(mem, 0);
	cr_assert_not(walk(read_gpa) & (SEPT_ACCESSED | SEPT_DIRTY));
	int before = flushes;
	/* The CPU reads one page and writes the other. */
	uint64_t *leaf_read = sept_entry_slot(&mem->sept, read_gpa / FRAME_SIZE, 0);
	uint64_t *leaf_written = sept_entry_slot(&mem->sept, written_gpa / FRAME_SIZE, 0);
	__atomic_or_fetch(leaf_read, SEPT_ACCESSED, __ATOMIC_RELAXED);
	__atomic_or_fetch(leaf_written, SEPT_ACCESSED | SEPT_DIRTY, __ATOMIC_RELAXED);
	struct timespec ms = {0, 2000000};
	nanosleep(&ms, NULL);
	uint32_t t0 = mm_clock_ms();
	cr_assert_eq(guest_memory_harvest(mem, 0), 1);
	cr_assert_gt(flushes, before, "without a flush the CPU would not set the bits again");
	cr_assert_geq(guest_memory_last_access(mem, read_gpa / FRAME_SIZE), t0, "reads count");
	cr_assert_geq(guest_memory_last_access(mem, written_gpa / FRAME_SIZE), t0);
	cr_assert_lt(guest_memory_last_access(mem, read_gpa / FRAME_SIZE + 2), t0,
		     "an unused page stays old");
	cr_assert_not(guest_memory_recently_dirty(mem, read_gpa / FRAME_SIZE));
	cr_assert(guest_memory_recently_dirty(mem, written_gpa / FRAME_SIZE));
	/* KSM's volatility is about writes: a page only read is not young
	 * there (its code, say, must be able to merge). */
	cr_assert_lt(guest_memory_last_write(mem, read_gpa / FRAME_SIZE), t0);
	cr_assert_geq(guest_memory_last_write(mem, written_gpa / FRAME_SIZE), t0);
	cr_assert_not(walk(read_gpa) & (SEPT_ACCESSED | SEPT_DIRTY), "taken and cleared");
	cr_assert_not(walk(written_gpa) & (SEPT_ACCESSED | SEPT_DIRTY));
}

Test(address_space, the_owned_page_table_refuses_a_log_it_cannot_keep)
{
	char err[256];
	struct guest_memory *other = NULL;
	struct guest_memory_config mc = config(GUEST_ACCESS_LOG_WRITE_PROTECT);
	uint64_t used = __atomic_load_n(&pool.used_pages, __ATOMIC_RELAXED);
	cr_assert_neq(guest_memory_create(&other, &mc, err, sizeof(err)), 0);
	cr_assert(strstr(err, "access log"), "%s", err);
	mc.realiser = GUEST_REALISER_HOST;
	mc.access_log = GUEST_ACCESS_LOG_ACCESSED_BITS;
	cr_assert_neq(guest_memory_create(&other, &mc, err, sizeof(err)), 0);
	cr_assert(strstr(err, "owned page table"), "%s", err);
	cr_assert_eq(__atomic_load_n(&pool.used_pages, __ATOMIC_RELAXED), used, "nothing kept");
}

Test(address_space, the_registry_hands_out_ids_and_iterates_round_from_any_start)
{
	struct guest_registry reg;
	guest_registry_init(&reg);
	struct guest_memory *vm[3] = {(struct guest_memory *)0x1000, (struct guest_memory *)0x2000,
				      (struct guest_memory *)0x3000};
	int id[3];
	for (int i = 0; i < 3; i++)
		id[i] = guest_registry_add(&reg, vm[i]);
	cr_assert_eq(id[0], 1, "the lowest free id first");
	cr_assert_eq(id[2], 3);
	guest_registry_remove(&reg, id[1]);
	guest_registry_lock(&reg);
	cr_assert_null(guest_registry_get(&reg, (unsigned)id[1]));
	cr_assert_eq(guest_registry_get(&reg, (unsigned)id[2]), vm[2]);
	/* From after id 1: 3 first, then round to 1; each once. */
	struct guest_registry_iter it = guest_registry_iter(1);
	cr_assert_eq(guest_registry_next(&reg, &it), vm[2]);
	cr_assert_eq(guest_registry_next(&reg, &it), vm[0]);
	cr_assert_null(guest_registry_next(&reg, &it));
	guest_registry_unlock(&reg);
	cr_assert_eq(guest_registry_add(&reg, vm[1]), id[1], "a removed id is free again");
	guest_registry_destroy(&reg);
}
