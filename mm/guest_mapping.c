/*
 * guest_mapping.c - placing pool frames in a VM's host range: one mmap of
 * the pool memfd per run of frames, re-registration with the VM's uffd
 * (mmap(MAP_FIXED) drops it), write protection and wake-ups.
 */
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "guest_memory_internal.h"
#include "io/fault_inject.h"

int guest_uffd_register(struct guest_memory *mem, uint64_t gfn, uint64_t npages, uint64_t mode)
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

int guest_uffd_write_protect(struct guest_memory *mem, uint64_t gfn, uint64_t npages, int on)
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

void guest_uffd_wake(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
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
	guest_uffd_register(mem, gfn, npages, UFFD_PLACEHOLDER_MODES);
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
int guest_map_frames(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t npages,
		     int populate, int write_protect)
{
	void *addr = mem->host_base + gfn * FRAME_SIZE;
	int error = map_fixed(addr, npages * FRAME_SIZE, MAP_SHARED | (populate ? MAP_POPULATE : 0),
			      mem->pool->memfd, (off_t)(frame * FRAME_SIZE));
	if (!error) {
		mem->stats.maps++;
		if (guest_uffd_register(mem, gfn, npages, UFFDIO_REGISTER_MODE_WP) ||
		    (write_protect && guest_uffd_write_protect(mem, gfn, npages, 1)))
			error = -errno;
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

int guest_map_placeholder(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
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
	if (guest_uffd_register(mem, gfn, npages, UFFD_PLACEHOLDER_MODES))
		return -errno;
	return 0;
}

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
