/*
 * owned_realiser.c - the owned-page-table realiser (mm/realiser.h), for an
 * emulated CPU (TCG).
 *
 * The sEPT's tables are frames of the pool, addressed by their offset in it
 * (frame * 4096). The accelerator maps the whole pool once at emulator-
 * physical 0 and loads CR3 with the sEPT root, so the emulated MMU walks the
 * sEPT itself: a guest-physical address is the CPU's linear address, an
 * sEPT entry its PTE. What the CPU sees of a page, by its entry:
 *
 *   untouched, swapped   not present: a #PF, served on the vCPU's thread by
 *                        guest_memory_cpu_fault (first touch, swap-in)
 *   private              present, writable: the frame itself
 *   shared, zero run     present, read-only: a store is a #PF, served as a
 *                        copy-on-write
 *   outside RAM, page 0  never present: the #PF is the guest's own
 *
 * and the user bit of each entry says whether CPL 3 may use it (the boot
 * area is CPL 0 only; guest_pte() sets it from the VM's CPU ranges). So
 * map() writes nothing: the caller's sEPT update is the mapping.
 *
 * TLB. The emulated CPU caches translations (host addresses, with the
 * access they allowed) and, per virtual address, the code translated from
 * them, until CR3 is written. Making a not-present entry present needs no
 * flush: nothing not present is ever cached. Taking a translation away or
 * pointing it at another frame does: unmap (eviction), write protection,
 * and map with REALISE_REPLACES (a merge; a copy-on-write, whose page may
 * hold code translated from the old frame). The realiser then asks the VMM
 * to flush (guest_memory_ops.tlb_flush) and the accelerator rewrites CR3
 * before the guest runs another instruction. The safety rule makes that in
 * time: these changes are made while the VM is paused or on its vCPU's own
 * thread, never under a running guest.
 *
 * The CPU sets the accessed and dirty bits of the entries it uses; the
 * access log reads and clears them (access_log.c, ACCESSED_BITS). Its
 * read-modify-write of an entry is not atomic against mm's stores, which is
 * why every other change to a present entry happens with the CPU stopped.
 */
#include <errno.h>
#include <stdio.h>

#include "guest_memory_internal.h"

static void *table_alloc(void *ctx, uint64_t *addr)
{
	struct frame_pool *pool = ctx;
	int64_t frame = frame_pool_alloc(pool, 0);
	if (frame < 0)
		return NULL;
	*addr = (uint64_t)frame * FRAME_SIZE;
	return frame_pool_address(pool, (uint64_t)frame);
}

static void table_free(void *ctx, void *table, uint64_t addr)
{
	(void)table;
	frame_pool_free(ctx, addr / FRAME_SIZE, 1);
}

static void owned_realiser_table_source(struct guest_memory *mem, struct sept_table_source *source)
{
	*source = (struct sept_table_source){
		.alloc = table_alloc,
		.free = table_free,
		.ctx = mem->pool,
		.base = (uintptr_t)mem->pool->base,
	};
}

static void request_flush(struct guest_memory *mem)
{
	mem->stats.tlb_flushes++;
	if (mem->ops && mem->ops->tlb_flush)
		mem->ops->tlb_flush(mem->ops_ctx);
}

/* No host range, no uffd: the accelerator takes the pool and the root. */
static int owned_realiser_init(struct guest_memory *mem, char *err, size_t errlen)
{
	(void)mem, (void)err, (void)errlen;
	return 0;
}

static void owned_realiser_exit(struct guest_memory *mem)
{
	(void)mem;
}

static int owned_realiser_map(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t n,
			      unsigned flags)
{
	(void)gfn, (void)frame, (void)n;
	if (flags & (REALISE_REPLACES | REALISE_WRITE_PROTECT))
		request_flush(mem);
	return 0;
}

static int owned_realiser_unmap(struct guest_memory *mem, uint64_t gfn, uint64_t n)
{
	(void)gfn, (void)n;
	request_flush(mem);
	return 0;
}

/* Arming takes the write permission away: the caller's entry says so
 * (guest_memory_share makes it read-only); disarming gives it back. */
static int owned_realiser_write_protect(struct guest_memory *mem, uint64_t gfn, uint64_t n, int on)
{
	(void)gfn, (void)n;
	if (on)
		request_flush(mem);
	return 0;
}

/* Faults are served on the vCPU's own thread: nobody waits to be woken. */
static void owned_realiser_wake(struct guest_memory *mem, uint64_t gfn, uint64_t n)
{
	(void)mem, (void)gfn, (void)n;
}

/* A failed VM's CPU faults end its run (guest_memory_cpu_fault); its frames
 * stay its own until the VM is destroyed, so nothing else is exposed. */
static void owned_realiser_abandon(struct guest_memory *mem)
{
	(void)mem;
}

const struct realiser_ops owned_realiser_ops = {
	.name = "owned",
	.init = owned_realiser_init,
	.exit = owned_realiser_exit,
	.table_source = owned_realiser_table_source,
	.map = owned_realiser_map,
	.unmap = owned_realiser_unmap,
	.write_protect = owned_realiser_write_protect,
	.wake = owned_realiser_wake,
	.flush = request_flush,
	.abandon = owned_realiser_abandon,
};

const char *guest_realiser_name(enum guest_realiser realiser)
{
	return realiser == GUEST_REALISER_OWNED ? owned_realiser_ops.name : host_realiser_ops.name;
}
