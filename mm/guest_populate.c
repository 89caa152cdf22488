/*
 * guest_populate.c - giving untouched guest pages their frames, the
 * address-space layer's populate: an aligned block of contiguous frames
 * (fault-around) filled from the memory image where there is one, recorded
 * in the sEPT, then realised. Never more than the block the caller asks for,
 * never a page that has an entry (a guard, a swap entry), so speculation is
 * the caller's decision.
 */
#include <errno.h>

#include "guest_memory_internal.h"

static int range_untouched(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
{
	for (uint64_t i = 0; i < npages; i++)
		if (sept_lookup(&mem->sept, gfn + i))
			return 0;
	return 1;
}

/* Allocates and maps frames for the untouched page `gfn` and, with
 * fault-around, its untouched aligned neighbourhood of block_pages. With
 * `prefault` the host pages are populated now (by this thread) rather than
 * on the guest's first touch. The sEPT entries are made first (they may
 * need memory), the mapping last, so that a failure at either step is
 * undone whole: nothing mapped, nothing recorded, the frames back in the
 * pool (or, if they could not be unmapped, never reused). Returns the
 * number of pages mapped, 0 if the pool is exhausted, or -errno. mem->lock
 * held. */
int64_t guest_populate(struct guest_memory *mem, uint64_t gfn, unsigned block_pages, int prefault)
{
	unsigned order = (unsigned)__builtin_ctz(block_pages);
	for (int o = (int)order; o >= 0; o--) {
		uint64_t npages = 1ull << o;
		uint64_t base = gfn & ~(npages - 1);
		if (base + npages > mem->pages || !range_untouched(mem, base, npages))
			continue;
		int64_t frame = frame_pool_alloc(mem->pool, (unsigned)o);
		if (frame < 0)
			continue;
		int error = memory_image_fill(mem, base, (uint64_t)frame, npages);
		uint64_t flags = SEPT_WRITABLE | (npages == HUGE_PAGES ? SEPT_HUGE : 0);
		uint64_t set = 0;
		for (; !error && set < npages; set++) {
			uint64_t page_flags =
				flags | (base + set < mem->pinned_pages ? SEPT_PINNED : 0);
			if (sept_set(&mem->sept, base + set,
				     guest_pte(mem, base + set, (uint64_t)frame + set, page_flags)))
				error = -ENOMEM;
		}
		if (!error)
			error = realiser_map(mem, base, (uint64_t)frame, npages,
					     prefault ? REALISE_POPULATE : 0);
		if (error) {
			for (uint64_t i = 0; i < set; i++)
				sept_clear(&mem->sept, base + i);
			guest_free_unmapped(mem, (uint64_t)frame, npages, error);
			return error;
		}
		for (uint64_t i = 0; i < npages; i++) {
			struct frame *f = frame_pool_frame(mem->pool, (uint64_t)frame + i);
			if (base + i < mem->pinned_pages) {
				frame_set_flag(f, FRAME_FLAG_PINNED);
				mem->stats.pinned_pages++;
			}
			frame_set_private(f, (uint16_t)mem->id, base + i);
		}
		return (int64_t)npages;
	}
	return 0;
}
