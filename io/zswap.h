/*
 * zswap.h - a compressed in-memory cache of swapped-out pages in front of the
 * swap file (after Linux's mm/zswap.c), compressing with LZ4.
 *
 * A page being swapped out to slot s is first offered to zswap: it is
 * compressed (LZ4_compress_default) into at most ZSWAP_MAX_COMPRESSED bytes
 * (3/4 of a page); a page that does not fit is rejected ("poor
 * compression"), and the caller writes it to the swap file. A page that fits
 * is stored in a malloc'd entry keyed by s, with the XXH3-64 of its
 * uncompressed 4 KiB seeded with the page's owner tag (as the swap file's
 * checksums, io/swap_device.h). A swap-in of s loads from zswap first:
 * the entry is decompressed and checked against that checksum (a mismatch,
 * or data that does not decompress to exactly one page, is -EBADMSG, never
 * returned to the caller). Entries stay until the slot is freed (the swap
 * device's on-free hook calls zswap_invalidate) or stored again.
 *
 * The pool has a byte limit, max_bytes, on the sum of the entries' sizes
 * (header + compressed bytes: what the entries occupy, short of malloc's own
 * overhead). A store that would exceed it fails ("pool limit hit"); Linux
 * would then write back its oldest entries, here the caller writes the page
 * to the file instead.
 *
 * Invariants (under lock):
 *  - At most one entry per slot. Storing to a slot that has an entry removes
 *    the old entry first, also when the new store fails: a stale copy of a
 *    slot's old contents must never be loaded.
 *  - stored_pages and pool_bytes are the count and the summed sizes of the
 *    entries in the table; pool_bytes <= max_bytes.
 *
 * The entries live in a chained hash table, doubled when it holds more
 * entries than buckets. One mutex protects everything; compression runs
 * outside it, decompression under it (so an entry cannot be freed while it is
 * read).
 */
#ifndef IO_ZSWAP_H
#define IO_ZSWAP_H

#include <stdint.h>

#define ZSWAP_PAGE_SIZE 4096
#define ZSWAP_MAX_COMPRESSED (ZSWAP_PAGE_SIZE * 3 / 4) /* accept at most 3 KiB */

struct zswap;

/* Returns 0, or -ENOMEM. max_bytes may be 0 (every store then fails). */
int zswap_create(struct zswap **out, uint64_t max_bytes);
void zswap_destroy(struct zswap *z);

/*
 * Stores the page of owner `tag` (io/swap_device.h: whose page it is) for
 * slot. Returns 0 if stored, -1 if rejected (poor compression or pool full).
 */
int zswap_store(struct zswap *z, uint64_t slot, const void *page, uint64_t tag);
/*
 * Returns 0 with the page in `page` (the entry stays until invalidated), -1
 * if the slot has no entry, -EBADMSG if the entry is corrupt or holds a page
 * of another owner than `tag` (page is then zeroed).
 */
int zswap_load(struct zswap *z, uint64_t slot, void *page, uint64_t tag);
/* The slot was freed: drops its entry, if any. */
void zswap_invalidate(struct zswap *z, uint64_t slot);

/*
 * stores: pages stored; rejects: stores refused, split into
 * reject_compress_poor and pool_limit_hit as in Linux's debugfs; loads: pages
 * loaded; load_errors: loads that returned -EBADMSG.
 */
struct zswap_stats {
	uint64_t stored_pages, pool_bytes, max_bytes;
	uint64_t stores, rejects, loads;
	uint64_t reject_compress_poor, pool_limit_hit, load_errors;
};
void zswap_get_stats(struct zswap *z, struct zswap_stats *s);

/*
 * Test hook: flips the last byte of the slot's compressed data. LZ4 always
 * ends a block with literals, so this changes the decompressed page and the
 * next load must fail with -EBADMSG. Returns 0, or -1 if the slot has no
 * entry.
 */
int zswap_test_corrupt(struct zswap *z, uint64_t slot);

#endif
