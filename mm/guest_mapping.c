/*
 * guest_mapping.c - placing pool frames in a VM's host range: one mmap of
 * the pool memfd per run of frames, re-registration with the VM's uffd
 * (mmap(MAP_FIXED) drops it), write protection and wake-ups.
 */
#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "guest_memory_internal.h"

int guest_uffd_register(struct guest_memory *mem, uint64_t gfn, uint64_t npages, uint64_t mode)
{
	struct uffdio_register reg = {
		.range = {(uint64_t)(uintptr_t)(mem->host_base + gfn * FRAME_SIZE),
			  npages * FRAME_SIZE},
		.mode = mode,
	};
	return ioctl(mem->uffd, UFFDIO_REGISTER, &reg);
}

int guest_uffd_write_protect(struct guest_memory *mem, uint64_t gfn, uint64_t npages, int on)
{
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

/* Places frames [frame, frame+npages) at guest pages [gfn, gfn+npages): one
 * mmap of the pool memfd over the range, then re-registration with the uffd
 * in WP mode (mmap(MAP_FIXED) silently drops the registration). A frame that
 * is still a hole gets its host page when the guest first touches it, at its
 * own offset in the pool: that is the guest's ordinary page fault, not a
 * uffd event. `populate` prefaults the host page tables (used when the VMM
 * has just written the frames); `write_protect` arms uffd-wp so a write
 * faults to the VMM. Returns 0 or -errno. Called with mem->lock held. */
int guest_map_frames(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t npages,
		     int populate, int write_protect)
{
	int flags = MAP_SHARED | MAP_FIXED | (populate ? MAP_POPULATE : 0);
	void *addr = mem->host_base + gfn * FRAME_SIZE;
	if (mmap(addr, npages * FRAME_SIZE, PROT_READ | PROT_WRITE, flags, mem->pool->memfd,
		 (off_t)(frame * FRAME_SIZE)) == MAP_FAILED)
		return -errno;
	mem->stats.maps++;
	if (guest_uffd_register(mem, gfn, npages, UFFDIO_REGISTER_MODE_WP))
		return -errno;
	if (write_protect && guest_uffd_write_protect(mem, gfn, npages, 1))
		return -errno;
	if (!write_protect)
		access_log_mapped(mem, gfn, npages);
	return 0;
}

int guest_map_placeholder(struct guest_memory *mem, uint64_t gfn, uint64_t npages)
{
	void *addr = mem->host_base + gfn * FRAME_SIZE;
	if (mmap(addr, npages * FRAME_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED)
		return -errno;
	mem->stats.maps++;
	if (guest_uffd_register(mem, gfn, npages, UFFD_PLACEHOLDER_MODES))
		return -errno;
	return 0;
}
