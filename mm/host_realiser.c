/*
 * host_realiser.c - the host-mapping realiser (mm/realiser.h): guest RAM is
 * one host virtual range; pool frames are placed in it with one mmap of the
 * pool memfd per run of frames, then re-registered with the VM's uffd
 * (mmap(MAP_FIXED) drops the registration); untouched and evicted pages are
 * anonymous placeholders registered MISSING|WP, served by the fault thread.
 * What the realisation of each page state is, and why, is in guest_memory.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guest_memory_internal.h"
#include "io/fault_inject.h"

static int uffd_register(struct guest_memory *mem, uint64_t gfn, uint64_t npages, uint64_t mode)
{
	if (fault_inject_hit(FAULT_UFFD_REGISTER)) {
		errno = ENOMEM;
		return -1;
	}
	struct uffdio_register reg = {
		.range = {(uint64_t)(uintptr_t)(mem->host_base + gfn * FRAME_SIZE),
			  npages * FRAME_SIZE},
		.mode = mode,
	};
	return ioctl(mem->uffd, UFFDIO_REGISTER, &reg);
}

/* on: arm uffd-wp; off: disarm, without waking anything blocked there. */
static int host_realiser_write_protect(struct guest_memory *mem, uint64_t gfn, uint64_t npages,
				       int on)
{
	if (on && fault_inject_hit(FAULT_UFFD_WP)) {
		errno = ENOMEM;
		return -1;
	}
	struct uffdio_writeprotect wp = {
		.range = {(uint64_t)(uintptr_t)(mem->host_base + gfn * FRAME_SIZE),
			  npages * FRAME_SIZE},
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
	};
	return ioctl(mem->uffd, UFFDIO_WRITEPROTECT, &wp);
}

static void host_realiser_wake(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
{
	struct uffdio_range range = {(uint64_t)(uintptr_t)(mem->host_base + gfn * FRAME_SIZE),
				     npages * FRAME_SIZE};
	ioctl(mem->uffd, UFFDIO_WAKE, &range);
}

/* mmap(MAP_FIXED) of guest memory, or -errno. */
static int map_fixed(void *addr, size_t len, int flags, int fd, off_t offset)
{
	if (fault_inject_hit(FAULT_MMAP))
		return -ENOMEM;
	if (mmap(addr, len, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, offset) == MAP_FAILED)
		return -errno;
	return 0;
}

/* After a failure part-way through placing frames: the range must not map
 * them any more (the caller frees them) and must not be a hole (a vCPU
 * touching a hole: EFAULT on KVM, SIGSEGV of the whole VMM on TCG). So the
 * range becomes anonymous memory, registered as a placeholder if the uffd
 * lets it; the VM is failed by the caller and abandoned later anyway. If
 * even that mapping cannot be made, the frames may still be mapped: the
 * caller must leak them, never free them (returns -1). */
static int unmap_frames(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
{
	void *addr = mem->host_base + gfn * FRAME_SIZE;
	if (mmap(addr, npages * FRAME_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -1;
	uffd_register(mem, gfn, npages, UFFD_PLACEHOLDER_MODES);
	return 0;
}

/* Places frames [frame, frame+npages) at guest pages [gfn, gfn+npages): one
 * mmap of the pool memfd over the range, then re-registration with the uffd
 * in WP mode (mmap(MAP_FIXED) silently drops the registration). A frame that
 * is still a hole gets its host page when the guest first touches it, at its
 * own offset in the pool: that is the guest's ordinary page fault, not a
 * uffd event. `populate` prefaults the host page tables (used when the VMM
 * has just written the frames); `write_protect` arms uffd-wp so a write
 * faults to the VMM. Returns 0, or -errno with the frames no longer mapped
 * (the caller frees them), or -ENOTRECOVERABLE when they may still be and
 * must never be freed (unmap_frames). Called with mem->lock held. */
static int host_realiser_map(struct guest_memory *mem, uint64_t gfn, uint64_t frame,
			     uint64_t npages, unsigned flags)
{
	int populate = (flags & REALISE_POPULATE) != 0;
	int write_protect = (flags & REALISE_WRITE_PROTECT) != 0;
	void *addr = mem->host_base + gfn * FRAME_SIZE;
	int error = map_fixed(addr, npages * FRAME_SIZE, MAP_SHARED | (populate ? MAP_POPULATE : 0),
			      mem->pool->memfd, (off_t)(frame * FRAME_SIZE));
	if (!error) {
		mem->stats.maps++;
		if (uffd_register(mem, gfn, npages, UFFDIO_REGISTER_MODE_WP) ||
		    (write_protect && host_realiser_write_protect(mem, gfn, npages, 1))) {
			error = -errno;
			/* The frames were in place: a vCPU running meanwhile
			 * (fault-ahead maps behind a running guest) may have
			 * written them, and the placeholder put back below reads
			 * as untouched. So the VM is failed first, before it can
			 * read that and report it as its own result. */
			guest_memory_fail(mem, "cannot watch guest memory with userfaultfd: %s",
					  strerror(-error));
		}
	}
	/* A failed MAP_FIXED may have left a hole, a failed registration a
	 * frame mapping that is not watched: either way, put memory there
	 * that maps no frame. */
	if (error)
		return unmap_frames(mem, gfn, npages) ? -ENOTRECOVERABLE : error;
	if (!write_protect)
		access_log_mapped(mem, gfn, npages);
	return 0;
}

/* Puts back the anonymous placeholder (registered MISSING|WP) over a run:
 * the pages read as untouched or swapped, per their sEPT entries. */
static int host_realiser_unmap(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
{
	void *addr = mem->host_base + gfn * FRAME_SIZE;
	int error = map_fixed(addr, npages * FRAME_SIZE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (error) {
		/* A failed MAP_FIXED may have left a hole: never leave one. */
		unmap_frames(mem, gfn, npages);
		return error;
	}
	mem->stats.maps++;
	if (uffd_register(mem, gfn, npages, UFFD_PLACEHOLDER_MODES))
		return -errno;
	return 0;
}

/* The host's MMU and its TLB are the kernel's: nothing to ask for. */
static void host_realiser_flush(struct guest_memory *mem)
{
	(void)mem;
}

/* The VM failed: its host range becomes plain anonymous memory no uffd
 * watches, so its vCPU, once woken, finishes its instruction on throwaway
 * memory and stops (guest_memory.h). Pool frames stay owned by the sEPT and
 * are freed when the VM is destroyed. Called without mem->lock. */
static void host_realiser_abandon(struct guest_memory *mem)
{
	pthread_mutex_lock(&mem->lock);
	mmap(mem->host_base, mem->bytes, PROT_READ | PROT_WRITE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	pthread_mutex_unlock(&mem->lock);
}

/* The VM's uffd, registered over the whole range (the policy layer then
 * hands it to the fault thread, guest_life.c). */
static int host_realiser_init(struct guest_memory *mem, char *err, size_t errlen)
{
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
	return 0;
}

/* The uffd is closed with the VM's memory (guest_life.c). */
static void host_realiser_exit(struct guest_memory *mem)
{
	(void)mem;
}

const struct realiser_ops host_realiser_ops = {
	.name = "host",
	.init = host_realiser_init,
	.exit = host_realiser_exit,
	.table_source = NULL,
	.map = host_realiser_map,
	.unmap = host_realiser_unmap,
	.write_protect = host_realiser_write_protect,
	.wake = host_realiser_wake,
	.flush = host_realiser_flush,
	.abandon = host_realiser_abandon,
};
