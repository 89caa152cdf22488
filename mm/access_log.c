/*
 * access_log.c - which guest pages the guest used lately (guest_memory.h).
 *
 * A harvest reads the access log since the previous harvest and stamps the
 * pages it shows with the time; KSM (volatility) and reclaim (ageing) read
 * the stamps. Two logs:
 *
 * The accelerator's dirty log (KVM): one call returns and clears a bitmap of
 * the pages written (on kvm_pvm also first reads) since the previous call.
 *
 * The CPU's accessed and dirty bits (the owned page table, TCG): the sEPT is
 * the page table the emulated CPU walks, and it sets an entry's accessed bit
 * on the first use of a translation and the dirty bit on its first write,
 * as hardware does and as Linux's MGLRU reads them in page-table walks. A
 * harvest takes and clears both with a compare-and-swap (the CPU sets them
 * with a plain read-modify-write, which at worst keeps a bit just cleared:
 * the page looks used once more than it was), stamps the accessed pages
 * and reports the dirty ones (their last write stamped apart: KSM's
 * volatility is about writes, and a page the guest only reads, its code,
 * must not look volatile), then asks for a TLB flush, without which the
 * CPU would go on using the cached translations and never set the bits
 * again. Unlike the two logs above it sees reads, and costs the guest no
 * fault at all: only the walks after each flush.
 *
 * mm's write-protect log, for accelerators without one (TCG). The invariant,
 * under guest_memory.lock: every present private page is either
 * write-protected with uffd-wp, or set in wp_written (the guest wrote it
 * since the last harvest) or in wp_unknown (it was mapped writable since
 * then: fault-around, fault-ahead, copy-on-write, swap-in). A guest write to
 * a protected page is a uffd WP fault; the fault thread sets the page in
 * wp_written and un-protects it. So a page written between two harvests
 * costs one userfaultfd round trip, as a KVM dirty-log harvest costs one
 * shadow-page fault.
 *
 * Hot pages. Re-protecting a page the guest writes all the time would cost
 * it a round trip every harvest (KSM harvests every 50 ms: with thousands of
 * hot pages the guest would do little else; measured, a touch pass went
 * from 4 ms to 6-10 s). So a page found written is left writable and
 * reported as written at every harvest, assumed to be, and probed (armed
 * again) later: warm, written once, after WARM_PROBE_MS; hot after
 * HOT_PROBE_MS. A probed page is not reported; written within HOT_PROBE_MS
 * of its probe it becomes hot, else cold (armed, as any page). A page the
 * guest keeps writing, even slowly, costs one fault per HOT_PROBE_MS; a
 * page written once (a fill) is reported for WARM_PROBE_MS; and a hot page
 * that stops being written is reported young for up to HOT_PROBE_MS longer
 * than it is, which only delays a merge or an eviction.
 *
 * A harvest reports (and stamps) the written pages, and of the unknown ones
 * those whose frame now holds memory: a fresh frame is a hole of the pool
 * memfd until something touches it, and the guest's first touch, read or
 * write, allocates it; those get write-protected. An unknown page whose
 * frame is still a hole was not touched: it stays unknown, unprotected
 * (there is nothing to protect yet). This needs that nothing but the guest
 * fills a frame ahead of it, so with this log fault-ahead maps without
 * populating (mm/guest_fault.c), and that writes go through the guest's
 * mapping, which they do. The order of a harvest (read the sets, then
 * protect) attributes a write that lands in between to this harvest, as
 * KVM's get-and-clear does. Shared and zero-run pages are write-protected
 * for copy-on-write anyway and are not part of the log; pinned (boot area)
 * pages are not tracked. The log sees writes and first touches, not later
 * reads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guest_memory_internal.h"

uint32_t mm_clock_ms(void)
{
	static uint64_t start_ms;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	uint64_t ms = (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
	uint64_t zero = 0;
	__atomic_compare_exchange_n(&start_ms, &zero, ms, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
	return (uint32_t)(ms - __atomic_load_n(&start_ms, __ATOMIC_RELAXED)) + 1;
}

int access_log_init(struct guest_memory *mem, char *err, size_t errlen)
{
	if (mem->access_log == GUEST_ACCESS_LOG_NONE)
		return 0;
	if (mem->access_log == GUEST_ACCESS_LOG_DIRTY_LOG && !(mem->ops && mem->ops->dirty_log)) {
		snprintf(err, errlen, "a dirty-log access log needs the VMM's dirty log");
		return -1;
	}
	size_t words = (mem->pages + 63) / 64;
	mem->last_access = calloc(mem->pages, sizeof(uint32_t));
	if (mem->access_log == GUEST_ACCESS_LOG_ACCESSED_BITS)
		mem->last_write = calloc(mem->pages, sizeof(uint32_t));
	mem->latest_dirty = calloc(words, sizeof(uint64_t));
	if (mem->access_log == GUEST_ACCESS_LOG_WRITE_PROTECT) {
		mem->wp_written = calloc(words, sizeof(uint64_t));
		mem->wp_unknown = calloc(words, sizeof(uint64_t));
		mem->wp_writable = calloc(words, sizeof(uint64_t));
		mem->wp_probe = calloc(words, sizeof(uint64_t));
		mem->wp_level = calloc(mem->pages, 1);
	}
	if (!mem->last_access || !mem->latest_dirty ||
	    (mem->access_log == GUEST_ACCESS_LOG_ACCESSED_BITS && !mem->last_write) ||
	    (mem->access_log == GUEST_ACCESS_LOG_WRITE_PROTECT &&
	     (!mem->wp_written || !mem->wp_unknown || !mem->wp_writable || !mem->wp_probe ||
	      !mem->wp_level))) {
		snprintf(err, errlen, "out of memory for access tracking");
		return -1;
	}
	return 0;
}

void access_log_exit(struct guest_memory *mem)
{
	free(mem->last_access);
	free(mem->last_write);
	mem->last_write = NULL;
	free(mem->latest_dirty);
	free(mem->wp_written);
	free(mem->wp_unknown);
	free(mem->wp_writable);
	free(mem->wp_probe);
	free(mem->wp_level);
	mem->last_access = NULL;
	mem->latest_dirty = mem->wp_written = mem->wp_unknown = mem->wp_writable = NULL;
	mem->wp_probe = NULL;
	mem->wp_level = NULL;
}

static void set_bits(uint64_t *bitmap, uint64_t first, uint64_t n)
{
	for (uint64_t g = first; g < first + n; g++)
		bitmap[g / 64] |= 1ull << (g % 64);
}

void access_log_mapped(struct guest_memory *mem, uint64_t gfn, uint64_t n)
{
	if (mem->wp_unknown)
		set_bits(mem->wp_unknown, gfn, n);
}

void access_log_touched(struct guest_memory *mem, uint64_t gfn)
{
	if (mem->wp_written && gfn < mem->pages)
		set_bits(mem->wp_written, gfn, 1);
}

int access_log_write_fault(struct guest_memory *mem, uint64_t gfn)
{
	if (!mem->wp_written)
		return 0;
	sept_entry e = sept_lookup(&mem->sept, gfn);
	if (!sept_is_present(e) || (e & (SEPT_SHARED | SEPT_ZERO)))
		return 0;
	set_bits(mem->wp_written, gfn, 1);
	mem->stats.access_faults++;
	return realiser_write_protect(mem, gfn, 1, 0) == 0;
}

#define HARVEST_CHUNK 256
#define WARM_PROBE_MS ACCESS_LOG_WARM_PROBE_MS
#define HOT_PROBE_MS ACCESS_LOG_HOT_PROBE_MS

enum { LEVEL_COLD, LEVEL_WARM, LEVEL_HOT };

struct wp_harvest {
	struct guest_memory *mem;
	uint64_t *dirty;	       /* what the harvest reports */
	uint32_t now, prev;	       /* this harvest's time, and the previous one's */
	uint64_t gfn[HARVEST_CHUNK];   /* pages to decide, ascending */
	uint64_t frame[HARVEST_CHUNK]; /* their frames */
	unsigned char kind[HARVEST_CHUNK];
	unsigned char backed[HARVEST_CHUNK];
	size_t n;
	uint64_t run_start, run_len; /* pages to protect */
};

/* What a collected page is to this harvest. */
enum { PAGE_UNKNOWN, PAGE_WRITTEN, PAGE_WRITTEN_AFTER_PROBE, PAGE_LEFT_WRITABLE, PAGE_PROBED };

static void set_bit(uint64_t *bitmap, uint64_t gfn)
{
	bitmap[gfn / 64] |= 1ull << (gfn % 64);
}

static void clear_bit(uint64_t *bitmap, uint64_t gfn)
{
	bitmap[gfn / 64] &= ~(1ull << (gfn % 64));
}

/* Arms uffd-wp on the pending run of pages. */
static void protect_flush(struct wp_harvest *h)
{
	if (h->run_len && realiser_write_protect(h->mem, h->run_start, h->run_len, 1) == 0)
		h->mem->stats.access_protected += h->run_len;
	h->run_len = 0;
}

static void protect(struct wp_harvest *h, uint64_t gfn)
{
	if (h->run_len && h->run_start + h->run_len == gfn) {
		h->run_len++;
		return;
	}
	protect_flush(h);
	h->run_start = gfn;
	h->run_len = 1;
}

/* Whether a page left writable is probed at this harvest: once per period,
 * at a moment that depends on the page, so that probes spread out. */
static int probe_due(const struct wp_harvest *h, uint64_t gfn, uint8_t level)
{
	uint32_t period = level == LEVEL_HOT ? HOT_PROBE_MS : WARM_PROBE_MS;
	uint32_t phase = (uint32_t)((gfn * 0x9e3779b97f4a7c15ull) >> 40) % period;
	return (h->now + phase) / period != (h->prev + phase) / period;
}

static void report(struct wp_harvest *h, uint64_t gfn)
{
	__atomic_or_fetch(&h->dirty[gfn / 64], 1ull << (gfn % 64), __ATOMIC_RELAXED);
}

/* Decides the collected pages (see the top of the file). */
static void decide(struct wp_harvest *h)
{
	struct guest_memory *mem = h->mem;
	for (size_t i = 0; i < h->n;) {
		size_t len = 1;
		while (i + len < h->n && h->frame[i + len] == h->frame[i] + len)
			len++;
		frame_pool_backed(mem->pool, h->frame[i], len, &h->backed[i]);
		i += len;
	}
	for (size_t i = 0; i < h->n; i++) {
		uint64_t gfn = h->gfn[i];
		uint8_t *level = &mem->wp_level[gfn];
		switch (h->kind[i]) {
		case PAGE_UNKNOWN:
			if (!h->backed[i]) {
				set_bit(mem->wp_unknown, gfn); /* untouched: still a hole */
				continue;
			}
			*level = LEVEL_COLD;
			report(h, gfn);
			protect(h, gfn);
			continue;
		case PAGE_PROBED: /* armed, not written since */
			if (h->now - mem->last_access[gfn] < HOT_PROBE_MS)
				set_bit(mem->wp_probe, gfn); /* still watching */
			else
				*level = LEVEL_COLD;
			continue;
		case PAGE_WRITTEN: /* a fault since the last harvest */
		case PAGE_WRITTEN_AFTER_PROBE:
			*level = h->kind[i] == PAGE_WRITTEN ? LEVEL_WARM : LEVEL_HOT;
			set_bit(mem->wp_writable, gfn);
			report(h, gfn);
			continue;
		case PAGE_LEFT_WRITABLE: /* assumed written */
			report(h, gfn);
			if (probe_due(h, gfn, *level)) {
				clear_bit(mem->wp_writable, gfn);
				set_bit(mem->wp_probe, gfn);
				protect(h, gfn);
			}
			continue;
		}
	}
	protect_flush(h);
	h->n = 0;
}

/* The write-protect log's half of a harvest (mem->lock taken here): fills
 * `dirty` and arms the pages to watch (see the top of the file). */
static void harvest_write_protect(struct guest_memory *mem, uint64_t *dirty, uint32_t now)
{
	size_t words = (mem->pages + 63) / 64;
	struct wp_harvest *h = calloc(1, sizeof(*h));
	if (h) {
		h->mem = mem;
		h->dirty = dirty;
		h->now = now;
		h->prev = mem->last_harvest_ms;
	}
	pthread_mutex_lock(&mem->lock);
	for (size_t w = 0; w < words; w++) {
		uint64_t written = mem->wp_written[w], writable = mem->wp_writable[w];
		uint64_t probe = mem->wp_probe[w], unknown = mem->wp_unknown[w];
		uint64_t all = written | writable | probe | unknown;
		__atomic_store_n(&dirty[w], 0, __ATOMIC_RELAXED);
		if (!h) { /* no memory to decide with: report all, protect nothing */
			__atomic_store_n(&dirty[w], all, __ATOMIC_RELAXED);
			continue;
		}
		mem->wp_written[w] = mem->wp_unknown[w] = mem->wp_probe[w] = 0;
		for (uint64_t bits = all; bits; bits &= bits - 1) {
			unsigned b = (unsigned)__builtin_ctzll(bits);
			uint64_t gfn = w * 64 + b, bit = 1ull << b;
			sept_entry e = sept_lookup(&mem->sept, gfn);
			if (gfn >= mem->pages || !sept_is_present(e) ||
			    (e & (SEPT_SHARED | SEPT_ZERO | SEPT_PINNED))) {
				mem->wp_writable[w] &= ~bit; /* gone: evicted, merged */
				continue;
			}
			h->gfn[h->n] = gfn;
			h->frame[h->n] = sept_frame(e);
			h->kind[h->n] = (written & bit) ? ((probe & bit) ? PAGE_WRITTEN_AFTER_PROBE
									 : PAGE_WRITTEN)
					: (writable & bit) ? PAGE_LEFT_WRITABLE
					: (probe & bit)	   ? PAGE_PROBED
							   : PAGE_UNKNOWN;
			if (++h->n == HARVEST_CHUNK)
				decide(h);
		}
	}
	if (h && h->n)
		decide(h);
	pthread_mutex_unlock(&mem->lock);
	free(h);
}

struct ad_harvest {
	struct guest_memory *mem;
	uint64_t *dirty;
	uint32_t now;
};

static int harvest_entry(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct ad_harvest *h = ctx;
	sept_entry e = __atomic_load_n(entry, __ATOMIC_RELAXED);
	if (!sept_is_present(e) || (e & SEPT_PINNED) || !(e & (SEPT_ACCESSED | SEPT_DIRTY)))
		return 0;
	while (!__atomic_compare_exchange_n(entry, &e, e & ~(SEPT_ACCESSED | SEPT_DIRTY), 0,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	if (e & SEPT_DIRTY) {
		__atomic_or_fetch(&h->dirty[gfn / 64], 1ull << (gfn % 64), __ATOMIC_RELAXED);
		__atomic_store_n(&h->mem->last_write[gfn], h->now, __ATOMIC_RELAXED);
	}
	if (e & (SEPT_ACCESSED | SEPT_DIRTY))
		__atomic_store_n(&h->mem->last_access[gfn], h->now, __ATOMIC_RELAXED);
	return 0;
}

/* The accessed-bits log's harvest (see the top of the file). */
static void harvest_accessed_bits(struct guest_memory *mem, uint64_t *dirty, uint32_t now)
{
	size_t words = (mem->pages + 63) / 64;
	for (size_t w = 0; w < words; w++)
		__atomic_store_n(&dirty[w], 0, __ATOMIC_RELAXED);
	struct ad_harvest h = {mem, dirty, now};
	pthread_mutex_lock(&mem->lock);
	sept_walk(&mem->sept, 0, mem->pages, harvest_entry, &h);
	realiser_flush(mem);
	pthread_mutex_unlock(&mem->lock);
}

int guest_memory_tracks_access(const struct guest_memory *mem)
{
	return mem->last_access != NULL;
}

enum guest_access_log guest_memory_access_log(const struct guest_memory *mem)
{
	return mem->access_log;
}

/* Stamps the pages a write-only log reported (in latest_dirty) with `now`. */
static void stamp_reported(struct guest_memory *mem, uint32_t now)
{
	size_t words = (mem->pages + 63) / 64;
	for (size_t w = 0; w < words; w++)
		for (uint64_t bits = mem->latest_dirty[w]; bits; bits &= bits - 1) {
			uint64_t gfn = w * 64 + (uint64_t)__builtin_ctzll(bits);
			if (gfn < mem->pages)
				__atomic_store_n(&mem->last_access[gfn], now, __ATOMIC_RELAXED);
		}
}

int guest_memory_harvest(struct guest_memory *mem, uint32_t min_interval_ms)
{
	if (!mem->last_access)
		return 0;
	pthread_mutex_lock(&mem->harvest_lock);
	uint32_t now = mm_clock_ms();
	int harvested = 0;
	if (mem->last_harvest_ms == 0 || now - mem->last_harvest_ms >= min_interval_ms) {
		if (mem->access_log == GUEST_ACCESS_LOG_ACCESSED_BITS) {
			/* stamps as it goes, reads and writes apart */
			harvest_accessed_bits(mem, mem->latest_dirty, now);
		} else {
			if (mem->access_log == GUEST_ACCESS_LOG_WRITE_PROTECT)
				harvest_write_protect(mem, mem->latest_dirty, now);
			else if (mem->ops->dirty_log(mem->ops_ctx, mem->latest_dirty) != 0)
				memset(mem->latest_dirty, 0xff, (mem->pages + 63) / 64 * 8);
			stamp_reported(mem, now);
		}
		mem->last_harvest_ms = now;
		harvested = 1;
	}
	pthread_mutex_unlock(&mem->harvest_lock);
	return harvested;
}

uint32_t guest_memory_last_write(const struct guest_memory *mem, uint64_t gfn)
{
	if (!mem->last_write)
		return guest_memory_last_access(mem, gfn); /* the other logs see writes */
	return gfn < mem->pages ? __atomic_load_n(&mem->last_write[gfn], __ATOMIC_RELAXED) : 0;
}

uint32_t guest_memory_last_access(const struct guest_memory *mem, uint64_t gfn)
{
	return mem->last_access && gfn < mem->pages
		       ? __atomic_load_n(&mem->last_access[gfn], __ATOMIC_RELAXED)
		       : 0;
}

int guest_memory_recently_dirty(const struct guest_memory *mem, uint64_t gfn)
{
	return mem->latest_dirty && gfn < mem->pages &&
	       ((__atomic_load_n(&mem->latest_dirty[gfn / 64], __ATOMIC_RELAXED) >> (gfn % 64)) &
		1);
}
