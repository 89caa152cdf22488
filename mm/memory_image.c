/*
 * memory_image.c - guest RAM that starts as a memory image (see guest_memory.h).
 *
 * A memory image is a raw file of guest physical memory: byte offset ==
 * guest physical address, as a snapshot of a VM's RAM is (QEMU's
 * memory-backend-file, Firecracker's memory file). It may be shorter than
 * the VM's memory; the rest reads as zeroes.
 *
 * With the frame pool the image is restored lazily, the way Firecracker's
 * snapshot restore serves page faults from the memory file: nothing is read
 * up front, and a guest page only gets a frame when it is first touched.
 * guest_populate() fills the frames of a new block from the image before
 * they are mapped (so no vCPU can see them half filled), through a small
 * bounce buffer: an all-zero image page is not copied, and its frame stays
 * a hole of the pool memfd, costing no memory until the guest touches it
 * (shmem gives a hole a page on a read fault too; mapping the zero run for
 * zero image pages, as Linux maps its zero page on an anonymous read fault,
 * would save that, at the price of a copy-on-write on the first write). A
 * VMM read of an untouched page (pool_access) reads the image directly and
 * allocates nothing, as a read of an untouched page without an image reads
 * zeroes. The boot area and the guest ELF are then written over the image by
 * the loader, as on any other start.
 *
 * Invariant: a present page whose frame was filled from the image holds the
 * image's bytes until the guest writes it; a frame left a hole means the
 * image page was zero, so the reclaim path that drops hole frames (the page
 * becomes untouched again) and a later refill from the image agree.
 *
 * With anonymous backing (the baseline) the whole image is read in at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guest_memory_internal.h"

#define BOUNCE_PAGES 16u

int memory_image_open(struct guest_memory *mem, const char *path, char *err, size_t errlen)
{
	mem->image_fd = -1;
	if (!path)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "cannot open the memory image %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "memory image %s is not a regular file", path);
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > mem->bytes) {
		snprintf(err, errlen,
			 "memory image %s is %llu bytes, larger than the VM's %llu MiB", path,
			 (unsigned long long)st.st_size, (unsigned long long)(mem->bytes >> 20));
		close(fd);
		return -1;
	}
	mem->image_fd = fd;
	mem->image_bytes = (uint64_t)st.st_size;
	return 0;
}

void memory_image_close(struct guest_memory *mem)
{
	if (mem->image_fd >= 0)
		close(mem->image_fd);
	mem->image_fd = -1;
}

/* Reads [offset, offset + len) of the image into buf; past its end, zeroes.
 * Returns 0 or -errno. */
static int image_pread(struct guest_memory *mem, uint64_t offset, uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		if (offset + done >= mem->image_bytes) {
			memset(buf + done, 0, len - done);
			return 0;
		}
		ssize_t n = pread(mem->image_fd, buf + done, len - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) { /* the file shrank under us: the rest is zero */
			memset(buf + done, 0, len - done);
			return 0;
		}
		done += (size_t)n;
	}
	return 0;
}

static int page_is_zero(const uint8_t *page)
{
	const uint64_t *w = (const uint64_t *)(const void *)page;
	uint64_t any = 0;
	for (size_t i = 0; i < FRAME_SIZE / sizeof(uint64_t); i++)
		any |= w[i];
	return any == 0;
}

int memory_image_fill(struct guest_memory *mem, uint64_t gfn, uint64_t frame, uint64_t npages)
{
	if (mem->image_fd < 0)
		return 0;
	uint64_t image_pages = (mem->image_bytes + FRAME_SIZE - 1) / FRAME_SIZE;
	if (gfn >= image_pages)
		return 0;
	if (gfn + npages > image_pages)
		npages = image_pages - gfn;
	uint8_t bounce[BOUNCE_PAGES * FRAME_SIZE] __attribute__((aligned(64)));
	for (uint64_t done = 0; done < npages;) {
		uint64_t n = npages - done < BOUNCE_PAGES ? npages - done : BOUNCE_PAGES;
		int rc = image_pread(mem, (gfn + done) * FRAME_SIZE, bounce, n * FRAME_SIZE);
		if (rc) {
			guest_memory_fail(mem, "cannot read the memory image at offset 0x%llx: %s",
					  (unsigned long long)((gfn + done) * FRAME_SIZE),
					  strerror(-rc));
			return rc;
		}
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *src = bounce + i * FRAME_SIZE;
			if (page_is_zero(src)) {
				mem->stats.image_zero_pages++;
				continue;
			}
			memcpy(frame_pool_address(mem->pool, frame + done + i), src, FRAME_SIZE);
			mem->stats.image_pages++;
		}
		done += n;
	}
	return 0;
}

int memory_image_read(struct guest_memory *mem, uint64_t gpa, void *buf, size_t len)
{
	if (mem->image_fd < 0) {
		memset(buf, 0, len);
		return 0;
	}
	return image_pread(mem, gpa, buf, len);
}

int memory_image_load_all(struct guest_memory *mem, char *err, size_t errlen)
{
	if (mem->image_fd < 0)
		return 0;
	int rc = image_pread(mem, 0, mem->host_base, mem->image_bytes);
	if (rc) {
		snprintf(err, errlen, "cannot read the memory image: %s", strerror(-rc));
		return -1;
	}
	mem->stats.image_pages = (mem->image_bytes + FRAME_SIZE - 1) / FRAME_SIZE;
	return 0;
}
