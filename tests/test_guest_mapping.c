/* test_guest_mapping.c - placing frames in a VM's host range when the host
 * refuses part of it (io/fault_inject.h): a frame must never go back to the
 * pool while the guest can still reach it, and a shared frame must never
 * end up writable. Real guest memory and fault thread; the "guest" is a
 * thread of this test writing through the VM's host range.
 *
 * Found by review: a registration failing after the mmap freed frames that
 * stayed mapped, and the next VM to get them read the first one's data. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "io/fault_inject.h"
#include "mm/fault_thread.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/guest_memory_internal.h"
#include "mm/guest_registry.h"
#include "mm/rmap.h"

static struct guest_registry registry;

#define VM_BYTES (4ull << 20)
#define POOL_BYTES (16ull << 20)
static const char secret[] = "SECRET of the failed VM";

static struct frame_pool pool;
static struct fault_thread faults;
static struct guest_memory *mem;
static int fatal_calls;
static char fatal_message[256];

static const void *fatal_watch; /* a host address: did it map the pool at the failure? */
static int fatal_watch_mapped;
static int maps_the_pool(const void *addr);

static void fatal(void *ctx, const char *message)
{
	(void)ctx;
	__atomic_add_fetch(&fatal_calls, 1, __ATOMIC_RELAXED);
	snprintf(fatal_message, sizeof(fatal_message), "%s", message);
	if (fatal_watch)
		fatal_watch_mapped = maps_the_pool(fatal_watch);
}

static const struct guest_memory_ops ops = {.fatal = fatal};

static void create_vm(void)
{
	struct guest_memory_config mc = {.bytes = VM_BYTES,
					 .backing = GUEST_MEMORY_POOL,
					 .pool = &pool,
					 .registry = &registry,
					 .faults = &faults,
					 .fault_around_pages = 16,
					 .ops = &ops};
	char err[256];
	cr_assert_eq(guest_memory_create(&mem, &mc, err, sizeof(err)), 0, "%s", err);
}

static void setup(void)
{
	char err[256];
	fault_inject_reset();
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, POOL_BYTES, err, sizeof(err)), 0, "%s", err);
	guest_registry_init(&registry);
	cr_assert_eq(fault_thread_start(&faults, 0), 0);
	create_vm();
}

static void teardown(void)
{
	guest_memory_destroy(mem);
	fault_thread_stop(&faults);
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
	fault_inject_reset();
}

TestSuite(guest_mapping, .init = setup, .fini = teardown, .timeout = 30);

struct guest_write {
	uint64_t gpa;
	const char *text;
};

static void *guest_writes(void *arg)
{
	struct guest_write *w = arg;
	memcpy((uint8_t *)guest_memory_host_base(mem) + w->gpa, w->text, strlen(w->text) + 1);
	return NULL;
}

/* The guest writes `text` at gpa, as its vCPU would: through the host range,
 * blocking in a userfaultfd fault the fault thread serves. */
static void guest_write(uint64_t gpa, const char *text)
{
	pthread_t t;
	struct guest_write w = {gpa, text};
	cr_assert_eq(pthread_create(&t, NULL, guest_writes, &w), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
}

/* Whether `text` is anywhere in the pool's frames. */
static int pool_holds(const char *text)
{
	for (uint64_t f = 0; f < pool.nframes; f++)
		if (memmem(frame_pool_address(&pool, f), FRAME_SIZE, text, strlen(text)))
			return 1;
	return 0;
}

static void expect_failed_and_nothing_leaked(const char *what)
{
	cr_assert_eq(__atomic_load_n(&fatal_calls, __ATOMIC_RELAXED), 1, "%s: the VM failed", what);
	cr_assert(strstr(fatal_message, "cannot"), "%s: '%s'", what, fatal_message);
	cr_assert_eq(guest_memory_page_state(mem, 16), GUEST_PAGE_UNTOUCHED,
		     "%s: nothing recorded for the block that failed", what);
	cr_assert_eq(__atomic_load_n(&pool.used_pages, __ATOMIC_RELAXED), 0,
		     "%s: the block's frames are back in the pool", what);
	cr_assert_eq(pool.frames_lost, 0);
	cr_assert_not(pool_holds(secret), "%s: the guest's write reached a free frame", what);
}

Test(guest_mapping, a_failed_registration_frees_no_frame_the_guest_can_reach)
{
	fault_inject_set(FAULT_UFFD_REGISTER, 1, 1);
	guest_write(16 * FRAME_SIZE, secret);
	expect_failed_and_nothing_leaked("uffd-register");
	cr_assert_eq(fault_inject_count(FAULT_UFFD_REGISTER), 1);
}

Test(guest_mapping, a_failed_mmap_leaves_no_hole_and_frees_the_frames)
{
	fault_inject_set(FAULT_MMAP, 1, 1);
	guest_write(16 * FRAME_SIZE, secret); /* a hole would kill this process */
	expect_failed_and_nothing_leaked("mmap");
}

Test(guest_mapping, a_failed_frame_allocation_is_out_of_memory)
{
	fault_inject_set(FAULT_FRAME_ALLOC, 100, 1); /* every size fault-around tries */
	guest_write(16 * FRAME_SIZE, secret);
	cr_assert_eq(__atomic_load_n(&fatal_calls, __ATOMIC_RELAXED), 1);
	cr_assert(strstr(fatal_message, "out of memory"), "'%s'", fatal_message);
	cr_assert_eq(__atomic_load_n(&pool.used_pages, __ATOMIC_RELAXED), 0);
}

Test(guest_mapping, after_a_failure_the_vm_is_abandoned_not_hung)
{
	fault_inject_set(FAULT_UFFD_REGISTER, 1, 1);
	guest_write(16 * FRAME_SIZE, secret);
	/* Every later touch of the failed VM completes (on throwaway memory)
	 * instead of blocking for ever. */
	guest_write(900 * FRAME_SIZE, secret);
	guest_write(100 * FRAME_SIZE, secret);
	cr_assert_not(pool_holds(secret));
}

/* Whether the host page at addr maps the frame pool's memfd (/proc/self/maps
 * names it), rather than anonymous memory. */
static int maps_the_pool(const void *addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	cr_assert_not_null(f);
	char line[512];
	int found = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		if ((uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
			found = strstr(line, "vmm-frame-pool") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

/* The host operations a mapping makes, each failed in turn below. */
static const enum fault_kind map_failures[] = {FAULT_UFFD_REGISTER, FAULT_UFFD_WP, FAULT_MMAP};
#define MAP_FAILURES (sizeof(map_failures) / sizeof(map_failures[0]))

/* realiser_map() of a fresh frame at gfn, write-protected, with `kind`
 * failing once (it must be hit); the frame goes back to the pool after.
 * Returns the map's result. */
static int map_failing(enum fault_kind kind, uint64_t gfn)
{
	int64_t frame = frame_pool_alloc(&pool, 0);
	cr_assert_geq(frame, 0);
	fault_inject_set(kind, 1, 1);
	pthread_mutex_lock(&mem->lock);
	int error = realiser_map(mem, gfn, (uint64_t)frame, 1, REALISE_WRITE_PROTECT);
	pthread_mutex_unlock(&mem->lock);
	cr_assert_eq(fault_inject_count(kind), 1, "%s", fault_inject_name(kind));
	fault_inject_reset();
	frame_pool_free(&pool, (uint64_t)frame, 1);
	return error;
}

/* The host realiser's map() contract, whatever the caller does next: when it
 * fails with -errno (not -ENOTRECOVERABLE) the range no longer maps the
 * frames, so the caller may free them. A registration failing after the
 * mmap used to leave them mapped, unwatched: the VM's next touch (before
 * anything ended it) wrote into a frame the pool had handed on. */
Test(guest_mapping, a_failed_mapping_leaves_no_frame_mapped)
{
	for (unsigned k = 0; k < MAP_FAILURES; k++) {
		const char *name = fault_inject_name(map_failures[k]);
		uint64_t gfn = 200 + 16 * k;
		void *addr = (uint8_t *)guest_memory_host_base(mem) + gfn * FRAME_SIZE;
		int error = map_failing(map_failures[k], gfn);
		cr_assert_lt(error, 0, "%s", name);
		cr_assert_neq(error, -ENOTRECOVERABLE, "%s", name);
		cr_assert_not(maps_the_pool(addr), "%s: the frame is still mapped", name);
	}
}

/* Fault-ahead maps frames while the vCPU runs: once they are in place the
 * guest may write them, so when the realisation cannot be finished (the uffd
 * refuses the registration) the placeholder put back would lose those
 * writes, and the guest would read zeroes where its data was. The VM must be
 * failed, and before the frames leave its range, so that it ends as an error
 * rather than on what it read (found by test_e2e_stress on KVM: a guest
 * verifying its pages found zeroes). An mmap that fails places nothing: the
 * VM goes on. */
Test(guest_mapping, a_mapping_that_cannot_be_watched_fails_the_vm_before_unmapping)
{
	for (unsigned k = 0; k < MAP_FAILURES; k++) {
		const char *name = fault_inject_name(map_failures[k]);
		uint64_t gfn = 300 + 16 * k;
		int calls = __atomic_load_n(&fatal_calls, __ATOMIC_RELAXED);
		fatal_watch = (uint8_t *)guest_memory_host_base(mem) + gfn * FRAME_SIZE;
		fatal_watch_mapped = 0;
		int error = map_failing(map_failures[k], gfn);
		fatal_watch = NULL;
		cr_assert_lt(error, 0, "%s", name);
		if (map_failures[k] == FAULT_MMAP) {
			cr_assert_eq(__atomic_load_n(&fatal_calls, __ATOMIC_RELAXED), calls,
				     "%s: nothing was mapped, yet the VM was failed", name);
			continue;
		}
		cr_assert(guest_memory_dead(mem), "%s: the VM goes on", name);
		cr_assert_eq(fatal_calls, 1, "%s", name);
		cr_assert(fatal_watch_mapped,
			  "%s: the VM was failed only after its frames were replaced", name);
		cr_assert(strstr(fatal_message, "userfaultfd"), "%s: '%s'", name, fatal_message);
		/* guest_memory_fail reports once: a fresh VM for the next kind. */
		guest_memory_destroy(mem);
		fatal_calls = 0;
		create_vm();
	}
}
