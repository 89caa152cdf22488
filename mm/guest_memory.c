/*
 * guest_memory.c - one VM's guest-physical space, the address-space layer
 * (guest_memory.h): the realiser it uses, the entries it makes, failing
 * the VM, pausing it, and what it holds (statistics). Creation and tear-down
 * are the policy layer's (guest_life.c), as are faults (guest_fault.c).
 */
#include "guest_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest_memory_internal.h"
#include "reclaim_internal.h"
#include "rmap.h"

/* --- creation and tear-down --- */

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
	if (guest_is_pool(mem))
		realiser_wake(mem, 0, mem->pages);
}

enum guest_realiser guest_memory_realiser(const struct guest_memory *mem)
{
	return mem->realiser_kind;
}

int guest_memory_page_table(const struct guest_memory *mem, struct guest_page_table *out)
{
	if (!guest_is_pool(mem) || mem->realiser_kind != GUEST_REALISER_OWNED)
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
	if (!guest_is_pool(mem)) {
		memset(stats, 0, sizeof(*stats));
		stats->image_pages = mem->stats.image_pages;
		return;
	}
	pthread_mutex_lock(&mem->lock);
	*stats = mem->stats;
	stats->swap_pages = mem->sept.swap_entries;
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
	if (!guest_is_pool(mem) || !guest_in_range(mem, gpa, len))
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

int guest_memory_oom_score_adj(const struct guest_memory *mem)
{
	return mem->oom_score_adj;
}

struct memcg *guest_memory_memcg(const struct guest_memory *mem)
{
	return mem->memcg;
}

void guest_memory_fail(struct guest_memory *mem, const char *fmt, ...)
{
	if (__atomic_exchange_n(&mem->failed, true, __ATOMIC_ACQ_REL))
		return;
	char message[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (mem->ops && mem->ops->fatal)
		mem->ops->fatal(mem->ops_ctx, message);
}

int guest_memory_fail_map(struct guest_memory *mem, int error)
{
	if (error == -ENOMEM)
		guest_memory_fail(mem, "cannot map guest memory: out of host mappings "
				       "(vm.max_map_count reached?)");
	else
		guest_memory_fail(mem, "cannot map guest memory: %s",
				  strerror(error == -ENOTRECOVERABLE ? EIO : -error));
	return -ECANCELED;
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
