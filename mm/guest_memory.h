/*
 * guest_memory.h - one VM's guest physical memory, as the VMM owns it.
 *
 * A VM sees RAM at guest physical 0..bytes. The host realises it as one
 * contiguous host virtual range (`host_base`) that KVM uses as the VM's memory
 * slot. Two backings:
 *
 *   GUEST_MEMORY_ANON  plain anonymous memory: the kernel picks the pages.
 *                      The baseline the frame pool is measured against.
 *   GUEST_MEMORY_POOL  every guest page lives in a frame of the frame pool
 *                      (mm/frame_pool.h), placed by the VMM and recorded in
 *                      the VM's software EPT (mm/sept.h), the authority.
 *
 * How the vCPU sees the sEPT is the realiser's business (mm/realiser.h):
 * with host mappings (KVM; TCG with --tcg-mmu host), as below; with the
 * owned page table (TCG), the sEPT is the emulated CPU's page table, CPU
 * faults are served on the vCPU thread (guest_memory_cpu_fault) and none of
 * the host-range machinery below exists (no host range, no uffd, no
 * fault-ahead, no abandoning; pausing and the safety rule hold as written).
 *
 * Pool backing with host mappings: each guest page, by its sEPT state:
 *   never touched       part of an anonymous placeholder mapping registered
 *                       with this VM's userfaultfd (MISSING|WP): the first
 *                       touch blocks the vCPU and reaches the fault thread;
 *   private, present    MAP_SHARED mapping of its pool frame, registered
 *                       WP only, writable. (DESIGN.md says MISSING|WP; a
 *                       MISSING fault could only come from a frame that is
 *                       still a hole, and letting the guest's own page fault
 *                       fill that hole at the frame's offset keeps zeroing
 *                       off the fault thread: first touch costs what it
 *                       costs on anonymous memory.)
 *   shared (KSM)        mapping of the shared frame, write-protected with
 *                       UFFDIO_WRITEPROTECT: a write faults to the VMM, which
 *                       copies the page into a new frame (copy-on-write).
 * Mapping neighbouring guest pages to neighbouring frames merges their host
 * mappings into one VMA, so the VMA count stays low.
 *
 * First touch (fault-around): the fault thread allocates an aligned block of
 * fault_around_pages contiguous frames (a power of two, 1..512; 512 = a 2 MiB
 * block, marked SEPT_HUGE) around the faulting page, if that whole block is
 * untouched, and maps it with one mmap(MAP_FIXED|MAP_POPULATE). If the block
 * is partly touched or the pool has no such block, smaller aligned blocks
 * down to the single page are tried. Untouched guest memory costs no frame.
 *
 * The safety rule (../shared/DESIGN.md): a guest page's host mapping is only
 * replaced while no vCPU of the VM can touch it: in the fault thread while the
 * faulting vCPU is blocked on that very page (one vCPU per VM, so it is
 * blocked on nothing else either), before the VM starts, or with it paused.
 *
 * Fault-ahead: when a VM's first touches are sequential (each fault lands on
 * the block right after the previous one), the fault thread, after waking
 * the vCPU, maps and populates the next window of untouched pages in
 * fault-around blocks, so the guest runs into memory that is already there
 * instead of waiting for a uffd round trip per block (about 50-100 us here,
 * more than the guest needs to touch 16 pages). The window doubles from one
 * block up to fault_ahead_pages on every sequential hit and resets on any
 * other first touch, as Linux readahead does; nothing is speculated while
 * the pool is below its high watermark.
 *
 * This is the one remap done while the vCPU may run, an argued exception to
 * the safety rule: it only replaces the placeholder of a page that was never
 * touched. A guest access racing with it either finds the placeholder, which
 * is registered MISSING, so the access blocks in the uffd and is served as a
 * spurious fault once the frame is in place, or finds the frame mapping. The
 * page is never PROT_NONE, read-only or unregistered anonymous memory, the
 * states the rule exists to avoid. If the mapping cannot be finished once the
 * frames are in place (the uffd refuses to register it), the guest may have
 * written them already: putting the placeholder back would lose that, so the
 * VM is failed first, and ends as an error rather than on what it read.
 *
 * Memory image: with image_path, guest RAM starts as that file's bytes,
 * restored lazily on first touch (mm/memory_image.c).
 *
 * Out of memory: if not even one frame can be allocated, the VM's `fatal`
 * callback is called with "out of memory (pool exhausted)" and the VMM stops
 * that VM. Other VMs are not affected.
 *
 * A VM that failed (out of memory, an OOM kill, an I/O error) is abandoned:
 * on its next fault its whole host range is replaced by plain anonymous
 * memory, not registered with the uffd, and its vCPU is woken. A vCPU that
 * a kick cannot get out of a fault (TCG) can then reach the end of its
 * instruction and stop; whatever it touches meanwhile is throwaway memory,
 * never a pool frame, so no other VM can be affected.
 *
 * Waking a vCPU blocked on a fault goes through the VMM's `may_wake` gate:
 * during a pause of the VM the wake is deferred and the VMM calls
 * guest_memory_wake() when the pause ends (vmm/vcpu.h derives why). The
 * invariant that makes guest_memory_fault_pending() mean "the vCPU is
 * blocked": only the VM's vCPU thread ever touches its host range; the VMM's
 * own accesses go through the pool mapping.
 *
 * Set-up code (loader, boot area) writes through guest_memory_write() and
 * guest_memory_zero(); device emulation reads guest buffers with
 * guest_memory_read(). With the pool they go through the sEPT and the pool
 * mapping, so the VMM's own accesses never fault. Pages below pinned_bytes
 * (the boot area) are marked SEPT_PINNED: never merged or evicted.
 *
 * Access logs. KSM and reclaim need to know which pages the guest used
 * lately. GUEST_ACCESS_LOG_DIRTY_LOG takes the accelerator's dirty log (KVM:
 * writes, and on kvm_pvm a page's first read too). GUEST_ACCESS_LOG_WRITE_
 * PROTECT is mm's own, for accelerators without one (TCG): each harvest
 * write-protects (uffd-wp) the private pages written or newly mapped since
 * the previous one, and a write to such a page is a WP fault that the fault
 * thread records and un-protects, as KVM's dirty logging does with the
 * hardware page tables. It sees writes and first touches, not later reads.
 * A page found written stays writable and reported for a while before it
 * is armed again (warm: ACCESS_LOG_WARM_PROBE_MS; written again after that,
 * hot: ACCESS_LOG_HOT_PROBE_MS), so a page the guest keeps writing costs
 * one fault per probe rather than one per harvest (mm/access_log.c).
 *
 * Lock order: fault thread lock -> registry (guest_registry.lock) ->
 * pause -> guest_memory.lock -> frame_pool.shared_lock -> buddy locks; the
 * whole table is mm/lock_order.h.
 */
#ifndef MM_GUEST_MEMORY_H
#define MM_GUEST_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "realiser.h"
#include "reclaim.h"

struct frame_pool;
struct fault_thread;
struct guest_registry;
struct reclaim;
struct uffd_msg;

enum guest_memory_backing {
	GUEST_MEMORY_ANON = 0,
	GUEST_MEMORY_POOL = 1,
};

#define ACCESS_LOG_WARM_PROBE_MS 100
#define ACCESS_LOG_HOT_PROBE_MS 3200

enum guest_access_log {
	GUEST_ACCESS_LOG_NONE = 0,
	GUEST_ACCESS_LOG_DIRTY_LOG,	/* ops->dirty_log, the accelerator's */
	GUEST_ACCESS_LOG_WRITE_PROTECT, /* mm's own, through uffd-wp */
	GUEST_ACCESS_LOG_ACCESSED_BITS, /* the CPU's accessed and dirty bits (owned) */
};

/* How the vCPU may use a range of guest RAM where mm's entries are its page
 * table (the owned realiser). RAM outside every range: any privilege level. */
enum guest_cpu_access {
	GUEST_CPU_USER = 0,
	GUEST_CPU_SUPERVISOR, /* CPL 0 only */
	GUEST_CPU_NONE,	      /* never present: an access is the guest's #PF */
};
struct guest_cpu_range {
	uint64_t gpa, bytes; /* page-aligned; bytes 0: unused slot */
	enum guest_cpu_access access;
};
#define GUEST_CPU_RANGES 4

/* What mm needs from the VMM for one VM (ctx is the VMM's VM). */
struct guest_memory_ops {
	/* Park the VM's vCPUs out of the guest, and let them run again. Nest. */
	void (*pause)(void *ctx);
	void (*resume)(void *ctx);
	/* Fills `bitmap` (bit g of word g/64) with the pages the dirty log
	 * shows since the previous call. NULL: no access tracking. */
	int (*dirty_log)(void *ctx, uint64_t *bitmap);
	/* The VM cannot go on (called from mm's threads). */
	void (*fatal)(void *ctx, const char *message);
	/* memory.high: the VM's vCPU waits this long before it runs on. */
	void (*throttle)(void *ctx, uint64_t ns);
	/* The fault thread read a fault of the VM's vCPU: it is blocked. */
	void (*fault_begin)(void *ctx);
	/* Before the fault thread wakes the vCPU: false defers the wake to
	 * the end of a pause, when the VMM calls guest_memory_wake(). */
	bool (*may_wake)(void *ctx);
	/* Owned realiser: the vCPU's TLB must be flushed before the guest
	 * runs another instruction (any thread; the VM is paused or it is the
	 * vCPU's own thread). */
	void (*tlb_flush)(void *ctx);
};

struct guest_memory_config {
	uint64_t bytes; /* multiple of 2 MiB */
	enum guest_memory_backing backing;
	/* pool backing only: */
	struct frame_pool *pool;
	struct guest_registry *registry; /* where the VM gets its id */
	struct fault_thread *faults;
	unsigned fault_around_pages;	    /* power of two, 1..512 */
	unsigned fault_ahead_pages;	    /* largest fault-ahead window; 0 = off */
	uint64_t pinned_bytes;		    /* guest pages below this are VMM-owned */
	const struct guest_memory_ops *ops; /* may be NULL (tests) */
	void *ops_ctx;
	enum guest_access_log access_log;
	struct reclaim *reclaim;     /* swap and limits; NULL: none */
	struct memory_limits limits; /* memory.high, memory.max, oom_score_adj */
	/* The cgroup the VM's own cgroup goes under (mm/memcg.h); NULL: none. */
	struct memcg *memcg;
	/* Guest RAM starts as this raw memory image (memory_image.c); NULL:
	 * zeroes. No larger than `bytes`. */
	const char *image_path;
	/* How the vCPU reaches guest RAM (mm/realiser.h); owned needs
	 * ops->tlb_flush and a CPU that walks the tables (TCG). */
	enum guest_realiser realiser;
	struct guest_cpu_range cpu_ranges[GUEST_CPU_RANGES]; /* owned only */
};

struct guest_memory;

int guest_memory_create(struct guest_memory **out, const struct guest_memory_config *cfg, char *err,
			size_t errlen);
void guest_memory_destroy(struct guest_memory *mem);

void *guest_memory_host_base(const struct guest_memory *mem);
uint64_t guest_memory_size(const struct guest_memory *mem);

/* Return 0, or -1 if [gpa, gpa+len) is not inside guest RAM or (pool) the
 * pool cannot provide the frames. */
int guest_memory_write(struct guest_memory *mem, uint64_t gpa, const void *src, size_t len);
int guest_memory_zero(struct guest_memory *mem, uint64_t gpa, size_t len);
int guest_memory_read(struct guest_memory *mem, uint64_t gpa, void *dst, size_t len);

/* The fault thread calls this for each event read from the VM's uffd.
 * Returns 0 when the fault is done with (served, or the VM is ending), or 1
 * when it must be retried later (memory is being freed by an OOM kill). */
int guest_memory_handle_fault(struct guest_memory *mem, const struct uffd_msg *msg);
int guest_memory_uffd(const struct guest_memory *mem);

/* Owned realiser: what the accelerator maps and loads. The pool at
 * emulator-physical 0 (phys, phys_bytes) and CR3 = root. */
struct guest_page_table {
	void *phys;
	uint64_t phys_bytes;
	uint64_t root;
};
/* Returns 0, or -1 if the VM does not use the owned realiser. */
int guest_memory_page_table(const struct guest_memory *mem, struct guest_page_table *out);
enum guest_realiser guest_memory_realiser(const struct guest_memory *mem);

/* What a CPU fault (owned realiser) turned out to be. */
enum guest_cpu_fault {
	GUEST_CPU_FAULT_RETRY = 0, /* served: run the instruction again */
	GUEST_CPU_FAULT_GUEST,	   /* the guest's own #PF (no access there) */
	GUEST_CPU_FAULT_OUTSIDE,   /* an address outside guest RAM */
	GUEST_CPU_FAULT_ENDED,	   /* the VM has failed (reported) */
};
/* The vCPU's page walk for linear address `gpa` failed (owned realiser):
 * populates, swaps in or copies on write, as the fault thread does for the
 * host realiser, on the calling vCPU thread, which must count as parked
 * (it may reclaim, and pausers must not wait for it). */
enum guest_cpu_fault guest_memory_cpu_fault(struct guest_memory *mem, uint64_t gpa);
/* Whether the VM's uffd holds a fault nobody has read yet: its vCPU is
 * blocked on it. Any thread. */
bool guest_memory_fault_pending(const struct guest_memory *mem);
/* Wakes whatever waits on a fault of the VM (a deferred wake, see above). */
void guest_memory_wake(struct guest_memory *mem);

/* --- access tracking ---
 *
 * The access log (above) is the only access information the VMM gets, and a
 * harvest consumes it, so mm owns it for all users (KSM, reclaim): each
 * harvest stamps the pages it reports with the time (mm_clock_ms). */

/* Milliseconds since the process started, at least 1. */
uint32_t mm_clock_ms(void);
int guest_memory_tracks_access(const struct guest_memory *mem);
enum guest_access_log guest_memory_access_log(const struct guest_memory *mem);
/* Harvests if at least min_interval_ms passed since the previous harvest.
 * Thread-safe. Returns 1 if it harvested. */
int guest_memory_harvest(struct guest_memory *mem, uint32_t min_interval_ms);
/* When a harvest last showed the page; 0 if never. */
uint32_t guest_memory_last_access(const struct guest_memory *mem, uint64_t gfn);
/* When a harvest last showed the page written; 0 if never. The same as
 * guest_memory_last_access() for the logs that only see writes and first
 * touches (the dirty log, the write-protect log). */
uint32_t guest_memory_last_write(const struct guest_memory *mem, uint64_t gfn);
/* Whether the latest harvest showed the page. */
int guest_memory_recently_dirty(const struct guest_memory *mem, uint64_t gfn);
void guest_memory_pause(struct guest_memory *mem);
void guest_memory_resume(struct guest_memory *mem);

/* --- for KSM (ksm/) --- */

struct rmap_shared;

uint16_t guest_memory_id(const struct guest_memory *mem);
uint64_t guest_memory_pages(const struct guest_memory *mem);
struct frame_pool *guest_memory_pool(const struct guest_memory *mem);
/* Present pages now, private, shared or zero (read without the lock). */
uint64_t guest_memory_present_count(const struct guest_memory *mem);
/* Pages mapping the zero run now (read without the lock). */
uint64_t guest_memory_zero_pages(const struct guest_memory *mem);

/* A guest page and the frame that backs it. */
struct guest_page {
	uint64_t gfn;
	uint64_t frame;
};
/* Lists the present, private, unpinned pages of [start, start + span) into
 * out (at most max); returns how many. Takes the VM's lock. */
size_t guest_memory_private_pages(struct guest_memory *mem, uint64_t start, uint64_t span,
				  struct guest_page *out, size_t max);

/* One page to merge: it must still map old_frame privately; it will map
 * new_frame, write-protected. shared == NULL means new_frame is in the zero
 * run. */
struct guest_merge {
	uint64_t gfn;
	uint64_t old_frame;
	uint64_t new_frame;
	struct rmap_shared *shared;
};
/* The VM must be paused. Merges the pages (sorted by gfn) whose sEPT entry
 * is still as expected: each run of consecutive gfns mapping consecutive new
 * frames is realised at once (host mappings: one mmap and one write-protect);
 * the page is added to `shared`'s mappers. ok[i] says whether merges[i] was
 * done. The old frames of the merged pages go back to the pool, or with
 * `keep_old` stay the caller's to free (frame_pool_free_list, after the VM
 * is resumed: scattered frames are cheaper to free together). Returns the
 * number merged. */
size_t guest_memory_merge(struct guest_memory *mem, const struct guest_merge *merges, size_t n,
			  bool *ok, bool keep_old);
/* The VM must be paused. Gives every page that maps a shared frame or the
 * zero run a private copy again (Linux's KSM run = 2). Returns the pages
 * copied, or -1 when the pool ran out of frames part-way (the rest stay
 * merged). */
int64_t guest_memory_unmerge(struct guest_memory *mem);
/* The VM must be paused. Write-protects the private page gfn, which must
 * still map `frame`, and makes its frame a shared frame whose only mapper it
 * is. The returned rmap_shared has refs = 1 (the caller's reference).
 * Returns NULL if the page changed. */
struct rmap_shared *guest_memory_share(struct guest_memory *mem, uint64_t gfn, uint64_t frame);

struct guest_memory_stats {
	uint64_t rss_pages;	     /* Rss: pages mapping a frame (not the zero run) */
	uint64_t pinned_pages;	     /* boot area pages */
	uint64_t faults;	     /* first-touch faults served */
	uint64_t fault_around_pages; /* pages mapped ahead of a faulting page */
	uint64_t fault_ahead_pages;  /* pages mapped ahead of sequential faults */
	uint64_t wp_faults;	     /* write faults on write-protected pages */
	uint64_t access_faults;	     /* of those, first writes the access log caught */
	uint64_t access_protected;   /* pages the access log write-protected */
	uint64_t cow_pages;	     /* copies made on write */
	/* how long serving each copy-on-write took (allocation, copy, entry or
	 * mapping), log2 buckets of microseconds */
	struct latency_histogram cow_latency;
	uint64_t spurious_faults;   /* faults found already resolved */
	uint64_t maps;		    /* mmap calls placing frames */
	uint64_t cpu_faults;	    /* #PFs served on the vCPU thread (owned) */
	uint64_t tlb_flushes;	    /* TLB flushes asked for (owned) */
	uint64_t sept_bytes;	    /* software EPT tables */
	uint64_t ksm_merged;	    /* merges done over the VM's life */
	uint64_t ksm_merging_pages; /* pages mapping a shared (KSM) frame */
	uint64_t ksm_zero_pages;    /* pages mapping the zero run */
	uint64_t pss_bytes;	    /* Pss: private pages whole, shared pages 1/n */
	uint64_t shared_bytes;	    /* bytes mapping frames other guests map too */
	uint64_t swap_pages;	    /* Swap: pages out in swap */
	uint64_t pswpin, pswpout;
	uint64_t image_pages;	   /* pages restored from the memory image */
	uint64_t image_zero_pages; /* image pages that were zero: no copy */
};
void guest_memory_get_stats(struct guest_memory *mem, struct guest_memory_stats *stats);
/* The VM's own cgroup (mm/memcg.h), a leaf under cfg->memcg; NULL without
 * the pool backing. */
struct memcg *guest_memory_memcg(const struct guest_memory *mem);

/* Pages of [gpa, gpa+len) by state: for tests and reports. */
struct guest_range_stats {
	uint64_t present; /* private, shared or zero */
	uint64_t shared;  /* mapping a KSM frame */
	uint64_t zero;	  /* mapping the zero run */
};
void guest_memory_range_stats(struct guest_memory *mem, uint64_t gpa, uint64_t len,
			      struct guest_range_stats *stats);

enum guest_page_state { GUEST_PAGE_UNTOUCHED, GUEST_PAGE_PRESENT, GUEST_PAGE_SWAPPED };
/* Where one page is now (for tests). */
enum guest_page_state guest_memory_page_state(struct guest_memory *mem, uint64_t gfn);

#endif
