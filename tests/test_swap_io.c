/* test_swap_io.c - the io_uring swap engine: data integrity, checksums, injected
 * faults, the swap cache and concurrent rings, against a real O_DIRECT file. */
#include <criterion/criterion.h>

#include "vmm_process.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/fault_inject.h"
#include "io/swap_device.h"
#include "io/swap_io.h"

#define PAGE SWAP_PAGE_SIZE
#define SENTINEL 0xa5

static char path[256];
static struct swap_device *dev;

static void open_dev(uint64_t nslots)
{
	static unsigned seq;
	struct swap_device_config cfg = {.path = path, .size_bytes = nslots * PAGE};
	char err[256] = "";

	snprintf(path, sizeof(path), "/var/tmp/test_swap_io.%d.%u", getpid(), seq++);
	unlink(path);
	remove_at_exit(path);
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), 0, "open: %s", err);
}

static struct swap_io *new_io(unsigned depth)
{
	struct swap_io *io;
	int ret = swap_io_create(dev, depth, &io);

	cr_assert_eq(ret, 0, "swap_io_create: %s", strerror(-ret));
	return io;
}

static void setup(void)
{
	open_dev(4096);
}

static void teardown(void)
{
	swap_device_close(dev);
}

/* Distinct contents per (slot, generation): every 8-byte word differs. */
static void fill_page(void *page, uint64_t slot, uint64_t gen)
{
	uint64_t *w = page, x = (slot + 1) * 0x9e3779b97f4a7c15ull ^ gen * 0xbf58476d1ce4e5b9ull;

	for (unsigned i = 0; i < PAGE / 8; i++) {
		x ^= x >> 31;
		x *= 0x94d049bb133111ebull;
		x += i;
		w[i] = x;
	}
}

static bool page_ok(const void *page, uint64_t slot, uint64_t gen)
{
	uint8_t expect[PAGE];

	fill_page(expect, slot, gen);
	return memcmp(page, expect, PAGE) == 0;
}

static bool all_bytes(const void *p, uint8_t v, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != v)
			return false;
	return true;
}

static uint64_t alloc_slots(unsigned n)
{
	uint64_t first, next;

	cr_assert_eq(swap_slot_alloc_run(dev, 0, 1, &first), 1);
	for (unsigned i = 1; i < n; i++) {
		cr_assert_eq(swap_slot_alloc_run(dev, 0, 1, &next), 1);
		cr_assert_eq(next, first + i, "slots not consecutive");
	}
	return first;
}

/* Completion recorder. */
struct results {
	unsigned n;
	uint64_t cookies[4096];
	int status[4096];
};

static void record(void *ctx, uint64_t cookie, int status)
{
	struct results *r = ctx;

	cr_assert_lt(r->n, 4096);
	r->cookies[r->n] = cookie;
	r->status[r->n] = status;
	r->n++;
}

static void reap_all(struct swap_io *io, struct results *r)
{
	while (swap_io_in_flight(io)) {
		cr_assert_geq(swap_io_submit(io), 0);
		cr_assert_geq(swap_io_reap(io, 1, record, r), 0);
	}
}

/* ---- Data integrity ---- */

Test(swap_io, write_then_read_back_batched, .init = setup, .fini = teardown)
{
	const unsigned n = 2000, batch = 32;
	struct swap_io *io = new_io(64);
	struct results *r = calloc(1, sizeof(*r));
	uint8_t *page = malloc(PAGE), *raw = malloc(16 * PAGE + 1), *dst = raw + 1;
	uint64_t first = alloc_slots(n), pages_read = 0;
	struct swap_device_stats st;

	for (unsigned i = 0; i < n; i += batch) {
		/* Keep up to two batches in flight. */
		while (swap_io_in_flight(io) > swap_io_depth(io) - batch)
			cr_assert_geq(swap_io_reap(io, 1, record, r), 1);
		for (unsigned j = i; j < i + batch && j < n; j++) {
			fill_page(page, first + j, 1);
			cr_assert_eq(swap_io_queue_write(io, first + j, page, 0, j), 0);
		}
		memset(page, 0, PAGE); /* the engine copied it: reusing it is fine */
		cr_assert_eq(swap_io_submit(io), (int)(i + batch <= n ? batch : n - i));
		cr_assert_geq(swap_io_reap(io, 0, record, r), 0);
	}
	reap_all(io, r);
	cr_assert_eq(r->n, n);
	for (unsigned i = 0; i < n; i++) {
		cr_assert_eq(r->status[i], 0, "write %lu: %s", r->cookies[i],
			     strerror(-r->status[i]));
		cr_assert_lt(r->cookies[i], n);
	}

	/* Single-slot synchronous reads. */
	for (unsigned i = 0; i < 300; i++) {
		cr_assert_eq(swap_io_read_sync(io, first + i, 1, dst, NULL), 0);
		cr_assert(page_ok(dst, first + i, 1), "slot %lu corrupted", first + i);
		pages_read++;
	}
	/* Multi-slot reads of 1..16, several per submit, into an unaligned buffer. */
	for (unsigned i = 300; i < n;) {
		unsigned k = 1 + (i * 7) % 16;

		if (i + k > n)
			k = n - i;
		memset(raw, 0, 16 * PAGE + 1);
		r->n = 0;
		cr_assert_eq(swap_io_queue_read(io, first + i, k, dst, NULL, i), 0);
		reap_all(io, r);
		cr_assert_eq(r->n, 1);
		cr_assert_eq(r->status[0], 0, "read of %u at %u: %s", k, i,
			     strerror(-r->status[0]));
		for (unsigned j = 0; j < k; j++)
			cr_assert(page_ok(dst + j * PAGE, first + i + j, 1), "slot %lu corrupted",
				  first + i + j);
		pages_read += k;
		i += k;
	}
	/* Several reads in flight at once. */
	uint8_t *many = malloc(8 * 8 * PAGE);
	r->n = 0;
	for (unsigned k = 0; k < 8; k++)
		cr_assert_eq(swap_io_queue_read(io, first + 1000 + 8 * k, 8, many + k * 8 * PAGE,
						NULL, k),
			     0);
	reap_all(io, r);
	cr_assert_eq(r->n, 8);
	for (unsigned k = 0; k < 8; k++) {
		cr_assert_eq(r->status[k], 0);
		for (unsigned j = 0; j < 8; j++)
			cr_assert(page_ok(many + (8 * r->cookies[k] + j) * PAGE,
					  first + 1000 + 8 * r->cookies[k] + j, 1));
	}
	pages_read += 64;

	swap_device_get_stats(dev, &st);
	cr_assert_eq(st.writes, n);
	cr_assert_eq(st.bytes_written, (uint64_t)n * PAGE);
	cr_assert_eq(st.reads, pages_read);
	cr_assert_eq(st.bytes_read, pages_read * PAGE);
	cr_assert_eq(st.write_errors + st.read_errors + st.checksum_errors, 0);
	cr_assert_eq(st.free_slots, st.slots - n);
	free(many);
	free(page);
	free(raw);
	free(r);
	swap_io_destroy(io);
}

Test(swap_io, read_sync_longer_than_depth, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(8);
	uint8_t page[PAGE], *dst = malloc(20 * PAGE);
	uint64_t first = alloc_slots(20);

	for (unsigned i = 0; i < 20; i++) {
		fill_page(page, first + i, 3);
		cr_assert_eq(swap_io_write_sync(io, first + i, page, 0), 0);
	}
	cr_assert_eq(swap_io_queue_read(io, first, 9, dst, NULL, 0), -EINVAL, "n > depth");
	cr_assert_eq(swap_io_read_sync(io, first, 20, dst, NULL), 0);
	for (unsigned i = 0; i < 20; i++)
		cr_assert(page_ok(dst + i * PAGE, first + i, 3));
	free(dst);
	swap_io_destroy(io);
}

/* ---- Checksums ---- */

Test(swap_io, corruption_behind_the_device_is_detected, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], garbage[PAGE], *dst = malloc(4 * PAGE);
	uint64_t first = alloc_slots(4);
	struct swap_device_stats st;
	int fd;

	for (unsigned i = 0; i < 4; i++) {
		fill_page(page, first + i, 5);
		cr_assert_eq(swap_io_write_sync(io, first + i, page, 0), 0);
	}
	/* Garbage into slot first + 1 through a separate, buffered descriptor. */
	memset(garbage, 0x3c, PAGE);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, garbage, PAGE, (off_t)((first + 1) * PAGE)), PAGE);
	close(fd);

	memset(dst, SENTINEL, 4 * PAGE);
	cr_assert_eq(swap_io_read_sync(io, first + 1, 1, dst, NULL), -EBADMSG);
	cr_assert(all_bytes(dst, SENTINEL, PAGE), "dst was written by a failed read");
	/* One bad slot fails the whole multi-slot read, and nothing is copied. */
	cr_assert_eq(swap_io_read_sync(io, first, 4, dst, NULL), -EBADMSG);
	cr_assert(all_bytes(dst, SENTINEL, 4 * PAGE), "dst was written by a failed read");
	/* The neighbours are intact. */
	cr_assert_eq(swap_io_read_sync(io, first + 2, 2, dst, NULL), 0);
	cr_assert(page_ok(dst, first + 2, 5));
	cr_assert(page_ok(dst + PAGE, first + 3, 5));

	/* A slot never written does not verify either. */
	uint64_t fresh = alloc_slots(1);
	cr_assert_eq(swap_io_read_sync(io, fresh, 1, dst, NULL), -EBADMSG);

	swap_device_get_stats(dev, &st);
	cr_assert_eq(st.checksum_errors, 3);
	free(dst);
	swap_io_destroy(io);
}

/*
 * The checksum is seeded with the page's owner: a slot read as another
 * owner's page (a slot-accounting bug) fails verification, from the file and
 * from the swap cache, even though its bytes are intact.
 */
Test(swap_io, a_slot_read_as_another_owners_page_fails, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], *dst = malloc(2 * PAGE);
	uint64_t first = alloc_slots(2);
	const uint64_t owners[2] = {0x1000000001ull, 0x1000000002ull};
	const uint64_t swapped[2] = {owners[1], owners[0]};

	for (unsigned i = 0; i < 2; i++) {
		fill_page(page, first + i, 9);
		cr_assert_eq(swap_io_write_sync(io, first + i, page, owners[i]), 0);
	}
	cr_assert_eq(swap_io_read_sync(io, first, 2, dst, owners), 0);
	cr_assert(page_ok(dst, first, 9) && page_ok(dst + PAGE, first + 1, 9));
	cr_assert_eq(swap_io_read_sync(io, first, 2, dst, swapped), -EBADMSG);
	cr_assert_eq(swap_io_read_sync(io, first, 1, dst, NULL), -EBADMSG, "tag 0 is an owner too");

	/* A write in flight: the swap cache's copy verifies under its tag only. */
	fill_page(page, first, 10);
	cr_assert_eq(swap_io_queue_write(io, first, page, owners[0], 1), 0);
	cr_assert_eq(swap_cache_lookup(dev, first, dst), 1);
	cr_assert(swap_device_checksum_ok(dev, first, dst, owners[0]));
	cr_assert(!swap_device_checksum_ok(dev, first, dst, owners[1]));
	cr_assert_eq(swap_io_submit(io), 1);
	cr_assert_eq(swap_io_reap(io, 1, NULL, NULL), 1);
	free(dst);
	swap_io_destroy(io);
}

/* ---- Injected faults ---- */

Test(swap_io, injected_write_eio, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], dst[PAGE];
	uint64_t slot = alloc_slots(1);
	struct swap_device_stats st;

	fill_page(page, slot, 1);
	cr_assert_eq(swap_io_write_sync(io, slot, page, 0), 0);

	fill_page(page, slot, 2);
	fault_inject_set(FAULT_WRITE_EIO, 1, 1);
	cr_assert_eq(swap_io_write_sync(io, slot, page, 0), -EIO);
	swap_device_get_stats(dev, &st);
	cr_assert_eq(st.write_errors, 1);
	cr_assert_eq(swap_cache_lookup(dev, slot, dst), 0, "a failed write left the swap cache");
	/* The failed write never reached the file, which still holds generation 1. */
	cr_assert_eq(swap_io_read_sync(io, slot, 1, dst, NULL), -EBADMSG);

	/* The fault is used up: the next write works. */
	cr_assert_eq(swap_io_write_sync(io, slot, page, 0), 0);
	cr_assert_eq(swap_io_read_sync(io, slot, 1, dst, NULL), 0);
	cr_assert(page_ok(dst, slot, 2));
	swap_io_destroy(io);
}

Test(swap_io, injected_read_eio, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], *dst = malloc(2 * PAGE);
	uint64_t slot = alloc_slots(2);
	struct swap_device_stats st;

	for (unsigned i = 0; i < 2; i++) {
		fill_page(page, slot + i, 1);
		cr_assert_eq(swap_io_write_sync(io, slot + i, page, 0), 0);
	}
	fault_inject_set(FAULT_READ_EIO, 2, 1);
	memset(dst, SENTINEL, 2 * PAGE);
	cr_assert_eq(swap_io_read_sync(io, slot, 1, dst, NULL), -EIO);
	cr_assert_eq(swap_io_read_sync(io, slot, 2, dst, NULL), -EIO);
	cr_assert(all_bytes(dst, SENTINEL, 2 * PAGE), "dst was written by a failed read");
	swap_device_get_stats(dev, &st);
	cr_assert_eq(st.read_errors, 2);

	cr_assert_eq(swap_io_read_sync(io, slot, 2, dst, NULL), 0);
	cr_assert(page_ok(dst, slot, 1));
	cr_assert(page_ok(dst + PAGE, slot + 1, 1));
	free(dst);
	swap_io_destroy(io);
}

Test(swap_io, injected_short_read, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], *dst = malloc(3 * PAGE);
	uint64_t slot = alloc_slots(3);
	struct swap_device_stats st;

	for (unsigned i = 0; i < 3; i++) {
		fill_page(page, slot + i, 1);
		cr_assert_eq(swap_io_write_sync(io, slot + i, page, 0), 0);
	}
	memset(dst, SENTINEL, 3 * PAGE);
	fault_inject_set(FAULT_SHORT_READ, 2, 1);
	cr_assert_eq(swap_io_read_sync(io, slot, 1, dst, NULL), -ENODATA);
	cr_assert_eq(swap_io_read_sync(io, slot, 3, dst, NULL), -ENODATA);
	cr_assert(all_bytes(dst, SENTINEL, 3 * PAGE), "dst was written by a short read");
	swap_device_get_stats(dev, &st);
	cr_assert_eq(st.read_errors, 2);

	cr_assert_eq(swap_io_read_sync(io, slot, 3, dst, NULL), 0);
	for (unsigned i = 0; i < 3; i++)
		cr_assert(page_ok(dst + i * PAGE, slot + i, 1));
	free(dst);
	swap_io_destroy(io);
}

Test(swap_io, injected_corruption, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], dst[PAGE], disk[PAGE], cached[PAGE];
	uint64_t slot = alloc_slots(1);
	struct swap_device_stats st;
	unsigned differ = 0;
	int fd;

	fill_page(page, slot, 1);
	fault_inject_set(FAULT_CORRUPT, 1, 1);
	cr_assert_eq(swap_io_queue_write(io, slot, page, 0, 0), 0);
	/* The swap cache holds the true data meanwhile. */
	cr_assert_eq(swap_cache_lookup(dev, slot, cached), 1);
	cr_assert(page_ok(cached, slot, 1));
	cr_assert_eq(swap_io_submit(io), 1);
	struct results r = {0};
	cr_assert_eq(swap_io_reap(io, 1, record, &r), 1);
	cr_assert_eq(r.status[0], 0, "a corrupting write still completes");

	/* Really on disk: exactly one byte differs. */
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, disk, PAGE, (off_t)(slot * PAGE)), PAGE);
	close(fd);
	for (unsigned i = 0; i < PAGE; i++)
		differ += disk[i] != page[i];
	cr_assert_eq(differ, 1);

	memset(dst, SENTINEL, PAGE);
	cr_assert_eq(swap_io_read_sync(io, slot, 1, dst, NULL), -EBADMSG);
	cr_assert(all_bytes(dst, SENTINEL, PAGE));
	swap_device_get_stats(dev, &st);
	cr_assert_eq(st.checksum_errors, 1);

	/* Rewritten, it reads back fine. */
	cr_assert_eq(swap_io_write_sync(io, slot, page, 0), 0);
	cr_assert_eq(swap_io_read_sync(io, slot, 1, dst, NULL), 0);
	cr_assert(page_ok(dst, slot, 1));
	swap_io_destroy(io);
}

/* ---- Swap cache ---- */

/* FAULT_CORRUPT with EVERY > 1 corrupts every EVERY-th write: it used to
 * count only the writes it had already chosen, and so never fired. */
Test(swap_io, injected_corruption_every_third_write, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], dst[PAGE];
	uint64_t first = alloc_slots(6);

	fault_inject_set(FAULT_CORRUPT, 2, 3);
	for (unsigned i = 0; i < 6; i++) {
		fill_page(page, first + i, 4);
		cr_assert_eq(swap_io_write_sync(io, first + i, page, 0), 0);
	}
	cr_assert_eq(fault_inject_count(FAULT_CORRUPT), 2);
	fault_inject_reset();
	for (unsigned i = 0; i < 6; i++)
		cr_assert_eq(swap_io_read_sync(io, first + i, 1, dst, NULL),
			     i % 3 == 2 ? -EBADMSG : 0, "write %u", i + 1);
	swap_io_destroy(io);
}

Test(swap_io, swap_cache_while_in_flight, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], dst[PAGE];
	uint64_t slot = alloc_slots(1), free_before;
	struct swap_device_stats st;
	struct results r = {0};

	fill_page(page, slot, 9);
	cr_assert_eq(swap_cache_lookup(dev, slot, dst), 0);
	cr_assert_eq(swap_io_queue_write(io, slot, page, 0, 77), 0);
	memset(page, 0, PAGE);
	cr_assert_eq(swap_io_in_flight(io), 1);

	/* Queued, not submitted. */
	cr_assert_eq(swap_cache_lookup(dev, slot, dst), 1);
	cr_assert(page_ok(dst, slot, 9));
	/* A second write of the slot while one is in flight is refused. */
	cr_assert_eq(swap_io_queue_write(io, slot, page, 0, 78), -EBUSY);

	/* The slot's last reference goes away while the write is in flight: it
	 * stays allocated until the write completes. */
	free_before = swap_device_free_slots(dev);
	swap_slot_free(dev, slot);
	cr_assert_eq(swap_device_free_slots(dev), free_before);

	/* Submitted, not yet reaped. */
	cr_assert_eq(swap_io_submit(io), 1);
	memset(dst, 0, PAGE);
	cr_assert_eq(swap_cache_lookup(dev, slot, dst), 1);
	cr_assert(page_ok(dst, slot, 9));

	cr_assert_eq(swap_io_reap(io, 1, record, &r), 1);
	cr_assert_eq(r.cookies[0], 77);
	cr_assert_eq(r.status[0], 0);
	cr_assert_eq(swap_cache_lookup(dev, slot, dst), 0);
	cr_assert_eq(swap_io_in_flight(io), 0);
	cr_assert_eq(swap_device_free_slots(dev), free_before + 1);
	cr_assert_eq(swap_device_check(dev), 0);
	swap_device_get_stats(dev, &st);
	cr_assert_eq(st.cache_hits, 2);

	/* A write to a free slot is refused. */
	cr_assert_eq(swap_io_queue_write(io, slot, page, 0, 0), -EINVAL);
	cr_assert_eq(swap_io_queue_write(io, swap_device_slots(dev), page, 0, 0), -EINVAL);
	swap_io_destroy(io);
}

Test(swap_io, eagain_when_buffers_run_out, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(4);
	uint8_t page[PAGE], *dst = malloc(4 * PAGE);
	uint64_t first = alloc_slots(8);
	struct results r = {0};

	for (unsigned i = 0; i < 4; i++) {
		fill_page(page, first + i, 1);
		cr_assert_eq(swap_io_queue_write(io, first + i, page, 0, i), 0);
	}
	cr_assert_eq(swap_io_queue_write(io, first + 4, page, 0, 4), -EAGAIN);
	cr_assert_eq(swap_io_queue_read(io, first, 1, dst, NULL, 0), -EAGAIN);
	cr_assert_eq(swap_io_queue_read(io, first, 5, dst, NULL, 0), -EINVAL);
	cr_assert_eq(swap_io_in_flight(io), 4);
	cr_assert_eq(swap_io_submit(io), 4);
	cr_assert_eq(swap_io_reap(io, 4, record, &r), 4);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(r.status[i], 0);

	/* One buffer busy: a read of four finds no run, of three it does. */
	fill_page(page, first + 4, 1);
	cr_assert_eq(swap_io_queue_write(io, first + 4, page, 0, 4), 0);
	cr_assert_eq(swap_io_queue_read(io, first, 4, dst, NULL, 0), -EAGAIN);
	cr_assert_eq(swap_io_queue_read(io, first, 3, dst, NULL, 5), 0);
	r.n = 0;
	reap_all(io, &r);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.status[0] | r.status[1], 0);
	for (unsigned i = 0; i < 3; i++)
		cr_assert(page_ok(dst + i * PAGE, first + i, 1));
	free(dst);
	swap_io_destroy(io);
}

Test(swap_io, sync_calls_keep_other_completions, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(8);
	uint8_t page[PAGE], dst[PAGE];
	uint64_t first = alloc_slots(2);
	struct results r = {0};

	fill_page(page, first, 1);
	cr_assert_eq(swap_io_queue_write(io, first, page, 0, 42), 0);
	fill_page(page, first + 1, 1);
	cr_assert_eq(swap_io_write_sync(io, first + 1, page, 0), 0); /* submits the first one too */
	cr_assert_eq(swap_io_read_sync(io, first + 1, 1, dst, NULL), 0);
	cr_assert(page_ok(dst, first + 1, 1));
	cr_assert_eq(swap_io_reap(io, 1, record, &r), 1);
	cr_assert_eq(r.cookies[0], 42);
	cr_assert_eq(r.status[0], 0);
	cr_assert_eq(swap_io_in_flight(io), 0);
	cr_assert_eq(swap_io_reap(io, 5, record, &r), 0, "nothing left to wait for");
	swap_io_destroy(io);
}

Test(swap_io, destroy_waits_for_in_flight, .init = setup, .fini = teardown)
{
	struct swap_io *io = new_io(16);
	uint8_t page[PAGE], dst[PAGE];
	uint64_t first = alloc_slots(12);

	for (unsigned i = 0; i < 12; i++) {
		fill_page(page, first + i, 1);
		cr_assert_eq(swap_io_queue_write(io, first + i, page, 0, i), 0);
		if (i == 7)
			cr_assert_eq(swap_io_submit(io), 8);
	}
	swap_io_destroy(io); /* 8 submitted, 4 only queued */
	for (unsigned i = 0; i < 12; i++)
		cr_assert_eq(swap_cache_lookup(dev, first + i, dst), 0);
	cr_assert_eq(swap_device_check(dev), 0);

	io = new_io(16);
	for (unsigned i = 0; i < 12; i++) {
		cr_assert_eq(swap_io_read_sync(io, first + i, 1, dst, NULL), 0, "slot %u", i);
		cr_assert(page_ok(dst, first + i, 1));
	}
	swap_io_destroy(io);
}

/* ---- Two rings on two threads ---- */

#define PC_PAGES 3000

struct pc {
	uint64_t slots[PC_PAGES];
	unsigned published; /* atomic: slots[0..published) are queued */
	unsigned hits, disk_reads, bad;
};

static void *writer_thread(void *arg)
{
	struct pc *pc = arg;
	struct swap_io *io;
	uint8_t page[PAGE];

	if (swap_io_create(dev, 32, &io))
		return (void *)1;
	for (unsigned i = 0; i < PC_PAGES; i++) {
		int64_t slot;

		while ((slot = swap_slot_alloc(dev, 1)) < 0) /* the reader frees */
			sched_yield();
		fill_page(page, (uint64_t)slot, i);
		while (swap_io_queue_write(io, (uint64_t)slot, page, 0, i) == -EAGAIN) {
			swap_io_submit(io);
			swap_io_reap(io, 1, NULL, NULL);
		}
		pc->slots[i] = (uint64_t)slot;
		__atomic_store_n(&pc->published, i + 1, __ATOMIC_RELEASE);
		if (i % 16 == 15)
			swap_io_submit(io);
		swap_io_reap(io, 0, NULL, NULL);
	}
	swap_io_destroy(io);
	return NULL;
}

static void *reader_thread(void *arg)
{
	struct pc *pc = arg;
	struct swap_io *io;
	uint8_t dst[PAGE];

	if (swap_io_create(dev, 32, &io))
		return (void *)1;
	for (unsigned i = 0; i < PC_PAGES; i++) {
		uint64_t slot;

		while (__atomic_load_n(&pc->published, __ATOMIC_ACQUIRE) <= i)
			sched_yield();
		slot = pc->slots[i];
		/* The fault path: the swap cache first, the file on a miss. */
		if (swap_cache_lookup(dev, slot, dst)) {
			pc->hits++;
		} else {
			if (swap_io_read_sync(io, slot, 1, dst, NULL))
				pc->bad++;
			pc->disk_reads++;
		}
		if (!page_ok(dst, slot, i))
			pc->bad++;
		swap_slot_free(dev, slot);
	}
	swap_io_destroy(io);
	return NULL;
}

Test(swap_io, two_rings_on_two_threads, .init = setup, .fini = teardown)
{
	struct pc *pc = calloc(1, sizeof(*pc));
	pthread_t w, r;
	void *wret, *rret;

	cr_assert_eq(pthread_create(&w, NULL, writer_thread, pc), 0);
	cr_assert_eq(pthread_create(&r, NULL, reader_thread, pc), 0);
	pthread_join(w, &wret);
	pthread_join(r, &rret);
	cr_assert_null(wret);
	cr_assert_null(rret);
	cr_assert_eq(pc->bad, 0, "%u pages read back wrong", pc->bad);
	cr_assert_eq(pc->hits + pc->disk_reads, PC_PAGES);
	cr_log_info("swap cache hits %u, disk reads %u", pc->hits, pc->disk_reads);
	cr_assert_eq(swap_device_free_slots(dev), swap_device_slots(dev));
	cr_assert_eq(swap_device_check(dev), 0);
	free(pc);
}
