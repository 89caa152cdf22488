/*
 * guest_life.c - a VM's guest memory from creation to tear-down: the policy
 * layer's assembly of one VM. Creation builds the address space (the sEPT,
 * from the realiser's table source; the realiser; the access log; guards for
 * pages the CPU must never reach) and hooks it to the policies that serve it:
 * the pool's registry (reclaim, the OOM killer and KSM find VMs there) and,
 * with host mappings, the fault thread. Tear-down undoes it in the order
 * that keeps every frame unreachable before it is freed: off the fault
 * thread and the registry, host range unmapped, swap slots and shared frames
 * let go, private frames and tables freed, and only then is an OOM victim's
 * memory counted as back.
 */
#include "guest_memory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fault_thread.h"
#include "guest_memory_internal.h"
#include "reclaim_internal.h"

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
	mem->registry = cfg->registry;
	mem->faults = cfg->faults;
	mem->fault_around_pages = cfg->fault_around_pages ? cfg->fault_around_pages : 1;
	mem->fault_ahead_max_pages = cfg->fault_ahead_pages;
	if (mem->fault_ahead_max_pages && mem->fault_ahead_max_pages < mem->fault_around_pages)
		mem->fault_ahead_max_pages = mem->fault_around_pages;
	mem->pinned_pages = cfg->pinned_bytes / FRAME_SIZE;
	mem->ops = cfg->ops;
	mem->ops_ctx = cfg->ops_ctx;
	mem->reclaim = cfg->reclaim;
	mem->oom_score_adj = cfg->limits.oom_score_adj;
	mem->memcg = memcg_create(cfg->memcg, "vm", cfg->limits.high_pages, cfg->limits.max_pages);
	mem->access_log = cfg->access_log;
	mem->fault_state = guest_fault_state_create();
	mem->swap_state = guest_swap_state_create();
	if (!mem->fault_state || !mem->swap_state || !mem->memcg) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
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
	mem->memcg->vm = true;
	mem->sept.counter = &mem->memcg->counter;
	mem->sept.swap_counter = &mem->memcg->swap;
	if (mem->realiser->init(mem, err, errlen) || guard_no_access(mem, err, errlen))
		return -1;
	if (mem->uffd >= 0) {
		mem->fault_slot = fault_thread_add(mem->faults, mem);
		if (mem->fault_slot < 0) {
			snprintf(err, errlen, "cannot watch the userfaultfd: %s", strerror(errno));
			return -1;
		}
	}
	if (!mem->registry) {
		snprintf(err, errlen, "pool-backed guest memory needs a registry");
		return -1;
	}
	mem->id = guest_registry_add(mem->registry, mem);
	if (mem->id < 0) {
		snprintf(err, errlen, "too many VMs (at most %d)", GUEST_REGISTRY_MAX - 1);
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
	if (guest_is_pool(mem) && cfg->realiser == GUEST_REALISER_OWNED) {
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
	    (guest_is_pool(mem) && create_pool_backing(mem, cfg, err, errlen)) ||
	    (!guest_is_pool(mem) && memory_image_load_all(mem, err, errlen))) {
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
	if (mem->fault_slot > 0)
		fault_thread_remove(mem->faults, mem->fault_slot);
	if (guest_is_pool(mem) && mem->realiser)
		mem->realiser->exit(mem);
	if (guest_is_pool(mem) && mem->pool) {
		/* Unregister first: reclaim and the OOM killer find VMs through
		 * the registry, and unregistering waits for a pass using it. */
		if (mem->id > 0)
			guest_registry_remove(mem->registry, mem->id);
		/* Unmap: once the guest range is gone, no access can reach a
		 * frame while it is returned to the pool. */
		if (mem->reserved_base)
			munmap(mem->reserved_base, mem->reserved_bytes);
		mem->reserved_base = NULL;
		release_frames(mem);
		sept_destroy(&mem->sept);
		/* Uncharges the VM's groups by what it held. */
		memcg_destroy(mem->memcg);
		mem->memcg = NULL;
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
	free(mem->fault_state);
	free(mem->swap_state);
	free(mem);
}
