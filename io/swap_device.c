/*
 * swap_device.c - the swap device: backing file, cluster slot allocator,
 * per-slot checksums and the swap cache. See swap_device.h for the algorithm,
 * its invariants and the locking.
 */
#include "swap_device.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/xxh3.h"

#define SWAP_SLOT_HAS_CACHE (1u << 31)
#define SWAP_SLOT_REFS_MASK (SWAP_SLOT_HAS_CACHE - 1)

#define CLUSTER_NONE UINT32_MAX
#define CLUSTER_ON_FREE_LIST (1u << 0)
#define CLUSTER_CURRENT (1u << 1) /* some stream's current cluster */

#define SWAP_CACHE_BITS 12 /* 4096 buckets: far more than the writes in flight */
#define SWAP_CACHE_BUCKETS (1u << SWAP_CACHE_BITS)

struct swap_cluster {
	uint32_t next;	  /* free list link */
	uint16_t nr_free; /* free slots in the cluster */
	uint16_t flags;
};

struct swap_stream {
	uint32_t cluster; /* current cluster or CLUSTER_NONE */
	uint32_t next;	  /* offset in the cluster where the next search starts */
};

struct swap_device {
	int fd;
	int fault_read_fd;  /* pty master whose slave is closed: reads fail with EIO */
	int fault_write_fd; /* pty slave whose master is closed: writes fail with EIO */
	char *path;
	bool keep;
	uint64_t size_bytes, nslots;
	uint32_t nclusters;

	/* Allocator, under lock. */
	pthread_mutex_t lock;
	uint32_t *map; /* per slot: refs | SWAP_SLOT_HAS_CACHE */
	struct swap_cluster *clusters;
	uint32_t free_head, free_tail, nr_free_clusters;
	uint64_t free_slots;
	uint32_t scan_cluster; /* fallback scan cursor */
	struct swap_stream *streams;

	uint64_t *csum;				   /* per slot, relaxed atomics */
	void (*on_free)(void *ctx, uint64_t slot); /* under lock */
	void *on_free_ctx;

	/* Swap cache, under cache_lock. */
	pthread_mutex_t cache_lock;
	struct swap_cache_entry **cache;
	uint64_t cache_entries;

	uint64_t counters[SWAP_STAT_NR]; /* atomics */
};

static _Noreturn void swap_bug(const char *what, uint64_t slot)
{
	fprintf(stderr, "swap_device: %s (slot %llu)\n", what, (unsigned long long)slot);
	abort();
}

/* ---- Opening and closing ---- */

/* Opens a pty pair, both ends. Returns 0, or -1 with nothing left open. */
static int open_pty_pair(int *master, int *slave)
{
	*master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (*master < 0)
		return -1;
	if (grantpt(*master) || unlockpt(*master) ||
	    (*slave = open(ptsname(*master), O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		close(*master);
		return -1;
	}
	return 0;
}

/* Fault-injection descriptors: a pty pair per direction (see the header). */
static void open_fault_fds(struct swap_device *dev)
{
	int master, slave;

	dev->fault_read_fd = -1;
	dev->fault_write_fd = -1;

	/* Reads: master of a pty whose slave has been opened and closed. */
	if (open_pty_pair(&master, &slave))
		return;
	close(slave);
	dev->fault_read_fd = master;

	/* Writes: slave of a pty whose master is closed (hung up). */
	if (open_pty_pair(&master, &slave))
		return;
	close(master);
	dev->fault_write_fd = slave;
}

static uint32_t cluster_size(const struct swap_device *dev, uint32_t c)
{
	uint64_t first = (uint64_t)c * SWAP_CLUSTER_SLOTS;

	return dev->nslots - first < SWAP_CLUSTER_SLOTS ? (uint32_t)(dev->nslots - first)
							: SWAP_CLUSTER_SLOTS;
}

static void push_free_cluster(struct swap_device *dev, uint32_t c)
{
	dev->clusters[c].next = CLUSTER_NONE;
	dev->clusters[c].flags |= CLUSTER_ON_FREE_LIST;
	if (dev->free_tail == CLUSTER_NONE)
		dev->free_head = c;
	else
		dev->clusters[dev->free_tail].next = c;
	dev->free_tail = c;
	dev->nr_free_clusters++;
}

static uint32_t pop_free_cluster(struct swap_device *dev)
{
	uint32_t c = dev->free_head;

	if (c == CLUSTER_NONE)
		return c;
	dev->free_head = dev->clusters[c].next;
	if (dev->free_head == CLUSTER_NONE)
		dev->free_tail = CLUSTER_NONE;
	dev->clusters[c].flags &= ~CLUSTER_ON_FREE_LIST;
	dev->clusters[c].next = CLUSTER_NONE;
	dev->nr_free_clusters--;
	return c;
}

static int alloc_state(struct swap_device *dev)
{
	dev->nclusters = (uint32_t)((dev->nslots + SWAP_CLUSTER_SLOTS - 1) / SWAP_CLUSTER_SLOTS);
	dev->map = calloc(dev->nslots, sizeof(*dev->map));
	dev->csum = calloc(dev->nslots, sizeof(*dev->csum));
	dev->clusters = calloc(dev->nclusters, sizeof(*dev->clusters));
	dev->streams = calloc(SWAP_MAX_STREAMS, sizeof(*dev->streams));
	dev->cache = calloc(SWAP_CACHE_BUCKETS, sizeof(*dev->cache));
	if (!dev->map || !dev->csum || !dev->clusters || !dev->streams || !dev->cache)
		return -ENOMEM;

	dev->free_head = CLUSTER_NONE;
	dev->free_tail = CLUSTER_NONE;
	for (uint32_t c = 0; c < dev->nclusters; c++) {
		dev->clusters[c].nr_free = (uint16_t)cluster_size(dev, c);
		push_free_cluster(dev, c);
	}
	for (unsigned s = 0; s < SWAP_MAX_STREAMS; s++)
		dev->streams[s].cluster = CLUSTER_NONE;
	dev->free_slots = dev->nslots;
	pthread_mutex_init(&dev->lock, NULL);
	pthread_mutex_init(&dev->cache_lock, NULL);
	return 0;
}

static void free_state(struct swap_device *dev)
{
	free(dev->map);
	free(dev->csum);
	free(dev->clusters);
	free(dev->streams);
	free(dev->cache);
	free(dev->path);
	free(dev);
}

/* Creates, preallocates and switches the file to O_DIRECT. Returns fd or -errno. */
static int create_file(const struct swap_device_config *cfg, char *err, size_t errlen)
{
	int fd, ret, flags;

	fd = open(cfg->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		ret = -errno;
		if (ret == -EEXIST)
			snprintf(err, errlen, "swap file %s already exists", cfg->path);
		else if (ret == -ENOENT)
			snprintf(err, errlen,
				 "cannot create swap file %s: directory does not exist", cfg->path);
		else
			snprintf(err, errlen, "cannot create swap file %s: %s", cfg->path,
				 strerror(-ret));
		return ret;
	}

	ret = fallocate(fd, 0, 0, (off_t)cfg->size_bytes);
	if (ret) {
		ret = -errno;
		if (ret == -ENOSPC || ret == -EFBIG)
			snprintf(err, errlen,
				 "no space for a %llu-byte swap file %s (fallocate: %s)",
				 (unsigned long long)cfg->size_bytes, cfg->path, strerror(-ret));
		else if (ret == -EOPNOTSUPP)
			snprintf(err, errlen,
				 "the filesystem of swap file %s does not support fallocate",
				 cfg->path);
		else
			snprintf(err, errlen, "cannot preallocate swap file %s: %s", cfg->path,
				 strerror(-ret));
		goto fail;
	}

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_DIRECT)) {
		ret = -errno;
		if (ret == -EINVAL) {
			ret = -EOPNOTSUPP;
			snprintf(err, errlen,
				 "the filesystem of swap file %s does not support O_DIRECT",
				 cfg->path);
		} else {
			snprintf(err, errlen, "cannot set O_DIRECT on swap file %s: %s", cfg->path,
				 strerror(-ret));
		}
		goto fail;
	}
	return fd;

fail:
	close(fd);
	unlink(cfg->path);
	return ret;
}

int swap_device_open(struct swap_device **out, const struct swap_device_config *cfg, char *err,
		     size_t errlen)
{
	struct swap_device *dev;
	int fd, ret;

	*out = NULL;
	if (!cfg->path || !cfg->path[0]) {
		snprintf(err, errlen, "no swap file path given");
		return -EINVAL;
	}
	if (cfg->size_bytes % SWAP_PAGE_SIZE) {
		snprintf(err, errlen, "swap size %llu is not a multiple of %u bytes",
			 (unsigned long long)cfg->size_bytes, SWAP_PAGE_SIZE);
		return -EINVAL;
	}
	if (cfg->size_bytes < (uint64_t)SWAP_CLUSTER_SLOTS * SWAP_PAGE_SIZE) {
		snprintf(err, errlen, "swap size %llu is below one cluster (%u bytes)",
			 (unsigned long long)cfg->size_bytes, SWAP_CLUSTER_SLOTS * SWAP_PAGE_SIZE);
		return -EINVAL;
	}
	if (cfg->size_bytes / SWAP_PAGE_SIZE > SWAP_MAX_SLOTS) {
		snprintf(err, errlen, "swap size %llu exceeds %llu slots",
			 (unsigned long long)cfg->size_bytes, (unsigned long long)SWAP_MAX_SLOTS);
		return -EINVAL;
	}

	fd = create_file(cfg, err, errlen);
	if (fd < 0)
		return fd;

	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		ret = -ENOMEM;
		goto fail_file;
	}
	dev->fd = fd;
	dev->keep = cfg->keep;
	dev->size_bytes = cfg->size_bytes;
	dev->nslots = cfg->size_bytes / SWAP_PAGE_SIZE;
	dev->path = strdup(cfg->path);
	ret = dev->path ? alloc_state(dev) : -ENOMEM;
	if (ret) {
		free_state(dev);
		goto fail_file;
	}
	open_fault_fds(dev);
	*out = dev;
	return 0;

fail_file:
	snprintf(err, errlen, "out of memory for the state of swap file %s", cfg->path);
	close(fd);
	unlink(cfg->path);
	return ret;
}

void swap_device_close(struct swap_device *dev)
{
	if (!dev)
		return;
	if (dev->cache_entries)
		swap_bug("closed with writes in flight", 0);
	close(dev->fd);
	if (dev->fault_read_fd >= 0)
		close(dev->fault_read_fd);
	if (dev->fault_write_fd >= 0)
		close(dev->fault_write_fd);
	if (!dev->keep)
		unlink(dev->path);
	pthread_mutex_destroy(&dev->lock);
	pthread_mutex_destroy(&dev->cache_lock);
	free_state(dev);
}

uint64_t swap_device_slots(const struct swap_device *dev)
{
	return dev->nslots;
}

uint64_t swap_device_free_slots(struct swap_device *dev)
{
	uint64_t n;

	pthread_mutex_lock(&dev->lock);
	n = dev->free_slots;
	pthread_mutex_unlock(&dev->lock);
	return n;
}

/* ---- Slot allocation (under dev->lock) ---- */

static void take_slot(struct swap_device *dev, uint64_t slot)
{
	dev->map[slot] = 1;
	dev->clusters[slot / SWAP_CLUSTER_SLOTS].nr_free--;
	dev->free_slots--;
}

/* The slot's map word has just become 0. */
static void put_slot(struct swap_device *dev, uint64_t slot)
{
	uint32_t c = (uint32_t)(slot / SWAP_CLUSTER_SLOTS);
	struct swap_cluster *cl = &dev->clusters[c];

	if (dev->on_free)
		dev->on_free(dev->on_free_ctx, slot);
	cl->nr_free++;
	dev->free_slots++;
	if (cl->nr_free == cluster_size(dev, c) && !(cl->flags & CLUSTER_CURRENT))
		push_free_cluster(dev, c);
}

/* Takes up to n consecutive free slots from first (free) up to end. */
static unsigned take_run(struct swap_device *dev, uint64_t first, uint64_t end, unsigned n)
{
	unsigned k = 0;

	while (k < n && first + k < end && dev->map[first + k] == 0) {
		take_slot(dev, first + k);
		k++;
	}
	return k;
}

/* The stream gives up its current cluster (used up to its end). */
static void release_cluster(struct swap_device *dev, struct swap_stream *st)
{
	uint32_t c = st->cluster;
	struct swap_cluster *cl = &dev->clusters[c];

	cl->flags &= ~CLUSTER_CURRENT;
	st->cluster = CLUSTER_NONE;
	if (cl->nr_free == cluster_size(dev, c))
		push_free_cluster(dev, c);
}

/* No free cluster: any free slot, scanning clusters round-robin. */
static unsigned scan_any(struct swap_device *dev, unsigned n, uint64_t *first)
{
	if (!dev->free_slots)
		return 0;
	for (uint32_t i = 0; i < dev->nclusters; i++) {
		uint32_t c = (dev->scan_cluster + i) % dev->nclusters;
		uint64_t base = (uint64_t)c * SWAP_CLUSTER_SLOTS, end = base + cluster_size(dev, c);

		if (!dev->clusters[c].nr_free)
			continue;
		if (dev->clusters[c].flags & CLUSTER_ON_FREE_LIST)
			swap_bug("fallback scan met a cluster on the free list", base);
		for (uint64_t s = base; s < end; s++) {
			if (dev->map[s] == 0) {
				dev->scan_cluster = c;
				*first = s;
				return take_run(dev, s, end, n);
			}
		}
		swap_bug("cluster free count disagrees with the slot map", base);
	}
	swap_bug("free slot count disagrees with the clusters", 0);
}

unsigned swap_slot_alloc_run(struct swap_device *dev, unsigned stream, unsigned n, uint64_t *first)
{
	struct swap_stream *st = &dev->streams[stream % SWAP_MAX_STREAMS];
	unsigned k = 0;

	if (!n)
		return 0;
	pthread_mutex_lock(&dev->lock);
	for (;;) {
		if (st->cluster != CLUSTER_NONE) {
			uint64_t base = (uint64_t)st->cluster * SWAP_CLUSTER_SLOTS;
			uint64_t end = base + cluster_size(dev, st->cluster);
			uint64_t s = base + st->next;

			while (s < end && dev->map[s])
				s++;
			if (s < end) {
				k = take_run(dev, s, end, n);
				st->next = (uint32_t)(s + k - base);
				*first = s;
				goto out;
			}
			release_cluster(dev, st);
		}
		st->cluster = pop_free_cluster(dev);
		if (st->cluster == CLUSTER_NONE)
			break;
		dev->clusters[st->cluster].flags |= CLUSTER_CURRENT;
		st->next = 0;
	}
	k = scan_any(dev, n, first);
out:
	pthread_mutex_unlock(&dev->lock);
	return k;
}

int64_t swap_slot_alloc(struct swap_device *dev, unsigned stream)
{
	uint64_t slot;

	if (!swap_slot_alloc_run(dev, stream, 1, &slot))
		return -1;
	return (int64_t)slot;
}

void swap_slot_dup(struct swap_device *dev, uint64_t slot)
{
	if (slot >= dev->nslots)
		swap_bug("dup of a slot out of range", slot);
	pthread_mutex_lock(&dev->lock);
	if ((dev->map[slot] & SWAP_SLOT_REFS_MASK) == 0)
		swap_bug("dup of a free slot", slot);
	if ((dev->map[slot] & SWAP_SLOT_REFS_MASK) == SWAP_SLOT_REFS_MASK)
		swap_bug("slot reference count overflow", slot);
	dev->map[slot]++;
	pthread_mutex_unlock(&dev->lock);
}

void swap_device_on_free(struct swap_device *dev, void (*fn)(void *ctx, uint64_t slot), void *ctx)
{
	pthread_mutex_lock(&dev->lock);
	dev->on_free = fn;
	dev->on_free_ctx = ctx;
	pthread_mutex_unlock(&dev->lock);
}

void swap_slot_free(struct swap_device *dev, uint64_t slot)
{
	if (slot >= dev->nslots)
		swap_bug("free of a slot out of range", slot);
	pthread_mutex_lock(&dev->lock);
	if ((dev->map[slot] & SWAP_SLOT_REFS_MASK) == 0)
		swap_bug("free of a free slot", slot);
	if (--dev->map[slot] == 0)
		put_slot(dev, slot);
	pthread_mutex_unlock(&dev->lock);
}

unsigned swap_slot_refs(struct swap_device *dev, uint64_t slot)
{
	unsigned refs;

	if (slot >= dev->nslots)
		return 0;
	pthread_mutex_lock(&dev->lock);
	refs = dev->map[slot] & SWAP_SLOT_REFS_MASK;
	pthread_mutex_unlock(&dev->lock);
	return refs;
}

int swap_device_check(struct swap_device *dev)
{
	uint64_t free_slots = 0;
	uint32_t on_list = 0, current = 0, streams_current = 0;
	int ret = -1;

	pthread_mutex_lock(&dev->lock);
	for (uint32_t c = 0; c < dev->nclusters; c++) {
		uint64_t base = (uint64_t)c * SWAP_CLUSTER_SLOTS;
		uint32_t size = cluster_size(dev, c), nr_free = 0;
		const struct swap_cluster *cl = &dev->clusters[c];

		for (uint32_t i = 0; i < size; i++)
			nr_free += dev->map[base + i] == 0;
		if (nr_free != cl->nr_free) {
			fprintf(stderr, "cluster %u: nr_free %u, map says %u\n", c, cl->nr_free,
				nr_free);
			goto out;
		}
		free_slots += nr_free;
		if (!!(cl->flags & CLUSTER_ON_FREE_LIST) !=
		    (nr_free == size && !(cl->flags & CLUSTER_CURRENT))) {
			fprintf(stderr, "cluster %u: flags %#x with %u of %u slots free\n", c,
				cl->flags, nr_free, size);
			goto out;
		}
		on_list += !!(cl->flags & CLUSTER_ON_FREE_LIST);
		current += !!(cl->flags & CLUSTER_CURRENT);
	}
	if (free_slots != dev->free_slots) {
		fprintf(stderr, "free_slots %llu, map says %llu\n",
			(unsigned long long)dev->free_slots, (unsigned long long)free_slots);
		goto out;
	}
	/* The free list holds exactly the flagged clusters, each once. */
	uint32_t n = 0;
	for (uint32_t c = dev->free_head; c != CLUSTER_NONE; c = dev->clusters[c].next) {
		if (!(dev->clusters[c].flags & CLUSTER_ON_FREE_LIST) || ++n > on_list) {
			fprintf(stderr, "free list: cluster %u unexpected\n", c);
			goto out;
		}
		if (dev->clusters[c].next == CLUSTER_NONE && c != dev->free_tail) {
			fprintf(stderr, "free list: tail %u is not the last cluster %u\n",
				dev->free_tail, c);
			goto out;
		}
	}
	if (n != on_list || n != dev->nr_free_clusters) {
		fprintf(stderr, "free list: %u clusters, %u flagged, count %u\n", n, on_list,
			dev->nr_free_clusters);
		goto out;
	}
	/* Each current cluster belongs to exactly one stream. */
	for (unsigned s = 0; s < SWAP_MAX_STREAMS; s++) {
		uint32_t c = dev->streams[s].cluster;

		if (c == CLUSTER_NONE)
			continue;
		streams_current++;
		if (c >= dev->nclusters || !(dev->clusters[c].flags & CLUSTER_CURRENT) ||
		    dev->streams[s].next > cluster_size(dev, c)) {
			fprintf(stderr, "stream %u: bad current cluster %u\n", s, c);
			goto out;
		}
	}
	if (streams_current != current) {
		fprintf(stderr, "%u streams have a current cluster, %u clusters are current\n",
			streams_current, current);
		goto out;
	}
	ret = 0;
out:
	pthread_mutex_unlock(&dev->lock);
	return ret;
}

/* ---- Checksums ---- */

void swap_device_set_checksum(struct swap_device *dev, uint64_t slot, const void *page,
			      uint64_t tag)
{
	__atomic_store_n(&dev->csum[slot], XXH3_64bits_withSeed(page, SWAP_PAGE_SIZE, tag),
			 __ATOMIC_RELAXED);
}

bool swap_device_checksum_ok(const struct swap_device *dev, uint64_t slot, const void *page,
			     uint64_t tag)
{
	return XXH3_64bits_withSeed(page, SWAP_PAGE_SIZE, tag) ==
	       __atomic_load_n(&dev->csum[slot], __ATOMIC_RELAXED);
}

/* ---- Swap cache ---- */

static struct swap_cache_entry **cache_bucket(struct swap_device *dev, uint64_t slot)
{
	return &dev->cache[(slot * 0x9e3779b97f4a7c15ull) >> (64 - SWAP_CACHE_BITS)];
}

int swap_cache_add(struct swap_device *dev, struct swap_cache_entry *e)
{
	struct swap_cache_entry **b;
	uint32_t v;

	if (e->slot >= dev->nslots)
		return -EINVAL;
	pthread_mutex_lock(&dev->lock);
	v = dev->map[e->slot];
	if (v & SWAP_SLOT_HAS_CACHE) {
		pthread_mutex_unlock(&dev->lock);
		return -EBUSY;
	}
	if ((v & SWAP_SLOT_REFS_MASK) == 0) {
		pthread_mutex_unlock(&dev->lock);
		return -EINVAL;
	}
	dev->map[e->slot] = v | SWAP_SLOT_HAS_CACHE;
	pthread_mutex_unlock(&dev->lock);

	pthread_mutex_lock(&dev->cache_lock);
	b = cache_bucket(dev, e->slot);
	e->next = *b;
	*b = e;
	dev->cache_entries++;
	pthread_mutex_unlock(&dev->cache_lock);
	return 0;
}

void swap_cache_del(struct swap_device *dev, struct swap_cache_entry *e)
{
	struct swap_cache_entry **p;

	pthread_mutex_lock(&dev->cache_lock);
	for (p = cache_bucket(dev, e->slot); *p != e; p = &(*p)->next)
		if (!*p)
			swap_bug("swap cache entry not found", e->slot);
	*p = e->next;
	e->next = NULL;
	dev->cache_entries--;
	pthread_mutex_unlock(&dev->cache_lock);

	pthread_mutex_lock(&dev->lock);
	dev->map[e->slot] &= ~SWAP_SLOT_HAS_CACHE;
	if (dev->map[e->slot] == 0)
		put_slot(dev, e->slot);
	pthread_mutex_unlock(&dev->lock);
}

int swap_cache_lookup(struct swap_device *dev, uint64_t slot, void *dst)
{
	const struct swap_cache_entry *e;
	int hit = 0;

	pthread_mutex_lock(&dev->cache_lock);
	for (e = *cache_bucket(dev, slot); e; e = e->next) {
		if (e->slot == slot) {
			memcpy(dst, e->data, SWAP_PAGE_SIZE);
			hit = 1;
			break;
		}
	}
	pthread_mutex_unlock(&dev->cache_lock);
	if (hit)
		swap_device_count(dev->counters, SWAP_STAT_CACHE_HITS, 1);
	return hit;
}

/* ---- Faults, statistics, accessors ---- */

uint64_t *swap_device_counters(struct swap_device *dev)
{
	return dev->counters;
}

void swap_device_get_stats(struct swap_device *dev, struct swap_device_stats *s)
{
	const uint64_t *c = dev->counters;

	memset(s, 0, sizeof(*s));
	s->slots = dev->nslots;
	s->free_slots = swap_device_free_slots(dev);
	s->writes = __atomic_load_n(&c[SWAP_STAT_WRITES], __ATOMIC_RELAXED);
	s->reads = __atomic_load_n(&c[SWAP_STAT_READS], __ATOMIC_RELAXED);
	s->cache_hits = __atomic_load_n(&c[SWAP_STAT_CACHE_HITS], __ATOMIC_RELAXED);
	s->write_errors = __atomic_load_n(&c[SWAP_STAT_WRITE_ERRORS], __ATOMIC_RELAXED);
	s->read_errors = __atomic_load_n(&c[SWAP_STAT_READ_ERRORS], __ATOMIC_RELAXED);
	s->checksum_errors = __atomic_load_n(&c[SWAP_STAT_CHECKSUM_ERRORS], __ATOMIC_RELAXED);
	s->bytes_written = __atomic_load_n(&c[SWAP_STAT_BYTES_WRITTEN], __ATOMIC_RELAXED);
	s->bytes_read = __atomic_load_n(&c[SWAP_STAT_BYTES_READ], __ATOMIC_RELAXED);
}

int swap_device_fd(const struct swap_device *dev)
{
	return dev->fd;
}

int swap_device_fault_read_fd(const struct swap_device *dev)
{
	return dev->fault_read_fd;
}

int swap_device_fault_write_fd(const struct swap_device *dev)
{
	return dev->fault_write_fd;
}

uint64_t swap_device_size(const struct swap_device *dev)
{
	return dev->size_bytes;
}
