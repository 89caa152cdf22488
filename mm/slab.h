/*
 * slab.h - slab caches for the VMM's own small fixed-size objects (reverse-map
 * items, KSM tree nodes, ...), in the manner of Linux's SLAB allocator.
 *
 * A cache hands out objects of one size. It carves them out of slabs: chunks
 * of pages_per_slab 4 KiB pages (a power of two) from mmap, each naturally
 * aligned to its own size, so that the slab of an object is found by masking
 * the object's address. A slab is laid out as
 *
 *   [struct slab | allocated bitmap | free index stack | pad | objects ...]
 *
 *   header       list links, owning cache, in-use count.
 *   bitmap       one bit per object, set while it is allocated: slab_free
 *                checks it, so a double free aborts instead of corrupting
 *                the free stack.
 *   free stack   16-bit indices of the free objects; slab_alloc pops,
 *                slab_free pushes, so the most recently freed (cache-warm)
 *                object is reused first. Free lists are kept out of the
 *                objects, so a write after free cannot corrupt them.
 *   objects      objects_per_slab objects, object_stride bytes apart
 *                (object_size rounded up to the alignment), the first at an
 *                aligned offset.
 *
 * pages_per_slab is the smallest power of two that holds at least 8 objects
 * with at most 1/16 of the slab lost to padding and the unusable tail (the
 * header and per-object metadata not counted). If no slab up to 64 pages, and
 * up to 4x the smallest slab that holds one object, manages that, the one
 * with the least waste is used. So objects bigger than a page get multi-page
 * slabs, and huge objects may get slabs of a single object.
 *
 * Each cache keeps its slabs on three lists: partial (some objects free),
 * full (none free) and at most one empty slab, kept to absorb alloc/free
 * churn at a slab boundary; a slab that becomes empty while another empty one
 * is cached is unmapped at once. Allocation prefers partial slabs, then the
 * cached empty slab, then maps a new one.
 *
 * Invariants (under the cache's lock):
 *   - every slab of the cache is on exactly one list matching its in-use
 *     count, and its base address is in the cache's slab set;
 *   - an object is allocated iff its bitmap bit is set iff its index is not
 *     on the slab's free stack;
 *   - slabs * objects_per_slab = total_objects >= active_objects.
 *
 * slab_free validates its argument against the cache's slab set (a hash of
 * slab base addresses) before touching the slab, so a pointer that is not an
 * object of this cache aborts with a message rather than faulting: a foreign
 * pointer, one into another cache, one not on an object boundary, or an
 * object that is already free.
 *
 * Under AddressSanitizer free objects are poisoned and unpoisoned when handed
 * out, so a use after free of a slab object is reported.
 *
 * Locking: one mutex per cache; a global registry of live caches (for
 * slab_caches_info) has its own mutex, taken before a cache's. All functions
 * are thread-safe, except that a cache must not be used once
 * slab_cache_destroy has started on it.
 */
#ifndef MM_SLAB_H
#define MM_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define SLAB_NAME_LEN 32

struct slab_cache;

/*
 * Creates a cache for objects of object_size bytes aligned to align (a power
 * of two; 0 means 8). name is copied, truncated to SLAB_NAME_LEN - 1 bytes.
 * Returns NULL with errno set on error: EINVAL for a zero size, an alignment
 * that is not a power of two, or a size or alignment above 16 MiB; ENOMEM.
 */
struct slab_cache *slab_cache_create(const char *name, size_t object_size, size_t align);

/* Releases every slab, whether or not its objects were freed. NULL is a no-op. */
void slab_cache_destroy(struct slab_cache *cache);

/* A zeroed object, or NULL (errno ENOMEM) when a new slab cannot be mapped. */
void *slab_alloc(struct slab_cache *cache);

/*
 * Returns an object to its cache. NULL is a no-op. Aborts with a message if
 * object is not an allocated object of this cache.
 */
void slab_free(struct slab_cache *cache, void *object);

struct slab_info {
	char name[SLAB_NAME_LEN];
	size_t object_size;			/* as requested */
	size_t object_stride;			/* object_size rounded up to the alignment */
	uint64_t active_objects, total_objects; /* like /proc/slabinfo */
	uint32_t objects_per_slab, pages_per_slab;
	uint64_t slabs, pages; /* host pages used by the cache */
};

void slab_cache_info(struct slab_cache *cache, struct slab_info *info);

/*
 * Fills out[] with every live cache in creation order (for a slabinfo
 * report), at most max of them; returns how many were written.
 */
size_t slab_caches_info(struct slab_info *out, size_t max);

#endif
