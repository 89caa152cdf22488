/*
 * guest_memory.c - guest RAM backings: creation and tear-down, set-up writes
 * and device reads, statistics (see guest_memory.h).
 */
#include "guest_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fault_thread.h"
#include "guest_memory_internal.h"
#include "reclaim_internal.h"
#include "rmap.h"

static int is_pool(const struct guest_memory *mem)
{
	return mem->backing == GUEST_MEMORY_POOL;
}

/* --- creation and tear-down --- */

/* Owned page table: pages the CPU must never reach (page 0) get an entry
 * that is neither present nor swap, so that no fault-around block and no
 * VMM write ever gives them a frame: the CPU finds them not present, as the
 * guest's own tables say. (With host mappings the guest's own tables keep
 * the CPU away.) */
static int guard_no_access(struct guest_memory *mem, char *err, size_t errlen)
{
	if (mem->realiser_kind != GUEST_REALISER_OWNED)
		return 0;
	for (unsigned i = 0; i < GUEST_CPU_RANGES; i++) {
		const struct guest_cpu_range *r = &mem->cpu_ranges[i];
		if (r->access != GUEST_CPU_NONE)
			continue;
		uint64_t end = (r->gpa + r->bytes) / FRAME_SIZE;
		for (uint64_t gfn = r->gpa / FRAME_SIZE; gfn < end && gfn < mem->pages; gfn++) {
			if (guest_cpu_access(mem, gfn) == GUEST_CPU_NONE &&
			    sept_set(&mem->sept, gfn, SEPT_PINNED)) {
				snprintf(err, errlen, "cannot allocate the software EPT");
				return -1;
			}
		}
	}
	return 0;
}

static int create_pool_backing(struct guest_memory *mem, const struct guest_memory_config *cfg,
			       char *err, size_t errlen)
{
	mem->pool = cfg->pool;
	mem->faults = cfg->faults;
	mem->fault_around_pages = cfg->fault_around_pages ? cfg->fault_around_pages : 1;
	mem->fault_ahead_max_pages = cfg->fault_ahead_pages;
	if (mem->fault_ahead_max_pages && mem->fault_ahead_max_pages < mem->fault_around_pages)
		mem->fault_ahead_max_pages = mem->fault_around_pages;
	mem->pinned_pages = cfg->pinned_bytes / FRAME_SIZE;
	mem->ops = cfg->ops;
	mem->ops_ctx = cfg->ops_ctx;
	mem->reclaim = cfg->reclaim;
	mem->limits = cfg->limits;
	mem->access_log = cfg->access_log;
	memcpy(mem->cpu_ranges, cfg->cpu_ranges, sizeof(mem->cpu_ranges));
	if (access_log_init(mem, err, errlen))
		return -1;
	if (mem->fault_around_pages > HUGE_PAGES ||
	    (mem->fault_around_pages & (mem->fault_around_pages - 1))) {
		snprintf(err, errlen, "fault-around must be a power of two of at most 512 pages");
		return -1;
	}
	if (mem->realiser_kind == GUEST_REALISER_OWNED &&
	    (mem->access_log == GUEST_ACCESS_LOG_WRITE_PROTECT ||
	     mem->access_log == GUEST_ACCESS_LOG_DIRTY_LOG)) {
		snprintf(err, errlen,
			 "the owned page table keeps its own access log "
			 "(accessed and dirty bits)");
		return -1;
	}
	if (mem->realiser_kind != GUEST_REALISER_OWNED &&
	    mem->access_log == GUEST_ACCESS_LOG_ACCESSED_BITS) {
		snprintf(err, errlen, "accessed bits need the owned page table");
		return -1;
	}
	struct sept_table_source source = {0};
	if (mem->realiser->table_source)
		mem->realiser->table_source(mem, &source);
	if (sept_init_from(&mem->sept, &source)) {
		snprintf(err, errlen, "cannot allocate the software EPT");
		return -1;
	}
	if (mem->realiser->init(mem, err, errlen) || guard_no_access(mem, err, errlen))
		return -1;
	mem->id = frame_pool_register_space(mem->pool, mem);
	if (mem->id < 0) {
		snprintf(err, errlen, "too many VMs for one frame pool (at most %d)",
			 FRAME_POOL_MAX_SPACES - 1);
		return -1;
	}
	return 0;
}

int guest_memory_create(struct guest_memory **out, const struct guest_memory_config *cfg, char *err,
			size_t errlen)
{
	struct guest_memory *mem = calloc(1, sizeof(*mem));
	if (!mem) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	mem->backing = cfg->backing;
	mem->bytes = cfg->bytes;
	mem->pages = cfg->bytes / FRAME_SIZE;
	mem->uffd = -1;
	mem->image_fd = -1;
	mem->id = -1;
	mem->fault_slot = -1;
	mem->realiser_kind = cfg->realiser;
	mem->realiser =
		cfg->realiser == GUEST_REALISER_OWNED ? &owned_realiser_ops : &host_realiser_ops;
	pthread_mutex_init(&mem->lock, NULL);
	pthread_mutex_init(&mem->harvest_lock, NULL);
	if (is_pool(mem) && cfg->realiser == GUEST_REALISER_OWNED) {
		/* No host range: the CPU reaches the pool through the sEPT. */
		if (memory_image_open(mem, cfg->image_path, err, errlen) ||
		    create_pool_backing(mem, cfg, err, errlen)) {
			guest_memory_destroy(mem);
			return -1;
		}
		*out = mem;
		return 0;
	}
	/* Reserve the range 2 MiB aligned, so 2 MiB frame blocks line up. */
	mem->reserved_bytes = cfg->bytes + TWO_MIB;
	mem->reserved_base = mmap(NULL, mem->reserved_bytes, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem->reserved_base == MAP_FAILED) {
		snprintf(err, errlen, "cannot reserve %llu MiB of guest memory: %s",
			 (unsigned long long)(cfg->bytes >> 20), strerror(errno));
		mem->reserved_base = NULL;
		guest_memory_destroy(mem);
		return -1;
	}
	uintptr_t aligned =
		((uintptr_t)mem->reserved_base + TWO_MIB - 1) & ~(uintptr_t)(TWO_MIB - 1);
	mem->host_base = (uint8_t *)aligned;
	if (memory_image_open(mem, cfg->image_path, err, errlen) ||
	    (is_pool(mem) && create_pool_backing(mem, cfg, err, errlen)) ||
	    (!is_pool(mem) && memory_image_load_all(mem, err, errlen))) {
		guest_memory_destroy(mem);
		return -1;
	}
	*out = mem;
	return 0;
}

/* Frees every frame the VM maps, in runs of contiguous frames. */
static void release_frames(struct guest_memory *mem)
{
	uint64_t run_start = 0, run_len = 0;
	for (uint64_t gfn = 0; gfn < mem->pages; gfn++) {
		sept_entry e = sept_lookup(&mem->sept, gfn);
		if (sept_is_swap(e))
			guest_swap_release(mem, e);
		if (!sept_is_present(e))
			continue;
		if (e & (SEPT_SHARED | SEPT_ZERO)) {
			guest_release_shared(mem, gfn, e);
			continue;
		}
		uint64_t frame = sept_frame(e);
		frame_set(frame_pool_frame(mem->pool, frame), FRAME_ALLOCATED, 0);
		if (run_len && run_start + run_len == frame) {
			run_len++;
			continue;
		}
		frame_pool_free(mem->pool, run_start, run_len);
		run_start = frame;
		run_len = 1;
	}
	frame_pool_free(mem->pool, run_start, run_len);
}

void guest_memory_destroy(struct guest_memory *mem)
{
	if (!mem)
		return;
	if (is_pool(mem) && mem->realiser)
		mem->realiser->exit(mem);
	if (is_pool(mem) && mem->pool) {
		/* Unregister first: reclaim and the OOM killer find VMs through
		 * the registry, and unregistering waits for a pass using it. */
		if (mem->id > 0)
			frame_pool_unregister_space(mem->pool, mem->id);
		/* Unmap: once the guest range is gone, no access can reach a
		 * frame while it is returned to the pool. */
		if (mem->reserved_base)
			munmap(mem->reserved_base, mem->reserved_bytes);
		mem->reserved_base = NULL;
		release_frames(mem);
		sept_destroy(&mem->sept);
		/* Only now is an OOM victim's memory back: until here, waiting
		 * faults must not pick another victim. */
		if (mem->reclaim)
			reclaim_forget(mem->reclaim, mem);
	}
	if (mem->uffd >= 0)
		close(mem->uffd);
	memory_image_close(mem);
	if (mem->reserved_base)
		munmap(mem->reserved_base, mem->reserved_bytes);
	pthread_mutex_destroy(&mem->lock);
	pthread_mutex_destroy(&mem->harvest_lock);
	access_log_exit(mem);
	free(mem);
}

void *guest_memory_host_base(const struct guest_memory *mem)
{
	return mem->host_base;
}

uint64_t guest_memory_size(const struct guest_memory *mem)
{
	return mem->bytes;
}

int guest_memory_uffd(const struct guest_memory *mem)
{
	return mem->uffd;
}

bool guest_memory_fault_pending(const struct guest_memory *mem)
{
	if (mem->uffd < 0)
		return false;
	struct pollfd p = {.fd = mem->uffd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

void guest_memory_wake(struct guest_memory *mem)
{
	if (is_pool(mem))
		realiser_wake(mem, 0, mem->pages);
}

enum guest_realiser guest_memory_realiser(const struct guest_memory *mem)
{
	return mem->realiser_kind;
}

int guest_memory_page_table(const struct guest_memory *mem, struct guest_page_table *out)
{
	if (!is_pool(mem) || mem->realiser_kind != GUEST_REALISER_OWNED)
		return -1;
	out->phys = mem->pool->base;
	out->phys_bytes = mem->pool->nframes * FRAME_SIZE;
	out->root = sept_root_address(&mem->sept);
	return 0;
}

/* --- frames and entries --- */

void guest_free_unmapped(struct guest_memory *mem, uint64_t frame, uint64_t n, int error)
{
	if (error == -ENOTRECOVERABLE) {
		/* Still mapped, perhaps: a frame another VM could get must not
		 * be. Lost to the pool until the VMM exits. */
		__atomic_add_fetch(&mem->pool->frames_lost, n, __ATOMIC_RELAXED);
		return;
	}
	frame_pool_free(mem->pool, frame, n);
}

enum guest_cpu_access guest_cpu_access(const struct guest_memory *mem, uint64_t gfn)
{
	uint64_t gpa = gfn * FRAME_SIZE;
	for (unsigned i = 0; i < GUEST_CPU_RANGES; i++) {
		const struct guest_cpu_range *r = &mem->cpu_ranges[i];
		if (r->bytes && gpa >= r->gpa && gpa - r->gpa < r->bytes)
			return r->access;
	}
	return GUEST_CPU_USER;
}

sept_entry guest_pte(const struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t flags)
{
	if (guest_cpu_access(mem, gfn) == GUEST_CPU_USER)
		flags |= SEPT_USER;
	return sept_make_present(frame, flags);
}

/* --- set-up writes and device reads --- */

static int in_range(const struct guest_memory *mem, uint64_t gpa, size_t len)
{
	return gpa <= mem->bytes && len <= mem->bytes - gpa;
}

/* Pool: copies between guest memory and a buffer, page by page through the
 * sEPT and the pool mapping. A write allocates untouched pages; a read of an
 * untouched page reads zeroes (or the memory image); a swapped-out page is brought back first,
 * on the calling thread. */
static int pool_access(struct guest_memory *mem, uint64_t gpa, void *buf, const void *src,
		       size_t len)
{
	int rc = 0, swap_tries = 0;
	pthread_mutex_lock(&mem->lock);
	while (len) {
		uint64_t gfn = gpa / FRAME_SIZE, offset = gpa % FRAME_SIZE;
		size_t chunk = FRAME_SIZE - offset < len ? FRAME_SIZE - offset : len;
		sept_entry e = sept_lookup(&mem->sept, gfn);
		if (sept_is_swap(e)) {
			/* Swapped out: bring it back on this thread (never through
			 * the guest mapping: a VMM thread blocked on a uffd fault
			 * of a VM that died would wait for ever). */
			int at_max = mem->reclaim && guest_over_max(mem, 1);
			int error = at_max	   ? -ENOMEM
				    : mem->reclaim ? guest_swap_in(mem, gfn, e)
						   : -EINVAL;
			if (error == -ENOMEM && swap_tries++ < 8) {
				/* memory.max holds for the VMM's reads too. (On the
				 * vCPU's own thread, pausing its VM returns at once.) */
				pthread_mutex_unlock(&mem->lock);
				size_t freed = at_max ? reclaim_from(mem->reclaim, mem, 64)
						      : reclaim_direct(mem->reclaim, mem, 64);
				pthread_mutex_lock(&mem->lock);
				if (freed)
					continue;
			}
			if (error) {
				rc = -1;
				break;
			}
			continue;
		}
		if (src && !sept_is_present(e)) {
			int64_t mapped = guest_populate(mem, gfn, mem->fault_around_pages, 0);
			if (mapped <= 0) {
				rc = -1;
				break;
			}
			e = sept_lookup(&mem->sept, gfn);
		}
		if (src && (e & (SEPT_SHARED | SEPT_ZERO))) {
			if (guest_copy_on_write(mem, gfn, e)) {
				rc = -1;
				break;
			}
			e = sept_lookup(&mem->sept, gfn);
		}
		uint8_t *page =
			sept_is_present(e) ? frame_pool_address(mem->pool, sept_frame(e)) : NULL;
		if (src)
			memcpy(page + offset, src, chunk);
		else if (page)
			memcpy(buf, page + offset, chunk);
		else if (memory_image_read(mem, gpa, buf, chunk)) {
			rc = -1;
			break;
		}
		gpa += chunk;
		len -= chunk;
		if (src)
			src = (const uint8_t *)src + chunk;
		else
			buf = (uint8_t *)buf + chunk;
	}
	pthread_mutex_unlock(&mem->lock);
	return rc;
}

int guest_memory_write(struct guest_memory *mem, uint64_t gpa, const void *src, size_t len)
{
	if (!in_range(mem, gpa, len))
		return -1;
	if (is_pool(mem))
		return pool_access(mem, gpa, NULL, src, len);
	memcpy(mem->host_base + gpa, src, len);
	return 0;
}

int guest_memory_zero(struct guest_memory *mem, uint64_t gpa, size_t len)
{
	static const uint8_t zeroes[FRAME_SIZE];
	while (len) {
		size_t chunk = len < sizeof(zeroes) ? len : sizeof(zeroes);
		if (guest_memory_write(mem, gpa, zeroes, chunk))
			return -1;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int guest_memory_read(struct guest_memory *mem, uint64_t gpa, void *dst, size_t len)
{
	if (!in_range(mem, gpa, len))
		return -1;
	if (is_pool(mem))
		return pool_access(mem, gpa, dst, NULL, len);
	memcpy(dst, mem->host_base + gpa, len);
	return 0;
}

/* --- pausing --- */

void guest_memory_pause(struct guest_memory *mem)
{
	if (mem->ops && mem->ops->pause)
		mem->ops->pause(mem->ops_ctx);
}

void guest_memory_resume(struct guest_memory *mem)
{
	if (mem->ops && mem->ops->resume)
		mem->ops->resume(mem->ops_ctx);
}

/* --- statistics --- */

struct stats_walk {
	struct guest_memory *mem;
	struct guest_memory_stats *stats;
	double pss;
	uint64_t first_gfn, end_gfn; /* for range stats */
	struct guest_range_stats *range;
};

/* Called with mem->lock and pool->shared_lock held. */
static int stats_page(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct stats_walk *w = ctx;
	sept_entry e = *entry;
	(void)gfn;
	if (!sept_is_present(e))
		return 0;
	if (e & SEPT_ZERO) {
		w->stats->ksm_zero_pages++;
		return 0;
	}
	w->stats->rss_pages++;
	if (!(e & SEPT_SHARED)) {
		w->pss += FRAME_SIZE;
		return 0;
	}
	w->stats->ksm_merging_pages++;
	struct frame *f = frame_pool_frame(w->mem->pool, sept_frame(e));
	uint32_t mappers = frame_state(f) == FRAME_SHARED ? frame_shared(f)->count : 1;
	w->pss += (double)FRAME_SIZE / (mappers ? mappers : 1);
	if (mappers > 1)
		w->stats->shared_bytes += FRAME_SIZE;
	return 0;
}

void guest_memory_get_stats(struct guest_memory *mem, struct guest_memory_stats *stats)
{
	if (!is_pool(mem)) {
		memset(stats, 0, sizeof(*stats));
		stats->image_pages = mem->stats.image_pages;
		return;
	}
	pthread_mutex_lock(&mem->lock);
	*stats = mem->stats;
	stats->swap_pages = mem->sept.swap_entries;
	stats->pswpin = mem->pswpin;
	stats->pswpout = mem->pswpout;
	stats->events.high = __atomic_load_n(&mem->events.high, __ATOMIC_RELAXED);
	stats->events.max = __atomic_load_n(&mem->events.max, __ATOMIC_RELAXED);
	stats->events.oom = __atomic_load_n(&mem->events.oom, __ATOMIC_RELAXED);
	stats->events.oom_kill = __atomic_load_n(&mem->events.oom_kill, __ATOMIC_RELAXED);
	stats->rss_pages = stats->ksm_merging_pages = stats->ksm_zero_pages = 0;
	stats->shared_bytes = 0;
	struct stats_walk w = {.mem = mem, .stats = stats};
	pthread_mutex_lock(&mem->pool->shared_lock);
	sept_walk(&mem->sept, 0, mem->pages, stats_page, &w);
	pthread_mutex_unlock(&mem->pool->shared_lock);
	stats->pss_bytes = (uint64_t)(w.pss + 0.5);
	stats->sept_bytes = sept_table_bytes(&mem->sept);
	pthread_mutex_unlock(&mem->lock);
}

static int range_page(void *ctx, uint64_t gfn, sept_entry *entry)
{
	struct guest_range_stats *r = ctx;
	(void)gfn;
	if (!sept_is_present(*entry))
		return 0;
	r->present++;
	r->shared += (*entry & SEPT_SHARED) != 0;
	r->zero += (*entry & SEPT_ZERO) != 0;
	return 0;
}

void guest_memory_range_stats(struct guest_memory *mem, uint64_t gpa, uint64_t len,
			      struct guest_range_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	if (!is_pool(mem) || !in_range(mem, gpa, len))
		return;
	pthread_mutex_lock(&mem->lock);
	sept_walk(&mem->sept, gpa / FRAME_SIZE, (gpa + len + FRAME_SIZE - 1) / FRAME_SIZE,
		  range_page, stats);
	pthread_mutex_unlock(&mem->lock);
}

enum guest_page_state guest_memory_page_state(struct guest_memory *mem, uint64_t gfn)
{
	pthread_mutex_lock(&mem->lock);
	sept_entry e = sept_lookup(&mem->sept, gfn);
	pthread_mutex_unlock(&mem->lock);
	return sept_is_present(e) ? GUEST_PAGE_PRESENT
	       : sept_is_swap(e)  ? GUEST_PAGE_SWAPPED
				  : GUEST_PAGE_UNTOUCHED;
}

/* --- for reclaim and the OOM killer --- */

struct reclaim *guest_memory_reclaim(struct guest_memory *mem)
{
	return mem->reclaim;
}

uint64_t guest_memory_rss(struct guest_memory *mem)
{
	return __atomic_load_n(&mem->sept.present_pages, __ATOMIC_RELAXED) -
	       __atomic_load_n(&mem->zero_pages, __ATOMIC_RELAXED);
}

uint64_t guest_memory_swap_pages(struct guest_memory *mem)
{
	return __atomic_load_n(&mem->sept.swap_entries, __ATOMIC_RELAXED);
}

const struct memory_limits *guest_memory_limits(struct guest_memory *mem)
{
	return &mem->limits;
}

struct memory_events *guest_memory_events(struct guest_memory *mem)
{
	return &mem->events;
}

void guest_memory_kill(struct guest_memory *mem, const char *message)
{
	if (__atomic_exchange_n(&mem->failed, true, __ATOMIC_ACQ_REL))
		return;
	if (mem->ops && mem->ops->fatal)
		mem->ops->fatal(mem->ops_ctx, message);
}

bool guest_memory_dead(struct guest_memory *mem)
{
	return __atomic_load_n(&mem->failed, __ATOMIC_ACQUIRE);
}

void guest_memory_walk_sept(struct guest_memory *mem, sept_walk_fn fn, void *ctx)
{
	pthread_mutex_lock(&mem->lock);
	sept_walk(&mem->sept, 0, mem->pages, fn, ctx);
	pthread_mutex_unlock(&mem->lock);
}
