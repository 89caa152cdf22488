/*
 * test_frame_reuse.c - a frame one VM frees and another VM gets reads as
 * zeroes, on every path that frees frames: tear-down, copy-on-write, swap-out,
 * KSM merging, the OOM killer.
 *
 * Every VM's memory comes from the one frame pool, so a frame a VM gives back
 * soon becomes another VM's page: if it still held the old bytes, the next VM
 * would read the previous owner's data. Another VM must never see it. The
 * pool's guarantee (mm/frame_pool.h): a free frame is a hole in the memfd.
 * frame_pool_free(), the one place frames go back to the buddy, punches the
 * hole first (and zeroes the frame if it cannot); allocation does not zero,
 * it relies on that.
 *
 * Each test has VM A fill pages with recognisable data, frees A's frames by one
 * path, checks that every freed frame is a hole and reads zero, then has VM B
 * (same pool) take frames until it certainly holds those very frames. The pool
 * is small and B takes every free frame (or, for copy-on-write, takes frames
 * until it gets the one just freed). The frame numbers are checked through the
 * sEPTs. Then every byte B did not write must read zero, through
 * guest_memory_read() and through B's host mapping, which is what its guest
 * sees.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/fault_inject.h"
#include "ksm/ksm.h"
#include "mm/fault_thread.h"
#include "mm/frame_pool.h"
#include "mm/guest_memory.h"
#include "mm/guest_memory_internal.h"
#include "mm/guest_registry.h"
#include "mm/reclaim.h"
#include "mm/rmap.h"
#include "mm/sept.h"
#include "pattern_content.h"
#include "test_support.h"

static struct guest_registry registry;

#define POOL_FRAMES 256u /* 1 MiB: B can take every free frame */
#define VM_BYTES (2ull << 20)
#define VM_PAGES (VM_BYTES / FRAME_SIZE) /* more than the pool */
#define GUEST_READS 8			 /* pages B's guest reads (never writes) before the rest */
#define PAIRS 16			 /* KSM tests: A's pages g and g + PAIRS are identical */
/* A's page contents: keyed patterns ("SECRET" data), never zero. */
#define A_KEY(g) (0x5EC2E7000000ull + (g))
#define B_MARKER 0xB0B0B0B000000000ull /* what B writes at offset 0 */

enum { A, B, NVMS };

struct fake_vm {
	int killed; /* atomic */
	char why[256];
	int hold_wake; /* atomic: may_wake says no */
};

static struct frame_pool pool;
static struct fault_thread faults;
static struct reclaim *reclaim;
static struct ksm *ksm;
static struct guest_memory *vms[NVMS];
static struct fake_vm fakes[NVMS];
static char swap_path[64];

/* B's pages [0, b_next) are present; b_marked: B wrote its marker there
 * (8 bytes at offset 0), else B wrote nothing there at all. */
static uint64_t b_next;
static uint8_t b_marked[VM_PAGES];

static void fake_pause(void *ctx)
{
	(void)ctx;
}

static void fake_resume(void *ctx)
{
	(void)ctx;
}

/* The access log shows nothing: every page is old, none is volatile. */
static int fake_dirty_log(void *ctx, uint64_t *bitmap)
{
	(void)ctx;
	memset(bitmap, 0, VM_PAGES / 8);
	return 0;
}

static void fake_fatal(void *ctx, const char *message)
{
	struct fake_vm *f = ctx;
	snprintf(f->why, sizeof(f->why), "%s", message);
	__atomic_store_n(&f->killed, 1, __ATOMIC_RELEASE);
}

static bool fake_may_wake(void *ctx)
{
	return !__atomic_load_n(&((struct fake_vm *)ctx)->hold_wake, __ATOMIC_ACQUIRE);
}

static const struct guest_memory_ops fake_ops = {
	.pause = fake_pause,
	.resume = fake_resume,
	.dirty_log = fake_dirty_log,
	.fatal = fake_fatal,
	.may_wake = fake_may_wake,
};

/* The pool, the fault thread, A and B; reclaim (with a swap file if
 * with_swap) and KSM (scanning A only, driven by ksm_scan_batch()) if asked. */
static void setup(bool with_reclaim, bool with_swap, bool with_ksm)
{
	char err[256];
	cr_assert_eq(rmap_init(), 0);
	cr_assert_eq(frame_pool_create(&pool, POOL_FRAMES * FRAME_SIZE, err, sizeof(err)), 0, "%s",
		     err);
	guest_registry_init(&registry);
	cr_assert_eq(fault_thread_start(&faults, 0), 0);
	reclaim = NULL;
	ksm = NULL;
	swap_path[0] = 0;
	if (with_reclaim) {
		struct reclaim_config rc;
		reclaim_config_default(&rc);
		rc.registry = &registry;
		if (with_swap) {
			snprintf(swap_path, sizeof(swap_path), "/var/tmp/vmm-test-reuse-%d.swap",
				 getpid());
			unlink(swap_path);
			remove_at_exit(swap_path);
			rc.swap_path = swap_path;
			rc.swap_bytes = 4ull << 20;
		}
		rc.harvest_ms = 1;
		cr_assert_eq(reclaim_create(&reclaim, &pool, &rc, err, sizeof(err)), 0, "%s", err);
		if (with_swap)
			unlink(swap_path); /* the device keeps its fd: a crash leaves no file */
	}
	memset(fakes, 0, sizeof(fakes));
	for (unsigned i = 0; i < NVMS; i++) {
		struct guest_memory_config mc = {.bytes = VM_BYTES,
						 .backing = GUEST_MEMORY_POOL,
						 .pool = &pool,
						 .registry = &registry,
						 .faults = &faults,
						 .fault_around_pages = 1,
						 .ops = &fake_ops,
						 .ops_ctx = &fakes[i],
						 .access_log = GUEST_ACCESS_LOG_DIRTY_LOG,
						 .reclaim = reclaim};
		cr_assert_eq(guest_memory_create(&vms[i], &mc, err, sizeof(err)), 0, "%s", err);
	}
	if (with_ksm) {
		struct ksm_config cfg;
		ksm_config_default(&cfg);
		cfg.max_rate = true;
		cfg.stable_age_ms = 0;
		cfg.use_zero_pages = false; /* the zero run would take 512 frames */
		cr_assert_eq(ksm_create(&ksm, &pool, &cfg), 0);
		cr_assert_eq(ksm_add_vm(ksm, vms[A]), 0);
	}
	b_next = 0;
	memset(b_marked, 0, sizeof(b_marked));
}

static void teardown(void)
{
	for (unsigned i = 0; i < NVMS; i++) {
		if (!vms[i])
			continue;
		if (ksm)
			ksm_remove_vm(ksm, vms[i]);
		guest_memory_destroy(vms[i]);
		vms[i] = NULL;
	}
	if (ksm)
		ksm_destroy(ksm);
	fault_thread_stop(&faults);
	if (reclaim)
		reclaim_destroy(reclaim);
	guest_registry_destroy(&registry);
	frame_pool_destroy(&pool);
	rmap_exit();
	if (swap_path[0])
		unlink(swap_path);
}

/* --- frames and sEPT entries --- */

static sept_entry entry_of(struct guest_memory *mem, uint64_t gfn)
{
	pthread_mutex_lock(&mem->lock);
	sept_entry e = sept_lookup(&mem->sept, gfn);
	pthread_mutex_unlock(&mem->lock);
	return e;
}

/* Marks the frames mem's present pages map; returns how many. */
static unsigned frames_of(struct guest_memory *mem, bool owned[POOL_FRAMES])
{
	unsigned n = 0;
	memset(owned, 0, POOL_FRAMES * sizeof(*owned));
	for (uint64_t gfn = 0; gfn < VM_PAGES; gfn++) {
		sept_entry e = entry_of(mem, gfn);
		if (!sept_is_present(e))
			continue;
		uint64_t f = sept_frame(e);
		cr_assert_lt(f, POOL_FRAMES, "gfn %lu maps frame %lu, outside the pool",
			     (unsigned long)gfn, (unsigned long)f);
		if (!owned[f]) {
			owned[f] = true;
			n++;
		}
	}
	return n;
}

static uint64_t free_frames(void)
{
	struct frame_pool_stats s;
	frame_pool_get_stats(&pool, &s);
	return s.free_pages;
}

static size_t first_nonzero(const uint8_t *p, size_t from, size_t n)
{
	for (size_t i = from; i < n; i++)
		if (p[i])
			return i;
	return n;
}

/* A freed frame's bytes, read from the memfd (pread does not fill a hole). */
static void expect_frame_zero(uint64_t frame)
{
	uint8_t buf[FRAME_SIZE];
	cr_assert_eq(pread(pool.memfd, buf, sizeof(buf), (off_t)(frame * FRAME_SIZE)),
		     (ssize_t)sizeof(buf));
	size_t at = first_nonzero(buf, 0, sizeof(buf));
	cr_assert_eq(at, sizeof(buf),
		     "freed frame %lu still holds its old owner's data: byte %zu is 0x%02x",
		     (unsigned long)frame, at, at < sizeof(buf) ? buf[at] : 0);
}

/* Whether the host may back the memfd with huge pages (shmem THP): punching
 * 4 KiB inside a huge page zeroes it in place instead of freeing it. */
static bool shmem_thp_possible(void)
{
	char mode[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
	if (f) {
		if (!fgets(mode, sizeof(mode), f))
			mode[0] = 0;
		fclose(f);
	}
	return strstr(mode, "[always]") || strstr(mode, "[within_size]") || strstr(mode, "[force]");
}

/* The guarantee of frame_pool.h: a free frame is a hole, reading zeroes
 * (with shmem THP on, a frame inside a huge page is zeroed in place). */
static void expect_hole(uint64_t frame)
{
	if (!shmem_thp_possible()) {
		unsigned char backed = 1;
		frame_pool_backed(&pool, frame, 1, &backed);
		cr_assert_eq(backed, 0,
			     "freed frame %lu is not a hole: its memory was not punched out",
			     (unsigned long)frame);
	}
	expect_frame_zero(frame);
}

/* --- VM A: the previous owner --- */

/* As A's guest would: through its host mapping (first touch by the fault
 * thread). */
static void a_guest_writes(uint64_t gfn, uint64_t key)
{
	uint64_t *page = (uint64_t *)((uint8_t *)guest_memory_host_base(vms[A]) + gfn * FRAME_SIZE);
	pattern_fill_page(page, key);
}

static int a_vmm_writes(uint64_t gfn, uint64_t key)
{
	uint64_t page[PATTERN_WORDS_PER_PAGE];
	pattern_fill_page(page, key);
	return guest_memory_write(vms[A], gfn * FRAME_SIZE, page, sizeof(page));
}

/* A's content: pages g and g + PAIRS (g < PAIRS) identical, all others unique. */
static uint64_t a_key(uint64_t gfn)
{
	return A_KEY(gfn < 2 * PAIRS ? gfn % PAIRS : gfn);
}

/* A writes pages [0, n): the first by_guest through its guest, the rest
 * through the VMM. */
static void a_writes(uint64_t n, uint64_t by_guest)
{
	for (uint64_t g = 0; g < n; g++) {
		if (g < by_guest)
			a_guest_writes(g, a_key(g));
		else
			cr_assert_eq(a_vmm_writes(g, a_key(g)), 0, "A's page %lu",
				     (unsigned long)g);
	}
}

/* A writes pages until the pool is exhausted; returns how many it holds. */
static uint64_t a_fills_the_pool(uint64_t by_guest)
{
	a_writes(by_guest, by_guest);
	uint64_t g = by_guest;
	while (g < VM_PAGES && a_vmm_writes(g, a_key(g)) == 0)
		g++;
	cr_assert_eq(free_frames(), 0, "A did not get every frame");
	return g;
}

/* --- VM B: the next owner --- */

/* B's VMM writes its marker to its next page; returns the frame it got, or
 * -1 when the pool is exhausted. */
static int64_t b_takes_a_frame(void)
{
	uint64_t gfn = b_next;
	cr_assert_lt(gfn, VM_PAGES);
	uint64_t marker = B_MARKER | gfn;
	if (guest_memory_write(vms[B], gfn * FRAME_SIZE, &marker, sizeof(marker)))
		return -1;
	b_marked[gfn] = 1;
	b_next++;
	sept_entry e = entry_of(vms[B], gfn);
	cr_assert(sept_is_present(e));
	return (int64_t)sept_frame(e);
}

static unsigned b_takes_every_frame(void)
{
	unsigned n = 0;
	while (b_takes_a_frame() >= 0)
		n++;
	cr_assert_eq(free_frames(), 0);
	return n;
}

/* Checks one of B's pages as read through `how`. */
static void check_b_page(const uint8_t *page, uint64_t gfn, const char *how)
{
	size_t from = 0;
	if (b_marked[gfn]) {
		uint64_t marker;
		memcpy(&marker, page, sizeof(marker));
		cr_assert_eq(marker, B_MARKER | gfn, "B's page %lu lost its marker (%s)",
			     (unsigned long)gfn, how);
		from = sizeof(marker);
	}
	size_t at = first_nonzero(page, from, FRAME_SIZE);
	cr_assert_eq(at, FRAME_SIZE,
		     "B reads another VM's data: page %lu (frame %lu) byte %zu is 0x%02x through "
		     "%s, and B never wrote it",
		     (unsigned long)gfn, (unsigned long)sept_frame(entry_of(vms[B], gfn)), at,
		     at < FRAME_SIZE ? page[at] : 0, how);
}

/* B's guest reads n pages it never touched: the fault thread gives it frames,
 * which must read zero. Needs n free frames (with swap, above the min
 * watermark: below it a fault reclaims before it allocates). */
static void b_guest_reads(unsigned n)
{
	buddy_drain_pcp(&pool.buddy); /* so that the estimate is exact */
	uint64_t reserve = reclaim && reclaim_has_swap(reclaim) ? pool.buddy.wmark.min : 0;
	cr_assert_geq(buddy_free_pages_estimate(&pool.buddy), reserve + n);
	const uint8_t *base = guest_memory_host_base(vms[B]);
	for (unsigned i = 0; i < n; i++) {
		uint64_t gfn = b_next++;
		uint8_t page[FRAME_SIZE];
		memcpy(page, base + gfn * FRAME_SIZE, FRAME_SIZE);
		cr_assert(sept_is_present(entry_of(vms[B], gfn)));
		check_b_page(page, gfn, "its guest's first read");
	}
}

/* Every page B has, through the VMM and through B's host mapping. */
static void b_reads_only_its_own_data(void)
{
	const uint8_t *base = guest_memory_host_base(vms[B]);
	for (uint64_t gfn = 0; gfn < b_next; gfn++) {
		uint8_t page[FRAME_SIZE];
		cr_assert_eq(guest_memory_page_state(vms[B], gfn), GUEST_PAGE_PRESENT);
		cr_assert_eq(guest_memory_read(vms[B], gfn * FRAME_SIZE, page, sizeof(page)), 0);
		check_b_page(page, gfn, "guest_memory_read");
		memcpy(page, base + gfn * FRAME_SIZE, FRAME_SIZE);
		check_b_page(page, gfn, "the host mapping");
	}
	cr_assert_not(__atomic_load_n(&fakes[B].killed, __ATOMIC_ACQUIRE), "B failed: %s",
		      fakes[B].why);
}

/* B holds every frame of `freed` (and, if exact, no other). */
static void expect_b_holds(const bool freed[POOL_FRAMES], unsigned nfreed, bool exact)
{
	bool held[POOL_FRAMES];
	unsigned n = frames_of(vms[B], held);
	for (unsigned f = 0; f < POOL_FRAMES; f++)
		cr_assert(!freed[f] || held[f], "frame %u, freed by A, did not go to B", f);
	if (exact)
		cr_assert_eq(n, nfreed, "B holds %u frames, A freed %u", n, nfreed);
}

/* The end of every scenario: B's guest touches fresh pages, B takes every
 * frame left, holds those `freed` (and, if exact, no other), and reads only
 * its own data: nothing of A's. */
static void b_reuses(const bool freed[POOL_FRAMES], unsigned nfreed, bool exact)
{
	b_guest_reads(GUEST_READS);
	b_takes_every_frame();
	expect_b_holds(freed, nfreed, exact);
	b_reads_only_its_own_data();
}

/* --- KSM --- */

/* Batches 2 ms apart: harvests are at most one per millisecond. */
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

/* --- the paths --- */

/* 1. Tear-down: A's memory is destroyed; B gets all of it. */
Test(frame_reuse, a_destroyed_vms_frames_read_as_zeroes_in_the_next_vm)
{
	setup(false, false, false);
	cr_assert_eq(a_fills_the_pool(32), POOL_FRAMES);
	bool a_frames[POOL_FRAMES];
	cr_assert_eq(frames_of(vms[A], a_frames), POOL_FRAMES);
	guest_memory_destroy(vms[A]);
	vms[A] = NULL;
	for (uint64_t f = 0; f < POOL_FRAMES; f++)
		expect_hole(f);
	b_reuses(a_frames, POOL_FRAMES, true);
	teardown();
}

/* 2. Copy-on-write: A's pages g and g + PAIRS are merged into shared frame
 * S_g; A writes both, the second copy-on-write drops S_g's last mapper and
 * frees it; B takes frames until it has S_g (the first it takes, in practice)
 * before A's next copy could reuse it. */
Test(frame_reuse, a_frame_freed_by_copy_on_write_reads_as_zeroes)
{
	setup(false, false, true);
	a_writes(2 * PAIRS, 0);
	struct ksm_stats s = full_scans(2);
	cr_assert_eq(s.pages_shared, PAIRS);
	cr_assert_eq(s.pages_sharing, PAIRS);
	uint64_t shared[PAIRS];
	for (uint64_t g = 0; g < PAIRS; g++) {
		sept_entry p = entry_of(vms[A], g), q = entry_of(vms[A], g + PAIRS);
		cr_assert(sept_is_present(p) && (p & SEPT_SHARED), "page %lu was not merged",
			  (unsigned long)g);
		cr_assert_eq(q, p, "pages %lu and %lu map different frames", (unsigned long)g,
			     (unsigned long)(g + PAIRS));
		shared[g] = sept_frame(p);
	}
	/* First copies: A's guest writes page g (a write-protect fault). */
	for (uint64_t g = 0; g < PAIRS; g++) {
		a_guest_writes(g, A_KEY(1000 + g));
		sept_entry p = entry_of(vms[A], g);
		cr_assert(!(p & SEPT_SHARED) && sept_frame(p) != shared[g],
			  "A's write did not copy page %lu", (unsigned long)g);
	}
	for (uint64_t g = 0; g < PAIRS; g++) {
		/* The last sharer leaves: S_g is freed. */
		cr_assert_eq(a_vmm_writes(g + PAIRS, A_KEY(2000 + g)), 0);
		sept_entry q = entry_of(vms[A], g + PAIRS);
		cr_assert(!(q & SEPT_SHARED) && sept_frame(q) != shared[g]);
		expect_hole(shared[g]);
		int64_t f;
		do {
			f = b_takes_a_frame();
			cr_assert_geq(f, 0, "B took every free frame but not frame %lu",
				      (unsigned long)shared[g]);
		} while ((uint64_t)f != shared[g]);
	}
	bool freed[POOL_FRAMES] = {false};
	for (uint64_t g = 0; g < PAIRS; g++)
		freed[shared[g]] = true;
	b_reuses(freed, PAIRS, false);
	teardown();
}

/* 3. Swap-out: reclaim evicts half of A's pages (written to the swap file,
 * not dropped); B gets exactly the frames they had. */
Test(frame_reuse, frames_freed_by_swap_out_read_as_zeroes)
{
	const size_t evict = POOL_FRAMES / 2;
	setup(true, true, false);
	cr_assert_eq(a_fills_the_pool(32), POOL_FRAMES);
	bool before[POOL_FRAMES], after[POOL_FRAMES], freed[POOL_FRAMES];
	frames_of(vms[A], before);
	cr_assert_eq(reclaim_memcg(reclaim, guest_memory_memcg(vms[A]), evict), evict);
	struct reclaim_stats rs;
	reclaim_get_stats(reclaim, &rs);
	cr_assert_eq(rs.pswpout, evict, "A's pages went to swap (%lu written)",
		     (unsigned long)rs.pswpout);
	unsigned swapped = 0;
	for (uint64_t g = 0; g < VM_PAGES; g++)
		swapped += guest_memory_page_state(vms[A], g) == GUEST_PAGE_SWAPPED;
	cr_assert_eq(swapped, evict);
	cr_assert_eq(frames_of(vms[A], after), POOL_FRAMES - evict);
	unsigned nfreed = 0;
	for (unsigned f = 0; f < POOL_FRAMES; f++) {
		freed[f] = before[f] && !after[f];
		if (freed[f]) {
			expect_hole(f);
			nfreed++;
		}
	}
	cr_assert_eq(nfreed, evict);
	b_reuses(freed, nfreed, true);
	teardown();
}

/* 4. Merge: KSM merges A's duplicate pages (g + PAIRS onto g's frame) and
 * frees the duplicates' frames; B gets exactly those. */
Test(frame_reuse, frames_freed_by_a_ksm_merge_read_as_zeroes)
{
	setup(false, false, true);
	cr_assert_eq(a_fills_the_pool(32), POOL_FRAMES);
	bool before[POOL_FRAMES], after[POOL_FRAMES], freed[POOL_FRAMES];
	frames_of(vms[A], before);
	struct ksm_stats s = full_scans(2);
	cr_assert_eq(s.pages_shared, PAIRS);
	cr_assert_eq(s.pages_sharing, PAIRS);
	for (uint64_t g = 0; g < PAIRS; g++)
		cr_assert_eq(entry_of(vms[A], g), entry_of(vms[A], g + PAIRS),
			     "pages %lu and %lu were not merged", (unsigned long)g,
			     (unsigned long)(g + PAIRS));
	cr_assert_eq(frames_of(vms[A], after), POOL_FRAMES - PAIRS);
	unsigned nfreed = 0;
	for (unsigned f = 0; f < POOL_FRAMES; f++) {
		freed[f] = before[f] && !after[f];
		if (freed[f]) {
			expect_hole(f);
			nfreed++;
		}
	}
	cr_assert_eq(nfreed, PAIRS);
	b_reuses(freed, nfreed, true);
	teardown();
}

/* 5. OOM kill. B's guest (its own thread) touches one page after another
 * until it holds the whole pool: when the pool runs out, its fault makes the
 * OOM killer pick A (the biggest); the VMM ends A and releases its memory, as
 * vm.c does, and B's fault, retried, goes on with A's frames. While the frames
 * are checked, B's vCPU stays blocked (may_wake says no). */
struct b_guest {
	uint64_t bad_gfn; /* first page whose fresh bytes were not zero, or UINT64_MAX */
	size_t bad_offset;
	uint8_t bad_byte;
	int done; /* atomic */
};

static void *b_guest_thread(void *arg)
{
	struct b_guest *bg = arg;
	uint8_t *base = guest_memory_host_base(vms[B]);
	for (uint64_t gfn = 0; gfn < POOL_FRAMES; gfn++) {
		volatile const uint8_t *page = base + gfn * FRAME_SIZE;
		for (size_t i = 0; i < FRAME_SIZE; i++) {
			uint8_t byte = page[i];
			if (byte && bg->bad_gfn == UINT64_MAX) {
				bg->bad_gfn = gfn;
				bg->bad_offset = i;
				bg->bad_byte = byte;
			}
		}
		*(volatile uint64_t *)page = B_MARKER | gfn;
		b_marked[gfn] = 1;
		b_next = gfn + 1;
	}
	__atomic_store_n(&bg->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool wait_for(const int *flag, double seconds)
{
	for (int i = 0; i < (int)(seconds * 1000); i++) {
		if (__atomic_load_n(flag, __ATOMIC_ACQUIRE))
			return true;
		usleep(1000);
	}
	return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

Test(frame_reuse, an_oom_killed_vms_frames_read_as_zeroes)
{
	const uint64_t a_pages = POOL_FRAMES * 3 / 4;
	setup(true, false, false); /* no swap: nothing to reclaim, only to kill */
	a_writes(a_pages, 32);
	bool a_frames[POOL_FRAMES];
	cr_assert_eq(frames_of(vms[A], a_frames), a_pages);
	struct b_guest bg = {.bad_gfn = UINT64_MAX};
	pthread_t vcpu;
	cr_assert_eq(pthread_create(&vcpu, NULL, b_guest_thread, &bg), 0);
	cr_assert(wait_for(&fakes[A].killed, 5), "the OOM killer did not end A");
	cr_assert(strstr(fakes[A].why, "killed by the OOM killer"), "%s", fakes[A].why);
	cr_assert_not(__atomic_load_n(&fakes[B].killed, __ATOMIC_ACQUIRE), "B failed: %s",
		      fakes[B].why);
	struct reclaim_stats rs;
	reclaim_get_stats(reclaim, &rs);
	cr_assert_eq(rs.oom_kills, 1);
	cr_assert_not(__atomic_load_n(&bg.done, __ATOMIC_ACQUIRE), "B ran on without a frame");
	/* The VMM releases the victim's memory. B's retried fault may get a
	 * frame meanwhile, but B's vCPU does not run until the check is done. */
	__atomic_store_n(&fakes[B].hold_wake, 1, __ATOMIC_RELEASE);
	guest_memory_destroy(vms[A]);
	vms[A] = NULL;
	for (unsigned f = 0; f < POOL_FRAMES; f++)
		if (a_frames[f])
			expect_hole(f);
	__atomic_store_n(&fakes[B].hold_wake, 0, __ATOMIC_RELEASE);
	guest_memory_wake(vms[B]);
	cr_assert(wait_for(&bg.done, 5), "B's guest did not finish (%lu pages)",
		  (unsigned long)b_next);
	pthread_join(vcpu, NULL);
	cr_assert_eq(bg.bad_gfn, UINT64_MAX,
		     "B's guest read another VM's data: page %lu byte %zu is 0x%02x",
		     (unsigned long)bg.bad_gfn, bg.bad_offset, bg.bad_byte);
	cr_assert_eq(b_next, POOL_FRAMES);
	expect_b_holds(a_frames, (unsigned)a_pages, false);
	bool b_frames[POOL_FRAMES];
	cr_assert_eq(frames_of(vms[B], b_frames), POOL_FRAMES, "B holds the whole pool");
	b_reads_only_its_own_data();
	teardown();
}

/* The fallback of frame_pool_free(): when the hole cannot be punched, the
 * frame is zeroed in place (tear-down, with every punch failing). */
Test(frame_reuse, a_frame_whose_hole_cannot_be_punched_is_zeroed)
{
	setup(false, false, false);
	cr_assert_eq(a_fills_the_pool(32), POOL_FRAMES);
	bool a_frames[POOL_FRAMES];
	cr_assert_eq(frames_of(vms[A], a_frames), POOL_FRAMES);
	fault_inject_set(FAULT_PUNCH_HOLE, 1000000, 1);
	guest_memory_destroy(vms[A]);
	vms[A] = NULL;
	cr_assert_gt(fault_inject_count(FAULT_PUNCH_HOLE), 0);
	fault_inject_reset();
	for (uint64_t f = 0; f < POOL_FRAMES; f++) {
		unsigned char backed = 0;
		frame_pool_backed(&pool, f, 1, &backed);
		cr_assert_eq(backed, 1, "frame %lu: the punch was not failed", (unsigned long)f);
		expect_frame_zero(f);
	}
	b_reuses(a_frames, POOL_FRAMES, true);
	teardown();
}
