/*
 * guest_memory_internal.h - what the files of mm/ that realise guest memory
 * share: the guest_memory structure and the helpers that place frames in a
 * VM's host range. Not for use outside mm/.
 *
 * The address-space layer (one VM's guest-physical space):
 *   guest_memory.c   entries, failing the VM, pausing it, statistics
 *   guest_populate.c giving untouched pages frames (fault-around blocks)
 *   guest_share.c    merging pages into shared frames (KSM), and back
 *   access_log.c     the access log: harvests, ages, mm's write-protect log
 *   host_realiser.c  the host-mapping realiser (mmap + uffd, mm/realiser.h)
 *   owned_realiser.c the owned-page-table realiser (the sEPT is the CPU's)
 *   memory_image.c   restoring guest RAM from a memory image
 * The policy layer, above it:
 *   guest_life.c     creation and tear-down of a VM's memory
 *   guest_fault.c    faults (uffd, CPU, the VMM's accesses), fault-ahead
 *   guest_swap.c     eviction to swap and swap-in
 *   reclaim*.c, oom.c, swap_slots.c, fault_thread.c (reclaim_internal.h)
 * Dependencies point down only; tests/test_layers.c checks it.
 */
#ifndef MM_GUEST_MEMORY_INTERNAL_H
#define MM_GUEST_MEMORY_INTERNAL_H

#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "frame_pool.h"
#include "guest_memory.h"
#include "guest_registry.h"
#include "memcg.h"
#include "realiser.h"
#include "reclaim.h"
#include "sept.h"

#define TWO_MIB (2ull << 20)
#define HUGE_PAGES 512u
/* Placeholders (untouched or evicted pages) catch every access; frame
 * mappings only need writes to write-protected pages. */
#define UFFD_PLACEHOLDER_MODES (UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP)
#define UFFD_NEEDED_FEATURES                                            \
	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM | \
	 UFFD_FEATURE_PAGEFAULT_FLAG_WP)

struct guest_memory {
	enum guest_memory_backing backing;
	uint64_t bytes;
	uint64_t pages;
	uint8_t *host_base;
	size_t reserved_bytes; /* of the host mapping, including alignment */
	uint8_t *reserved_base;

	/* pool backing */
	struct frame_pool *pool;
	struct guest_registry *registry;
	struct fault_thread *faults;
	int id;
	int uffd;
	unsigned fault_around_pages;
	unsigned fault_ahead_max_pages; /* 0 = no fault-ahead */
	uint64_t pinned_pages;
	const struct realiser_ops *realiser;
	enum guest_realiser realiser_kind;
	struct guest_cpu_range cpu_ranges[GUEST_CPU_RANGES];
	const struct guest_memory_ops *ops;
	void *ops_ctx;

	/* access tracking (access_log.c) */
	enum guest_access_log access_log;
	pthread_mutex_t harvest_lock;
	uint32_t *last_access;	/* per page: when a harvest last showed it */
	uint32_t *last_write;	/* ACCESSED_BITS only: when one last showed it dirty */
	uint64_t *latest_dirty; /* the latest harvest's bitmap */
	uint32_t last_harvest_ms;
	/* GUEST_ACCESS_LOG_WRITE_PROTECT, under lock: pages written since
	 * the last harvest, and pages mapped writable since then. */
	uint64_t *wp_written, *wp_unknown;
	uint64_t *wp_writable; /* left writable: assumed written (warm, hot) */
	uint64_t *wp_probe;    /* protected again to see if still written */
	uint8_t *wp_level;     /* per page: cold, warm or hot */

	pthread_mutex_t lock; /* sEPT, host mappings, counters below */
	struct sept sept;
	bool failed;
	int fault_slot; /* in the fault thread, or -1 */
	/* Policy state, each policy's own (defined in its file): */
	struct guest_fault_state *fault_state; /* guest_fault.c */
	struct guest_swap_state *swap_state;   /* guest_swap.c */
	struct guest_memory_stats stats;
	uint64_t ksm_pages;	 /* pages mapping a shared frame */
	struct reclaim *reclaim; /* NULL: no reclaim */
	struct memcg *memcg;	 /* the VM's own cgroup (memcg.h): its limits, events */
	int oom_score_adj;
	uint64_t zero_pages; /* pages mapping the zero run */
	int image_fd;	     /* the memory image, or -1 */
	uint64_t image_bytes;
};

/* --- access_log.c --- */
int access_log_init(struct guest_memory *mem, char *err, size_t errlen);
void access_log_exit(struct guest_memory *mem);
/* Private pages [gfn, gfn + n) were just mapped writable (mem->lock held). */
void access_log_mapped(struct guest_memory *mem, uint64_t gfn, uint64_t n);
/* The guest touched page gfn (a fault; mem->lock held). */
void access_log_touched(struct guest_memory *mem, uint64_t gfn);
/* A write fault on a private page the write-protect log armed: records it
 * and un-protects the page without waking the vCPU. Returns 1 if it was
 * one, 0 if not (mem->lock held). */
int access_log_write_fault(struct guest_memory *mem, uint64_t gfn);

/* --- memory_image.c --- */
int memory_image_open(struct guest_memory *mem, const char *path, char *err, size_t errlen);
void memory_image_close(struct guest_memory *mem);
/* Copies the image's bytes for [gfn, gfn + npages) into the (unmapped)
 * frames from `frame`; zero pages stay holes. Returns 0 or -errno (reported
 * as fatal). mem->lock held. */
int memory_image_fill(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t npages);
/* An untouched page's bytes, without allocating anything. */
int memory_image_read(struct guest_memory *mem, uint64_t gpa, void *buf, size_t len);
/* Anonymous backing: reads the whole image into guest RAM. */
int memory_image_load_all(struct guest_memory *mem, char *err, size_t errlen);

/* --- the realiser (mm/realiser.h), mem->lock held --- */
static inline int realiser_map(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t n,
			       unsigned flags)
{
	return mem->realiser->map(mem, gfn, frame, n, flags);
}
static inline int realiser_unmap(struct guest_memory *mem, uint64_t gfn, uint64_t n)
{
	return mem->realiser->unmap(mem, gfn, n);
}
static inline int realiser_write_protect(struct guest_memory *mem, uint64_t gfn, uint64_t n, int on)
{
	return mem->realiser->write_protect(mem, gfn, n, on);
}
static inline void realiser_wake(struct guest_memory *mem, uint64_t gfn, uint64_t n)
{
	mem->realiser->wake(mem, gfn, n);
}
static inline void realiser_flush(struct guest_memory *mem)
{
	mem->realiser->flush(mem);
}
/* Gives frames whose realiser_map() failed with `error` back to the pool,
 * unless the error says they may still be mapped (then they are lost,
 * counted in frame_pool.frames_lost). */
void guest_free_unmapped(struct guest_memory *mem, uint64_t frame, uint64_t n, int error);
/* The entry of a present page: frame and flags, plus the user bit where
 * CPL 3 may use the page (cpu_ranges). */
sept_entry guest_pte(const struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t flags);
enum guest_cpu_access guest_cpu_access(const struct guest_memory *mem, uint64_t gfn);

/* --- guest_fault.c, guest_swap.c: their per-VM state (guest_life.c
 * makes and frees it) --- */
struct guest_fault_state *guest_fault_state_create(void);
struct guest_swap_state *guest_swap_state_create(void);

/* --- guest_swap.c --- */
/* Fault on a swap entry: bring the page (and readahead) back. Returns 0,
 * -ENOMEM when no frame could be had, or another -errno (the VM is ended). */
int guest_swap_in(struct guest_memory *mem, uint64_t gfn, sept_entry e);
/* Frees a swap entry's slot (the page is going away). */
void guest_swap_release(struct guest_memory *mem, sept_entry e);
/* The lowest cgroup on the VM's path whose memory.max `more` more frames
 * would exceed (memcg_over_max()), or NULL. */
struct memcg *guest_over_max(struct guest_memory *mem, uint64_t more);
/* Charges n pages ahead, for frames about to be mapped, if no cgroup on the
 * VM's path goes above memory.max: NULL, or the lowest cgroup that refused.
 * The sEPT's new present pages use the charge up (sept.h `precharged`);
 * guest_charge_settle() gives back what was not used. mem->lock held from
 * the charge to the settle. */
struct memcg *guest_charge(struct guest_memory *mem, uint64_t n);
void guest_charge_settle(struct guest_memory *mem);

struct reclaim *guest_memory_reclaim(struct guest_memory *mem);
/* Walks the sEPT under the VM's lock. */
void guest_memory_walk_sept(struct guest_memory *mem, sept_walk_fn fn, void *ctx);

/* --- guest_memory.c: failing a VM, the one way: the VMM's fatal callback
 * gets the first message; the VM's faults then end its run --- */
void guest_memory_fail(struct guest_memory *mem, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A realiser_map() failure: fails the VM (out of host mappings, or the
 * error) and returns -ECANCELED, which callers tell apart from -ENOMEM (no
 * frame: reclaim may help). */
int guest_memory_fail_map(struct guest_memory *mem, int error);
bool guest_memory_dead(struct guest_memory *mem);
static inline bool guest_is_pool(const struct guest_memory *mem)
{
	return mem->backing == GUEST_MEMORY_POOL;
}
static inline int guest_in_range(const struct guest_memory *mem, uint64_t gpa, size_t len)
{
	return gpa <= mem->bytes && len <= mem->bytes - gpa;
}

/* --- guest_populate.c --- */
/* Allocates and maps frames for the untouched page `gfn` and, with
 * fault-around, its untouched aligned neighbourhood of block_pages; with
 * `prefault` the host pages are populated now. Returns the pages mapped, 0
 * if the pool has no such block (or the sEPT no memory for a table), or
 * -errno (mapping failed; nothing recorded). mem->lock held. */
int64_t guest_populate(struct guest_memory *mem, uint64_t gfn, unsigned block_pages, int prefault);

/* --- guest_share.c --- */
/* A write to a shared or zero-run page: a private copy. 0, -ENOMEM (no
 * frame), or -ECANCELED (mapping failed, the VM failed). mem->lock held. */
int guest_copy_on_write(struct guest_memory *mem, uint64_t gfn, sept_entry e);
/* Drops (mem, gfn) from a shared frame's mappers. */
void guest_release_shared(struct guest_memory *mem, uint64_t gfn, sept_entry e);

#endif
