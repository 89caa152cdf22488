/*
 * guest_memory.c - guest RAM backings: plain anonymous memory, and the frame
 * pool with its software EPT and userfaultfd fault path (see guest_memory.h).
 */
#include "guest_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fault_thread.h"
#include "frame_pool.h"
#include "rmap.h"
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
	struct fault_thread *faults;
	int id;
	int uffd;
	unsigned fault_around_pages;
	unsigned fault_ahead_max_pages; /* 0 = no fault-ahead */
	uint64_t pinned_pages;
	void (*fatal)(void *ctx, const char *message);
	void *fatal_ctx;

	pthread_mutex_t lock; /* sEPT, host mappings, counters below */
	struct sept sept;
	bool failed;
	int fault_slot; /* in the fault thread, or -1 */
	/* sequential first-touch detection for fault-ahead */
	uint64_t next_sequential_gfn;
	unsigned ahead_window;
	struct guest_memory_stats stats;
};

static int is_pool(const struct guest_memory *mem)
{
	return mem->backing == GUEST_MEMORY_POOL;
}

/* --- host mappings --- */

static int uffd_register(struct guest_memory *mem, uint64_t gfn, uint64_t npages, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = {(uint64_t)(uintptr_t)(mem->host_base + gfn * FRAME_SIZE),
			  npages * FRAME_SIZE},
		.mode = mode,
	};
	return ioctl(mem->uffd, UFFDIO_REGISTER, &reg);
}

static int uffd_write_protect(struct guest_memory *mem, uint64_t gfn, uint64_t npages, int on)
{
	struct uffdio_writeprotect wp = {
		.range = {(uint64_t)(uintptr_t)(mem->host_base + gfn * FRAME_SIZE),
			  npages * FRAME_SIZE},
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	return ioctl(mem->uffd, UFFDIO_WRITEPROTECT, &wp);
}

static void uffd_wake(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
{
	struct uffdio_range range = {(uint64_t)(uintptr_t)(mem->host_base + gfn * FRAME_SIZE),
				     npages * FRAME_SIZE};
	ioctl(mem->uffd, UFFDIO_WAKE, &range);
}

/* Places frames [frame, frame+npages) at guest pages [gfn, gfn+npages): one
 * mmap of the pool memfd over the range, then re-registration with the uffd
 * in WP mode (mmap(MAP_FIXED) silently drops the registration). A frame that
 * is still a hole gets its host page when the guest first touches it, at its
 * own offset in the pool: that is the guest's ordinary page fault, not a
 * uffd event. `populate` prefaults the host page tables (used when the VMM
 * has just written the frames); `write_protect` arms uffd-wp so a write
 * faults to the VMM. Returns 0 or -errno. Called with mem->lock held. */
static int map_frames(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t npages,
		      int populate, int write_protect)
{
	int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
	void *addr = mem->host_base + gfn * FRAME_SIZE;
	if (mmap(addr, npages * FRAME_SIZE, PROT_READ | PROT_WRITE, flags, mem->pool->memfd,
		 (off_t)(frame * FRAME_SIZE)) == MAP_FAILED)
		return -errno;
	mem->stats.maps++;
	if (uffd_register(mem, gfn, npages, UFFDIO_REGISTER_MODE_WP))
		return -errno;
	if (write_protect && uffd_write_protect(mem, gfn, npages, 1))
		return -errno;
	return 0;
}

static void report_fatal(struct guest_memory *mem, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report_fatal(struct guest_memory *mem, const char *fmt, ...)
{
	char message[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (mem->failed)
		return;
	mem->failed = true;
	if (mem->fatal)
		mem->fatal(mem->fatal_ctx, message);
}

static void report_map_error(struct guest_memory *mem, int error)
{
	if (error == -ENOMEM)
		report_fatal(mem, "cannot map guest memory: out of host mappings "
				  "(vm.max_map_count reached?)");
	else
		report_fatal(mem, "cannot map guest memory: %s", strerror(-error));
}

/* --- first touch --- */

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
 * on the guest's first touch. Returns the number of pages mapped, 0 if the
 * pool is exhausted, or -errno. mem->lock held. */
static int64_t populate(struct guest_memory *mem, uint64_t gfn, unsigned block_pages, int prefault)
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
		int error = map_frames(mem, base, (uint64_t)frame, npages, prefault, 0);
		if (error) {
			frame_pool_free(mem->pool, (uint64_t)frame, npages);
			return error;
		}
		uint64_t flags = SEPT_WRITABLE | (npages == HUGE_PAGES ? SEPT_HUGE : 0);
		for (uint64_t i = 0; i < npages; i++) {
			uint64_t page_flags = flags;
			if (base + i < mem->pinned_pages) {
				page_flags |= SEPT_PINNED;
				frame_set_flag(frame_pool_frame(mem->pool, (uint64_t)frame + i),
					       FRAME_FLAG_PINNED);
				mem->stats.pinned_pages++;
			}
			frame_set_private(frame_pool_frame(mem->pool, (uint64_t)frame + i),
					  (uint16_t)mem->id, base + i);
			if (sept_set(&mem->sept, base + i,
				     sept_make_present((uint64_t)frame + i, page_flags))) {
				return -ENOMEM;
			}
		}
		return (int64_t)npages;
	}
	return 0;
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
	if (base == mem->next_sequential_gfn && base != 0) {
		unsigned w = mem->ahead_window ? mem->ahead_window * 2 : mem->fault_around_pages;
		if (w < ahead_block_pages(mem))
			w = ahead_block_pages(mem);
		mem->ahead_window = w > mem->fault_ahead_max_pages ? mem->fault_ahead_max_pages : w;
	} else {
		mem->ahead_window = 0;
	}
	mem->next_sequential_gfn = base + npages;
}

/* After waking the vCPU, maps and populates the untouched pages of
 * [start, end) in fault-ahead blocks, taking the lock per block so the guest
 * can run behind it. Runs while the vCPU may be running: it only ever
 * replaces placeholders of never-touched pages (see guest_memory.h), and
 * stops at the first touched page, at the end of RAM, or when the pool is
 * below its high watermark (speculation must not cause pressure). */
static void fault_ahead(struct guest_memory *mem, uint64_t start, uint64_t end)
{
	if (end > mem->pages)
		end = mem->pages;
	uint64_t gfn = start;
	while (gfn < end) {
		if (buddy_free_pages_estimate(&mem->pool->buddy) < mem->pool->buddy.wmark.high)
			break;
		pthread_mutex_lock(&mem->lock);
		int64_t mapped = 0;
		if (!mem->failed && !sept_lookup(&mem->sept, gfn))
			mapped = populate(mem, gfn, ahead_block_pages(mem), 1);
		if (mapped > 0) {
			mem->stats.fault_ahead_pages += (uint64_t)mapped;
			mem->next_sequential_gfn =
				(gfn & ~((uint64_t)mapped - 1)) + (uint64_t)mapped;
		}
		pthread_mutex_unlock(&mem->lock);
		if (mapped <= 0)
			break;
		gfn = (gfn & ~((uint64_t)mapped - 1)) + (uint64_t)mapped;
	}
}

/* --- copy-on-write --- */

/* Drops (mem, gfn) from a shared frame's mappers; frees the frame when the
 * last mapper is gone. */
static void release_shared(struct guest_memory *mem, uint64_t gfn, sept_entry e)
{
	if (e & SEPT_ZERO)
		return; /* the zero run is static */
	struct frame_pool *pool = mem->pool;
	uint64_t frame = sept_frame(e);
	pthread_mutex_lock(&pool->shared_lock);
	struct frame *f = frame_pool_frame(pool, frame);
	if (frame_state(f) == FRAME_SHARED) {
		struct rmap_shared *shared = frame_shared(f);
		rmap_shared_remove(shared, (uint16_t)mem->id, gfn);
		if (shared->count == 0) {
			shared->frame = UINT64_MAX;
			frame_set(f, FRAME_ALLOCATED, 0);
			frame_pool_free(pool, frame, 1);
			if (shared->refs == 0)
				rmap_shared_destroy(shared);
		}
	}
	pthread_mutex_unlock(&pool->shared_lock);
}

/* A write to a write-protected shared page: copy it into a private frame.
 * Returns 0, or -ENOMEM when the pool is exhausted, or -errno. */
static int copy_on_write(struct guest_memory *mem, uint64_t gfn, sept_entry e)
{
	int64_t frame = frame_pool_alloc(mem->pool, 0);
	if (frame < 0)
		return -ENOMEM;
	if (!(e & SEPT_ZERO))
		memcpy(frame_pool_address(mem->pool, (uint64_t)frame),
		       frame_pool_address(mem->pool, sept_frame(e)), FRAME_SIZE);
	int error = map_frames(mem, gfn, (uint64_t)frame, 1, 1, 0);
	if (error) {
		frame_pool_free(mem->pool, (uint64_t)frame, 1);
		return error;
	}
	frame_set_private(frame_pool_frame(mem->pool, (uint64_t)frame), (uint16_t)mem->id, gfn);
	sept_set(&mem->sept, gfn,
		 sept_make_present((uint64_t)frame, SEPT_WRITABLE | SEPT_DIRTY | SEPT_ACCESSED));
	release_shared(mem, gfn, e);
	mem->stats.cow_pages++;
	return 0;
}

void guest_memory_handle_fault(struct guest_memory *mem, const struct uffd_msg *msg)
{
	if (msg->event != UFFD_EVENT_PAGEFAULT)
		return;
	uint64_t address = msg->arg.pagefault.address;
	uint64_t base = (uint64_t)(uintptr_t)mem->host_base;
	if (address < base || address >= base + mem->bytes)
		return;
	uint64_t gfn = (address - base) / FRAME_SIZE;
	int wp = (msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;

	pthread_mutex_lock(&mem->lock);
	if (mem->failed) {
		/* The VM is being stopped; leave its vCPU blocked until then. */
		pthread_mutex_unlock(&mem->lock);
		return;
	}
	sept_entry e = sept_lookup(&mem->sept, gfn);
	uint64_t wake_gfn = gfn, wake_pages = 1;
	if (wp) {
		mem->stats.wp_faults++;
		if (sept_is_present(e) && (e & (SEPT_SHARED | SEPT_ZERO))) {
			int error = copy_on_write(mem, gfn, e);
			if (error == -ENOMEM)
				report_fatal(mem, "out of memory (pool exhausted)");
			else if (error)
				report_map_error(mem, error);
		} else {
			mem->stats.spurious_faults++;
		}
	} else if (e == 0) {
		int64_t mapped = populate(mem, gfn, mem->fault_around_pages, 0);
		if (mapped > 0) {
			mem->stats.faults++;
			mem->stats.fault_around_pages += (uint64_t)mapped - 1;
			wake_gfn = gfn & ~((uint64_t)mapped - 1);
			wake_pages = (uint64_t)mapped;
			note_first_touch(mem, wake_gfn, wake_pages);
		} else if (mapped == 0) {
			report_fatal(mem, "out of memory (pool exhausted)");
		} else {
			report_map_error(mem, (int)mapped);
		}
	} else {
		mem->stats.spurious_faults++;
	}
	/* A first-touch fault inside the sequential stream (new, or one that
	 * fault-ahead resolved meanwhile) moves the fault-ahead frontier to one
	 * window past the guest's position. */
	uint64_t ahead_until = 0;
	if (!wp && mem->ahead_window && gfn < mem->next_sequential_gfn &&
	    gfn + mem->ahead_window >= mem->next_sequential_gfn)
		ahead_until = wake_gfn + wake_pages + mem->ahead_window;
	bool failed = mem->failed;
	uint64_t ahead_start = mem->next_sequential_gfn;
	pthread_mutex_unlock(&mem->lock);
	if (!failed)
		uffd_wake(mem, wake_gfn, wake_pages);
	if (ahead_until > ahead_start && !failed)
		fault_ahead(mem, ahead_start, ahead_until);
}

/* --- creation and tear-down --- */

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
	mem->fatal = cfg->fatal;
	mem->fatal_ctx = cfg->fatal_ctx;
	if (mem->fault_around_pages > HUGE_PAGES ||
	    (mem->fault_around_pages & (mem->fault_around_pages - 1))) {
		snprintf(err, errlen, "fault-around must be a power of two of at most 512 pages");
		return -1;
	}
	if (sept_init(&mem->sept)) {
		snprintf(err, errlen, "cannot allocate the software EPT");
		return -1;
	}
	mem->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (mem->uffd < 0) {
		snprintf(err, errlen,
			 "userfaultfd is not available: %s (as root, or set "
			 "vm.unprivileged_userfaultfd=1)",
			 strerror(errno));
		return -1;
	}
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_NEEDED_FEATURES};
	if (ioctl(mem->uffd, UFFDIO_API, &api)) {
		snprintf(err, errlen,
			 "userfaultfd lacks shmem missing and write-protect faults: %s",
			 strerror(errno));
		return -1;
	}
	if (uffd_register(mem, 0, mem->pages, UFFD_PLACEHOLDER_MODES)) {
		snprintf(err, errlen, "cannot register guest memory with userfaultfd: %s",
			 strerror(errno));
		return -1;
	}
	mem->id = frame_pool_register_space(mem->pool, mem);
	if (mem->id < 0) {
		snprintf(err, errlen, "too many VMs for one frame pool (at most %d)",
			 FRAME_POOL_MAX_SPACES - 1);
		return -1;
	}
	mem->fault_slot = fault_thread_add(mem->faults, mem);
	if (mem->fault_slot < 0) {
		snprintf(err, errlen, "cannot watch the userfaultfd: %s", strerror(errno));
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
	mem->id = -1;
	mem->fault_slot = -1;
	pthread_mutex_init(&mem->lock, NULL);
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
	if (is_pool(mem) && create_pool_backing(mem, cfg, err, errlen)) {
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
		if (!sept_is_present(e))
			continue;
		if (e & (SEPT_SHARED | SEPT_ZERO)) {
			release_shared(mem, gfn, e);
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
	if (is_pool(mem) && mem->pool) {
		/* Unmap first: once the guest range is gone, no access can reach
		 * a frame while it is returned to the pool. */
		if (mem->reserved_base)
			munmap(mem->reserved_base, mem->reserved_bytes);
		mem->reserved_base = NULL;
		release_frames(mem);
		sept_destroy(&mem->sept);
		if (mem->id > 0)
			frame_pool_unregister_space(mem->pool, mem->id);
	}
	if (mem->uffd >= 0)
		close(mem->uffd);
	if (mem->reserved_base)
		munmap(mem->reserved_base, mem->reserved_bytes);
	pthread_mutex_destroy(&mem->lock);
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

/* --- set-up writes and device reads --- */

static int in_range(const struct guest_memory *mem, uint64_t gpa, size_t len)
{
	return gpa <= mem->bytes && len <= mem->bytes - gpa;
}

/* Pool: copies between guest memory and a buffer, page by page through the
 * sEPT and the pool mapping. A write allocates untouched pages; a read of an
 * untouched page reads zeroes. */
static int pool_access(struct guest_memory *mem, uint64_t gpa, void *buf, const void *src,
		       size_t len)
{
	int rc = 0;
	pthread_mutex_lock(&mem->lock);
	while (len) {
		uint64_t gfn = gpa / FRAME_SIZE, offset = gpa % FRAME_SIZE;
		size_t chunk = FRAME_SIZE - offset < len ? FRAME_SIZE - offset : len;
		sept_entry e = sept_lookup(&mem->sept, gfn);
		if (src && !sept_is_present(e)) {
			int64_t mapped = populate(mem, gfn, mem->fault_around_pages, 0);
			if (mapped <= 0) {
				rc = -1;
				break;
			}
			e = sept_lookup(&mem->sept, gfn);
		}
		if (src && (e & (SEPT_SHARED | SEPT_ZERO))) {
			if (copy_on_write(mem, gfn, e)) {
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
		else
			memset(buf, 0, chunk);
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

/* --- statistics --- */

void guest_memory_get_stats(struct guest_memory *mem, struct guest_memory_stats *stats)
{
	if (!is_pool(mem)) {
		memset(stats, 0, sizeof(*stats));
		return;
	}
	pthread_mutex_lock(&mem->lock);
	*stats = mem->stats;
	stats->rss_pages = mem->sept.present_pages;
	stats->sept_bytes = sept_table_bytes(&mem->sept);
	pthread_mutex_unlock(&mem->lock);
}

uint64_t guest_memory_present_pages(struct guest_memory *mem, uint64_t gpa, uint64_t len)
{
	if (!is_pool(mem) || !in_range(mem, gpa, len))
		return 0;
	uint64_t n = 0;
	pthread_mutex_lock(&mem->lock);
	for (uint64_t gfn = gpa / FRAME_SIZE; gfn < (gpa + len + FRAME_SIZE - 1) / FRAME_SIZE;
	     gfn++)
		n += sept_is_present(sept_lookup(&mem->sept, gfn));
	pthread_mutex_unlock(&mem->lock);
	return n;
}
