/*
 * test_slab.c - slab caches (mm/slab.h).
 */
#include "mm/slab.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static struct slab_info info_of(struct slab_cache *c)
{
	struct slab_info info;

	slab_cache_info(c, &info);
	return info;
}

static void check_zero(const void *p, size_t size)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++)
		cr_assert_eq(b[i], 0, "byte %zu of %p is %#x", i, p, b[i]);
}

static void fill(void *p, size_t size, uint64_t tag)
{
	unsigned char *b = p;

	for (size_t i = 0; i < size; i++)
		b[i] = (unsigned char)(tag * 131 + i * 7);
}

static void check_fill(const void *p, size_t size, uint64_t tag)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++)
		cr_assert_eq(b[i], (unsigned char)(tag * 131 + i * 7), "object %p byte %zu", p, i);
}

static int cmp_ptr(const void *a, const void *b)
{
	void *const *pa = a, *const *pb = b;
	uintptr_t x = (uintptr_t)*pa, y = (uintptr_t)*pb;

	return x < y ? -1 : x > y;
}

static size_t expected_stride(size_t size, size_t align)
{
	if (!align)
		align = 8;
	return (size + align - 1) / align * align;
}

/* Allocates count objects, checks them and frees them again. */
static void exercise(size_t size, size_t align, size_t count)
{
	struct slab_cache *c = slab_cache_create("exercise", size, align);
	void **objs = calloc(count, sizeof(*objs));
	size_t eff_align = align ? align : 8;

	cr_assert_not_null(c);
	cr_assert_not_null(objs);

	struct slab_info info = info_of(c);

	cr_assert_eq(info.object_size, size);
	cr_assert_eq(info.object_stride, expected_stride(size, align));
	cr_assert_geq(info.objects_per_slab, 1);
	cr_assert_eq(info.pages_per_slab & (info.pages_per_slab - 1), 0, "pages_per_slab %u",
		     info.pages_per_slab);
	cr_assert_leq((uint64_t)info.objects_per_slab * info.object_stride,
		      (uint64_t)info.pages_per_slab * 4096);
	if (size > 4096)
		cr_assert_gt(info.pages_per_slab, 1);

	for (size_t i = 0; i < count; i++) {
		objs[i] = slab_alloc(c);
		cr_assert_not_null(objs[i]);
		cr_assert_eq((uintptr_t)objs[i] % eff_align, 0, "%p not aligned to %zu", objs[i],
			     eff_align);
		check_zero(objs[i], size);
		fill(objs[i], size, i);
	}
	/* All writes done: any overlap would have clobbered a pattern. */
	for (size_t i = 0; i < count; i++)
		check_fill(objs[i], size, i);

	qsort(objs, count, sizeof(*objs), cmp_ptr);
	for (size_t i = 1; i < count; i++)
		cr_assert_geq((uintptr_t)objs[i] - (uintptr_t)objs[i - 1], size,
			      "objects %p and %p overlap", objs[i - 1], objs[i]);

	info = info_of(c);
	cr_assert_eq(info.active_objects, count);
	cr_assert_eq(info.slabs, (count + info.objects_per_slab - 1) / info.objects_per_slab);

	for (size_t i = 0; i < count; i++)
		slab_free(c, objs[i]);
	info = info_of(c);
	cr_assert_eq(info.active_objects, 0);
	cr_assert_eq(info.slabs, 1, "one empty slab stays cached");
	free(objs);
	slab_cache_destroy(c);
}

Test(slab, objects_distinct_aligned_zeroed_writable)
{
	exercise(64, 0, 1000);
	exercise(24, 16, 777);
	exercise(40, 64, 500);
	exercise(100, 4096, 50);
}

Test(slab, several_sizes)
{
	static const size_t sizes[] = {1,    7,	   8,	 13,   24,   100,   250,   512,	  1000,
				       2048, 4000, 4096, 4097, 5000, 10000, 70000, 300000};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i] > 100000 ? 5 : 300;

		exercise(sizes[i], 0, n);
		exercise(sizes[i], 1, n);
	}
}

Test(slab, layout_is_reasonable)
{
	static const size_t sizes[] = {8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct slab_cache *c = slab_cache_create("layout", sizes[i], 0);
		struct slab_info info = info_of(c);
		uint64_t bytes = (uint64_t)info.pages_per_slab * 4096;
		/* Per object: 2 bytes of free stack and a bitmap bit. */
		uint64_t meta =
			32 + info.objects_per_slab * 2 + (info.objects_per_slab + 63) / 64 * 8;
		uint64_t waste =
			bytes - meta - (uint64_t)info.objects_per_slab * info.object_stride;

		cr_assert_geq(info.objects_per_slab, 8, "size %zu: %u objects", sizes[i],
			      info.objects_per_slab);
		cr_assert_leq(waste * 16, bytes, "size %zu: %lu bytes of %lu wasted", sizes[i],
			      (unsigned long)waste, (unsigned long)bytes);
		cr_assert_leq(info.pages_per_slab, 16);
		slab_cache_destroy(c);
	}
}

Test(slab, bad_arguments)
{
	errno = 0;
	cr_assert_null(slab_cache_create("zero", 0, 8));
	cr_assert_eq(errno, EINVAL);
	cr_assert_null(slab_cache_create("align3", 16, 3));
	cr_assert_null(slab_cache_create("huge", (size_t)1 << 40, 8));
	cr_assert_null(slab_cache_create("huge", ((size_t)16 << 20) + 1, 8));
	cr_assert_null(slab_cache_create("huge-align", 8, (size_t)32 << 20));

	/* The largest object and alignment. */
	struct slab_cache *big = slab_cache_create("biggest", (size_t)16 << 20, (size_t)16 << 20);

	cr_assert_not_null(big);
	void *p = slab_alloc(big);

	cr_assert_not_null(p);
	cr_assert_eq((uintptr_t)p % ((size_t)16 << 20), 0);
	slab_free(big, p);
	slab_cache_destroy(big);

	struct slab_cache *c = slab_cache_create("a-name-that-is-much-longer-than-31-bytes", 8, 0);
	struct slab_info info = info_of(c);

	cr_assert_eq(strlen(info.name), 31);
	cr_assert_eq(strncmp(info.name, "a-name-that-is-much-longer-than", 31), 0);
	slab_free(c, NULL);
	slab_cache_destroy(c);
	slab_cache_destroy(NULL);
}

Test(slab, exact_counts)
{
	struct slab_cache *c = slab_cache_create("counts", 100, 0);
	struct slab_info info = info_of(c);
	uint64_t n = info.objects_per_slab, pps = info.pages_per_slab;

	cr_assert_eq(info.slabs, 0);
	cr_assert_eq(info.pages, 0);
	cr_assert_eq(info.total_objects, 0);

	size_t count = 3 * n + 5;
	void **objs = calloc(count, sizeof(*objs));

	for (size_t i = 0; i < count; i++) {
		objs[i] = slab_alloc(c);
		info = info_of(c);
		cr_assert_eq(info.active_objects, i + 1);
		cr_assert_eq(info.slabs, i / n + 1);
		cr_assert_eq(info.total_objects, (i / n + 1) * n);
		cr_assert_eq(info.pages, (i / n + 1) * pps);
	}
	/* Slabs fill one at a time: objects [k*n, (k+1)*n) share slab k. */
	for (size_t k = 0; k < 4; k++) {
		uintptr_t mask = ~(uintptr_t)(pps * 4096 - 1);
		uintptr_t base = (uintptr_t)objs[k * n] & mask;

		for (size_t i = k * n; i < count && i < (k + 1) * n; i++)
			cr_assert_eq((uintptr_t)objs[i] & mask, base);
	}

	/* Empty slab 0: it stays cached. */
	for (size_t i = 0; i < n; i++)
		slab_free(c, objs[i]);
	info = info_of(c);
	cr_assert_eq(info.active_objects, 2 * n + 5);
	cr_assert_eq(info.slabs, 4);
	cr_assert_eq(info.total_objects, 4 * n);

	/* Empty slab 1 as well: one empty slab is kept, this one is released. */
	for (size_t i = n; i < 2 * n; i++)
		slab_free(c, objs[i]);
	info = info_of(c);
	cr_assert_eq(info.active_objects, n + 5);
	cr_assert_eq(info.slabs, 3);
	cr_assert_eq(info.pages, 3 * pps);

	/* Half of slab 2 (full -> partial): no change in slabs. */
	for (size_t i = 2 * n; i < 2 * n + n / 2; i++)
		slab_free(c, objs[i]);
	info = info_of(c);
	cr_assert_eq(info.active_objects, n + 5 - n / 2);
	cr_assert_eq(info.slabs, 3);

	/* Allocations go to partial slabs before the cached empty one. */
	for (size_t i = 0; i < n / 2; i++)
		objs[i] = slab_alloc(c);
	info = info_of(c);
	cr_assert_eq(info.active_objects, n + 5);
	cr_assert_eq(info.slabs, 3);
	/* Slab 3 is partial (5 used): fill it, then the empty slab is reused. */
	for (size_t i = n / 2; i < n / 2 + (n - 5) + 1; i++)
		objs[i] = slab_alloc(c);
	info = info_of(c);
	cr_assert_eq(info.active_objects, 2 * n + 1);
	cr_assert_eq(info.slabs, 3);
	objs[n / 2 + (n - 5) + 1] = slab_alloc(c);
	info = info_of(c);
	cr_assert_eq(info.slabs, 3);

	/* Free everything left. */
	for (size_t i = 0; i < n / 2 + (n - 5) + 2; i++)
		slab_free(c, objs[i]);
	for (size_t i = 2 * n + n / 2; i < count; i++)
		slab_free(c, objs[i]);
	info = info_of(c);
	cr_assert_eq(info.active_objects, 0);
	cr_assert_eq(info.slabs, 1);
	cr_assert_eq(info.pages, pps);
	cr_assert_eq(info.total_objects, n);
	free(objs);
	slab_cache_destroy(c);
}

Test(slab, empty_slabs_released)
{
	struct slab_cache *c = slab_cache_create("release", 5000, 0);
	struct slab_info info = info_of(c);
	uint64_t n = info.objects_per_slab, pps = info.pages_per_slab;
	size_t count = 10 * n;
	void **objs = calloc(count, sizeof(*objs));

	cr_assert_gt(pps, 1);
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < count; i++)
			objs[i] = slab_alloc(c);
		info = info_of(c);
		cr_assert_eq(info.slabs, 10);
		cr_assert_eq(info.pages, 10 * pps);
		/* Free in an interleaved order so slabs empty late. */
		for (size_t i = 0; i < count; i += 2)
			slab_free(c, objs[i]);
		info = info_of(c);
		cr_assert_eq(info.slabs, 10);
		for (size_t i = 1; i < count; i += 2)
			slab_free(c, objs[i]);
		info = info_of(c);
		cr_assert_eq(info.active_objects, 0);
		cr_assert_eq(info.slabs, 1);
		cr_assert_eq(info.pages, pps);
	}
	free(objs);
	slab_cache_destroy(c);
}

Test(slab, random_order_with_reuse)
{
	enum { SLOTS = 3000, OPS = 200000 };
	struct slab_cache *c = slab_cache_create("random", 48, 0);
	void **slot = calloc(SLOTS, sizeof(*slot));
	uint64_t live = 0, peak = 0;

	rng_state = 0x1234567;
	for (int op = 0; op < OPS; op++) {
		size_t i = rng() % SLOTS;

		if (slot[i]) {
			check_fill(slot[i], 48, i);
			slab_free(c, slot[i]);
			slot[i] = NULL;
			live--;
		} else {
			slot[i] = slab_alloc(c);
			cr_assert_not_null(slot[i]);
			check_zero(slot[i], 48);
			fill(slot[i], 48, i);
			live++;
			if (live > peak)
				peak = live;
		}
		if (op % 1000 == 0) {
			struct slab_info info = info_of(c);

			cr_assert_eq(info.active_objects, live);
			cr_assert_eq(info.total_objects, info.slabs * info.objects_per_slab);
			cr_assert_geq(info.total_objects, live);
		}
	}

	struct slab_info info = info_of(c);

	/* Freed objects are reused: memory stays bounded by the peak. */
	cr_assert_leq(info.slabs, peak / info.objects_per_slab + 2 + peak / 16);

	/* The most recently freed object is handed out next. */
	void *p = slab_alloc(c), *q;

	slab_free(c, p);
	q = slab_alloc(c);
	cr_assert_eq(p, q);
	slab_free(c, q);

	for (size_t i = 0; i < SLOTS; i++)
		slab_free(c, slot[i]);
	info = info_of(c);
	cr_assert_eq(info.active_objects, 0);
	cr_assert_eq(info.slabs, 1);
	free(slot);
	slab_cache_destroy(c);
}

struct thread_arg {
	struct slab_cache *cache;
	pthread_barrier_t *start;
	unsigned id;
	uint64_t allocs;
};

#define THREAD_SLOTS 256
#define THREAD_OPS 1000000
#define THREAD_OBJ 72

static void *thread_main(void *p)
{
	struct thread_arg *arg = p;
	void *slot[THREAD_SLOTS] = {0};
	uint64_t state = 0x9e3779b97f4a7c15ull * (arg->id + 1);

	pthread_barrier_wait(arg->start);
	for (int op = 0; op < THREAD_OPS; op++) {
		state ^= state >> 12;
		state ^= state << 25;
		state ^= state >> 27;

		size_t i = (state * 0x2545f4914f6cdd1dull >> 32) % THREAD_SLOTS;
		uint64_t tag = arg->id * THREAD_SLOTS + i;

		if (slot[i]) {
			const unsigned char *b = slot[i];

			for (size_t k = 0; k < THREAD_OBJ; k++)
				if (b[k] != (unsigned char)(tag * 131 + k * 7))
					return "corrupted object";
			slab_free(arg->cache, slot[i]);
			slot[i] = NULL;
		} else {
			unsigned char *b = slab_alloc(arg->cache);

			if (!b)
				return "allocation failed";
			for (size_t k = 0; k < THREAD_OBJ; k++) {
				if (b[k])
					return "object not zeroed";
				b[k] = (unsigned char)(tag * 131 + k * 7);
			}
			slot[i] = b;
			arg->allocs++;
		}
	}
	for (size_t i = 0; i < THREAD_SLOTS; i++)
		slab_free(arg->cache, slot[i]);
	return NULL;
}

Test(slab, concurrent_threads)
{
	struct slab_cache *c = slab_cache_create("threads", THREAD_OBJ, 0);
	pthread_t threads[4];
	struct thread_arg args[4];
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, 4);
	for (unsigned i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){.cache = c, .start = &start, .id = i};
		cr_assert_eq(pthread_create(&threads[i], NULL, thread_main, &args[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		void *ret;

		pthread_join(threads[i], &ret);
		cr_assert_null(ret, "thread %u: %s", i, ret ? (const char *)ret : "");
		cr_assert_gt(args[i].allocs, 0);
	}
	pthread_barrier_destroy(&start);

	struct slab_info info = info_of(c);

	cr_assert_eq(info.active_objects, 0);
	cr_assert_eq(info.slabs, 1);
	slab_cache_destroy(c);
}

static size_t find_caches(const char *prefix, struct slab_info *found, size_t max)
{
	struct slab_info all[64];
	size_t n = slab_caches_info(all, 64), k = 0;

	for (size_t i = 0; i < n && k < max; i++)
		if (!strncmp(all[i].name, prefix, strlen(prefix)))
			found[k++] = all[i];
	return k;
}

Test(slab, caches_info_registry)
{
	struct slab_cache *a = slab_cache_create("reg-a", 16, 0);
	struct slab_cache *b = slab_cache_create("reg-b", 200, 0);
	struct slab_cache *c = slab_cache_create("reg-c", 3000, 0);
	struct slab_info found[8];
	void *obj = slab_alloc(b);

	cr_assert_eq(find_caches("reg-", found, 8), 3);
	cr_assert_str_eq(found[0].name, "reg-a");
	cr_assert_str_eq(found[1].name, "reg-b");
	cr_assert_str_eq(found[2].name, "reg-c");
	cr_assert_eq(found[0].object_size, 16);
	cr_assert_eq(found[1].active_objects, 1);
	cr_assert_eq(found[1].slabs, 1);
	cr_assert_eq(found[2].active_objects, 0);

	/* max limits how many are written. */
	struct slab_info one[2];

	memset(one, 0xa5, sizeof(one));
	cr_assert_eq(slab_caches_info(one, 1), 1);
	cr_assert_eq(one[1].object_size, (size_t)0xa5a5a5a5a5a5a5a5ull);
	cr_assert_eq(slab_caches_info(one, 0), 0);

	slab_free(b, obj);
	slab_cache_destroy(b);
	cr_assert_eq(find_caches("reg-", found, 8), 2);
	cr_assert_str_eq(found[0].name, "reg-a");
	cr_assert_str_eq(found[1].name, "reg-c");

	struct slab_cache *d = slab_cache_create("reg-d", 8, 0);

	cr_assert_eq(find_caches("reg-", found, 8), 3);
	cr_assert_str_eq(found[2].name, "reg-d");
	slab_cache_destroy(a);
	slab_cache_destroy(c);
	slab_cache_destroy(d);
	cr_assert_eq(find_caches("reg-", found, 8), 0);
}

Test(slab, destroy_with_live_objects)
{
	struct slab_cache *c = slab_cache_create("live", 300, 0);

	for (int i = 0; i < 1000; i++)
		cr_assert_not_null(slab_alloc(c));
	slab_cache_destroy(c);
}

#ifdef TEST_ASAN
Test(slab, free_objects_are_poisoned)
{
	struct slab_cache *c = slab_cache_create("poison", 64, 0);
	char *p = slab_alloc(c);

	cr_assert_eq(__asan_region_is_poisoned(p, 64), NULL);
	slab_free(c, p);
	cr_assert(__asan_address_is_poisoned(p));
	cr_assert(__asan_address_is_poisoned(p + 63));
	p = slab_alloc(c);
	cr_assert_eq(__asan_region_is_poisoned(p, 64), NULL);
	slab_free(c, p);
	slab_cache_destroy(c);
}
#endif

/* Misuse: each aborts. */

Test(slab, free_foreign_pointer_aborts, .signal = SIGABRT)
{
	struct slab_cache *c = slab_cache_create("foreign", 64, 0);
	void *p = malloc(64);

	slab_free(c, p);
}

Test(slab, free_stack_pointer_aborts, .signal = SIGABRT)
{
	struct slab_cache *c = slab_cache_create("stack", 64, 0);
	char local[64];

	slab_alloc(c);
	slab_free(c, local);
}

Test(slab, free_to_wrong_cache_aborts, .signal = SIGABRT)
{
	struct slab_cache *a = slab_cache_create("wrong-a", 64, 0);
	struct slab_cache *b = slab_cache_create("wrong-b", 64, 0);
	void *p = slab_alloc(a);

	slab_alloc(b);
	slab_free(b, p);
}

Test(slab, free_misaligned_pointer_aborts, .signal = SIGABRT)
{
	struct slab_cache *c = slab_cache_create("misaligned", 64, 0);
	char *p = slab_alloc(c);

	slab_free(c, p + 8);
}

Test(slab, free_header_pointer_aborts, .signal = SIGABRT)
{
	struct slab_cache *c = slab_cache_create("header", 64, 0);
	char *p = slab_alloc(c);

	slab_free(c, (void *)((uintptr_t)p & ~(uintptr_t)4095));
}

Test(slab, double_free_aborts, .signal = SIGABRT)
{
	struct slab_cache *c = slab_cache_create("double", 64, 0);
	void *p = slab_alloc(c);

	slab_alloc(c);
	slab_free(c, p);
	slab_free(c, p);
}

static void *churn_main(void *p)
{
	pthread_barrier_t *start = p;
	char name[16];

	pthread_barrier_wait(start);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "churn-%d", i % 100);

		struct slab_cache *c = slab_cache_create(name, 32 + i % 500, 0);

		if (!c)
			return "create failed";
		void *a = slab_alloc(c), *b = slab_alloc(c);

		slab_free(c, a);
		if (i % 2)
			slab_free(c, b);
		slab_cache_destroy(c);
	}
	return NULL;
}

static void *report_main(void *p)
{
	pthread_barrier_t *start = p;
	struct slab_info info[16];

	pthread_barrier_wait(start);
	for (int i = 0; i < 5000; i++) {
		size_t n = slab_caches_info(info, 16);

		for (size_t k = 0; k < n; k++)
			if (info[k].total_objects != info[k].slabs * info[k].objects_per_slab ||
			    info[k].active_objects > info[k].total_objects)
				return "inconsistent info";
	}
	return NULL;
}

Test(slab, registry_under_concurrent_create_destroy)
{
	pthread_t threads[3];
	pthread_barrier_t start;

	pthread_barrier_init(&start, NULL, 3);
	pthread_create(&threads[0], NULL, churn_main, &start);
	pthread_create(&threads[1], NULL, churn_main, &start);
	pthread_create(&threads[2], NULL, report_main, &start);
	for (int i = 0; i < 3; i++) {
		void *ret;

		pthread_join(threads[i], &ret);
		cr_assert_null(ret, "thread %d: %s", i, ret ? (const char *)ret : "");
	}
	pthread_barrier_destroy(&start);

	struct slab_info info[4];

	cr_assert_eq(slab_caches_info(info, 4), 0);
}
