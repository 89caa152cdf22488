/*
 * zswap.c - compressed in-memory swap cache (LZ4) keyed by swap slot. See
 * zswap.h for the design and its invariants.
 */
#include "zswap.h"

#include <errno.h>
#include <lz4.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "io/xxh3.h"

#define ZSWAP_MIN_BUCKETS 256

struct zswap_entry {
	struct zswap_entry *next;
	uint64_t slot;
	uint64_t checksum; /* XXH3-64 of the uncompressed page */
	uint32_t len;	   /* compressed bytes in data */
	uint8_t data[];
};

struct zswap {
	pthread_mutex_t lock;
	struct zswap_entry **buckets;
	uint64_t nbuckets; /* a power of two */
	struct zswap_stats stats;
};

static uint64_t entry_size(const struct zswap_entry *e)
{
	return sizeof(*e) + e->len;
}

static uint64_t bucket_of(uint64_t slot, uint64_t nbuckets)
{
	return (slot * 0x9e3779b97f4a7c15ull) >> (64 - __builtin_ctzll(nbuckets));
}

int zswap_create(struct zswap **out, uint64_t max_bytes)
{
	struct zswap *z = calloc(1, sizeof(*z));

	*out = NULL;
	if (!z)
		return -ENOMEM;
	z->nbuckets = ZSWAP_MIN_BUCKETS;
	z->buckets = calloc(z->nbuckets, sizeof(*z->buckets));
	if (!z->buckets) {
		free(z);
		return -ENOMEM;
	}
	z->stats.max_bytes = max_bytes;
	pthread_mutex_init(&z->lock, NULL);
	*out = z;
	return 0;
}

void zswap_destroy(struct zswap *z)
{
	if (!z)
		return;
	for (uint64_t b = 0; b < z->nbuckets; b++) {
		struct zswap_entry *e = z->buckets[b], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&z->lock);
	free(z->buckets);
	free(z);
}

/* Under lock. The link pointing at slot's entry, or at the NULL ending its chain. */
static struct zswap_entry **find(struct zswap *z, uint64_t slot)
{
	struct zswap_entry **p = &z->buckets[bucket_of(slot, z->nbuckets)];

	while (*p && (*p)->slot != slot)
		p = &(*p)->next;
	return p;
}

/* Under lock: unlinks and frees *p. */
static void erase(struct zswap *z, struct zswap_entry **p)
{
	struct zswap_entry *e = *p;

	*p = e->next;
	z->stats.stored_pages--;
	z->stats.pool_bytes -= entry_size(e);
	free(e);
}

/* Under lock: doubles the table (on allocation failure it just stays). */
static void grow(struct zswap *z)
{
	uint64_t n = z->nbuckets * 2;
	struct zswap_entry **b = calloc(n, sizeof(*b));

	if (!b)
		return;
	for (uint64_t i = 0; i < z->nbuckets; i++) {
		struct zswap_entry *e = z->buckets[i], *next;

		for (; e; e = next) {
			uint64_t j = bucket_of(e->slot, n);

			next = e->next;
			e->next = b[j];
			b[j] = e;
		}
	}
	free(z->buckets);
	z->buckets = b;
	z->nbuckets = n;
}

int zswap_store(struct zswap *z, uint64_t slot, const void *page, uint64_t tag)
{
	char buf[ZSWAP_MAX_COMPRESSED];
	struct zswap_entry *e = NULL, **p;
	int len;

	/* Outside the lock: compression is the expensive part. */
	len = LZ4_compress_default(page, buf, ZSWAP_PAGE_SIZE, sizeof(buf));
	if (len > 0) {
		e = malloc(sizeof(*e) + (size_t)len);
		if (e) {
			e->slot = slot;
			e->len = (uint32_t)len;
			e->checksum = XXH3_64bits_withSeed(page, ZSWAP_PAGE_SIZE, tag);
			memcpy(e->data, buf, (size_t)len);
		}
	}

	pthread_mutex_lock(&z->lock);
	p = find(z, slot);
	if (*p)
		erase(z, p); /* the slot's old contents are stale either way */
	if (len <= 0) {
		z->stats.rejects++;
		z->stats.reject_compress_poor++;
		goto reject;
	}
	if (!e || z->stats.pool_bytes + entry_size(e) > z->stats.max_bytes) {
		z->stats.rejects++;
		z->stats.pool_limit_hit++;
		goto reject;
	}
	e->next = *p;
	*p = e;
	z->stats.stored_pages++;
	z->stats.pool_bytes += entry_size(e);
	z->stats.stores++;
	if (z->stats.stored_pages > z->nbuckets)
		grow(z);
	pthread_mutex_unlock(&z->lock);
	return 0;

reject:
	pthread_mutex_unlock(&z->lock);
	free(e);
	return -1;
}

int zswap_load(struct zswap *z, uint64_t slot, void *page, uint64_t tag)
{
	struct zswap_entry *e;
	int n, ret = 0;

	pthread_mutex_lock(&z->lock);
	e = *find(z, slot);
	if (!e) {
		pthread_mutex_unlock(&z->lock);
		return -1;
	}
	n = LZ4_decompress_safe((const char *)e->data, page, (int)e->len, ZSWAP_PAGE_SIZE);
	if (n != ZSWAP_PAGE_SIZE ||
	    XXH3_64bits_withSeed(page, ZSWAP_PAGE_SIZE, tag) != e->checksum) {
		memset(page, 0, ZSWAP_PAGE_SIZE);
		z->stats.load_errors++;
		ret = -EBADMSG;
	} else {
		z->stats.loads++;
	}
	pthread_mutex_unlock(&z->lock);
	return ret;
}

void zswap_invalidate(struct zswap *z, uint64_t slot)
{
	struct zswap_entry **p;

	pthread_mutex_lock(&z->lock);
	p = find(z, slot);
	if (*p)
		erase(z, p);
	pthread_mutex_unlock(&z->lock);
}

void zswap_get_stats(struct zswap *z, struct zswap_stats *s)
{
	pthread_mutex_lock(&z->lock);
	*s = z->stats;
	pthread_mutex_unlock(&z->lock);
}

int zswap_test_corrupt(struct zswap *z, uint64_t slot)
{
	struct zswap_entry *e;

	pthread_mutex_lock(&z->lock);
	e = *find(z, slot);
	if (e)
		e->data[e->len - 1] ^= 0x5a;
	pthread_mutex_unlock(&z->lock);
	return e ? 0 : -1;
}
