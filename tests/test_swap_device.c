/* test_swap_device.c - the swap device: backing file and slot allocator. */
#include <criterion/criterion.h>

#include "vmm_process.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "io/swap_device.h"

#define CLUSTER_BYTES ((uint64_t)SWAP_CLUSTER_SLOTS * SWAP_PAGE_SIZE)

static char path[256];

static void make_path(void)
{
	static unsigned seq;

	snprintf(path, sizeof(path), "/var/tmp/test_swap_device.%d.%u", getpid(), seq++);
	unlink(path);
	remove_at_exit(path);
}

static struct swap_device *open_dev(uint64_t size_bytes)
{
	struct swap_device_config cfg = {.path = path, .size_bytes = size_bytes};
	struct swap_device *dev;
	char err[256] = "";

	make_path();
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), 0, "open: %s", err);
	cr_assert_not_null(dev);
	return dev;
}

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

/* ---- Opening ---- */

Test(swap_device, open_errors)
{
	struct swap_device_config cfg = {.size_bytes = CLUSTER_BYTES};
	struct swap_device *dev = (void *)1;
	char err[256];
	int fd;

	make_path();
	cfg.path = path;
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	err[0] = 0;
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), -EEXIST);
	cr_assert_null(dev);
	cr_assert(strstr(err, "exists"), "err: %s", err);
	unlink(path);

	cfg.path = "/var/tmp/no-such-dir-for-swap/swap";
	err[0] = 0;
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "directory"), "err: %s", err);

	cfg.path = path;
	cfg.size_bytes = CLUSTER_BYTES + 1;
	err[0] = 0;
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "multiple"), "err: %s", err);
	cr_assert_eq(access(path, F_OK), -1, "a refused open must not create the file");

	cfg.size_bytes = CLUSTER_BYTES - SWAP_PAGE_SIZE;
	err[0] = 0;
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "cluster"), "err: %s", err);

	cfg.size_bytes = 0;
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), -EINVAL);
}

Test(swap_device, open_no_space_removes_file)
{
	struct swap_device_config cfg = {.path = "/dev/shm/test_swap_device.nospace"};
	struct swap_device *dev;
	struct statfs fs;
	char err[256] = "";

	/* tmpfs refuses a fallocate larger than the filesystem up front. */
	if (statfs("/dev/shm", &fs) || fs.f_type != 0x01021994 /* TMPFS_MAGIC */)
		cr_skip_test("/dev/shm is not a tmpfs");
	unlink(cfg.path);
	cfg.size_bytes = ((uint64_t)fs.f_blocks * fs.f_bsize + (1ull << 30)) & ~(CLUSTER_BYTES - 1);
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), -ENOSPC, "err: %s", err);
	cr_assert(strstr(err, "no space"), "err: %s", err);
	cr_assert_eq(access(cfg.path, F_OK), -1, "the partial file must be removed");
}

Test(swap_device, preallocated_and_unlinked_on_close)
{
	uint64_t size = 3 * CLUSTER_BYTES + 5 * SWAP_PAGE_SIZE;
	struct swap_device *dev = open_dev(size);
	struct stat st;
	int flags;

	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, size);
	cr_assert_geq((uint64_t)st.st_blocks * 512, size, "only %lld blocks allocated",
		      (long long)st.st_blocks);
	flags = fcntl(swap_device_fd(dev), F_GETFL);
	cr_assert(flags & O_DIRECT);
	cr_assert_eq(swap_device_slots(dev), size / SWAP_PAGE_SIZE);
	cr_assert_eq(swap_device_free_slots(dev), size / SWAP_PAGE_SIZE);
	cr_assert_eq(swap_device_check(dev), 0);
	swap_device_close(dev);
	cr_assert_eq(access(path, F_OK), -1, "file not removed on close");
}

Test(swap_device, keep_leaves_the_file)
{
	struct swap_device_config cfg = {.size_bytes = CLUSTER_BYTES, .keep = true};
	struct swap_device *dev;
	char err[256] = "";

	make_path();
	cfg.path = path;
	cr_assert_eq(swap_device_open(&dev, &cfg, err, sizeof(err)), 0, "%s", err);
	swap_device_close(dev);
	cr_assert_eq(access(path, F_OK), 0, "file removed despite keep");
	unlink(path);
}

/* ---- Allocation ---- */

Test(swap_device, one_stream_gets_consecutive_slots)
{
	struct swap_device *dev = open_dev(4 * CLUSTER_BYTES);

	for (int64_t i = 0; i < 3 * SWAP_CLUSTER_SLOTS; i++)
		cr_assert_eq(swap_slot_alloc(dev, 7), i);
	cr_assert_eq(swap_slot_refs(dev, 0), 1);
	cr_assert_eq(swap_device_free_slots(dev), SWAP_CLUSTER_SLOTS);
	cr_assert_eq(swap_device_check(dev), 0);
	swap_device_close(dev);
}

Test(swap_device, interleaved_streams_get_their_own_clusters)
{
	struct swap_device *dev = open_dev(8 * CLUSTER_BYTES);
	int64_t a[600], b[600];

	for (int i = 0; i < 600; i++) {
		a[i] = swap_slot_alloc(dev, 1);
		b[i] = swap_slot_alloc(dev, 2);
		cr_assert_geq(a[i], 0);
		cr_assert_geq(b[i], 0);
	}
	for (int i = 1; i < 600; i++) {
		/* Consecutive inside a cluster; a new cluster only at a cluster's end. */
		if (a[i - 1] % SWAP_CLUSTER_SLOTS != SWAP_CLUSTER_SLOTS - 1)
			cr_assert_eq(a[i], a[i - 1] + 1, "stream 1, %d: %ld after %ld", i, a[i],
				     a[i - 1]);
		else
			cr_assert_eq(a[i] % SWAP_CLUSTER_SLOTS, 0);
		if (b[i - 1] % SWAP_CLUSTER_SLOTS != SWAP_CLUSTER_SLOTS - 1)
			cr_assert_eq(b[i], b[i - 1] + 1, "stream 2, %d: %ld after %ld", i, b[i],
				     b[i - 1]);
		else
			cr_assert_eq(b[i] % SWAP_CLUSTER_SLOTS, 0);
	}
	/* The two streams never share a cluster. */
	for (int i = 0; i < 600; i++)
		for (int j = 0; j < 600; j += 37)
			cr_assert_neq(a[i] / SWAP_CLUSTER_SLOTS, b[j] / SWAP_CLUSTER_SLOTS);
	cr_assert_eq(swap_device_check(dev), 0);
	swap_device_close(dev);
}

Test(swap_device, alloc_run)
{
	struct swap_device *dev = open_dev(2 * CLUSTER_BYTES);
	uint64_t first, second;

	cr_assert_eq(swap_slot_alloc_run(dev, 0, 100, &first), 100);
	cr_assert_eq(first, 0);
	/* Stops at the cluster's end... */
	cr_assert_eq(swap_slot_alloc_run(dev, 0, 200, &second), SWAP_CLUSTER_SLOTS - 100);
	cr_assert_eq(second, 100);
	/* ...and the next run starts in a fresh cluster. */
	cr_assert_eq(swap_slot_alloc_run(dev, 0, 10, &first), 10);
	cr_assert_eq(first, SWAP_CLUSTER_SLOTS);
	cr_assert_eq(swap_slot_alloc_run(dev, 0, 0, &first), 0);
	/*
	 * No free cluster is left for stream 3: the fallback scans from cluster 0,
	 * and a run stops at a used slot.
	 */
	swap_slot_free(dev, 5);
	swap_slot_free(dev, 6);
	swap_slot_free(dev, 8);
	cr_assert_eq(swap_slot_alloc_run(dev, 3, 1000, &first), 2);
	cr_assert_eq(first, 5);
	cr_assert_eq(swap_slot_alloc_run(dev, 3, 1000, &first), 1);
	cr_assert_eq(first, 8);
	/* Then what is left of stream 0's current cluster. */
	cr_assert_eq(swap_slot_alloc_run(dev, 3, 1000, &first), SWAP_CLUSTER_SLOTS - 10);
	cr_assert_eq(first, SWAP_CLUSTER_SLOTS + 10);
	cr_assert_eq(swap_slot_alloc_run(dev, 0, 8, &first), 0);
	cr_assert_eq(swap_device_free_slots(dev), 0);
	cr_assert_eq(swap_device_check(dev), 0);
	swap_device_close(dev);
}

Test(swap_device, exhaustion_and_fallback)
{
	uint64_t nslots = 2 * SWAP_CLUSTER_SLOTS + 3; /* a short last cluster */
	struct swap_device *dev = open_dev(nslots * SWAP_PAGE_SIZE);
	uint64_t first;

	for (uint64_t i = 0; i < nslots; i++)
		cr_assert_geq(swap_slot_alloc(dev, (unsigned)(i % 5)), 0);
	cr_assert_eq(swap_slot_alloc(dev, 0), -1);
	cr_assert_eq(swap_slot_alloc_run(dev, 0, 4, &first), 0);
	cr_assert_eq(swap_device_free_slots(dev), 0);

	swap_slot_free(dev, 300);
	cr_assert_eq(swap_device_free_slots(dev), 1);
	cr_assert_eq(swap_slot_alloc(dev, 9), 300);
	cr_assert_eq(swap_slot_alloc(dev, 9), -1);

	/* A wholly freed cluster goes back on the free list and a stream takes it whole. */
	for (uint64_t s = SWAP_CLUSTER_SLOTS; s < 2 * SWAP_CLUSTER_SLOTS; s++)
		swap_slot_free(dev, s);
	cr_assert_eq(swap_device_check(dev), 0);
	for (uint64_t s = SWAP_CLUSTER_SLOTS; s < 2 * SWAP_CLUSTER_SLOTS; s++)
		cr_assert_eq(swap_slot_alloc(dev, 11), (int64_t)s);
	cr_assert_eq(swap_slot_alloc(dev, 11), -1);
	cr_assert_eq(swap_device_check(dev), 0);
	swap_device_close(dev);
}

Test(swap_device, refcounts)
{
	struct swap_device *dev = open_dev(CLUSTER_BYTES);
	uint64_t total = swap_device_slots(dev);
	int64_t s = swap_slot_alloc(dev, 0);

	cr_assert_eq(s, 0);
	cr_assert_eq(swap_slot_refs(dev, 0), 1);
	swap_slot_dup(dev, 0);
	swap_slot_dup(dev, 0);
	cr_assert_eq(swap_slot_refs(dev, 0), 3);
	swap_slot_free(dev, 0);
	swap_slot_free(dev, 0);
	cr_assert_eq(swap_slot_refs(dev, 0), 1);
	cr_assert_eq(swap_device_free_slots(dev), total - 1);
	swap_slot_free(dev, 0);
	cr_assert_eq(swap_slot_refs(dev, 0), 0);
	cr_assert_eq(swap_device_free_slots(dev), total);
	cr_assert_eq(swap_slot_refs(dev, total + 10), 0, "out of range reads as free");
	cr_assert_eq(swap_device_check(dev), 0);
	swap_device_close(dev);
}

/* The on-free hook runs once, when the last reference goes, before the slot
 * can be allocated again (zswap drops the slot's entry there). */
static uint64_t freed_slots[8];
static unsigned nfreed_slots;

static void note_free(void *ctx, uint64_t slot)
{
	cr_assert_eq(ctx, freed_slots);
	if (nfreed_slots < 8)
		freed_slots[nfreed_slots] = slot;
	nfreed_slots++;
}

Test(swap_device, the_on_free_hook_runs_when_the_last_reference_goes)
{
	struct swap_device *dev = open_dev(CLUSTER_BYTES);
	nfreed_slots = 0;
	swap_device_on_free(dev, note_free, freed_slots);
	int64_t s = swap_slot_alloc(dev, 0);
	cr_assert_geq(s, 0);
	swap_slot_dup(dev, (uint64_t)s);
	swap_slot_free(dev, (uint64_t)s);
	cr_assert_eq(nfreed_slots, 0, "a reference is left");
	swap_slot_free(dev, (uint64_t)s);
	cr_assert_eq(nfreed_slots, 1);
	cr_assert_eq(freed_slots[0], (uint64_t)s);
	swap_device_on_free(dev, NULL, NULL);
	int64_t t = swap_slot_alloc(dev, 0);
	swap_slot_free(dev, (uint64_t)t);
	cr_assert_eq(nfreed_slots, 1, "unhooked");
	swap_device_close(dev);
}

Test(swap_device, double_free_aborts, .signal = SIGABRT)
{
	struct swap_device *dev = open_dev(CLUSTER_BYTES);
	int64_t s = swap_slot_alloc(dev, 0);

	swap_slot_free(dev, (uint64_t)s);
	unlink(path); /* the abort skips close */
	swap_slot_free(dev, (uint64_t)s);
}

Test(swap_device, dup_of_free_slot_aborts, .signal = SIGABRT)
{
	struct swap_device *dev = open_dev(CLUSTER_BYTES);

	unlink(path);
	swap_slot_dup(dev, 3);
}

/* Random alloc / alloc_run / dup / free against a model of the reference counts. */
Test(swap_device, random_against_model)
{
	uint64_t nslots = 5 * SWAP_CLUSTER_SLOTS + 77;
	struct swap_device *dev = open_dev(nslots * SWAP_PAGE_SIZE);
	unsigned *refs = calloc(nslots, sizeof(*refs));
	uint64_t *used = calloc(nslots, sizeof(*used)), nused = 0, model_free = nslots;
	uint64_t rng = 12345, full_seen = 0, empty_seen = 0;

	for (int step = 0; step < 200000; step++) {
		/* Filling and draining phases, so both regimes are exercised. */
		bool draining = (step / 10000) % 2;
		unsigned op = rng_next(&rng) % 16, stream = rng_next(&rng) % 6;
		uint64_t first;

		if (draining && op < 7)
			op = rng_next(&rng) % 3 ? 8 : op % 2 ? 5 : 0;
		full_seen += model_free == 0;
		empty_seen += model_free == nslots;

		if (op < 5) {
			int64_t s = swap_slot_alloc(dev, stream);

			if (s < 0) {
				cr_assert_eq(model_free, 0, "alloc failed with %lu free",
					     model_free);
				continue;
			}
			cr_assert_lt((uint64_t)s, nslots);
			cr_assert_eq(refs[s], 0, "slot %ld handed out twice", s);
			refs[s] = 1;
			used[nused++] = (uint64_t)s;
			model_free--;
		} else if (op < 7) {
			unsigned want = 1 + rng_next(&rng) % 40;
			unsigned k = swap_slot_alloc_run(dev, stream, want, &first);

			if (!k) {
				cr_assert_eq(model_free, 0);
				continue;
			}
			cr_assert_leq(k, want);
			cr_assert_leq(first + k, nslots);
			for (unsigned i = 0; i < k; i++) {
				cr_assert_eq(refs[first + i], 0, "slot %lu handed out twice",
					     first + i);
				refs[first + i] = 1;
				used[nused++] = first + i;
			}
			model_free -= k;
		} else if (op < 8 && nused) {
			uint64_t s = used[rng_next(&rng) % nused];

			swap_slot_dup(dev, s);
			refs[s]++;
		} else if (nused) {
			uint64_t i = rng_next(&rng) % nused, s = used[i];

			swap_slot_free(dev, s);
			if (--refs[s] == 0) {
				used[i] = used[--nused];
				model_free++;
			}
		}
		if (step % 997 == 0) {
			cr_assert_eq(swap_device_free_slots(dev), model_free);
			cr_assert_eq(swap_device_check(dev), 0, "invariants broken at step %d",
				     step);
			for (uint64_t s = 0; s < nslots; s += 13)
				cr_assert_eq(swap_slot_refs(dev, s), refs[s]);
		}
	}
	cr_assert_eq(swap_device_free_slots(dev), model_free);
	cr_assert_eq(swap_device_check(dev), 0);
	cr_assert_gt(full_seen, 0, "the device never filled up");
	cr_assert_gt(empty_seen, 0, "the device never drained");
	free(refs);
	free(used);
	swap_device_close(dev);
}

/* ---- Concurrency ---- */

#define THREADS 4
#define THREAD_STEPS 100000

struct conc {
	struct swap_device *dev;
	uint8_t *owner; /* per slot: 0 or the owning thread + 1, claimed atomically */
	unsigned id;
	unsigned errors;
};

static void *conc_thread(void *arg)
{
	struct conc *c = arg;
	uint64_t held[512], nheld = 0, rng = 777 + c->id, first;

	for (int step = 0; step < THREAD_STEPS; step++) {
		unsigned op = rng_next(&rng) % 4;

		if (op < 2 && nheld < 512 - 8) {
			unsigned k = 1;

			if (op == 0) {
				int64_t s = swap_slot_alloc(c->dev, c->id);

				if (s < 0)
					continue;
				first = (uint64_t)s;
			} else {
				k = swap_slot_alloc_run(c->dev, c->id, 8, &first);
			}
			for (unsigned i = 0; i < k; i++) {
				uint8_t expected = 0;

				if (!__atomic_compare_exchange_n(
					    &c->owner[first + i], &expected, (uint8_t)(c->id + 1),
					    false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
					c->errors++;
				held[nheld++] = first + i;
			}
		} else if (nheld) {
			uint64_t i = rng_next(&rng) % nheld, s = held[i];

			held[i] = held[--nheld];
			/* Give up ownership before the slot can be handed out again. */
			__atomic_store_n(&c->owner[s], 0, __ATOMIC_SEQ_CST);
			swap_slot_free(c->dev, s);
		}
	}
	while (nheld) {
		uint64_t s = held[--nheld];

		__atomic_store_n(&c->owner[s], 0, __ATOMIC_SEQ_CST);
		swap_slot_free(c->dev, s);
	}
	return NULL;
}

Test(swap_device, concurrent_alloc_free)
{
	/* Small enough that the threads run out of free clusters and fall back. */
	struct swap_device *dev = open_dev(6 * CLUSTER_BYTES);
	uint8_t *owner = calloc(swap_device_slots(dev), 1);
	struct conc c[THREADS];
	pthread_t t[THREADS];

	for (unsigned i = 0; i < THREADS; i++) {
		c[i] = (struct conc){.dev = dev, .owner = owner, .id = i};
		cr_assert_eq(pthread_create(&t[i], NULL, conc_thread, &c[i]), 0);
	}
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(c[i].errors, 0, "thread %u was handed slots another thread held", i);
	}
	cr_assert_eq(swap_device_free_slots(dev), swap_device_slots(dev));
	cr_assert_eq(swap_device_check(dev), 0);
	free(owner);
	swap_device_close(dev);
}
