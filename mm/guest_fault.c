/*
 * guest_fault.c - the fault policy of pool-backed guest memory (see
 * guest_memory.h): what a fault is (first touch, copy-on-write, swap-in),
 * making room for it (reclaim, the OOM killer), fault-ahead, memory.high
 * throttling; for uffd faults on the fault thread, for CPU faults of the
 * owned page table on the vCPU thread, and for the VMM's own reads and
 * writes of guest memory on the calling thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "guest_memory_internal.h"
#include "reclaim_internal.h"
#include "rmap.h"

/* A VM's fault-policy state. */
struct guest_fault_state {
	/* sequential first-touch detection for fault-ahead */
	uint64_t next_sequential_gfn;
	unsigned ahead_window;
	/* owned realiser: the last CPU fault, to tell one that does not go
	 * away */
	uint64_t cpu_fault_gfn;
	sept_entry cpu_fault_entry;
	unsigned cpu_fault_repeats;
	/* the fault being served waits for memory (memory.pressure): until
	 * it is done, also across "retry later" */
	bool stalled;
};

/* memory.pressure: the VM's fault waits for memory (reclaim, an OOM kill
 * freeing some, a swap-in) from here until the fault is done. */
static void stall_begin(struct guest_memory *mem)
{
	if (!mem->fault_state->stalled) {
		mem->fault_state->stalled = true;
		memcg_stall(mem->memcg, 1);
	}
}

static void stall_end(struct guest_memory *mem)
{
	if (mem->fault_state->stalled) {
		mem->fault_state->stalled = false;
		memcg_stall(mem->memcg, -1);
	}
}

struct guest_fault_state *guest_fault_state_create(void)
{
	return calloc(1, sizeof(struct guest_fault_state));
}

/* --- fault-ahead --- */

/* Fault-ahead maps in blocks of at least 64 KiB, even with fault-around
 * off: one mmap per page would cost more than it saves. */
#define FAULT_AHEAD_MIN_BLOCK 16u

static unsigned ahead_block_pages(const struct guest_memory *mem)
{
	unsigned block = mem->fault_around_pages > FAULT_AHEAD_MIN_BLOCK ? mem->fault_around_pages
									 : FAULT_AHEAD_MIN_BLOCK;
	return block < mem->fault_ahead_max_pages ? block : mem->fault_ahead_max_pages;
}

/* Sequential first touches grow the fault-ahead window (doubling from one
 * fault-around block up to fault_ahead_max_pages, like Linux readahead); any
 * other first touch resets it. mem->lock held. */
static void note_first_touch(struct guest_memory *mem, uint64_t base, uint64_t npages)
{
	if (!mem->fault_ahead_max_pages)
		return;
	if (base == mem->fault_state->next_sequential_gfn && base != 0) {
		unsigned w = mem->fault_state->ahead_window ? mem->fault_state->ahead_window * 2
							    : mem->fault_around_pages;
		if (w < ahead_block_pages(mem))
			w = ahead_block_pages(mem);
		mem->fault_state->ahead_window =
			w > mem->fault_ahead_max_pages ? mem->fault_ahead_max_pages : w;
	} else {
		mem->fault_state->ahead_window = 0;
	}
	mem->fault_state->next_sequential_gfn = base + npages;
}

/* After waking the vCPU, maps and populates the untouched pages of
 * [start, end) in fault-ahead blocks, taking the lock per block so the guest
 * can run behind it. Runs while the vCPU may be running: it only ever
 * replaces placeholders of never-touched pages (see guest_memory.h), and
 * stops at the first touched page, at the end of RAM, when the pool is below
 * its high watermark, or at the VM's memory.max (speculation must not cause
 * pressure). */
static void fault_ahead(struct guest_memory *mem, uint64_t start, uint64_t end)
{
	if (end > mem->pages)
		end = mem->pages;
	uint64_t gfn = start;
	while (gfn < end) {
		if (buddy_free_pages_estimate(&mem->pool->buddy) < mem->pool->buddy.wmark.high)
			break;
		pthread_mutex_lock(&mem->lock);
		if (guest_charge(mem, ahead_block_pages(mem))) {
			pthread_mutex_unlock(&mem->lock);
			break; /* speculation must not push a VM over memory.max */
		}
		int64_t mapped = 0;
		/* Populated now, so the guest finds the host pages there; but
		 * the write-protect access log learns of the guest's first
		 * touch from the frame being allocated by it (access_log.c). */
		int prefault = mem->access_log != GUEST_ACCESS_LOG_WRITE_PROTECT;
		if (!guest_memory_dead(mem) && !sept_lookup(&mem->sept, gfn))
			mapped = guest_populate(mem, gfn, ahead_block_pages(mem), prefault);
		guest_charge_settle(mem);
		if (mapped > 0) {
			mem->stats.fault_ahead_pages += (uint64_t)mapped;
			mem->fault_state->next_sequential_gfn =
				(gfn & ~((uint64_t)mapped - 1)) + (uint64_t)mapped;
		}
		pthread_mutex_unlock(&mem->lock);
		if (mapped <= 0)
			break;
		gfn = (gfn & ~((uint64_t)mapped - 1)) + (uint64_t)mapped;
	}
}

/* One attempt at serving a fault, mem->lock held. Returns 0 when done
 * (wake range set), -ENOMEM when no frame could be had (nothing changed;
 * *at_max says memory.max was the reason), or another -errno when the VM
 * has been failed (-ECANCELED: reported). */
static int serve(struct guest_memory *mem, uint64_t gfn, int wp, uint64_t *wake_gfn,
		 uint64_t *wake_pages, int *at_max)
{
	sept_entry e = sept_lookup(&mem->sept, gfn);
	*wake_gfn = gfn;
	*wake_pages = 1;
	*at_max = 0;
	if (wp) {
		mem->stats.wp_faults++;
		if (access_log_write_fault(mem, gfn))
			return 0;
		if (!sept_is_present(e) || !(e & (SEPT_SHARED | SEPT_ZERO))) {
			mem->stats.spurious_faults++;
			return 0;
		}
		/* Copying a zero-run page adds a resident page. */
		if ((e & SEPT_ZERO) && guest_charge(mem, 1)) {
			*at_max = 1;
			return -ENOMEM;
		}
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int error = guest_copy_on_write(mem, gfn, e);
		if (!error) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			latency_histogram_add(&mem->stats.cow_latency,
					      (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000ll +
							 (t1.tv_nsec - t0.tv_nsec)));
			access_log_touched(mem, gfn);
		}
		return error;
	}
	if (sept_is_swap(e)) {
		if (guest_over_max(mem, 1)) {
			*at_max = 1;
			return -ENOMEM;
		}
		stall_begin(mem);
		int error = guest_swap_in(mem, gfn, e);
		if (!error)
			access_log_touched(mem, gfn);
		else if (error == -ENOMEM)
			*at_max = guest_over_max(mem, 1) != NULL;
		return error;
	}
	if (e != 0) {
		mem->stats.spurious_faults++;
		return 0;
	}
	unsigned block = mem->fault_around_pages;
	while (guest_charge(mem, block)) {
		if (block == 1) {
			*at_max = 1;
			return -ENOMEM;
		}
		block /= 2;
	}
	int64_t mapped = guest_populate(mem, gfn, block, 0);
	if (mapped == 0)
		return -ENOMEM;
	if (mapped < 0)
		return guest_memory_fail_map(mem, (int)mapped);
	access_log_touched(mem, gfn);
	mem->stats.faults++;
	mem->stats.fault_around_pages += (uint64_t)mapped - 1;
	*wake_gfn = gfn & ~((uint64_t)mapped - 1);
	*wake_pages = (uint64_t)mapped;
	note_first_touch(mem, *wake_gfn, *wake_pages);
	return 0;
}

/* As Linux's try_charge(): a fault retries as long as reclaim frees
 * something (others under the same limit may take what it freed before it
 * retries), and the OOM killer runs once reclaim frees nothing. The bound
 * only stops a livelock. */
#define RECLAIM_RETRIES 256

/* No frame for the fault: reclaim, or kill. Returns 1 to try again now, 0
 * when the fault is done with (the VM ended), 2 to retry it later. */
static int make_room(struct guest_memory *mem, int at_max, int attempt)
{
	struct reclaim *r = mem->reclaim;
	if (!r) {
		guest_memory_fail(mem, "out of memory (pool exhausted)");
		return 0;
	}
	/* The cgroup whose memory.max stopped the fault (the VM's own, or a
	 * group above it), as Linux's try_charge finds mem_over_limit. */
	struct memcg *over = at_max ? guest_over_max(mem, 1) : NULL;
	if (at_max && !over)
		return 1; /* the usage fell meanwhile */
	if (over) {
		memcg_event(over, MEMCG_MAX);
		if (attempt < RECLAIM_RETRIES && reclaim_memcg(r, over, 64) > 0)
			return 1;
		/* A group's OOM: a victim among its VMs. At the VM's own limit
		 * the VM is the only one there is. */
		if (over != mem->memcg && reclaim_oom(r, over, mem))
			return 2;
		if (over == mem->memcg) {
			memcg_event(over, MEMCG_OOM);
			memcg_event(over, MEMCG_OOM_KILL);
		}
		char message[240], path[128] = "";
		if (over != mem->memcg)
			memcg_path(over, path, sizeof(path));
		snprintf(message, sizeof(message),
			 "out of memory: memory.max%s%s (%llu pages) reached and nothing left to "
			 "reclaim%s",
			 *path ? " of cgroup " : "", path,
			 (unsigned long long)page_counter_max(&over->counter),
			 *path ? " or kill" : "");
		guest_memory_fail(mem, "%s", message);
		return 0;
	}
	if (attempt < RECLAIM_RETRIES && reclaim_direct(r, mem, 64) > 0)
		return 1;
	if (reclaim_oom(r, NULL, mem))
		return 2;
	guest_memory_fail(mem, "out of memory (pool exhausted, nothing to reclaim or kill)");
	return 0;
}

/* memory.high: a VM under a cgroup above it is throttled by the largest
 * excess on its path, every such cgroup counts a `high` event, and kswapd
 * trims them. */
static void throttle_if_high(struct guest_memory *mem)
{
	uint64_t excess = memcg_high_excess(mem->memcg, NULL); /* atomic reads */
	if (!excess)
		return;
	for (struct memcg *cg = mem->memcg; cg; cg = cg->parent) {
		uint64_t high = page_counter_high(&cg->counter);
		if (high != PAGE_COUNTER_MAX && memcg_usage(cg) > high)
			memcg_event(cg, MEMCG_HIGH);
	}
	if (mem->ops && mem->ops->throttle) {
		uint64_t ns = excess * 20000ull; /* 20 us per page over */
		mem->ops->throttle(mem->ops_ctx, ns < 50000000ull ? ns : 50000000ull);
	}
	if (mem->reclaim)
		reclaim_wake(mem->reclaim);
}

/* Wakes the vCPU blocked on [gfn, gfn + n), unless the VM is paused: then
 * the VMM owes the wake and gives it when the pause ends (guest_memory.h). */
static void wake_vcpu(struct guest_memory *mem, uint64_t gfn, uint64_t n)
{
	if (mem->ops && mem->ops->may_wake && !mem->ops->may_wake(mem->ops_ctx))
		return;
	realiser_wake(mem, gfn, n);
}

/* The VM failed: the realiser makes sure its vCPU touches no pool frame
 * from now on (guest_memory.h), and the vCPU is woken to stop. */
static int abandon(struct guest_memory *mem)
{
	mem->realiser->abandon(mem);
	wake_vcpu(mem, 0, mem->pages);
	return 0;
}

/* Serves a fault on gfn (wp: a write to a write-protected page) until it
 * is done, reclaiming or killing for room. Returns 0 when served (the pages
 * to wake in *wake_gfn, *wake_pages; a fault-ahead window in *ahead_start,
 * *ahead_until), 1 when it must be retried later (an OOM kill is freeing
 * memory), or -1 when the VM has ended (reported). */
static int serve_fault(struct guest_memory *mem, uint64_t gfn, int wp, uint64_t *wake_gfn,
		       uint64_t *wake_pages, uint64_t *ahead_start, uint64_t *ahead_until)
{
	/* Below the min watermark an allocation reclaims first (direct
	 * reclaim), as Linux's slow path does. */
	struct buddy *buddy = &mem->pool->buddy;
	if (mem->reclaim && reclaim_has_swap(mem->reclaim) &&
	    buddy_free_pages_estimate(buddy) < buddy->wmark.min)
		reclaim_direct(mem->reclaim, mem, 64);

	*ahead_start = *ahead_until = 0;
	for (int attempt = 0;; attempt++) {
		pthread_mutex_lock(&mem->lock);
		if (guest_memory_dead(mem)) {
			pthread_mutex_unlock(&mem->lock);
			stall_end(mem);
			return -1;
		}
		int at_max;
		int rc = serve(mem, gfn, wp, wake_gfn, wake_pages, &at_max);
		guest_charge_settle(mem);
		/* A first-touch fault inside the sequential stream (new, or one
		 * that fault-ahead resolved meanwhile) moves the fault-ahead
		 * frontier to one window past the guest's position. */
		if (rc == 0 && !wp && mem->fault_state->ahead_window &&
		    gfn < mem->fault_state->next_sequential_gfn &&
		    gfn + mem->fault_state->ahead_window >= mem->fault_state->next_sequential_gfn)
			*ahead_until = *wake_gfn + *wake_pages + mem->fault_state->ahead_window;
		*ahead_start = mem->fault_state->next_sequential_gfn;
		pthread_mutex_unlock(&mem->lock);
		if (rc != -ENOMEM) {
			stall_end(mem);
			if (!rc)
				return guest_memory_dead(mem) ? -1 : 0;
			guest_memory_fail(mem, "cannot serve a fault at gpa 0x%llx: %s",
					  (unsigned long long)(gfn * FRAME_SIZE), strerror(-rc));
			return -1;
		}
		stall_begin(mem);
		int next = make_room(mem, at_max, attempt);
		if (next == 0) {
			stall_end(mem);
			return -1; /* the VM ended */
		}
		if (next == 2)
			return 1; /* still stalled: the retry ends it */
	}
}

int guest_memory_handle_fault(struct guest_memory *mem, const struct uffd_msg *msg)
{
	if (msg->event != UFFD_EVENT_PAGEFAULT)
		return 0;
	if (mem->ops && mem->ops->fault_begin)
		mem->ops->fault_begin(mem->ops_ctx);
	uint64_t address = msg->arg.pagefault.address;
	uint64_t base = (uint64_t)(uintptr_t)mem->host_base;
	if (address < base || address >= base + mem->bytes)
		return 0;
	uint64_t gfn = (address - base) / FRAME_SIZE;
	int wp = (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
	uint64_t wake_gfn, wake_pages, ahead_start, ahead_until;
	int rc = serve_fault(mem, gfn, wp, &wake_gfn, &wake_pages, &ahead_start, &ahead_until);
	if (rc < 0)
		return abandon(mem);
	if (rc > 0)
		return 1;
	wake_vcpu(mem, wake_gfn, wake_pages);
	throttle_if_high(mem);
	if (ahead_until > ahead_start)
		fault_ahead(mem, ahead_start, ahead_until);
	return 0;
}

/* A #PF of the vCPU walking the sEPT (owned realiser). The entry says what
 * it is: not present, a first touch or a swap-in; present and read-only, a
 * write to a shared or zero-run page; present and writable, a translation
 * the TLB still held from before a change (flushed: run it again). Served
 * on the vCPU thread, whose instruction waits anyway, so no wake-up and no
 * fault-ahead (a fault costs well under a microsecond here, not a uffd
 * round trip). An entry that faults again and again unchanged is a bug;
 * the VM is ended rather than spun. */
enum guest_cpu_fault guest_memory_cpu_fault(struct guest_memory *mem, uint64_t gpa)
{
	if (gpa >= mem->bytes)
		return GUEST_CPU_FAULT_OUTSIDE;
	uint64_t gfn = gpa / FRAME_SIZE;
	if (guest_cpu_access(mem, gfn) != GUEST_CPU_USER)
		return GUEST_CPU_FAULT_GUEST;
	pthread_mutex_lock(&mem->lock);
	sept_entry e = sept_lookup(&mem->sept, gfn);
	mem->stats.cpu_faults++;
	int repeated =
		gfn == mem->fault_state->cpu_fault_gfn && e == mem->fault_state->cpu_fault_entry;
	mem->fault_state->cpu_fault_gfn = gfn;
	mem->fault_state->cpu_fault_entry = e;
	if (repeated && ++mem->fault_state->cpu_fault_repeats > 2) {
		pthread_mutex_unlock(&mem->lock);
		guest_memory_fail(mem,
				  "the CPU faults again and again at gpa 0x%llx (entry 0x%llx)",
				  (unsigned long long)gpa, (unsigned long long)e);
		return GUEST_CPU_FAULT_ENDED;
	}
	if (!repeated)
		mem->fault_state->cpu_fault_repeats = 0;
	if (sept_is_present(e) && (e & SEPT_WRITABLE)) {
		mem->stats.spurious_faults++;
		realiser_flush(mem);
		pthread_mutex_unlock(&mem->lock);
		return GUEST_CPU_FAULT_RETRY;
	}
	pthread_mutex_unlock(&mem->lock);
	int wp = sept_is_present(e);
	uint64_t wake_gfn, wake_pages, ahead_start, ahead_until;
	for (;;) {
		int rc = serve_fault(mem, gfn, wp, &wake_gfn, &wake_pages, &ahead_start,
				     &ahead_until);
		if (rc < 0)
			return GUEST_CPU_FAULT_ENDED;
		if (rc == 0)
			break;
		struct timespec ms = {0, 1000000}; /* an OOM victim is going away */
		nanosleep(&ms, NULL);
	}
	throttle_if_high(mem);
	return GUEST_CPU_FAULT_RETRY;
}

/* --- set-up writes and device reads --- */

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
			guest_charge_settle(mem);
			if (error == -ENOMEM && !at_max)
				at_max = guest_over_max(mem, 1) != NULL;
			if (error == -ENOMEM && swap_tries++ < 8) {
				/* memory.max holds for the VMM's reads too. (On the
				 * vCPU's own thread, pausing its VM returns at once.) */
				pthread_mutex_unlock(&mem->lock);
				struct memcg *over = at_max ? guest_over_max(mem, 1) : NULL;
				size_t freed = over ? reclaim_memcg(mem->reclaim, over, 64)
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
	if (!guest_in_range(mem, gpa, len))
		return -1;
	if (guest_is_pool(mem))
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
	if (!guest_in_range(mem, gpa, len))
		return -1;
	if (guest_is_pool(mem))
		return pool_access(mem, gpa, dst, NULL, len);
	memcpy(dst, mem->host_base + gpa, len);
	return 0;
}
