/*
 * ksm.h - kernel samepage merging for guest memory, after Linux's mm/ksm.c.
 *
 * A scanner thread walks the present, private pages of every VM that has
 * merging enabled, pages_to_scan pages per batch with sleep_millisecs
 * between batches (Linux's knobs and defaults), or back to back at max rate.
 * For each page:
 *
 *   1. Volatile pages are skipped without hashing. With the KVM dirty log
 *      (the default), each harvest (at most one per VM every stable_age_ms / 2,
 *      since a harvest makes the guest's next write to each page fault)
 *      stamps the pages it reports with the time; a page in the latest harvest or stamped less than
 *      stable_age_ms ago is volatile (written: the CPU's accessed bits stamp reads apart, and
 *      those do not count), and a page that is not can merge on
 *      its first visit. (On this platform
 *      the guest's first read of a page also shows in the log, so "not in
 *      the log lately" means "not accessed lately", which is what keeps
 *      KSM from merging memory the guest is about to write: a copy-on-write
 *      here costs a userfaultfd round trip, not an in-kernel fault.)
 *      Without the dirty log, as in Linux, a page must show the same
 *      checksum on two visits. A page that was merged before and is
 *      private again (the guest wrote it) needs twice the quiet time for
 *      each earlier merge, up to 64 times: merging and copying back a page
 *      the guest keeps rewriting would cost it a userfaultfd round trip
 *      each time.
 *   2. An all-zero page is mapped to the pool's zero run (use_zero_pages),
 *      unless no harvest ever showed it: then the guest never touched it
 *      (fault-around or fault-ahead mapped it ahead of the guest).
 *   3. The page's XXH3 hash is looked up in the stable table (shared
 *      frames); a node whose frame is byte-for-byte equal and has fewer
 *      than max_page_sharing mappers takes the page. When every frame of
 *      that content is full, the page starts another one: content shared
 *      by more than max_page_sharing pages lives on a chain of frames
 *      (Linux's stable node chains; stable_node_chains, stable_node_dups,
 *      counted at each full scan), so it is never capped.
 *   4. Otherwise the unstable table (candidates seen this scan) is searched;
 *      an identical candidate becomes a new stable frame and the page is
 *      merged into it.
 *   5. Otherwise the page becomes a candidate. The unstable table is emptied
 *      after every full scan.
 *
 * Smart scan (Linux 6.7's, smart_scan, default on): a page hashed on a visit
 * and not merged ages by one; from age 3 on most of its visits are skipped,
 * more as it ages (1 of 2, then 3 of 4, then 7 of 8), about as Linux's
 * skip_age() does, but aligned to the full-scan count so that identical
 * pages of any ages are still visited in the same scan (smart_scan.h says
 * why Linux's countdown can keep them apart for ever). A page the guest
 * wrote (volatile, or a changed checksum) or that gets queued for a merge
 * starts again at age 0. Skipped pages are counted in pages_skipped, not in
 * pages_scanned.
 *
 * A hash is never trusted alone: every match is compared with memcmp when
 * found, and again when applied.
 *
 * Applying follows the safety rule (../shared/DESIGN.md): the scanner pauses
 * a VM (its vCPU parked out of KVM_RUN), re-checks each page's content
 * against its target, remaps the batch (consecutive pages onto consecutive
 * frames with one mmap, mm/guest_share.c), and resumes it, at most
 * apply_chunk merges per pause. Target frames are pinned meanwhile, so a
 * frame whose sharers all copied away cannot be freed and reused under a
 * merge. A guest write to a shared page is a copy-on-write fault served by
 * the fault thread (mm/guest_fault.c); a frame is freed when its last mapper
 * leaves.
 *
 * Statistics use Linux's names (/sys/kernel/mm/ksm): pages_shared (shared
 * frames), pages_sharing (the pages that map them, beyond the first),
 * pages_unshared (candidates), pages_volatile, full_scans, pages_scanned,
 * ksm_zero_pages, general_profit. A snapshot is published after every
 * batch, so readers never wait for a scan.
 *
 * Locking: ksm.lock protects the VM list and both tables and is held for a
 * whole batch (scan and apply). Lock order: ksm.lock -> (vCPU pause) ->
 * guest_memory.lock -> frame_pool.shared_lock (mm/lock_order.h). The vCPU
 * thread of an ending VM calls ksm_remove_vm() after it has finished (so a
 * pause of it returns at once) and before its guest memory is destroyed.
 */
#ifndef KSM_KSM_H
#define KSM_KSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct frame_pool;
struct guest_memory;

#define KSM_MAX_VMS 4096
#define KSM_MAX_RATE_BATCH 4096

struct ksm_config {
	unsigned pages_to_scan;	   /* per batch; Linux's default 100 */
	unsigned sleep_millisecs;  /* between batches; Linux's default 20 */
	bool max_rate;		   /* batches of KSM_MAX_RATE_BATCH, no sleep */
	unsigned max_page_sharing; /* mappers per shared frame; Linux's default 256 */
	bool use_zero_pages;	   /* zero pages map the zero run (default on) */
	bool dirty_log;		   /* skip pages the dirty log showed lately (default on) */
	unsigned stable_age_ms;	   /* "lately": default 100 */
	unsigned apply_chunk;	   /* merges per pause (default 128) */
	unsigned start_delay_ms;   /* the thread waits this long before scanning */
	bool smart_scan;	   /* skip pages that did not merge lately (default on) */
	/* The advisor (Linux 6.9's scan-time advisor): after every full scan
	 * it sets pages_to_scan so that a full scan takes about
	 * advisor_target_scan_ms, within advisor_max_cpu percent of a CPU and
	 * between the min and max pages (ksm/advisor.c). */
	bool advisor;
	unsigned advisor_target_scan_ms; /* Linux: 200 s */
	unsigned advisor_max_cpu;	 /* percent; Linux: 70 */
	unsigned advisor_min_pages;	 /* Linux: 500 */
	unsigned advisor_max_pages;	 /* Linux: 30000 */
};

void ksm_config_default(struct ksm_config *cfg);

struct ksm_stats {
	uint64_t pages_shared;
	uint64_t pages_sharing;
	uint64_t pages_unshared;
	uint64_t pages_volatile;
	uint64_t ksm_zero_pages;
	uint64_t full_scans;
	uint64_t pages_scanned;
	uint64_t pages_skipped; /* by smart scan */
	int64_t general_profit; /* bytes saved minus KSM's own metadata */
	uint64_t metadata_bytes;
	uint64_t merges;	  /* pages merged, over the run */
	uint64_t merge_failures;  /* pages that changed before their merge */
	uint64_t hash_mismatches; /* equal hashes whose pages memcmp found different */
	uint64_t stable_nodes;
	uint64_t stable_node_chains; /* content on more than one shared frame */
	uint64_t stable_node_dups;   /* the frames of such content */
	uint64_t pauses;
	double pause_seconds, max_pause_ms;
	double cpu_seconds; /* the scanner thread */
	/* where the scanner's wall time goes */
	double scan_seconds;	   /* hashing, comparing, table work */
	double pause_wait_seconds; /* waiting for vCPUs to park */
	double verify_seconds;	   /* re-checking content under pause */
	double remap_seconds;	   /* mm: remapping merged pages */
	double promote_seconds;	   /* mm: write-protecting new shared frames */
	uint64_t dirty_harvests;
	uint64_t batches;
	/* the advisor: the rate in force and what it was set from */
	uint64_t pages_to_scan;
	double advisor_scan_seconds; /* the last full scan */
	double advisor_cpu_percent;  /* the scanner's CPU over it */
};

struct ksm;

int ksm_create(struct ksm **out, struct frame_pool *pool, const struct ksm_config *cfg);
/* Starts the scanner thread. Without it, ksm_scan_batch() drives KSM. */
int ksm_start(struct ksm *ksm);
void ksm_destroy(struct ksm *ksm);

/* KSM pauses the VM and reads its dirty log through mm (guest_memory_pause(),
 * guest_memory_harvest()). */
int ksm_add_vm(struct ksm *ksm, struct guest_memory *mem);
void ksm_remove_vm(struct ksm *ksm, struct guest_memory *mem);

/* KSM's own memory for one VM (Linux counts ksm_rmap_items) is its per-page
 * arrays (merge count, smart-scan age, volatility, checksums
 * without the dirty log), ksm_vm_array_bytes(), plus the reverse-map entries
 * of its shared pages, ksm_mapper_bytes(the VM's ksm_merging_pages). */
uint64_t ksm_vm_array_bytes(struct ksm *ksm, struct guest_memory *mem);
uint64_t ksm_mapper_bytes(uint64_t merging_pages);

/* Runtime control, as /sys/kernel/mm/ksm/run: 0 stops scanning, 1 scans,
 * 2 stops and unmerges every page (each VM paused in turn while its shared
 * and zero-run pages get private copies). Returns 0, or -1 (bad mode; or 2
 * and the pool ran out of frames part-way: scanning stays stopped). */
int ksm_set_run(struct ksm *ksm, int run);
int ksm_get_run(struct ksm *ksm);
/* The knobs now, and new ones (checked: pages_to_scan >= 1,
 * max_page_sharing >= 2). The scanner picks them up at its next batch. */
void ksm_get_config(struct ksm *ksm, struct ksm_config *cfg);
int ksm_set_config(struct ksm *ksm, const struct ksm_config *cfg);

/* The snapshot published after the last batch. */
void ksm_get_stats(struct ksm *ksm, struct ksm_stats *stats);

/* Scans one batch and applies it (what the thread does between sleeps).
 * Returns 1 if it completed a full scan, else 0. For tests and tools. */
int ksm_scan_batch(struct ksm *ksm);

/* Test hook: replaces XXH3 (e.g. by a function with collisions). */
void ksm_set_hash_function(struct ksm *ksm, uint64_t (*hash)(const void *page));

#endif
