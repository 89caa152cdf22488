/*
 * swap_device.h - the swap device: a preallocated backing file of 4 KiB slots,
 * the slot allocator, per-slot checksums and the swap cache.
 *
 * The backing file is created (O_EXCL), preallocated with fallocate() so that
 * writing a slot never allocates blocks (no O_DIRECT write is punted to
 * buffered I/O), and used with O_DIRECT only. Slot s is bytes
 * [s * 4096, (s + 1) * 4096) of the file; every slot is usable (unlike
 * Linux, there is no header page: a swap entry is told apart from other
 * entries by its flag bits, not by a non-zero offset). I/O itself is done by
 * io/swap_io.h, one io_uring ring per submitting thread; this file owns the
 * state those rings share.
 *
 * Slot allocation (after Linux's swapfile.c clusters, per-CPU there, per
 * stream here):
 *
 * Slots are grouped in clusters of SWAP_CLUSTER_SLOTS consecutive slots (the
 * last cluster may be shorter). Each stream (a VM, say) has a current cluster
 * and a position in it; an allocation takes the first free slot at or after
 * the position, so consecutive allocations of one stream get consecutive
 * slots, and neighbouring guest pages evicted together land in neighbouring
 * slots (readahead is then one larger read). The stream only moves forward:
 * when no free slot remains between its position and the cluster's end, the
 * cluster stops being current and the stream takes the first cluster of the
 * free-cluster list (FIFO, as Linux's free_clusters). When that list is empty
 * the allocation falls back to any free slot, scanning clusters round-robin
 * from a cursor (the stream then has no current cluster and tries the free
 * list again next time). swap_slot_alloc_run() takes a run of consecutive free
 * slots the same way, stopping at the first used slot or the cluster's end.
 *
 * Slot map: one 32-bit word per slot, reference count in bits 0..30 and
 * SWAP_SLOT_HAS_CACHE in bit 31 (Linux's SWAP_HAS_CACHE): a write of the slot
 * is in flight. A slot is free iff its word is 0. The last reference to a
 * slot with a write in flight does not free it; the write's completion does,
 * so a slot is never reused (and rewritten) while an older write of it may
 * still land on disk.
 *
 * Invariants (under dev->lock):
 *  - free_slots == number of slots whose map word is 0, and each cluster's
 *    nr_free counts its own.
 *  - A cluster is on the free list iff all its slots are free and it is no
 *    stream's current cluster. Each current cluster belongs to one stream.
 *  - When the fallback scan runs, the free list is empty, so it never takes a
 *    slot from a cluster on the free list.
 *
 * Checksums: XXH3-64 of each slot's 4 KiB, seeded with the page's owner tag,
 * one 64-bit word per slot, set by swap_io when a write is queued and checked
 * by it on every read completion, so stale, torn or corrupted slots are
 * reported (-EBADMSG), never returned. The tag names whose page the slot
 * holds (mm/ uses the VM and guest page; 0 for a page with many owners):
 * the reader passes the tag it expects, so a slot-accounting bug that hands
 * one page's slot to another fails verification instead of feeding it
 * another page's data.
 * The words are read and written with relaxed atomics: a slot's writer and
 * reader are ordered by the caller (the page table lock that publishes the
 * slot number).
 *
 * Swap cache: slot -> the bounce buffer of the write in flight to it, a
 * chained hash table under cache_lock. swap_io enters the slot when it queues
 * the write (after copying the data into the buffer) and removes it when it
 * reaps the completion, before the buffer can be reused; swap_cache_lookup()
 * copies the bytes under cache_lock. The protocol that makes faults safe
 * without further locking: the evicting thread queues the write before it
 * publishes the slot in the page table; the faulting thread looks the slot up
 * in the swap cache and reads the file only on a miss. A miss means the write
 * has completed, so the file holds the data.
 *
 * Locking: dev->lock (allocator and slot map) and dev->cache_lock (swap cache
 * hash) are never held together. Statistics and fault-injection counters are
 * atomics. Every function here is thread-safe except open and close.
 */
#ifndef IO_SWAP_DEVICE_H
#define IO_SWAP_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWAP_PAGE_SIZE 4096
#define SWAP_PAGE_SHIFT 12
#define SWAP_CLUSTER_SLOTS 256	    /* Linux's SWAPFILE_CLUSTER */
#define SWAP_MAX_STREAMS 4096	    /* stream numbers are taken modulo this */
#define SWAP_MAX_SLOTS (1ull << 40) /* what a software-EPT swap entry can hold */

struct swap_device_config {
	const char *path;    /* created with O_CREAT | O_EXCL: must not exist */
	uint64_t size_bytes; /* multiple of 4096, at least one cluster (1 MiB) */
	bool keep;	     /* keep the file on close (default: unlink it) */
};

struct swap_device;

/*
 * Creates the file, preallocates it fully with fallocate() and switches it to
 * O_DIRECT. Returns 0, or a negative errno with a one-line reason in err:
 * -EINVAL (bad size or path), -EEXIST, -ENOENT (directory missing), -ENOSPC
 * (fallocate failed; the partial file is removed), -EOPNOTSUPP (the
 * filesystem supports no fallocate or no O_DIRECT; the file is removed),
 * -ENOMEM, or another errno of open/fallocate.
 */
int swap_device_open(struct swap_device **out, const struct swap_device_config *cfg, char *err,
		     size_t errlen);
/* Every swap_io of the device must have been destroyed. Unlinks unless keep. */
void swap_device_close(struct swap_device *dev);

uint64_t swap_device_slots(const struct swap_device *dev);
uint64_t swap_device_free_slots(struct swap_device *dev);

/*
 * One slot for `stream` (see above), reference count 1, or -1 when every slot
 * is in use.
 */
int64_t swap_slot_alloc(struct swap_device *dev, unsigned stream);
/*
 * Up to n consecutive slots for `stream`, each with reference count 1. Returns
 * how many (>= 1, fewer than n at a cluster's end or a used slot) with the
 * first in *first, or 0 when every slot is in use (or n is 0).
 */
unsigned swap_slot_alloc_run(struct swap_device *dev, unsigned stream, unsigned n, uint64_t *first);
/* One more reference to a used slot (a shared frame's slot). */
void swap_slot_dup(struct swap_device *dev, uint64_t slot);
/*
 * Drops one reference; at 0 the slot is free, or becomes free when its write
 * in flight completes. Freeing a free or out-of-range slot aborts: it means a
 * page table and the device disagree, and a reused slot would feed another
 * page's data to a guest.
 */
void swap_slot_free(struct swap_device *dev, uint64_t slot);
/* The reference count (0: free, or only the write in flight holds it). */
unsigned swap_slot_refs(struct swap_device *dev, uint64_t slot);
/*
 * fn(ctx, slot) is called when a slot becomes free, under the allocator's
 * lock, before the slot can be allocated again: what else holds the slot's
 * contents (zswap) lets go of them there, without a window in which a new
 * owner's copy could be dropped instead. fn must not call into the device.
 */
void swap_device_on_free(struct swap_device *dev, void (*fn)(void *ctx, uint64_t slot), void *ctx);

/*
 * Swap cache: if a write of slot is in flight, copies its 4 KiB to dst and
 * returns 1; else returns 0 (the file holds the slot's data).
 */
int swap_cache_lookup(struct swap_device *dev, uint64_t slot, void *dst);

/*
 * Injected failures (io/fault_inject.h), with real effects where possible:
 *   FAULT_WRITE_EIO   the write is submitted to a hung-up pty slave, which
 *                     fails it with -EIO; the file is not touched.
 *   FAULT_READ_EIO    the read is submitted to a pty master whose slave is
 *                     closed, which fails it with -EIO.
 *   FAULT_SHORT_READ  the read is submitted across the end of the file, so
 *                     it returns fewer bytes: -ENODATA.
 *   FAULT_CORRUPT     the write lands on disk with one byte flipped (a copy
 *                     is written; the checksum and the swap cache keep the
 *                     true data), so the next read of the slot fails with
 *                     -EBADMSG.
 * If no pty can be opened, the two EIO kinds complete a no-op with -EIO.
 */

/*
 * writes/reads count pages (slots) transferred successfully, cache_hits the
 * pages served from the swap cache. write_errors and read_errors count failed
 * operations (-EIO, short); checksum_errors counts reads failed with -EBADMSG.
 */
struct swap_device_stats {
	uint64_t slots, free_slots;
	uint64_t writes, reads, cache_hits;
	uint64_t write_errors, read_errors, checksum_errors;
	uint64_t bytes_written, bytes_read;
};
void swap_device_get_stats(struct swap_device *dev, struct swap_device_stats *s);

/*
 * Checks every allocator invariant above against the slot map (a full walk,
 * for tests). Returns 0, or -1 after printing the first violation to stderr.
 */
int swap_device_check(struct swap_device *dev);

/* ---- Shared with io/swap_io.c only ---- */

/* A swap cache entry, embedded in the swap_io operation that owns data. */
struct swap_cache_entry {
	uint64_t slot;
	const void *data; /* SWAP_PAGE_SIZE bytes, stable until removed */
	struct swap_cache_entry *next;
};

enum swap_stat {
	SWAP_STAT_WRITES,
	SWAP_STAT_READS,
	SWAP_STAT_CACHE_HITS,
	SWAP_STAT_WRITE_ERRORS,
	SWAP_STAT_READ_ERRORS,
	SWAP_STAT_CHECKSUM_ERRORS,
	SWAP_STAT_BYTES_WRITTEN,
	SWAP_STAT_BYTES_READ,
	SWAP_STAT_NR,
};

/* The O_DIRECT file, and the fault-injection descriptors (-1 if none). */
int swap_device_fd(const struct swap_device *dev);
int swap_device_fault_read_fd(const struct swap_device *dev);
int swap_device_fault_write_fd(const struct swap_device *dev);
uint64_t swap_device_size(const struct swap_device *dev);

/* Records the checksum of `page` under `tag` as slot's; checks a page against it. */
void swap_device_set_checksum(struct swap_device *dev, uint64_t slot, const void *page,
			      uint64_t tag);
bool swap_device_checksum_ok(const struct swap_device *dev, uint64_t slot, const void *page,
			     uint64_t tag);

/*
 * Enters e (e->slot, e->data) in the swap cache and marks the slot
 * SWAP_SLOT_HAS_CACHE. Returns 0, -EINVAL if the slot is free or out of
 * range, -EBUSY if a write of it is already in flight.
 */
int swap_cache_add(struct swap_device *dev, struct swap_cache_entry *e);
/* Removes e; the slot is freed if no reference remains. */
void swap_cache_del(struct swap_device *dev, struct swap_cache_entry *e);

static inline void swap_device_count(uint64_t *counters, enum swap_stat stat, uint64_t n)
{
	__atomic_fetch_add(&counters[stat], n, __ATOMIC_RELAXED);
}
/* The SWAP_STAT_NR counters, for swap_device_count(). */
uint64_t *swap_device_counters(struct swap_device *dev);

#endif
