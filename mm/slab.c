/*
 * slab.c - slab caches; see slab.h for the layout and invariants.
 */
#include "slab.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io/fault_inject.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif

#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

#define SLAB_PAGE_SIZE 4096ul
#define SLAB_MIN_OBJECTS 8	    /* wanted per slab */
#define SLAB_MAX_OBJECTS UINT16_MAX /* free stack indices are 16 bits */
#define SLAB_PREF_MAX_PAGES 64	    /* look no further once something fits */
#define SLAB_MAX_SIZE (1ul << 24)   /* object size and alignment: 16 MiB */

enum slab_list_id {
	SLAB_ON_PARTIAL = 1,
	SLAB_ON_FULL = 2,
	SLAB_ON_EMPTY = 3,
};

/* The header at the start of every slab; the bitmap and free stack follow. */
struct slab {
	struct slab *prev, *next;
	struct slab_cache *cache;
	uint32_t inuse;
	uint32_t list; /* enum slab_list_id */
	uint64_t bitmap[];
};

/* Open-addressing (linear probing) set of slab base addresses; 0 = empty. */
struct slab_set {
	uintptr_t *keys;
	size_t mask; /* capacity - 1; keys == NULL while capacity is 0 */
	size_t count;
};

struct slab_cache {
	char name[SLAB_NAME_LEN];
	size_t object_size, stride, align;
	size_t slab_bytes;
	unsigned slab_shift; /* log2(slab_bytes) */
	size_t stack_offset; /* of the free stack, from the slab base */
	size_t obj_offset;   /* of object 0, from the slab base */
	uint32_t objects_per_slab, pages_per_slab;

	pthread_mutex_t lock;
	struct slab *partial, *full; /* doubly linked, NULL-terminated */
	struct slab *empty;	     /* at most one cached empty slab */
	uint64_t nslabs, active;
	struct slab_set set;

	struct slab_cache *reg_prev, *reg_next; /* registry, creation order */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slab_cache *registry_head, *registry_tail;

static size_t round_up(size_t x, size_t align)
{
	return (x + align - 1) & ~(align - 1);
}

/* ---- layout ---- */

/* Header, bitmap and free stack of a slab of n objects. */
static size_t layout_meta(size_t n)
{
	return sizeof(struct slab) + (n + 63) / 64 * sizeof(uint64_t) + n * sizeof(uint16_t);
}

static size_t layout_obj_offset(size_t n, size_t align)
{
	return round_up(layout_meta(n), align);
}

static bool layout_fits(size_t n, size_t slab_bytes, size_t stride, size_t align)
{
	return layout_obj_offset(n, align) + n * stride <= slab_bytes;
}

/* The most objects a slab of slab_bytes holds. */
static size_t layout_fit(size_t slab_bytes, size_t stride, size_t align)
{
	size_t lo = 0, hi = slab_bytes / stride;

	if (hi > SLAB_MAX_OBJECTS)
		hi = SLAB_MAX_OBJECTS;
	/* fits() is monotonic in n: find the largest n that fits. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;

		if (layout_fits(mid, slab_bytes, stride, align))
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

static void layout_choose(struct slab_cache *c)
{
	size_t best_pages = 0, best_n = 0, best_waste = 0, first_fit = 0;

	for (size_t pages = 1;; pages <<= 1) {
		size_t bytes = pages * SLAB_PAGE_SIZE;
		size_t n = layout_fit(bytes, c->stride, c->align);

		if (n > 0) {
			if (!first_fit)
				first_fit = pages;
			/* Padding and tail; the metadata is a per-object cost. */
			size_t waste = bytes - layout_meta(n) - n * c->stride;

			if (n >= SLAB_MIN_OBJECTS && waste * 16 <= bytes) {
				best_pages = pages;
				best_n = n;
				break;
			}
			/* Compare waste fractions; on a tie keep the smaller slab. */
			if (!best_n || waste * (best_pages * SLAB_PAGE_SIZE) < best_waste * bytes) {
				best_pages = pages;
				best_n = n;
				best_waste = waste;
			}
		}
		/* Big objects: try two sizes beyond the first that holds one. */
		if (best_n && pages >= SLAB_PREF_MAX_PAGES && pages >= 4 * first_fit)
			break;
	}
	c->pages_per_slab = (uint32_t)best_pages;
	c->objects_per_slab = (uint32_t)best_n;
	c->slab_bytes = best_pages * SLAB_PAGE_SIZE;
	c->slab_shift = (unsigned)__builtin_ctzl(c->slab_bytes);
	c->stack_offset = layout_meta(best_n) - best_n * sizeof(uint16_t);
	c->obj_offset = layout_obj_offset(best_n, c->align);
}

/* ---- slab set ---- */

static size_t set_hash(const struct slab_cache *c, uintptr_t key)
{
	uint64_t x = (uint64_t)key >> c->slab_shift;

	x *= 0x9e3779b97f4a7c15ull;
	x ^= x >> 32;
	return (size_t)x & c->set.mask;
}

static void set_place(struct slab_cache *c, uintptr_t key)
{
	size_t i = set_hash(c, key);

	while (c->set.keys[i])
		i = (i + 1) & c->set.mask;
	c->set.keys[i] = key;
}

static int set_insert(struct slab_cache *c, uintptr_t key)
{
	struct slab_set *set = &c->set;
	size_t cap = set->keys ? set->mask + 1 : 0;

	if ((set->count + 1) * 2 > cap) {
		size_t new_cap = cap ? cap * 2 : 16;
		uintptr_t *old = set->keys;
		uintptr_t *keys = calloc(new_cap, sizeof(*keys));

		if (!keys)
			return -1;
		set->keys = keys;
		set->mask = new_cap - 1;
		for (size_t i = 0; i < cap; i++)
			if (old[i])
				set_place(c, old[i]);
		free(old);
	}
	set_place(c, key);
	set->count++;
	return 0;
}

static bool set_contains(const struct slab_cache *c, uintptr_t key)
{
	if (!c->set.keys)
		return false;
	for (size_t i = set_hash(c, key); c->set.keys[i]; i = (i + 1) & c->set.mask)
		if (c->set.keys[i] == key)
			return true;
	return false;
}

static void set_remove(struct slab_cache *c, uintptr_t key)
{
	struct slab_set *set = &c->set;
	size_t i = set_hash(c, key);

	while (set->keys[i] != key)
		i = (i + 1) & set->mask;
	set->keys[i] = 0;
	set->count--;
	/* Backward-shift deletion: pull up entries whose probe passed slot i. */
	for (size_t j = (i + 1) & set->mask; set->keys[j]; j = (j + 1) & set->mask) {
		size_t home = set_hash(c, set->keys[j]);
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);

		if (!stays) {
			set->keys[i] = set->keys[j];
			set->keys[j] = 0;
			i = j;
		}
	}
}

/* ---- slabs ---- */

static uint16_t *slab_stack(const struct slab_cache *c, struct slab *s)
{
	return (uint16_t *)((char *)s + c->stack_offset);
}

static void *slab_object(const struct slab_cache *c, struct slab *s, size_t idx)
{
	return (char *)s + c->obj_offset + idx * c->stride;
}

static void list_add(struct slab **head, struct slab *s, enum slab_list_id id)
{
	s->prev = NULL;
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
	s->list = id;
}

static void list_del(struct slab **head, struct slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	s->list = 0;
}

/* Maps a new slab aligned to its size, with every object free. */
static struct slab *slab_map(struct slab_cache *c)
{
	size_t bytes = c->slab_bytes;
	/* A page-sized slab is aligned anyway; otherwise trim an oversized map. */
	size_t len = bytes == SLAB_PAGE_SIZE ? bytes : 2 * bytes - SLAB_PAGE_SIZE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	uintptr_t base = round_up((uintptr_t)p, bytes);
	size_t head = base - (uintptr_t)p, tail = len - head - bytes;

	if (head)
		munmap(p, head);
	if (tail)
		munmap((char *)base + bytes, tail);
	if (set_insert(c, base)) {
		munmap((void *)base, bytes);
		return NULL;
	}

	struct slab *s = (struct slab *)base;
	uint16_t *stack = slab_stack(c, s);
	uint32_t n = c->objects_per_slab;

	/* The map is zeroed, so the bitmap is clear. Pop order is address order. */
	s->cache = c;
	for (uint32_t i = 0; i < n; i++)
		stack[i] = (uint16_t)(n - 1 - i);
	ASAN_POISON_MEMORY_REGION((char *)s + c->obj_offset, bytes - c->obj_offset);
	return s;
}

static void slab_unmap(struct slab_cache *c, struct slab *s)
{
	set_remove(c, (uintptr_t)s);
	/* The shadow outlives the mapping: leave it clean for the next user. */
	ASAN_UNPOISON_MEMORY_REGION(s, c->slab_bytes);
	munmap(s, c->slab_bytes);
}

/* ---- caches ---- */

struct slab_cache *slab_cache_create(const char *name, size_t object_size, size_t align)
{
	if (!align)
		align = 8;
	if (!object_size || object_size > SLAB_MAX_SIZE || align > SLAB_MAX_SIZE ||
	    (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}

	struct slab_cache *c = calloc(1, sizeof(*c));

	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	if (name) {
		size_t len = strnlen(name, SLAB_NAME_LEN - 1);

		memcpy(c->name, name, len);
		c->name[len] = '\0';
	}
	c->object_size = object_size;
	c->align = align;
	c->stride = round_up(object_size, align);
	layout_choose(c);
	if (pthread_mutex_init(&c->lock, NULL)) {
		free(c);
		errno = ENOMEM;
		return NULL;
	}

	pthread_mutex_lock(&registry_lock);
	c->reg_prev = registry_tail;
	if (registry_tail)
		registry_tail->reg_next = c;
	else
		registry_head = c;
	registry_tail = c;
	pthread_mutex_unlock(&registry_lock);
	return c;
}

static void unmap_list(struct slab_cache *c, struct slab *s)
{
	while (s) {
		struct slab *next = s->next;

		slab_unmap(c, s);
		s = next;
	}
}

void slab_cache_destroy(struct slab_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&registry_lock);
	if (c->reg_prev)
		c->reg_prev->reg_next = c->reg_next;
	else
		registry_head = c->reg_next;
	if (c->reg_next)
		c->reg_next->reg_prev = c->reg_prev;
	else
		registry_tail = c->reg_prev;
	pthread_mutex_unlock(&registry_lock);

	unmap_list(c, c->partial);
	unmap_list(c, c->full);
	unmap_list(c, c->empty);
	free(c->set.keys);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

void *slab_alloc(struct slab_cache *c)
{
	if (fault_inject_hit(FAULT_ALLOC)) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&c->lock);

	struct slab *s = c->partial;

	if (!s) {
		s = c->empty;
		if (s) {
			c->empty = NULL;
		} else {
			s = slab_map(c);
			if (!s) {
				pthread_mutex_unlock(&c->lock);
				errno = ENOMEM;
				return NULL;
			}
			c->nslabs++;
		}
		list_add(&c->partial, s, SLAB_ON_PARTIAL);
	}

	uint32_t n = c->objects_per_slab;
	uint16_t idx = slab_stack(c, s)[n - s->inuse - 1];

	s->bitmap[idx / 64] |= 1ull << (idx % 64);
	if (++s->inuse == n) {
		list_del(&c->partial, s);
		list_add(&c->full, s, SLAB_ON_FULL);
	}
	c->active++;

	void *obj = slab_object(c, s, idx);

	/* Under the lock: neighbours may share a shadow byte. */
	ASAN_UNPOISON_MEMORY_REGION(obj, c->object_size);
	pthread_mutex_unlock(&c->lock);
	memset(obj, 0, c->object_size);
	return obj;
}

static void __attribute__((noreturn))
slab_misuse(struct slab_cache *c, void *object, const char *what)
{
	fprintf(stderr, "slab_free(%s, %p): %s\n", c->name, object, what);
	fflush(stderr);
	abort();
}

void slab_free(struct slab_cache *c, void *object)
{
	if (!object)
		return;

	uintptr_t addr = (uintptr_t)object;
	uintptr_t base = addr & ~(uintptr_t)(c->slab_bytes - 1);

	pthread_mutex_lock(&c->lock);
	/* Only look at the header once the slab is known to be ours. */
	if (!set_contains(c, base))
		slab_misuse(c, object, "not an object of this cache");

	struct slab *s = (struct slab *)base;
	size_t off = addr - base;

	if (off < c->obj_offset || (off - c->obj_offset) % c->stride)
		slab_misuse(c, object, "not on an object boundary");

	size_t idx = (off - c->obj_offset) / c->stride;
	uint64_t bit = 1ull << (idx % 64);

	if (idx >= c->objects_per_slab)
		slab_misuse(c, object, "beyond the last object of its slab");
	if (!(s->bitmap[idx / 64] & bit))
		slab_misuse(c, object, "double free (object is not allocated)");

	s->bitmap[idx / 64] &= ~bit;
	slab_stack(c, s)[c->objects_per_slab - s->inuse] = (uint16_t)idx;
	s->inuse--;
	c->active--;
	ASAN_POISON_MEMORY_REGION(object, c->stride);

	if (s->list == SLAB_ON_FULL) {
		list_del(&c->full, s);
		if (s->inuse)
			list_add(&c->partial, s, SLAB_ON_PARTIAL);
	} else if (!s->inuse) {
		list_del(&c->partial, s);
	}
	if (!s->inuse) {
		if (!c->empty) {
			c->empty = s;
			s->list = SLAB_ON_EMPTY;
		} else {
			slab_unmap(c, s);
			c->nslabs--;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* Caller holds c->lock. */
static void fill_info(const struct slab_cache *c, struct slab_info *info)
{
	memset(info, 0, sizeof(*info));
	memcpy(info->name, c->name, sizeof(info->name));
	info->object_size = c->object_size;
	info->object_stride = c->stride;
	info->active_objects = c->active;
	info->total_objects = c->nslabs * c->objects_per_slab;
	info->objects_per_slab = c->objects_per_slab;
	info->pages_per_slab = c->pages_per_slab;
	info->slabs = c->nslabs;
	info->pages = c->nslabs * c->pages_per_slab;
}

void slab_cache_info(struct slab_cache *c, struct slab_info *info)
{
	pthread_mutex_lock(&c->lock);
	fill_info(c, info);
	pthread_mutex_unlock(&c->lock);
}

size_t slab_caches_info(struct slab_info *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&registry_lock);
	for (struct slab_cache *c = registry_head; c && n < max; c = c->reg_next) {
		pthread_mutex_lock(&c->lock);
		fill_info(c, &out[n++]);
		pthread_mutex_unlock(&c->lock);
	}
	pthread_mutex_unlock(&registry_lock);
	return n;
}
